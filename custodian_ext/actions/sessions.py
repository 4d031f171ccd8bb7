"""Revoke a role's temporary credentials issued before now (X5).

What the IAM console's "Revoke active sessions" does: put the inline role
policy ``AWSRevokeOlderSessions``, which denies every action on every
resource to sessions whose ``aws:TokenIssueTime`` is before the moment of
revocation. Sessions created later are not affected.
"""
import json
import urllib.parse

from botocore.exceptions import ClientError
from c7n.utils import type_schema

from custodian_ext.actions.core import DONE, SKIPPED, PackAction, result, utcnow
from custodian_ext.registry import register_action

POLICY_NAME = 'AWSRevokeOlderSessions'
CONDITION_KEY = 'aws:TokenIssueTime'


def issue_time(when):
    # The console writes milliseconds and a Z: 2024-10-10T09:43:48.085Z
    return when.strftime('%Y-%m-%dT%H:%M:%S.') + f'{when.microsecond // 1000:03d}Z'


def revoke_statement(time_text):
    return {'Effect': 'Deny', 'Action': ['*'], 'Resource': ['*'],
            'Condition': {'DateLessThan': {CONDITION_KEY: time_text}}}


def _as_list(value):
    return value if isinstance(value, list) else [value]


def revoke_time_of(statement):
    """The revocation time of a console-shaped statement, else None."""
    if statement.get('Effect') != 'Deny' or 'NotAction' in statement or 'NotResource' in statement:
        return None
    if _as_list(statement.get('Action')) != ['*'] or _as_list(statement.get('Resource')) != ['*']:
        return None
    cond = statement.get('Condition') or {}
    if list(cond) != ['DateLessThan'] or list(cond['DateLessThan']) != [CONDITION_KEY]:
        return None
    value = _as_list(cond['DateLessThan'][CONDITION_KEY])
    return value[0] if len(value) == 1 else None


def _parse_time(text):
    import datetime
    return datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))


def merge(existing, now_text):
    """``(document, previous time, effective time, dropped statements)`` to write.

    Never widens: every existing Deny statement is kept; the revocation
    statement's time only moves later; Allow statements (which an inline
    deny policy has no business holding) are dropped and reported.
    """
    if existing is None:
        policy = {'Version': '2012-10-17', 'Statement': [revoke_statement(now_text)]}
        return policy, None, now_text, []
    statements = _as_list(existing.get('Statement', []))
    kept, dropped, previous, effective = [], [], None, None
    for s in statements:
        t = revoke_time_of(s)
        if t is not None and effective is None:
            previous = t
            try:
                effective = t if _parse_time(t) > _parse_time(now_text) else now_text
            except ValueError:
                effective = now_text  # unreadable time: now, a valid deny
            kept.append(revoke_statement(effective))
        elif s.get('Effect') == 'Deny':
            kept.append(s)
        else:
            dropped.append(s)
    if effective is None:
        effective = now_text
        kept.insert(0, revoke_statement(now_text))
    return ({'Version': existing.get('Version', '2012-10-17'), 'Statement': kept},
            previous, effective, dropped)


@register_action('revoke-sessions', ['iam-role'])
class RevokeSessions(PackAction):
    """Deny the role's sessions issued before now, as the IAM console does (X5).

    Puts the inline policy ``AWSRevokeOlderSessions``::

        {"Version": "2012-10-17",
         "Statement": [{"Effect": "Deny", "Action": ["*"], "Resource": ["*"],
                        "Condition": {"DateLessThan": {"aws:TokenIssueTime": "<now>"}}}]}

    If the role already has it, the revocation time moves to now (never
    earlier) and every other Deny statement in it is kept, so the policy is
    never widened. The previous document is kept in the result. Sessions
    started after the action are not affected; anyone who can still assume
    the role can get a new session, so fix the trust policy or the
    credentials that assumed it too. Service-linked roles are skipped: IAM
    does not allow inline policies on them.

    :example:

    .. code-block:: yaml

        policies:
          - name: x5-revoke-role-sessions
            resource: aws.iam-role
            filters:
              - 'tag:custodian-ext:contain': '{incident_id}'
            actions:
              - revoke-sessions
    """

    schema = type_schema('revoke-sessions')
    permissions = ('iam:GetRolePolicy', 'iam:PutRolePolicy')

    def process(self, resources):
        self.iam = self.client('iam')
        self.now = issue_time(utcnow())  # one instant for the whole run
        return super().process(resources)

    def process_resource(self, r):
        return revoke(self.call, self.iam, r, self.now)


def revoke(call, iam, role, now_text):
    """Revoke ``role``'s sessions issued before ``now_text``; a ``result``.

    ``call`` is the action's retrying caller (``PackAction.call``); shared by
    ``revoke-sessions`` and ``revoke-assumable-role-sessions``.
    """
    name = role['RoleName']
    if role.get('Path', '').startswith('/aws-service-role/'):
        return result(name, SKIPPED, 'service-linked role: IAM allows no inline policy on it')
    try:
        doc = call(iam.get_role_policy, RoleName=name, PolicyName=POLICY_NAME)['PolicyDocument']
        if isinstance(doc, str):
            doc = json.loads(urllib.parse.unquote(doc))
    except ClientError as e:
        if e.response['Error']['Code'] != 'NoSuchEntity':
            raise
        doc = None
    new, previous, effective, dropped = merge(doc, now_text)
    call(iam.put_role_policy, RoleName=name, PolicyName=POLICY_NAME,
         PolicyDocument=json.dumps(new))
    details = {'revoked_before': effective}
    if doc is not None:
        details['previous_document'] = doc
    if dropped:
        details['dropped_allow_statements'] = dropped
    reason = 'sessions issued before %s revoked' % details['revoked_before']
    if previous:
        reason += f' (was {previous})'
    return result(name, DONE, reason, **details)
