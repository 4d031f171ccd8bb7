"""Credential-report based checks (R1.1, X2).

The IAM credential report is generated asynchronously. c7n's stock
``credential`` filter sleeps a fixed ``report_delay`` and tries once more; here
the report is requested the way AWS documents it: call
GenerateCredentialReport until it says COMPLETE (it reuses a report younger
than four hours), then read it. The parsed report is cached under the same
key as c7n's filter, so both share one download per account.
"""
import time

from botocore.exceptions import ClientError
from c7n.exceptions import PolicyExecutionError
from c7n.filters import Filter
from c7n.resources.iam import CredentialReport
from c7n.utils import local_session, type_schema

from custodian_ext.registry import register_filter

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
