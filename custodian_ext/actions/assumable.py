"""X1 + X5, in real time: revoke the sessions of the roles a leaked key's user may have assumed.

Deactivating an access key does not end the role sessions its holder already
obtained with ``sts:AssumeRole``: they stay valid until they expire (up to
12 hours). So after the key, the roles the key's user may assume get the IAM
console's "Revoke active sessions" (``custodian_ext.actions.sessions``).

A role counts when the pack can tell from IAM that the user may assume it:

- its trust policy allows ``sts:AssumeRole`` to the user's ARN (in the same
  account that is enough); or
- its trust policy allows it to the account (``arn:aws:iam::<account>:root``,
  the bare account id, or ``*``), and one of the user's identity policies
  (inline, attached, or of its groups) allows ``sts:AssumeRole`` on the
  role's ARN.

Only ``Allow`` statements are read. Deny statements are left out on
purpose: a deny added after the leak (AWS's quarantine policy) does not end
the sessions issued before it, and revoking the sessions of a role that was
in fact never assumed only makes its current holders ask for new
credentials. Conditions (MFA, source IP, ``sts:ExternalId``), permission
boundaries and SCPs are not evaluated either, for the same reason. Roles of
other accounts are out of reach; service-linked roles take no inline policy.
"""
import fnmatch
import json
import urllib.parse

from c7n.query import RetryPageIterator
from c7n.utils import type_schema

from custodian_ext.actions.core import DONE, FAILED, SKIPPED, PackAction, result, utcnow
from custodian_ext.actions.sessions import issue_time, revoke
from custodian_ext.registry import register_action

ASSUME_ROLE = 'sts:AssumeRole'
USER, ACCOUNT = 'user', 'account'


def _list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _document(doc):
    if isinstance(doc, str):
        doc = json.loads(urllib.parse.unquote(doc))
    return doc or {}


def _statements(doc):
    return [s for s in _list(_document(doc).get('Statement')) if isinstance(s, dict)]


def _action_matches(patterns, action=ASSUME_ROLE):
    # IAM action names are case-insensitive; * and ? are wildcards
    return any(fnmatch.fnmatch(action.lower(), str(p).lower()) for p in patterns)


def _resource_matches(patterns, arn):
    return any(fnmatch.fnmatchcase(arn, str(p)) for p in patterns)


def allows(statement, resource_arn, action=ASSUME_ROLE):
    """The identity-policy statement allows ``action`` on ``resource_arn`` (conditions aside)."""
    if statement.get('Effect') != 'Allow':
        return False
    if 'NotAction' in statement:
        if _action_matches(_list(statement['NotAction']), action):
            return False
    elif not _action_matches(_list(statement.get('Action')), action):
        return False
    if 'NotResource' in statement:
        return not _resource_matches(_list(statement['NotResource']), resource_arn)
    return _resource_matches(_list(statement.get('Resource')), resource_arn)


def trust_grant(trust_doc, user_arn, account_id, partition='aws'):
    """``'user'``: the trust policy names the user; ``'account'``: it trusts the account."""
    account_principals = {account_id, f'arn:{partition}:iam::{account_id}:root', '*'}
    grant = None
    for s in _statements(trust_doc):
        if s.get('Effect') != 'Allow' or 'NotPrincipal' in s:
            continue
        if 'NotAction' in s:
            if _action_matches(_list(s['NotAction'])):
                continue
        elif not _action_matches(_list(s.get('Action'))):
            continue
        principal = s.get('Principal')
        if principal == '*':
            aws = ['*']
        elif isinstance(principal, dict):
            aws = _list(principal.get('AWS'))
        else:
            aws = []
        if user_arn in aws:
            return USER
        if account_principals & set(aws):
            grant = ACCOUNT
    return grant


@register_action('revoke-assumable-role-sessions', ['iam-user'])
class RevokeAssumableRoleSessions(PackAction):
    """Revoke the active sessions of every role the user may assume (X1, X5).

    For each user, the roles of its account whose trust policy names the user,
    or trusts the account while the user's own policies allow
    ``sts:AssumeRole`` on them (see the module docstring for exactly what is
    read), get ``AWSRevokeOlderSessions``, as ``revoke-sessions`` writes it.
    The result lists each role and why it was chosen.

    :example:

    .. code-block:: yaml

        policies:
          - name: x1-react-revoke-role-sessions
            resource: aws.iam-user
            mode:
              type: exposed-key-notice
              notice: health
              role: '{react_role}'
              handler: custodian_ext.handler.run
              packages: [custodian_ext, yaml]
            filters:
              - exposed-key
            actions:
              - type: deactivate-access-keys
                grace-days: '{key_grace_days}'
              - revoke-assumable-role-sessions
    """

    schema = type_schema('revoke-assumable-role-sessions')
    permissions = ('iam:ListRoles', 'iam:ListUserPolicies', 'iam:GetUserPolicy',
                   'iam:ListAttachedUserPolicies', 'iam:GetPolicy', 'iam:GetPolicyVersion',
                   'iam:ListGroupsForUser', 'iam:ListGroupPolicies', 'iam:GetGroupPolicy',
                   'iam:ListAttachedGroupPolicies', 'iam:GetRolePolicy', 'iam:PutRolePolicy')

    def process(self, resources):
        self.iam = self.client('iam')
        self.now = issue_time(utcnow())  # one instant for the whole run
        self.roles = self.paginate('list_roles', 'Roles')
        self.managed = {}
        return super().process(resources)

    def paginate(self, op, key, **params):
        pager = self.iam.get_paginator(op)
        pager.PAGE_ITERATOR_CLS = RetryPageIterator
        return pager.paginate(**params).build_full_result().get(key, [])

    def identity_documents(self, user):
        """``[(source, document)]`` of the user's inline, attached and group policies."""
        docs = []

        def collect(kind, name, via=''):
            arg = {f'{kind.capitalize()}Name': name}
            for pname in self.paginate(f'list_{kind}_policies', 'PolicyNames', **arg):
                doc = self.call(getattr(self.iam, f'get_{kind}_policy'),
                                PolicyName=pname, **arg)['PolicyDocument']
                docs.append((f'{via}inline policy {pname}', doc))
            for p in self.paginate(f'list_attached_{kind}_policies', 'AttachedPolicies', **arg):
                docs.append((f"{via}managed policy {p['PolicyArn']}", self.managed_document(
                    p['PolicyArn'])))

        collect('user', user)
        for group in self.paginate('list_groups_for_user', 'Groups', UserName=user):
            collect('group', group['GroupName'], via=f"group {group['GroupName']}: ")
        return docs

    def managed_document(self, arn):
        if arn not in self.managed:
            version = self.call(self.iam.get_policy, PolicyArn=arn)['Policy']['DefaultVersionId']
            self.managed[arn] = self.call(self.iam.get_policy_version, PolicyArn=arn,
                                          VersionId=version)['PolicyVersion']['Document']
        return self.managed[arn]

    def assumable(self, user):
        """``[(role, why)]``: the roles ``user`` may assume, and why."""
        arn = user['Arn']
        partition, account_id = arn.split(':')[1], arn.split(':')[4]
        out, docs = [], None
        for role in self.roles:
            grant = trust_grant(role.get('AssumeRolePolicyDocument'), arn, account_id, partition)
            if grant == USER:
                out.append((role, 'its trust policy names the user'))
            elif grant == ACCOUNT:
                if docs is None:
                    docs = self.identity_documents(user['UserName'])
                source = next((src for src, doc in docs for s in _statements(doc)
                               if allows(s, role['Arn'])), None)
                if source:
                    out.append((role, f'it trusts the account and the user\'s {source} '
                                      f'allows sts:AssumeRole on it'))
        return out

    def process_resource(self, r):
        user = r['UserName']
        roles = self.assumable(r)
        if not roles:
            return result(user, SKIPPED, 'no role the user may assume')
        revoked, skipped, failed = [], [], []
        for role, why in roles:
            try:
                res = revoke(self.call, self.iam, role, self.now)
            except Exception as e:  # one role's failure must not stop the others
                failed.append({'role': role['RoleName'], 'why': why, 'error': str(e)})
                continue
            entry = {'role': role['RoleName'], 'why': why, 'reason': res['reason']}
            (revoked if res['status'] == DONE else skipped).append(entry)
        details = {'revoked': revoked, 'skipped': skipped, 'failed': failed,
                   'revoked_before': self.now}
        if failed:
            return result(user, FAILED, 'could not revoke the sessions of ' + ', '.join(
                f"{f['role']} ({f['error']})" for f in failed), **details)
        if not revoked:
            return result(user, SKIPPED, 'no role whose sessions could be revoked', **details)
        return result(user, DONE, 'revoked the sessions of ' + ', '.join(
            e['role'] for e in revoked), **details)
