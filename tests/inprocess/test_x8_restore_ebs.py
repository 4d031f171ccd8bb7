"""X8 restore-from-snapshot: a new volume from the last snapshot before the incident, never after.

Runs the shipped policy in-process against the emulator (moto keeps EBS
volumes and snapshots). moto stamps snapshots with the real time: the
"before" snapshots are taken, then ``incident_boundary()``, then the "after"
ones.
"""
import json
import os

from custodian_ext_dev.demo.story import incident_boundary
from custodian_ext_dev.emulator import AMI_X86
from tests.support import load_policy, policy_vars, run_policy

POLICY = 'x8-ebs-restore-from-snapshot'
INCIDENT = 'inc-7'
FLAG = [{'Key': 'incident-restore', 'Value': INCIDENT}]


def results(out):
    with open(os.path.join(out, POLICY, 'action-results-restore-from-snapshot.json')) as fh:
        return {r['resource_id']: r for r in json.load(fh)}


def tags(resource):
    return {t['Key']: t['Value'] for t in resource.get('Tags') or ()}


def test_restores_from_newest_snapshot_before_incident_and_leaves_the_volume(aws, tmp_path):
    ec2 = aws.client('ec2')
    instance = ec2.run_instances(
        ImageId=AMI_X86, MinCount=1, MaxCount=1, Placement={'AvailabilityZone': 'us-east-1b'},
        TagSpecifications=[{'ResourceType': 'instance', 'Tags': FLAG}])['Instances'][0]
    root = instance['BlockDeviceMappings'][0]['Ebs']['VolumeId']
    data = ec2.create_volume(AvailabilityZone='us-east-1b', Size=20, VolumeType='gp3', Iops=4000,
                             Throughput=250)['VolumeId']
    ec2.attach_volume(VolumeId=data, InstanceId=instance['InstanceId'], Device='/dev/sdf')
    lonely = ec2.create_volume(AvailabilityZone='us-east-1a', Size=8, TagSpecifications=[
        {'ResourceType': 'volume', 'Tags': FLAG}])['VolumeId']
    unflagged = ec2.create_volume(AvailabilityZone='us-east-1a', Size=8)['VolumeId']
    ec2.create_snapshot(VolumeId=data, Description='older')
    incident_boundary()  # moto's StartTime has whole seconds: keep the two apart
    good = ec2.create_snapshot(VolumeId=data, Description='newest before')['SnapshotId']
    root_snap = ec2.create_snapshot(VolumeId=root)['SnapshotId']
    ec2.create_snapshot(VolumeId=unflagged)
    start = incident_boundary()
    for vol in (data, root, lonely, unflagged):
        ec2.create_snapshot(VolumeId=vol, Description='taken after the incident')
    variables = policy_vars(incident_start=start, incident_id=INCIDENT)

    # Preview: reports the plan, creates nothing.
    run_policy(load_policy('recover/x8.yml', POLICY), dict(variables, restore_preview=True),
               account=aws, output_dir=str(tmp_path / 'preview'))
    planned = results(tmp_path / 'preview')
    assert planned[data]['status'] == 'skipped' and planned[data]['snapshot_id'] == good
    assert len(ec2.describe_volumes()['Volumes']) == 4

    run_policy(load_policy('recover/x8.yml', POLICY), variables, account=aws,
               output_dir=str(tmp_path / 'out'))
    res = results(tmp_path / 'out')
    assert set(res) == {root, data, lonely}  # only flagged volumes, or on a flagged instance
    assert res[data]['status'] == 'done' and res[data]['snapshot_id'] == good
    assert res[data]['ignored_snapshots'] == 1
    assert res[data]['attached_to'] == [
        {'InstanceId': instance['InstanceId'], 'Device': '/dev/sdf'}]
    assert res[root]['status'] == 'done' and res[root]['snapshot_id'] == root_snap
    assert res[lonely]['status'] == 'skipped'
    assert 'no completed snapshot from before incident_start' in res[lonely]['reason']

    new = ec2.describe_volumes(VolumeIds=[res[data]['new_volume_id']])['Volumes'][0]
    assert new['SnapshotId'] == good and new['AvailabilityZone'] == 'us-east-1b'
    assert (new['VolumeType'], new['Iops'], new['Throughput']) == ('gp3', 4000, 250)
    assert tags(new) == {'restored-from': data, 'restored-from-snapshot': good,
                         'incident-id': INCIDENT, 'restored-by': 'custodian-ext',
                         'Name': f'{data} (restored)'}
    # the compromised volumes are still there and still attached
    old = {v['VolumeId']: v for v in ec2.describe_volumes(VolumeIds=[data, root])['Volumes']}
    assert all(v['State'] == 'in-use' for v in old.values())
    assert len(ec2.describe_volumes()['Volumes']) == 6

    # A second run creates nothing more.
    run_policy(load_policy('recover/x8.yml', POLICY), variables, account=aws,
               output_dir=str(tmp_path / 'again'))
    again = results(tmp_path / 'again')
    assert again[data]['status'] == 'skipped' and 'already restored' in again[data]['reason']
    assert len(ec2.describe_volumes()['Volumes']) == 6
