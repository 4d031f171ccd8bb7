"""Least privilege on an emulator that enforces IAM: a seeded compromised account, roles
holding a given policy, and the real `custodian run` as such a role.

The emulator (``Emulator(iam_auth='inf')``) serves the seeding freely; then
``Emulator.enforce_iam()`` turns IAM enforcement on for every later request
(custodian_ext_dev/emulator/iam_auth.py). From then on only the account's
``operator`` user (AdministratorAccess) and the roles it creates can call
anything: the seeding helpers' sessions are refused, as AWS refuses unknown keys.
"""
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

from custodian_ext_dev.demo import story
from custodian_ext_dev.emulator import AMI_X86, Emulator, assert_loopback, client_env
from tests import seed_resources as seed
from tests.support import POLICIES, REPO, new_account, run_cli, write_vars

ADMIN = 'arn:aws:iam::aws:policy/AdministratorAccess'
SWEPT = seed.SWEPT
# Every detect policy runs in these two: global ones and the allowed regions' checks in
# us-east-1, R3.3's only outside the allowed regions.
TWO_REGIONS = ['us-east-1', seed.UNUSED]
OPERATOR = 'operator'


ADMIN_DOC = {'Version': '2012-10-17', 'Statement': [
    {'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]}


@dataclass
class World:
    emulator: Emulator
    account: object           # tests.support.Account (unusable once enforcement is on)
    start: str = ''           # incident_start
    foreign: object = None
    operator: dict = field(default_factory=dict)   # the operator user's access key
    roles: dict = field(default_factory=dict)      # role name -> credentials
    clean: dict = field(default_factory=dict)
    bad: dict = field(default_factory=dict)

    @property
    def url(self):
        return self.emulator.url

    def operator_client(self, service, region='us-east-1'):
        import boto3
        from botocore.config import Config
        assert_loopback(self.url)
        return boto3.Session(region_name=region).client(
            service, endpoint_url=self.url, aws_access_key_id=self.operator['AccessKeyId'],
            aws_secret_access_key=self.operator['SecretAccessKey'],
            config=Config(retries={'max_attempts': 1, 'mode': 'standard'}))

    def role(self, name, policy):
        """A role in the account holding exactly ``policy`` (a document) and trusting the
        operator; its session's credentials (cached by name)."""
        if name not in self.roles:
            iam = self.operator_client('iam')
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
                'Version': '2012-10-17', 'Statement': [{
                    'Effect': 'Allow', 'Action': 'sts:AssumeRole',
                    'Principal': {'AWS': f'arn:aws:iam::{self.account.id}:root'}}]}))
            docs = policy if isinstance(policy, list) else [policy]
            for i, doc in enumerate(docs):
                iam.put_role_policy(RoleName=name, PolicyName=f'{name}-{i}',
                                    PolicyDocument=json.dumps(doc))
            creds = self.operator_client('sts').assume_role(
                RoleArn=f'arn:aws:iam::{self.account.id}:role/{name}',
                RoleSessionName=name[:64])['Credentials']
            self.roles[name] = creds
        return self.roles[name]

    def add_operator(self):
        """The account's administrator for after enforcement: an IAM user with a key."""
        iam = self.account.client('iam')
        iam.create_user(UserName=OPERATOR)
        iam.attach_user_policy(UserName=OPERATOR, PolicyArn=ADMIN)
        self.operator = iam.create_access_key(UserName=OPERATOR)['AccessKey']
        return self

    def env(self, role_name):
        creds = self.roles[role_name]
        env = client_env(self.url)
        env.update({'AWS_ACCESS_KEY_ID': creds['AccessKeyId'],
                    'AWS_SECRET_ACCESS_KEY': creds['SecretAccessKey'],
                    'AWS_SESSION_TOKEN': creds['SessionToken'],
                    'HOME': os.environ.get('CUSTODIAN_TEST_HOME', env.get('HOME', '/tmp'))})
        return env


def compromised_world(emulator):
    """The resource checks' compromised account (tests/seed_resources.py) plus the
    identity story of the demo's compromised account (custodian_ext_dev/demo/story.py:
    known users, a trail and flow logs, then the attacker's users, roles, shares, stopped
    trail and deleted flow logs with deploy-bot's leaked key), seeded before enforcement."""
    account, foreign = new_account(emulator.url), new_account(emulator.url)
    w = World(emulator, account, foreign=foreign)
    w.clean = seed.seed_clean(account)
    story.seed_busy(emulator.url, account.id, story.COMPROMISED, story.TRUSTED_ACCOUNT)
    story.seed_baseline(emulator.url, account.id)
    key = story.leak_key(emulator.url, account.id)
    w.start = story.incident_boundary()
    layer = seed.publish_foreign_layer(foreign)
    w.bad = seed.seed_attack(account, foreign_layer=layer)
    story.seed_compromise(emulator.url, account.id, key)
    iam = account.client('iam')
    # The attacker's break-glass group: inline and customer-managed admin policies, so
    # that the admin checks read group policies and policy versions.
    admin_doc = json.dumps({'Version': '2012-10-17', 'Statement': [
        {'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]})
    iam.create_group(GroupName='break-glass')
    iam.put_group_policy(GroupName='break-glass', PolicyName='all', PolicyDocument=admin_doc)
    managed = iam.create_policy(PolicyName='break-glass-all', PolicyDocument=admin_doc)
    iam.attach_group_policy(GroupName='break-glass', PolicyArn=managed['Policy']['Arn'])
    iam.add_user_to_group(GroupName='break-glass', UserName='backdoor-admin')
    iam.put_user_policy(UserName='backdoor-admin', PolicyName='all', PolicyDocument=admin_doc)
    # The miners' cluster runs a task on a registered instance (container instances, tasks).
    far = seed.client(account, 'ec2', seed.UNUSED)
    host = far.describe_instances(Filters=[{'Name': 'instance-type', 'Values': ['p3.2xlarge']}])[
        'Reservations'][0]['Instances'][0]['InstanceId']
    ecs = seed.client(account, 'ecs', seed.UNUSED)
    ecs.register_container_instance(cluster='miners', instanceIdentityDocument=json.dumps(
        {'instanceId': host, 'region': seed.UNUSED}))
    ecs.register_task_definition(family='xmrig', containerDefinitions=[
        {'name': 'xmrig', 'image': 'public.ecr.aws/docker/library/busybox', 'memory': 128}])
    ecs.run_task(cluster='miners', taskDefinition='xmrig', count=1)
    # The miners' instances carry no tags: c7n then reads them with DescribeTags.
    for r in far.describe_instances()['Reservations']:
        for i in r['Instances']:
            if i.get('Tags'):
                far.delete_tags(Resources=[i['InstanceId']], Tags=i['Tags'])
    # The account manages an organization (R4.3 lists its member accounts).
    account.client('organizations').create_organization(FeatureSet='ALL')
    iam.create_user(UserName=OPERATOR)
    iam.attach_user_policy(UserName=OPERATOR, PolicyArn=ADMIN)
    w.operator = iam.create_access_key(UserName=OPERATOR)['AccessKey']
    return w


def world_vars(w, **overrides):
    values = story.demo_vars(w.start, allowed_regions=seed.ALLOWED,
                             trusted_accounts=[seed.TRUSTED, story.TRUSTED_ACCOUNT],
                             known_users=story.KNOWN_USERS + [OPERATOR])
    values.update(overrides)
    return values


def api_actions(run):
    """The IAM actions of the calls one policy run made (c7n's api-stats in metadata.json)."""
    from custodian_ext_dev.emulator import iam_auth
    with open(os.path.join(run.path, 'metadata.json')) as fh:
        stats = json.load(fh).get('api-stats') or {}
    out = set()
    for key in stats:  # "<endpoint prefix>.<Operation>"
        endpoint, op = key.rsplit('.', 1)
        prefix = iam_auth.iam_prefix(endpoint.removeprefix('api.'))
        name = (iam_auth.names().get('renamed') or {}).get(prefix, {}).get(op, op)
        out |= {f'{prefix}:{n}' for n in (name if isinstance(name, list) else [name])}
    return out


# `custodian run` with every cache of the pack off (its performance layer, and the
# CloudTrail event history cache of custodian_ext/filters/event_history.py): each
# policy then makes, and c7n's api-stats record, every call it needs. The event
# history's pace (2 requests/s, AWS's quota) is lifted: the emulator has no quota.
UNCACHED = ("import sys; sys.argv = ['custodian'] + sys.argv[1:]; "
            "import custodian_ext; from custodian_ext import patches; "
            "patches.install('custodian'); "
            "from custodian_ext.filters import event_history as h; h.CACHE_SECONDS = -1; "
            "h.limiter.interval = 0; from c7n.cli import main; main()")


def sweep(w, role_name, out, variables, regions, paths=None, extra=(), env=None,
          uncached=False):
    """The real `custodian run` of policies/detect (or ``paths``) as ``role_name``;
    ``uncached``: with the pack's caches off (UNCACHED), for c7n's per-policy api-stats."""
    os.makedirs(out, exist_ok=True)
    vars_file = write_vars(os.path.join(out, 'vars.yml'), variables)
    cmd = ['custodian', 'run', '-s', os.path.join(out, 'out'), '--cache-period', '0',
           '--vars-file', vars_file] + list(extra) + list(
               paths or [os.path.join(POLICIES, 'detect')])
    for r in regions:
        cmd += ['-r', r]
    env = dict(w.env(role_name), **(env or {}))
    if uncached:
        env.update(CUSTODIAN_EXT_PERF='0')
        return subprocess.run([sys.executable, '-c', UNCACHED, *cmd[1:]], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=900, check=False)
    return run_cli(cmd, env, timeout=900)


# -- the respond, recover and react accounts ---------------------------------------------

RESTORE_FLAG = [{'Key': 'incident-restore', 'Value': 'ir-2026-11'}]


CONTAIN = {'Key': 'custodian-ext:contain', 'Value': 'ir-2026-11'}
EC2_TRUST = json.dumps({'Version': '2012-10-17', 'Statement': [{
    'Effect': 'Allow', 'Principal': {'Service': 'ec2.amazonaws.com'}, 'Action': 'sts:AssumeRole'}]})


def respond_world(emulator):
    """What the respond policies contain (tests/cli/test_r2_1_make_respond.py's account):
    the demo's quarantined keys and out-of-region miners, an instance and a role the
    responder marked, a trail not logging, a snapshot shared with a foreign account, an
    attacker's user, and the evidence bucket."""
    account = new_account(emulator.url)
    story.seed_baseline(account.url, account.id)
    start = story.incident_boundary()
    story.seed_attack(account.url, account.id)
    iam, ec2 = account.client('iam'), account.client('ec2')
    s3, ct = account.client('s3'), account.client('cloudtrail')
    s3.create_bucket(Bucket=f'evidence-{account.id}')
    s3.create_bucket(Bucket=f'trail-{account.id}')
    ct.create_trail(Name='audit', S3BucketName=f'trail-{account.id}', IsMultiRegionTrail=True)
    iam.create_user(UserName='backdoor')
    iam.create_login_profile(UserName='backdoor', Password='Attacker-Pass-1!')
    iam.create_access_key(UserName='backdoor')
    iam.create_role(RoleName='ci-deployer', AssumeRolePolicyDocument=EC2_TRUST, Tags=[CONTAIN])
    ec2.run_instances(ImageId=AMI_X86, MinCount=1, MaxCount=1, TagSpecifications=[
        {'ResourceType': 'instance', 'Tags': [CONTAIN]}])
    vol = ec2.create_volume(AvailabilityZone='us-east-1a', Size=1)['VolumeId']
    shared = ec2.create_snapshot(VolumeId=vol)['SnapshotId']
    ec2.modify_snapshot_attribute(SnapshotId=shared, Attribute='createVolumePermission',
                                  OperationType='add', UserIds=[story.ATTACKER_ACCOUNT])
    w = World(emulator, account, start=start)
    w.bad = {'bucket': f'evidence-{account.id}'}
    return w.add_operator()


def recover_world(emulator):
    """A bucket whose objects the attacker overwrote and deleted, an instance whose volume
    has a snapshot from before, and DB instances with and without automated backups, all
    flagged ``incident-restore`` (tests/cli/test_recover.py, test_x8_restore_rds.py)."""
    account = new_account(emulator.url)
    s3, ec2, rds = (account.client(s) for s in ('s3', 'ec2', 'rds'))
    bucket = f'shop-assets-{account.id}'
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={'Status': 'Enabled'})
    s3.put_bucket_tagging(Bucket=bucket, Tagging={'TagSet': RESTORE_FLAG})
    for i in range(4):
        s3.put_object(Bucket=bucket, Key=f'orders/{i}.json', Body=json.dumps({'order': i}),
                      Tagging='kind=order')
    volume = ec2.run_instances(ImageId=AMI_X86, MinCount=1, MaxCount=1, TagSpecifications=[
        {'ResourceType': 'instance', 'Tags': RESTORE_FLAG}])['Instances'][0][
        'BlockDeviceMappings'][0]['Ebs']['VolumeId']
    ec2.create_snapshot(VolumeId=volume)
    for name, retention in (('orders', 0), ('ledger', 7)):
        rds.create_db_instance(
            DBInstanceIdentifier=name, Engine='postgres', DBInstanceClass='db.t3.small',
            MasterUsername='app', MasterUserPassword='password-123', AllocatedStorage=20,
            BackupRetentionPeriod=retention, Tags=RESTORE_FLAG)
    rds.create_db_snapshot(DBInstanceIdentifier='orders', DBSnapshotIdentifier='orders-before')
    start = story.incident_boundary()
    for i in range(2):
        s3.put_object(Bucket=bucket, Key=f'orders/{i}.json', Body=b'\x00locked')
    s3.delete_object(Bucket=bucket, Key='orders/3.json')
    ec2.create_snapshot(VolumeId=volume)
    w = World(emulator, account, start=start)
    w.bad = {'bucket': bucket, 'volume': volume}
    return w.add_operator()


REACT_ROLE = 'CustodianPackReact'


def react_world(emulator):
    """A user whose key AWS reports exposed (two keys, AWS's quarantine policy), a role that
    trusts it, the notify topic feeding a queue, and the functions' output bucket
    (tests/cli/test_react.py)."""
    account = new_account(emulator.url)
    iam, sns, sqs, s3 = (account.client(s) for s in ('iam', 'sns', 'sqs', 's3'))
    iam.create_user(UserName='deploy-bot')
    keys = [iam.create_access_key(UserName='deploy-bot')['AccessKey']['AccessKeyId']
            for _ in range(2)]
    iam.attach_user_policy(UserName='deploy-bot',
                           PolicyArn='arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2')
    iam.create_role(RoleName='ci-deployer', AssumeRolePolicyDocument=json.dumps({
        'Version': '2012-10-17', 'Statement': [{
            'Effect': 'Allow', 'Action': 'sts:AssumeRole',
            'Principal': {'AWS': f'arn:aws:iam::{account.id}:user/deploy-bot'}}]}))
    s3.create_bucket(Bucket=f'react-results-{account.id}')
    queue = sqs.create_queue(QueueName='custodian-mailer')['QueueUrl']
    topic = sns.create_topic(Name='security-alerts')['TopicArn']
    sns.subscribe(TopicArn=topic, Protocol='sqs',
                  Endpoint=f'arn:aws:sqs:us-east-1:{account.id}:custodian-mailer')
    w = World(emulator, account)
    w.bad = {'keys': keys, 'topic': topic, 'queue': queue,
             'output': f's3://react-results-{account.id}/react?region=us-east-1'}
    return w.add_operator()


REACT_DATA = os.path.join(REPO, 'tests', 'data', 'react')


def react_notice(name, account_id, key_id):
    """A sample notice of tests/data/react/ (AWS's documented shape) for this key."""
    with open(os.path.join(REACT_DATA, name)) as fh:
        text = fh.read()
    return json.loads(text.replace('123456789012', account_id)
                      .replace('AKIAIOSFODNN7EXAMPLE', key_id))


def deployed_policy(account_id, values, name, region='us-east-1'):
    """A react policy as `custodian run` deploys it: settings substituted, the pack's tags
    added (tests/cli/test_x1_react.py)."""
    import yaml

    import custodian_ext  # noqa: F401
    from c7n import version
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    load_resources(('aws.iam-user',))
    with open(os.path.join(POLICIES, 'react', 'x1.yml')) as fh:
        [data] = [p for p in yaml.safe_load(fh)['policies'] if p['name'] == name]
    policy = Policy(data, Config.empty(region=region, account_id=account_id,
                                       output_dir='out', tracer=None))
    policy.expand_variables(policy.get_variables(dict(values)))
    policy.get_execution_mode().add_pack_tags()
    policy.data['mode']['tags']['custodian-info'] = (
        f'mode=exposed-key-notice:version={version.version}')
    return policy
