"""R4.2: take back snapshots and images an attacker shared with other accounts or made public.

Custodian's own ``cross-account`` filters find the shares and its own
``set-permissions`` actions remove them; ``revoke-shares`` runs the removal
one resource at a time, reads the permission back, and reports per resource
what it removed and what could not be removed.

The policies select with the detect filter ``shared-with-untrusted``
(``custodian_ext/filters/shares.py``), which fails the run when a share
cannot be read, where the stock ``cross-account`` filters drop the resource.
"""
from c7n.exceptions import PolicyValidationError
from c7n.filters.iamaccess import CrossAccountAccessFilter
from c7n.utils import type_schema

from custodian_ext.actions.core import DONE, FAILED, SKIPPED, PackAction, result
from custodian_ext.filters.shares import SharedWithUntrusted
from custodian_ext.registry import register_action

ANNOTATION = 'c7n:CrossAccountViolations'


def _ebs_shares(action, r):
    ec2 = action.client('ec2')
    perms = action.call(ec2.describe_snapshot_attribute, SnapshotId=r['SnapshotId'],
                        Attribute='createVolumePermission')['CreateVolumePermissions']
    return {p.get('Group') or p.get('UserId') for p in perms}


def _ami_shares(action, r):
    ec2 = action.client('ec2')
    perms = action.call(ec2.describe_image_attribute, ImageId=r['ImageId'],
                        Attribute='launchPermission')['LaunchPermissions']
    return {p.get('Group') or p.get('UserId') or p.get('OrganizationArn') or
            p.get('OrganizationalUnitArn') for p in perms}


def _rds_shares(action, r):
    rds = action.client('rds')
    attrs = action.call(rds.describe_db_snapshot_attributes,
                        DBSnapshotIdentifier=r['DBSnapshotIdentifier'])
    return {v for a in attrs['DBSnapshotAttributesResult']['DBSnapshotAttributes']
            if a['AttributeName'] == 'restore' for v in a.get('AttributeValues', ())}


def _rds_cluster_shares(action, r):
    rds = action.client('rds')
    attrs = action.call(rds.describe_db_cluster_snapshot_attributes,
                        DBClusterSnapshotIdentifier=r['DBClusterSnapshotIdentifier'])
    return {v for a in attrs['DBClusterSnapshotAttributesResult']['DBClusterSnapshotAttributes']
            if a['AttributeName'] == 'restore' for v in a.get('AttributeValues', ())}


# resource type -> (read the shares back, permissions for removing and reading)
SHARES = {
    'ebs-snapshot': (_ebs_shares, ('ec2:ModifySnapshotAttribute', 'ec2:DescribeSnapshotAttribute')),
    'ami': (_ami_shares, ('ec2:ModifyImageAttribute', 'ec2:DescribeImageAttribute')),
    'rds-snapshot': (_rds_shares, ('rds:ModifyDBSnapshotAttribute',
                                   'rds:DescribeDBSnapshotAttributes')),
    'rds-cluster-snapshot': (_rds_cluster_shares, ('rds:ModifyDBClusterSnapshotAttribute',
                                                   'rds:DescribeDBClusterSnapshotAttributes')),
}


@register_action('revoke-shares', list(SHARES))
class RevokeShares(PackAction):
    """Remove the accounts the ``cross-account`` filter matched, and check (R4.2).

    For each snapshot or image, Custodian's ``set-permissions`` removes
    exactly the principals in ``c7n:CrossAccountViolations`` (other
    accounts, ``all`` for public, organization ARNs for AMIs), as found by
    ``shared-with-untrusted`` or ``cross-account``; the permission is then
    read back, and the result is ``failed`` if any of them is still there.
    Trusted accounts keep their access.

    :example:

    .. code-block:: yaml

        policies:
          - name: r4-2-unshare-ebs-snapshots
            resource: aws.ebs-snapshot
            filters:
              - type: shared-with-untrusted
                trusted: '{trusted_accounts}'
            actions:
              - revoke-shares
    """

    schema = type_schema('revoke-shares')

    def get_permissions(self):
        return SHARES[self.manager.type][1]

    def validate(self):
        if not any(isinstance(f, (CrossAccountAccessFilter, SharedWithUntrusted))
                   for f in self.manager.iter_filters()):
            raise PolicyValidationError(
                f'{self.type} removes the accounts the cross-account filter matched; add that '
                f'filter to policy {self.manager.ctx.policy.name}')
        return self

    def process(self, resources):
        self.read_shares = SHARES[self.manager.type][0]
        return super().process(resources)

    def still_needed(self, r):
        matched = set(r.get(ANNOTATION) or ())
        if matched and not self.read_shares(self, r) & matched:
            return 'no longer shared with ' + ', '.join(sorted(matched))
        return None

    def process_resource(self, r):
        rid = self.resource_id(r)
        matched = sorted(set(r.get(ANNOTATION) or ()))
        if not matched:
            return result(rid, SKIPPED, 'not shared outside the trusted accounts')
        stock = self.manager.action_registry.get('set-permissions')(
            {'type': 'set-permissions', 'remove': list(matched)}, self.manager)
        stock.process([r])
        remaining = sorted(self.read_shares(self, r) & set(matched))
        if remaining:
            return result(rid, FAILED, 'still shared with ' + ', '.join(remaining),
                          removed=sorted(set(matched) - set(remaining)), remaining=remaining)
        return result(rid, DONE, 'no longer shared with ' + ', '.join(matched), removed=matched)
