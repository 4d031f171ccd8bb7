"""X8 restore-from-backup: a new DB instance with the state from before the incident.

The first test runs the shipped policy in-process against the emulator: moto
implements RestoreDBInstanceFromDBSnapshot and RestoreDBInstanceToPointInTime
(it accepts RestoreTime without acting on it) and stamps snapshots with the
real time, so "before" snapshots are taken, then ``incident_boundary()``,
then the "after" ones.

moto's DescribeDBInstanceAutomatedBackups has no ``RestoreWindow``, so the
restorable-window logic and the exact restore requests are tested with
botocore's Stubber and AWS-shaped responses (second test).
"""
import datetime
import json
import os

import boto3
from botocore.stub import Stubber

from c7n.config import Config
from c7n.policy import Policy

from custodian_ext.actions import restore_rds
from custodian_ext_dev.demo.story import incident_boundary
from custodian_ext.settings import parse_timestamp
from tests.support import load_policy, policy_vars, run_policy

POLICY = 'x8-rds-restore-from-backup'
INCIDENT = 'inc-9'
FLAG = [{'Key': 'incident-restore', 'Value': INCIDENT}]


def results(out):
    with open(os.path.join(out, POLICY, 'action-results-restore-from-backup.json')) as fh:
        return {r['resource_id']: r for r in json.load(fh)}


def test_restores_before_the_incident_into_new_instances(aws, tmp_path):
    ec2, rds = aws.client('ec2'), aws.client('rds')
    vpc = ec2.create_vpc(CidrBlock='10.8.0.0/16')['Vpc']['VpcId']
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f'10.8.{i}.0/24',
                                 AvailabilityZone=f'us-east-1{az}')['Subnet']['SubnetId']
               for i, az in enumerate('ab')]
    sg = ec2.create_security_group(GroupName='db', Description='db', VpcId=vpc)['GroupId']
    rds.create_db_subnet_group(DBSubnetGroupName='app-db', DBSubnetGroupDescription='app',
                               SubnetIds=subnets)

    def db(name, retention, tags=FLAG):
        rds.create_db_instance(
            DBInstanceIdentifier=name, Engine='postgres', DBInstanceClass='db.t3.small',
            MasterUsername='app', MasterUserPassword='password-123', AllocatedStorage=20,
            DBSubnetGroupName='app-db', VpcSecurityGroupIds=[sg],
            BackupRetentionPeriod=retention, Tags=tags)

    db('orders', 0)     # no automated backups: restored from its snapshot
    db('ledger', 7)     # automated backups: restored to a point in time
    db('reports', 0, tags=[])  # not flagged
    rds.create_db_snapshot(DBInstanceIdentifier='orders', DBSnapshotIdentifier='orders-old')
    incident_boundary()  # moto's snapshot times have whole seconds: keep the two apart
    rds.create_db_snapshot(DBInstanceIdentifier='orders', DBSnapshotIdentifier='orders-before')
    rds.create_db_snapshot(DBInstanceIdentifier='reports', DBSnapshotIdentifier='reports-before')
    start = incident_boundary()
    db('sessions', 0)  # (re)created after the incident: every snapshot of it is newer
    for name in ('orders', 'sessions', 'ledger'):
        rds.create_db_snapshot(DBInstanceIdentifier=name, DBSnapshotIdentifier=f'{name}-after')
    variables = policy_vars(incident_start=start, incident_id=INCIDENT,
                            restore_pitr_margin_minutes=0)

    run_policy(load_policy('recover/x8.yml', POLICY), variables, account=aws,
               output_dir=str(tmp_path / 'out'))

    res = results(tmp_path / 'out')
    assert set(res) == {'orders', 'ledger', 'sessions'}
    day = parse_timestamp(start).strftime('%Y%m%d')
    assert res['orders']['status'] == 'done'
    assert (res['orders']['method'], res['orders']['snapshot_id']) == ('snapshot', 'orders-before')
    assert res['ledger']['status'] == 'done'
    assert (res['ledger']['method'], res['ledger']['restore_point']) == ('point-in-time', start)
    assert res['sessions']['status'] == 'skipped'
    assert 'no available snapshot created before incident_start' in res['sessions']['reason']
    assert 'created at or after it were not considered' in res['sessions']['reason']

    instances = {d['DBInstanceIdentifier']: d for d in rds.describe_db_instances()['DBInstances']}
    assert {'orders', 'ledger', 'sessions', 'reports'} <= set(instances)  # nothing removed
    for source in ('orders', 'ledger'):
        new = instances[f'{source}-restored-{day}']
        assert new['DBSubnetGroup']['DBSubnetGroupName'] == 'app-db'
        assert [g['VpcSecurityGroupId'] for g in new['VpcSecurityGroups']] == [sg]
        assert new['DBInstanceClass'] == 'db.t3.small'
        tags = {t['Key']: t['Value'] for t in new['TagList']}
        assert tags['restored-from'] == source and tags['incident-id'] == INCIDENT
        assert 'incident-restore' not in tags  # a restored copy is never selected again
    assert len(instances) == 6

    # A second run restores nothing more.
    run_policy(load_policy('recover/x8.yml', POLICY), variables, account=aws,
               output_dir=str(tmp_path / 'again'))
    again = results(tmp_path / 'again')
    assert again['orders']['status'] == 'skipped'
    assert 'already restored' in again['orders']['reason']
    assert len(rds.describe_db_instances()['DBInstances']) == 6


START = '2026-11-28T09:30:00Z'


def db_resource(name):
    return {
        'DBInstanceIdentifier': name, 'DBInstanceClass': 'db.r6g.large', 'MultiAZ': True,
        'BackupRetentionPeriod': 7, 'Engine': 'mysql',
        'LatestRestorableTime':
            datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.timezone.utc),
        'DBSubnetGroup': {'DBSubnetGroupName': 'prod-db'},
        'VpcSecurityGroups': [{'VpcSecurityGroupId': 'sg-0aaa', 'Status': 'active'},
                              {'VpcSecurityGroupId': 'sg-0bbb', 'Status': 'active'}],
        'DBParameterGroups': [{'DBParameterGroupName': 'prod-mysql8'}],
        'OptionGroupMemberships': [{'OptionGroupName': 'default:mysql-8-0'}],
        'Tags': FLAG}


def test_point_in_time_window_and_exact_requests_stubbed(tmp_path, monkeypatch):
    """Stubber, AWS-shaped: one instance whose window covers incident_start - margin gets a
    point-in-time restore to exactly that time; one whose window starts later falls back to
    its newest snapshot from before incident_start (a later one is ignored)."""
    import custodian_ext  # noqa: F401
    from c7n.resources import load_resources
    load_resources(('aws.rds',))
    data = load_policy('recover/x8.yml', POLICY)
    p = Policy(data, Config.empty(region='us-east-1', account_id='123456789012',
                                  output_dir=str(tmp_path)))
    p.expand_variables(p.get_variables(policy_vars(
        incident_start=START, incident_id=INCIDENT, restore_pitr_margin_minutes=10)))
    p.validate()
    [action] = p.resource_manager.actions

    client = boto3.Session(region_name='us-east-1', aws_access_key_id='x',
                           aws_secret_access_key='x').client('rds')
    utc = datetime.timezone.utc
    stub = Stubber(client)
    stub.add_response('describe_db_snapshots', {'DBSnapshots': [
        {'DBSnapshotIdentifier': 'rds:billing-2026-11-28-03-10', 'DBInstanceIdentifier': 'billing',
         'SnapshotCreateTime': datetime.datetime(2026, 11, 28, 3, 10, tzinfo=utc),
         'Status': 'available', 'SnapshotType': 'automated'},
        {'DBSnapshotIdentifier': 'billing-manual', 'DBInstanceIdentifier': 'billing',
         'SnapshotCreateTime': datetime.datetime(2026, 11, 28, 9, 29, tzinfo=utc),
         'Status': 'available', 'SnapshotType': 'manual'},
        {'DBSnapshotIdentifier': 'billing-attacker', 'DBInstanceIdentifier': 'billing',
         'SnapshotCreateTime': datetime.datetime(2026, 11, 28, 9, 30, tzinfo=utc),
         'Status': 'available', 'SnapshotType': 'manual'},
    ]}, {'Filters': [{'Name': 'db-instance-id', 'Values': ['accounts', 'billing']}]})
    stub.add_response('describe_db_instance_automated_backups', {'DBInstanceAutomatedBackups': [
        {'DBInstanceIdentifier': 'accounts', 'Status': 'active', 'RestoreWindow': {
            'EarliestTime': datetime.datetime(2026, 11, 21, 9, 0, tzinfo=utc),
            'LatestTime': datetime.datetime(2026, 11, 28, 12, 0, tzinfo=utc)}},
        {'DBInstanceIdentifier': 'billing', 'Status': 'active', 'RestoreWindow': {
            'EarliestTime': datetime.datetime(2026, 11, 28, 9, 25, tzinfo=utc),
            'LatestTime': datetime.datetime(2026, 11, 28, 12, 0, tzinfo=utc)}},
    ]}, {})
    stub.add_response('describe_db_instances', {'DBInstances': []}, {})
    tags = [{'Key': 'restored-by', 'Value': 'custodian-ext'}]

    def expect(operation, params):
        stub.add_response(operation, {'DBInstance': {'DBInstanceIdentifier': 'x'}}, params)

    common = {'DBInstanceClass': 'db.r6g.large', 'MultiAZ': True, 'PubliclyAccessible': False,
              'DBSubnetGroupName': 'prod-db', 'VpcSecurityGroupIds': ['sg-0aaa', 'sg-0bbb'],
              'DBParameterGroupName': 'prod-mysql8'}
    expect('restore_db_instance_to_point_in_time', dict(
        common, SourceDBInstanceIdentifier='accounts',
        TargetDBInstanceIdentifier='accounts-restored-20261128',
        RestoreTime=datetime.datetime(2026, 11, 28, 9, 20, tzinfo=utc),
        Tags=[{'Key': 'restored-from', 'Value': 'accounts'},
              {'Key': 'incident-id', 'Value': INCIDENT}] + tags +
             [{'Key': 'restored-to-time', 'Value': '2026-11-28T09:20:00Z'}]))
    expect('restore_db_instance_from_db_snapshot', dict(
        common, DBInstanceIdentifier='billing-restored-20261128',
        DBSnapshotIdentifier='billing-manual',
        Tags=[{'Key': 'restored-from', 'Value': 'billing'},
              {'Key': 'incident-id', 'Value': INCIDENT}] + tags +
             [{'Key': 'restored-from-snapshot', 'Value': 'billing-manual'}]))

    class FakeSession:
        def client(self, service):
            assert service == 'rds'
            return client

    monkeypatch.setattr(restore_rds, 'local_session', lambda factory: FakeSession())
    with stub:
        out = {r['resource_id']: r for r in action.process(
            [db_resource('accounts'), db_resource('billing')])}
        stub.assert_no_pending_responses()
    assert out['accounts']['method'] == 'point-in-time'
    assert out['billing']['method'] == 'snapshot'
    assert out['billing']['snapshot_id'] == 'billing-manual'


def test_restored_name_fits_rds_rules():
    when = datetime.datetime(2026, 11, 28, tzinfo=datetime.timezone.utc)
    assert restore_rds.restored_name('orders', when) == 'orders-restored-20261128'
    long = restore_rds.restored_name('a' * 44 + '-b' * 20, when)
    assert len(long) <= 63 and '--' not in long and long.endswith('-restored-20261128')
