"""Seed an emulated account with the resources the R3.3/X6/X8/R4.2 resource checks look at.

Two phases, split by ``incident_start`` (``custodian_ext_dev.demo.story.incident_boundary``):

- ``seed_clean``: a busy, healthy account before the incident, in the
  allowed regions: instances, volumes and snapshots, AMIs, an Auto Scaling
  group, ECS/ECR, Lambda functions and layers, SageMaker, a key pair, a
  registered domain, RDS with backups, versioned buckets, a web security
  group open on 443, default security groups with their self-reference
  rule in every swept region, and shares only with ``TRUSTED``.
- ``seed_attack``: what an attacker leaves, in an allowed region and in an
  unused one.

Every call goes through ``Account.client`` (loopback endpoint only). The
names are what the tests assert on.
"""
import io
import json
import zipfile
from types import SimpleNamespace

import pytest

from custodian_ext_dev.emulator import AMI_X86

ALLOWED = ['us-east-1', 'us-west-2']
UNUSED = 'eu-north-1'
SWEPT = ALLOWED + [UNUSED]
TRUSTED = '111111111111'   # a partner account in trusted_accounts
FOREIGN = '999999999999'   # the attacker's account (not emulated: a share target only)
ELB_LOGS_US_EAST_1 = '127311923021'  # AWS's ELB log-delivery account, which c7n recognises


_CLIENTS = {}


def client(account, service, region='us-east-1'):
    """One session per account and one client per service and region: building them is
    what costs time, not the emulated calls."""
    key = (account.id, service, region)
    if key not in _CLIENTS:
        sess = _CLIENTS.get((account.id, 'session'))
        if sess is None:
            sess = _CLIENTS[(account.id, 'session')] = account.session()
        _CLIENTS[key] = sess.client(service, region_name=region)
    return _CLIENTS[key]


def _zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        z.writestr('index.py', 'def handler(event, context):\n    return 1\n')
    return buf.getvalue()


LAMBDA_TRUST = json.dumps({'Version': '2012-10-17', 'Statement': [{
    'Effect': 'Allow', 'Principal': {'Service': 'lambda.amazonaws.com'},
    'Action': 'sts:AssumeRole'}]})
CONTACT = {'FirstName': 'Ops', 'LastName': 'Team', 'ContactType': 'COMPANY',
           'OrganizationName': 'Example Corp', 'AddressLine1': '1 Main St', 'City': 'Seattle',
           'State': 'WA', 'CountryCode': 'US', 'ZipCode': '98101',
           'PhoneNumber': '+1.2065550100', 'Email': 'ops@example.com'}


def _role(account, name):
    iam = client(account, 'iam')
    try:
        return iam.create_role(RoleName=name, AssumeRolePolicyDocument=LAMBDA_TRUST)['Role']['Arn']
    except iam.exceptions.EntityAlreadyExistsException:
        return iam.get_role(RoleName=name)['Role']['Arn']


def instance(account, region, itype='t3.micro', name='i', **kw):
    ec2 = client(account, 'ec2', region)
    return ec2.run_instances(
        ImageId=AMI_X86, MinCount=1, MaxCount=1, InstanceType=itype,
        TagSpecifications=[{'ResourceType': 'instance', 'Tags': [{'Key': 'Name', 'Value': name}]}],
        **kw)['Instances'][0]


def root_volume(account, region, instance_id):
    ec2 = client(account, 'ec2', region)
    return ec2.describe_volumes(Filters=[{'Name': 'attachment.instance-id',
                                          'Values': [instance_id]}])['Volumes'][0]['VolumeId']


def default_security_groups(account, regions):
    """AWS's default group admits its own members; moto's has no rule. Add it."""
    for region in regions:
        ec2 = client(account, 'ec2', region)
        sg = ec2.describe_security_groups(
            Filters=[{'Name': 'group-name', 'Values': ['default']}])['SecurityGroups'][0]
        if not sg['IpPermissions']:
            ec2.authorize_security_group_ingress(GroupId=sg['GroupId'], IpPermissions=[{
                'IpProtocol': '-1', 'UserIdGroupPairs': [{'GroupId': sg['GroupId']}]}])


def _asg(account, region, name):
    asg = client(account, 'autoscaling', region)
    asg.create_launch_configuration(LaunchConfigurationName=name + '-lc', ImageId=AMI_X86,
                                    InstanceType='t3.micro')
    asg.create_auto_scaling_group(AutoScalingGroupName=name, LaunchConfigurationName=name + '-lc',
                                  MinSize=0, MaxSize=2, DesiredCapacity=0,
                                  AvailabilityZones=[region + 'a'])


def _ecs_service(account, region, cluster, service):
    ecs = client(account, 'ecs', region)
    ecs.register_task_definition(family=service, containerDefinitions=[
        {'name': service, 'image': 'public.ecr.aws/docker/library/busybox', 'memory': 128}])
    ecs.create_service(cluster=cluster, serviceName=service, taskDefinition=service,
                       desiredCount=1)


def _function(account, region, name, layers=(), role='app-lambda-role'):
    lam = client(account, 'lambda', region)
    return lam.create_function(FunctionName=name, Runtime='python3.12', Role=_role(account, role),
                               Handler='index.handler', Code={'ZipFile': _zip()},
                               Layers=list(layers))['FunctionArn']


def _layer(account, region, name):
    return client(account, 'lambda', region).publish_layer_version(
        LayerName=name, Content={'ZipFile': _zip()})['LayerVersionArn']


def _notebook(account, region, name, itype):
    client(account, 'sagemaker', region).create_notebook_instance(
        NotebookInstanceName=name, InstanceType=itype, RoleArn=_role(account, 'sagemaker-role'))


def _bucket_policy(bucket, principal):
    return json.dumps({'Version': '2012-10-17', 'Statement': [{
        'Sid': 'share', 'Effect': 'Allow', 'Principal': {'AWS': principal},
        'Action': 's3:GetObject', 'Resource': f'arn:aws:s3:::{bucket}/*'}]})


def seed_clean(account, lightsail=True):
    """A healthy, busy account before the incident. Returns the names the tests check."""
    ids = {}
    default_security_groups(account, SWEPT)
    east = client(account, 'ec2', 'us-east-1')
    for region in ALLOWED:
        ids[f'web-{region}'] = instance(account, region, name='web')['InstanceId']
    web = ids['web-us-east-1']
    ids['web-root'] = root_volume(account, 'us-east-1', web)
    ids['worker'] = instance(account, 'us-east-1', name='worker')['InstanceId']
    ids['worker-root'] = root_volume(account, 'us-east-1', ids['worker'])  # never snapshotted
    # A snapshot of the web server's root volume, shared with the partner account only.
    ids['web-snap'] = east.create_snapshot(VolumeId=ids['web-root'])['SnapshotId']
    east.modify_snapshot_attribute(SnapshotId=ids['web-snap'], Attribute='createVolumePermission',
                                   OperationType='add', UserIds=[TRUSTED])
    ids['data-vol'] = east.create_volume(AvailabilityZone='us-east-1a', Size=50)['VolumeId']
    ids['web-ami'] = east.create_image(InstanceId=web, Name='web-golden')['ImageId']
    east.modify_image_attribute(ImageId=ids['web-ami'],
                                LaunchPermission={'Add': [{'UserId': TRUSTED}]})
    ids['ops-key'] = east.create_key_pair(KeyName='ops-key')['KeyName']
    # A public web server's group: open on 443 only.
    sg = east.create_security_group(GroupName='web-https', Description='public web')['GroupId']
    east.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {'IpProtocol': 'tcp', 'FromPort': 443, 'ToPort': 443,
         'IpRanges': [{'CidrIp': '0.0.0.0/0'}], 'Ipv6Ranges': [{'CidrIpv6': '::/0'}]}])
    ids['web-sg'] = sg
    _asg(account, 'us-east-1', 'web-asg')
    ecs = client(account, 'ecs', 'us-east-1')
    ecs.create_cluster(clusterName='prod')
    ecs.create_cluster(clusterName='idle')  # empty: cannot be dated, never flagged
    _ecs_service(account, 'us-east-1', 'prod', 'web')
    ecs.create_cluster(clusterName='legacy')
    _ecs_service(account, 'us-east-1', 'legacy', 'api')
    client(account, 'ecr', 'us-east-1').create_repository(repositoryName='app')
    ids['libs-layer'] = _layer(account, 'us-east-1', 'common-libs')
    ids['app-fn'] = _function(account, 'us-east-1', 'app-fn', layers=[ids['libs-layer']])
    _function(account, 'us-east-1', 'report-fn')
    lam = client(account, 'lambda', 'us-east-1')
    # S3 may invoke it, but only for this account's buckets; the partner may invoke it.
    lam.add_permission(FunctionName='app-fn', StatementId='s3', Action='lambda:InvokeFunction',
                       Principal='s3.amazonaws.com', SourceAccount=account.id)
    lam.add_permission(FunctionName='app-fn', StatementId='partner',
                       Action='lambda:InvokeFunction', Principal=TRUSTED)
    _notebook(account, 'us-east-1', 'research', 'ml.t3.medium')
    client(account, 'route53domains', 'us-east-1').register_domain(
        DomainName='example-corp.com', DurationInYears=2, AdminContact=CONTACT,
        RegistrantContact=CONTACT, TechContact=CONTACT)
    rds = client(account, 'rds', 'us-east-1')
    rds.create_db_instance(DBInstanceIdentifier='prod-db', DBInstanceClass='db.t3.micro',
                           Engine='postgres', MasterUsername='app',
                           MasterUserPassword='correct-horse-1', AllocatedStorage=20,
                           BackupRetentionPeriod=7)
    rds.create_db_snapshot(DBInstanceIdentifier='prod-db', DBSnapshotIdentifier='prod-db-manual')
    rds.modify_db_snapshot_attribute(DBSnapshotIdentifier='prod-db-manual', AttributeName='restore',
                                     ValuesToAdd=[TRUSTED])
    rds.create_db_cluster(DBClusterIdentifier='orders', Engine='aurora-postgresql',
                          MasterUsername='app', MasterUserPassword='correct-horse-1')
    rds.create_db_cluster_snapshot(DBClusterIdentifier='orders',
                                   DBClusterSnapshotIdentifier='orders-manual')
    rds.modify_db_cluster_snapshot_attribute(DBClusterSnapshotIdentifier='orders-manual',
                                             AttributeName='restore', ValuesToAdd=[TRUSTED])
    if lightsail:  # the emulator's Lightsail extension
        client(account, 'lightsail', 'us-east-1').create_instances(
            instanceNames=['blog'], availabilityZone='us-east-1a',
            blueprintId='wordpress', bundleId='small_3_0')
    s3 = client(account, 's3', 'us-east-1')
    s3.create_bucket(Bucket=f'data-{account.id}')
    s3.put_bucket_versioning(Bucket=f'data-{account.id}',
                             VersioningConfiguration={'Status': 'Enabled'})
    s3.put_bucket_policy(Bucket=f'data-{account.id}',
                         Policy=_bucket_policy(f'data-{account.id}',
                                               f'arn:aws:iam::{TRUSTED}:root'))
    # ALB access logs: AWS's ELB account writes to it.
    s3.create_bucket(Bucket=f'alb-logs-{account.id}')
    s3.put_bucket_versioning(Bucket=f'alb-logs-{account.id}',
                             VersioningConfiguration={'Status': 'Enabled'})
    s3.put_bucket_policy(Bucket=f'alb-logs-{account.id}', Policy=json.dumps({
        'Version': '2012-10-17', 'Statement': [{
            'Effect': 'Allow', 'Principal': {'AWS': f'arn:aws:iam::{ELB_LOGS_US_EAST_1}:root'},
            'Action': 's3:PutObject', 'Resource': f'arn:aws:s3:::alb-logs-{account.id}/*'}]}))
    return ids


def publish_foreign_layer(foreign_account, region='us-east-1'):
    """The attacker's layer, in their own account, usable by anyone (as AWS allows)."""
    lam = client(foreign_account, 'lambda', region)
    layer = lam.publish_layer_version(LayerName='aws-sdk-patch', Content={'ZipFile': _zip()})
    lam.add_layer_version_permission(LayerName='aws-sdk-patch', VersionNumber=layer['Version'],
                                     StatementId='everyone', Action='lambda:GetLayerVersion',
                                     Principal='*')
    return layer['LayerVersionArn']


def seed_attack(account, foreign_layer=None, lightsail=True):
    """What the attacker left. ``foreign_layer``: a layer ARN of another emulated account."""
    ids = {}
    # --- an allowed region
    east = client(account, 'ec2', 'us-east-1')
    spot = instance(account, 'us-east-1', 'g4dn.xlarge', 'worker',
                    InstanceMarketOptions={'MarketType': 'spot'})
    ids['spot'] = spot['InstanceId']
    ids['spot-root'] = root_volume(account, 'us-east-1', ids['spot'])
    ids['new-vol'] = east.create_volume(AvailabilityZone='us-east-1b', Size=500)['VolumeId']
    ids['exfil-snap'] = east.create_snapshot(VolumeId=ids['spot-root'])['SnapshotId']
    east.modify_snapshot_attribute(SnapshotId=ids['exfil-snap'], Attribute='createVolumePermission',
                                   OperationType='add', UserIds=[FOREIGN, TRUSTED])
    ids['public-snap'] = east.create_snapshot(VolumeId=ids['new-vol'])['SnapshotId']
    east.modify_snapshot_attribute(SnapshotId=ids['public-snap'],
                                   Attribute='createVolumePermission', OperationType='add',
                                   GroupNames=['all'])
    ids['public-ami'] = east.create_image(InstanceId=ids['spot'], Name='worker-image')['ImageId']
    east.modify_image_attribute(ImageId=ids['public-ami'],
                                LaunchPermission={'Add': [{'Group': 'all'}]})
    ids['attacker-key'] = east.create_key_pair(KeyName='attacker-key')['KeyName']
    sg = east.create_security_group(GroupName='debug', Description='temp')['GroupId']
    east.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22, 'IpRanges': [{'CidrIp': '0.0.0.0/0'}]},
        {'IpProtocol': '-1', 'Ipv6Ranges': [{'CidrIpv6': '::/0'}]}])
    ids['debug-sg'] = sg
    _asg(account, 'us-east-1', 'worker-asg')
    _ecs_service(account, 'us-east-1', 'prod', 'metrics-agent')  # new service, old cluster
    client(account, 'ecs', 'us-east-1').create_cluster(clusterName='batch')
    _ecs_service(account, 'us-east-1', 'batch', 'crunch')        # new cluster
    client(account, 'ecr', 'us-east-1').create_repository(repositoryName='tools')
    ids['tools-layer'] = _layer(account, 'us-east-1', 'tools')
    layers = [foreign_layer] if foreign_layer else []
    ids['backdoor-fn'] = _function(account, 'us-east-1', 'backdoor-fn', layers=layers)
    lam = client(account, 'lambda', 'us-east-1')
    lam.add_permission(FunctionName='backdoor-fn', StatementId='public',
                       Action='lambda:InvokeFunction', Principal='*')
    lam.add_permission(FunctionName='report-fn', StatementId='x',
                       Action='lambda:InvokeFunction', Principal=FOREIGN)
    lam.update_function_code(FunctionName='report-fn', ZipFile=_zip())  # code changed
    _notebook(account, 'us-east-1', 'gpu-nb', 'ml.p3.2xlarge')
    client(account, 'route53domains', 'us-east-1').register_domain(
        DomainName='examp1e-corp.com', DurationInYears=2, AdminContact=CONTACT,
        RegistrantContact=CONTACT, TechContact=CONTACT)
    rds = client(account, 'rds', 'us-east-1')
    rds.create_db_snapshot(DBInstanceIdentifier='prod-db', DBSnapshotIdentifier='prod-db-copy')
    rds.modify_db_snapshot_attribute(DBSnapshotIdentifier='prod-db-copy', AttributeName='restore',
                                     ValuesToAdd=[FOREIGN])
    rds.create_db_cluster_snapshot(DBClusterIdentifier='orders',
                                   DBClusterSnapshotIdentifier='orders-copy')
    rds.modify_db_cluster_snapshot_attribute(DBClusterSnapshotIdentifier='orders-copy',
                                             AttributeName='restore', ValuesToAdd=['all'])
    rds.create_db_instance(DBInstanceIdentifier='scratch-db', DBInstanceClass='db.t3.micro',
                           Engine='postgres', MasterUsername='app',
                           MasterUserPassword='correct-horse-1', AllocatedStorage=20,
                           BackupRetentionPeriod=0)
    s3 = client(account, 's3', 'us-east-1')
    bucket = f'drop-{account.id}'
    s3.create_bucket(Bucket=bucket)  # no versioning (X8)
    s3.put_bucket_policy(Bucket=bucket,
                         Policy=_bucket_policy(bucket, f'arn:aws:iam::{FOREIGN}:root'))
    ids['drop-bucket'] = bucket
    # --- a region the account never uses
    far = client(account, 'ec2', UNUSED)
    ids['far-miner'] = instance(account, UNUSED, 'p3.2xlarge', 'miner')['InstanceId']
    ids['far-root'] = root_volume(account, UNUSED, ids['far-miner'])
    ids['far-ami'] = far.create_image(InstanceId=ids['far-miner'], Name='miner')['ImageId']
    ids['far-snap'] = far.create_snapshot(VolumeId=ids['far-root'])['SnapshotId']
    _asg(account, UNUSED, 'miner-asg')
    client(account, 'ecs', UNUSED).create_cluster(clusterName='miners')
    client(account, 'ecr', UNUSED).create_repository(repositoryName='xmrig')
    ids['far-layer'] = _layer(account, UNUSED, 'xmrig-libs')
    ids['far-fn'] = _function(account, UNUSED, 'far-fn')
    _notebook(account, UNUSED, 'far-nb', 'ml.p2.xlarge')
    if lightsail:  # the emulator's Lightsail extension
        for region, name in ((UNUSED, 'far-box'), ('us-east-1', 'new-box')):
            client(account, 'lightsail', region).create_instances(
                instanceNames=[name], availabilityZone=region + 'a',
                blueprintId='ubuntu_22_04', bundleId='large_3_0')
    return ids


@pytest.fixture(scope='session')
def compromised_world(emulator):
    """One account seeded clean, then attacked, shared by the unit and end-to-end tests
    (seeding two accounts is most of their set-up time). Tests only read it.

    ``account``, ``foreign`` (the attacker's own account, which publishes a layer),
    ``start`` (incident_start), ``clean`` and ``bad`` (names and ids seeded).
    """
    from custodian_ext_dev.demo import story
    from tests.support import new_account
    w = SimpleNamespace(account=new_account(emulator.url), foreign=new_account(emulator.url))
    w.clean = seed_clean(w.account)
    w.start = story.incident_boundary()
    w.foreign_layer = publish_foreign_layer(w.foreign)
    w.bad = seed_attack(w.account, foreign_layer=w.foreign_layer)
    return w
