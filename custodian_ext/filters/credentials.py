"""Credential-report based checks (R1.1, X2, X4).

The IAM credential report is generated asynchronously. c7n's stock
``credential`` filter sleeps a fixed ``report_delay`` and tries once more; here
the report is requested the way AWS documents it: call
GenerateCredentialReport until it says COMPLETE (it reuses a report younger
than four hours), then read it. The parsed report is cached under the same
key as c7n's filter, so both share one download per account.
"""
import datetime
import time

from botocore.exceptions import ClientError
from dateutil.parser import parse as parse_date
from c7n.exceptions import PolicyExecutionError, PolicyValidationError
from c7n.filters import Filter
from c7n.resources.iam import CredentialReport
from c7n.utils import local_session, type_schema

from custodian_ext.registry import register_filter
from custodian_ext.settings import is_placeholder

ROOT_ROW = '<root_account>'


def fetch_credential_report(client, max_wait=120, sleep=time.sleep):
    """Return the credential report CSV text, waiting at most ``max_wait`` seconds."""
    waited, delay = 0.0, 0.5
    while True:
        try:
            state = client.generate_credential_report().get('State')
        except ClientError as e:
            if e.response['Error']['Code'] not in ('LimitExceeded', 'Throttling'):
                raise
            state = 'INPROGRESS'
        if state == 'COMPLETE':
            try:
                content = client.get_credential_report()['Content']
                return content.decode('utf-8') if isinstance(content, bytes) else content
            except ClientError as e:
                if e.response['Error']['Code'] not in (
                        'ReportInProgress', 'ReportNotPresent', 'ReportExpired'):
                    raise
        if waited >= max_wait:
            raise PolicyExecutionError(
                'IAM credential report was not ready after %d seconds; run again' % max_wait)
        sleep(delay)
        waited += delay
        delay = min(delay * 2, 8)


def credential_report(manager, max_wait=120):
    """The parsed credential report, keyed by user name (``<root_account>`` for root)."""
    import csv
    import io
    cache = manager._cache
    key = {'account': manager.config.account_id, 'iam-credential-report': True}
    with cache:
        report = cache.get(key)
        if report:
            return report
        client = local_session(manager.session_factory).client('iam')
        text = fetch_credential_report(client, max_wait=max_wait)
        report = {}
        for info in csv.DictReader(io.StringIO(text)):
            report[info['user']] = CredentialReport.process_user_record(dict(info))
        cache.save(key, report)
    return report


@register_filter('root-access-keys', ['account'])
class RootAccessKeys(Filter):
    """The account's root user has access keys (X2).

    Two sources, so that one missing field cannot hide a root key:
    ``GetAccountSummary`` (``AccountAccessKeysPresent``) says whether root keys
    exist, and the credential report's ``<root_account>`` row says whether each
    is active and when it was last used. The account matches when either shows
    a root key; ``c7n:root-access-keys`` holds the details.

    Only the root user (or centralized root access from the management
    account) can delete a root key, so the pack reports it and does not act.

    :example:

    .. code-block:: yaml

        policies:
          - name: x2-root-access-keys
            resource: aws.account
            filters:
              - type: root-access-keys
    """

    schema = type_schema('root-access-keys', value={'type': 'boolean'})
    permissions = ('iam:GetAccountSummary', 'iam:GenerateCredentialReport',
                   'iam:GetCredentialReport')
    annotation_key = 'c7n:root-access-keys'

    def process(self, resources, event=None):
        client = local_session(self.manager.session_factory).client('iam')
        summary = self.manager.retry(client.get_account_summary)['SummaryMap']
        present = summary.get('AccountAccessKeysPresent', 0)
        row = credential_report(self.manager).get(ROOT_ROW) or {}
        keys = []
        for n, k in enumerate(row.get('access_keys', ()), 1):
            keys.append({
                'key': 'access_key_%d' % n,
                'active': bool(k.get('active')),
                'last_rotated': k.get('last_rotated'),
                'last_used_date': k.get('last_used_date'),
                'last_used_region': k.get('last_used_region'),
                'last_used_service': k.get('last_used_service'),
            })
        found = bool(present) or any(k['active'] for k in keys)
        want = self.data.get('value', True)
        results = []
        for r in resources:
            if found:
                r[self.annotation_key] = {
                    'AccountAccessKeysPresent': present,
                    'credential_report_row': bool(row),
                    'keys': keys,
                }
            if found == want:
                results.append(r)
        return results


def _when(value):
    """A credential-report date, or None for 'N/A', 'no_information', 'not_supported'."""
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    if not isinstance(value, str) or not value[:1].isdigit():
        return None
    try:
        dt = parse_date(value)
    except (ValueError, OverflowError):
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=datetime.timezone.utc)


def _iso(dt):
    return dt.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ') if dt else None


@register_filter('credential-use', ['iam-user', 'account'])
class CredentialUse(Filter):
    """When passwords and access keys were used, from the IAM credential report (R1.1, X4).

    The report is fetched once per account (``credential_report``, polled
    until AWS says it is complete) and shared with X2. On ``aws.account`` the
    report's ``<root_account>`` row is checked. ``check``:

    - ``used-since``: a password or key (active or not) last used at or after
      ``since``;
    - ``never-used``: an active access key that was never used;
    - ``unused-for``: an active key or enabled password whose last use (or
      creation, if never used) is more than ``days`` old;
    - ``password-changed-before``: an enabled console password last changed
      before ``since`` (it needs a reset, X4).

    ``credentials`` limits the check to ``password`` or ``access-keys``.
    ``c7n:credential-use`` lists each matching credential with its key id
    (from ListAccessKeys, for the matched users only), dates and last use.

    :example:

    .. code-block:: yaml

        policies:
          - name: r1-1-credentials-used-since-incident
            resource: aws.iam-user
            filters:
              - type: credential-use
                check: used-since
                since: '{incident_start}'
    """

    CHECKS = ('used-since', 'never-used', 'unused-for', 'password-changed-before')
    schema = type_schema(
        'credential-use', required=['check'],
        check={'enum': list(CHECKS)},
        since={'type': 'string'},
        days={'oneOf': [{'type': 'number', 'minimum': 0}, {'type': 'string'}]},
        credentials={'type': 'array', 'items': {'enum': ['password', 'access-keys']}})
    schema_alias = False
    permissions = ('iam:GenerateCredentialReport', 'iam:GetCredentialReport',
                   'iam:ListAccessKeys')
    annotation_key = 'c7n:credential-use'

    def validate(self):
        check = self.data['check']
        if check in ('used-since', 'password-changed-before') and 'since' not in self.data:
            raise PolicyValidationError(f"{self.type}: check {check} needs 'since'")
        if check == 'unused-for' and 'days' not in self.data:
            raise PolicyValidationError(f"{self.type}: check unused-for needs 'days'")
        since = self.data.get('since')
        if isinstance(since, str) and not is_placeholder(since) and _when(since) is None:
            raise PolicyValidationError(
                f"{self.type}: since {since!r} is not an ISO-8601 timestamp such as "
                f"2026-11-28T09:30:00Z")
        days = self.data.get('days')
        if isinstance(days, str) and not is_placeholder(days):
            raise PolicyValidationError(f"{self.type}: days must be a number, got {days!r}")
        return self

    def credentials(self):
        default = ['access-keys'] if self.data['check'] == 'never-used' else (
            ['password'] if self.data['check'] == 'password-changed-before'
            else ['password', 'access-keys'])
        return self.data.get('credentials', default)

    def findings(self, row, now):
        check = self.data['check']
        kinds = self.credentials()
        since = _when(self.data['since']) if 'since' in self.data else None
        days = float(self.data['days']) if 'days' in self.data else None
        out = []
        if 'password' in kinds:
            enabled = row.get('password_enabled') is True
            used = _when(row.get('password_last_used'))
            changed = _when(row.get('password_last_changed'))
            item = {'Credential': 'password', 'Enabled': enabled, 'LastUsed': _iso(used),
                    'LastChanged': _iso(changed)}
            if check == 'used-since' and used and used >= since:
                out.append(dict(item, Reason=f'used at or after {_iso(since)}'))
            elif check == 'unused-for' and enabled:
                ref = used or changed or _when(row.get('user_creation_time'))
                if ref and (now - ref).total_seconds() > days * 86400:
                    out.append(dict(item, Reason=f'not used for more than {days:g} days'))
            elif check == 'password-changed-before' and enabled and changed and changed < since:
                out.append(dict(item, Reason=f'last changed before {_iso(since)}'))
        if 'access-keys' in kinds:
            for k in row.get('access_keys') or ():
                active = k.get('active') is True
                used = _when(k.get('last_used_date'))
                created = _when(k.get('last_rotated'))
                item = {'Credential': 'access key', 'Active': active, 'Created': _iso(created),
                        'LastUsed': _iso(used), 'LastUsedService': k.get('last_used_service'),
                        'LastUsedRegion': k.get('last_used_region')}
                if check == 'used-since' and used and used >= since:
                    out.append(dict(item, Reason=f'used at or after {_iso(since)}'))
                elif check == 'never-used' and active and used is None:
                    out.append(dict(item, Reason='active and never used'))
                elif check == 'unused-for' and active:
                    ref = used or created
                    if ref and (now - ref).total_seconds() > days * 86400:
                        out.append(dict(item, Reason=f'not used for more than {days:g} days'))
        return out

    def add_key_ids(self, client, user, items):
        """Name the matched keys: the report has dates only, ListAccessKeys has ids."""
        keys = [i for i in items if i['Credential'] == 'access key']
        if not keys:
            return
        listed = self.manager.retry(client.list_access_keys, UserName=user)['AccessKeyMetadata']
        for i in keys:
            for meta in listed:
                if _iso(_when(meta['CreateDate'])) == i['Created']:
                    i['AccessKeyId'] = meta['AccessKeyId']
                    break

    def process(self, resources, event=None):
        report = credential_report(self.manager)
        now = datetime.datetime.now(datetime.timezone.utc)
        client = local_session(self.manager.session_factory).client('iam')
        results = []
        for r in resources:
            is_account = self.manager.type == 'account'
            row = report.get(ROOT_ROW if is_account else r['UserName'])
            if not row:
                continue
            items = self.findings(row, now)
            if not items:
                continue
            if not is_account:
                self.add_key_ids(client, r['UserName'], items)
            r[self.annotation_key] = items
            results.append(r)
        return results


@register_filter('login-profile-created', ['iam-user'])
class LoginProfileCreated(Filter):
    """Users whose console password (login profile) was created at or after ``since`` (R4.1).

    c7n's ``login-profile`` filter only says whether a user has one (it ignores
    value-filter keys such as ``CreateDate``); this one reads
    ``GetLoginProfile``'s ``CreateDate`` and annotates ``c7n:login-profile``.

    :example:

    .. code-block:: yaml

        policies:
          - name: r4-1-login-profiles-created-since-incident
            resource: aws.iam-user
            filters:
              - type: login-profile-created
                since: '{incident_start}'
    """

    schema = type_schema('login-profile-created', required=['since'], since={'type': 'string'})
    schema_alias = False
    permissions = ('iam:GetLoginProfile',)
    annotation_key = 'c7n:login-profile'

    def validate(self):
        since = self.data.get('since')
        if isinstance(since, str) and not is_placeholder(since) and _when(since) is None:
            raise PolicyValidationError(
                f"{self.type}: since {since!r} is not an ISO-8601 timestamp such as "
                f"2026-11-28T09:30:00Z")
        return self

    def process(self, resources, event=None):
        client = local_session(self.manager.session_factory).client('iam')
        since = _when(self.data['since'])
        results = []
        for r in resources:
            try:
                profile = self.manager.retry(
                    client.get_login_profile, UserName=r['UserName'])['LoginProfile']
            except ClientError as e:
                if e.response['Error']['Code'] == 'NoSuchEntity':
                    continue  # no console password
                raise
            created = _when(profile.get('CreateDate'))
            if created and created >= since:
                r[self.annotation_key] = {
                    'CreateDate': _iso(created),
                    'PasswordResetRequired': profile.get('PasswordResetRequired', False)}
                results.append(r)
        return results
