"""Backup readiness (X8): what could not be restored if the attacker destroyed it."""
from c7n.filters import Filter
from c7n.query import RetryPageIterator
from c7n.utils import local_session, type_schema

from custodian_ext.registry import register_filter


def snapshotted_volumes(manager):
    """Volume ids that have at least one snapshot owned by the account, in this region."""
    client = local_session(manager.session_factory).client('ec2')
    paginator = client.get_paginator('describe_snapshots')
    paginator.PAGE_ITERATOR_CLS = RetryPageIterator
    found = set()
    for page in paginator.paginate(OwnerIds=['self']):
        for s in page.get('Snapshots', ()):
            if s.get('State') != 'error':
                found.add(s.get('VolumeId'))
    return found


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
