"""Explicit denies in an IAM user's own policies, for the emulator.

AWS evaluates every request against the caller's policies, and an explicit
``Deny`` always wins. moto evaluates nothing (unless started with
``INITIAL_NO_AUTH_ACTION_COUNT``, which brings problems of its own, see
DESIGN.md). The one case the pack's scenarios need is the quarantine AWS puts
on a user whose key leaked: ``AWSCompromisedKeyQuarantineV2`` denies
``iam:CreateUser``, ``ec2:RunInstances`` and more, and an attacker holding
the key meets a burst of ``AccessDenied``.

So, for a request signed with an IAM user's long-term access key, the
``Deny`` statements without ``Condition`` of the policies attached to the
user (managed and inline) and to its groups are evaluated: when one names
the action (``Action`` patterns with ``*`` and ``?``, case-insensitive, or
``NotAction``) and its ``Resource`` is ``*``, the request is refused with the
error AWS sends for the service's protocol (``AccessDenied`` for query and
REST-XML APIs, ``UnauthorizedOperation`` for EC2, ``AccessDeniedException``
for JSON APIs), and recorded in the event history as a failed call. Allow
statements are not evaluated: what is not explicitly denied is served.
"""
import fnmatch
import json
import re
import urllib.parse
import uuid
from types import SimpleNamespace

from custodian_ext_dev.emulator import calls, event_history

_CREDENTIAL = re.compile(r'Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request')
# Signing names whose IAM action prefix differs.
ACTION_PREFIX = {'monitoring': 'cloudwatch', 'email': 'ses', 'execute-api': 'execute-api'}
# S3 operations whose IAM action has another name.
S3_ACTIONS = {'ListBuckets': 'ListAllMyBuckets', 'ListObjectsV2': 'ListBucket',
              'ListObjects': 'ListBucket', 'HeadBucket': 'ListBucket',
              'DeleteObjects': 'DeleteObject', 'HeadObject': 'GetObject',
              'PutBucketLifecycleConfiguration': 'PutLifecycleConfiguration',
              'ListObjectVersions': 'ListBucketVersions'}
_APPLIED = False


def _default_document(policy):
    for version in getattr(policy, 'versions', ()):
        if getattr(version, 'is_default', False):
            return version.document
    return getattr(policy, 'document', None)


def _documents(user, backend):
    for policy in user.managed_policies.values():
        yield _default_document(policy)
    yield from user.policies.values()
    for group in backend.get_groups_for_user(user.name):
        for policy in group.managed_policies.values():
            yield _default_document(policy)
        yield from group.policies.values()


def _as_list(value):
    return value if isinstance(value, list) else [value] if value is not None else []


def _matches(patterns, action):
    return any(fnmatch.fnmatchcase(action.lower(), str(p).lower()) for p in patterns)


def denying_statement(user, backend, action):
    """The first explicit Deny (without Condition, on Resource ``*``) naming ``action``."""
    for document in _documents(user, backend):
        try:
            doc = json.loads(document) if isinstance(document, str) else document
        except ValueError:
            continue
        for st in _as_list((doc or {}).get('Statement')):
            if not isinstance(st, dict) or st.get('Effect') != 'Deny' or st.get('Condition'):
                continue
            if '*' not in _as_list(st.get('Resource')):
                continue
            if 'Action' in st and _matches(_as_list(st['Action']), action):
                return st
            if 'NotAction' in st and not _matches(_as_list(st['NotAction']), action):
                return st
    return None


def iam_action(service, operation):
    if service == 's3':
        operation = S3_ACTIONS.get(operation, operation)
    return f'{ACTION_PREFIX.get(service, service)}:{operation}'


def access_denied(service, message):
    """(status, headers, body) of AWS's access-denied error for ``service``'s protocol."""
    request_id = str(uuid.uuid4())
    protocol = calls._protocol(service)
    if protocol == 'ec2':
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
                f'<Code>UnauthorizedOperation</Code><Message>{message}</Message></Error>'
                f'</Errors><RequestID>{request_id}</RequestID></Response>')
        return '403 Forbidden', [('Content-Type', 'text/xml')], body
    if protocol in ('json', 'rest-json'):
        body = json.dumps({'__type': 'AccessDeniedException', 'Message': message})
        return '403 Forbidden' if protocol == 'rest-json' else '400 Bad Request', [
            ('Content-Type', 'application/x-amz-json-1.1'), ('x-amzn-RequestId', request_id),
            ('x-amzn-ErrorType', 'AccessDeniedException')], body
    if protocol == 'rest-xml':
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                f'<Message>{message}</Message><RequestId>{request_id}</RequestId></Error>')
        return '403 Forbidden', [('Content-Type', 'application/xml')], body
    body = (f'<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>'
            f'<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>'
            f'</ErrorResponse>')
    return '403 Forbidden', [('Content-Type', 'text/xml')], body


def _params(environ, body):
    target = environ.get('HTTP_X_AMZ_TARGET')
    if target and body:
        try:
            return event_history._lower_keys(json.loads(body))
        except ValueError:
            return {}
    source = body.decode('utf-8', 'replace') if body else environ.get('QUERY_STRING', '')
    return {event_history.lower_camel(k): v[0] if len(v) == 1 else v
            for k, v in urllib.parse.parse_qs(source).items() if k not in ('Action', 'Version')}


def apply():
    global _APPLIED
    if _APPLIED:
        return
    _APPLIED = True
    import io

    from moto.iam.models import get_account_id_from, iam_backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    dispatch = DomainDispatcherApplication.__call__

    def call(self, environ, start_response):
        m = _CREDENTIAL.search(environ.get('HTTP_AUTHORIZATION') or '')
        if not m:
            return dispatch(self, environ, start_response)
        access_key, region, service = m.groups()
        if not access_key.startswith('AKIA'):
            return dispatch(self, environ, start_response)
        try:
            account_id = get_account_id_from(access_key)
            backend = iam_backends[account_id]['aws']
            key = backend.access_keys.get(access_key)
            user = backend.users.get(key.user_name) if key is not None and key.user_name else None
        except (KeyError, AttributeError):
            user = None
        if user is None:
            return dispatch(self, environ, start_response)
        length = int(environ.get('CONTENT_LENGTH') or 0)
        body = environ['wsgi.input'].read(length) if length else b''
        environ['wsgi.input'] = io.BytesIO(body)
        method, path = environ.get('REQUEST_METHOD', 'GET'), environ.get('PATH_INFO', '')
        query = environ.get('QUERY_STRING') or ''
        keys = tuple(sorted({q.split('=')[0] for q in query.split('&') if q}))
        op = calls.operation(service, method, path, keys, calls._hint(environ, body))
        action = iam_action(service, op)
        if op == '?' or denying_statement(user, backend, action) is None:
            return dispatch(self, environ, start_response)
        message = (f'User: {user.arn} is not authorized to perform: {action} on resource: * '
                   f'with an explicit deny in an identity-based policy')
        status, headers, text = access_denied(service, message)

        request = SimpleNamespace(
            headers={k[5:].replace('_', '-').title(): v
                     for k, v in environ.items() if k.startswith('HTTP_')},
            remote_addr=environ.get('REMOTE_ADDR'))
        if service == 's3':  # S3 calls are data events, recorded by trail_logs
            data = text.encode()
            start_response(status, headers + [('Content-Length', str(len(data)))])
            return [data]
        model = calls._model(service)
        source = (event_history.EVENT_SOURCES.get(model.endpoint_prefix) if model else None) or (
            f'{model.endpoint_prefix if model else service}.amazonaws.com')
        namespace = model.service_name if model else service
        event_history.record_event(
            account_id=account_id, region=region, service=namespace.replace('lambda', 'awslambda'),
            usage_namespace=namespace, event_source=source, action=op, access_key=access_key,
            partition='aws', request=request, params=_params(environ, body),
            status=int(status.split()[0]), body=text)
        data = text.encode()
        start_response(status, headers + [('Content-Length', str(len(data)))])
        return [data]

    DomainDispatcherApplication.__call__ = call
