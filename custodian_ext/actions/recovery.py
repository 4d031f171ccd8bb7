"""What the recover actions (runbook X8) share: the incident boundary, tags, preview, detail files.

Every recover action restores *from* the last state before ``incident_start``
*into* something new (a new object version, a new volume, a new DB
instance) and leaves the compromised resource as it is, for evidence. The
policies select what to restore with filters (the ``incident-restore`` tag,
see the README's "Recover" section); an action never touches a resource its
policy's filters did not match.

Options every recover action takes (``policies/recover/x8.yml`` fills them
from ``policies/vars.yml``):

- ``incident-start`` (required): versions and snapshots written at or after
  it are suspect, never restored from;
- ``incident-id``: tagged on whatever the action creates;
- ``dry-run-report``: report what would be restored, change nothing.

The options accept a ``{setting}`` placeholder: ``custodian validate`` checks
policies before variables are substituted, ``custodian run`` after.
"""
import datetime
import json

from c7n.exceptions import PolicyValidationError

from custodian_ext.actions.core import PackAction
from custodian_ext.settings import (
    SettingsError, check, is_placeholder, or_placeholder, parse_timestamp)

#: the tag a responder puts on what should be restored; its value is the incident id
FLAG_TAG = 'incident-restore'
#: tags on what a recover action creates
TAG_INCIDENT = 'incident-id'
TAG_RESTORED_FROM = 'restored-from'
TAG_RESTORED_FROM_SNAPSHOT = 'restored-from-snapshot'
TAG_RESTORED_TO_TIME = 'restored-to-time'
TAG_RESTORED_BY = 'restored-by'
RESTORED_BY = 'custodian-ext'

def iso(dt):
    return dt.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def as_utc(value):
    """A datetime from boto3 (aware) or an ISO string, in UTC."""
    if isinstance(value, datetime.datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    else:
        dt = parse_timestamp(str(value).replace(' ', 'T', 1) if ' ' in str(value) else value)
    return dt.astimezone(datetime.timezone.utc)


def tag_value(resource, key, tags_key='Tags'):
    for t in resource.get(tags_key) or ():
        if t.get('Key') == key:
            return t.get('Value')
    return None


RECOVER_SCHEMA = {
    'incident-start': or_placeholder({'type': 'string'}),
    'incident-id': or_placeholder({'type': 'string'}),
    'dry-run-report': or_placeholder({'type': 'boolean'}),
}


class RecoverAction(PackAction):
    """Base for the recover actions: see the module docstring."""

    #: detail records (e.g. one per S3 object) written next to the results file
    details = None

    def option(self, name, setting, default=None):
        """Option ``name``, checked as the pack setting ``setting`` (the rule and message
        of settings.py); None while it is still a placeholder."""
        value = self.data.get(name, default)
        if is_placeholder(value):
            return None
        try:
            return check(setting, value, key=name)
        except SettingsError as e:
            raise PolicyValidationError(
                f"{self.type}: {e} (policy {self.manager.data.get('name')})")

    def validate(self):
        if 'incident-start' not in self.data:
            raise PolicyValidationError(
                f"{self.type}: incident-start is required; write incident-start: "
                f"'{{incident_start}}' to take it from policies/vars.yml "
                f"(policy {self.manager.data.get('name')})")
        self.option('incident-start', 'incident_start')
        self.option('incident-id', 'incident_id', 'incident')
        self.option('dry-run-report', 'restore_preview', False)
        return self

    @property
    def incident_start(self):
        return parse_timestamp(self.option('incident-start', 'incident_start'))

    @property
    def incident_id(self):
        return self.option('incident-id', 'incident_id', 'incident') or 'incident'

    @property
    def preview(self):
        return bool(self.option('dry-run-report', 'restore_preview', False))

    def created_tags(self, source_id, **extra):
        """Tags for a resource a recover action creates."""
        tags = {TAG_RESTORED_FROM: source_id, TAG_INCIDENT: self.incident_id,
                TAG_RESTORED_BY: RESTORED_BY}
        tags.update({k: v for k, v in extra.items() if v})
        return [{'Key': k, 'Value': str(v)} for k, v in tags.items()]

    def process(self, resources):
        self.details = []
        try:
            return super().process(resources)
        finally:
            self.write_details()

    def write_details(self):
        output = getattr(self.manager.ctx, 'output', None)
        if output is None or not self.details:
            return
        output.write_file(
            f'action-details-{self.type}.jsonl',
            ''.join(json.dumps(d, default=str, sort_keys=True) + '\n' for d in self.details))

