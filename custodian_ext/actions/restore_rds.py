"""``restore-from-backup`` (aws.rds): a new DB instance holding the state from before the
incident."""
import datetime
import re

from c7n.query import RetryPageIterator
from c7n.utils import chunks, local_session, type_schema

from custodian_ext.actions.core import DONE, FAILED, SKIPPED, result
from custodian_ext.actions.recovery import (
    RECOVER_SCHEMA, TAG_INCIDENT, TAG_RESTORED_FROM, TAG_RESTORED_FROM_SNAPSHOT,
    TAG_RESTORED_TO_TIME, RecoverAction, as_utc, iso, tag_value)
from custodian_ext.registry import register_action
from custodian_ext.settings import SETTINGS, or_placeholder

METHODS = ('auto', 'snapshot', 'point-in-time')
SUFFIX = '-restored-'
MAX_ID = 63
MARGIN_SETTING = 'restore_pitr_margin_minutes'
DEFAULT_MARGIN = SETTINGS[MARGIN_SETTING].default


def _paginate(client, operation, **kw):
    paginator = client.get_paginator(operation)
    paginator.PAGE_ITERATOR_CLS = RetryPageIterator
    return paginator.paginate(**kw)


def restored_name(db_id, when):
    """``<id>-restored-<YYYYMMDD>``, within RDS's 63 characters and identifier rules."""
    suffix = f"{SUFFIX}{when.strftime('%Y%m%d')}"
    head = re.sub(r'-+$', '', db_id[:MAX_ID - len(suffix)])
    return head + suffix


def _tags(resource):
    return resource.get('Tags') or resource.get('TagList') or ()


@register_action('restore-from-backup', ['rds'])
class RestoreDBInstance(RecoverAction):
    """Restore a DB instance's state from before ``incident-start`` into a new instance.

    ``method``:

    - ``point-in-time``: restore to ``incident-start`` minus
      ``pitr-margin-minutes``, where automated backups are on and that time
      is inside the instance's restorable window;
    - ``snapshot``: restore the newest available automated or manual
      snapshot created before ``incident-start`` (snapshots created at or
      after it are never used);
    - ``auto`` (default): point in time where possible, else the snapshot.

    The new instance is named ``<id>-restored-<YYYYMMDD>`` (the UTC day of
    the state it holds), uses the same DB subnet group, VPC security groups,
    instance class, Multi-AZ setting and (non-default) parameter and option
    groups, is not publicly accessible, and is tagged ``restored-from``,
    ``incident-id``, ``restored-by`` and ``restored-from-snapshot`` or
    ``restored-to-time``. The compromised instance is left in place. Pointing
    applications at the new endpoint is left to a person.

    Aurora and Multi-AZ DB cluster members and read replicas are skipped with
    the reason (restore the cluster, or the replica's source). An instance
    that already has a restored copy for this incident is skipped, so the
    policy can be run again.

    :example:

    .. code-block:: yaml

        policies:
          - name: x8-rds-restore-from-backup
            resource: aws.rds
            filters:
              - 'tag:incident-restore': '{incident_id}'
              - 'tag:restored-from': absent
            actions:
              - type: restore-from-backup
                incident-start: '{incident_start}'
                incident-id: '{incident_id}'
                method: auto
                pitr-margin-minutes: '{restore_pitr_margin_minutes}'
                dry-run-report: '{restore_preview}'
    """

    schema = type_schema(
        'restore-from-backup', method={'enum': list(METHODS)}, **RECOVER_SCHEMA,
        **{'pitr-margin-minutes': or_placeholder({'type': 'integer', 'minimum': 0})})
    permissions = (
        'rds:DescribeDBInstances', 'rds:DescribeDBSnapshots',
        'rds:DescribeDBInstanceAutomatedBackups', 'rds:RestoreDBInstanceFromDBSnapshot',
        'rds:RestoreDBInstanceToPointInTime', 'rds:AddTagsToResource',
        'kms:DescribeKey', 'kms:CreateGrant')
    id_key = 'DBInstanceIdentifier'

    def validate(self):
        super().validate()
        self.option('pitr-margin-minutes', MARGIN_SETTING, DEFAULT_MARGIN)
        return self

    @property
    def method(self):
        return self.data.get('method', 'auto')

    @property
    def target_time(self):
        margin = self.option('pitr-margin-minutes', MARGIN_SETTING, DEFAULT_MARGIN) or 0
        return self.incident_start - datetime.timedelta(minutes=margin)

    def process(self, resources):
        client = local_session(self.manager.session_factory).client('rds')
        self.client = client
        ids = [r['DBInstanceIdentifier'] for r in resources]
        self.snapshots = self.snapshots_by_instance(client, ids)
        self.windows = self.restore_windows(client)
        self.instances = {d['DBInstanceIdentifier']: d
                          for page in _paginate(client, 'describe_db_instances')
                          for d in page.get('DBInstances') or ()}
        return super().process(resources)

    def snapshots_by_instance(self, client, ids):
        out = {}
        for batch in chunks(ids, 50):
            for page in _paginate(client, 'describe_db_snapshots', Filters=[
                    {'Name': 'db-instance-id', 'Values': batch}]):
                for s in page.get('DBSnapshots') or ():
                    out.setdefault(s['DBInstanceIdentifier'], []).append(s)
        return out

    def restore_windows(self, client):
        """The restorable window of each instance's automated backups, where AWS gives one."""
        out = {}
        for page in _paginate(client, 'describe_db_instance_automated_backups'):
            for b in page.get('DBInstanceAutomatedBackups') or ():
                if b.get('Status', 'active') == 'active' and b.get('RestoreWindow'):
                    out[b['DBInstanceIdentifier']] = b['RestoreWindow']
        return out

    # -- choosing the restore point ------------------------------------------------

    def pick_snapshot(self, db_id):
        start = self.incident_start
        snaps = self.snapshots.get(db_id, [])
        after = [s for s in snaps if s.get('SnapshotCreateTime')
                 and as_utc(s['SnapshotCreateTime']) >= start]
        before = [s for s in snaps if s.get('Status') == 'available' and s.get('SnapshotCreateTime')
                  and as_utc(s['SnapshotCreateTime']) < start]
        return max(before, key=lambda s: as_utc(s['SnapshotCreateTime']), default=None), len(after)

    def pitr_problem(self, db):
        """Why ``target_time`` cannot be restored to point in time; None if it can."""
        target = self.target_time
        if not db.get('BackupRetentionPeriod'):
            return 'automated backups are off (backup retention 0)'
        latest = db.get('LatestRestorableTime')
        if not latest or as_utc(latest) < target:
            return f"the latest restorable time is {iso(as_utc(latest)) if latest else 'unknown'}"
        window = self.windows.get(db['DBInstanceIdentifier']) or {}
        earliest = window.get('EarliestTime')
        if earliest is None:
            # Without a RestoreWindow, the oldest automated snapshot bounds the window.
            autos = [as_utc(s['SnapshotCreateTime'])
                     for s in self.snapshots.get(db['DBInstanceIdentifier'], [])
                     if s.get('SnapshotType') == 'automated' and s.get('SnapshotCreateTime')]
            earliest = min(autos, default=None)
        if earliest is None:
            return 'the earliest restorable time is unknown (no automated backup listed)'
        if as_utc(earliest) > target:
            return f"the earliest restorable time is {iso(as_utc(earliest))}"
        return None

    def choose(self, db):
        """('point-in-time', time, None) or ('snapshot', time, snapshot), or
        (None, reason, None)."""
        pitr_problem = self.pitr_problem(db) if self.method != 'snapshot' else 'not tried'
        if self.method != 'snapshot' and pitr_problem is None:
            return 'point-in-time', self.target_time, None
        if self.method == 'point-in-time':
            return None, (f"point-in-time restore to {iso(self.target_time)} is not possible: "
                          f"{pitr_problem}"), None
        snap, ignored = self.pick_snapshot(db['DBInstanceIdentifier'])
        if snap is None:
            why = 'no available snapshot created before incident_start'
            if ignored:
                why += f' ({ignored} created at or after it were not considered)'
            if self.method == 'auto':
                why += f'; point-in-time restore to {iso(self.target_time)}: {pitr_problem}'
            return None, f'nothing to restore from: {why}', None
        return 'snapshot', as_utc(snap['SnapshotCreateTime']), snap

    # -- one instance ----------------------------------------------------------------

    def existing_restores(self, db_id):
        return sorted(i for i, d in self.instances.items()
                      if tag_value(d, TAG_RESTORED_FROM, 'TagList') == db_id
                      and tag_value(d, TAG_INCIDENT, 'TagList') == self.incident_id)

    def common_params(self, db, name, tags):
        params = {'DBInstanceIdentifier': name, 'DBInstanceClass': db['DBInstanceClass'],
                  'MultiAZ': bool(db.get('MultiAZ')), 'PubliclyAccessible': False, 'Tags': tags}
        subnet_group = (db.get('DBSubnetGroup') or {}).get('DBSubnetGroupName')
        if subnet_group:
            params['DBSubnetGroupName'] = subnet_group
        groups = [g['VpcSecurityGroupId'] for g in db.get('VpcSecurityGroups') or ()]
        if groups:
            params['VpcSecurityGroupIds'] = groups
        # Custom groups carry the application's settings; default ones are
        # chosen by RDS for the restored engine version.
        pgroups = [g['DBParameterGroupName'] for g in db.get('DBParameterGroups') or ()]
        if pgroups and not pgroups[0].startswith('default.'):
            params['DBParameterGroupName'] = pgroups[0]
        ogroups = [g['OptionGroupName'] for g in db.get('OptionGroupMemberships') or ()]
        if ogroups and not ogroups[0].startswith('default:'):
            params['OptionGroupName'] = ogroups[0]
        return params

    def process_resource(self, db):
        db_id = db['DBInstanceIdentifier']
        if tag_value({'Tags': _tags(db)}, TAG_RESTORED_FROM):
            return result(db_id, SKIPPED, 'this instance is itself a restored copy')
        if db.get('DBClusterIdentifier'):
            return result(db_id, SKIPPED, f"member of DB cluster {db['DBClusterIdentifier']}: "
                          f"restore the cluster (cluster restores are not automated by the pack)")
        if db.get('ReadReplicaSourceDBInstanceIdentifier'):
            return result(db_id, SKIPPED, f"read replica of "
                          f"{db['ReadReplicaSourceDBInstanceIdentifier']}: restore the source")
        done = self.existing_restores(db_id)
        if done:
            return result(db_id, SKIPPED, f"already restored for incident {self.incident_id} as "
                          f"{', '.join(done)}", restored_instances=done)
        method, point, snap = self.choose(db)
        if method is None:
            return result(db_id, SKIPPED, point)
        name = restored_name(db_id, point)
        facts = {'method': method, 'restore_point': iso(point), 'new_instance': name}
        if snap:
            facts['snapshot_id'] = snap['DBSnapshotIdentifier']
            facts['snapshot_type'] = snap.get('SnapshotType')
        if name in self.instances:
            return result(db_id, FAILED, f"{name} already exists and is not a restore of {db_id} "
                          f"for incident {self.incident_id}; rename it or restore by hand", **facts)
        extra = ({TAG_RESTORED_FROM_SNAPSHOT: snap['DBSnapshotIdentifier']} if snap
                 else {TAG_RESTORED_TO_TIME: iso(point)})
        params = self.common_params(db, name, self.created_tags(db_id, **extra))
        facts.update(subnet_group=params.get('DBSubnetGroupName'),
                     security_groups=params.get('VpcSecurityGroupIds', []))
        what = (f"snapshot {snap['DBSnapshotIdentifier']} ({iso(point)})" if snap
                else f"point in time {iso(point)}")
        if self.preview:
            return result(db_id, SKIPPED, f"preview (dry-run-report): would restore {what} as "
                          f"{name}", preview=True, **facts)
        if snap:
            new = self.manager.retry(self.client.restore_db_instance_from_db_snapshot,
                                     DBSnapshotIdentifier=snap['DBSnapshotIdentifier'], **params)
        else:
            target = params.pop('DBInstanceIdentifier')
            new = self.manager.retry(self.client.restore_db_instance_to_point_in_time,
                                     SourceDBInstanceIdentifier=db_id,
                                     TargetDBInstanceIdentifier=target, RestoreTime=point,
                                     **params)
        self.instances[name] = new.get('DBInstance') or {}
        return result(db_id, DONE, f"restoring {what} as {name}; {db_id} is left in place. Point "
                      f"applications at {name}'s endpoint once it is available and checked",
                      **facts)
