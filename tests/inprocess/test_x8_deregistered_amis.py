"""X8 AMIs deregistered since the incident (``cloudtrail-events`` on aws.account-region).

A deregistered AMI no longer lists, so only CloudTrail shows it. Against the emulator,
which records DeregisterImage in its event history (with the image as the event's
resource, AWS::EC2::Ami) and answers LookupEvents from it.
"""
import pytest

from custodian_ext.filters import event_history
from custodian_ext.report.reasons import reasons
from custodian_ext_dev.demo.story import incident_boundary
from custodian_ext_dev.emulator import AMI_X86
from tests.support import (
    assert_readme_lists_filter_permissions, key_client, load_policy, policy_vars, run_policy)

POLICY = load_policy('detect/x8.yml', 'x8-amis-deregistered-since-incident')


@pytest.fixture(autouse=True)
def _fresh_history_cache():
    event_history.clear_cache()
    yield
    event_history.clear_cache()


def images(aws, names, region='us-east-1'):
    ec2 = aws.client('ec2', region)
    [inst] = ec2.run_instances(ImageId=AMI_X86, MinCount=1, MaxCount=1)['Instances']
    return [ec2.create_image(InstanceId=inst['InstanceId'], Name=n)['ImageId'] for n in names]


def run(aws, tmp_path, start, region='us-east-1'):
    return run_policy(POLICY, policy_vars(incident_start=start), region=region, account=aws,
                      output_dir=str(tmp_path))


def test_images_deregistered_since_the_incident_are_flagged(aws, tmp_path):
    iam = aws.client('iam')
    iam.create_user(UserName='mallory')
    iam.attach_user_policy(UserName='mallory',
                           PolicyArn='arn:aws:iam::aws:policy/AdministratorAccess')
    key = iam.create_access_key(UserName='mallory')['AccessKey']
    old, golden, spare = images(aws, ['old', 'golden', 'spare'])
    aws.client('ec2').deregister_image(ImageId=old)  # routine clean-up, before the incident
    start = incident_boundary()
    key_client(aws, 'ec2', key, source_ip='203.0.113.5').deregister_image(ImageId=golden)

    [acct] = run(aws, tmp_path, start)
    [e] = acct['c7n:cloudtrail-events']
    assert e['EventName'] == 'DeregisterImage' and e['EventTime'] >= start
    assert e['Resources'] == [{'Type': 'AWS::EC2::Ami', 'Name': golden}]
    assert e['Principal'].endswith(':user/mallory') and e['SourceIPAddress'] == '203.0.113.5'
    assert [i['ImageId'] for i in aws.client('ec2').describe_images(Owners=['self'])['Images']] \
        == [spare]  # the deregistered images no longer list: only the history has them
    assert reasons({'c7n:cloudtrail-events': acct['c7n:cloudtrail-events']})[0].startswith(
        f'1 event(s): DeregisterImage({golden}) by user mallory from 203.0.113.5')


def test_deregistrations_before_the_incident_or_in_another_region_are_not_flagged(aws, tmp_path):
    old, kept = images(aws, ['old', 'kept'])
    aws.client('ec2').deregister_image(ImageId=old)
    start = incident_boundary()
    [west] = images(aws, ['west'], region='us-west-2')
    aws.client('ec2', 'us-west-2').deregister_image(ImageId=west)
    assert run(aws, tmp_path, start) == []           # us-east-1: only the old clean-up
    [acct] = run(aws, tmp_path, start, region='us-west-2')  # each region reads its own history
    assert acct['c7n:cloudtrail-events'][0]['Resources'][0]['Name'] == west


def test_readme_lists_the_permissions():
    for policy in (POLICY,):
        assert_readme_lists_filter_permissions(policy)
