"""APIs that replayed attacks call and moto 5.2 lacks or answers unlike AWS (activity review, #14).

Each follows AWS's documented behaviour, and each call is recorded in the
event history like any other:

- ``sts:GetSessionToken`` and ``sts:GetFederationToken`` hand out new
  temporary credentials (``ASIA...``) that act as the calling user (a session
  of the IAM user; a federated user ``arn:aws:sts::<account>:federated-user/<name>``
  whose session issuer is the user). moto answers both with one fixed example
  key that signs as nobody.
- ``ssm:StartSession``: a Session Manager session to an instance of the
  account (``SessionId``, ``TokenValue``, ``StreamUrl``);
  ``TargetNotConnected`` for an instance that does not exist.
- ``ses:GetAccountSendingEnabled``: ``Enabled: true``.
- AWS Health (``DescribeEvents``, ``DescribeAffectedEntities``, ...): emulated
  accounts have the Basic support plan, so the Health API answers
  ``SubscriptionRequiredException``, as it does without a Business, Enterprise
  On-Ramp or Enterprise plan.
"""
import json
import re
import uuid
from types import SimpleNamespace

_AUTH = re.compile(r'Credential=([^/,\s]+)/\d{8}/([^/]+)/health/aws4_request')


# -- STS session credentials ---------------------------------------------------------------

def _caller_user(response):
    """(account id, IAM user or None) of the request's signing key."""
    from moto.iam.models import iam_backends
    backend = iam_backends[response.current_account][response.partition]
    key = backend.access_keys.get(response.get_access_key())
    if key is None or not key.user_name:
        return response.current_account, None
    return response.current_account, backend.users.get(key.user_name)


def _session_key(response, kind, name=None):
    from moto.iam.models import iam_backends
    account_id, user = _caller_user(response)
    key = iam_backends[account_id][response.partition].create_temp_access_key()
    key._ext_session = {'type': kind, 'user': user.name if user else None, 'name': name}
    return key


def session_credentials():
    from moto.sts.responses import TokenResponse

    get_session_token = TokenResponse.get_session_token
    get_federation_token = TokenResponse.get_federation_token

    def swap(result, key):
        creds = result.result['Credentials']
        creds['AccessKeyId'] = key.access_key_id
        creds['SecretAccessKey'] = key.secret_access_key
        return result

    def get_session_token_ext(self):
        result = get_session_token(self)
        return swap(result, _session_key(self, 'session'))

    def get_federation_token_ext(self):
        result = get_federation_token(self)
        return swap(result, _session_key(self, 'federated', self._get_param('Name')))

    TokenResponse.get_session_token = get_session_token_ext
    TokenResponse.get_federation_token = get_federation_token_ext


def session_identity(account_id, key, partition='aws'):
    """CloudTrail ``userIdentity`` of a GetSessionToken / GetFederationToken key, or None."""
    ext = getattr(key, '_ext_session', None)
    if not ext:
        return None
    from moto.iam.models import iam_backends
    user = iam_backends[account_id][partition].users.get(ext['user']) if ext['user'] else None
    if user is not None:
        issuer = {'type': 'IAMUser', 'principalId': user.id, 'arn': user.arn,
                  'accountId': account_id, 'userName': user.name}
    else:
        issuer = {'type': 'Root', 'principalId': account_id,
                  'arn': f'arn:{partition}:iam::{account_id}:root', 'accountId': account_id}
    attributes = {'creationDate': key.create_date.strftime('%Y-%m-%dT%H:%M:%SZ'),
                  'mfaAuthenticated': 'false'}
    if ext['type'] == 'federated':
        return {'type': 'FederatedUser', 'principalId': f"{account_id}:{ext['name']}",
                'arn': f"arn:{partition}:sts::{account_id}:federated-user/{ext['name']}",
                'accountId': account_id, 'accessKeyId': key.access_key_id,
                'sessionContext': {'sessionIssuer': issuer, 'attributes': attributes}}
    return dict(issuer, accessKeyId=key.access_key_id, sessionContext={'attributes': attributes})


# -- Session Manager, SES ---------------------------------------------------------------------

def ssm_start_session():
    from moto.core.exceptions import JsonRESTError
    from moto.ec2.exceptions import InvalidInstanceIdError
    from moto.ec2.models import ec2_backends
    from moto.ssm.responses import SimpleSystemManagerResponse

    def start_session(self):
        target = self._get_param('Target')
        try:
            ec2_backends[self.current_account][self.region].get_instance(target)
        except InvalidInstanceIdError:
            raise JsonRESTError('TargetNotConnected', f'{target} is not connected.') from None
        session_id = f'{self._get_param("Reason") or "session"}-{uuid.uuid4().hex[:17]}'
        return json.dumps({
            'SessionId': session_id, 'TokenValue': uuid.uuid4().hex,
            'StreamUrl': f'wss://ssmmessages.{self.region}.amazonaws.com/v1/data-channel/'
                         f'{session_id}?role=publish_subscribe'})

    SimpleSystemManagerResponse.start_session = start_session


def ses_sending_enabled():
    from moto.core.responses import ActionResult
    from moto.ses.responses import EmailResponse

    def get_account_sending_enabled(self):
        return ActionResult({'Enabled': True})

    EmailResponse.get_account_sending_enabled = get_account_sending_enabled


# -- AWS Health ------------------------------------------------------------------------------

def health_basic_plan():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    from custodian_ext_dev.emulator import event_history

    dispatch = DomainDispatcherApplication.__call__

    def call(self, environ, start_response):
        m = _AUTH.search(environ.get('HTTP_AUTHORIZATION') or '')
        if not m:
            return dispatch(self, environ, start_response)
        from moto.iam.models import get_account_id_from
        access_key, region = m.groups()
        length = int(environ.get('CONTENT_LENGTH') or 0)
        raw = environ['wsgi.input'].read(length) if length else b''
        action = (environ.get('HTTP_X_AMZ_TARGET') or '').rsplit('.', 1)[-1] or 'Unknown'
        body = json.dumps({'__type': 'SubscriptionRequiredException',
                           'message': 'The AWS Health API requires a Business, Enterprise '
                                      'On-Ramp, or Enterprise Support plan.'})

        request = SimpleNamespace(
            headers={k[5:].replace('_', '-').title(): v
                     for k, v in environ.items() if k.startswith('HTTP_')},
            remote_addr=environ.get('REMOTE_ADDR'))
        try:
            params = event_history._lower_keys(json.loads(raw)) if raw else {}
        except ValueError:
            params = {}
        event_history.record_event(
            account_id=get_account_id_from(access_key), region=region, service='health',
            usage_namespace='health', event_source='health.amazonaws.com', action=action,
            access_key=access_key, partition='aws', request=request, params=params,
            status=400, body=body)
        data = body.encode()
        start_response('400 Bad Request', [('Content-Type', 'application/x-amz-json-1.1'),
                                           ('Content-Length', str(len(data))),
                                           ('x-amzn-RequestId', str(uuid.uuid4()))])
        return [data]

    DomainDispatcherApplication.__call__ = call


def apply():
    session_credentials()
    ssm_start_session()
    ses_sending_enabled()
    health_basic_plan()
