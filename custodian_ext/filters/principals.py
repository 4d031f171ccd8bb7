"""IAM principals: not on the known list (R4.1), holding administrator access (R4.2)."""
import fnmatch
import json
import urllib.parse

from c7n.exceptions import PolicyValidationError
from c7n.filters import Filter
from c7n.query import RetryPageIterator
from c7n.resources.iam import RoleCrossAccountAccess
from c7n.utils import get_partition
from c7n.utils import local_session, type_schema

from custodian_ext.filters.options import flatten
from custodian_ext.registry import register_filter
from custodian_ext.settings import PLACEHOLDER_SCHEMA, is_placeholder

# Roles AWS creates and manages: service-linked roles and IAM Identity Center
# (SSO) permission-set roles. An attacker cannot create roles on these paths.
AWS_MANAGED_ROLE_PATHS = ('/aws-service-role/', '/aws-reserved/')
# Roles AWS Organizations and Control Tower create in member accounts. Their
# trust is still checked by R4.2 (cross-account); here they are expected.
ORGANIZATION_ROLES = ('OrganizationAccountAccessRole', 'AWSControlTowerExecution')


def aws_managed_role(role):
    return (role.get('Path') or '/').startswith(AWS_MANAGED_ROLE_PATHS) or \
        role.get('RoleName') in ORGANIZATION_ROLES


@register_filter('unknown-principal', ['iam-user', 'iam-role'])
class UnknownPrincipal(Filter):
    """Users or roles whose name matches none of ``known`` (shell-style patterns) (R4.1).

    Roles AWS manages (service-linked roles, ``/aws-service-role/``; IAM
    Identity Center roles, ``/aws-reserved/``) and the roles Organizations and
    Control Tower create in member accounts (``OrganizationAccountAccessRole``,
    ``AWSControlTowerExecution``) are never unknown: nobody lists them, and
    they are not evidence of compromise. Their trust policies are still
    checked by R4.2. An empty ``known`` list makes every other principal
    unknown.

    :example:

    .. code-block:: yaml

        policies:
          - name: r4-1-unknown-iam-roles
            resource: aws.iam-role
            filters:
              - type: unknown-principal
                known: '{known_roles}'
    """

    schema = type_schema(
        'unknown-principal', required=['known'],
        known={'oneOf': [{'type': 'string'}, {'type': 'array', 'items': {
            'oneOf': [{'type': 'string'}, {'type': 'array', 'items': {'type': 'string'}}]}}]})
    schema_alias = False
    permissions = ()
    annotation_key = 'c7n:unknown-principal'

    def validate(self):
        v = self.data.get('known')
        if isinstance(v, str) and not is_placeholder(v):
            raise PolicyValidationError(
                f"{self.type}: known must be a list (or a {{variable}} holding one), got {v!r}")
        return self

    def process(self, resources, event=None):
        known = flatten(self.data['known'] if isinstance(self.data['known'], list)
                         else [self.data['known']])
        is_role = self.manager.type == 'iam-role'
        setting = 'known_roles' if is_role else 'known_users'
        results = []
        for r in resources:
            name = r['RoleName'] if is_role else r['UserName']
            if is_role and aws_managed_role(r):
                continue
            if any(fnmatch.fnmatchcase(name, p) for p in known):
                continue
            r[self.annotation_key] = f'{name} is not in {setting}'
            results.append(r)
        return results


def _as_document(doc):
    if isinstance(doc, str):
        doc = json.loads(urllib.parse.unquote(doc))
    return doc or {}


def allows_everything(doc):
    """The document has an unconditional Allow of every action on every resource."""
    statements = _as_document(doc).get('Statement', [])
    if isinstance(statements, dict):
        statements = [statements]
    for s in statements:
        if s.get('Effect') != 'Allow' or 'Condition' in s:
            continue
        action = s.get('Action')
        resource = s.get('Resource')
        action = [action] if isinstance(action, str) else (action or [])
        resource = [resource] if isinstance(resource, str) else (resource or [])
        if '*' in action and '*' in resource:
            return True
    return False


@register_filter('admin-access', ['iam-user', 'iam-role', 'iam-group'])
class AdminAccess(Filter):
    """Principals with administrator access (R4.2).

    Administrator access is the AWS-managed ``AdministratorAccess`` policy, or
    any managed or inline policy with an unconditional ``Allow`` of ``*`` on
    ``*``, attached to the principal or (for users) to one of its groups.
    ``c7n:admin-access`` names each source. Use it after a filter that narrows
    the principals (``CreateDate`` since the incident): it reads each
    principal's policies.

    :example:

    .. code-block:: yaml

        policies:
          - name: r4-2-new-admin-principals
            resource: aws.iam-user
            filters:
              - type: value
                key: CreateDate
                value_type: date
                op: gte
                value: '{incident_start}'
              - type: admin-access
    """

    schema = type_schema('admin-access')
    annotation_key = 'c7n:admin-access'

    def get_permissions(self):
        perms = ['iam:GetPolicy', 'iam:GetPolicyVersion']
        kind = {'iam-user': 'User', 'iam-role': 'Role', 'iam-group': 'Group'}[self.manager.type]
        perms += [f'iam:ListAttached{kind}Policies', f'iam:List{kind}Policies',
                  f'iam:Get{kind}Policy']
        if kind == 'User':
            perms += ['iam:ListGroupsForUser', 'iam:ListAttachedGroupPolicies',
                      'iam:ListGroupPolicies', 'iam:GetGroupPolicy']
        return perms

    def process(self, resources, event=None):
        self.client = local_session(self.manager.session_factory).client('iam')
        self.admin_arn = (f'arn:{get_partition(self.manager.config.region)}:iam::aws:policy/'
                          f'AdministratorAccess')
        self.managed_cache, self.group_cache = {}, {}
        results = []
        for r in resources:
            kind = {'iam-user': 'user', 'iam-role': 'role', 'iam-group': 'group'}[self.manager.type]
            name = r[{'user': 'UserName', 'role': 'RoleName', 'group': 'GroupName'}[kind]]
            sources = self.sources(kind, name)
            if kind == 'user':
                for group in self.paginate('list_groups_for_user', 'Groups', UserName=name):
                    gname = group['GroupName']
                    if gname not in self.group_cache:
                        self.group_cache[gname] = self.sources('group', gname)
                    sources += [dict(s, Via=f'group {gname}') for s in self.group_cache[gname]]
            if sources:
                r[self.annotation_key] = sources
                results.append(r)
        return results

    def paginate(self, op, key, **params):
        pager = self.client.get_paginator(op)
        pager.PAGE_ITERATOR_CLS = RetryPageIterator
        return pager.paginate(**params).build_full_result().get(key, [])

    def sources(self, kind, name):
        title = kind.capitalize()
        arg = {f'{title}Name': name}
        out = []
        for p in self.paginate(f'list_attached_{kind}_policies', 'AttachedPolicies', **arg):
            if self.managed_is_admin(p['PolicyArn']):
                out.append({'Source': 'managed policy', 'Policy': p['PolicyArn']})
        for pname in self.paginate(f'list_{kind}_policies', 'PolicyNames', **arg):
            doc = self.manager.retry(getattr(self.client, f'get_{kind}_policy'),
                                     PolicyName=pname, **arg)['PolicyDocument']
            if allows_everything(doc):
                out.append({'Source': 'inline policy', 'Policy': pname})
        return out

    def managed_is_admin(self, arn):
        if arn == self.admin_arn:
            return True
        if arn not in self.managed_cache:
            policy = self.manager.retry(self.client.get_policy, PolicyArn=arn)['Policy']
            version = self.manager.retry(
                self.client.get_policy_version, PolicyArn=arn,
                VersionId=policy['DefaultVersionId'])['PolicyVersion']
            self.managed_cache[arn] = allows_everything(version['Document'])
        return self.managed_cache[arn]


TRUSTED_SCHEMA = {'oneOf': [
    PLACEHOLDER_SCHEMA,  # '{trusted_accounts}' before expansion
    {'type': 'array', 'items': {'oneOf': [
        {'type': 'string'}, {'type': 'array', 'items': {'type': 'string'}}]}}]}


def _principals(statement):
    principal = statement.get('Principal')
    if principal == '*':
        return ['*']
    if not isinstance(principal, dict):
        return []
    out = []
    for key in ('AWS', 'Federated', 'Service', 'CanonicalUser'):
        v = principal.get(key)
        out.extend([v] if isinstance(v, str) else (v or []))
    return out


@register_filter('trusts-unknown-accounts', ['iam-role'])
class TrustsUnknownAccounts(RoleCrossAccountAccess):
    """Roles whose trust policy lets accounts outside ``trusted`` assume them (R4.2).

    c7n's ``cross-account`` filter on the trust policy (its principal and
    condition handling unchanged), with the trusted accounts given as a pack
    setting. c7n's own ``whitelist`` cannot take ``'{trusted_accounts}'``:
    ``custodian run`` checks the schema (an array) before it substitutes
    variables, and a one-item list ``['{trusted_accounts}']`` becomes a list
    inside a list. The account itself is always trusted. ``c7n:untrusted-trust``
    names the principals of the offending statements.

    :example:

    .. code-block:: yaml

        policies:
          - name: r4-2-role-trusts-unknown-account
            resource: aws.iam-role
            filters:
              - type: trusts-unknown-accounts
                trusted: '{trusted_accounts}'
    """

    schema = type_schema('trusts-unknown-accounts', trusted=TRUSTED_SCHEMA)
    schema_alias = False
    annotation = 'c7n:untrusted-trust'

    def validate(self):
        trusted = self.data.get('trusted', [])
        if isinstance(trusted, str) and not is_placeholder(trusted):
            raise PolicyValidationError(
                f"{self.type}: trusted must be a list of account ids, got {trusted!r}")
        return super().validate()

    def get_accounts(self):
        trusted = self.data.get('trusted', [])
        if isinstance(trusted, str):
            raise PolicyValidationError(
                f"{self.type}: trusted {trusted!r} was not substituted; run with "
                f"--vars-file policies/vars.yml")
        return super().get_accounts() | set(flatten(trusted))

    def __call__(self, r):
        matched = super().__call__(r)
        if matched:
            r[self.annotation] = sorted({
                p for s in r.get(self.annotation_key) or () for p in _principals(s)})
        return matched
