"""The demo's incident, seeded into the emulator with boto3.

Two phases, split by ``incident_start``: a normal account as it was before
the incident, then what the attacker did. moto stamps resources with the
real time, so the phases are seconds apart and ``incident_start`` falls
between them.

Every seeding call goes through ``custodian_ext.emulator.session``, which
refuses any endpoint that is not on loopback.
"""
import datetime
import json
import time

from custodian_ext.emulator import AMI_X86, session as emulator_session

ALLOWED_REGIONS = ['us-east-1', 'us-west-2']
UNUSED_REGION = 'eu-north-1'
SWEEP_REGIONS = ALLOWED_REGIONS + [UNUSED_REGION]
KNOWN_USERS = ['alice', 'deploy-bot', 'legacy-etl']
KNOWN_ROLES = ['app-role']

DENY_ALL = json.dumps({'Version': '2012-10-17', 'Statement': [
    {'Effect': 'Deny', 'Action': ['iam:CreateUser', 'iam:CreateAccessKey'], 'Resource': '*'}]})
EC2_TRUST = json.dumps({'Version': '2012-10-17', 'Statement': [{
    'Effect': 'Allow', 'Principal': {'Service': 'ec2.amazonaws.com'},
    'Action': 'sts:AssumeRole'}]})


def _instance(ec2, itype, name, **kw):
    return ec2.run_instances(
        ImageId=AMI_X86, MinCount=1, MaxCount=1, InstanceType=itype,
        TagSpecifications=[{'ResourceType': 'instance',
                            'Tags': [{'Key': 'Name', 'Value': name}]}], **kw,
    )['Instances'][0]['InstanceId']


def seed_baseline(url, account_id=None):
    """The account before the incident: known users and roles, a normal workload."""
    s = emulator_session(url, account_id)
    iam = s.client('iam')
    for user in KNOWN_USERS:
        iam.create_user(UserName=user)
        iam.create_access_key(UserName=user)
    iam.create_login_profile(UserName='alice', Password='Correct-Horse-1')
    iam.create_role(RoleName='app-role', AssumeRolePolicyDocument=EC2_TRUST)
    ec2 = s.client('ec2', region_name='us-east-1')
    _instance(ec2, 't3.micro', 'web-1')
    return {'users': KNOWN_USERS, 'roles': KNOWN_ROLES}


def seed_attack(url, account_id=None):
    """What the attacker left, and AWS's quarantine marker on the leaked user."""
    s = emulator_session(url, account_id)
    iam = s.client('iam')
    # X1: AWS quarantined deploy-bot, whose key leaked (newer notice: managed V2),
    # and legacy-etl long ago (older notice: the inline policy).
    iam.attach_user_policy(
        UserName='deploy-bot',
        PolicyArn='arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2')
    iam.put_user_policy(UserName='legacy-etl', PolicyName='AWSExposedCredentialPolicy_DO_NOT_REMOVE',
                        PolicyDocument=DENY_ALL)
    # X2: a root access key (CreateAccessKey signed by root, without UserName).
    iam.create_access_key()
    # R3.3: GPU miners in a region the account never uses, one parked stopped.
    far = s.client('ec2', region_name=UNUSED_REGION)
    _instance(far, 'p3.2xlarge', 'miner-1')
    parked = _instance(far, 'g4dn.xlarge', 'miner-2')
    far.stop_instances(InstanceIds=[parked])
    # X6: an instance parked stopped in an allowed region.
    near = s.client('ec2', region_name='us-east-1')
    near.stop_instances(InstanceIds=[_instance(near, 'c5.4xlarge', 'batch-7')])
    return {'quarantined_users': ['deploy-bot', 'legacy-etl'], 'root_key': True,
            'out_of_region_instances': 2, 'stopped_instances': 2}


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def incident_boundary(sleep=time.sleep):
    """Wait past a whole second and return it as ``incident_start``.

    Everything seeded before the call is strictly older; everything after is
    at or after it.
    """
    start = (utc_now() + datetime.timedelta(seconds=1)).replace(microsecond=0)
    while utc_now() < start + datetime.timedelta(milliseconds=50):
        sleep(0.05)
    return start.strftime('%Y-%m-%dT%H:%M:%SZ')


def demo_vars(incident_start, **overrides):
    values = {
        'allowed_regions': ALLOWED_REGIONS,
        'incident_start': incident_start,
        'known_users': KNOWN_USERS,
        'known_roles': KNOWN_ROLES,
        'known_accounts': [],
        'trusted_accounts': [],
        'stale_days': 90,
        'global_region': 'us-east-1',
    }
    values.update(overrides)
    return values
