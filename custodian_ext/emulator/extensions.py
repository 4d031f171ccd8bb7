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
- ``DescribeSnapshots`` ``OwnerIds``. AWS returns only the snapshots of the
  given owners (``self`` is the caller's account); moto ignores the
  parameter and also lists the Amazon-owned snapshots behind its public
  AMIs, which a real ``OwnerIds=[self]`` never returns.
- ECS creation times. AWS: ``DescribeServices`` and ``DescribeTasks`` return
  each service's and task's ``createdAt``. moto keeps neither.
- Lambda ``LastModified``. AWS: it changes with every UpdateFunctionCode
  and UpdateFunctionConfiguration; moto keeps the creation time.
- Lambda layers of other accounts. AWS: a function may load a layer version
  published by another account when the layer's policy grants that account
  (or ``*``) ``lambda:GetLayerVersion``; the function then lists the
  foreign ARN. moto looks every layer up in the caller's own account.
- Route 53 Domains tags (``ListTagsForDomain``, ``UpdateTagsForDomain``):
  AWS returns a domain's ``TagList``; moto has no tag calls for domains.
- Lightsail instances (``CreateInstances``, ``GetInstances``,
  ``GetInstance``, ``DeleteInstance``), which moto does not implement at
  all, with the response shapes of the Lightsail API reference. Other
  Lightsail operations answer ``UnknownOperationException``.
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


def snapshot_owner_ids():
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    describe = ElasticBlockStore.describe_snapshots

    def describe_snapshots(self):
        result = describe(self)
        owners = self._get_param('OwnerIds', [])
        if owners:
            wanted = {self.current_account if o == 'self' else o for o in owners}
            snaps = result.result['Snapshots']
            snaps[:] = [s for s in snaps if s.owner_id in wanted or
                        getattr(s, 'owner_alias', None) in wanted]
        return result

    ElasticBlockStore.describe_snapshots = describe_snapshots


def ecs_created_at():
    from moto.core.utils import utcnow
    from moto.ecs.models import Service, Task

    for model in (Service, Task):
        init = model.__init__

        def init_ext(self, *args, _init=init, **kw):
            _init(self, *args, **kw)
            self.created_at = utcnow()  # serialised as createdAt

        model.__init__ = init_ext


def _allows_account(policy, account_id):
    """Whether a layer version policy grants ``account_id`` lambda:GetLayerVersion."""
    for s in policy.statements:
        actions = s.get('Action')
        actions = [actions] if isinstance(actions, str) else actions or []
        principal = s.get('Principal')
        principals = principal.get('AWS') if isinstance(principal, dict) else principal
        principals = [principals] if isinstance(principals, str) else principals or []
        if s.get('Effect') != 'Allow' or not any(
                a in ('lambda:GetLayerVersion', 'lambda:*', '*') for a in actions):
            continue
        for p in principals:
            if p == '*' or p == account_id or p.split(':')[4:5] == [account_id]:
                return True
    return False


def lambda_last_modified():
    from moto.awslambda.models import LambdaFunction
    from moto.core.utils import iso_8601_datetime_with_nanoseconds

    for name in ('update_function_code', 'update_configuration'):
        original = getattr(LambdaFunction, name)

        def update(self, *args, _original=original, **kw):
            result = _original(self, *args, **kw)
            self.last_modified = iso_8601_datetime_with_nanoseconds()
            if isinstance(result, dict) and 'LastModified' in result:
                result['LastModified'] = self.last_modified
            return result

        setattr(LambdaFunction, name, update)


def lambda_foreign_layers():
    from moto.awslambda.exceptions import UnknownLayerVersionException
    from moto.awslambda.models import LambdaFunction
    from moto.awslambda.utils import get_backend

    def get_layers_data(self, arns):
        out = []
        for arn in arns:
            parts = arn.split(':')  # arn:aws:lambda:<region>:<account>:layer:<name>:<version>
            if len(parts) != 8:
                raise UnknownLayerVersionException(arns)
            region, owner = parts[3], parts[4]
            version = get_backend(owner, region).layers_versions_by_arn(arn)
            if version is None or (owner != self.account_id and
                                   not _allows_account(version.policy, self.account_id)):
                raise UnknownLayerVersionException(arns)
            out.append({'Arn': version.arn, 'CodeSize': version.code_size})
        return out

    LambdaFunction._get_layers_data = get_layers_data


def route53domains_tags():
    import json
    from moto.route53domains.responses import Route53DomainsResponse

    def domain(self):
        return self.route53domains_backend.get_domain(domain_name=self._get_param('DomainName'))

    def list_tags_for_domain(self):
        return json.dumps({'TagList': list(getattr(domain(self), '_ext_tags', {}).values())})

    def update_tags_for_domain(self):
        d = domain(self)
        tags = d.__dict__.setdefault('_ext_tags', {})
        for t in self._get_param('TagsToUpdate') or ():
            tags[t['Key']] = {'Key': t['Key'], 'Value': t.get('Value', '')}
        return '{}'

    Route53DomainsResponse.list_tags_for_domain = list_tags_for_domain
    Route53DomainsResponse.update_tags_for_domain = update_tags_for_domain


# Lightsail: {(account, region): {name: instance}}
_LIGHTSAIL = {}


def _lightsail_instance(account_id, region, name, params):
    import uuid
    import time
    zone = params.get('availabilityZone') or region + 'a'
    return {
        'name': name,
        'arn': f'arn:aws:lightsail:{region}:{account_id}:Instance/{uuid.uuid4()}',
        'supportCode': f'{account_id}/{name}',
        'createdAt': time.time(),
        'location': {'availabilityZone': zone, 'regionName': region},
        'resourceType': 'Instance',
        'tags': params.get('tags') or [],
        'blueprintId': params.get('blueprintId'),
        'blueprintName': params.get('blueprintId'),
        'bundleId': params.get('bundleId'),
        'isStaticIp': False,
        'privateIpAddress': '172.26.0.10',
        'publicIpAddress': '203.0.113.10',
        'ipAddressType': 'ipv4',
        'hardware': {'cpuCount': 2, 'ramSizeInGb': 4.0},
        'state': {'code': 16, 'name': 'running'},
        'username': 'ec2-user',
        'sshKeyName': params.get('keyPairName') or 'LightsailDefaultKeyPair',
    }


def _lightsail_operation(instance, op_type):
    import time
    import uuid
    return {'id': str(uuid.uuid4()), 'resourceName': instance['name'],
            'resourceType': 'Instance', 'createdAt': time.time(),
            'location': instance['location'], 'isTerminal': True,
            'operationType': op_type, 'status': 'Succeeded',
            'statusChangedAt': time.time()}


def _lightsail_call(account_id, region, action, params):
    """(status, body) for one Lightsail JSON API call."""
    store = _LIGHTSAIL.setdefault((account_id, region), {})
    if action == 'CreateInstances':
        names = params.get('instanceNames') or []
        for name in names:
            if name in store:
                return 400, {'__type': 'InvalidInputException',
                             'message': f'Some names are already in use: {name}'}
        ops = []
        for name in names:
            store[name] = _lightsail_instance(account_id, region, name, params)
            ops.append(_lightsail_operation(store[name], 'CreateInstance'))
        return 200, {'operations': ops}
    if action == 'GetInstances':
        return 200, {'instances': list(store.values())}
    if action in ('GetInstance', 'DeleteInstance'):
        name = params.get('instanceName')
        if name not in store:
            return 400, {'__type': 'NotFoundException',
                         'message': f'The Instance does not exist: {name}'}
        if action == 'GetInstance':
            return 200, {'instance': store[name]}
        return 200, {'operations': [_lightsail_operation(store.pop(name), 'DeleteInstance')]}
    return 400, {'__type': 'UnknownOperationException',
                 'message': f'{action} is not emulated'}


def lightsail():
    import json
    import threading
    from moto.iam.models import get_account_id_from
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    lock = threading.Lock()
    dispatch = DomainDispatcherApplication.__call__

    def call(self, environ, start_response):
        auth = environ.get('HTTP_AUTHORIZATION') or ''
        try:
            # AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request, ...
            key, _, region, service, _ = auth.split(',')[0].split()[1].split('=', 1)[1].split('/')
        except (IndexError, ValueError):
            service = None
        if service != 'lightsail':
            return dispatch(self, environ, start_response)
        length = int(environ.get('CONTENT_LENGTH') or 0)
        params = json.loads(environ['wsgi.input'].read(length) or b'{}')
        action = (environ.get('HTTP_X_AMZ_TARGET') or '').split('.')[-1]
        with lock:
            status, body = _lightsail_call(get_account_id_from(key), region, action, params)
        payload = json.dumps(body).encode()
        start_response('200 OK' if status == 200 else '400 Bad Request', [
            ('Content-Type', 'application/x-amz-json-1.1'),
            ('Content-Length', str(len(payload)))])
        return [payload]

    DomainDispatcherApplication.__call__ = call


EXTENSIONS = [
    root_access_keys,
    s3_versions_key_marker,
    ec2_duplicate_instance_ids,
    service_specific_credentials,
    snapshot_permission_structure,
    snapshot_owner_ids,
    ecs_created_at,
    lambda_last_modified,
    lambda_foreign_layers,
    route53domains_tags,
    lightsail,
]


def apply():
    global _APPLIED
    if _APPLIED:
        return
    _APPLIED = True
    for ext in EXTENSIONS:
        ext()
