"""AWS behaviour that moto 5.2 lacks, added to the emulator process only.

Each extension follows the documented AWS behaviour it stands in for, so the
pack's code runs unchanged against it. Nothing here is imported by the pack
itself; only ``python -m custodian_ext_dev.emulator`` (the demo, the end-to-end
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
- Versioning-suspended buckets. AWS (S3 User Guide, "Working with objects in
  a versioning-suspended bucket"): a PUT adds the object with version id
  ``null``, replacing only an existing ``null`` version; a DELETE without a
  version id removes the ``null`` version, if any, and adds a delete marker
  with version id ``null``; versions written while versioning was enabled
  stay. moto treated such a bucket as never versioned: a PUT or DELETE
  dropped every earlier version of the key.
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
- AssumeRole into a member account checks that the role exists. AWS refuses
  a role that does not exist with ``AccessDenied`` ("User: <caller> is not
  authorized to perform: sts:AssumeRole on resource: <role arn>"); moto
  accepts any ARN. The check applies to accounts created in an emulated
  organization (``CreateAccount``, which creates the role named by
  ``RoleName``, as AWS does); every other account keeps moto's behaviour, so
  that tests can reach a fresh account through ``OrganizationAccountAccessRole``
  as if an administrator had created the role out of band. Trust policies are
  not evaluated.
- Regions enabled per account. AWS: ``DescribeRegions`` lists only the regions
  enabled for the account (``AllRegions=true`` lists all, with
  ``OptInStatus``), only in the caller's partition, and honours the
  ``opt-in-status`` and ``region-name`` filters; regions launched after
  20 March 2019 are disabled until enabled with the Account Management API
  (``EnableRegion``, ``DisableRegion``, ``GetRegionOptStatus``,
  ``ListRegions``). moto lists every region of every partition and has no
  region opt-in. Here enabling takes effect at once (AWS: minutes to hours).
- Speed, with no change in behaviour: moto resolves the account of every
  request by looking for its access key in the IAM backend of every account
  and every partition, creating each missing backend on the way, and each
  new IAM backend parses and copies AWS's ~1,500 managed policies. A new
  account then cost about 3 s of CPU. Here only existing backends are
  searched, and the managed policies' data is parsed once per process.
  moto also lists a response class's methods (``inspect.getmembers``) and its
  own package folder on every request: a sixth of the emulator's CPU in a
  c7n-org sweep, CPU the client's process then lacks on a shared machine.
  Both answers are fixed once moto is loaded, and are kept.
- CloudTrail event history (R2.2): the management calls the emulator serves
  are recorded per account and region and served by ``LookupEvents``; the same
  record answers IAM's service-last-accessed jobs (R1.2). See
  ``custodian_ext_dev.emulator.event_history``.
- CloudTrail basic event selectors replacing advanced ones; IAM policy
  ``UpdateDate``; login profile dates (GetLoginProfile ``CreateDate``, the credential report's
  ``password_last_changed`` and key last-use region/service),
  ``organizations:LeaveOrganization``, ``support:DescribeTrustedAdvisorCheckResult``
  (Basic support plan: SubscriptionRequiredException) and IAM Roles Anywhere
  trust anchors (R4.3, R3.2, R4.2). See ``custodian_ext_dev.emulator.services``.
- Security Hub findings (``BatchImportFindings`` checks and updates,
  ``BatchUpdateFindings``, ``GetFindings`` filters), as the API reference
  documents them. See ``custodian_ext_dev.emulator.securityhub``.
- IAM enforcement (``Emulator(iam_auth=...)``, moto's ``INITIAL_NO_AUTH_ACTION_COUNT``):
  each signed request is checked against the caller's IAM policies as AWS
  does, with moto 5.2.5's defects fixed and AWS's error for each protocol.
  See ``custodian_ext_dev.emulator.iam_auth``.
- Activity review (#14): trail log files delivered to the trail's bucket in
  AWS's layout, with S3 object and Lambda data events when the trail's event
  selectors ask for them (``custodian_ext_dev.emulator.trail_logs``); the APIs
  replayed attacks call that moto lacks (``StartSession``,
  ``GetAccountSendingEnabled``, AWS Health on a Basic plan) and real session
  credentials from ``GetSessionToken``/``GetFederationToken``
  (``custodian_ext_dev.emulator.attack_apis``); explicit ``Deny`` statements
  of an IAM user's own policies, such as AWS's quarantine policy, refuse that
  user's key (``custodian_ext_dev.emulator.deny``).
- Not AWS behaviour, for benchmarks and tests: the emulator counts the API
  calls it serves (by account, region, service and operation) and can answer
  a share of them with AWS's throttling errors. See
  ``custodian_ext_dev.emulator.calls``.
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


def _service_error():
    from moto.core.exceptions import ServiceException

    class EmulatorServiceError(ServiceException):
        """An AWS error response; serialised with the called service's model."""
    return EmulatorServiceError


def _caller_arn(response, account_id):
    """The ARN AWS names in an AccessDenied message: the signing identity."""
    try:
        from moto.sts.models import sts_backends
        backend = sts_backends[account_id][response.partition]
        return backend.get_caller_identity(response.get_access_key(), response.region)[1]
    except Exception:
        return f'arn:aws:iam::{account_id}:root'


def assume_role_requires_role():
    import re

    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import iam_backends
    from moto.organizations.models import organizations_backends
    from moto.sts.responses import TokenResponse

    ServiceException = _service_error()
    arn_re = re.compile(r'^arn:(aws[a-z-]*):iam::(\d{12}):role/(?:.*/)?([^/]+)$')
    assume_role = TokenResponse.assume_role

    def assume_role_ext(self):
        role_arn = self._get_param('RoleArn') or ''
        m = arn_re.match(role_arn)
        if m and m.group(2) in organizations_backends.master_accounts:
            partition, account_id, name = m.groups()
            try:
                iam_backends[account_id][partition].get_role(name)
            except NotFoundException:
                raise ServiceException(
                    'AccessDenied',
                    f'User: {_caller_arn(self, self.current_account)} is not authorized to '
                    f'perform: sts:AssumeRole on resource: {role_arn}') from None
        return assume_role(self)

    TokenResponse.assume_role = assume_role_ext


# Regions launched after 20 March 2019 are disabled by default (AWS General
# Reference, "Enable or disable AWS Regions"). moto marks most of them
# not-opted-in; these three it marks as default, wrongly.
LATE_REGIONS = {'af-south-1', 'eu-south-1', 'ap-southeast-3'}


def _region_catalogue(partition):
    """(name, enabled by default) for every region of ``partition``."""
    from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend
    from moto.utilities.utils import get_partition
    return [(r.name, r.opt_in_status == 'opt-in-not-required' and r.name not in LATE_REGIONS)
            for r in RegionsAndZonesBackend.regions if get_partition(r.name) == partition]


def _opted_in(account_id, partition):
    from moto.account.models import account_backends
    backend = account_backends[account_id][partition]
    return backend.__dict__.setdefault('_ext_opted_in_regions', set())


def region_opt_in():
    from moto.account import urls as account_urls
    from moto.account.responses import AccountResponse
    from moto.core.responses import ActionResult, EmptyResult
    from moto.ec2.models.availability_zones_and_regions import Region
    from moto.ec2.responses.availability_zones_and_regions import AvailabilityZonesAndRegions

    ServiceException = _service_error()

    def statuses(account_id, partition):
        opted = _opted_in(account_id, partition)
        out = {}
        for name, default in _region_catalogue(partition):
            out[name] = ('ENABLED_BY_DEFAULT' if default else
                         'ENABLED' if name in opted else 'DISABLED')
        return out

    def target(self):
        account_id = self._get_param('AccountId') or self.current_account
        name = self._get_param('RegionName')
        known = statuses(account_id, self.partition)
        if name not in known:
            raise ServiceException(
                'ValidationException', f'{name!r} is not a valid region name')
        return account_id, name, known[name]

    def enable_region(self):
        account_id, name, status = target(self)
        if status != 'ENABLED_BY_DEFAULT':
            _opted_in(account_id, self.partition).add(name)
        return EmptyResult()

    def disable_region(self):
        account_id, name, status = target(self)
        if status == 'ENABLED_BY_DEFAULT':
            raise ServiceException(
                'ValidationException', f'{name} is enabled by default and cannot be disabled')
        _opted_in(account_id, self.partition).discard(name)
        return EmptyResult()

    def get_region_opt_status(self):
        _, name, status = target(self)
        return ActionResult({'RegionName': name, 'RegionOptStatus': status})

    def list_regions(self):
        account_id = self._get_param('AccountId') or self.current_account
        wanted = self._get_param('RegionOptStatusContains') or []
        regions = [{'RegionName': n, 'RegionOptStatus': s}
                   for n, s in sorted(statuses(account_id, self.partition).items())
                   if not wanted or s in wanted]
        return ActionResult({'Regions': regions})

    AccountResponse.enable_region = enable_region
    AccountResponse.disable_region = disable_region
    AccountResponse.get_region_opt_status = get_region_opt_status
    AccountResponse.list_regions = list_regions
    for path in ('enableRegion', 'disableRegion', 'getRegionOptStatus', 'listRegions'):
        account_urls.url_paths['{0}/%s$' % path] = AccountResponse.dispatch

    def describe_regions(self):
        self.error_on_dryrun()
        backend = self.ec2_backend
        opted = _opted_in(backend.account_id, self.partition)
        all_regions = str(self._get_param('AllRegions', False)).lower() == 'true'
        names = set(self._get_param('RegionNames', []) or ())
        filters = self._filters_from_querystring() or {}
        out = []
        for name, default in _region_catalogue(self.partition):
            status = ('opt-in-not-required' if default else
                      'opted-in' if name in opted else 'not-opted-in')
            if names and name not in names:
                continue
            if not (all_regions or names) and status == 'not-opted-in':
                continue
            if 'opt-in-status' in filters and status not in filters['opt-in-status']:
                continue
            if 'region-name' in filters and name not in filters['region-name']:
                continue
            suffix = '.amazonaws.com.cn' if self.partition == 'aws-cn' else '.amazonaws.com'
            out.append(Region(name, f'ec2.{name}{suffix}', status))
        return ActionResult({'Regions': out})

    AvailabilityZonesAndRegions.describe_regions = describe_regions


def faster_accounts():
    import datetime as dt
    import json

    from moto.iam import models as iam_models

    def get_account_id_from(access_key):
        # moto's version indexes every partition of every account, which
        # creates (and fills) an IAM backend for each; a key can only be in
        # a backend that exists.
        for account_id, account in list(iam_models.iam_backends.items()):
            for partition in list(account.keys()):
                if access_key in account[partition].access_keys:
                    return account_id
        return iam_models.DEFAULT_ACCOUNT_ID

    iam_models.get_account_id_from = get_account_id_from

    parsed = []

    def managed_policy_data():
        if not parsed:
            for name, d in json.loads(iam_models.aws_managed_policies_data).items():
                parsed.append((name, d.get('DefaultVersionId'), d.get('Path'),
                               json.dumps(d.get('Document')),
                               dt.datetime.fromisoformat(d['CreateDate']),
                               dt.datetime.fromisoformat(d['UpdateDate'])))
        return parsed

    def init_aws_policies(self):
        if not iam_models.load_iam_aws_managed_policies():
            return []
        return [iam_models.AWSManagedPolicy(
                    name, account_id=self.account_id, region=self.region_name,
                    default_version_id=version, path=path, document=document,
                    create_date=created, update_date=updated)
                for name, version, path, document, created, updated in managed_policy_data()]

    iam_models.IAMBackend._init_aws_policies = init_aws_policies


def faster_dispatch():
    import functools

    from moto import backends
    from moto.core import responses

    # a class's functions and moto's folders do not change while the server runs
    responses.method_names_from_class = functools.lru_cache(maxsize=None)(
        responses.method_names_from_class)
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


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


def s3_versioning_suspended():
    from moto.s3.models import FakeDeleteMarker, S3Backend

    put_object = S3Backend.put_object
    delete_object = S3Backend.delete_object

    def suspended(backend, bucket_name):
        bucket = backend.get_bucket(bucket_name)
        return bucket if getattr(bucket, 'versioning_status', None) == 'Suspended' else None

    def kept(versions):
        return [v for v in versions if str(v.version_id) != 'null']

    def put_object_ext(self, bucket_name, key_name, *args, **kwargs):
        bucket = suspended(self, bucket_name)
        earlier = kept(bucket.keys.getlist(key_name, [])) if bucket else []
        new_key = put_object(self, bucket_name, key_name, *args, **kwargs)
        if earlier:
            bucket.keys.setlist(key_name, earlier + bucket.keys.getlist(key_name, []))
        return new_key

    def delete_object_ext(self, bucket_name, key_name, version_id=None, bypass=False):
        bucket = suspended(self, bucket_name)
        existing = bucket.keys.getlist(key_name, []) if bucket and version_id is None else []
        if not existing:
            return delete_object(self, bucket_name, key_name, version_id=version_id,
                                 bypass=bypass)
        marker = FakeDeleteMarker(key=existing[-1])
        marker._version_id = 'null'
        bucket.keys.setlist(key_name, kept(existing) + [marker])
        return True, {'version-id': 'null', 'delete-marker': 'true'}

    S3Backend.put_object = put_object_ext
    S3Backend.delete_object = delete_object_ext


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


def event_history():
    from custodian_ext_dev.emulator import event_history as history
    history.apply()


def securityhub_findings():
    from custodian_ext_dev.emulator import securityhub
    securityhub.apply()


def activity_services():
    from custodian_ext_dev.emulator import attack_apis, deny, trail_logs
    attack_apis.apply()
    deny.apply()
    trail_logs.apply()  # outside deny: a refused S3 object call is a data event too


def iam_enforcement():
    from custodian_ext_dev.emulator import iam_auth
    iam_auth.apply()


def api_calls():
    from custodian_ext_dev.emulator import calls
    calls.apply()


def identity_services():
    from custodian_ext_dev.emulator import services
    services.login_profiles()
    services.cloudtrail_selectors()
    services.policy_update_date()
    services.leave_organization()
    services.trusted_advisor_basic_plan()
    services.roles_anywhere()


EXTENSIONS = [
    root_access_keys,
    s3_versions_key_marker,
    s3_versioning_suspended,
    ec2_duplicate_instance_ids,
    service_specific_credentials,
    snapshot_permission_structure,
    snapshot_owner_ids,
    ecs_created_at,
    lambda_last_modified,
    lambda_foreign_layers,
    route53domains_tags,
    lightsail,
    assume_role_requires_role,
    region_opt_in,
    faster_accounts,
    faster_dispatch,
    event_history,
    identity_services,
    securityhub_findings,
    activity_services,
    iam_enforcement,  # outside the extensions that answer requests themselves
    api_calls,  # last: the outermost entry point, it sees every request
]


def apply():
    global _APPLIED
    if _APPLIED:
        return
    _APPLIED = True
    for ext in EXTENSIONS:
        ext()
