"""X1, in real time: the access key an AWS notice names, and only that key.

The pack's ``exposed-key-notice`` mode (``custodian_ext.react``) hands the
policy the IAM user a notice points at. This filter then checks, in the
account the function acts in, that the named key really is one of that
user's keys and is still active, and matches the user with exactly that key
in ``c7n:matched-keys``: ``deactivate-access-keys`` then deactivates it and
nothing else. A key that is already inactive, or that the user does not
own, is reported in ``c7n:exposed-key`` and not matched.
"""
from botocore.exceptions import ClientError
from c7n.exceptions import PolicyExecutionError, PolicyValidationError
from c7n.filters import Filter
from c7n.utils import local_session, type_schema

import custodian_ext.notices as notices
from custodian_ext.registry import register_filter

MODE = 'exposed-key-notice'

# Per-key outcomes the filter records (``c7n:exposed-key``).
MATCHED, INACTIVE, NOT_OWNED = 'matched', 'already-inactive', 'not-owned'


@register_filter('exposed-key', ['iam-user'])
class ExposedKey(Filter):
    """The user owns the access key the triggering AWS notice names, and it is active (X1).

    Works only in the ``exposed-key-notice`` mode, on the event that invoked
    the function (AWS Health ``AWS_RISK_CREDENTIALS_EXPOSED`` or Trusted
    Advisor "Exposed Access Keys"). For each named key attributed to the user
    (Trusted Advisor names the user; for Health, the mode found the owner),
    the user's own key list is read: an active key is matched, alone, in
    ``c7n:matched-keys``; an inactive one is ``already-inactive``; a key the
    user does not have is ``not-owned``. ``c7n:exposed-key`` records each
    key's outcome and ``c7n:exposed-key-notice`` the notice itself.

    :example:

    .. code-block:: yaml

        policies:
          - name: x1-react-advisor-exposed-key
            resource: aws.iam-user
            mode:
              type: exposed-key-notice
              notice: trusted-advisor
              role: '{react_role}'
              handler: custodian_ext.handler.run
              packages: [custodian_ext, yaml]
            filters:
              - exposed-key
            actions:
              - type: deactivate-access-keys
                grace-days: '{key_grace_days}'
    """

    schema = type_schema('exposed-key')
    permissions = ('iam:ListAccessKeys',)
    annotation_key = 'c7n:exposed-key'
    notice_key = 'c7n:exposed-key-notice'
    matched_annotation_key = 'c7n:matched-keys'

    def validate(self):
        mode = self.manager.data.get('mode') or {}
        if mode.get('type') != MODE:
            raise PolicyValidationError(
                f"{self.type} acts on the key an AWS notice names; policy "
                f"{self.manager.data.get('name')} must use mode {MODE}")
        return self

    def process(self, resources, event=None):
        if not event:
            raise PolicyExecutionError(
                f"{self.type}: no AWS notice to read; this policy runs on an event (deploy it, "
                f"or invoke its function with a sample event), not in a sweep or --dryrun")
        notice = notices.parse(event, self.manager.data['mode']['notice'])
        if notice.affected_account != self.manager.config.account_id:
            # The mode enters the notice's account first; never act elsewhere.
            raise PolicyExecutionError(
                f"{self.type}: the notice is for account {notice.affected_account}, this run "
                f"acts in {self.manager.config.account_id}")
        client = local_session(self.manager.session_factory).client('iam')
        summary = {'kind': notice.kind, 'event_id': notice.event_id, 'time': notice.time,
                   'reference': notice.reference}
        matched = []
        for r in resources:
            user = r['UserName']
            named = [k for k in notice.keys if k.user_name in (None, user)]
            if not named:
                continue
            try:
                keys = self.manager.retry(client.list_access_keys,
                                          UserName=user)['AccessKeyMetadata']
            except ClientError as e:
                if e.response['Error']['Code'] != 'NoSuchEntity':
                    raise
                keys = []  # deleted since the mode found it
            r['c7n:AccessKeys'] = keys
            by_id = {k['AccessKeyId']: k for k in keys}
            outcomes, hits = [], []
            for k in named:
                key = by_id.get(k.key_id)
                if key is None:
                    if k.user_name:  # Trusted Advisor named this user: it does not own the key
                        outcomes.append({'AccessKeyId': k.key_id, 'outcome': NOT_OWNED,
                                         'reason': f'{user} has no access key {k.key_id}'})
                    continue
                if key['Status'] != 'Active':
                    outcomes.append({'AccessKeyId': k.key_id, 'outcome': INACTIVE,
                                     'reason': f"already {key['Status']}; nothing to do"})
                    continue
                outcomes.append({'AccessKeyId': k.key_id, 'outcome': MATCHED})
                hits.append(dict(key, **{'c7n:match-type': 'access'}))
            r[self.annotation_key] = outcomes
            r[self.notice_key] = summary
            if hits:
                # exactly the named keys, never the user's other keys
                r[self.matched_annotation_key] = hits
                matched.append(r)
        return matched
