"""X1 staged rotation of leaked access keys: deactivate now, delete after a grace period.

AWS's runbook: deactivate the leaked key (do not delete it: its id is what
you search CloudTrail for), check the application still works, and delete
the key after a grace period. Two actions, for two policies:

- ``deactivate-access-keys`` deactivates exactly the keys the policy's
  filters matched (``c7n:matched-keys``), never the user's other keys, and
  records them on the user (see ``custodian_ext.filters.rotation``);
- ``delete-access-keys`` deletes keys selected by ``deactivated-keys``: keys
  the pack deactivated, still inactive, past ``key_grace_days``.

Neither touches the quarantine policy AWS attached to the user.

Custodian's ``remove-keys`` acts on every key of the user unless
``matched: true`` is set (Custodian issues #842, #5583), keeps no record of
what it deactivated, and reports nothing per key; hence these actions.
"""
import datetime

from botocore.exceptions import ClientError
from c7n.exceptions import PolicyExecutionError, PolicyValidationError
from c7n.resources.iam import CredentialReport, UserAccessKey, resolve_credential_keys
from c7n.utils import type_schema

from custodian_ext.actions.core import (
    DONE, FAILED, SKIPPED, PackAction, result, utcnow)
from custodian_ext.filters.rotation import (
    DELETABLE_TAG, RECORD_TAG, TIME_FORMAT, DeactivatedKeys, check_days, format_record,
    parse_record, tag_value)
from custodian_ext.registry import register_action
from custodian_ext.settings import is_placeholder, or_placeholder

INCIDENT_TAG = 'custodian-ext:incident'
KEEP_SCHEMA = or_placeholder({'type': 'array', 'items': {'type': 'string'}})


def _user_tags(action, client, user):
    # Read fresh, not from the resource: with Custodian's resource cache the
    # tags could predate the last run, and the record would lose entries.
    return action.call(client.list_user_tags, UserName=user).get('Tags', [])


@register_action('deactivate-access-keys', ['iam-user'])
class DeactivateAccessKeys(PackAction):
    """Deactivate the access keys the filters matched, and record when (X1, stage 1).

    Only the keys in ``c7n:matched-keys`` (from ``access-key`` or
    ``credential`` filters) are set to ``Inactive``; the user's other keys
    are left as they are and listed in the result as ``untouched``. Keys
    listed in ``keep`` (the replacement key, or an old key reactivated
    because an application broke) are never deactivated, and are dropped
    from the pack's record so that they are never deleted automatically.

    The user is tagged:

    - ``custodian-ext:x1-deactivated-keys``: ``<key id>=<time>`` for each key
      the pack deactivated (the delete policy acts only on these);
    - ``custodian-ext:x1-keys-deletable-after``: when the delete policy may
      remove them (deactivation + ``grace-days``);
    - ``custodian-ext:incident``: the incident id.

    The quarantine policy AWS attached is never touched.

    :example:

    .. code-block:: yaml

        policies:
          - name: x1-deactivate-quarantined-keys
            resource: aws.iam-user
            filters:
              - type: quarantine-marker
              - type: access-key
                key: Status
                value: Active
            actions:
              - type: deactivate-access-keys
                grace-days: '{key_grace_days}'
                keep: '{keep_access_keys}'
                incident-id: '{incident_id}'
    """

    schema = type_schema(
        'deactivate-access-keys', required=['grace-days'],
        **{'grace-days': or_placeholder({'type': 'number', 'minimum': 0}),
           'keep': KEEP_SCHEMA,
           'incident-id': {'type': 'string'}})
    permissions = ('iam:UpdateAccessKey', 'iam:ListAccessKeys', 'iam:ListUserTags',
                   'iam:TagUser', 'iam:UntagUser')

    def validate(self):
        check_days(self.type, self.data.get('grace-days'))
        # any filter that names the keys it matched in c7n:matched-keys
        if not any(isinstance(f, (UserAccessKey, CredentialReport)) or
                   getattr(f, 'matched_annotation_key', None) == 'c7n:matched-keys'
                   for f in self.manager.iter_filters()):
            raise PolicyValidationError(
                f'{self.type} acts only on the keys a filter matched; add an access-key filter '
                f'(e.g. key: Status, value: Active) to policy {self.manager.ctx.policy.name}')
        return self

    def process(self, resources):
        if is_placeholder(self.data['grace-days']):
            raise PolicyExecutionError(f"{self.type}: grace-days is {self.data['grace-days']}; "
                                       f"run with --vars-file")
        self.iam = self.client('iam')
        self.keep = set(self.data.get('keep') or ())
        return super().process(resources)

    def matched_keys(self, r):
        if 'c7n:AccessKeys' not in r:
            r['c7n:AccessKeys'] = self.call(
                self.iam.list_access_keys, UserName=r['UserName'])['AccessKeyMetadata']
        keys = resolve_credential_keys(r.get('c7n:matched-keys') or [], r['c7n:AccessKeys'])
        return r['c7n:AccessKeys'], [k['AccessKeyId'] for k in keys if k.get('AccessKeyId')]

    def process_resource(self, r):
        user = r['UserName']
        all_keys, matched = self.matched_keys(r)
        if not matched:
            return result(user, SKIPPED, 'no access key matched the filters')
        untouched = [k['AccessKeyId'] for k in all_keys if k['AccessKeyId'] not in matched]
        tags = _user_tags(self, self.iam, user)
        had_record = tag_value(tags, RECORD_TAG) is not None
        record = parse_record(tag_value(tags, RECORD_TAG))
        now = utcnow().replace(microsecond=0)
        deactivated, kept, errors = [], [], []
        for kid in dict.fromkeys(matched):
            if kid in self.keep:
                kept.append(kid)
                record.pop(kid, None)
                continue
            try:
                self.call(self.iam.update_access_key, UserName=user, AccessKeyId=kid,
                          Status='Inactive')
            except ClientError as e:
                errors.append(f'{kid}: {e}')
                continue
            deactivated.append(kid)
            record[kid] = now
        details = {'deactivated': deactivated, 'kept': kept, 'untouched': untouched}
        try:
            if record:
                deletable = max(record.values()) + datetime.timedelta(days=self.data['grace-days'])
                details['deletable_after'] = deletable.strftime(TIME_FORMAT)
                self.call(self.iam.tag_user, UserName=user, Tags=[
                    {'Key': RECORD_TAG, 'Value': format_record(record)},
                    {'Key': DELETABLE_TAG, 'Value': details['deletable_after']},
                    {'Key': INCIDENT_TAG, 'Value': self.data.get('incident-id') or 'incident'}])
            elif had_record:
                self.call(self.iam.untag_user, UserName=user, TagKeys=[RECORD_TAG, DELETABLE_TAG])
        except ClientError as e:
            return result(user, FAILED, f'keys {", ".join(deactivated) or "-"} deactivated but not '
                                        f'recorded on the user ({e}); they will not be deleted '
                                        f'automatically', **details)
        if errors:
            return result(user, FAILED, 'could not deactivate ' + '; '.join(errors), **details)
        if not deactivated:
            return result(user, SKIPPED, 'every matched key is listed in keep_access_keys',
                          **details)
        return result(user, DONE, f'deactivated {", ".join(deactivated)}', **details)


@register_action('delete-access-keys', ['iam-user'])
class DeleteAccessKeys(PackAction):
    """Delete the keys ``deactivated-keys`` selected (X1, stage 2).

    Just before deleting, each key is checked again: it must still exist, be
    ``Inactive`` and be in the pack's record on the user; anything else is
    skipped with the reason (a key reactivated since is never deleted). The
    result keeps each deleted key's id, creation date and last use, for the
    CloudTrail search. The record tag is updated, and removed with the last
    key.

    :example:

    .. code-block:: yaml

        policies:
          - name: x1-delete-deactivated-keys
            resource: aws.iam-user
            filters:
              - type: deactivated-keys
                days: '{key_grace_days}'
                keep: '{keep_access_keys}'
            actions:
              - delete-access-keys
    """

    schema = type_schema('delete-access-keys')
    permissions = ('iam:ListAccessKeys', 'iam:GetAccessKeyLastUsed', 'iam:DeleteAccessKey',
                   'iam:ListUserTags', 'iam:TagUser', 'iam:UntagUser')

    def validate(self):
        return self.require_filter(DeactivatedKeys, 'deletes only keys the pack deactivated')

    def process(self, resources):
        self.iam = self.client('iam')
        return super().process(resources)

    def process_resource(self, r):
        user = r['UserName']
        wanted = [k['AccessKeyId'] for k in r.get('c7n:matched-keys') or ()
                  if k.get('c7n:deactivated-at')]
        if not wanted:
            return result(user, SKIPPED, 'no key selected by deactivated-keys')
        current = {k['AccessKeyId']: k for k in self.call(
            self.iam.list_access_keys, UserName=user)['AccessKeyMetadata']}
        tags = _user_tags(self, self.iam, user)
        record = parse_record(tag_value(tags, RECORD_TAG))
        deleted, skipped = [], []
        for kid in dict.fromkeys(wanted):
            key = current.get(kid)
            if key is None:
                skipped.append(f'{kid}: no longer exists')
                record.pop(kid, None)
                continue
            if key['Status'] != 'Inactive':
                skipped.append(f"{kid}: is {key['Status']} again; not deleted")
                continue
            if kid not in record:
                skipped.append(f'{kid}: not in the pack\'s record on the user')
                continue
            last_used = self.call(self.iam.get_access_key_last_used,
                                  AccessKeyId=kid).get('AccessKeyLastUsed', {})
            self.call(self.iam.delete_access_key, UserName=user, AccessKeyId=kid)
            deleted.append({'AccessKeyId': kid, 'CreateDate': key.get('CreateDate'),
                            'deactivated_at': record.pop(kid).strftime(TIME_FORMAT),
                            'last_used': last_used})
        if record:
            self.call(self.iam.tag_user, UserName=user,
                      Tags=[{'Key': RECORD_TAG, 'Value': format_record(record)}])
        else:
            self.call(self.iam.untag_user, UserName=user, TagKeys=[RECORD_TAG, DELETABLE_TAG])
        details = {'deleted': deleted, 'skipped': skipped}
        if not deleted:
            return result(user, SKIPPED, '; '.join(skipped), **details)
        return result(user, DONE, 'deleted ' + ', '.join(d['AccessKeyId'] for d in deleted),
                      **details)
