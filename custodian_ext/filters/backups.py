"""Backup readiness (X8): what could not be restored if the attacker destroyed it."""
from c7n.filters import Filter
from c7n.utils import type_schema

from custodian_ext.registry import register_filter


def snapshotted_volumes(manager):
    """Volume ids that have at least one snapshot owned by the account, in this region.

    Read through c7n's ``ebs-snapshot`` listing (own snapshots, 1,000 a
    page), so that the run's resource cache serves this filter and the
    snapshot policies with one listing.
    """
    snapshots = manager.get_resource_manager('ebs-snapshot').resources()
    return {s.get('VolumeId') for s in snapshots if s.get('State') != 'error'}


@register_filter('without-snapshot', ['ebs'])
class WithoutSnapshot(Filter):
    """EBS volumes with no snapshot owned by the account (X8).

    One paginated DescribeSnapshots (own snapshots, 1,000 a page) per
    region, whatever the number of volumes. Snapshots in the ``error``
    state do not count. Snapshots taken by AWS Backup are EBS snapshots
    owned by the account and count; copies in other regions or accounts do
    not (their source volume id is not kept).

    :example:

    .. code-block:: yaml

        policies:
          - name: x8-ebs-volume-without-snapshot
            resource: aws.ebs
            filters:
              - State: in-use
              - type: without-snapshot
    """

    schema = type_schema('without-snapshot')
    permissions = ('ec2:DescribeSnapshots',)

    def process(self, resources, event=None):
        if not resources:
            return []
        have = snapshotted_volumes(self.manager)
        return [r for r in resources if r['VolumeId'] not in have]
