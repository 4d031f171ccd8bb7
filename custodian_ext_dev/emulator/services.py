"""APIs moto 5.2 lacks that the identity checks (R3.2, R4.2, R4.3) call, for the emulator.

Each follows AWS's documented behaviour:

- Console passwords (login profiles): ``GetLoginProfile``'s ``CreateDate`` is
  when the login profile was created, and the credential report's
  ``password_last_changed`` when the password was last set (CreateLoginProfile,
  UpdateLoginProfile), ``N/A`` without a password; its access key columns give
  the region and service of the key's last use. moto uses the user's creation
  date for both, and ``not_supported`` for the last-use region and service.
- IAM managed policies: ``UpdateDate`` is when the newest policy version was
  created (moto keeps the creation date).
- CloudTrail ``PutEventSelectors``: basic selectors replace a trail's advanced
  selectors, as AWS documents (moto keeps the advanced ones).
- ``organizations:LeaveOrganization``: a member account leaves its
  organization (it disappears from the management account's ListAccounts and
  its DescribeOrganization then fails with AWSOrganizationsNotInUseException);
  the management account gets ConstraintViolationException, an account outside
  any organization AWSOrganizationsNotInUseException.
- ``organizations:ListAccounts`` from a member account: the organization's
  accounts for a delegated administrator, AccessDeniedException for any other
  member (moto answers with an empty list).
- ``support:DescribeTrustedAdvisorCheckResult``: emulated accounts have the
  Basic support plan, so the call fails with SubscriptionRequiredException, as
  the AWS Support API does without a Business or Enterprise plan.
- IAM Roles Anywhere trust anchors (``rolesanywhere`` CreateTrustAnchor,
  ListTrustAnchors with pageSize/nextToken, GetTrustAnchor, DeleteTrustAnchor),
  per account and region. moto has no such service at all, so requests signed
  for ``rolesanywhere`` are answered here before moto's dispatcher sees them.
  They are recorded in the event history like any other call.
"""
import base64
import datetime
import json
import re
import threading
import uuid

_APPLIED = False
_lock = threading.Lock()
_TRUST_ANCHORS = {}  # (account, region) -> {id: detail}


def leave_organization():
    from moto.organizations.exceptions import (
        AWSOrganizationsNotInUseException, ConstraintViolationException)
    from moto.organizations.models import organizations_backends
    from moto.organizations.responses import OrganizationsResponse

    def leave(self):
        backend = self.organizations_backend
        account_id = backend.account_id
        if backend.org is not None:
            raise ConstraintViolationException(
                'You cannot remove the management account from its organization.')
        if account_id not in organizations_backends.master_accounts:
            raise AWSOrganizationsNotInUseException()
        master_id, partition = organizations_backends.master_accounts[account_id]
        organizations_backends[master_id][partition].remove_account_from_organization(
            AccountId=account_id)
        return '{}'

    OrganizationsResponse.leave_organization = leave

    list_accounts = OrganizationsResponse.list_accounts

    def list_accounts_member_aware(self):
        backend = self.organizations_backend
        account_id = backend.account_id
        if backend.org is None and account_id in organizations_backends.master_accounts:
            master_id, partition = organizations_backends.master_accounts[account_id]
            master = organizations_backends[master_id][partition]
            if not any(a.account.id == account_id for a in master.admins):
                from moto.core.exceptions import JsonRESTError
                raise JsonRESTError(
                    'AccessDeniedException',
                    "You don't have permissions to access this resource.")
            # A delegated administrator reads the organization's list.
            self.current_account = master_id
            try:
                return list_accounts(self)
            finally:
                self.current_account = account_id
        return list_accounts(self)

    OrganizationsResponse.list_accounts = list_accounts_member_aware


def trusted_advisor_basic_plan():
    from moto.core.exceptions import JsonRESTError
    from moto.support.responses import SupportResponse

    def describe_trusted_advisor_check_result(self):
        raise JsonRESTError(
            'SubscriptionRequiredException',
            'AWS Premium Support Subscription is required to use this service.')

    SupportResponse.describe_trusted_advisor_check_result = describe_trusted_advisor_check_result


# -- IAM Roles Anywhere ------------------------------------------------------------

AUTH_SCOPE = re.compile(r'Credential=([^/,\s]+)/\d{8}/([^/]+)/rolesanywhere/aws4_request')


def _json(start_response, status, body):
    data = json.dumps(body, default=_iso).encode()
    start_response(status, [('Content-Type', 'application/json'),
                            ('Content-Length', str(len(data))),
                            ('x-amzn-RequestId', str(uuid.uuid4()))])
    return [data]


def _iso(value):
    if isinstance(value, datetime.datetime):
        return value.strftime('%Y-%m-%dT%H:%M:%S.%fZ')
    raise TypeError(value)


def _error(start_response, status, code, message):
    data = json.dumps({'message': message}).encode()
    start_response(status, [('Content-Type', 'application/json'),
                            ('Content-Length', str(len(data))),
                            ('x-amzn-ErrorType', code)])
    return [data]


def roles_anywhere_app(environ, start_response, access_key, region):
    """A WSGI handler for the Roles Anywhere trust-anchor API."""
    from urllib.parse import parse_qs
    from moto.iam.models import get_account_id_from
    from custodian_ext_dev.emulator import event_history

    account_id = get_account_id_from(access_key)
    method = environ['REQUEST_METHOD']
    path = environ.get('PATH_INFO', '')
    query = {k: v[0] for k, v in parse_qs(environ.get('QUERY_STRING', '')).items()}
    length = int(environ.get('CONTENT_LENGTH') or 0)
    raw = environ['wsgi.input'].read(length) if length else b''
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        return _error(start_response, '400 Bad Request', 'ValidationException', 'Invalid JSON')
    with _lock:
        anchors = _TRUST_ANCHORS.setdefault((account_id, region), {})
    m = re.match(r'^/trustanchor/([^/]+)$', path)
    action, status, result, params = None, '200 OK', None, dict(body, **query)
    if method == 'POST' and path == '/trustanchors':
        action, status = 'CreateTrustAnchor', '201 Created'
        if not body.get('name') or not isinstance(body.get('source'), dict):
            result = ('400 Bad Request', 'ValidationException', 'name and source are required')
        else:
            now = datetime.datetime.now(datetime.timezone.utc)
            tid = str(uuid.uuid4())
            detail = {
                'trustAnchorId': tid,
                'trustAnchorArn': f'arn:aws:rolesanywhere:{region}:{account_id}:trust-anchor/{tid}',
                'name': body['name'], 'source': body['source'],
                'enabled': bool(body.get('enabled', False)),
                'crlDpRevocationEnabled': bool(body.get('crlDpRevocationEnabled', False)),
                'createdAt': now, 'updatedAt': now, 'notificationSettings': []}
            anchors[tid] = detail
            result = {'trustAnchor': detail}
    elif method == 'GET' and path == '/trustanchors':
        action = 'ListTrustAnchors'
        items = sorted(anchors.values(), key=lambda a: (a['createdAt'], a['trustAnchorId']))
        try:
            size = int(query.get('pageSize', 50))
            start = (int(base64.b64decode(query['nextToken']).decode())
                     if 'nextToken' in query else 0)
        except ValueError:
            result = ('400 Bad Request', 'ValidationException', 'invalid pageSize or nextToken')
        else:
            if not 1 <= size <= 50:
                result = ('400 Bad Request', 'ValidationException', 'pageSize must be 1-50')
            else:
                result = {'trustAnchors': items[start:start + size]}
                if start + size < len(items):
                    result['nextToken'] = base64.b64encode(str(start + size).encode()).decode()
    elif m and method in ('GET', 'DELETE'):
        action = 'GetTrustAnchor' if method == 'GET' else 'DeleteTrustAnchor'
        tid = m.group(1)
        if tid not in anchors:
            result = ('404 Not Found', 'ResourceNotFoundException', 'Resource not found')
        else:
            result = {'trustAnchor': anchors[tid] if method == 'GET' else anchors.pop(tid)}
    else:
        return _error(start_response, '404 Not Found', 'UnknownOperationException',
                      f'{method} {path} is not emulated')

    failed = isinstance(result, tuple)

    class _Req:
        headers = {k[5:].replace('_', '-').title(): v
                   for k, v in environ.items() if k.startswith('HTTP_')}
        remote_addr = environ.get('REMOTE_ADDR')

    event_history.record_event(
        account_id=account_id, region=region, service='rolesanywhere',
        usage_namespace='rolesanywhere', event_source='rolesanywhere.amazonaws.com',
        action=action, access_key=access_key, partition='aws', request=_Req(),
        params=params, status=int(result[0].split()[0]) if failed else int(status.split()[0]),
        body=json.dumps({'__type': result[1]}) if failed else json.dumps(result, default=_iso))
    if failed:
        return _error(start_response, *result)
    return _json(start_response, status, result)


def roles_anywhere():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    dispatch = DomainDispatcherApplication.__call__

    def call(self, environ, start_response):
        m = AUTH_SCOPE.search(environ.get('HTTP_AUTHORIZATION', ''))
        if m:
            return roles_anywhere_app(environ, start_response, m.group(1), m.group(2))
        return dispatch(self, environ, start_response)

    DomainDispatcherApplication.__call__ = call

    # /moto-api/reset empties moto's backends; empty these with them.
    from moto.core.base_backend import BaseBackend  # noqa: F401
    from moto.moto_api._internal.models import moto_api_backend
    reset = moto_api_backend.reset

    def reset_all(*a, **kw):
        with _lock:
            _TRUST_ANCHORS.clear()
        return reset(*a, **kw)

    moto_api_backend.reset = reset_all


# -- IAM console passwords ------------------------------------------------------------

def login_profiles():
    import csv
    import io
    from moto.core.utils import utcnow
    from moto.iam.models import IAMBackend, User
    from moto.iam.responses import IamResponse

    create = IAMBackend.create_login_profile
    update = IAMBackend.update_login_profile

    def create_login_profile(self, user_name, password):
        user = create(self, user_name, password)
        user._ext_login_profile_created = user._ext_password_changed = utcnow()
        return user

    def update_login_profile(self, user_name, password, password_reset_required):
        user = update(self, user_name, password, password_reset_required)
        if password:
            user._ext_password_changed = utcnow()
        return user

    IAMBackend.create_login_profile = create_login_profile
    IAMBackend.update_login_profile = update_login_profile

    get_login_profile = IamResponse.get_login_profile

    def get_login_profile_ext(self):
        result = get_login_profile(self)
        user = self.backend.get_login_profile(self._get_param('UserName'))
        created = getattr(user, '_ext_login_profile_created', None)
        if created is not None:
            result.result['LoginProfile']['CreateDate'] = created
        return result

    IamResponse.get_login_profile = get_login_profile_ext

    to_csv = User.to_csv
    fmt = '%Y-%m-%dT%H:%M:%S+00:00'

    def to_csv_ext(self):
        row = next(csv.reader(io.StringIO(to_csv(self))))
        changed = getattr(self, '_ext_password_changed', None)
        row[5] = changed.strftime(fmt) if (self.password and changed) else (
            row[5] if self.password else 'N/A')
        for i, key in ((11, 0), (16, 1)):
            if len(self.access_keys) > key and self.access_keys[key].last_used:
                used = self.access_keys[key].last_used
                row[i], row[i + 1] = used.region, used.service
            elif row[i] == 'not_supported':
                row[i] = row[i + 1] = 'N/A'
        return ','.join(row) + '\n'

    User.to_csv = to_csv_ext


def cloudtrail_selectors():
    from moto.cloudtrail.models import Trail

    put = Trail.put_event_selectors

    def put_event_selectors(self, event_selectors, advanced_event_selectors):
        put(self, event_selectors, advanced_event_selectors)
        if event_selectors:
            self.advanced_event_selectors = []

    Trail.put_event_selectors = put_event_selectors


def policy_update_date():
    from moto.core.utils import utcnow
    from moto.iam.models import IAMBackend

    create = IAMBackend.create_policy_version

    def create_policy_version(self, policy_arn, policy_document, set_as_default):
        version = create(self, policy_arn, policy_document, set_as_default)
        self.get_policy(policy_arn).update_date = utcnow()
        return version

    IAMBackend.create_policy_version = create_policy_version
