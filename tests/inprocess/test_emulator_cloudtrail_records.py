"""The emulator's CloudTrail records have the shapes AWS writes (custodian_ext_dev/emulator).

Against the emulator: calls made with boto3 are read back with LookupEvents and compared with
what CloudTrail records for them (AWS's documented records, and the public attack records
the activity catalogue is tested on, tests/data/activity/cloudtrail-records.json).
"""
import base64
import json

from custodian_ext.activity import catalogue
from custodian_ext_dev.emulator import AMI_X86


def _records(aws, region='us-east-1', **attr):
    ct = aws.client('cloudtrail', region)
    key, value = next(iter(attr.items()))
    page = ct.lookup_events(LookupAttributes=[{'AttributeKey': key, 'AttributeValue': value}])
    return [(json.loads(e['CloudTrailEvent']), e) for e in page['Events']]


def test_assume_role_records_the_session_key_it_hands_out(aws):
    """CloudTrail keeps responseElements.credentials.accessKeyId of AssumeRole (a read-only
    event): the link from a key to the sessions it opened."""
    iam = aws.client('iam')
    iam.create_role(RoleName='ops', AssumeRolePolicyDocument=json.dumps({
        'Version': '2012-10-17', 'Statement': [{
            'Effect': 'Allow', 'Principal': {'AWS': f'arn:aws:iam::{aws.id}:root'},
            'Action': 'sts:AssumeRole'}]}))
    creds = aws.client('sts').assume_role(RoleArn=f'arn:aws:iam::{aws.id}:role/ops',
                                          RoleSessionName='ops-session')['Credentials']
    rec = next(r for r, _ in _records(aws, EventName='AssumeRole')
               if r['requestParameters']['roleArn'].endswith(':role/ops'))
    assert rec['readOnly'] is True
    assert rec['responseElements']['credentials']['accessKeyId'] == creds['AccessKeyId']
    assert rec['responseElements']['credentials']['sessionToken'] != creds['SessionToken']
    # other read-only calls still keep no response
    aws.client('sts').get_caller_identity()
    assert [r['responseElements'] for r, _ in _records(aws, EventName='GetCallerIdentity')] \
        == [None]


def test_ses_events_come_from_ses_amazonaws_com(aws):
    aws.client('ses').get_send_quota()
    (rec, _), = _records(aws, EventName='GetSendQuota')
    assert rec['eventSource'] == 'ses.amazonaws.com'
    assert catalogue.load().classify(rec).id == 'ses-enumerate-sending'


def test_ec2_attribute_changes_are_recorded_as_cloudtrail_writes_them(aws):
    ec2 = aws.client('ec2')
    iid = ec2.run_instances(ImageId=AMI_X86, MinCount=1, MaxCount=1,
                            InstanceType='t3.micro')['Instances'][0]['InstanceId']
    ec2.stop_instances(InstanceIds=[iid])
    ec2.modify_instance_attribute(InstanceId=iid, UserData={
        'Value': base64.b64encode(b'#!/bin/sh\necho hi\n')})
    ec2.modify_instance_attribute(InstanceId=iid, DisableApiTermination={'Value': True})
    ec2.modify_instance_attribute(InstanceId=iid, Attribute='userData', Value='#!/bin/sh')
    vol = ec2.create_volume(AvailabilityZone='us-east-1a', Size=1)['VolumeId']
    snap = ec2.create_snapshot(VolumeId=vol)['SnapshotId']
    ec2.modify_snapshot_attribute(SnapshotId=snap, Attribute='createVolumePermission',
                                  OperationType='add', UserIds=['999988887777'])
    ec2.modify_snapshot_attribute(SnapshotId=snap, CreateVolumePermission={
        'Remove': [{'UserId': '999988887777'}]})
    image = ec2.create_image(InstanceId=iid, Name='copy')['ImageId']
    ec2.modify_image_attribute(ImageId=image, LaunchPermission={'Add': [{'Group': 'all'}]})

    cat = catalogue.load()
    modify = [r for r, _ in _records(aws, EventName='ModifyInstanceAttribute')]
    user_data = next(r for r in modify if 'userData' in r['requestParameters'])
    assert user_data['requestParameters'] == {'instanceId': iid,
                                              'userData': '<sensitiveDataRemoved>'}
    assert cat.classify(user_data).id == 'ec2-modify-user-data'
    attribute = next(r for r in modify if r['requestParameters'].get('attribute'))
    assert attribute['requestParameters'] == {'instanceId': iid, 'attribute': 'userData',
                                              'value': '<sensitiveDataRemoved>'}
    assert cat.classify(attribute).id == 'ec2-modify-user-data-attribute'
    other = next(r for r in modify if 'disableApiTermination' in r['requestParameters'])
    assert other['requestParameters']['disableApiTermination'] == {'value': 'true'}
    assert cat.classify(other) is None

    shares = [r for r, _ in _records(aws, EventName='ModifySnapshotAttribute')]
    add = next(r for r in shares if 'add' in r['requestParameters']['createVolumePermission'])
    assert add['requestParameters'] == {
        'snapshotId': snap, 'attributeType': 'CREATE_VOLUME_PERMISSION',
        'createVolumePermission': {'add': {'items': [{'userId': '999988887777'}]}}}
    assert cat.classify(add).id == 'ec2-share-snapshot'
    remove = next(r for r in shares if r is not add)
    assert remove['requestParameters']['createVolumePermission'] == {
        'remove': {'items': [{'userId': '999988887777'}]}}
    assert cat.classify(remove) is None

    (ami, _), = _records(aws, EventName='ModifyImageAttribute')
    assert ami['requestParameters']['launchPermission'] == {'add': {'items': [{'group': 'all'}]}}
    assert cat.classify(ami).id == 'ec2-share-ami'


def test_security_group_rules_are_recorded_as_cloudtrail_writes_them(aws):
    ec2 = aws.client('ec2')
    vpc = ec2.describe_vpcs()['Vpcs'][0]['VpcId']
    sg = ec2.create_security_group(GroupName='debug', Description='d', VpcId=vpc)['GroupId']
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22,
        'IpRanges': [{'CidrIp': '10.0.0.0/8'}, {'CidrIp': '0.0.0.0/0'}]}])
    (rec, _), = _records(aws, EventName='AuthorizeSecurityGroupIngress')
    assert rec['requestParameters'] == {'groupId': sg, 'ipPermissions': {'items': [{
        'ipProtocol': 'tcp', 'fromPort': 22, 'toPort': 22,
        'ipRanges': {'items': [{'cidrIp': '10.0.0.0/8'}, {'cidrIp': '0.0.0.0/0'}]}}]}}
    assert catalogue.load().classify(rec).id == 'ec2-security-group-open-to-world'


def test_created_instances_volumes_and_images_are_named_in_resources(aws):
    """LookupEvents lists what RunInstances, CreateVolume and CreateImage created."""
    ec2 = aws.client('ec2')
    iid = ec2.run_instances(ImageId=AMI_X86, MinCount=1, MaxCount=1,
                            InstanceType='t3.micro')['Instances'][0]['InstanceId']
    vol = ec2.create_volume(AvailabilityZone='us-east-1a', Size=1)['VolumeId']
    image = ec2.create_image(InstanceId=iid, Name='copy')['ImageId']
    for name, rid, rtype in (('RunInstances', iid, 'AWS::EC2::Instance'),
                             ('CreateVolume', vol, 'AWS::EC2::Volume'),
                             ('CreateImage', image, 'AWS::EC2::Ami')):
        (_, ev), = _records(aws, EventName=name)
        assert {'ResourceType': rtype, 'ResourceName': rid} in ev['Resources'], name
