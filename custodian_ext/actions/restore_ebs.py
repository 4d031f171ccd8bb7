"""``restore-from-snapshot`` (aws.ebs): a new volume from the volume's last snapshot before the
incident."""
import hashlib

from c7n.query import RetryPageIterator
from c7n.utils import chunks, local_session, type_schema

from custodian_ext.actions.core import DONE, SKIPPED, result
from custodian_ext.actions.recovery import (
    RECOVER_SCHEMA, TAG_INCIDENT, TAG_RESTORED_FROM, TAG_RESTORED_FROM_SNAPSHOT, RecoverAction,
    as_utc, iso, tag_value)
from custodian_ext.registry import register_action

#: volume types whose IOPS (and, for gp3, throughput) are set explicitly
IOPS_TYPES = ('io1', 'io2', 'gp3')


def _paginate(client, operation, **kw):
    paginator = client.get_paginator(operation)
    paginator.PAGE_ITERATOR_CLS = RetryPageIterator
    return paginator.paginate(**kw)


@register_action('restore-from-snapshot', ['ebs'])
class RestoreVolumeFromSnapshot(RecoverAction):
    """Create a new volume from the newest completed snapshot taken before ``incident-start``.

    The new volume is in the same Availability Zone, of the same type (IOPS
    and throughput kept for io1, io2 and gp3), and tagged ``restored-from``
    (the volume), ``restored-from-snapshot``, ``incident-id`` and
    ``restored-by``. Snapshots started at or after ``incident-start`` are
    never used. The compromised volume is neither detached nor deleted:
    attaching the restored volume in its place is left to a person (the
    result names the instance and device).

    A volume that already has a restored copy for this incident (found by
    its tags) is skipped, so the policy can be run again; so is a volume that
    is itself a restored copy.

    :example:

    .. code-block:: yaml

        policies:
          - name: x8-ebs-restore-from-snapshot
            resource: aws.ebs
            filters:
              - or:
                  - 'tag:incident-restore': '{incident_id}'
                  - type: instance
                    key: 'tag:incident-restore'
                    value: '{incident_id}'
              - 'tag:restored-from': absent
            actions:
              - type: restore-from-snapshot
                incident-start: '{incident_start}'
                incident-id: '{incident_id}'
                dry-run-report: '{restore_preview}'
    """

    schema = type_schema('restore-from-snapshot', **RECOVER_SCHEMA)
    permissions = ('ec2:DescribeSnapshots', 'ec2:DescribeVolumes', 'ec2:CreateVolume',
                   'ec2:CreateTags')
    id_key = 'VolumeId'

    def process(self, resources):
        client = local_session(self.manager.session_factory).client('ec2')
        ids = [r['VolumeId'] for r in resources]
        self.snapshots = self.snapshots_by_volume(client, ids)
        self.restored = self.restored_copies(client, ids)
        self.client = client
        return super().process(resources)

    def snapshots_by_volume(self, client, volume_ids):
        """All of the account's snapshots of these volumes, one listing per 200 volumes."""
        out = {}
        for batch in chunks(volume_ids, 200):
            for page in _paginate(client, 'describe_snapshots', OwnerIds=['self'],
                                  Filters=[{'Name': 'volume-id', 'Values': batch}]):
                for s in page.get('Snapshots') or ():
                    out.setdefault(s['VolumeId'], []).append(s)
        return out

    def restored_copies(self, client, volume_ids):
        """Volumes already restored from these volumes for this incident, by source volume."""
        out = {}
        for batch in chunks(volume_ids, 200):
            for page in _paginate(client, 'describe_volumes', Filters=[
                    {'Name': f'tag:{TAG_RESTORED_FROM}', 'Values': batch},
                    {'Name': f'tag:{TAG_INCIDENT}', 'Values': [self.incident_id]}]):
                for v in page.get('Volumes') or ():
                    out.setdefault(tag_value(v, TAG_RESTORED_FROM), []).append(v['VolumeId'])
        return out

    def pick_snapshot(self, volume_id):
        """The newest completed snapshot started before the incident, and how many were skipped."""
        start = self.incident_start
        snaps = self.snapshots.get(volume_id, [])
        after = [s for s in snaps if as_utc(s['StartTime']) >= start]
        before = [s for s in snaps
                  if as_utc(s['StartTime']) < start and s.get('State') == 'completed']
        best = max(before, key=lambda s: as_utc(s['StartTime']), default=None)
        return best, len(after)

    def process_resource(self, v):
        vid = v['VolumeId']
        attached = [{'InstanceId': a.get('InstanceId'), 'Device': a.get('Device')}
                    for a in v.get('Attachments') or ()]
        if tag_value(v, TAG_RESTORED_FROM):
            return result(vid, SKIPPED, f'this volume is itself restored from '
                          f'{tag_value(v, TAG_RESTORED_FROM)}')
        if self.restored.get(vid):
            return result(vid, SKIPPED, f"already restored for incident {self.incident_id} as "
                          f"{', '.join(self.restored[vid])}", restored_volumes=self.restored[vid])
        snap, ignored = self.pick_snapshot(vid)
        ignored_note = (f'; {ignored} snapshot(s) taken at or after incident_start were not '
                        f'considered' if ignored else '')
        if snap is None:
            return result(vid, SKIPPED, f'no completed snapshot from before incident_start: '
                          f'nothing to restore from{ignored_note}', attached_to=attached,
                          ignored_snapshots=ignored)
        facts = {'snapshot_id': snap['SnapshotId'],
                 'snapshot_start_time': iso(as_utc(snap['StartTime'])),
                 'availability_zone': v['AvailabilityZone'], 'attached_to': attached,
                 'ignored_snapshots': ignored}
        if self.preview:
            return result(vid, SKIPPED, f"preview (dry-run-report): would create a volume from "
                          f"{snap['SnapshotId']} ({facts['snapshot_start_time']}) in "
                          f"{v['AvailabilityZone']}{ignored_note}", preview=True, **facts)
        name = tag_value(v, 'Name')
        params = {
            'AvailabilityZone': v['AvailabilityZone'], 'SnapshotId': snap['SnapshotId'],
            'VolumeType': v.get('VolumeType') or 'gp3',
            # the same request is not repeated by a retry
            'ClientToken': hashlib.sha256(
                f"{vid}/{snap['SnapshotId']}/{self.incident_id}".encode()).hexdigest()[:64],
            'TagSpecifications': [{'ResourceType': 'volume', 'Tags': self.created_tags(
                vid, **{TAG_RESTORED_FROM_SNAPSHOT: snap['SnapshotId'],
                        'Name': f"{name or vid} (restored)"})}],
        }
        if params['VolumeType'] in IOPS_TYPES and v.get('Iops'):
            params['Iops'] = v['Iops']
        if params['VolumeType'] == 'gp3' and v.get('Throughput'):
            params['Throughput'] = v['Throughput']
        new = self.manager.retry(self.client.create_volume, **params)
        where = (' attach it in place of ' + ', '.join(
            f"{a['Device']} on {a['InstanceId']}" for a in attached) + ' once checked'
            if attached else '')
        return result(vid, DONE, f"created {new['VolumeId']} from {snap['SnapshotId']} "
                      f"({facts['snapshot_start_time']});{where or ' attach it where needed'}"
                      f"{ignored_note}", new_volume_id=new['VolumeId'], **facts)
