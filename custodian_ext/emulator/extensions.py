"""AWS behaviour that moto 5.2 lacks, added to the emulator process only.

Each extension follows the documented AWS behaviour it stands in for, so the
pack's code runs unchanged against it. Nothing here is imported by the pack
itself; only ``python -m custodian_ext.emulator`` (the demo, the end-to-end
tests and the benchmarks) applies it.

- Root access keys. AWS: ``CreateAccessKey`` without ``UserName``, signed by
  the root user, creates a root access key; ``GetAccountSummary`` then shows
  ``AccountAccessKeysPresent: 1``, and the credential report always starts
  with a ``<root_account>`` row. moto has no root row and a fixed 0.
- ``ListServiceSpecificCredentials`` (c7n's ``delete`` on ``iam-user`` and the
  pack's ``export-user`` call it). AWS returns the user's CodeCommit /
  Keyspaces / Bedrock credentials and ``NoSuchEntity`` for an unknown user;
  moto cannot create such credentials, so the list is always empty.
- ``ModifySnapshotAttribute`` with ``CreateVolumePermission={'Add'|'Remove': [{'UserId'|'Group'}]}``
  (the structured form c7n's ``set-permissions`` sends). AWS applies it like
  ``UserIds``/``GroupNames``; moto reads only those and ignores the structure.
- ``ListObjectVersions`` with only a ``key-marker``: AWS starts after that key;
  moto re-listed part of the marker key and dropped a version.
- ``DescribeInstances`` with an instance id listed twice: AWS answers once per
  instance (c7n's EBS ``instance`` filter sends duplicates); moto returned a 500.
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


def s3_versions_key_marker():
    from moto.core.utils import unix_time_millis
    from moto.s3.models import S3Backend

    list_object_versions = S3Backend.list_object_versions

    def list_object_versions_ext(self, bucket_name, delimiter=None, key_marker=None,
                                 max_keys=1000, prefix='', version_id_marker=None):
        if key_marker and not version_id_marker and not delimiter:
            # Start after the last version at or before the marker key: moto's own
            # (key, version) form of the marker, which it handles as AWS does.
            bucket = self.get_bucket(bucket_name)
            entries = [v for _, versions in bucket.keys.iterlists() for v in versions]
            entries.sort(key=lambda r: (r.name, -unix_time_millis(r.last_modified)))
            upto = [v for v in entries if v.name <= key_marker]
            if upto:
                key_marker, version_id_marker = upto[-1].name, upto[-1].version_id
            else:
                key_marker = None
        return list_object_versions(
            self, bucket_name, delimiter=delimiter, key_marker=key_marker, max_keys=max_keys,
            prefix=prefix, version_id_marker=version_id_marker)

    S3Backend.list_object_versions = list_object_versions_ext


def ec2_duplicate_instance_ids():
    from moto.ec2.models.instances import InstanceBackend

    get_reservations = InstanceBackend.get_reservations_by_instance_ids

    def get_reservations_ext(self, instance_ids, filters=None):
        return get_reservations(self, list(dict.fromkeys(instance_ids)), filters)

    InstanceBackend.get_reservations_by_instance_ids = get_reservations_ext


def service_specific_credentials():
    from moto.core.responses import ActionResult
    from moto.iam.responses import IamResponse

    def list_service_specific_credentials(self):
        user_name = self._get_param('UserName')
        if user_name:
            self.backend.get_user(user_name)  # NoSuchEntity, as AWS answers
        return ActionResult({'ServiceSpecificCredentials': []})

    IamResponse.list_service_specific_credentials = list_service_specific_credentials


def snapshot_permission_structure():
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    modify = ElasticBlockStore.modify_snapshot_attribute

    def modify_snapshot_attribute_ext(self):
        response = modify(self)
        snapshot_id = self._get_param('SnapshotId')
        change = self._get_param('CreateVolumePermission', {}) or {}
        for kind, apply in (('Add', self.ec2_backend.add_create_volume_permission),
                            ('Remove', self.ec2_backend.remove_create_volume_permission)):
            items = change.get(kind) or []
            users = [i['UserId'] for i in items if i.get('UserId')]
            groups = [i['Group'] for i in items if i.get('Group')]
            if users or groups:
                apply(snapshot_id, user_ids=users, groups=groups)
        return response

    ElasticBlockStore.modify_snapshot_attribute = modify_snapshot_attribute_ext


EXTENSIONS = [root_access_keys, s3_versions_key_marker, ec2_duplicate_instance_ids,
              service_specific_credentials, snapshot_permission_structure]


def apply():
    global _APPLIED
    if _APPLIED:
        return
    _APPLIED = True
    for ext in EXTENSIONS:
        ext()
