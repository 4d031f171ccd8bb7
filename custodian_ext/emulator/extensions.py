"""AWS behaviour that moto 5.2 lacks, added to the emulator process only.

Each extension follows the documented AWS behaviour it stands in for, so the
pack's code runs unchanged against it. Nothing here is imported by the pack
itself; only ``python -m custodian_ext.emulator`` (the demo, the end-to-end
tests and the benchmarks) applies it.

- Root access keys. AWS: ``CreateAccessKey`` without ``UserName``, signed by
  the root user, creates a root access key; ``GetAccountSummary`` then shows
  ``AccountAccessKeysPresent: 1``, and the credential report always starts
  with a ``<root_account>`` row. moto has no root row and a fixed 0.
- CloudTrail event history (R2.2): the management calls the emulator serves
  are recorded per account and region and served by ``LookupEvents``; the same
  record answers IAM's service-last-accessed jobs (R1.2). See
  ``custodian_ext.emulator.event_history``.
- CloudTrail basic event selectors replacing advanced ones; IAM policy
  ``UpdateDate``; login profile dates (GetLoginProfile ``CreateDate``, the credential report's
  ``password_last_changed`` and key last-use region/service),
  ``organizations:LeaveOrganization``, ``support:DescribeTrustedAdvisorCheckResult``
  (Basic support plan: SubscriptionRequiredException) and IAM Roles Anywhere
  trust anchors (R4.3, R3.2, R4.2). See ``custodian_ext.emulator.services``.
"""
import datetime

_APPLIED = False

REPORT_DATE = '%Y-%m-%dT%H:%M:%S+00:00'


def _root_keys(backend):
    return backend.__dict__.setdefault('_ext_root_access_keys', [])


def _root_row(backend):
    """The credential report's ``<root_account>`` row, as AWS writes it."""
    keys = _root_keys(backend)
    created = backend.__dict__.setdefault(
        '_ext_root_created', datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))

    def key_cols(i):
        if i >= len(keys):
            return ['false', 'N/A', 'N/A', 'N/A', 'N/A']
        k = keys[i]
        return ['true' if k.status == 'Active' else 'false',
                k.create_date.strftime(REPORT_DATE), 'N/A', 'N/A', 'N/A']

    cols = ['<root_account>', f'arn:aws:iam::{backend.account_id}:root',
            created.strftime(REPORT_DATE), 'not_supported', 'no_information',
            'not_supported', 'not_supported', 'false']
    cols += key_cols(0) + key_cols(1) + ['false', 'N/A', 'false', 'N/A']
    return ','.join(cols) + '\n'


def root_access_keys():
    from moto.core.responses import ActionResult
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import AccessKey, AccountSummary, IAMBackend
    from moto.iam.responses import IamResponse

    create_access_key = IamResponse.create_access_key

    def create_access_key_ext(self):
        if not self._get_param('UserName'):
            try:
                self.backend.get_access_key_last_used(self.get_access_key())
            except NotFoundException:
                # Not an IAM user's key: the caller is the root user.
                key = AccessKey(None, prefix='AKIA', account_id=self.backend.account_id)
                _root_keys(self.backend).append(key)
                return ActionResult({'AccessKey': {
                    'UserName': 'root', 'AccessKeyId': key.access_key_id,
                    'Status': key.status, 'SecretAccessKey': key.secret_access_key,
                    'CreateDate': key.create_date}})
        return create_access_key(self)

    IamResponse.create_access_key = create_access_key_ext

    get_credential_report = IAMBackend.get_credential_report

    def get_credential_report_ext(self):
        report = get_credential_report(self)
        header, rest = report.split('\n', 1)
        return header + '\n' + _root_row(self) + rest

    IAMBackend.get_credential_report = get_credential_report_ext

    summary_map = AccountSummary.summary_map.fget

    def summary_map_ext(self):
        m = summary_map(self)
        m['AccountAccessKeysPresent'] = 1 if _root_keys(self._iam_backend) else 0
        return m

    AccountSummary.summary_map = property(summary_map_ext)


def event_history():
    from custodian_ext.emulator import event_history as history
    history.apply()


def identity_services():
    from custodian_ext.emulator import services
    services.login_profiles()
    services.cloudtrail_selectors()
    services.policy_update_date()
    services.leave_organization()
    services.trusted_advisor_basic_plan()
    services.roles_anywhere()


EXTENSIONS = [root_access_keys, event_history, identity_services]


def apply():
    global _APPLIED
    if _APPLIED:
        return
    _APPLIED = True
    for ext in EXTENSIONS:
        ext()
