"""IAM enforcement in the emulator: moto's ``INITIAL_NO_AUTH_ACTION_COUNT``, made to behave as AWS.

moto checks each signed request against the caller's IAM policies once its
free requests are spent: the server's ``INITIAL_NO_AUTH_ACTION_COUNT``
(default: never), which ``POST /moto-api/reset-auth`` (body: a number) sets
again, restarting the count. moto 5.2.5's check has defects that make a
least-privilege test impossible: GET requests without a body fail
``SignatureDoesNotMatch`` even for an administrator; denials come back as an
XML ``AccessDenied`` to JSON services; actions are named from the signing name
(``tagging:``, ``monitoring:``) and several S3 reads as ``s3:ListBucket``;
action names match case-sensitively; a statement whose ``Condition`` is not met
denies even when it is an Allow; a role's trust policy must name the caller's
exact ARN (the account, its root or the role of a session are refused); and
requests the emulator's own extensions answer (Lightsail, Roles Anywhere)
are never checked.

This module replaces moto's check with one at the emulator's entry point,
keeping moto's switch and counter (``Emulator(iam_auth=...)`` /
``Emulator.enforce_iam()`` set them). Once enforcement is on, each request
signed with SigV4 (``Authorization: AWS4-HMAC-SHA256 ...``) is checked as AWS
does:

- the caller: the access key of an IAM user (active) or of a role session
  (``AssumeRole``; its session token must match). Any other key is refused
  with ``InvalidClientTokenId`` (S3: ``InvalidAccessKeyId``; EC2:
  ``AuthFailure``), as AWS refuses an unknown key;
- the signature: SigV4 recomputed over the request as sent (the raw path and
  query, the signed headers, the body): ``SignatureDoesNotMatch`` (S3 the
  same, EC2: ``AuthFailure``) if it differs;
- the action: ``<prefix>:<operation>``, with the operation named from the
  botocore service model (``Action``, ``X-Amz-Target``, or the REST
  operation whose method and URI template match) and the prefix and the names
  that differ taken from the pack's ``custodian_ext/data/permissions.yml``
  (AWS's Service Authorization Reference: ``tag:GetResources``,
  ``s3:GetReplicationConfiguration``, ``s3:GetObjectVersion`` for a GetObject
  with ``versionId``...). A ``CopyObject`` needs ``s3:PutObject`` on the
  target and ``s3:GetObject``/``s3:GetObjectVersion`` on the source;
- the caller's identity-based policies (a user's inline, attached and group
  policies; a role's inline and attached policies): an explicit ``Deny``
  wins, else an ``Allow`` is needed. ``Action``/``NotAction`` match
  case-insensitively with ``*`` and ``?``; ``Resource``/``NotResource`` match
  the request's resource ARN where the emulator knows it (S3 buckets and
  objects, the role of ``sts:AssumeRole``); for any other request only a
  statement with ``Resource: '*'`` applies. A statement whose ``Condition``
  is not met does not apply (it neither allows nor denies); conditions are
  evaluated for ``aws:PrincipalArn``, ``aws:PrincipalAccount``,
  ``aws:RequestedRegion``, ``aws:username``, ``sts:ExternalId`` and
  ``sts:RoleSessionName`` with the String*, Arn* and Bool operators
  (``...IfExists`` included); any other key is unknown, and its condition is
  not met;
- ``sts:AssumeRole``: the role (looked up in its own account, so across
  accounts too) must also trust the caller: a trust statement naming ``*``,
  the caller's account id or ``arn:aws:iam::<account>:root``, the caller's
  user ARN, or, for a role session, the role's ARN or the session's ARN;
- ``sts:GetCallerIdentity`` is always allowed, as in AWS.

A denied request gets the error AWS sends for the service's protocol, with
AWS's message ("User: <arn> is not authorized to perform: <action> [on
resource: <arn>] because no identity-based policy allows the <action>
action", or "... with an explicit deny in an identity-based policy"):
query APIs ``AccessDenied`` (HTTP 403), EC2 ``UnauthorizedOperation`` (403,
"You are not authorized to perform this operation. " first), JSON APIs
``AccessDeniedException`` (400), REST-JSON APIs ``AccessDeniedException``
(403, ``x-amzn-ErrorType``), S3 and other REST-XML APIs ``AccessDenied``
(403). Denied requests are not recorded in the emulated CloudTrail event
history (AWS records them with their error code).

Not emulated: resource-based policies (bucket, key, function and queue
policies), service control policies, permission boundaries, session
policies, the actions AWS also checks behind an operation (``iam:PassRole``
when a function or instance is given a role), unsigned (anonymous) requests
and presigned URLs, which pass unchecked.
"""
import fnmatch
import hashlib
import io
import json
import os
import re
import threading
import urllib.parse
import uuid
from functools import lru_cache

import yaml

_APPLIED = False
_lock = threading.Lock()
_CREDENTIAL = re.compile(r'Credential=([^/,\s]+)/([^/]+)/([^/]+)/([^/]+)/aws4_request')
# The pack's own table of IAM action names (read as a file: the emulator process does not
# import the pack).
DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    'custodian_ext', 'data', 'permissions.yml')
ALWAYS_ALLOWED = {'sts:GetCallerIdentity'}


class Refused(Exception):
    """An authentication or authorization failure: (code, message, status) per protocol."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind  # 'denied', 'invalid-key', 'invalid-token', 'signature'
        self.message = message


@lru_cache(maxsize=1)
def names():
    with open(DATA) as fh:
        return yaml.safe_load(fh)


def iam_prefix(signing_name):
    return names()['signing-names'].get(signing_name, signing_name)


# -- the request --------------------------------------------------------------------

class Request:
    """What the check needs from a WSGI request (the body read once, then put back)."""

    def __init__(self, environ):
        self.environ = environ
        m = _CREDENTIAL.search(environ.get('HTTP_AUTHORIZATION') or '')
        self.access_key, self.date, self.region, self.service = m.groups()
        length = int(environ.get('CONTENT_LENGTH') or 0)
        self.body = environ['wsgi.input'].read(length) if length else b''
        environ['wsgi.input'] = io.BytesIO(self.body)
        self.method = environ.get('REQUEST_METHOD', 'GET')
        self.path = environ.get('PATH_INFO', '') or '/'
        self.query = environ.get('QUERY_STRING') or ''
        self.params = urllib.parse.parse_qs(self.query, keep_blank_values=True)
        self.token = self.header('x-amz-security-token')

    def header(self, name):
        key = name.upper().replace('-', '_')
        if key in ('CONTENT_TYPE', 'CONTENT_LENGTH'):
            return self.environ.get(key)
        return self.environ.get('HTTP_' + key)

    def form(self):
        ctype = self.header('content-type') or ''
        if 'x-www-form-urlencoded' in ctype:
            return urllib.parse.parse_qs(self.body.decode('utf-8', 'replace'))
        return {}

    def param(self, name):
        for source in (self.params, self.form()):
            if name in source:
                return source[name][0]
        if self.header('x-amz-target'):
            try:
                return (json.loads(self.body or b'{}') or {}).get(name)
            except ValueError:
                return None
        return None

    @property
    def protocol(self):
        """The protocol the client used: decides the shape of an error."""
        if (self.header('smithy-protocol') or '') == 'rpc-v2-cbor':
            return 'cbor'
        if self.header('x-amz-target'):
            return 'json'
        from custodian_ext_dev.emulator.calls import _protocol
        return _protocol(self.service)


def operation(req):
    from custodian_ext_dev.emulator.calls import _hint
    from custodian_ext_dev.emulator.calls import operation as named
    keys = tuple(sorted({q.split('=')[0] for q in req.query.split('&') if q}))
    op = named(req.service, req.method, req.path, keys, _hint(req.environ, req.body))
    # S3 names a copy by its header alone: the URI templates are the same
    copy = bool(req.header('x-amz-copy-source'))
    if req.service == 's3' and op in ('PutObject', 'CopyObject'):
        op = 'CopyObject' if copy else 'PutObject'
    if req.service == 's3' and op in ('UploadPart', 'UploadPartCopy'):
        op = 'UploadPartCopy' if copy else 'UploadPart'
    if op == '?':
        # CBOR requests name the operation in the path: /service/<S>/operation/<Op>
        m = re.search(r'/operation/([A-Za-z0-9]+)$', req.path)
        if m:
            op = m.group(1)
    return op


def _s3_arn(bucket, key=None):
    return f'arn:aws:s3:::{bucket}/{key}' if key else f'arn:aws:s3:::{bucket}'


def actions(req, op):
    """[(action, resource ARN or None)] the request needs."""
    prefix = iam_prefix(req.service)
    data = names()
    versioned = 'versionId' in req.params
    name = op
    if versioned and op in (data.get('versioned') or {}).get(prefix, {}):
        name = data['versioned'][prefix][op]
    else:
        name = (data.get('renamed') or {}).get(prefix, {}).get(op, op)
    wanted = name if isinstance(name, list) else [name]
    resource = None
    if prefix == 's3':
        parts = urllib.parse.unquote(req.path).lstrip('/').split('/', 1)
        bucket = parts[0]
        key = parts[1] if len(parts) > 1 and parts[1] else None
        resource = _s3_arn(bucket, key) if bucket else None
        if op == 'CopyObject' or op == 'UploadPartCopy':
            source = urllib.parse.unquote(req.header('x-amz-copy-source') or '')
            source, _, qs = source.lstrip('/').partition('?')
            read = 'GetObjectVersion' if 'versionId=' in qs else 'GetObject'
            return [('s3:PutObject', resource), (f's3:{read}', 'arn:aws:s3:::' + source)]
    elif prefix == 'sts' and op == 'AssumeRole':
        resource = req.param('RoleArn')
    return [(f'{prefix}:{a}', resource) for a in wanted]


# -- the caller -------------------------------------------------------------------------

class Caller:
    def __init__(self, account_id, partition, arn, secret, token, policies, role=None,
                 username=None):
        self.account_id = account_id
        self.partition = partition
        self.arn = arn
        self.secret = secret
        self.token = token
        self.policies = policies  # [policy document (dict)]
        self.role = role          # the role ARN of a session
        self.username = username


def _document(doc):
    if isinstance(doc, dict):
        return doc
    try:
        return json.loads(doc)
    except ValueError:
        return json.loads(urllib.parse.unquote(doc))


def _managed(policy):
    version = next(v for v in policy.versions if v.is_default)
    return _document(version.document)


def _role_policies(role):
    return ([_document(d) for d in role.policies.values()] +
            [_managed(p) for p in role.managed_policies.values()])


def caller(req):
    from moto.iam.models import get_account_id_from, iam_backends
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition
    partition = get_partition(req.region)
    account_id = get_account_id_from(req.access_key)
    iam = iam_backends[account_id][partition]
    key = iam.access_keys.get(req.access_key)
    if key is None or getattr(key, 'status', 'Active') != 'Active':
        raise Refused('invalid-key', 'The security token included in the request is invalid.')
    role_arn = getattr(key, 'role_arn', None)
    if role_arn:
        session = next((s for s in sts_backends[account_id][partition].assumed_roles
                        if s.access_key_id == req.access_key), None)
        if session is None or req.token != session.session_token:
            raise Refused('invalid-token', 'The security token included in the request is '
                                           'invalid.')
        m = re.match(r'^arn:[^:]+:iam::(\d{12}):role/', role_arn)
        policies = []
        if m:
            try:
                role = iam_backends[m.group(1)][partition].get_role_by_arn(role_arn)
                policies = _role_policies(role)
            except Exception:  # noqa: BLE001  the role is gone: its sessions can do nothing
                policies = []
        return Caller(account_id, partition, session.arn, session.secret_access_key,
                      session.session_token, policies, role=role_arn)
    if req.token:
        raise Refused('invalid-token', 'The security token included in the request is invalid.')
    user = iam.get_user(key.user_name)
    policies = [_document(d) for d in user.policies.values()]
    policies += [_managed(p) for p in user.managed_policies.values()]
    for group in iam.get_groups_for_user(user.name):
        policies += [_document(d) for d in group.policies.values()]
        policies += [_managed(p) for p in group.managed_policies.values()]
    return Caller(account_id, partition, user.arn, key.secret_access_key, None, policies,
                  username=user.name)


# -- the signature ----------------------------------------------------------------------

def check_signature(req, who):
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    auth_header = req.environ.get('HTTP_AUTHORIZATION') or ''
    signed = re.search(r'SignedHeaders=([^,\s]+)', auth_header)
    given = re.search(r'Signature=([0-9a-f]+)', auth_header)
    if not signed or not given:
        raise Refused('signature', 'Authorization header is malformed.')
    headers = {}
    for name in signed.group(1).split(';'):
        value = req.header(name)
        if value is not None:
            headers[name] = value
    raw = req.environ.get('RAW_URI') or req.environ.get('REQUEST_URI') or (
        urllib.parse.quote(req.path) + ('?' + req.query if req.query else ''))
    url = f"http://{headers.get('host', 'localhost')}{raw}"
    request = AWSRequest(method=req.method, url=url, data=req.body, headers=headers)
    request.context['timestamp'] = headers.get('x-amz-date') or req.header('x-amz-date') or ''
    cls = S3SigV4Auth if req.service == 's3' else SigV4Auth
    signer = cls(Credentials(req.access_key, who.secret, who.token), req.service, req.region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != given.group(1):
        raise Refused('signature', 'The request signature we calculated does not match the '
                                   'signature you provided. Check your AWS Secret Access Key '
                                   'and signing method.')


# -- policy evaluation ---------------------------------------------------------------------

def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _glob(pattern, value, case=True):
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def _action_matches(statement, action):
    if 'NotAction' in statement:
        return not any(_glob(p, action, case=False) for p in _as_list(statement['NotAction']))
    return any(_glob(p, action, case=False) for p in _as_list(statement.get('Action')))


def _resource_matches(statement, resource):
    if 'NotResource' in statement:
        if resource is None:
            return False
        return not any(_glob(p, resource) for p in _as_list(statement['NotResource']))
    patterns = _as_list(statement.get('Resource'))
    if resource is None:
        return '*' in patterns
    return any(_glob(p, resource) for p in patterns)


def _condition_value_matches(operator, expected, actual):
    base = operator.removesuffix('IfExists')
    negate = 'Not' in base
    base = base.replace('Not', '')
    if base in ('StringEquals', 'ArnEquals'):
        hit = any(str(e) == actual for e in expected)
    elif base == 'StringEqualsIgnoreCase':
        hit = any(str(e).lower() == actual.lower() for e in expected)
    elif base in ('StringLike', 'ArnLike'):
        hit = any(_glob(str(e), actual) for e in expected)
    elif base == 'Bool':
        hit = any(str(e).lower() == actual.lower() for e in expected)
    else:
        return None  # an operator the emulator does not evaluate
    return not hit if negate else hit


def _conditions_met(statement, context):
    for operator, block in (statement.get('Condition') or {}).items():
        for key, expected in (block or {}).items():
            actual = context.get(key.lower())
            if actual is None:
                if operator.endswith('IfExists'):
                    continue
                return False
            result = _condition_value_matches(operator, _as_list(expected), actual)
            if not result:
                return False
    return True


def evaluate(policies, action, resource, context):
    """'allow', 'deny' (explicit) or 'implicit' (nothing allows it)."""
    allowed = False
    for doc in policies:
        for st in _as_list(doc.get('Statement')):
            if not _action_matches(st, action) or not _resource_matches(st, resource):
                continue
            if not _conditions_met(st, context):
                continue
            if st.get('Effect') == 'Deny':
                return 'deny'
            if st.get('Effect') == 'Allow':
                allowed = True
    return 'allow' if allowed else 'implicit'


def _principal_matches(statement, who):
    principal = statement.get('Principal')
    if principal == '*':
        return True
    aws = _as_list((principal or {}).get('AWS')) if isinstance(principal, dict) else []
    names = {who.arn, who.account_id, f'arn:{who.partition}:iam::{who.account_id}:root'}
    if who.role:
        names.add(who.role)
    return '*' in aws or any(p in names for p in aws)


def trusts(role, who, context):
    """Whether ``role``'s trust policy lets ``who`` assume it."""
    doc = _document(role.assume_role_policy_document)
    allowed = False
    for st in _as_list(doc.get('Statement')):
        if not _action_matches(st, 'sts:AssumeRole') or not _principal_matches(st, who):
            continue
        if not _conditions_met(st, context):
            continue
        if st.get('Effect') == 'Deny':
            return False
        if st.get('Effect') == 'Allow':
            allowed = True
    return allowed


def _context(req, who):
    ctx = {'aws:principalarn': who.role or who.arn, 'aws:principalaccount': who.account_id,
           'aws:requestedregion': req.region}
    if who.username:
        ctx['aws:username'] = who.username
    for key, param in (('sts:externalid', 'ExternalId'),
                       ('sts:rolesessionname', 'RoleSessionName')):
        value = req.param(param)
        if value is not None:
            ctx[key] = value
    return ctx


def _denied(who, action, resource, explicit):
    on = f' on resource: {resource}' if resource else ''
    why = ('with an explicit deny in an identity-based policy' if explicit else
           f'because no identity-based policy allows the {action} action')
    return Refused('denied', f'User: {who.arn} is not authorized to perform: {action}{on} {why}')


def authorize(req, who, op):
    context = _context(req, who)
    for action, resource in actions(req, op):
        if action in ALWAYS_ALLOWED:
            continue
        verdict = evaluate(who.policies, action, resource, context)
        if verdict != 'allow':
            raise _denied(who, action, resource, verdict == 'deny')
        if action == 'sts:AssumeRole' and resource:
            _check_trust(who, resource, context)


def _check_trust(who, role_arn, context):
    from moto.iam.models import iam_backends
    m = re.match(r'^arn:[^:]+:iam::(\d{12}):role/', role_arn)
    if not m or m.group(1) not in iam_backends:
        return  # moto's fresh accounts accept any role (see extensions.py)
    try:
        role = iam_backends[m.group(1)][who.partition].get_role_by_arn(role_arn)
    except Exception:  # noqa: BLE001  no such role: moto's AssumeRole accepts it
        return
    if not trusts(role, who, context):
        raise Refused('denied', f'User: {who.arn} is not authorized to perform: sts:AssumeRole '
                                f'on resource: {role_arn}')


# -- error responses, per protocol -------------------------------------------------------------

def _cbor(mapping):
    """A CBOR map of text strings (RFC 8949), for smithy-rpc-v2-cbor errors."""
    def head(major, n):
        if n < 24:
            return bytes([major << 5 | n])
        if n < 256:
            return bytes([major << 5 | 24, n])
        return bytes([major << 5 | 25]) + n.to_bytes(2, 'big')

    def text(s):
        b = s.encode()
        return head(3, len(b)) + b
    out = head(5, len(mapping))
    for k, v in mapping.items():
        out += text(k) + text(v)
    return out


CODES = {
    # kind -> (query/rest-xml code, ec2 code, json/rest-json code, S3 code, HTTP status)
    'denied': ('AccessDenied', 'UnauthorizedOperation', 'AccessDeniedException',
               'AccessDenied', 403),
    'invalid-key': ('InvalidClientTokenId', 'AuthFailure', 'UnrecognizedClientException',
                    'InvalidAccessKeyId', 403),
    'invalid-token': ('InvalidClientTokenId', 'AuthFailure', 'UnrecognizedClientException',
                      'InvalidToken', 400),
    'signature': ('SignatureDoesNotMatch', 'AuthFailure', 'InvalidSignatureException',
                  'SignatureDoesNotMatch', 403),
}


def error_response(req, refused):
    """(status line, headers, body bytes) of AWS's error for the request's protocol."""
    query_code, ec2_code, json_code, s3_code, status = CODES[refused.kind]
    request_id = str(uuid.uuid4())
    message = refused.message
    protocol = req.protocol
    reason = {400: 'Bad Request', 403: 'Forbidden'}
    if protocol == 'ec2':
        if refused.kind == 'denied':
            message = 'You are not authorized to perform this operation. ' + message
        if refused.kind != 'denied':
            status = 401
            reason[401] = 'Unauthorized'
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
                f'<Code>{ec2_code}</Code><Message>{_xml(message)}</Message></Error></Errors>'
                f'<RequestID>{request_id}</RequestID></Response>')
        return f'{status} {reason[status]}', [('Content-Type', 'text/xml;charset=UTF-8')], \
            body.encode()
    if protocol == 'json':
        status = 400
        ctype = 'application/x-amz-json-1.1'
        body = json.dumps({'__type': json_code, 'Message': message})
        return f'{status} {reason[status]}', [('Content-Type', ctype),
                                               ('x-amzn-RequestId', request_id)], body.encode()
    if protocol == 'cbor':
        status = 400
        return f'{status} {reason[status]}', [('Content-Type', 'application/cbor'),
                                               ('smithy-protocol', 'rpc-v2-cbor'),
                                               ('x-amzn-RequestId', request_id)], \
            _cbor({'__type': json_code, 'message': message})
    if protocol == 'rest-json':
        body = json.dumps({'Message': message})
        return f'{status} {reason[status]}', [('Content-Type', 'application/json'),
                                               ('x-amzn-ErrorType', json_code),
                                               ('x-amzn-RequestId', request_id)], body.encode()
    if req.service == 's3':
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{s3_code}</Code>'
                f'<Message>{_xml(message)}</Message><RequestId>{request_id}</RequestId>'
                f'<HostId>{hashlib.sha256(request_id.encode()).hexdigest()}</HostId></Error>')
        return f'{status} {reason[status]}', [('Content-Type', 'application/xml')], body.encode()
    body = (f'<ErrorResponse><Error><Type>Sender</Type><Code>{query_code}</Code>'
            f'<Message>{_xml(message)}</Message></Error><RequestId>{request_id}</RequestId>'
            f'</ErrorResponse>')
    return f'{status} {reason[status]}', [('Content-Type', 'text/xml')], body.encode()


def _xml(text):
    return (text.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')
            .replace('"', '&quot;'))


# -- wiring ------------------------------------------------------------------------------------

def _enforcing():
    """Whether this request is checked: moto's free requests are spent (counts them)."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    with _lock:
        if ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT:
            return True
        ActionAuthenticatorMixin.request_count += 1
        return False


def check(environ):
    """None if the request may go on, else (status, headers, body) to answer with."""
    if not (environ.get('HTTP_AUTHORIZATION') or '').startswith('AWS4-HMAC-SHA256'):
        return None
    if environ.get('PATH_INFO', '').startswith('/moto-api'):
        return None
    if not _enforcing():
        return None
    req = Request(environ)
    try:
        who = caller(req)
        check_signature(req, who)
        authorize(req, who, operation(req))
    except Refused as refused:
        return error_response(req, refused)
    return None


def apply():
    global _APPLIED
    if _APPLIED:
        return
    _APPLIED = True
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    # moto's own check is replaced by this one (it would run a second time, with its defects)
    def no_check(self, iam_request_cls, resource='*'):
        return None

    ActionAuthenticatorMixin._authenticate_and_authorize_action = no_check

    dispatch = DomainDispatcherApplication.__call__

    def call(self, environ, start_response):
        refused = check(environ)
        if refused is None:
            return dispatch(self, environ, start_response)
        status, headers, body = refused
        start_response(status, headers + [('Content-Length', str(len(body)))])
        return [body]

    DomainDispatcherApplication.__call__ = call
