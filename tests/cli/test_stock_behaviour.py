"""Issue #13, item 2: the pack loaded changes nothing for policies that are not the pack's.

A corpus of stock Cloud Custodian policies (``tests/data/stock``: built-in filters
and actions only, no pack filter, action or setting) runs through each entry
point the pack patches, twice: with the pack, as the console scripts load it
(``custodian_ext.pth``), and without it (``CUSTODIAN_EXT_AUTOLOAD=0``: stock
Cloud Custodian). Exit codes, the policy folders written (and the files in
them), every ``resources.json``, what ``metadata.json`` counts, the errors
logged, and what the acting policies changed (read back from the emulator)
must be the same.

Each variant runs in its own emulated account, seeded the same way: acting
policies change the account, so the two cannot share one. ``resources.json``
is compared after normalisation: each seeded resource's id becomes its label
(``instance:web@us-east-1``), the account id ``ACCOUNT``, and what differs
between two accounts seeded the same way (other generated ids, addresses,
times) a placeholder. One world (a pair of accounts) per acting sweep, so that
a difference in one sweep does not leak into another's comparison; the probes
that follow the main sweep only read.

Each test guards a difference the pack once made to stock policies (its docstring says
which); all of them are gone: the pack's checks, skip records and resource cache apply to
runs of the pack's policies only.
"""
import concurrent.futures
import json
import os
import re
import shutil
import socket
from dataclasses import dataclass, field

import pytest
import yaml

from custodian_ext_dev.emulator import AMI_X86
from tests.seed_resources import LAMBDA_TRUST, _zip
from tests.support import REPO, new_account, run_cli

pytestmark = pytest.mark.e2e

STOCK = os.path.join(REPO, 'tests', 'data', 'stock')
CORPUS = sorted(os.path.join(STOCK, f) for f in os.listdir(STOCK) if f.endswith('.yml'))
SWEEP = [p for p in CORPUS if not p.endswith('periodic.yml')]  # no Lambda deploy
VARS = os.path.join(STOCK, 'vars', 'stock-vars.yml')
PROBES = os.path.join(STOCK, 'probes')
REGIONS = ['us-east-1', 'us-west-2']
PARTNER = '111111111111'   # whitelisted in the corpus
STRANGER = '999999999999'  # not whitelisted
VARIANTS = ('pack', 'stock')

# Policies that read what an earlier policy of their file changed, and the acting
# policies whose own selection depends on such a read.
READS_AFTER_ACTS = {
    'ec2-staged-this-run', 'ec2-owned-this-run', 'ec2-worker-without-owner',
    'ec2-marked-for-stop', 'ec2-stopped', 'iam-victim-keys-inactive',
    'iam-users-reviewed-this-run', 'ec2-remove-owner', 'ec2-stop-marked'}


def _load(path):
    with open(path) as fh:
        return yaml.safe_load(fh)


# Files whose policies only read: for the probes that run after the main sweep.
READ_ONLY = [p for p in SWEEP if not any(q.get('actions') for q in _load(p)['policies'])]


def closed_endpoint():
    """A loopback URL nothing listens on (a port just bound and released)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    return f'http://127.0.0.1:{port}'


def region_args(regions=REGIONS):
    return [a for r in regions for a in ('-r', r)]


def policy_names(paths):
    return [p['name'] for path in paths for p in _load(path)['policies']]


# -- seeding -------------------------------------------------------------------

def _trust(principal):
    return json.dumps({'Version': '2012-10-17', 'Statement': [{
        'Effect': 'Allow', 'Principal': principal, 'Action': 'sts:AssumeRole'}]})


def _allow(action):
    return json.dumps({'Version': '2012-10-17', 'Statement': [{
        'Effect': 'Allow', 'Action': action, 'Resource': '*'}]})


def seed(account, labels):
    """The same resources in every account; returns {generated id: label}.

    ``labels``: one victim (an instance and an IAM user with a key) per sweep
    that acts, so that each sweep's actions change something not changed before.
    """
    ids = {}
    sess = account.session()
    clients = {}

    def client(service, region='us-east-1'):
        if (service, region) not in clients:
            clients[service, region] = sess.client(service, region_name=region)
        return clients[service, region]

    acct = account.id
    iam = client('iam')
    users = [('app-deploy', 'payments'), ('ops-admin', 'ops')] + [
        (f'victim-{label}', None) for label in labels]
    for name, team in users:
        tags = [{'Key': 'Team', 'Value': team}] if team else []
        ids[iam.create_user(UserName=name, Tags=tags)['User']['UserId']] = f'user-id:{name}'
        if name != 'ops-admin':
            key = iam.create_access_key(UserName=name)['AccessKey']['AccessKeyId']
            ids[key] = f'key:{name}'
    iam.create_login_profile(UserName='ops-admin', Password='Correct-Horse-9!')
    iam.put_user_policy(UserName='ops-admin', PolicyName='inline-admin',
                        PolicyDocument=_allow('ec2:*'))
    for name, trust in (('corpus-custodian', LAMBDA_TRUST),
                        ('partner-access', _trust({'AWS': f'arn:aws:iam::{PARTNER}:root'})),
                        ('stranger-access', _trust({'AWS': f'arn:aws:iam::{STRANGER}:root'})),
                        ('app-role', _trust({'Service': 'ec2.amazonaws.com'}))):
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)['Role']
        ids[role['RoleId']] = f'role-id:{name}'
    iam.put_role_policy(RoleName='app-role', PolicyName='read-logs',
                        PolicyDocument=_allow('s3:GetObject'))
    for name, action in (('corpus-attached', 's3:ListBucket'), ('corpus-unused', 'ec2:Describe*'),
                         ('corpus-admin', '*')):
        policy = iam.create_policy(PolicyName=name, PolicyDocument=_allow(action))['Policy']
        ids[policy['PolicyId']] = f'policy-id:{name}'
    iam.attach_role_policy(RoleName='app-role',
                           PolicyArn=f'arn:aws:iam::{acct}:policy/corpus-attached')

    def instance(region, name, team=None):
        tags = [{'Key': 'Name', 'Value': name}] + (
            [{'Key': 'Team', 'Value': team}] if team else [])
        i = client('ec2', region).run_instances(
            ImageId=AMI_X86, MinCount=1, MaxCount=1, InstanceType='t3.micro',
            TagSpecifications=[{'ResourceType': 'instance', 'Tags': tags}])['Instances'][0]
        ids[i['InstanceId']] = f'instance:{name}@{region}'
        return i['InstanceId']

    for region in REGIONS:
        instance(region, 'web', 'payments')
    instance('us-east-1', 'worker', 'payments')
    for label in labels:
        instance('us-east-1', f'victim-{label}')
    east = client('ec2')
    east.stop_instances(InstanceIds=[instance('us-east-1', 'parked')])
    for region in REGIONS:
        for v in client('ec2', region).describe_volumes()['Volumes']:
            owner = ids[v['Attachments'][0]['InstanceId']].split(':', 1)[1]
            ids[v['VolumeId']] = f'root-volume:{owner}'
    data = east.create_volume(AvailabilityZone='us-east-1a', Size=8, TagSpecifications=[
        {'ResourceType': 'volume', 'Tags': [{'Key': 'Team', 'Value': 'payments'}]}])['VolumeId']
    ids[data] = 'volume:data'
    root = next(k for k, v in ids.items() if v == 'root-volume:worker@us-east-1')
    for name, volume, share in (('partner', root, PARTNER), ('stranger', data, STRANGER),
                                ('private', data, None)):
        snap = east.create_snapshot(VolumeId=volume, Description=name)['SnapshotId']
        ids[snap] = f'snapshot:{name}'
        if share:
            east.modify_snapshot_attribute(SnapshotId=snap, Attribute='createVolumePermission',
                                           OperationType='add', UserIds=[share])

    s3 = client('s3')
    for name in ('public', 'shared', 'private', 'trail'):
        s3.create_bucket(Bucket=f'corpus-{name}-{acct}')
    s3.put_bucket_acl(Bucket=f'corpus-public-{acct}', ACL='public-read')
    s3.put_bucket_policy(Bucket=f'corpus-shared-{acct}', Policy=json.dumps({
        'Version': '2012-10-17', 'Statement': [{
            'Sid': 'share', 'Effect': 'Allow',
            'Principal': {'AWS': f'arn:aws:iam::{STRANGER}:root'}, 'Action': 's3:GetObject',
            'Resource': f'arn:aws:s3:::corpus-shared-{acct}/*'}]}))
    trail = client('cloudtrail')
    trail.create_trail(Name='corpus-trail', S3BucketName=f'corpus-trail-{acct}',
                       IsMultiRegionTrail=True, IncludeGlobalServiceEvents=True)
    trail.start_logging(Name='corpus-trail')

    lam = client('lambda')
    for name, principal in (('corpus-fn', STRANGER), ('corpus-partner-fn', PARTNER)):
        lam.create_function(FunctionName=name, Runtime='python3.12', Handler='index.handler',
                            Role=f'arn:aws:iam::{acct}:role/app-role', Code={'ZipFile': _zip()})
        lam.add_permission(FunctionName=name, StatementId='invoke',
                           Action='lambda:InvokeFunction', Principal=principal)
    org = client('organizations').create_organization(FeatureSet='ALL')['Organization']
    ids[org['Id']] = 'organization'
    # what the `credential` filters read (see tests/data/stock/iam.yml)
    iam.generate_credential_report()
    return ids


# -- worlds: one account per variant --------------------------------------------

@dataclass
class Side:
    """One variant of a world: its account, and where its runs write."""
    variant: str
    account: object
    ids: dict
    base: str
    files: dict = field(default_factory=dict)

    @property
    def env(self):
        # c7n-org: one worker, so that the regions run one after the other (in parallel, an
        # IAM policy acting in one region races a read of IAM in the other)
        env = dict(self.account.env, HOME=os.path.join(self.base, 'home'), C7N_ORG_PARALLEL='1')
        env.pop('CUSTODIAN_EXT_PERF', None)  # the pack as installed
        if self.variant == 'stock':
            env['CUSTODIAN_EXT_AUTOLOAD'] = '0'
        else:
            env.pop('CUSTODIAN_EXT_AUTOLOAD', None)
        return env


@dataclass
class Result:
    args: list
    returncode: int
    stdout: str
    stderr: str
    out: str


@dataclass
class World:
    name: str
    sides: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)   # case -> {variant: Result}
    effects: dict = field(default_factory=dict)  # label -> {variant: effects}

    def run(self, case, make_args, env=None):
        """The same command for both variants, run side by side; {variant: Result}.

        ``make_args(side, out)`` builds the command; ``out``, an output folder of the case.
        """
        def one(side):
            out = os.path.join(side.base, case)
            args = make_args(side, out)
            proc = run_cli(args, env(side) if env else side.env, timeout=300)
            return side.variant, Result(args, proc.returncode, proc.stdout, proc.stderr, out)

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            self.runs[case] = dict(pool.map(one, self.sides.values()))
        return self.runs[case]

    def read_back(self, label):
        self.effects[label] = {v: effects(s) for v, s in self.sides.items()}
        return self.effects[label]


def make_world(emulator, tmp, name, labels):
    world = World(name)

    def one(variant):
        account = new_account(emulator.url)
        base = os.path.join(str(tmp), name, variant)
        os.makedirs(os.path.join(base, 'home'))
        return Side(variant, account, seed(account, labels), base)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for side in pool.map(one, VARIANTS):
            world.sides[side.variant] = side
    return world


def write_vars(side, label, source=VARS):
    """The corpus's vars file, with this sweep's ``run_label``."""
    values = _load(source)
    values['run_label'] = label
    path = os.path.join(side.base, f'vars-{label}.yml')
    with open(path, 'w') as fh:
        yaml.safe_dump(values, fh)
    return path


def accounts_file(side, label):
    """A c7n-org accounts file naming the side's account (entered with sts:AssumeRole)."""
    values = _load(VARS)
    values['run_label'] = label
    path = os.path.join(side.base, f'accounts-{label}.yml')
    with open(path, 'w') as fh:
        yaml.safe_dump({'accounts': [{
            'name': 'member', 'account_id': side.account.id,
            'role': f'arn:aws:iam::{side.account.id}:role/OrganizationAccountAccessRole',
            'vars': values}]}, fh, sort_keys=False)
    return path


def bundle(paths, dest, pick=None):
    """c7n-org takes one policy file: the corpus files' policies (or those ``pick`` keeps)."""
    policies = []
    for path in paths:
        found = _load(path)['policies']
        policies += pick(found) if pick else found
    with open(dest, 'w') as fh:
        yaml.safe_dump({'policies': policies}, fh, sort_keys=False)
    return dest


def sample(policies):
    """A file's first policy, and its first that uses a variable.

    ``c7n-org validate`` checks the whole file against the schema of every resource type
    (about half a second of CPU per policy): it gets these, one or two per service.
    """
    uses_var = re.compile(r'"[^"]*\{\w+\}[^"]*"')
    picks = [policies[0], next((p for p in policies if uses_var.search(json.dumps(p))),
                               policies[0])]
    return [p for i, p in enumerate(picks) if p not in picks[:i]]


# -- comparing outputs -----------------------------------------------------------

TIME_RE = re.compile(
    r'\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?|\d{4}/\d{2}/\d{2}')
GENERATED_RE = re.compile(
    r'\b(?:(?:i|vol|snap|eni|eni-attach|r|sg|subnet|vpc|igw|rtb|acl|dopt|eipalloc)'
    r'-[0-9a-f]{8,17}|(?:AIDA|AROA|ANPA|AKIA|ASIA|AGPA|AIPA)[A-Z0-9]{12,20}|'
    r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|o-[a-z0-9]{10,32}|'
    r'r-[a-z0-9]{4,32})\b')
ADDRESS_RE = re.compile(
    r'\b\d{1,3}(?:[.-]\d{1,3}){3}\b|\b(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b|127\.0\.0\.1:\d+')
# values that differ between two accounts seeded the same way
# CodeSize: the deployed zip holds the account's own id, which compresses a byte or so
# differently from the other account's
VOLATILE_KEYS = {'ETag', 'Etag', 'RevisionId', 'CodeSha256', 'CodeSize', 'LastModified'}


def normalise_text(text, side):
    for value, label in sorted(side.ids.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(value, label)
    text = text.replace(side.account.id, 'ACCOUNT').replace(side.base, 'BASE')
    text = TIME_RE.sub('TIME', text)
    text = GENERATED_RE.sub('ID', text)
    return ADDRESS_RE.sub('ADDR', text)


def _drop_volatile(obj):
    if isinstance(obj, dict):
        return {k: _drop_volatile(v) for k, v in obj.items() if k not in VOLATILE_KEYS}
    if isinstance(obj, list):
        return [_drop_volatile(v) for v in obj]
    return obj


def normalise(data, side):
    """``resources.json`` made comparable across the two accounts, sorted."""
    data = _drop_volatile(json.loads(normalise_text(json.dumps(data, default=str), side)))
    return sorted(data, key=lambda r: json.dumps(r, sort_keys=True))


def policy_dirs(out):
    """{policy folder relative to ``out``: names of the files in it}."""
    found = {}
    for root, _dirs, files in os.walk(out):
        if {'metadata.json', 'resources.json', 'custodian-run.log'} & set(files):
            found[os.path.relpath(root, out)] = sorted(files)
    return found


def resources_of(result, side, only=None, exclude=()):
    """{policy folder: normalised resources} of a run (None: no resources.json)."""
    out = {}
    for rel in policy_dirs(result.out):
        policy = os.path.basename(rel)
        if (only is not None and policy not in only) or policy in exclude:
            continue
        path = os.path.join(result.out, rel, 'resources.json')
        out[rel] = normalise(_load(path), side) if os.path.exists(path) else None
    return out


def metadata_of(result, side, only=None, exclude=()):
    """metadata.json: the policy, the run's configuration and counts.

    Not times, and not ``api-stats``: a cache (c7n's, or the pack's) changes how many
    calls a policy makes, not what it finds.
    """
    out = {}
    for rel, files in policy_dirs(result.out).items():
        policy = os.path.basename(rel)
        if 'metadata.json' not in files or policy in exclude or (
                only is not None and policy not in only):
            continue
        with open(os.path.join(result.out, rel, 'metadata.json')) as fh:
            meta = json.loads(normalise_text(fh.read(), side))
        out[rel] = {
            'policy': meta.get('policy'), 'config': meta.get('config'),
            'metrics': {m['MetricName']: m['Value'] for m in meta.get('metrics', ())
                        if not m['MetricName'].endswith('Time')}}
    return out


def error_lines(result, side):
    """The errors a run logged, normalised (not the traceback lines)."""
    lines = set()
    for ln in result.stderr.splitlines():
        if ':ERROR ' in ln or ln.startswith(('custodian: error', 'c7n-org: error')):
            lines.add(re.sub(r'^TIME,\d+: ', '', normalise_text(ln, side)).strip())
    return sorted(lines)


def _diff(pack, stock):
    """The first differing fields, for the failure message."""
    if isinstance(pack, list) and isinstance(stock, list) and len(pack) == len(stock):
        for a, b in zip(pack, stock):
            if a != b and isinstance(a, dict) and isinstance(b, dict):
                keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                return '; '.join(f"{k}: pack {a.get(k)!r}, stock {b.get(k)!r}" for k in keys)
    return f"pack {len(pack)} resources, stock {len(stock)}"


def assert_same(results, world, what, only=None, exclude=()):
    """Same exit code, folders, files, resources, counts and errors, with and without the pack."""
    pack, stock = results['pack'], results['stock']
    sp, ss = world.sides['pack'], world.sides['stock']
    assert pack.returncode == stock.returncode, (
        f"{what}: exit {pack.returncode} with the pack, {stock.returncode} stock\n"
        f"--- pack stderr\n{pack.stderr[-2500:]}\n--- stock stderr\n{stock.stderr[-2500:]}")
    dirs = {k: v for k, v in policy_dirs(stock.out).items()
            if (only is None or os.path.basename(k) in only) and os.path.basename(k) not in exclude}
    got = {k: v for k, v in policy_dirs(pack.out).items()
           if (only is None or os.path.basename(k) in only) and os.path.basename(k) not in exclude}
    assert got == dirs, f"{what}: policy folders or their files differ"
    got, want = resources_of(pack, sp, only, exclude), resources_of(stock, ss, only, exclude)
    for rel in sorted(want):
        assert got[rel] == want[rel], f"{what}: {rel}/resources.json differs: " + _diff(
            got[rel], want[rel])
    assert metadata_of(pack, sp, only, exclude) == metadata_of(stock, ss, only, exclude), what
    if only is None and not exclude:
        assert error_lines(pack, sp) == error_lines(stock, ss), what


# -- effects of acting policies, read back from the emulator ---------------------

def effects(side):
    """The instances' states and tags, the users' tags and key states; normalised."""
    sess = side.account.session()
    iam = sess.client('iam')
    found = {'instances': {}, 'users': {}}
    for region in REGIONS:
        for res in sess.client('ec2', region_name=region).describe_instances()['Reservations']:
            for i in res['Instances']:
                found['instances'][side.ids[i['InstanceId']]] = [
                    i['State']['Name'], {t['Key']: t['Value'] for t in i.get('Tags', ())}]
    for user in iam.list_users()['Users']:
        name = user['UserName']
        found['users'][name] = [
            {t['Key']: t['Value'] for t in iam.list_user_tags(UserName=name)['Tags']},
            sorted(k['Status'] for k in iam.list_access_keys(UserName=name)['AccessKeyMetadata'])]
    return json.loads(normalise_text(json.dumps(found, sort_keys=True), side))


# -- fixtures: one world per acting sweep ---------------------------------------

LABELS = ['cache0', 'cache15', 'dryrun', 'org']


@pytest.fixture(scope='module')
def worlds(emulator, tmp_path_factory):
    """``worlds(name)``: the world of that name, seeded on first use."""
    tmp = tmp_path_factory.mktemp('stock')
    made = {}

    def world(name):
        if name not in made:
            made[name] = make_world(emulator, tmp, name, LABELS)
        return made[name]
    return world


@pytest.fixture(scope='module')
def main(worlds):
    """validate, a dry run (default cache), then the sweep with --cache-period 0 (+ Lambda)."""
    w = worlds('main')
    w.run('validate', lambda s, out: ['custodian', 'validate'] + CORPUS)
    w.run('dryrun', lambda s, out: [
        'custodian', 'run', '--dryrun', '-s', out, '--vars-file', write_vars(s, 'dryrun')]
        + region_args() + CORPUS)
    w.read_back('dryrun')
    w.run('cache0', lambda s, out: [
        'custodian', 'run', '-s', out, '--cache-period', '0',
        '--vars-file', write_vars(s, 'cache0')] + region_args() + CORPUS)
    w.read_back('cache0')
    return w


@pytest.fixture(scope='module')
def cached(worlds):
    """The sweep with c7n's default cache (15 minutes, a file under HOME)."""
    w = worlds('cache')
    w.run('cache15', lambda s, out: [
        'custodian', 'run', '-s', out, '--vars-file', write_vars(s, 'cache15')]
        + region_args() + SWEEP)
    w.read_back('cache15')
    return w


@pytest.fixture(scope='module')
def org(worlds):
    """c7n-org validate (of ``sample()``) and run (of the corpus, as one -u file), one account."""
    w = worlds('org')
    for side in w.sides.values():
        side.files['bundle'] = bundle(SWEEP, os.path.join(side.base, 'corpus.yml'))
        side.files['read-only'] = bundle(READ_ONLY, os.path.join(side.base, 'read-only.yml'))
        side.files['sample'] = bundle(SWEEP, os.path.join(side.base, 'sample.yml'), sample)
        side.files['accounts'] = accounts_file(side, 'org')
    # --per-account: c7n-org's basic validation, then each account's vars expanded
    w.run('org-validate', lambda s, out: [
        'c7n-org', 'validate', '-c', s.files['accounts'], '-u', s.files['sample'],
        '--per-account'])
    w.run('org-run', lambda s, out: [
        'c7n-org', 'run', '-c', s.files['accounts'], '-u', s.files['bundle'], '-s', out,
        '--cache-period', '0'] + region_args())
    w.read_back('org')
    return w


# -- custodian validate, run, run --dryrun --------------------------------------------

def test_corpus_is_stock():
    """No pack setting in the corpus or its vars (stock c7n validating it shows it uses no
    pack filter or action: test_validate_is_unchanged)."""
    from custodian_ext import settings
    probes = [os.path.join(PROBES, f) for f in os.listdir(PROBES)]
    for path in CORPUS + probes:
        for p in _load(path)['policies']:
            assert not settings.referenced(p), (path, p['name'])
            assert 'custodian_ext' not in json.dumps(p), (path, p['name'])
    for name in os.listdir(os.path.join(STOCK, 'vars')):
        assert not set(_load(os.path.join(STOCK, 'vars', name))) & set(settings.SETTINGS), name


@pytest.mark.parametrize('program', ['custodian', 'c7n-org'])
def test_the_pack_is_loaded_in_the_pack_variant_only(worlds, program):
    """The control that gives "the same" its meaning: a policy using a pack filter validates
    with the pack and fails stock, in both console scripts."""
    def args(side, out):
        path = os.path.join(side.base, 'pack-filter.yml')
        with open(path, 'w') as fh:
            yaml.safe_dump({'policies': [{'name': 'uses-a-pack-filter', 'resource': 'aws.iam-user',
                                          'filters': [{'type': 'quarantine-marker'}]}]}, fh)
        if program == 'custodian':
            return ['custodian', 'validate', path]
        return ['c7n-org', 'validate', '-c', accounts_file(side, 'control'), '-u', path]
    r = worlds('main').run(f'{program}-control', args)
    assert r['pack'].returncode == 0, r['pack'].stderr[-3000:]
    assert r['stock'].returncode != 0 and 'quarantine-marker' in r['stock'].stderr, \
        r['stock'].stderr[-3000:]


def test_validate_is_unchanged(main):
    r = main.runs['validate']
    assert r['stock'].returncode == 0, r['stock'].stderr[-3000:]
    assert_same(r, main, 'custodian validate')


def test_dry_run_is_unchanged(main):
    r = main.runs['dryrun']
    assert r['stock'].returncode == 0, r['stock'].stderr[-3000:]
    assert_same(r, main, 'custodian run --dryrun')
    assert main.effects['dryrun']['pack'] == main.effects['dryrun']['stock']
    # nothing acted
    instances = main.effects['dryrun']['stock']['instances']
    assert instances['instance:victim-dryrun@us-east-1'] == ['running', {'Name': 'victim-dryrun'}]


def test_run_without_cache_is_unchanged(main):
    r = main.runs['cache0']
    assert r['stock'].returncode == 0, r['stock'].stderr[-3000:]
    assert_same(r, main, 'custodian run --cache-period 0')


def _names(resources):
    return sorted(r.get('UserName') or {t['Key']: t['Value'] for t in r['Tags']}['Name']
                  for r in resources)


def test_run_without_cache_reads_see_the_actions(main):
    """The corpus means something: each read after an action sees what it changed."""
    for variant, result in main.runs['cache0'].items():
        found = {k: _names(v) for k, v in resources_of(
            result, main.sides[variant], only=READS_AFTER_ACTS).items()}
        assert found['us-east-1/ec2-staged-this-run'] == ['web'], variant
        assert found['us-west-2/ec2-staged-this-run'] == ['web'], variant
        assert found['us-east-1/ec2-owned-this-run'] == ['worker'], variant
        assert found['us-east-1/ec2-worker-without-owner'] == ['worker'], variant
        assert found['us-east-1/ec2-marked-for-stop'] == ['victim-cache0'], variant
        assert found['us-east-1/ec2-stopped'] == ['parked', 'victim-cache0'], variant
        assert found['us-east-1/iam-victim-keys-inactive'] == ['victim-cache0'], variant
        assert found['us-east-1/iam-users-reviewed-this-run'] == ['ops-admin'], variant


def test_run_without_cache_acts_the_same(main):
    pack, stock = main.effects['cache0']['pack'], main.effects['cache0']['stock']
    assert pack == stock
    instances, users = stock['instances'], stock['users']
    assert instances['instance:victim-cache0@us-east-1'][0] in ('stopping', 'stopped')
    assert 'corpus-op' in instances['instance:victim-cache0@us-east-1'][1]
    assert 'Owner' not in instances['instance:worker@us-east-1'][1]
    assert instances['instance:web@us-west-2'][1]['Stage'] == 'cache0'
    assert users['victim-cache0'][1] == ['Inactive']
    assert users['ops-admin'][0]['Reviewed'] == 'cache0'


def test_periodic_mode_provisions_the_same_function(main):
    """c7n's periodic mode, deployed to the emulator's Lambda and EventBridge (moto)."""
    def deployed(side):
        sess = side.account.session()
        lam, events = sess.client('lambda'), sess.client('events')
        fn = lam.get_function(FunctionName='custodian-periodic-users-with-keys')
        rule = events.describe_rule(Name='custodian-periodic-users-with-keys')
        found = {
            'function': {k: fn['Configuration'].get(k) for k in (
                'Runtime', 'Handler', 'Role', 'Timeout', 'MemorySize', 'Description')},
            'tags': fn.get('Tags'),
            'rule': {k: rule.get(k) for k in ('ScheduleExpression', 'State')},
            'targets': [t['Arn'] for t in events.list_targets_by_rule(Rule=rule['Name'])[
                'Targets']],
            'functions': sorted(f['FunctionName'] for region in REGIONS for f in sess.client(
                'lambda', region_name=region).list_functions()['Functions'])}
        return json.loads(normalise_text(json.dumps(found, sort_keys=True), side))

    stock = deployed(main.sides['stock'])
    assert stock['rule'] == {'ScheduleExpression': 'rate(1 day)', 'State': 'ENABLED'}
    assert stock['function']['Role'] == 'arn:aws:iam::ACCOUNT:role/corpus-custodian'
    assert deployed(main.sides['pack']) == stock


# -- probes after the main sweep (they only read) ----------------------------------

@pytest.mark.parametrize('unreachable', ['sts', 'every-endpoint'])
def test_run_when_sts_cannot_be_reached(main, unreachable):
    """Stock c7n runs the policies (all of them when only STS is unreachable; each failing,
    exit 2, when nothing is). Before the patch table the pack called sts:GetCallerIdentity
    first, for any policy file, and stopped with one line (exit 1, no policy folders)."""
    key = 'AWS_ENDPOINT_URL_STS' if unreachable == 'sts' else 'AWS_ENDPOINT_URL'
    closed = closed_endpoint()
    r = main.run(f'no-{unreachable}', lambda s, out: [
        'custodian', 'run', '-s', out, '--cache-period', '0', '--vars-file',
        write_vars(s, 'cache0'), '-r', 'us-east-1'] + READ_ONLY,
        env=lambda s: dict(s.env, **{key: closed}))
    if unreachable == 'sts':
        assert r['stock'].returncode == 0, r['stock'].stderr[-3000:]
    assert_same(r, main, f'custodian run, {unreachable} unreachable')


def test_policy_skipped_by_its_conditions_leaves_no_folder(main):
    """Stock c7n writes nothing for a policy its conditions skip. Before the patch table
    the pack wrote skipped.json and metadata.json for it too (only the pack's policies
    need the skip record)."""
    r = main.run('conditions', lambda s, out: [
        'custodian', 'run', '-s', out, '--cache-period', '0'] + region_args()
        + [os.path.join(PROBES, 'conditions.yml')])
    assert 'us-east-1/probe-west-only' not in policy_dirs(r['stock'].out)
    assert_same(r, main, 'custodian run, a policy skipped by its conditions')


def test_vars_file_key_close_to_a_setting_name(main):
    """A stock --vars-file key close to a pack setting's name (trusted_account) is c7n's
    business when no policy of the run is the pack's. Before, the pack's _load_vars hook
    rejected it ("unknown setting ... did you mean 'trusted_accounts'?")."""
    r = main.run('near-setting', lambda s, out: [
        'custodian', 'run', '-s', out, '--cache-period', '0', '--vars-file',
        os.path.join(STOCK, 'vars', 'near-setting.yml'), os.path.join(PROBES, 'trusted.yml')])
    assert r['stock'].returncode == 0, r['stock'].stderr[-3000:]
    assert_same(r, main, 'custodian run --vars-file with trusted_account')


def test_run_of_a_folder(main):
    """c7n's folder loader also runs *.json files and those in subfolders. Before the patch
    table the pack replaced a folder by its top-level *.yml files, silently running fewer
    policies (and metadata.json's configs listed the files)."""
    def folder_run(side, out):
        folder = os.path.join(side.base, 'policy-folder')
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(os.path.join(folder, 'more'))
        shutil.copy(os.path.join(STOCK, 'ebs.yml'), folder)
        shutil.copy(os.path.join(STOCK, 'cloudtrail.yml'), os.path.join(folder, 'more'))
        with open(os.path.join(folder, 'lambda.json'), 'w') as fh:
            json.dump(_load(os.path.join(STOCK, 'lambda.yml')), fh)
        return ['custodian', 'run', '-s', out, '--cache-period', '0', '-r', 'us-east-1', folder]
    r = main.run('folder', folder_run)
    assert {os.path.basename(k) for k in policy_dirs(r['stock'].out)} == set(
        policy_names([os.path.join(STOCK, f) for f in ('ebs.yml', 'cloudtrail.yml',
                                                        'lambda.yml')]))
    assert_same(r, main, 'custodian run FOLDER')


def test_validate_of_a_folder(main):
    """Stock `custodian validate FOLDER` fails (IsADirectoryError, exit 1). Before the patch
    table the pack validated the folder's files (exit 0) whatever they held."""
    r = main.run('validate-folder', lambda s, out: ['custodian', 'validate', PROBES])
    assert_same(r, main, 'custodian validate FOLDER')


# -- c7n's default cache --------------------------------------------------------------

def test_run_with_default_cache_is_unchanged_for_policies_that_do_not_follow_actions(cached):
    r = cached.runs['cache15']
    assert r['stock'].returncode == 0, r['stock'].stderr[-3000:]
    assert_same(r, cached, 'custodian run (default cache)', exclude=READS_AFTER_ACTS)


def test_run_with_default_cache_reads_after_actions_as_stock(cached):
    """With c7n's default 15-minute file cache, stock reads after an action answer from
    the cached listing. A run of stock policies keeps c7n's cache (runcache.use_for_run);
    before, the pack's per-run cache replaced it and those reads saw the change."""
    r = cached.runs['cache15']
    assert_same(r, cached, 'custodian run (default cache)', only=READS_AFTER_ACTS)
    assert cached.effects['cache15']['pack'] == cached.effects['cache15']['stock']


# -- c7n-org -------------------------------------------------------------------

def test_c7n_org_validate_is_unchanged(org):
    r = org.runs['org-validate']
    assert r['stock'].returncode == 0, r['stock'].stderr[-3000:]
    assert 'All accounts validated successfully' in r['stock'].stderr
    assert_same(r, org, 'c7n-org validate --per-account')


def test_c7n_org_run_is_unchanged_for_policies_that_do_not_follow_actions(org):
    r = org.runs['org-run']
    assert r['stock'].returncode == 0, r['stock'].stderr[-3000:]
    # c7n-org runs global services' policies in every region, too
    assert sorted(policy_dirs(r['stock'].out)) == sorted(
        f'member/{reg}/{p}' for p in policy_names(SWEEP) for reg in REGIONS)
    assert_same(r, org, 'c7n-org run', exclude=READS_AFTER_ACTS)


def test_c7n_org_reads_after_actions_see_the_changes(org):
    """c7n-org calls Policy.run (c7n: ``run = __call__``). Before the patch table the pack
    wrapped __call__ only, so under c7n-org an acting policy was not kept out of the
    per-account-region cache: reads after tag/remove-tag/mark-for-op/remove-keys answered
    from before the action, and remove-tag and stop then acted on nothing."""
    r = org.runs['org-run']
    assert_same(r, org, 'c7n-org run', only=READS_AFTER_ACTS)
    assert org.effects['org']['pack'] == org.effects['org']['stock']


@pytest.mark.parametrize('command,selection', [
    ('run', ['-p', 'no-such-policy']), ('run', ['-l', 'no-such-tag']),
    ('validate', ['-p', 'no-such-policy']), ('validate', ['-l', 'no-such-tag'])])
def test_c7n_org_selection_of_nothing(org, command, selection):
    """Stock: nothing to do, exit 0. Before the patch table the pack's selection check
    exited 1 ("-p no-such-policy: no policy of that name in ...")."""
    def args(side, out):
        cmd = ['c7n-org', command, '-c', side.files['accounts'], '-u', side.files['bundle']]
        return cmd + (['-s', out] if command == 'run' else []) + selection
    r = org.run(f"org-{command}{''.join(selection)}", args)
    assert r['stock'].returncode == 0, r['stock'].stderr[-3000:]
    assert_same(r, org, f"c7n-org {command} {' '.join(selection)}")


@pytest.mark.parametrize('unreachable', ['sts', 'every-endpoint'])
def test_c7n_org_run_when_sts_cannot_be_reached(org, unreachable):
    """Stock c7n-org runs each account and logs each policy's error (exit 1, a folder per
    policy). Before the patch table the pack checked the caller's credentials with
    sts:GetCallerIdentity before any worker and stopped with one line (no folders)."""
    key = 'AWS_ENDPOINT_URL_STS' if unreachable == 'sts' else 'AWS_ENDPOINT_URL'
    closed = closed_endpoint()
    r = org.run(f'org-no-{unreachable}', lambda s, out: [
        'c7n-org', 'run', '-c', s.files['accounts'], '-u', s.files['read-only'], '-s', out,
        '--cache-period', '0', '-r', 'us-east-1'], env=lambda s: dict(s.env, **{key: closed}))
    assert_same(r, org, f'c7n-org run, {unreachable} unreachable')
