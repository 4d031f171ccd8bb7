"""The pack across an organization with the real `c7n-org`, against the moto server process.

One emulated organization for the module: a management account with
Organizations, OUs and member accounts created by ``CreateAccount`` (which
creates ``OrganizationAccountAccessRole`` in each, as AWS does). c7n-org runs
with the management account's credentials and reaches every member with
sts:AssumeRole. One member was created with another role name, so assuming
``OrganizationAccountAccessRole`` there is refused: the emulator's extension
(custodian_ext_dev/emulator/extensions.py) answers AccessDenied as AWS does for a
role that does not exist; moto alone would accept it.
"""
import json
import os
import shutil
import subprocess

import pytest
import yaml

from custodian_ext_dev.emulator import AMI_X86, session
from custodian_ext.report import findings, load_runs
from tests.support import headline_folder, REPO, new_account, policy_vars, run_cli

pytestmark = pytest.mark.e2e

REGIONS = ['us-east-1', 'us-west-2', 'eu-north-1']
ROLE = 'OrganizationAccountAccessRole'


def _region_args(regions):
    out = []
    for r in regions:
        out += ['-r', r]
    return out


def c7n_org_env(env):
    env = dict(env)
    env['C7N_ORG_PARALLEL'] = '4'
    return env


@pytest.fixture(scope='module')
def org(emulator, tmp_path_factory):
    """An organization with four working members, one unreachable, and a suspended one."""
    tmp = tmp_path_factory.mktemp('org')
    mgmt = new_account(emulator.url)
    client = mgmt.client('organizations')
    client.create_organization(FeatureSet='ALL')
    root = client.list_roots()['Roots'][0]['Id']
    workloads = client.create_organizational_unit(ParentId=root, Name='Workloads')[
        'OrganizationalUnit']['Id']
    prod = client.create_organizational_unit(ParentId=workloads, Name='Prod')[
        'OrganizationalUnit']['Id']
    sandbox = client.create_organizational_unit(ParentId=root, Name='Sandbox')[
        'OrganizationalUnit']['Id']

    ids = {}

    def member(name, parent, **kw):
        status = client.create_account(AccountName=name, Email=f'{name}@example.com', **kw)
        ids[name] = status['CreateAccountStatus']['AccountId']
        client.move_account(AccountId=ids[name], SourceParentId=root, DestinationParentId=parent)
        return ids[name]

    member('alpha', prod)
    member('beta', workloads)
    member('gamma', prod)
    # Created with another role name: OrganizationAccountAccessRole does not exist there
    # (the state of an account invited into the organization rather than created by it).
    member('broken', workloads, RoleName='LegacyAdmin')
    member('retired', prod)
    client.close_account(AccountId=ids['retired'])
    member('playground', sandbox)

    # alpha and beta: the same two instances; their allowed regions differ.
    for name in ('alpha', 'beta'):
        for region in ('us-west-2', 'eu-north-1'):
            session(emulator.url, ids[name], region).client('ec2').run_instances(
                ImageId=AMI_X86, MinCount=1, MaxCount=1, InstanceType='t3.micro')
    # gamma: AWS quarantined a leaked key's user; an instance is parked stopped.
    iam = session(emulator.url, ids['gamma']).client('iam')
    iam.create_user(UserName='leaky')
    iam.create_access_key(UserName='leaky')
    iam.attach_user_policy(UserName='leaky',
                           PolicyArn='arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3')
    ec2 = session(emulator.url, ids['gamma'], 'us-east-1').client('ec2')
    parked = ec2.run_instances(ImageId=AMI_X86, MinCount=1, MaxCount=1)['Instances'][0]
    ec2.stop_instances(InstanceIds=[parked['InstanceId']])

    # The README's path: accounts.yml from Organizations, then the settings added to it.
    env = c7n_org_env(mgmt.env)
    generated = tmp / 'generated.yml'
    proc = run_cli(['c7n-org', 'aws-accounts', '-f', str(generated), '--ou', '/Workloads',
                    '--active', '--role', ROLE], env, check=0)
    accounts = yaml.safe_load(generated.read_text())
    config = {'vars': policy_vars(allowed_regions=['us-east-1', 'us-west-2']),
              'accounts': accounts['accounts']}
    for a in config['accounts']:
        if a['name'] == 'beta':
            a['vars'] = {'allowed_regions': ['us-east-1', 'eu-north-1']}
    accounts_file = tmp / 'accounts.yml'
    accounts_file.write_text(yaml.safe_dump(config, sort_keys=False))

    bundle = tmp / 'detect.yml'
    # the headline checks: these tests are about accounts, regions and failures
    run_cli(['custodian-ext', 'bundle', headline_folder(tmp), '-o', str(bundle)], env, check=0)
    out = tmp / 'out'
    run = run_cli(['c7n-org', 'run', '-c', str(accounts_file), '-u', str(bundle), '-s', str(out),
                   '--cache-period', '0'] + _region_args(REGIONS), env)
    log = tmp / 'c7n-org.log'
    log.write_text(run.stderr)
    return {'mgmt': mgmt, 'ids': ids, 'env': env, 'generated': accounts, 'accounts': accounts_file,
            'bundle': bundle, 'out': out, 'run': run, 'log': log, 'tmp': tmp,
            'aws_accounts': proc}


def test_aws_accounts_exports_active_accounts_of_an_ou_with_their_role(org):
    """c7n-org's own aws-accounts: --ou keeps the subtree, --active drops the closed account."""
    ids = org['ids']
    by_name = {a['name']: a for a in org['generated']['accounts']}
    assert set(by_name) == {'alpha', 'beta', 'gamma', 'broken'}  # not retired, not playground
    for name, a in by_name.items():
        assert a['account_id'] == ids[name]
        assert a['role'] == f'arn:aws:iam::{ids[name]}:role/{ROLE}'
    assert 'path:/Workloads/Prod' in by_name['alpha']['tags']
    assert by_name['beta']['tags'] == ['path:/Workloads']
    # the closed account is still in the OU: --active is what removed it
    states = {a['Id']: a['Status'] for a in org['mgmt'].client('organizations').list_accounts()[
        'Accounts']}
    assert states[ids['retired']] == 'SUSPENDED'


def test_each_account_gets_its_own_findings_and_vars(org):
    out = org['out']
    runs = [r for r in load_runs([str(out)]) if r.account != 'broken']
    assert not [r for r in runs if r.status == 'errored'], org['run'].stderr[-3000:]
    found = {}
    for f in findings(runs):
        found.setdefault((f.run.account, f.run.policy), set()).add(f.run.region)
    # alpha allows us-west-2, beta allows eu-north-1: the same instances, different findings
    assert found[('alpha', 'r3-3-ec2-outside-allowed-regions')] == {'eu-north-1'}
    assert found[('beta', 'r3-3-ec2-outside-allowed-regions')] == {'us-west-2'}
    assert found[('gamma', 'x1-quarantined-user-active-keys')] == {'us-east-1'}
    assert found[('gamma', 'x6-stopped-instances')] == {'us-east-1'}
    assert set(found) == {('alpha', 'r3-3-ec2-outside-allowed-regions'),
                          ('beta', 'r3-3-ec2-outside-allowed-regions'),
                          ('gamma', 'x1-quarantined-user-active-keys'),
                          ('gamma', 'x6-stopped-instances')}
    with open(out / 'gamma' / 'us-east-1' / 'x1-quarantined-user-active-keys' /
              'resources.json') as fh:
        assert [u['UserName'] for u in json.load(fh)] == ['leaky']
    # every working account ran every policy in every region (or skipped it on purpose)
    assert {(r.account, r.region, r.policy) for r in runs} == {
        (a, reg, p) for a in ('alpha', 'beta', 'gamma') for reg in REGIONS
        for p in ('r3-3-ec2-outside-allowed-regions', 'x1-quarantined-user-active-keys',
                  'x2-root-access-keys', 'x6-stopped-instances')}


def test_org_check_reports_the_unreachable_account_and_only_it(org):
    assert 'Access denied api:AssumeRole' in org['run'].stderr
    args = ['custodian-ext', 'org-check', '-c', str(org['accounts']), '-u', str(org['bundle']),
            '-s', str(org['out']), '--log', str(org['log'])] + _region_args(REGIONS)
    proc = run_cli(args, org['env'], check=2)
    failed = [ln for ln in proc.stdout.splitlines() if ln.startswith('FAILED')]
    broken = org['ids']['broken']
    assert sorted(ln.split(':')[0] for ln in failed) == [
        f'FAILED broken ({broken}) {r}' for r in sorted(REGIONS)]
    assert all('never ran' in ln and 'AssumeRole' in ln for ln in failed)
    # 4 accounts x 3 regions x 4 policies; in broken, the runs its conditions skip need no
    # credentials (4 of 12), c7n-org stops each region at the first AssumeRole refusal
    assert '48 run(s) expected' in proc.stdout and '8 never ran' in proc.stdout


def test_marked_missing_runs_show_as_errored_in_the_report_input(org, tmp_path):
    from custodian_ext import runs
    out = tmp_path / 'out'
    shutil.copytree(org['out'], out)
    args = ['custodian-ext', 'org-check', '-c', str(org['accounts']), '-u', str(org['bundle']),
            '-s', str(out), '--log', str(org['log']), '--mark-missing'] + _region_args(REGIONS)
    run_cli(args, org['env'], check=2)
    errored = [r for r in load_runs([str(out)]) if r.status == 'errored']
    assert {(r.account, r.region) for r in errored} == {('broken', r) for r in REGIONS}
    assert len(errored) == 8
    assert all('AssumeRole' in r.error for r in errored)
    assert {r.account_id for r in errored} == {org['ids']['broken']}
    # checking again still counts them as never run, not as completed
    check = runs.check_output(str(out), runs.load_accounts(str(org['accounts'])),
                              runs.load_policies(str(org['bundle'])), REGIONS)
    assert check.counts['missing'] == 8 and len(check.failures) == 3


def test_policy_that_fails_to_load_in_a_worker_is_not_green(org, tmp_path):
    """c7n-org only logs an exception raised while a worker loads a policy, and exits 0.

    Here a per-account variable makes a policy invalid once expanded (an
    unbalanced regex): c7n-org's pre-run checks pass, the worker fails.
    """
    policy = {'policies': [{'name': 'custom-named-users', 'resource': 'aws.iam-user',
                            'filters': [{'type': 'value', 'key': 'UserName', 'op': 'regex',
                                         'value': '{user_pattern}'}]}]}
    use = tmp_path / 'custom.yml'
    use.write_text(yaml.safe_dump(policy))
    config = yaml.safe_load(org['accounts'].read_text())
    for a in config['accounts']:
        a.setdefault('vars', {})['user_pattern'] = '(unclosed' if a['name'] == 'alpha' else 'ops-.*'
    accounts = tmp_path / 'accounts.yml'
    accounts.write_text(yaml.safe_dump(config))
    out = tmp_path / 'out'
    sel = ['-a', 'alpha', '-a', 'gamma', '-r', 'us-east-1']
    run = run_cli(['c7n-org', 'run', '-c', str(accounts), '-u', str(use), '-s', str(out),
                   '--cache-period', '0'] + sel, org['env'], check=0)
    assert 'Error running policy in alpha @ us-east-1' in run.stderr
    log = tmp_path / 'c7n-org.log'
    log.write_text(run.stderr)
    proc = run_cli(['custodian-ext', 'org-check', '-c', str(accounts), '-u', str(use), '-s',
                    str(out), '--log', str(log)] + sel, org['env'], check=2)
    failed = [ln for ln in proc.stdout.splitlines() if ln.startswith('FAILED')]
    assert len(failed) == 1
    assert failed[0].startswith(f"FAILED alpha ({org['ids']['alpha']}) us-east-1")
    assert 'custom-named-users' in failed[0]


def test_region_all_sweeps_every_region_each_account_has_enabled(org, emulator, tmp_path):
    """-r all: each account's own enabled regions (DescribeRegions), opt-in regions included.

    beta has enabled the opt-in region me-central-1 and an instance runs
    there. Region opt-in (account:EnableRegion; DescribeRegions listing only
    the enabled regions) is the emulator's extension. With -r all, c7n-org
    lists no region at all for an account it cannot enter, and exits 0: the
    check reports it.
    """
    ids = org['ids']
    beta = session(emulator.url, ids['beta'])
    beta.client('account').enable_region(RegionName='me-central-1')
    beta.client('ec2', region_name='me-central-1').run_instances(
        ImageId=AMI_X86, MinCount=1, MaxCount=1, InstanceType='p3.2xlarge')
    ec2 = beta.client('ec2')
    enabled = {r['RegionName'] for r in ec2.describe_regions()['Regions']}
    every = {r['RegionName'] for r in ec2.describe_regions(AllRegions=True)['Regions']}
    assert 'me-central-1' in enabled and len(every - enabled) >= 10

    out = tmp_path / 'out'
    sel = ['-a', 'beta', '-a', 'broken', '-r', 'all', '-p', 'r3-3-ec2-outside-allowed-regions']
    run = run_cli(['c7n-org', 'run', '-c', str(org['accounts']), '-u', str(org['bundle']),
                   '-s', str(out), '--cache-period', '0'] + sel, org['env'], check=0)
    assert set(os.listdir(out / 'beta')) == enabled, run.stderr[-2000:]
    assert not (out / 'broken').exists()
    found = {(f.run.account, f.run.region) for f in findings(load_runs([str(out)]))}
    assert found == {('beta', 'me-central-1'), ('beta', 'us-west-2')}

    log = tmp_path / 'c7n-org.log'
    log.write_text(run.stderr)
    proc = run_cli(['custodian-ext', 'org-check', '-c', str(org['accounts']), '-u',
                    str(org['bundle']), '-s', str(out), '--log', str(log)] + sel, org['env'],
                   check=2)
    [failed] = [ln for ln in proc.stdout.splitlines() if ln.startswith('FAILED')]
    assert failed.startswith(f"FAILED broken ({ids['broken']}) all:")
    assert 'not authorized to perform: sts:AssumeRole' in failed
    assert f"{len(enabled) + 1} run(s) expected" in proc.stdout


def test_make_org_audit_reports_the_unreachable_account_and_fails(org, tmp_path):
    """`make org-audit`: bundle, validate, c7n-org run, org-check, report; as in the CI example."""
    out, report = tmp_path / 'org', tmp_path / 'report'
    proc = subprocess.run(
        ['make', '-s', '-o', '.venv/.installed', 'org-audit', f"ACCOUNTS={org['accounts']}",
         f'ORG_OUT={out}', f'REPORT={report}', 'REGIONS=us-east-1',
         'ORG_ARGS=-a gamma -a broken'],
        cwd=REPO, env=org['env'], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    doc = json.loads((report / 'report.json').read_text())
    assert doc['gate']['exit_code'] == 2, proc.stdout[-3000:]
    assert f"FAILED broken ({org['ids']['broken']}) us-east-1" in proc.stdout
    assert {f['policy'] for f in doc['findings']} >= {'x1-quarantined-user-active-keys',
                                                      'x6-stopped-instances'}
    assert (tmp_path / 'org.log').exists()


@pytest.fixture
def c7n_org_cli(monkeypatch):
    """c7n-org's command in-process, with the pack's hooks as its console script has them."""
    from click.testing import CliRunner
    from c7n_org import cli
    from custodian_ext import patches
    patches.install('c7n-org')

    def invoke(args, env):
        for k in [k for k in os.environ if k.startswith('AWS_')]:
            monkeypatch.delenv(k)
        for k, v in env.items():
            if k.startswith('AWS_'):
                monkeypatch.setenv(k, v)
        return CliRunner().invoke(cli.cli, args)
    return invoke


@pytest.mark.parametrize('case', ['missing-file', 'no-role', 'unknown-tag', 'no-credentials'])
def test_bad_input_is_one_line(org, c7n_org_cli, tmp_path, case):
    config = yaml.safe_load(org['accounts'].read_text())
    env = dict(org['env'])
    args = ['-u', str(org['bundle'])]
    accounts = tmp_path / 'accounts.yml'
    if case == 'missing-file':
        accounts = tmp_path / 'nope.yml'
        needle = f'accounts file {accounts} not found; generate it from AWS Organizations'
    else:
        if case == 'no-role':
            del config['accounts'][1]['role']
            a = config['accounts'][1]
            needle = (f"account {a['name']} ({a['account_id']}) has no role; add role: "
                      f"arn:aws:iam::{a['account_id']}:role/OrganizationAccountAccessRole")
        elif case == 'unknown-tag':
            args += ['-l', 'severity:hgh']
            needle = "-l severity:hgh: no policy in"
        else:
            for k in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'):
                env.pop(k)
            needle = 'no AWS credentials found; set AWS_PROFILE'
        accounts.write_text(yaml.safe_dump(config))
    result = c7n_org_cli(['run', '-c', str(accounts), '-s', str(tmp_path / 'out')] + args, env)
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith('c7n-org: error: '), result.stderr
    assert needle in lines[0]
    assert not (tmp_path / 'out').exists()


def test_accounts_reached_through_profiles_each_get_their_own_findings(org, emulator, tmp_path):
    """Accounts with a ``profile`` instead of a ``role``: c7n-org resolves their regions
    (``-r all``) with the profiles' credentials before it forks its workers, through the
    pack's cached clients. The workers start without those clients' pooled connections
    (``perf._forked``): each account-region reads its own account."""
    ids, mgmt = org['ids'], org['mgmt']
    sts = mgmt.client('sts')
    lines = []
    for name in ('alpha', 'gamma'):
        creds = sts.assume_role(RoleArn=f"arn:aws:iam::{ids[name]}:role/{ROLE}",
                                RoleSessionName='profile-test')['Credentials']
        lines += [f'[{name}]', f"aws_access_key_id = {creds['AccessKeyId']}",
                  f"aws_secret_access_key = {creds['SecretAccessKey']}",
                  f"aws_session_token = {creds['SessionToken']}", '']
    (tmp_path / 'credentials').write_text('\n'.join(lines))
    config = yaml.safe_load(org['accounts'].read_text())
    config['accounts'] = [{'name': name, 'account_id': ids[name], 'profile': name}
                          for name in ('alpha', 'gamma')]
    accounts = tmp_path / 'accounts.yml'
    accounts.write_text(yaml.safe_dump(config, sort_keys=False))
    env = dict(org['env'], AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / 'credentials'))
    out = tmp_path / 'out'
    run = run_cli(['c7n-org', 'run', '-c', str(accounts), '-u', str(org['bundle']), '-s',
                   str(out), '--cache-period', '0', '-r', 'all', '-p',
                   'r3-3-ec2-outside-allowed-regions'], env, check=0)
    for name in ('alpha', 'gamma'):
        enabled = {r['RegionName'] for r in session(emulator.url, ids[name]).client(
            'ec2').describe_regions()['Regions']}
        assert set(os.listdir(out / name)) == enabled, run.stderr[-2000:]
    runs = load_runs([str(out)])
    assert len(runs) > 2 * 10 and not [r for r in runs if r.error], run.stderr[-2000:]
    # alpha's instances run in us-west-2 and eu-north-1 (allowed: us-east-1, us-west-2);
    # gamma's one is in us-east-1
    found = {(f.run.account, f.run.region) for f in findings(runs)}
    assert found == {('alpha', 'eu-north-1')}
