"""The emulator's IAM enforcement (custodian_ext_dev/emulator/iam_auth.py), as AWS answers.

Its own emulator process (enforcement is process-wide): an account with an
administrator user and roles holding chosen policies, seeded before
``enforce_iam()``; then boto3 calls signed as those principals.
"""
import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from custodian_ext_dev.emulator import Emulator, assert_loopback
from tests.support import new_account

ADMIN = 'arn:aws:iam::aws:policy/AdministratorAccess'


def doc(*statements):
    return json.dumps({'Version': '2012-10-17', 'Statement': list(statements)})


def allow(*actions, resource='*', **extra):
    return dict({'Effect': 'Allow', 'Action': list(actions), 'Resource': resource}, **extra)


ROLES = {
    # nothing but a few reads, one of them spelt in lower case
    'reader': [allow('ec2:describeinstances', 'lambda:ListFunctions', 'tag:GetResources',
                     's3:ListAllMyBuckets', 's3:GetObject', 's3:ListBucket')],
    # the signing names moto used for IAM prefixes, and S3's API names: none is IAM's
    'misnamed': [allow('tagging:GetResources', 'monitoring:DescribeAlarms',
                       's3:GetBucketReplication', 's3:ListBuckets')],
    # an Allow whose condition is not met grants nothing; a Deny whose condition is not
    # met denies nothing
    'conditional': [allow('iam:ListUsers', Condition={
                        'StringEquals': {'aws:RequestedRegion': 'eu-west-1'}}),
                    allow('iam:ListRoles'),
                    {'Effect': 'Deny', 'Action': 'iam:ListRoles', 'Resource': '*',
                     'Condition': {'StringEquals': {'aws:RequestedRegion': 'eu-west-1'}}},
                    allow('iam:ListGroups'),
                    {'Effect': 'Deny', 'Action': 'iam:ListGroups', 'Resource': '*'}],
}


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    log = tmp_path_factory.mktemp('iam-auth') / 'emulator.log'
    with Emulator(log_file=str(log), iam_auth='inf') as emu:
        account = new_account(emu.url)
        other = new_account(emu.url)
        iam = account.client('iam')
        iam.create_user(UserName='admin')
        iam.attach_user_policy(UserName='admin', PolicyArn=ADMIN)
        admin = iam.create_access_key(UserName='admin')['AccessKey']
        iam.create_user(UserName='nobody')
        nobody = iam.create_access_key(UserName='nobody')['AccessKey']
        iam.put_user_policy(UserName='nobody', PolicyName='assume', PolicyDocument=doc(
            allow('sts:AssumeRole')))
        root = {'AWS': f'arn:aws:iam::{account.id}:root'}
        for name, statements in ROLES.items():
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=doc(
                {'Effect': 'Allow', 'Action': 'sts:AssumeRole', 'Principal': root}))
            iam.put_role_policy(RoleName=name, PolicyName=name, PolicyDocument=doc(*statements))
        iam.create_role(RoleName='admin-only', AssumeRolePolicyDocument=doc(
            {'Effect': 'Allow', 'Action': 'sts:AssumeRole',
             'Principal': {'AWS': f'arn:aws:iam::{account.id}:user/admin'}}))
        # another account's role that trusts this account
        other_iam = other.client('iam')
        other_iam.create_role(RoleName='partner', AssumeRolePolicyDocument=doc(
            {'Effect': 'Allow', 'Action': 'sts:AssumeRole', 'Principal': root}))
        other_iam.attach_role_policy(RoleName='partner', PolicyArn=ADMIN)
        s3 = account.client('s3')
        s3.create_bucket(Bucket=f'b-{account.id}')
        s3.put_bucket_versioning(Bucket=f'b-{account.id}',
                                 VersioningConfiguration={'Status': 'Enabled'})
        version = s3.put_object(Bucket=f'b-{account.id}', Key='k', Body=b'1')['VersionId']
        s3.put_object(Bucket=f'b-{account.id}', Key='k', Body=b'2')
        emu.enforce_iam(0)
        yield {'emulator': emu, 'account': account, 'other': other, 'admin': admin,
               'nobody': nobody, 'bucket': f'b-{account.id}', 'version': version}


def client(world, service, key=None, creds=None, region='us-east-1'):
    assert_loopback(world['emulator'].url)
    if creds is None:
        key = key or world['admin']
        creds = {'aws_access_key_id': key['AccessKeyId'],
                 'aws_secret_access_key': key['SecretAccessKey']}
    return boto3.Session(region_name=region).client(
        service, endpoint_url=world['emulator'].url,
        config=Config(retries={'max_attempts': 1, 'mode': 'standard'}), **creds)


def session(world, role, key=None, account=None):
    account = account or world['account']
    c = client(world, 'sts', key)
    creds = c.assume_role(RoleArn=f'arn:aws:iam::{account.id}:role/{role}',
                          RoleSessionName='test')['Credentials']
    return {'aws_access_key_id': creds['AccessKeyId'],
            'aws_secret_access_key': creds['SecretAccessKey'],
            'aws_session_token': creds['SessionToken']}


def refused(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response['Error']['Code'], e.value.response['Error'].get('Message', ''), \
        e.value.response['ResponseMetadata']['HTTPStatusCode']


def test_an_administrator_reaches_every_protocol(world):
    """moto 5.2.5 refused GET requests without a body (SignatureDoesNotMatch) even to an
    administrator; and the emulator's own services (Lightsail, Roles Anywhere) are checked
    and allowed too."""
    fn = client(world, 'lambda')
    assert fn.list_functions()['Functions'] == []
    assert fn.list_layers()['Layers'] == []
    assert refused(lambda: fn.get_policy(FunctionName='missing'))[0] == 'ResourceNotFoundException'
    assert client(world, 'ec2').describe_instances()['Reservations'] == []
    s3 = client(world, 's3')
    assert s3.get_bucket_versioning(Bucket=world['bucket'])['Status'] == 'Enabled'
    assert s3.get_object(Bucket=world['bucket'], Key='k')['Body'].read() == b'2'
    assert client(world, 'resourcegroupstaggingapi').get_resources()['ResourceTagMappingList'] \
        == []
    assert client(world, 'cloudtrail').describe_trails()['trailList'] == []
    assert client(world, 'lightsail').get_instances()['instances'] == []
    assert client(world, 'rolesanywhere').list_trust_anchors()['trustAnchors'] == []
    assert client(world, 'iam').list_users()['Users']


def test_denials_have_each_protocols_error_and_name_the_action(world):
    creds = session(world, 'reader')
    who = f"arn:aws:sts::{world['account'].id}:assumed-role/reader/test"
    cases = [
        ('iam', lambda c: c.list_users(), 'AccessDenied', 403, 'iam:ListUsers'),
        ('ec2', lambda c: c.describe_volumes(), 'UnauthorizedOperation', 403,
         'ec2:DescribeVolumes'),
        ('cloudtrail', lambda c: c.describe_trails(), 'AccessDeniedException', 400,
         'cloudtrail:DescribeTrails'),
        ('lambda', lambda c: c.list_layers(), 'AccessDeniedException', 403,
         'lambda:ListLayers'),
        ('s3', lambda c: c.get_bucket_policy(Bucket=world['bucket']), 'AccessDenied', 403,
         's3:GetBucketPolicy'),
        ('lightsail', lambda c: c.get_instances(), 'AccessDeniedException', 400,
         'lightsail:GetInstances'),
        ('rolesanywhere', lambda c: c.list_trust_anchors(), 'AccessDeniedException', 403,
         'rolesanywhere:ListTrustAnchors'),
    ]
    for service, call, code, status, action in cases:
        got = refused(lambda call=call, service=service: call(
            client(world, service, creds=creds)))
        assert got[0] == code and got[2] == status, (service, got)
        assert f'User: {who} is not authorized to perform: {action}' in got[1], got
        assert f'because no identity-based policy allows the {action} action' in got[1]
    assert refused(lambda: client(world, 'ec2', creds=creds).describe_volumes())[1].startswith(
        'You are not authorized to perform this operation. User: ')
    s3_denial = refused(lambda: client(world, 's3', creds=creds).get_bucket_policy(
        Bucket=world['bucket']))[1]
    assert f"on resource: arn:aws:s3:::{world['bucket']}" in s3_denial


def test_actions_are_named_as_iam_names_them_and_matched_in_any_case(world):
    reader = session(world, 'reader')
    # ec2:describeinstances (lower case) allows DescribeInstances; tag:, not tagging:
    assert client(world, 'ec2', creds=reader).describe_instances()['Reservations'] == []
    assert client(world, 'resourcegroupstaggingapi', creds=reader).get_resources()
    assert client(world, 's3', creds=reader).list_buckets()['Buckets']
    # s3:GetObject does not allow a GetObject of a given version (s3:GetObjectVersion)
    s3 = client(world, 's3', creds=reader)
    assert s3.get_object(Bucket=world['bucket'], Key='k')['Body'].read() == b'2'
    code, message, _ = refused(lambda: s3.get_object(Bucket=world['bucket'], Key='k',
                                                     VersionId=world['version']))
    assert code == 'AccessDenied' and 's3:GetObjectVersion' in message
    misnamed = session(world, 'misnamed')
    for service, call, action in (
            ('resourcegroupstaggingapi', lambda c: c.get_resources(), 'tag:GetResources'),
            ('s3', lambda c: c.list_buckets(), 's3:ListAllMyBuckets'),
            ('s3', lambda c: c.get_bucket_replication(Bucket=world['bucket']),
             's3:GetReplicationConfiguration')):
        assert action in refused(lambda call=call, service=service: call(
            client(world, service, creds=misnamed)))[1]


def test_conditions_that_do_not_hold_neither_allow_nor_deny(world):
    iam = client(world, 'iam', creds=session(world, 'conditional'))
    code, message, _ = refused(iam.list_users)
    assert code == 'AccessDenied' and 'no identity-based policy allows' in message
    assert iam.list_roles()['Roles']  # the conditional Deny does not apply
    code, message, _ = refused(iam.list_groups)
    assert 'with an explicit deny in an identity-based policy' in message


def test_trust_policies_name_the_account_the_user_or_the_role(world):
    nobody = world['nobody']
    # trusts the account: any of its principals an identity policy lets assume roles
    assert session(world, 'reader', key=nobody)
    # trusts only the admin user
    code, message, _ = refused(lambda: session(world, 'admin-only', key=nobody))
    assert code == 'AccessDenied' and 'sts:AssumeRole' in message
    assert session(world, 'admin-only')
    # another account's role that trusts this account, as AWS allows across accounts
    partner = session(world, 'partner', account=world['other'])
    assert client(world, 'sts', creds=partner).get_caller_identity()['Account'] == \
        world['other'].id


def test_unknown_keys_bad_signatures_and_tokens_are_refused(world):
    sts = client(world, 'sts', creds={'aws_access_key_id': 'testing',
                                      'aws_secret_access_key': 'testing'})
    assert refused(sts.get_caller_identity)[0] == 'InvalidClientTokenId'
    wrong = dict(world['admin'], SecretAccessKey='0' * 40)
    assert refused(lambda: client(world, 'iam', key=wrong).list_users())[0] == \
        'SignatureDoesNotMatch'
    assert refused(lambda: client(world, 'ec2', key=wrong).describe_instances())[0] == \
        'AuthFailure'
    assert refused(lambda: client(world, 's3', key=wrong).list_buckets())[0] == \
        'SignatureDoesNotMatch'
    creds = dict(session(world, 'reader'), aws_session_token='forged')
    assert refused(lambda: client(world, 'ec2', creds=creds).describe_instances())[0] == \
        'AuthFailure'


def test_get_caller_identity_needs_no_permission(world):
    creds = session(world, 'conditional')
    assert client(world, 'sts', creds=creds).get_caller_identity()['Arn'].endswith(
        'assumed-role/conditional/test')


def test_free_requests_before_enforcement(world):
    """INITIAL_NO_AUTH_ACTION_COUNT: the first requests pass unchecked, then every one is."""
    emu = world['emulator']
    sts = client(world, 'sts', creds={'aws_access_key_id': 'testing',
                                      'aws_secret_access_key': 'testing'})
    try:
        emu.enforce_iam(2)
        sts.get_caller_identity()
        sts.get_caller_identity()
        assert refused(sts.get_caller_identity)[0] == 'InvalidClientTokenId'
    finally:
        emu.enforce_iam(0)


def test_cloudwatch_speaks_cbor_and_is_named_cloudwatch(world):
    """botocore calls CloudWatch with the RPC v2 CBOR protocol, signed as 'monitoring'."""
    assert client(world, 'cloudwatch').describe_alarms()['MetricAlarms'] == []
    code, message, status = refused(
        lambda: client(world, 'cloudwatch', creds=session(world, 'misnamed')).describe_alarms())
    assert (code, status) == ('AccessDeniedException', 400)
    assert 'cloudwatch:DescribeAlarms' in message
