"""S3: make an unreadable bucket detail fail the run instead of passing as clean.

c7n fetches a bucket's subdocuments (policy, versioning, ...) when it lists
buckets. When a call is denied it records the method in
``c7n:DeniedMethods`` and goes on without the subdocument, and other
filters then see "no policy" or "versioning off". For R4.2 that would hide
a bucket policy granting an attacker's account, so the pack's S3 policies
put this filter first. It checks the ``keys`` it is given and every other
detail c7n read for the policy (its ``augment-keys``, and the location and
tags c7n always reads: a bucket's location decides where the other reads
go), and names the denied IAM actions.
"""
from c7n.exceptions import PolicyExecutionError, PolicyValidationError
from c7n.filters import Filter
from c7n.resources.s3 import S3_AUGMENT_TABLE
from c7n.utils import type_schema

from custodian_ext.registry import register_filter

METHODS = {row[1]: (row[0], row[4]) for row in S3_AUGMENT_TABLE}


@register_filter('details-readable', ['s3'])
class DetailsReadable(Filter):
    """Fail the run if any bucket's ``keys`` (c7n augment keys) could not be read.

    Passes every bucket through when all were read. The policy must fetch
    the keys: ``query: [{augment-keys: [Policy]}]`` (or ``all``).

    :example:

    .. code-block:: yaml

        policies:
          - name: r4-2-bucket-policy-untrusted
            resource: aws.s3
            query:
              - augment-keys: [Policy]
            filters:
              - type: details-readable
                keys: [Policy]
              - type: cross-account
                whitelist: '{trusted_accounts}'
    """

    schema = type_schema(
        'details-readable', required=['keys'],
        keys={'type': 'array', 'minItems': 1, 'items': {'enum': sorted(METHODS)}})

    def get_permissions(self):
        return tuple(METHODS[k][1] for k in self.data['keys'])

    def validate(self):
        fetched = 'all'
        for q in self.manager.data.get('query') or ():
            if isinstance(q, dict) and q.get('augment-keys') is not None:
                fetched = q['augment-keys']
        if fetched == 'all':
            return self
        missing = [k for k in self.data['keys']
                   if not isinstance(fetched, list) or k not in fetched]
        if missing:
            raise PolicyValidationError(
                f"details-readable: policy {self.manager.data.get('name')} does not fetch "
                f"{', '.join(missing)}; add them to query: [{{augment-keys: [...]}}]")
        return self

    def fetched(self):
        """The details c7n read for this policy (its own rule), and the keys."""
        from c7n.resources.s3 import BucketAssembly
        fields = set(BucketAssembly(self.manager).detect_augment_fields())
        return sorted(fields | {'Location', 'Tags'} | set(self.data['keys']))

    def process(self, resources, event=None):
        unread, denied_actions = [], set()
        checked = self.fetched()
        for b in resources:
            denied = set(b.get('c7n:DeniedMethods') or ())
            for k in checked:
                method, action = METHODS[k]
                if method in denied:
                    denied_actions.add(action)
                if method in denied or (k in self.data['keys'] and k not in b):
                    unread.append(f"{b['Name']} ({method})")
        if unread:
            listed = f"{', '.join(unread[:10])}{' ...' if len(unread) > 10 else ''}"
            if denied_actions:
                why = (f"access denied to {', '.join(sorted(denied_actions))}: grant it, or "
                       f"check the bucket policy does not deny this principal")
            else:
                why = 'c7n returned the bucket without it'
            raise PolicyExecutionError(
                f"could not read {len(unread)} bucket detail(s): {listed}; {why}")
        return resources
