"""The regions a run sweeps: real AWS region names, enabled for the account.

Two silent failures this prevents (found with the stock ``custodian run``):

- c7n drops a region it does not know: ``custodian run -r us-east-1 -r
  xx-fake-1`` exits 0 having run nothing in ``xx-fake-1`` and writes no output
  for it, so the report does not even list the region: a typo reads as clean.
- An opt-in region the account has not enabled (``ap-east-1``, ``me-south-1``
  ...) refuses every call with an authentication error: every policy there
  errors with a traceback in its log.

``place_global_region`` puts ``global_region`` first, so global-service policies
run once. ``check_names`` needs no API call: a name must be a region of some partition
in botocore's endpoint data (the same data c7n maps regions with).
``check_enabled`` asks ``ec2:DescribeRegions`` (``AllRegions``) in the
account which regions are enabled; if the caller may not call it, the check
is skipped with a warning (the policies in a disabled region then error, and
the report shows them as errored). ``check_run`` does both, for the
``custodian run`` hook. A leaf module: it imports nothing of the pack but
its error type.
"""
import difflib
import logging

from custodian_ext.errors import PackError

log = logging.getLogger('custodian.ext')

ENABLED = ('opt-in-not-required', 'opted-in')


def known_regions():
    """Every region name of every partition botocore knows (EC2's endpoint data)."""
    import botocore.session
    session = botocore.session.get_session()
    names = set()
    for partition in session.get_available_partitions():
        names.update(session.get_available_regions('ec2', partition_name=partition))
    return names


def check_names(regions, source='-r'):
    """Raise PackError, in one line, if a region name is not an AWS region."""
    known = None
    for name in regions or ():
        if name == 'all':
            continue
        if known is None:
            known = known_regions()
        if name in known:
            continue
        close = difflib.get_close_matches(str(name), sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else (
            f"; regions look like us-east-1 (botocore knows {len(known)})")
        raise PackError(f"{source} {name}: not an AWS region{hint}")


def enabled_regions(session, region):
    """{name: opt-in status} of every region, from DescribeRegions in ``region``; None if denied."""
    from botocore.exceptions import ClientError
    client = session.client('ec2', region_name=region)
    try:
        answer = client.describe_regions(AllRegions=True)
    except ClientError as e:
        code = e.response.get('Error', {}).get('Code', '')
        if code in ('UnauthorizedOperation', 'AccessDenied', 'AccessDeniedException'):
            log.warning("cannot check which regions are enabled (%s on ec2:DescribeRegions); "
                        "policies in a region that is not enabled will error", code)
            return None
        raise
    return {r['RegionName']: r.get('OptInStatus', 'opt-in-not-required')
            for r in answer.get('Regions', ())}


def check_enabled(session, regions, region, account_id=None, source='-r'):
    """Raise PackError, in one line, if a region is not enabled for the account."""
    wanted = [r for r in regions or () if r != 'all']
    if not wanted:
        return
    status = enabled_regions(session, region)
    if status is None:
        return
    off = [r for r in wanted if status.get(r, 'unknown') not in ENABLED]
    if not off:
        return
    where = f"account {account_id}" if account_id else 'this account'
    listed = ', '.join(f"{r} ({status.get(r, 'not offered to the account')})" for r in off)
    first = off[0]
    raise PackError(
        f"{source} {', '.join(off)}: not enabled in {where}: {listed}; enable it "
        f"(aws account enable-region --region-name {first}) or leave it out")


def check_run(regions, session, region, account_id=None, source='-r'):
    """Names, then enablement: for ``custodian run`` before any policy runs."""
    check_names(regions, source)
    check_enabled(session, regions, region, account_id, source)


def place_global_region(regions, global_region, default_region):
    """The run's region list, arranged so global-service policies run once.

    c7n runs a global policy in the first region listed, and the pack's global
    policies run only where ``region == global_region``.
    """
    regions = list(regions or ())
    if not regions:
        # No -r: the session's region, plus the global region for IAM & co.
        return [global_region] + ([default_region] if default_region != global_region else [])
    if global_region in regions:
        return [global_region] + [r for r in regions if r != global_region]
    if regions == ['all']:
        return [global_region, 'all']
    raise PackError(
        f"global services (IAM, Organizations, the account) are checked in global_region "
        f"{global_region}, which this run leaves out; add -r {global_region}, or set "
        f"global_region in the vars file to one of {', '.join(regions)}")
