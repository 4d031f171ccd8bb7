"""X1 staged key rotation: which access keys the pack deactivated, and when.

The respond action ``deactivate-access-keys`` records every key it
deactivates on the key's user, in the tag ``custodian-ext:x1-deactivated-keys``
(``<key id>=<UTC time> ...``; a user has at most two keys, so it fits in a
tag value). IAM itself keeps no "deactivated at" time, and the record is how
the delete policy knows a key was deactivated by the pack and not by someone
else. ``deactivated-keys`` selects the recorded keys that are still inactive
and past the grace period.
"""
import datetime

from c7n.exceptions import PolicyExecutionError, PolicyValidationError
from c7n.filters import Filter
from c7n.utils import local_session, type_schema

from custodian_ext.actions.core import utcnow
from custodian_ext.registry import register_filter
from custodian_ext.settings import is_placeholder, or_placeholder

RECORD_TAG = 'custodian-ext:x1-deactivated-keys'
DELETABLE_TAG = 'custodian-ext:x1-keys-deletable-after'
TIME_FORMAT = '%Y-%m-%dT%H:%M:%SZ'


def tag_value(tags, key):
    for t in tags or ():
        if t.get('Key') == key:
            return t.get('Value', '')
    return None


def parse_record(value):
    """``{key id: aware datetime}`` from the record tag's value; bad entries are ignored."""
    out = {}
    for entry in (value or '').split():
        kid, _, when = entry.partition('=')
        try:
            out[kid] = datetime.datetime.strptime(when, TIME_FORMAT).replace(
                tzinfo=datetime.timezone.utc)
        except ValueError:
            continue
    return out


def format_record(record):
    return ' '.join(f'{k}={v.strftime(TIME_FORMAT)}' for k, v in sorted(record.items()))


def check_days(owner, value):
    if is_placeholder(value):
        return  # `custodian validate` without vars
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise PolicyValidationError(
            f'{owner}: days must be a number of days, 0 or more (key_grace_days), got {value!r}')


@register_filter('deactivated-keys', ['iam-user'])
class DeactivatedKeys(Filter):
    """Access keys the pack deactivated at least ``days`` ago and that are still inactive (X1).

    Reads the pack's record on the user (tag
    ``custodian-ext:x1-deactivated-keys``, written by
    ``deactivate-access-keys``), checks each recorded key's current status,
    and matches the user when a recorded key is ``Inactive`` and was
    deactivated ``days`` or more ago. Keys listed in ``keep`` never match.
    The matched keys go to ``c7n:matched-keys`` (with ``c7n:deactivated-at``),
    for ``delete-access-keys``.

    :example:

    .. code-block:: yaml

        policies:
          - name: x1-keys-past-their-grace-period
            resource: aws.iam-user
            filters:
              - type: deactivated-keys
                days: '{key_grace_days}'
                keep: '{keep_access_keys}'
    """

    schema = type_schema(
        'deactivated-keys', required=['days'],
        days=or_placeholder({'type': 'number', 'minimum': 0}),
        keep=or_placeholder({'type': 'array', 'items': {'type': 'string'}}))
    permissions = ('iam:ListAccessKeys',)
    matched_annotation_key = 'c7n:matched-keys'

    def validate(self):
        check_days(f'{self.type} filter', self.data.get('days'))
        return self

    def process(self, resources, event=None):
        days = self.data['days']
        check_days(f'{self.type} filter', days)
        if is_placeholder(days):
            raise PolicyExecutionError(f'{self.type}: days is {days}; run with --vars-file')
        keep = set(self.data.get('keep') or ())
        cutoff = utcnow() - datetime.timedelta(days=days)
        client = None
        matched = []
        for r in resources:
            record = parse_record(tag_value(r.get('Tags'), RECORD_TAG))
            if not record:
                continue
            if 'c7n:AccessKeys' not in r:
                client = client or local_session(self.manager.session_factory).client('iam')
                r['c7n:AccessKeys'] = self.manager.retry(
                    client.list_access_keys, UserName=r['UserName'])['AccessKeyMetadata']
            found = []
            for k in r['c7n:AccessKeys']:
                when = record.get(k['AccessKeyId'])
                if (when is not None and when <= cutoff and k['Status'] == 'Inactive'
                        and k['AccessKeyId'] not in keep):
                    # annotate in place, as c7n's access-key filter does, so that
                    # c7n:matched-keys intersects with its matches
                    k['c7n:match-type'] = 'access'
                    k['c7n:deactivated-at'] = when.strftime(TIME_FORMAT)
                    found.append(k)
            if found:
                self.merge_annotation(r, self.matched_annotation_key, found)
                matched.append(r)
        return matched
