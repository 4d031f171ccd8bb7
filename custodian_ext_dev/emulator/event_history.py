"""CloudTrail event history and IAM "last accessed" data for the emulator.

moto 5.2 serves neither ``cloudtrail:LookupEvents`` nor the IAM
service-last-accessed APIs. Both are views of who called which API when, so
this module records the management API calls the emulator actually serves
and answers both from that record, following AWS's documented behaviour:

- Every call moto serves through its normal request path is recorded as a
  CloudTrail management event in the account and region it was made in
  (IAM, Organizations, Route 53, CloudFront, the account, Cost Explorer and
  Support events in us-east-1, like AWS's global service events): event name,
  event source, ``userIdentity`` derived from the calling access key (IAM
  user, assumed role, root), source IP (the client's address, or the first
  ``X-Forwarded-For`` address so that a demo can play an attacker from a
  documentation-range IP), user agent, time, request parameters (passwords and
  secrets redacted, as CloudTrail does; EC2 user data is recorded as
  ``userData: <sensitiveDataRemoved>``, the form CloudTrail writes for
  ``ModifyInstanceAttribute`` and ``RunInstances``), response elements of write calls,
  error code of failed calls, and the resources named. The calls that hand
  out credentials (``AssumeRole*``, ``GetSessionToken``,
  ``GetFederationToken``) keep their response elements, as CloudTrail does:
  the new ``credentials.accessKeyId`` (the session token redacted), which is
  how a session is traced back to the key that made it. ``AssumeRole`` into
  another account is recorded in that account too, with ``userIdentity.type``
  ``AWSAccount``. Event sources are CloudTrail's, not the endpoint's
  (``bedrock.amazonaws.com`` for Bedrock Runtime, ``ses.amazonaws.com`` for
  SES), and request bodies CloudTrail does not log (a model invocation's
  prompt) are left out. Data events (Lambda Invoke, DynamoDB items, S3 object
  calls) are not management events: they are kept apart (``data_events_for``)
  and never served by ``LookupEvents``; only trail log files carry them
  (``custodian_ext_dev.emulator.trail_logs``). S3's management calls are not
  recorded (moto serves S3 outside the request path recorded here). The
  record keeps the newest ``MAX_EVENTS`` events per account and region.
- ``LookupEvents``: at most one lookup attribute (EventId, EventName,
  ReadOnly, Username, ResourceType, ResourceName, EventSource, AccessKeyId),
  StartTime/EndTime (default: the last 90 days), newest first, MaxResults up
  to 50, NextToken paging; the documented errors for bad input.
- ``GenerateServiceLastAccessedDetails`` / ``GetServiceLastAccessedDetails``:
  jobs complete at once; for a user, role, group (its members) or managed
  policy (the users, roles and groups it is attached to), the services the
  entity was seen calling, with ``LastAuthenticated``,
  ``LastAuthenticatedEntity``, ``LastAuthenticatedRegion`` and
  ``TotalAuthenticatedEntities``. Unlike AWS, services the entity is allowed
  but never used are not listed.
"""
import base64
import collections
import datetime
import json
import re
import threading
import uuid

MAX_EVENTS = 20000
HISTORY_DAYS = 90
GLOBAL_EVENT_SERVICES = {'iam', 'organizations', 'route53', 'cloudfront', 'account', 'ce',
                         'support', 'budgets'}
# Data events: CloudTrail logs them only on request, never in event history.
DATA_EVENTS = {
    'awslambda': {'Invoke', 'InvokeAsync', 'InvokeWithResponseStream'},
    'dynamodb': {'GetItem', 'PutItem', 'UpdateItem', 'DeleteItem', 'BatchGetItem',
                 'BatchWriteItem', 'Query', 'Scan', 'TransactGetItems', 'TransactWriteItems'},
}
NOT_RECORDED_SERVICES = {'s3', 'moto_api', 'instance_metadata', 's3control'}
READ_PREFIXES = ('Describe', 'List', 'Get', 'Lookup', 'Head', 'Search', 'BatchGet', 'Check',
                 'Validate', 'Preview', 'Simulate', 'Estimate', 'Test', 'View')
# STS calls that hand out credentials are read-only events in CloudTrail.
READ_ONLY_STS = {'AssumeRole', 'AssumeRoleWithSAML', 'AssumeRoleWithWebIdentity',
                 'GetFederationToken', 'GetSessionToken', 'GetCallerIdentity',
                 'GetAccessKeyInfo', 'DecodeAuthorizationMessage'}
# Values CloudTrail never logs (a secret's id is logged, its value is not).
SECRET_KEY = re.compile(
    r'(password|secretaccesskey|secretstring|secretbinary|sessiontoken|privatekey|^secret$)', re.I)
# STS calls that hand out credentials: CloudTrail keeps their responseElements.
CREDENTIAL_CALLS = {'AssumeRole', 'AssumeRoleWithSAML', 'AssumeRoleWithWebIdentity',
                    'GetFederationToken', 'GetSessionToken'}
# CloudTrail's event source where it is not <endpoint prefix>.amazonaws.com.
EVENT_SOURCES = {'bedrock-runtime': 'bedrock.amazonaws.com', 'email': 'ses.amazonaws.com'}
# Request bodies CloudTrail leaves out of requestParameters (URI parameters stay).
BODY_NOT_LOGGED = {'bedrock-runtime'}
LOOKUP_KEYS = ('EventId', 'EventName', 'ReadOnly', 'Username', 'ResourceType',
               'ResourceName', 'EventSource', 'AccessKeyId')

# Request parameters that name a resource, per service: (parameter, CloudTrail resource type).
RESOURCE_PARAMS = {
    'iam': [('userName', 'AWS::IAM::User'), ('roleName', 'AWS::IAM::Role'),
            ('groupName', 'AWS::IAM::Group'), ('policyArn', 'AWS::IAM::Policy'),
            ('accessKeyId', 'AWS::IAM::AccessKey'),
            ('instanceProfileName', 'AWS::IAM::InstanceProfile')],
    'sts': [('roleArn', 'AWS::IAM::Role')],
    'ec2': [('groupId', 'AWS::EC2::SecurityGroup'), ('keyName', 'AWS::EC2::KeyPair'),
            ('snapshotId', 'AWS::EC2::Snapshot'), ('imageId', 'AWS::EC2::Ami'),
            ('instanceId', 'AWS::EC2::Instance'), ('vpcId', 'AWS::EC2::VPC'),
            ('flowLogId', 'AWS::EC2::FlowLog'), ('volumeId', 'AWS::EC2::Volume')],
    'cloudtrail': [('name', 'AWS::CloudTrail::Trail'), ('trailName', 'AWS::CloudTrail::Trail')],
    'organizations': [('accountId', 'AWS::Organizations::Account')],
}
# Response elements that name the resource a call created.
RESPONSE_RESOURCES = {
    ('iam', 'CreateAccessKey'): [('accessKeyId', 'AWS::IAM::AccessKey')],
    ('iam', 'CreatePolicy'): [('arn', 'AWS::IAM::Policy')],
    ('ec2', 'CreateSnapshot'): [('snapshotId', 'AWS::EC2::Snapshot')],
    ('ec2', 'CreateSecurityGroup'): [('groupId', 'AWS::EC2::SecurityGroup')],
    ('ec2', 'RunInstances'): [('instanceId', 'AWS::EC2::Instance')],
    ('ec2', 'CreateVolume'): [('volumeId', 'AWS::EC2::Volume')],
    ('ec2', 'CreateImage'): [('imageId', 'AWS::EC2::Ami')],
}

_lock = threading.Lock()
_APPLIED = False


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def lower_camel(key):
    return '.'.join(p[:1].lower() + p[1:] if p and not p.isdigit() else p
                    for p in str(key).split('.'))


def _redact(value):
    if isinstance(value, dict):
        return {k: ('HIDDEN_DUE_TO_SECURITY_REASONS' if SECRET_KEY.search(str(k)) else _redact(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


SENSITIVE_REMOVED = '<sensitiveDataRemoved>'


def _ec2_user_data(params):
    """CloudTrail's form of EC2 user data in request parameters: present, content removed.

    The query forms ``UserData.Value=...`` (ModifyInstanceAttribute) and
    ``UserData=...`` (RunInstances) become ``userData``; with
    ``Attribute=userData`` the ``value`` is removed.
    """
    out = {}
    for k, v in params.items():
        if k == 'userData' or k.startswith('userData.'):
            out['userData'] = SENSITIVE_REMOVED
        else:
            out[k] = v
    if str(out.get('attribute', '')).lower() == 'userdata' and 'value' in out:
        out['value'] = SENSITIVE_REMOVED
    return out


def _lower_keys(value):
    if isinstance(value, dict):
        return {lower_camel(k): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


# -- storage --------------------------------------------------------------------

def _cloudtrail_backend(account_id, region):
    from moto.cloudtrail.models import cloudtrail_backends
    return cloudtrail_backends[account_id][region]


def events_for(account_id, region):
    """The recorded events of one account and region, oldest first (a deque)."""
    backend = _cloudtrail_backend(account_id, region)
    with _lock:
        return backend.__dict__.setdefault(
            '_ext_event_history', collections.deque(maxlen=MAX_EVENTS))


def _iam_backend(account_id, partition='aws'):
    from moto.iam.models import iam_backends
    return iam_backends[account_id][partition]


def _usage(account_id):
    """{principal arn: {service namespace: (time, region, entity arn)}} for an account."""
    backend = _iam_backend(account_id)
    with _lock:
        return backend.__dict__.setdefault('_ext_service_usage', {})


# -- who called -----------------------------------------------------------------

def identity(account_id, access_key, partition='aws'):
    """CloudTrail ``userIdentity`` for a request signed with ``access_key``."""
    iam = _iam_backend(account_id, partition)
    key = iam.access_keys.get(access_key)
    if key is not None and getattr(key, '_ext_session', None):
        from custodian_ext_dev.emulator.attack_apis import session_identity
        return session_identity(account_id, key, partition)
    if key is not None and getattr(key, 'role_arn', None):
        from moto.sts.models import sts_backends
        role_arn = key.role_arn
        role_name = role_arn.split('/')[-1]
        session = None
        for ar in reversed(sts_backends[account_id][partition].assumed_roles):
            if ar.access_key_id == access_key:
                session = ar
                break
        session_name = session.session_name if session else 'unknown'
        try:
            role_id = iam.get_role_by_arn(role_arn).id
        except Exception:
            role_id = 'AROA' + role_name.upper()[:17]
        return {
            'type': 'AssumedRole',
            'principalId': f'{role_id}:{session_name}',
            'arn': f'arn:{partition}:sts::{account_id}:assumed-role/{role_name}/{session_name}',
            'accountId': account_id,
            'accessKeyId': access_key,
            'sessionContext': {'sessionIssuer': {
                'type': 'Role', 'principalId': role_id, 'arn': role_arn,
                'accountId': account_id, 'userName': role_name}},
        }
    if key is not None and getattr(key, 'user_name', None):
        user = iam.users.get(key.user_name)
        return {
            'type': 'IAMUser',
            'principalId': user.id if user else key.user_name,
            'arn': user.arn if user else f'arn:{partition}:iam::{account_id}:user/{key.user_name}',
            'accountId': account_id,
            'accessKeyId': access_key,
            'userName': key.user_name,
        }
    # Not an IAM user's or a role session's key: the account's root user (the
    # emulator's default credentials, and root keys from the root-keys extension).
    return {
        'type': 'Root',
        'principalId': account_id,
        'arn': f'arn:{partition}:iam::{account_id}:root',
        'accountId': account_id,
        'accessKeyId': access_key,
    }


def username(ident):
    if ident.get('type') == 'IAMUser':
        return ident.get('userName')
    if ident.get('type') == 'FederatedUser':
        return ident['arn'].rsplit('/', 1)[-1]
    if ident.get('type') == 'AssumedRole':
        return ident['arn'].rsplit('/', 1)[-1]
    if ident.get('type') == 'Root':
        return 'root'
    return None


def _usage_principal(ident):
    if ident.get('type') == 'AssumedRole':
        return ident['sessionContext']['sessionIssuer']['arn']
    if ident.get('type') == 'IAMUser':
        return ident['arn']
    return None


# -- recording ------------------------------------------------------------------

def _request_parameters(resp):
    if (resp.boto3_service_name or '') in BODY_NOT_LOGGED:
        return {lower_camel(k): v for k, v in (getattr(resp, 'uri_match', None) or {}).items()}
    qs = resp.querystring or {}
    if isinstance(qs, dict) and qs.get('Action'):
        params = {}
        for k, v in qs.items():
            if k in ('Action', 'Version'):
                continue
            params[lower_camel(k)] = v[0] if isinstance(v, list) and len(v) == 1 else v
        return params
    body = resp.body
    if isinstance(body, bytes):
        try:
            body = body.decode('utf-8')
        except UnicodeDecodeError:
            body = None
    params = {}
    if isinstance(body, str) and body.lstrip().startswith('{'):
        try:
            loaded = json.loads(body)
            if isinstance(loaded, dict):
                params = _lower_keys(loaded)
        except ValueError:
            pass
    for k, v in (getattr(resp, 'uri_match', None) or {}).items():
        params.setdefault(lower_camel(k), v)
    return params


def _permission_items(params, prefixes):
    """EC2 query lists (UserId.1, Group.1, or LaunchPermission.Add.1.Group) as CloudTrail's
    ``{"items": [{"userId": ...}, {"group": ...}]}``."""
    items = []
    for k in sorted(params):
        for prefix in prefixes:
            if k.startswith(prefix) and k[len(prefix):].split('.')[0].isdigit():
                field = k.rsplit('.', 1)[-1] if k.count('.') > prefix.count('.') else \
                    prefix.rstrip('.').rsplit('.', 1)[-1]
                items.append({lower_camel(field): params[k]})
    return {'items': items}


def _nest(params):
    """Dotted EC2 query keys as CloudTrail's nesting: ``ipPermissions.1.ipRanges.1.cidrIp``
    -> ``{"ipPermissions": {"items": [{"ipRanges": {"items": [{"cidrIp": ...}]}}]}}``."""
    tree = {}
    for key, value in params.items():
        node, parts = tree, key.split('.')
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1]] = int(value) if parts[-1] in ('fromPort', 'toPort') \
                and str(value).lstrip('-').isdigit() else value

    def items(node):
        if not isinstance(node, dict):
            return node
        if node and all(k.isdigit() for k in node):
            return {'items': [items(node[k]) for k in sorted(node, key=int)]}
        return {k: items(v) for k, v in node.items()}
    return items(tree)


SECURITY_GROUP_RULE_CALLS = ('AuthorizeSecurityGroupIngress', 'AuthorizeSecurityGroupEgress',
                             'RevokeSecurityGroupIngress', 'RevokeSecurityGroupEgress')


def _cloudtrail_shape(action, params):
    """Request parameters of EC2 attribute and security group rule calls as CloudTrail writes
    them (AWS's records: ``"userData": "<sensitiveDataRemoved>"``, ``"createVolumePermission":
    {"add": {"items": [{"userId": ...}]}}``, ``"launchPermission": {"add": ...}}``,
    ``"ipPermissions": {"items": [{"ipRanges": {"items": [{"cidrIp": ...}]}}]}``), not as the
    query string moto parses."""
    if not isinstance(params, dict):
        return params
    if action in SECURITY_GROUP_RULE_CALLS:
        return _nest(params)
    if action == 'ModifyInstanceAttribute':
        out = {k: v for k, v in params.items() if '.' not in k}
        for k, v in params.items():
            if k.endswith('.value'):
                name = k[:-len('.value')]
                out[name] = '<sensitiveDataRemoved>' if name == 'userData' else {'value': v}
        return out  # the attribute form (attribute: userData, value): see _ec2_user_data
    if action in ('ModifySnapshotAttribute', 'ModifyImageAttribute'):
        attr = 'createVolumePermission' if action == 'ModifySnapshotAttribute' \
            else 'launchPermission'
        out = {k: v for k, v in params.items()
               if '.' not in k and k not in ('attribute', 'operationType')}
        perms = {}
        op = params.get('operationType')
        if op in ('add', 'remove'):
            found = _permission_items(params, ('userId.', 'group.'))
            if found['items']:
                perms[op] = found
        for verb in ('add', 'remove'):
            found = _permission_items(params, (f'{attr}.{verb.capitalize()}.',
                                               f'{attr}.{verb}.'))
            if found['items']:
                perms[verb] = found
        if perms:
            out[attr] = perms
            out['attributeType'] = 'CREATE_VOLUME_PERMISSION' \
                if action == 'ModifySnapshotAttribute' else 'launchPermission'
        return out
    return params


def _response_elements(body):
    if not body or len(body) > 65536:
        return None
    if isinstance(body, bytes):
        body = body.decode('utf-8', 'replace')
    body = body.strip()
    try:
        if body.startswith('{'):
            data = json.loads(body)
        elif body.startswith('<'):
            import xmltodict
            doc = xmltodict.parse(body)
            root = next(iter(doc.values())) if doc else {}
            if not isinstance(root, dict):
                return None
            result = [v for k, v in root.items() if k.endswith('Result')]
            data = result[0] if result else {k: v for k, v in root.items()
                                             if not k.startswith('@') and k != 'ResponseMetadata'}
        else:
            return None
    except Exception:
        return None
    return _redact(_lower_keys(data)) if isinstance(data, dict) else None


def _error_code(body):
    if isinstance(body, bytes):
        body = body.decode('utf-8', 'replace')
    body = body or ''
    m = re.search(r'<Code>([^<]+)</Code>', body)
    if m:
        return m.group(1)
    try:
        data = json.loads(body)
        code = data.get('__type') or data.get('code') or data.get('Code')
        return code.split('#')[-1] if code else 'Error'
    except (ValueError, AttributeError):
        return 'Error'


def _find_values(params, name):
    """Values of ``name``, ``name.N`` and ``name.member.N`` request parameters."""
    out = []
    for k, v in params.items():
        base = re.sub(r'(\.member)?\.\d+$', '', k)
        if base == name and isinstance(v, str):
            out.append(v)
        elif base == name and isinstance(v, list):
            out.extend(x for x in v if isinstance(x, str))
    return out


def _resources(service, action, params, response):
    found = []
    for name, rtype in RESOURCE_PARAMS.get(service, ()):
        for v in _find_values(params, name):
            found.append({'ResourceType': rtype, 'ResourceName': v})
    for name, rtype in RESPONSE_RESOURCES.get((service, action), ()):
        for v in _deep_values(response or {}, name):
            found.append({'ResourceType': rtype, 'ResourceName': v})
    seen, out = set(), []
    for r in found:
        key = (r['ResourceType'], r['ResourceName'])
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _deep_values(data, name):
    if isinstance(data, dict):
        for k, v in data.items():
            if k == name and isinstance(v, str):
                yield v
            else:
                yield from _deep_values(v, name)
    elif isinstance(data, list):
        for v in data:
            yield from _deep_values(v, name)


def _source_ip(request):
    forwarded = request.headers.get('X-Forwarded-For') if request is not None else None
    if forwarded:
        return forwarded.split(',')[0].strip()
    return getattr(request, 'remote_addr', None) or '127.0.0.1'


def _event_source(resp):
    try:
        from moto.core.utils import get_service_model
        prefix = get_service_model(resp.boto3_service_name).endpoint_prefix
    except Exception:
        prefix = resp.boto3_service_name or resp.service_name
    return EVENT_SOURCES.get(prefix) or f'{prefix}.amazonaws.com'


def is_read_only(service, action):
    if service == 'sts':
        return action in READ_ONLY_STS
    return action.startswith(READ_PREFIXES)


def record_call(resp, status, body):
    """Record one request moto served as a CloudTrail management event."""
    service = resp.service_name or ''
    if service in NOT_RECORDED_SERVICES:
        return
    try:
        action = resp._get_action()
    except Exception:
        return
    if not action:
        return
    if action in DATA_EVENTS.get(service, ()):
        record_data_event(
            account_id=resp.current_account, region=resp.region, event_source=_event_source(resp),
            action=action, access_key=resp.access_key,
            partition=getattr(resp, 'partition', 'aws') or 'aws',
            request=getattr(resp, 'normalized_request', None), params=_request_parameters(resp),
            status=status, body=body, read_only=False,
            resources=_data_resources(service, resp, _request_parameters(resp)))
        return
    record_event(
        account_id=resp.current_account, region=resp.region, service=service,
        usage_namespace=resp.boto3_service_name or service, event_source=_event_source(resp),
        action=action, access_key=resp.access_key,
        partition=getattr(resp, 'partition', 'aws') or 'aws',
        request=getattr(resp, 'normalized_request', None),
        params=_cloudtrail_shape(action, _request_parameters(resp)), status=status, body=body)


def record_event(account_id, region, service, usage_namespace, event_source, action,
                 access_key, partition, request, params, status, body):
    """Append one management event to the account's history in ``region``."""
    region = 'us-east-1' if service in GLOBAL_EVENT_SERVICES else region
    if service == 'ec2':
        params = _ec2_user_data(params)
    ident = identity(account_id, access_key, partition)
    read_only = is_read_only(service, action)
    ok = int(status) < 400
    keep_response = not read_only or (service == 'sts' and action in CREDENTIAL_CALLS)
    response = _response_elements(body) if ok and keep_response else None
    now = utcnow()
    event = _event(ident, now, event_source, action, region, request, params, read_only,
                   account_id, 'Management', responseElements=response)
    if not ok:
        event['errorCode'] = _error_code(body)
    resources = _resources(service, action, params, response)
    events_for(account_id, region).append({'time': now, 'event': event, 'resources': resources,
                                           'global': service in GLOBAL_EVENT_SERVICES})

    if ok:
        principal = _usage_principal(ident)
        if principal:
            _usage(account_id).setdefault(principal, {})[usage_namespace] = (
                now, region, ident['arn'] if ident['type'] == 'IAMUser' else principal)

    # AssumeRole into another account: that account records it too.
    if ok and service == 'sts' and action == 'AssumeRole':
        m = re.match(r'^arn:[^:]+:iam::(\d{12}):role/', params.get('roleArn') or '')
        if m and m.group(1) != account_id:
            target = m.group(1)
            other = dict(event, eventID=str(uuid.uuid4()), recipientAccountId=target,
                         userIdentity={'type': 'AWSAccount', 'principalId': ident['principalId'],
                                       'accountId': account_id})
            events_for(target, region).append(
                {'time': now, 'event': other, 'resources': resources})


# -- data events ------------------------------------------------------------------

def data_events_for(account_id, region):
    """The recorded data events of one account and region, oldest first (a deque)."""
    backend = _cloudtrail_backend(account_id, region)
    with _lock:
        return backend.__dict__.setdefault(
            '_ext_data_events', collections.deque(maxlen=MAX_EVENTS))


def _event(ident, now, event_source, action, region, request, params, read_only, account_id,
           category, **fields):
    """One CloudTrail record, as AWS writes it, for a management or a data event."""
    headers = getattr(request, 'headers', None) or {}
    event = {
        'eventVersion': '1.09',
        'userIdentity': ident,
        'eventTime': now.strftime('%Y-%m-%dT%H:%M:%SZ'),
        'eventSource': event_source,
        'eventName': action,
        'awsRegion': region,
        'sourceIPAddress': _source_ip(request),
        'userAgent': headers.get('User-Agent') or '',
        'requestParameters': _redact(params) or None,
        'requestID': str(uuid.uuid4()),
        'eventID': str(uuid.uuid4()),
        'readOnly': read_only,
    }
    event.update(fields)
    event.update({'eventType': 'AwsApiCall', 'managementEvent': category == 'Management',
                  'recipientAccountId': account_id, 'eventCategory': category})
    return event


def _data_resources(service, resp, params):
    if service == 'awslambda':
        name = params.get('functionName') or ''
        arn = name if name.startswith('arn:') else (
            f'arn:aws:lambda:{resp.region}:{resp.current_account}:function:{name}')
        return [{'accountId': resp.current_account, 'type': 'AWS::Lambda::Function', 'ARN': arn}]
    return []


def record_data_event(account_id, region, event_source, action, access_key, partition, request,
                      params, status, body, read_only, resources, owner=None):
    """Append one data event (CloudTrail's ``eventCategory: Data``) to the account's record.

    ``owner``: the account that owns the resource, when it is another one; AWS
    records the event in both accounts.
    """
    ident = identity(account_id, access_key, partition)
    now = utcnow()
    event = _event(ident, now, event_source, action, region, request, params, read_only,
                   account_id, 'Data', responseElements=None, resources=resources)
    if int(status) >= 400:
        event['errorCode'] = _error_code(body)
    entry = {'time': now, 'event': event, 'resources': [], 'global': False}
    data_events_for(account_id, region).append(entry)
    if owner and owner != account_id:
        other = dict(event, eventID=str(uuid.uuid4()), recipientAccountId=owner)
        data_events_for(owner, region).append(dict(entry, event=other))
    return event


# -- LookupEvents ---------------------------------------------------------------

def _error(code, message):
    from moto.core.exceptions import JsonRESTError
    return JsonRESTError(code, message)


def _as_time(value, name):
    if value is None:
        return None
    try:
        if isinstance(value, (int, float)) or re.match(r'^\d+(\.\d+)?$', str(value)):
            return datetime.datetime.fromtimestamp(float(value), datetime.timezone.utc)
        return datetime.datetime.fromisoformat(str(value).replace('Z', '+00:00'))
    except (ValueError, OverflowError):
        raise _error('InvalidTimeRangeException', f'{name} is not a valid time: {value!r}')


def _matches(entry, key, value):
    ev = entry['event']
    if key == 'EventId':
        return ev['eventID'] == value
    if key == 'EventName':
        return ev['eventName'] == value
    if key == 'ReadOnly':
        return str(ev['readOnly']).lower() == str(value).lower()
    if key == 'Username':
        return username(ev['userIdentity']) == value
    if key == 'ResourceType':
        return any(r['ResourceType'] == value for r in entry['resources'])
    if key == 'ResourceName':
        return any(r['ResourceName'] == value for r in entry['resources'])
    if key == 'EventSource':
        return ev['eventSource'] == value
    if key == 'AccessKeyId':
        return ev['userIdentity'].get('accessKeyId') == value
    return False


def _token(entry):
    return base64.urlsafe_b64encode(json.dumps(
        [entry['time'].isoformat(), entry['event']['eventID']]).encode()).decode()


def _untoken(token):
    try:
        t, eid = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
        return datetime.datetime.fromisoformat(t), eid
    except Exception:
        raise _error('InvalidNextTokenException', 'Invalid NextToken.')


def lookup_events(account_id, region, params):
    attrs = params.get('LookupAttributes') or []
    if len(attrs) > 1:
        raise _error('InvalidLookupAttributesException',
                     'You can specify only one lookup attribute.')
    for a in attrs:
        if a.get('AttributeKey') not in LOOKUP_KEYS:
            raise _error('InvalidLookupAttributesException',
                         f"Unsupported attribute key: {a.get('AttributeKey')}")
        if not a.get('AttributeValue'):
            raise _error('InvalidLookupAttributesException', 'AttributeValue is required.')
    max_results = params.get('MaxResults', 50)
    if not isinstance(max_results, int) or not 1 <= max_results <= 50:
        raise _error('InvalidMaxResultsException', 'MaxResults must be between 1 and 50.')
    now = utcnow()
    start = _as_time(params.get('StartTime'), 'StartTime')
    end = _as_time(params.get('EndTime'), 'EndTime') or now
    if start is not None and start > end:
        raise _error('InvalidTimeRangeException', 'StartTime is after EndTime.')
    oldest = now - datetime.timedelta(days=HISTORY_DAYS)
    start = max(start or oldest, oldest)
    if params.get('EventCategory') == 'insight':
        return {'Events': []}
    after = _untoken(params['NextToken']) if params.get('NextToken') else None

    entries = list(events_for(account_id, region))
    entries.sort(key=lambda e: (e['time'], e['event']['eventID']), reverse=True)
    page, next_token = [], None
    for e in entries:
        if after is not None and (e['time'], e['event']['eventID']) >= after:
            continue
        # CloudTrail shows event times in whole seconds.
        t = e['time'].replace(microsecond=0)
        if t < start.replace(microsecond=0) or t > end:
            continue
        if attrs and not _matches(e, attrs[0]['AttributeKey'], attrs[0]['AttributeValue']):
            continue
        if len(page) == max_results:
            next_token = _token(page[-1])
            break
        page.append(e)
    result = {'Events': [_lookup_row(e) for e in page]}
    if next_token:
        result['NextToken'] = next_token
    return result


def _lookup_row(entry):
    ev = entry['event']
    row = {
        'EventId': ev['eventID'],
        'EventName': ev['eventName'],
        'ReadOnly': 'true' if ev['readOnly'] else 'false',
        'EventTime': entry['time'].replace(microsecond=0),
        'EventSource': ev['eventSource'],
        'Resources': entry['resources'],
        'CloudTrailEvent': json.dumps(ev),
    }
    if ev['userIdentity'].get('accessKeyId'):
        row['AccessKeyId'] = ev['userIdentity']['accessKeyId']
    name = username(ev['userIdentity'])
    if name:
        row['Username'] = name
    return row


# -- service last accessed -------------------------------------------------------

def _jobs(account_id):
    backend = _iam_backend(account_id)
    with _lock:
        return backend.__dict__.setdefault('_ext_last_accessed_jobs', {})


def _entities_for(iam, arn):
    """The principal ARNs whose use counts for ``arn`` (user, role, group or policy)."""
    parts = arn.split(':', 5)
    if len(parts) < 6:
        return None
    resource = parts[5]
    if resource.startswith('user/'):
        return [u.arn for u in iam.users.values() if u.arn == arn] or None
    if resource.startswith('role/'):
        return [r.arn for r in iam.roles.values() if r.arn == arn] or None
    if resource.startswith('group/'):
        for g in iam.groups.values():
            if g.arn == arn:
                return [u.arn for u in g.users]
        return None
    if resource.startswith('policy/'):
        found = False
        out = []
        for coll in (iam.users.values(), iam.roles.values(), iam.groups.values()):
            for entity in coll:
                if arn in {p.arn for p in entity.managed_policies.values()}:
                    found = True
                    if hasattr(entity, 'users'):
                        out.extend(u.arn for u in entity.users)
                    else:
                        out.append(entity.arn)
        if not found and not any(p.arn == arn for p in iam.managed_policies.values()):
            return None
        return out
    return None


def generate_last_accessed(account_id, arn):
    from moto.iam.exceptions import NotFoundException
    iam = _iam_backend(account_id)
    entities = _entities_for(iam, arn)
    if entities is None:
        raise NotFoundException(f'The entity {arn} cannot be found.')
    usage = _usage(account_id)
    services = {}
    for entity in entities:
        for ns, (when, region, who) in usage.get(entity, {}).items():
            s = services.setdefault(ns, {'ServiceNamespace': ns, 'ServiceName': ns,
                                         'TotalAuthenticatedEntities': 0})
            s['TotalAuthenticatedEntities'] += 1
            if 'LastAuthenticated' not in s or when > s['LastAuthenticated']:
                s.update(LastAuthenticated=when, LastAuthenticatedRegion=region,
                         LastAuthenticatedEntity=who)
    job_id = str(uuid.uuid4())
    now = utcnow()
    _jobs(account_id)[job_id] = {
        'JobStatus': 'COMPLETED', 'JobType': 'SERVICE_LEVEL', 'JobCreationDate': now,
        'JobCompletionDate': now,
        'ServicesLastAccessed': sorted(services.values(), key=lambda s: s['ServiceNamespace']),
        'IsTruncated': False}
    return job_id


def get_last_accessed(account_id, job_id):
    from moto.iam.exceptions import NotFoundException
    job = _jobs(account_id).get(job_id)
    if job is None:
        raise NotFoundException(f'No job with id {job_id}.')
    return job


# -- wiring into moto --------------------------------------------------------------

def apply():
    global _APPLIED
    if _APPLIED:
        return
    _APPLIED = True
    from moto.cloudtrail.responses import CloudTrailResponse
    from moto.core.responses import ActionResult, BaseResponse
    from moto.iam.responses import IamResponse

    call_action = BaseResponse.call_action

    def call_action_recorded(self):
        result = call_action(self)
        try:
            status, _headers, body = result
            record_call(self, status, body)
        except Exception:  # never let the record break the call it records
            import logging
            logging.getLogger('custodian_ext_dev.emulator').exception('event history')
        return result

    BaseResponse.call_action = call_action_recorded

    def lookup_events_response(self):
        params = json.loads(self.body or '{}')
        return ActionResult(lookup_events(self.current_account, self.region, params))

    CloudTrailResponse.lookup_events = lookup_events_response

    def generate_service_last_accessed_details(self):
        job_id = generate_last_accessed(self.current_account, self._get_param('Arn'))
        return ActionResult({'JobId': job_id})

    def get_service_last_accessed_details(self):
        return ActionResult(get_last_accessed(self.current_account, self._get_param('JobId')))

    IamResponse.generate_service_last_accessed_details = generate_service_last_accessed_details
    IamResponse.get_service_last_accessed_details = get_service_last_accessed_details
