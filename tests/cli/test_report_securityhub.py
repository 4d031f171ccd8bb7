"""`custodian-ext report OUT --to securityhub` against the emulator's Security Hub.

The input is the recorded c7n-org sweep (tests/data/report/org) with its two
accounts, prod and dev, renamed to two emulated accounts. The emulator adds
what moto's Security Hub lacks (custodian_ext_dev/emulator/securityhub.py):
BatchUpdateFindings, GetFindings filters, the account and batch checks.
The periodic function's output path is tested from its deployed zip.
"""
import glob
import json
import os
import shutil

import pytest
import yaml

from custodian_ext_dev.emulator import calls, client_env
from tests.support import REPO, load_policy, new_account, policy_vars, \
    quarantine_user, run_cli, run_lambda_handler, write_vars

pytestmark = pytest.mark.e2e

FIXTURE = os.path.join(REPO, 'tests', 'data', 'report', 'org')
REGIONS = ('us-east-1', 'eu-north-1')
ROLE = 'OrganizationAccountAccessRole'  # any role works in a fresh emulated account
X1 = 'x1-quarantined-user-active-keys'


def enable(account, regions=REGIONS):
    for r in regions:
        account.client('securityhub', r).enable_security_hub()


def org_copy(tmp_path, prod, dev, name='org'):
    """The fixture, its prod and dev runs in emulated accounts ``prod`` and ``dev``."""
    dest = tmp_path / name
    shutil.copytree(FIXTURE, dest)
    for path in glob.glob(str(dest / '*' / '*' / '*' / 'metadata.json')):
        with open(path) as fh:
            meta = json.load(fh)
        account = path.split(os.sep)[-4]
        meta['config']['account_id'] = (prod if account == 'prod' else dev).id
        with open(path, 'w') as fh:
            json.dump(meta, fh)
    return dest


def findings(account, region):
    client = account.client('securityhub', region)
    out, token = [], None
    while True:
        page = client.get_findings(MaxResults=100, **({'NextToken': token} if token else {}))
        out += page['Findings']
        token = page.get('NextToken')
        if not token:
            return {f['Id']: f for f in out}


def export(env, src, *extra, check=None):
    return run_cli(['custodian-ext', 'report', str(src), '--to', 'securityhub', *extra], env,
                   check=check)


def by_policy(found, policy):
    return [f for f in found.values() if f['GeneratorId'] == f'custodian-ext/{policy}']


def test_import_update_resolve_reopen_and_triage(emulator, tmp_path):
    prod, dev = new_account(emulator.url), new_account(emulator.url)
    enable(prod)  # dev has no findings, and Security Hub off: nothing to do there
    src = org_copy(tmp_path, prod, dev)
    env = client_env(emulator.url)  # the caller assumes ROLE in each account
    first = export(env, src, '--role', ROLE, check=2)  # x6-lightsail-instances errored
    assert 'securityhub: imported 5 finding(s) into 4 account-region(s) (5 new, 0 updated)' \
        in first.stderr
    assert 'Security Hub is not enabled in 2 account-region(s) without findings: skipped' \
        in first.stderr
    east, north = findings(prod, 'us-east-1'), findings(prod, 'eu-north-1')
    assert sorted(f['GeneratorId'] for f in east.values()) == [
        'custodian-ext/x1-quarantined-user-active-keys', 'custodian-ext/x2-root-access-keys']
    assert sorted(f['GeneratorId'] for f in north.values()) == [
        'custodian-ext/r3-3-ec2-outside-allowed-regions'] * 2 + [
        'custodian-ext/x6-stopped-instances']
    [x1] = by_policy(east, X1)
    assert x1['AwsAccountId'] == prod.id and x1['Region'] == 'us-east-1'
    assert x1['ProductArn'] == (f'arn:aws:securityhub:us-east-1:{prod.id}:product/{prod.id}/'
                                f'default')
    assert x1['Severity']['Label'] == 'CRITICAL'
    assert x1['Resources'][0] == {  # the ARN the recorded resource carries
        'Type': 'AwsIamUser', 'Id': 'arn:aws:iam::111111111111:user/deploy-bot',
        'Partition': 'aws', 'Region': 'us-east-1', 'Details': x1['Resources'][0]['Details']}
    assert x1['ProductFields']['custodian-ext/RunbookStep'] == 'X1'
    assert x1['Types'][0].startswith('TTPs/Credential Access/T1552.001')
    assert (x1['RecordState'], x1['Workflow']['Status']) == ('ACTIVE', 'NEW')

    # a second import updates: same ids, CreatedAt kept, UpdatedAt moves
    second = export(env, src, '--role', ROLE, check=2)
    assert '(0 new, 5 updated)' in second.stderr
    east2, north2 = findings(prod, 'us-east-1'), findings(prod, 'eu-north-1')
    assert set(east2) == set(east) and set(north2) == set(north)
    for fid, f in {**east2, **north2}.items():
        old = east.get(fid) or north[fid]
        assert f['CreatedAt'] == old['CreatedAt'] and f['FirstObservedAt'] == old['FirstObservedAt']
        assert f['UpdatedAt'] > old['UpdatedAt']

    # the sweep no longer sees deploy-bot; x6-stopped-instances errored this time
    x1_out = src / 'prod' / 'us-east-1' / X1 / 'resources.json'
    kept = x1_out.read_text()
    x1_out.write_text('[]')
    os.remove(src / 'prod' / 'eu-north-1' / 'x6-stopped-instances' / 'resources.json')
    third = export(env, src, '--role', ROLE, check=2)
    assert 'resolved 1' in third.stderr
    [x1] = by_policy(findings(prod, 'us-east-1'), X1)
    assert (x1['RecordState'], x1['Workflow']['Status']) == ('ARCHIVED', 'RESOLVED')
    assert x1['Note']['UpdatedBy'] == 'custodian-ext' and 'no longer found' in x1['Note']['Text']
    north3 = findings(prod, 'eu-north-1')
    [x6] = by_policy(north3, 'x6-stopped-instances')  # errored: left as it was
    old_x6 = by_policy(north2, 'x6-stopped-instances')[0]
    assert (x6['RecordState'], x6['Workflow']['Status'], x6['UpdatedAt']) == (
        'ACTIVE', 'NEW', old_x6['UpdatedAt'])

    # deploy-bot is back: the same finding is active and new again, never a duplicate
    x1_out.write_text(kept)
    export(env, src, '--role', ROLE, check=2)
    east4 = findings(prod, 'us-east-1')
    [x1] = by_policy(east4, X1)
    assert set(east4) == set(east)
    assert (x1['RecordState'], x1['Workflow']['Status']) == ('ACTIVE', 'NEW')

    # triage: an accepted finding is suppressed with its reason; open again when the entry goes
    triage = tmp_path / 'triage.yml'
    triage.write_text(yaml.safe_dump({'accept': [{
        'match': {'policy': 'r3-3-ec2-outside-allowed-regions', 'account': 'prod',
                  'region': 'eu-north-1', 'resource': 'i-17340f70be94151db'},
        'reason': 'load test instance, owned by perf team', 'owner': 'carol',
        'expires': '2099-01-01'}]}))
    fifth = export(env, src, '--role', ROLE, '--triage', str(triage), check=2)
    assert 'suppressed 1 (triage)' in fifth.stderr
    r33 = {f['Resources'][0]['Id'].rsplit('/', 1)[1]: f for f in
           by_policy(findings(prod, 'eu-north-1'), 'r3-3-ec2-outside-allowed-regions')}
    assert r33['i-17340f70be94151db']['Workflow']['Status'] == 'SUPPRESSED'
    assert r33['i-17340f70be94151db']['Note']['Text'].startswith(
        'custodian-ext triage: accepted by carol until 2099-01-01T00:00:00Z')
    assert r33['i-54076a237359b691f']['Workflow']['Status'] == 'NEW'
    sixth = export(env, src, '--role', ROLE, check=2)
    assert 'reopened 1' in sixth.stderr
    r33 = {f['Resources'][0]['Id'].rsplit('/', 1)[1]: f for f in
           by_policy(findings(prod, 'eu-north-1'), 'r3-3-ec2-outside-allowed-regions')}
    assert r33['i-17340f70be94151db']['Workflow']['Status'] == 'NEW'


def test_other_accounts_are_refused_before_any_import(emulator, tmp_path):
    prod, dev = new_account(emulator.url), new_account(emulator.url)
    enable(prod)
    src = org_copy(tmp_path, prod, dev)
    proc = export(prod.env, src, check=2)
    [line] = proc.stderr.splitlines()
    assert line.startswith('custodian-ext: error: securityhub: findings of account(s) '
                           f'{dev.id} cannot be imported with the credentials of account '
                           f'{prod.id}')
    assert '--role NAME' in line and f'--aggregation-account {prod.id}' in line
    assert findings(prod, 'us-east-1') == {} and findings(prod, 'eu-north-1') == {}
    # a single-account run (custodian run: OUT/<region>/<policy>) imports with its own creds
    single = tmp_path / 'single'
    shutil.copytree(src / 'prod', single)
    proc = export(prod.env, single, check=2)
    assert 'imported 5 finding(s) into 2 account-region(s)' in proc.stderr
    assert len(findings(prod, 'us-east-1')) == 2 and len(findings(prod, 'eu-north-1')) == 3


def test_aggregation_account(emulator, tmp_path):
    prod, dev = new_account(emulator.url), new_account(emulator.url)
    enable(prod, ['us-east-1'])
    src = org_copy(tmp_path, prod, dev)
    proc = export(prod.env, src, '--aggregation-account', prod.id, '--aggregation-region',
                  'us-east-1', check=2)
    assert f'into {prod.id}/us-east-1' in proc.stderr
    found = findings(prod, 'us-east-1')
    assert len(found) == 5 and {f['AwsAccountId'] for f in found.values()} == {prod.id}
    regions = sorted(f['ProductFields']['custodian-ext/Region'] for f in found.values())
    assert regions == ['eu-north-1'] * 3 + ['us-east-1'] * 2
    assert {f['Resources'][0]['Region'] for f in found.values()} == set(REGIONS)
    proc = export(prod.env, src, '--aggregation-account', dev.id, '--aggregation-region',
                  'us-east-1', check=2)
    assert f'--aggregation-account {dev.id}: the credentials are account {prod.id}' in \
        proc.stderr
    proc = export(prod.env, src, '--aggregation-account', prod.id, check=2)
    assert '--aggregation-account and --aggregation-region go together' in proc.stderr


def test_batches_of_100_within_throttling(emulator, tmp_path):
    account = new_account(emulator.url)
    enable(account, ['eu-north-1'])
    src = tmp_path / 'out'
    policy = 'x6-stopped-instances'
    shutil.copytree(os.path.join(FIXTURE, 'prod', 'eu-north-1', policy), src / policy)
    meta_path = src / policy / 'metadata.json'
    meta = json.loads(meta_path.read_text())
    meta['config']['account_id'] = account.id
    meta_path.write_text(json.dumps(meta))
    [instance] = json.loads((src / policy / 'resources.json').read_text())
    (src / policy / 'resources.json').write_text(json.dumps(
        [dict(instance, InstanceId=f'i-{n:017x}') for n in range(250)]))
    calls.start(emulator.url)
    calls.throttle(emulator.url, every=3, times=1)
    try:
        proc = export(account.env, src, '--fail-on', 'high', check=0)
    finally:
        calls.throttle(emulator.url, 0)
    counted = [c for c in calls.fetch(emulator.url) if c['service'] == 'securityhub']
    imports = [c for c in counted if c['operation'] == 'BatchImportFindings']
    assert sum(c['served'] for c in imports) == 3  # 100 + 100 + 50
    assert sum(c['throttled'] for c in counted) >= 1
    assert 'throttled call(s) retried' in proc.stderr
    assert len(findings(account, 'eu-north-1')) == 250


def test_security_hub_not_enabled_is_one_line(account, tmp_path):
    src = tmp_path / 'out'
    shutil.copytree(os.path.join(FIXTURE, 'prod', 'us-east-1', 'x2-root-access-keys'),
                    src / 'x2-root-access-keys')
    meta_path = src / 'x2-root-access-keys' / 'metadata.json'
    meta = json.loads(meta_path.read_text())
    meta['config']['account_id'] = account.id
    meta_path.write_text(json.dumps(meta))
    proc = export(account.env, src, check=2)
    [line] = proc.stderr.splitlines()
    assert 'InvalidAccessException' in line and 'enable Security Hub there first' in line
    proc = run_cli(['custodian-ext', 'report', str(src), '--to', 'jira'], account.env, check=2)
    assert "--to: unknown destination 'jira'; choose securityhub" in proc.stderr


LAMBDA_TRUST = json.dumps({'Version': '2012-10-17', 'Statement': [{
    'Effect': 'Allow', 'Principal': {'Service': 'lambda.amazonaws.com'},
    'Action': 'sts:AssumeRole'}]})


def _archive(path, name, values, account_id):
    """The zip `custodian run` deployed for ``name``, rebuilt in-process the same way."""
    import custodian_ext  # noqa: F401
    from c7n import mu, version
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    [data] = [p for p in yaml.safe_load(path.read_text())['policies'] if p['name'] == name]
    load_resources((data['resource'],))
    policy = Policy(data, Config.empty(region='us-east-1', account_id=account_id,
                                       output_dir='out', tracer=None))
    policy.expand_variables(policy.get_variables(dict(values)))
    policy.data['mode']['tags']['custodian-info'] = f'mode=periodic:version={version.version}'
    return mu.PolicyLambda(policy).get_archive()


def test_periodic_function_keeps_security_hub_current(emulator, tmp_path):
    """securityhub_export: true: the deployed function imports, then resolves, its findings."""
    account = new_account(emulator.url)
    account.client('iam').create_role(RoleName='CustodianPackLambda',
                                      AssumeRolePolicyDocument=LAMBDA_TRUST)
    quarantine_user(account)
    enable(account, ['us-east-1'])
    source = tmp_path / 'x1.yml'
    source.write_text(yaml.safe_dump({'policies': [load_policy('detect/x1.yml', X1)]}))
    periodic = tmp_path / 'periodic.yml'
    role_policy = tmp_path / 'role-policy.json'
    run_cli(['custodian-ext', 'periodic', str(source), '--schedule', 'rate(1 day)', '--role',
             'CustodianPackLambda', '-o', str(periodic), '--role-policy', str(role_policy)],
            account.env, check=0)
    statements = {s['Sid']: s for s in json.loads(role_policy.read_text())['Statement']}
    assert statements['SecurityHubExport']['Action'] == [
        'securityhub:BatchImportFindings', 'securityhub:BatchUpdateFindings',
        'securityhub:GetFindings']
    values = policy_vars(securityhub_export=True)
    vars_file = write_vars(tmp_path / 'vars.yml', values)
    run_cli(['custodian', 'run', '-s', str(tmp_path / 'deploy'), '--vars-file', vars_file,
             str(periodic), '-r', 'us-east-1'], account.env, check=0)
    archive = _archive(periodic, X1, values, account.id)
    config = json.loads(__import__('zipfile').ZipFile(
        __import__('io').BytesIO(archive.get_bytes())).read('config.json'))
    assert config['policies'][0]['mode']['execution-options']['securityhub_export'] is True
    event = {'version': '0', 'id': 'sched-1', 'detail-type': 'Scheduled Event',
             'source': 'aws.events', 'account': account.id, 'time': '2026-11-28T10:00:00Z',
             'region': 'us-east-1', 'detail': {},
             'resources': [f'arn:aws:events:us-east-1:{account.id}:rule/custodian-{X1}']}
    run_lambda_handler(archive.get_bytes(), event, account.env, tmp_path / 'first')
    [f] = findings(account, 'us-east-1').values()
    assert f['GeneratorId'] == f'custodian-ext/{X1}' and f['RecordState'] == 'ACTIVE'
    assert f['Resources'][0]['Id'] == f'arn:aws:iam::{account.id}:user/leaky'
    # the user is no longer quarantined with active keys: the next run resolves the finding
    account.client('iam').detach_user_policy(
        UserName='leaky', PolicyArn='arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3')
    run_lambda_handler(archive.get_bytes(), event, account.env, tmp_path / 'second')
    [f] = findings(account, 'us-east-1').values()
    assert (f['RecordState'], f['Workflow']['Status']) == ('ARCHIVED', 'RESOLVED')
