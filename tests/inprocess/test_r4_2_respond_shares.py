"""R4.2 revoke-shares, in-process against the emulator."""
import json
import os

import pytest
from c7n.exceptions import PolicyExecutionError

from custodian_ext_dev.emulator import AMI_X86
from tests.support import fast_client, inject_faults, load_policy, policy_vars, run_policy

UNSHARE = {t: load_policy('respond/r4-2-shares.yml', f'r4-2-unshare-{t}')
           for t in ('ebs-snapshots', 'amis', 'rds-snapshots')}
TRUSTED, FOREIGN = '111122223333', '444455556666'


def results(out, policy, action):
    with open(os.path.join(out, policy, f'action-results-{action}.json')) as fh:
        return {r['resource_id']: r for r in json.load(fh)}


def test_unshares_snapshots_images_and_rds_snapshots_but_keeps_trusted_accounts(
        aws, tmp_path, monkeypatch):
    ec2, rds = fast_client(aws, 'ec2'), fast_client(aws, 'rds')
    vol = ec2.create_volume(AvailabilityZone='us-east-1a', Size=1)['VolumeId']
    leaked = ec2.create_snapshot(VolumeId=vol)['SnapshotId']
    trusted_only = ec2.create_snapshot(VolumeId=vol)['SnapshotId']
    ec2.modify_snapshot_attribute(SnapshotId=leaked, Attribute='createVolumePermission',
                                  OperationType='add', UserIds=[FOREIGN, TRUSTED],
                                  GroupNames=['all'])
    ec2.modify_snapshot_attribute(SnapshotId=trusted_only, Attribute='createVolumePermission',
                                  OperationType='add', UserIds=[TRUSTED])
    iid = ec2.run_instances(ImageId=AMI_X86, MinCount=1, MaxCount=1)['Instances'][0]['InstanceId']
    image = ec2.create_image(InstanceId=iid, Name='golden')['ImageId']
    ec2.modify_image_attribute(ImageId=image, LaunchPermission={'Add': [
        {'UserId': FOREIGN}, {'UserId': TRUSTED}, {'Group': 'all'}]})
    rds.create_db_instance(DBInstanceIdentifier='db', DBInstanceClass='db.t3.micro',
                           Engine='postgres', MasterUsername='admin',
                           MasterUserPassword='password123', AllocatedStorage=20)
    rds.create_db_snapshot(DBInstanceIdentifier='db', DBSnapshotIdentifier='db-snap')
    rds.modify_db_snapshot_attribute(DBSnapshotIdentifier='db-snap', AttributeName='restore',
                                     ValuesToAdd=[FOREIGN, TRUSTED])
    variables = policy_vars(trusted_accounts=[TRUSTED])

    for kind, policy in UNSHARE.items():
        run_policy(policy, variables, account=aws, output_dir=str(tmp_path))

    def snapshot_shares(sid):
        return {p.get('UserId') or p.get('Group') for p in ec2.describe_snapshot_attribute(
            SnapshotId=sid, Attribute='createVolumePermission')['CreateVolumePermissions']}
    assert snapshot_shares(leaked) == {TRUSTED}
    assert snapshot_shares(trusted_only) == {TRUSTED}
    assert {p.get('UserId') or p.get('Group') for p in ec2.describe_image_attribute(
        ImageId=image, Attribute='launchPermission')['LaunchPermissions']} == {TRUSTED}
    attrs = rds.describe_db_snapshot_attributes(DBSnapshotIdentifier='db-snap')[
        'DBSnapshotAttributesResult']['DBSnapshotAttributes']
    assert [a['AttributeValues'] for a in attrs if a['AttributeName'] == 'restore'] == [[TRUSTED]]
    ebs = results(str(tmp_path), 'r4-2-unshare-ebs-snapshots', 'revoke-shares')
    assert set(ebs) == {leaked} and ebs[leaked]['removed'] == sorted([FOREIGN, 'all'])
    assert results(str(tmp_path), 'r4-2-unshare-amis', 'revoke-shares')[image]['status'] == 'done'
    assert results(str(tmp_path), 'r4-2-unshare-rds-snapshots', 'revoke-shares')['db-snap'][
        'removed'] == [FOREIGN]

    # ModifySnapshotAttribute swallowed (injected): reading the permission back shows the
    # foreign account still there, and the snapshot is reported as failed.
    ec2.modify_snapshot_attribute(SnapshotId=leaked, Attribute='createVolumePermission',
                                  OperationType='add', UserIds=[FOREIGN])
    inject_faults(monkeypatch, ModifySnapshotAttribute=lambda params, call: {})
    with pytest.raises(PolicyExecutionError, match=f'still shared with {FOREIGN}'):
        run_policy(UNSHARE['ebs-snapshots'], variables, account=aws,
                   output_dir=str(tmp_path / 'stuck'))
    res = results(str(tmp_path / 'stuck'), 'r4-2-unshare-ebs-snapshots', 'revoke-shares')[leaked]
    assert res['status'] == 'failed' and res['remaining'] == [FOREIGN]
