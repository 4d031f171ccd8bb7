"""Periodic (Lambda) mode: `custodian-ext periodic`, deployed by the stock `custodian` and
`c7n-org`.

Against the moto server process: moto creates the functions, rules, targets
and permissions, but cannot run a function. The handler is run here instead,
in a separate Python interpreter whose path holds only the deployed zip's
contents and the libraries the Lambda runtime provides (boto3 and its
dependencies), with a scheduled event, as Lambda would call it.
"""
import gzip
import io
import json
import os
import zipfile

import pytest
import yaml

from custodian_ext import periodic
from custodian_ext.cli import main
from custodian_ext_dev.emulator import AMI_X86, session
from tests.support import POLICIES, REPO, headline_folder, new_account, policy_vars, \
    quarantine_user, run_cli, run_lambda_handler, write_vars

pytestmark = pytest.mark.e2e

DETECT = os.path.join(POLICIES, 'detect')
ROLE = 'CustodianPackLambda'
BUCKET = 'pack-results'
# ?region= spares c7n its unauthenticated HEAD request to find the bucket's region.
OUTPUT = f's3://{BUCKET}/{{account_id}}/{{region}}?region=us-east-1'
REGIONS = ['us-east-1', 'eu-north-1']
LAMBDA_TRUST = json.dumps({'Version': '2012-10-17', 'Statement': [{
    'Effect': 'Allow', 'Principal': {'Service': 'lambda.amazonaws.com'},
    'Action': 'sts:AssumeRole'}]})
# What the python3.11 Lambda runtime provides besides the standard library.


# The deploy tests deploy the four headline checks (each deployed function costs
# a zip build); the generated file is checked for every detect policy below.


def _periodic_file(tmp, source=DETECT, **kw):
    path = tmp / 'periodic.yml'
    args = ['periodic', source, '--schedule', kw.get('schedule', 'rate(1 day)'), '--role', ROLE,
            '--output', OUTPUT, '-o', str(path)]
    if kw.get('role_policy'):
        args += ['--role-policy', str(kw['role_policy'])]
    assert main(args) == 0
    return path


def _sources(folder=DETECT):
    out = {}
    for f in sorted(os.listdir(folder)):
        with open(os.path.join(folder, f)) as fh:
            for p in yaml.safe_load(fh)['policies']:
                out[p['name']] = p
    return out


@pytest.fixture(scope='module')
def deployed(emulator, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('periodic')
    account = new_account(emulator.url)
    account.client('iam').create_role(RoleName=ROLE, AssumeRolePolicyDocument=LAMBDA_TRUST)
    account.client('s3').create_bucket(Bucket=BUCKET)
    quarantine_user(account)
    values = policy_vars()
    vars_file = write_vars(tmp / 'vars.yml', values)
    role_policy = tmp / 'role-policy.json'
    source = headline_folder(tmp)
    path = _periodic_file(tmp, source=source, role_policy=role_policy)
    cmd = ['custodian', 'run', '-s', str(tmp / 'out'), '--vars-file', vars_file, str(path)]
    for r in REGIONS:
        cmd += ['-r', r]
    run = run_cli(cmd, account.env, check=0)
    return {'account': account, 'file': path, 'values': values, 'run': run, 'tmp': tmp,
            'role_policy': role_policy, 'source': source}


def test_periodic_file_is_the_detect_policies_with_a_lambda_mode(tmp_path):
    policies = yaml.safe_load(_periodic_file(tmp_path).read_text())['policies']
    sources = _sources()
    assert [p['name'] for p in policies] == list(sources)
    for p in policies:
        src = sources[p['name']]
        assert {k: v for k, v in p.items() if k not in ('mode', 'description')} == \
            {k: v for k, v in src.items() if k != 'description'}
        assert len(p['description']) <= 256
        assert p['description'][:60] == ' '.join(src['description'].split())[:60]
        mode = p['mode']
        assert mode['type'] == 'periodic' and mode['schedule'] == 'rate(1 day)'
        assert mode['handler'] == 'custodian_ext.handler.run'
        assert mode['packages'] == ['custodian_ext', 'yaml'] and mode['role'] == ROLE
        assert mode['tags']['policy-pack'] == 'custodian-ext'
        assert mode['tags']['policy-pack-runbook'] == src['metadata']['runbook']
        assert mode['execution-options'] == {'output_dir': OUTPUT}


def test_deploy_creates_function_rule_target_and_invoke_permission(deployed):
    account = deployed['account']
    role_arn = f'arn:aws:iam::{account.id}:role/{ROLE}'
    expected = {  # global checks in global_region only; R3.3 only where it is not allowed
        'us-east-1': {'x1-quarantined-user-active-keys', 'x2-root-access-keys',
                      'x6-stopped-instances'},
        'eu-north-1': {'r3-3-ec2-outside-allowed-regions', 'x6-stopped-instances'}}
    for region, names in expected.items():
        lam, events = account.client('lambda', region), account.client('events', region)
        functions = {f['FunctionName']: f for f in lam.list_functions()['Functions']}
        assert set(functions) == {'custodian-' + n for n in names}, deployed['run'].stderr[-2000:]
        for name, f in functions.items():
            assert (f['Runtime'], f['Handler'], f['Role']) == (
                'python3.11', 'custodian_ext.handler.run', role_arn)
            tags = lam.list_tags(Resource=f['FunctionArn'])['Tags']
            assert tags['policy-pack'] == 'custodian-ext' and 'policy-pack-version' in tags
            rule = events.describe_rule(Name=name)
            assert rule['ScheduleExpression'] == 'rate(1 day)' and rule['State'] == 'ENABLED'
            [target] = events.list_targets_by_rule(Rule=name)['Targets']
            assert target['Arn'] == f['FunctionArn']
            statements = json.loads(lam.get_policy(FunctionName=name)['Policy'])['Statement']
            assert any(s['Principal'] == {'Service': 'events.amazonaws.com'}
                       and s['Action'] == 'lambda:InvokeFunction'
                       and s['Condition']['ArnLike']['AWS:SourceArn'] == rule['Arn']
                       for s in statements)


def _archive(deployed, name, region='us-east-1'):
    """The zip `custodian run` built for ``name``, rebuilt in-process the same way."""
    import custodian_ext  # noqa: F401
    from c7n import mu, version
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    [data] = [p for p in yaml.safe_load(deployed['file'].read_text())['policies']
              if p['name'] == name]
    load_resources((data['resource'],))
    policy = Policy(data, Config.empty(region=region, account_id=deployed['account'].id,
                                       output_dir='out', tracer=None))
    policy.expand_variables(policy.get_variables(dict(deployed['values'])))
    policy.data['mode']['tags']['custodian-info'] = f'mode=periodic:version={version.version}'
    return mu.PolicyLambda(policy).get_archive()


def test_deployed_zip_holds_the_pack_the_policy_and_its_vars(deployed):
    name = 'x1-quarantined-user-active-keys'
    archive = _archive(deployed, name)
    deployed_sha = deployed['account'].client('lambda').get_function(
        FunctionName='custodian-' + name)['Configuration']['CodeSha256']
    assert archive.get_checksum() == deployed_sha  # byte for byte what was deployed
    z = zipfile.ZipFile(io.BytesIO(archive.get_bytes()))
    names = set(z.namelist())
    for f in ('custodian_ext/__init__.py', 'custodian_ext/handler.py',
              'custodian_ext/patches/table.py', 'custodian_ext/settings.py',
              'custodian_ext/filters/quarantine.py', 'yaml/__init__.py', 'c7n/handler.py',
              'config.json'):
        assert f in names
    # the development package (emulator, demo) is not shipped
    assert not [n for n in names if n.startswith(('custodian_ext_dev/', 'custodian_ext/emulator',
                                                  'custodian_ext/demo'))]
    config = json.loads(z.read('config.json'))
    [policy] = config['policies']
    assert policy['filters'][0] == {'type': 'quarantine-marker'}
    # the vars, substituted at deploy time
    assert policy['conditions'] == [{'type': 'value', 'key': 'region', 'value': 'us-east-1'}]
    assert policy['mode']['execution-options']['output_dir'] == (
        f"s3://{BUCKET}/{deployed['account'].id}/us-east-1?region=us-east-1")
    r33 = json.loads(zipfile.ZipFile(io.BytesIO(_archive(
        deployed, 'r3-3-ec2-outside-allowed-regions', 'eu-north-1').get_bytes())).read(
        'config.json'))['policies'][0]
    assert r33['conditions'][0]['value'] == deployed['values']['allowed_regions']


def test_handler_from_the_zip_runs_the_policy_on_a_scheduled_event(deployed, tmp_path):
    account = deployed['account']
    event = {'version': '0', 'id': '5f2a', 'detail-type': 'Scheduled Event',
             'source': 'aws.events', 'account': account.id, 'time': '2026-11-28T10:00:00Z',
             'region': 'us-east-1', 'detail': {},
             'resources': [f'arn:aws:events:us-east-1:{account.id}:rule/'
                           f'custodian-x1-quarantined-user-active-keys']}
    run_lambda_handler(_archive(deployed, 'x1-quarantined-user-active-keys').get_bytes(),
                       event, account.env, tmp_path)
    s3 = account.client('s3')
    keys = [o['Key'] for o in s3.list_objects_v2(Bucket=BUCKET)['Contents']]
    [resources] = [k for k in keys if k.endswith('resources.json.gz')]
    assert resources.startswith(f'{account.id}/us-east-1/x1-quarantined-user-active-keys/')
    body = s3.get_object(Bucket=BUCKET, Key=resources)['Body'].read()
    found = json.loads(gzip.decompress(body))
    assert [u['UserName'] for u in found] == ['leaky']
    assert found[0]['c7n:quarantine-markers'][0]['PolicyName'] == 'AWSCompromisedKeyQuarantineV3'
    # the report reads what the functions wrote, in the account/region layout
    report = run_cli(['custodian-ext', 'report', f's3://{BUCKET}', '--fail-on', 'high',
                      '--format', 'json', '-o', '-'], account.env, check=1)
    doc = json.loads(report.stdout)
    assert [(f['policy'], f['account'], f['region'], f['resource_id']) for f in doc['findings']] \
        == [('x1-quarantined-user-active-keys', account.id, 'us-east-1', 'leaky')]


def test_execution_role_policy_covers_every_policy(deployed):
    import custodian_ext  # noqa: F401
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    doc = json.loads(deployed['role_policy'].read_text())
    allowed = {a for s in doc['Statement'] for a in s['Action']}
    for data in yaml.safe_load(deployed['file'].read_text())['policies']:
        load_resources((data['resource'],))
        needed = set(Policy(data, Config.empty(region='us-east-1')).get_permissions())
        assert needed and needed <= allowed, data['name']
    assert {'iam:ListUsers', 'iam:GetAccountSummary', 'ec2:DescribeInstances',
            'logs:PutLogEvents'} <= allowed
    [out] = [s for s in doc['Statement'] if s['Sid'] == 'PackOutput']
    assert out == {'Sid': 'PackOutput', 'Effect': 'Allow', 'Action': ['s3:PutObject'],
                   'Resource': [f'arn:aws:s3:::{BUCKET}/*/*/*']}


@pytest.mark.parametrize('schedule,role,needle', [
    ('rate(1 days)', ROLE, "schedule 'rate(1 days)': EventBridge wants a singular unit for 1"),
    ('cron(0 6 * * *)', ROLE, 'cron takes 6 fields'),
    ('cron(0 6 * * * *)', ROLE, "exactly one of day-of-month and day-of-week must be '?'"),
    ('cron(61 6 * * ? *)', ROLE, "'61' is not a valid minutes field"),
    ('daily', ROLE, "schedule 'daily' is not a rate() or cron() expression"),
    ('rate(1 day)', 'arn:aws:iam::role/x', "--role 'arn:aws:iam::role/x': give the"),
])
def test_bad_schedule_or_role_is_one_line(tmp_path, capsys, schedule, role, needle):
    rc = main(['periodic', DETECT, '--schedule', schedule, '--role', role,
               '-o', str(tmp_path / 'p.yml')])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / 'p.yml').exists()


@pytest.mark.parametrize('schedule', ['rate(1 day)', 'rate(12 hours)', 'rate(5 minutes)',
                                      'cron(0 6 * * ? *)', 'cron(0/30 8-18 ? * MON-FRI *)',
                                      'cron(15 2 L * ? 2026-2030)', 'cron(0 9 ? * 6#3 *)'])
def test_valid_schedules_pass(schedule):
    assert periodic.check_schedule(schedule) == schedule


def test_missing_role_or_bad_schedule_deploys_nothing(emulator, tmp_path):
    """`custodian run` refuses before the first function exists.

    moto, like AWS, would only reject a bad rule after the function was created.
    """
    account = new_account(emulator.url)
    vars_file = write_vars(tmp_path / 'vars.yml', policy_vars())
    path = _periodic_file(tmp_path, source=headline_folder(tmp_path))
    cmd = ['custodian', 'run', '-s', str(tmp_path / 'out'), '--vars-file', vars_file, str(path),
           '-r', 'us-east-1', '-r', 'eu-north-1']
    proc = run_cli(cmd, account.env, check=1)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [
        f'custodian: error: policy r3-3-ec2-outside-allowed-regions: the execution role '
        f'arn:aws:iam::{account.id}:role/{ROLE} does not exist in account {account.id}; '
        f'create it first (README: Periodic mode lists its permissions), nothing was deployed']

    account.client('iam').create_role(RoleName=ROLE, AssumeRolePolicyDocument=LAMBDA_TRUST)
    path.write_text(path.read_text().replace('rate(1 day)', 'rate(1 days)'))
    proc = run_cli(cmd, account.env, check=1)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "schedule 'rate(1 days)'" in lines[0], proc.stderr
    for region in REGIONS:
        assert account.client('lambda', region).list_functions()['Functions'] == []
        assert account.client('events', region).list_rules()['Rules'] == []


def test_deploy_and_removal_calls_are_the_documented_permissions(aws, tmp_path, monkeypatch):
    """In-process deploy of one function, recording every API call; then c7n's removal (mugc's)."""
    import botocore.client
    from c7n import mu
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    from tests.support import reset_sessions

    aws.client('iam').create_role(RoleName=ROLE, AssumeRolePolicyDocument=LAMBDA_TRUST)
    calls = []
    make_api_call = botocore.client.BaseClient._make_api_call

    def record(self, operation, params):
        calls.append(f'{self.meta.service_model.signing_name}:{operation}')
        return make_api_call(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, '_make_api_call', record)
    [data] = [p for p in yaml.safe_load(_periodic_file(tmp_path).read_text())['policies']
              if p['name'] == 'x6-stopped-instances']
    load_resources(('aws.ec2',))
    reset_sessions()
    policy = Policy(data, Config.empty(region='us-east-1', account_id=aws.id,
                                       output_dir=str(tmp_path / 'out'), tracer=None))
    policy.expand_variables(policy.get_variables(policy_vars()))
    policy.validate()
    policy()
    deploy_calls = set(calls)
    assert {'lambda:CreateFunction', 'events:PutRule', 'events:PutTargets',
            'lambda:AddPermission', 'iam:GetRole'} <= deploy_calls
    assert deploy_calls <= set(periodic.DEPLOY_PERMISSIONS)
    calls.clear()
    mu.LambdaManager(policy.session_factory).remove(mu.PolicyLambda(policy))
    assert set(calls) <= set(periodic.REMOVE_PERMISSIONS)
    assert aws.client('lambda').list_functions()['Functions'] == []
    assert aws.client('events').list_rules()['Rules'] == []
    readme = open(os.path.join(REPO, 'README.md')).read()
    for action in periodic.DEPLOY_PERMISSIONS + periodic.REMOVE_PERMISSIONS:
        assert f'`{action}`' in readme, action


def test_org_wide_deploy_with_c7n_org(emulator, tmp_path):
    """c7n-org deploys into every account and region; an account without the role gets nothing."""
    mgmt = new_account(emulator.url)
    org = mgmt.client('organizations')
    org.create_organization(FeatureSet='ALL')
    ids = {n: org.create_account(AccountName=n, Email=f'{n}@example.com')[
        'CreateAccountStatus']['AccountId'] for n in ('red', 'blue', 'norole')}
    for name in ('red', 'blue'):
        session(emulator.url, ids[name]).client('iam').create_role(
            RoleName=ROLE, AssumeRolePolicyDocument=LAMBDA_TRUST)
    session(emulator.url, ids['blue'], 'eu-north-1').client('ec2').run_instances(
        ImageId=AMI_X86, MinCount=1, MaxCount=1)
    accounts = tmp_path / 'accounts.yml'
    accounts.write_text(yaml.safe_dump({'vars': policy_vars(), 'accounts': [
        {'name': n, 'account_id': i, 'role': 'OrganizationAccountAccessRole'}
        for n, i in ids.items()]}))
    path = _periodic_file(tmp_path)
    sel = ['-r', 'us-east-1', '-r', 'eu-north-1', '-p', 'x1-quarantined-user-active-keys',
           '-p', 'x6-stopped-instances']
    out = tmp_path / 'out'
    env = dict(mgmt.env, C7N_ORG_PARALLEL='4')
    run = run_cli(['c7n-org', 'run', '-c', str(accounts), '-u', str(path), '-s', str(out)] + sel,
                  env)
    assert run.returncode == 1  # c7n-org saw the failure in norole
    for name in ('red', 'blue'):
        for region, fns in (('us-east-1', {'x1-quarantined-user-active-keys',
                                           'x6-stopped-instances'}),
                            ('eu-north-1', {'x6-stopped-instances'})):
            lam = session(emulator.url, ids[name], region).client('lambda')
            assert {f['FunctionName'] for f in lam.list_functions()['Functions']} == {
                'custodian-' + f for f in fns}, run.stderr[-2000:]
    for region in REGIONS:
        lam = session(emulator.url, ids['norole'], region).client('lambda')
        assert lam.list_functions()['Functions'] == []
    log = tmp_path / 'c7n-org.log'
    log.write_text(run.stderr)
    proc = run_cli(['custodian-ext', 'org-check', '-c', str(accounts), '-u', str(path), '-s',
                    str(out), '--log', str(log)] + sel, env, check=2)
    failed = [ln for ln in proc.stdout.splitlines() if ln.startswith('FAILED')]
    assert [ln.split(':')[0] for ln in failed] == [
        f"FAILED norole ({ids['norole']}) {r}" for r in sorted(REGIONS)]
    assert all(f'role/{ROLE} does not exist in account' in ln for ln in failed)
    assert '6 deployed' in proc.stdout
