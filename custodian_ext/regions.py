"""Region ordering for runs of the pack's policies. A leaf module."""
from custodian_ext.errors import PackError


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
