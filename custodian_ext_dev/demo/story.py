"""The demo's incident, seeded into the emulator with boto3.

Two phases, split by ``incident_start``: a normal account as it was before
the incident, then what the attacker did. ``seed_baseline``/``seed_attack``
are the single-account story of the headline checks' tests; the rest of the
module builds the organization ``make demo`` sweeps, on top of them, with the
table of what the attacker left (``ARTIFACTS``). moto stamps resources with the
real time, so the phases are seconds apart and ``incident_start`` falls
between them.

Every seeding call goes through ``custodian_ext_dev.emulator.session``, which
refuses any endpoint that is not on loopback.
"""
import datetime
import json
import time
from dataclasses import dataclass

from custodian_ext_dev.emulator import AMI_X86, session as emulator_session

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
    iam.put_user_policy(UserName='legacy-etl',
                        PolicyName='AWSExposedCredentialPolicy_DO_NOT_REMOVE',
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


# -- The organization of `make demo` -------------------------------------------
#
# Three accounts in one AWS Organization. acme-prod is compromised: a CI key
# of deploy-bot leaked, and the attacker used it from a documentation-range
# IP to dig in (the artifacts below). acme-management and acme-dev are clean
# but busy: users, roles, trails, instances, snapshots, functions and buckets
# that a real account has, some shared with a trusted CI account, plus
# ordinary work done after the incident began. A clean account must produce
# no high or critical finding.

MANAGEMENT, COMPROMISED, DEV = 'acme-management', 'acme-prod', 'acme-dev'
ATTACKER_ACCOUNT = '999988887777'   # where the attacker shares things to
TRUSTED_ACCOUNT = '444455556666'    # the organization's CI account (trusted_accounts)
ATTACKER_IP = '203.0.113.66'        # RFC 5737 documentation range
ATTACKER_AGENT = 'aws-cli/2.15.30 Python/3.11.8 Linux/6.6.9-amd64 exe/x86_64.kali.2024'
RESPONDER = 'incident-responder'    # the management-account user the sweep runs as
AUDIT_ROLE = 'incident-response'    # in every account, trusting the management account


@dataclass(frozen=True)
class Artifact:
    """One thing the attacker left, and the detect policy that must catch it.

    ``evidence``, when set, must appear in the finding (its reasons or its
    resource), for findings on the account as a whole.
    """
    key: str
    what: str
    step: str
    policy: str
    region: str = 'us-east-1'
    evidence: str = ''


# Artifact -> the policy that must catch it. The demo test asserts every row
# whose policy exists in policies/detect; rows for policies not written yet
# wait for them.
ARTIFACTS = (
    Artifact('leaked-key', "deploy-bot's CI key leaked; AWS attached AWSCompromisedKeyQuarantineV2",
             'X1', 'x1-quarantined-user-active-keys'),
    Artifact('old-leaked-key', 'legacy-etl carries the older inline quarantine policy',
             'X1', 'x1-quarantined-user-active-keys'),
    Artifact('root-key', 'an access key for the root user', 'X2', 'x2-root-access-keys'),
    Artifact('stopped-trail', 'the organization trail was stopped', 'R2.1',
             'r2-1-trail-not-logging'),
    Artifact('trail-tampering', 'StopLogging in the event history', 'R2.2',
             'r2-2-trail-tampering-since-incident', evidence='StopLogging'),
    Artifact('iam-changes', 'CreateUser, CreateAccessKey, AttachUserPolicy... by the leaked key',
             'R2.2', 'r2-2-iam-changes-since-incident', evidence='backdoor-admin'),
    Artifact('flow-logs-deleted', 'the VPC flow log was deleted', 'R2.2',
             'r2-2-flow-logs-deleted-since-incident', evidence='DeleteFlowLogs'),
    Artifact('gpu-unused-region', 'a p3.2xlarge miner running in eu-north-1', 'R3.3',
             'r3-3-ec2-outside-allowed-regions', region=UNUSED_REGION),
    Artifact('gpu-instance', 'the same miner: a GPU instance type', 'X6',
             'x6-unusual-instance-types', region=UNUSED_REGION),
    Artifact('gpu-parked', 'a g4dn.xlarge miner parked stopped in eu-north-1', 'X6',
             'x6-stopped-instances', region=UNUSED_REGION),
    Artifact('parked-instance', 'a c5.4xlarge parked stopped in us-east-1', 'X6',
             'x6-stopped-instances'),
    Artifact('backdoor-user', 'IAM user backdoor-admin, not on the known list', 'R4.1',
             'r4-1-unknown-iam-users'),
    Artifact('backdoor-key', 'an access key for backdoor-admin', 'R4.1',
             'r4-1-access-keys-created-since-incident'),
    Artifact('backdoor-login', 'a console password for backdoor-admin', 'R4.1',
             'r4-1-login-profiles-created-since-incident'),
    Artifact('backdoor-role', 'IAM role ops-maintenance, not on the known list', 'R4.1',
             'r4-1-unknown-iam-roles'),
    Artifact('admin-user', 'AdministratorAccess attached to backdoor-admin', 'R4.2',
             'r4-2-new-admin-principals'),
    Artifact('admin-role', 'AdministratorAccess attached to ops-maintenance', 'R4.2',
             'r4-2-new-admin-roles'),
    Artifact('role-trusts-attacker', "ops-maintenance trusts the attacker's account", 'R4.2',
             'r4-2-role-trusts-unknown-account'),
    Artifact('shared-snapshot', "an EBS snapshot shared with the attacker's account", 'R4.2',
             'r4-2-ebs-snapshot-shared'),
    Artifact('public-ami', 'an image made public', 'R4.2', 'r4-2-ami-shared'),
    Artifact('public-lambda', 'billing-export: a function anyone may invoke', 'R4.2',
             'r4-2-lambda-public-or-foreign'),
    Artifact('bucket-policy', "a bucket policy granting the attacker's account", 'R4.2',
             'r4-2-bucket-policy-untrusted'),
    Artifact('miner-key-pair', 'key pair miner-key in eu-north-1', 'X6', 'x6-new-key-pairs',
             region=UNUSED_REGION),
    Artifact('open-ssh', 'security group debug-ssh: port 22 open to the world', 'X6',
             'x6-security-groups-open-to-world'),
)


def _trust(principal):
    return json.dumps({'Version': '2012-10-17', 'Statement': [{
        'Effect': 'Allow', 'Principal': principal, 'Action': 'sts:AssumeRole'}]})


LAMBDA_TRUST = _trust({'Service': 'lambda.amazonaws.com'})
ADMIN_POLICY = 'arn:aws:iam::aws:policy/AdministratorAccess'
READ_ONLY_POLICY = 'arn:aws:iam::aws:policy/ReadOnlyAccess'


def _zip():
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        z.writestr('index.py', 'def handler(event, context):\n    return {"ok": True}\n')
    return buf.getvalue()


def create_organization(url):
    """The organization: the emulator's default account manages it; two members.

    Returns {account name: account id}. Organizations creates
    OrganizationAccountAccessRole in each member, as AWS does.
    """
    from custodian_ext_dev.emulator import DEFAULT_ACCOUNT
    org = emulator_session(url).client('organizations')
    org.create_organization(FeatureSet='ALL')
    ids = {MANAGEMENT: DEFAULT_ACCOUNT}
    for name in (COMPROMISED, DEV):
        status = org.create_account(AccountName=name, Email=f'aws+{name}@example.com')
        ids[name] = status['CreateAccountStatus']['AccountId']
    return ids


def _trail(s, account_id, name):
    """A multi-region trail with log validation, logging to its own bucket."""
    bucket = f'{name}-cloudtrail-{account_id}'
    s.client('s3').create_bucket(Bucket=bucket)
    ct = s.client('cloudtrail')
    ct.create_trail(Name='org-trail', S3BucketName=bucket, IsMultiRegionTrail=True,
                    EnableLogFileValidation=True, IncludeGlobalServiceEvents=True)
    ct.start_logging(Name='org-trail')
    return bucket


def seed_busy(url, account_id, name, management_id):
    """What any of the accounts holds before the incident: a normal, busy account.

    Every account has the AUDIT_ROLE the responders assume from the
    management account (deployed with the account, like a StackSet would).
    """
    s = emulator_session(url, account_id)
    iam = s.client('iam')
    users = {MANAGEMENT: ['alice', 'billing-reader', RESPONDER],
             COMPROMISED: [],  # seed_baseline adds alice, deploy-bot, legacy-etl
             DEV: ['bob', 'ci-runner']}[name]
    keys = {}
    for user in users:
        iam.create_user(UserName=user)
        if user != 'alice':
            keys[user] = iam.create_access_key(UserName=user)['AccessKey']
    if name == MANAGEMENT:
        iam.create_login_profile(UserName='alice', Password='Correct-Horse-Battery-1')
        iam.attach_user_policy(UserName='alice', PolicyArn=ADMIN_POLICY)  # long-standing admin
        iam.attach_user_policy(UserName=RESPONDER, PolicyArn=READ_ONLY_POLICY)
    iam.create_role(RoleName=AUDIT_ROLE, AssumeRolePolicyDocument=_trust(
        {'AWS': f'arn:aws:iam::{management_id}:root'}))
    iam.attach_role_policy(RoleName=AUDIT_ROLE, PolicyArn=ADMIN_POLICY)
    iam.create_role(RoleName='lambda-exec', AssumeRolePolicyDocument=LAMBDA_TRUST)
    iam.create_role(RoleName='ci-deploy', AssumeRolePolicyDocument=_trust(
        {'AWS': f'arn:aws:iam::{TRUSTED_ACCOUNT}:root'}))
    deploy = iam.create_policy(PolicyName='ci-deploy', PolicyDocument=json.dumps({
        'Version': '2012-10-17', 'Statement': [{
            'Effect': 'Allow', 'Action': ['lambda:UpdateFunctionCode', 's3:PutObject'],
            'Resource': '*'}]}))['Policy']['Arn']
    iam.attach_role_policy(RoleName='ci-deploy', PolicyArn=deploy)
    _trail(s, account_id, name)

    ec2 = s.client('ec2', region_name='us-east-1')
    vpc = ec2.describe_vpcs()['Vpcs'][0]['VpcId']
    ec2.create_flow_logs(ResourceIds=[vpc], ResourceType='VPC', TrafficType='ALL',
                         LogDestinationType='s3',
                         LogDestination=f'arn:aws:s3:::{name}-cloudtrail-{account_id}')
    sg = ec2.create_security_group(GroupName='web', Description='web tier', VpcId=vpc)['GroupId']
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        'IpProtocol': 'tcp', 'FromPort': 443, 'ToPort': 443,
        'IpRanges': [{'CidrIp': '10.0.0.0/8'}]}])
    ec2.create_key_pair(KeyName='ops')
    web = [_instance(ec2, 't3.small', f'{name}-web-{i}') for i in (1, 2)]
    vol = ec2.describe_instances(InstanceIds=web[:1])['Reservations'][0]['Instances'][0][
        'BlockDeviceMappings'][0]['Ebs']['VolumeId']
    snap = ec2.create_snapshot(VolumeId=vol, Description='nightly backup')['SnapshotId']
    # shared with the organization's own CI account: trusted, not a finding
    ec2.modify_snapshot_attribute(SnapshotId=snap, Attribute='createVolumePermission',
                                  OperationType='add', UserIds=[TRUSTED_ACCOUNT])
    _instance(s.client('ec2', region_name='us-west-2'), 'm5.large', f'{name}-batch')

    bucket = f'{name}-artifacts-{account_id}'
    s3 = s.client('s3')
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={'Status': 'Enabled'})
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        'Version': '2012-10-17', 'Statement': [{
            'Effect': 'Allow', 'Principal': {'AWS': f'arn:aws:iam::{TRUSTED_ACCOUNT}:root'},
            'Action': 's3:GetObject', 'Resource': f'arn:aws:s3:::{bucket}/*'}]}))
    lam = s.client('lambda')
    lam.create_function(FunctionName='nightly-report', Runtime='python3.12',
                        Role=f'arn:aws:iam::{account_id}:role/lambda-exec',
                        Handler='index.handler', Code={'ZipFile': _zip()})
    lam.add_permission(FunctionName='nightly-report', StatementId='events',
                       Action='lambda:InvokeFunction', Principal='events.amazonaws.com',
                       SourceArn=f'arn:aws:events:us-east-1:{account_id}:rule/nightly')
    return keys


def known_principals(url, account_id):
    """The users and roles an account has now: the responder's known lists."""
    iam = emulator_session(url, account_id).client('iam')
    users = sorted(u['UserName'] for p in iam.get_paginator('list_users').paginate()
                   for u in p['Users'])
    roles = sorted(r['RoleName'] for p in iam.get_paginator('list_roles').paginate()
                   for r in p['Roles'])
    return users, roles


def leak_key(url, account_id):
    """The CI key of deploy-bot that ends up on a public repository (before the incident)."""
    iam = emulator_session(url, account_id).client('iam')
    return iam.create_access_key(UserName='deploy-bot')['AccessKey']


def attacker_session(url, key):
    """The leaked key, used from the attacker's machine (IP and user agent)."""
    import boto3
    from botocore.config import Config
    from custodian_ext_dev.emulator import assert_loopback

    assert_loopback(url)

    def from_attacker(request, **kw):
        request.headers['X-Forwarded-For'] = ATTACKER_IP

    class AttackerSession(boto3.Session):
        def client(self, service, *args, **kw):
            kw['endpoint_url'] = url
            kw['config'] = Config(retries={'max_attempts': 1, 'mode': 'standard'},
                                  user_agent=ATTACKER_AGENT)
            c = super().client(service, *args, **kw)
            c.meta.events.register('before-sign.*.*', from_attacker)
            return c

    return AttackerSession(aws_access_key_id=key['AccessKeyId'],
                           aws_secret_access_key=key['SecretAccessKey'],
                           region_name='us-east-1')


def seed_compromise(url, account_id, key):
    """What the attacker did with the leaked key, after incident_start.

    Returns {artifact key: resource id the finding must name}, for ARTIFACTS.
    """
    found = {}
    a = attacker_session(url, key)
    iam = a.client('iam')
    iam.create_user(UserName='backdoor-admin')
    iam.create_access_key(UserName='backdoor-admin')
    iam.create_login_profile(UserName='backdoor-admin', Password='Tr0ub4dor&3-backdoor')
    iam.attach_user_policy(UserName='backdoor-admin', PolicyArn=ADMIN_POLICY)
    iam.create_role(RoleName='ops-maintenance', AssumeRolePolicyDocument=_trust(
        {'AWS': f'arn:aws:iam::{ATTACKER_ACCOUNT}:root'}))
    iam.attach_role_policy(RoleName='ops-maintenance', PolicyArn=ADMIN_POLICY)
    for k in ('backdoor-user', 'backdoor-key', 'backdoor-login', 'admin-user'):
        found[k] = 'backdoor-admin'
    for k in ('backdoor-role', 'admin-role', 'role-trusts-attacker'):
        found[k] = 'ops-maintenance'
    found['iam-changes'] = found['trail-tampering'] = found['flow-logs-deleted'] = account_id

    a.client('cloudtrail').stop_logging(Name='org-trail')
    found['stopped-trail'] = f'arn:aws:cloudtrail:us-east-1:{account_id}:trail/org-trail'
    ec2 = a.client('ec2')
    ec2.delete_flow_logs(FlowLogIds=[f['FlowLogId'] for f in ec2.describe_flow_logs()['FlowLogs']])

    vol = ec2.create_volume(AvailabilityZone='us-east-1a', Size=100)['VolumeId']
    snap = ec2.create_snapshot(VolumeId=vol, Description='db export')['SnapshotId']
    ec2.modify_snapshot_attribute(SnapshotId=snap, Attribute='createVolumePermission',
                                  OperationType='add', UserIds=[ATTACKER_ACCOUNT])
    found['shared-snapshot'] = snap
    web = ec2.describe_instances(Filters=[{'Name': 'tag:Name', 'Values': ['web-1']}])[
        'Reservations'][0]['Instances'][0]['InstanceId']
    ami = ec2.create_image(InstanceId=web, Name='web-golden-copy')['ImageId']
    ec2.modify_image_attribute(ImageId=ami, LaunchPermission={'Add': [{'Group': 'all'}]})
    found['public-ami'] = ami
    vpc = ec2.describe_vpcs()['Vpcs'][0]['VpcId']
    sg = ec2.create_security_group(GroupName='debug-ssh', Description='debug',
                                   VpcId=vpc)['GroupId']
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22,
        'IpRanges': [{'CidrIp': '0.0.0.0/0'}]}])
    found['open-ssh'] = sg
    far = a.client('ec2', region_name=UNUSED_REGION)
    found['miner-key-pair'] = far.create_key_pair(KeyName='miner-key')['KeyPairId']

    lam = a.client('lambda')
    lam.create_function(FunctionName='billing-export', Runtime='python3.12',
                        Role=f'arn:aws:iam::{account_id}:role/lambda-exec',
                        Handler='index.handler', Code={'ZipFile': _zip()})
    lam.add_permission(FunctionName='billing-export', StatementId='anyone',
                       Action='lambda:InvokeFunction', Principal='*')
    found['public-lambda'] = 'billing-export'
    bucket = f'{COMPROMISED}-artifacts-{account_id}'
    a.client('s3').put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        'Version': '2012-10-17', 'Statement': [{
            'Effect': 'Allow', 'Principal': {'AWS': f'arn:aws:iam::{ATTACKER_ACCOUNT}:root'},
            'Action': 's3:GetObject', 'Resource': f'arn:aws:s3:::{bucket}/*'}]}))
    found['bucket-policy'] = bucket

    # Then AWS finds the key on a public repository and quarantines its user; the
    # miners, the parked instance and the root key (seed_attack) are seeded as the
    # headline checks' tests know them.
    seed_attack(url, account_id)
    admin = emulator_session(url, account_id)
    for r in admin.client('ec2', region_name=UNUSED_REGION).describe_instances()['Reservations']:
        for i in r['Instances']:
            if i['InstanceType'] == 'p3.2xlarge':
                found['gpu-unused-region'] = found['gpu-instance'] = i['InstanceId']
            elif i['InstanceType'] == 'g4dn.xlarge':
                found['gpu-parked'] = i['InstanceId']
    for r in admin.client('ec2').describe_instances(
            Filters=[{'Name': 'instance-type', 'Values': ['c5.4xlarge']}])['Reservations']:
        found['parked-instance'] = r['Instances'][0]['InstanceId']
    found['leaked-key'] = 'deploy-bot'
    found['old-leaked-key'] = 'legacy-etl'
    found['root-key'] = account_id
    return found


def seed_ordinary_work(url, account_id, name):
    """Work done after incident_start that is not the attacker's: it must not alarm."""
    s = emulator_session(url, account_id)
    _instance(s.client('ec2', region_name='us-west-2'), 't3.small', f'{name}-web-3')


def org_vars(incident_start, ids):
    """The accounts file's top-level vars: settings shared by the organization.

    Roles in every member trust the management account (OrganizationAccountAccessRole,
    the responders' AUDIT_ROLE), so it is trusted, with the organization's CI account.
    """
    from custodian_ext_dev.emulator import DEFAULT_ACCOUNT
    return demo_vars(incident_start, known_accounts=sorted(ids.values()),
                     trusted_accounts=sorted({ids.get(MANAGEMENT, DEFAULT_ACCOUNT),
                                              TRUSTED_ACCOUNT}),
                     incident_id='demo-incident')
