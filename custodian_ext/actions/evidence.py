"""Evidence kept before the pack changes anything (X7, X3).

An action that destroys or changes a resource first writes what it knows
about it as one JSON document:

- to the S3 bucket named by the ``evidence_bucket`` setting, at
  ``<incident_id>/<account>/<region>/<kind>/<resource id>/<time>.json``;
- without a bucket, to ``evidence-<kind>-<resource id>.json`` in the policy's
  output folder (``custodian run -s OUT``), beside ``resources.json``.

The write happens before the change, and a failed write fails the action for
that resource: nothing after it runs. The result of the action records where
the document went (``evidence``).

Actions take the two settings as options::

    incident-id: '{incident_id}'
    evidence-bucket: '{evidence_bucket}'
"""
import json
import re

from c7n.output import NullBlobOutput

from custodian_ext.actions.core import utcnow

EVIDENCE_SCHEMA = {
    'incident-id': {'type': 'string'},
    'evidence-bucket': {'type': 'string'},
}


class EvidenceError(RuntimeError):
    """Evidence could not be kept; the change it protects must not happen."""


def evidence_permissions(data):
    return ('s3:PutObject',) if data.get('evidence-bucket') else ()


def _safe(name):
    # User names may hold '+=,.@'; keep keys and file names plain.
    return re.sub(r'[^A-Za-z0-9._=@+-]', '_', str(name))


class EvidenceStore:
    """Writes evidence documents for one action (see the module docstring)."""

    def __init__(self, action):
        self.action = action
        self.bucket = action.data.get('evidence-bucket') or ''
        self.incident_id = action.data.get('incident-id') or 'incident'

    @property
    def manager(self):
        return self.action.manager

    def check(self):
        """Raise EvidenceError if evidence would have nowhere to go."""
        if self.bucket:
            return
        output = getattr(self.manager.ctx, 'output', None)
        if output is None or isinstance(output, NullBlobOutput):
            raise EvidenceError(
                'no evidence destination: set evidence_bucket in the vars file, or run '
                'with an output folder (custodian run -s OUT)')

    def put(self, kind, resource_id, document):
        """Write one document; return where it went (``s3://...`` or ``output:<file>``)."""
        self.check()
        now = utcnow()
        config = self.manager.config
        body = json.dumps({
            'kind': kind,
            'resource_id': resource_id,
            'incident_id': self.incident_id,
            'account_id': config.account_id,
            'region': config.region,
            'policy': self.manager.ctx.policy.name,
            'captured_at': now.strftime('%Y-%m-%dT%H:%M:%SZ'),
            'document': document,
        }, indent=2, default=str)
        if self.bucket:
            key = '/'.join((_safe(self.incident_id), str(config.account_id),
                            config.region or 'global', kind, _safe(resource_id),
                            now.strftime('%Y%m%dT%H%M%S%fZ') + '.json'))
            s3 = self.action.client('s3')
            try:
                self.action.call(s3.put_object, Bucket=self.bucket, Key=key,
                                 Body=body.encode('utf-8'), ContentType='application/json')
            except Exception as e:
                raise EvidenceError(f'evidence for {resource_id} not written to '
                                    f's3://{self.bucket}/{key}: {e}') from e
            return f's3://{self.bucket}/{key}'
        name = f'evidence-{kind}-{_safe(resource_id)}.json'
        try:
            self.manager.ctx.output.write_file(name, body)
        except OSError as e:
            raise EvidenceError(f'evidence for {resource_id} not written to the output: {e}') from e
        return f'output:{name}'
