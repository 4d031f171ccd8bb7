"""IAM Roles Anywhere trust anchors (R4.2).

A trust anchor lets anyone holding a certificate from its certificate
authority obtain credentials for the roles its profiles name, from outside
AWS: a persistence method that survives key rotation. c7n has no Roles
Anywhere resource, so the check runs on the pack's ``aws.account-region``,
once per region (Roles Anywhere is a regional service).
"""

from c7n.exceptions import PolicyValidationError
from c7n.filters import Filter
from c7n.query import RetryPageIterator
from c7n.utils import local_session, type_schema

from custodian_ext.filters.options import aware, check_timestamp
from custodian_ext.registry import register_filter


@register_filter('roles-anywhere-trust-anchors', ['account-region'])
class RolesAnywhereTrustAnchors(Filter):
    """The region has IAM Roles Anywhere trust anchors (R4.2).

    ``created: since`` keeps the anchors created at or after ``since``,
    ``created: before`` the older ones, ``created: any`` (default) all.
    ``c7n:roles-anywhere-trust-anchors`` lists each with its name, source
    (certificate bundle or AWS Private CA), whether it is enabled, and when it
    was created.

    :example:

    .. code-block:: yaml

        policies:
          - name: r4-2-roles-anywhere-trust-anchors-since-incident
            resource: aws.account-region
            filters:
              - type: roles-anywhere-trust-anchors
                created: since
                since: '{incident_start}'
    """

    schema = type_schema('roles-anywhere-trust-anchors',
                         created={'enum': ['any', 'since', 'before']},
                         since={'type': 'string'})
    permissions = ('rolesanywhere:ListTrustAnchors',)
    annotation_key = 'c7n:roles-anywhere-trust-anchors'

    def validate(self):
        if self.data.get('created', 'any') != 'any' and 'since' not in self.data:
            raise PolicyValidationError(
                f"{self.type}: created: {self.data['created']} needs 'since'")
        check_timestamp(self)
        return self

    def process(self, resources, event=None):
        client = local_session(self.manager.session_factory).client(
            'rolesanywhere', region_name=self.manager.config.region)
        pager = client.get_paginator('list_trust_anchors')
        pager.PAGE_ITERATOR_CLS = RetryPageIterator
        anchors = pager.paginate().build_full_result().get('trustAnchors', [])
        created = self.data.get('created', 'any')
        since = aware(self.data['since']) if 'since' in self.data else None
        found = []
        for a in anchors:
            when = aware(a['createdAt']) if a.get('createdAt') else None
            if created == 'since' and not (when and when >= since):
                continue
            if created == 'before' and not (when and when < since):
                continue
            source = a.get('source') or {}
            found.append({
                'Name': a.get('name'), 'TrustAnchorId': a.get('trustAnchorId'),
                'Arn': a.get('trustAnchorArn'), 'Enabled': a.get('enabled'),
                'SourceType': source.get('sourceType'),
                'AcmPcaArn': (source.get('sourceData') or {}).get('acmPcaArn'),
                'CreatedAt': when.strftime('%Y-%m-%dT%H:%M:%SZ') if when else None})
        if not found:
            return []
        for r in resources:
            r[self.annotation_key] = found
        return resources
