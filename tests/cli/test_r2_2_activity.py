"""The activity review (R2.2, X1) through the stock `custodian run`, `c7n-org` and a periodic
(Lambda) function, against the emulator process.

One emulated account, attacked with a leaked key the way issue #14 describes
(tests/attack_replay.py); the emulator records every call as a CloudTrail event,
serves LookupEvents, and delivers the trail's log files (data events included)
to S3 on request (custodian_ext_dev/emulator/trail_logs.py).
"""
import gzip
import json
import os
from pathlib import Path

import pytest
import yaml

from custodian_ext_dev.emulator import DEFAULT_ACCOUNT, client_env
from tests.attack_replay import ATTACK_CALLS, ATTACKER_IP, seed_attacked
from tests.support import (
    POLICIES,
    new_account,
    policy_vars,
    run_cli,
    run_lambda_handler,
    write_vars,
)

pytestmark = pytest.mark.e2e

FILES = [os.path.join(POLICIES, 'detect', f) for f in ('r2-2-activity.yml', 'x1-activity.yml')]
REGIONS = ['us-east-1', 'us-west-2']
X1 = 'x1-leaked-key-activity'
SUSPECTS = 'r2-2-suspect-credential-activity'
SENSITIVE = 'r2-2-sensitive-reads-by-unknown-principals'


def settings(start):
    return policy_vars(incident_start=start, trusted_accounts=[DEFAULT_ACCOUNT],
                       known_users=['alice', 'deploy-bot'],
                       known_roles=['OrganizationAccountAccessRole'])


def region_args():
    return [arg for r in REGIONS for arg in ('-r', r)]


def resources(path):
    with open(path) as fh:
        return json.load(fh)


@pytest.fixture(scope='module')
def attacked(emulator, tmp_path_factory):
    account = new_account(emulator.url)
    info = seed_attacked(account)
    tmp = tmp_path_factory.mktemp('activity')
    vars_file = write_vars(tmp / 'vars.yml', settings(info['start']))
    out = tmp / 'out'
    run = run_cli(['custodian', 'run', '-s', str(out), '--cache-period', '0',
                   '--vars-file', vars_file] + FILES + region_args(), account.env, check=0)
    return {'account': account, 'info': info, 'vars': vars_file, 'out': out, 'run': run,
            'tmp': tmp}


def test_custodian_run_reports_the_leaked_keys_activity(attacked):
    out, info = attacked['out'], attacked['info']
    [east] = resources(out / 'us-east-1' / X1 / 'resources.json')
    events = {e['EventName']: e for e in east['c7n:activity']}
    assert set(ATTACK_CALLS) <= set(events)
    coverage = east['c7n:activity-coverage']
    # auto: the trail records data events, so its log files are read
    assert coverage['Sources'] == ['trail-logs'] and coverage['DataEvents'] == 'recorded'
    assert coverage['CutShort'] == []
    assert {'PutObject', 'DeleteObject'} <= set(events)
    e = events['GetSecretValue']
    assert (e['AccessKeyId'], e['SourceIPAddress'], e['Source']) == (
        info['key'], ATTACKER_IP, 'trail-logs')
    [west] = resources(out / 'us-west-2' / X1 / 'resources.json')
    assert {e['EventName'] for e in west['c7n:activity']} == {'GetSecretValue', 'ListSecrets'}
    # the leaked user is known: its reads are not "by an unknown principal"
    for region in REGIONS:
        assert resources(out / region / SENSITIVE / 'resources.json') == []
    [suspect] = resources(out / 'us-east-1' / SUSPECTS / 'resources.json')
    assert ({e['EventId'] for e in suspect['c7n:activity'] if e['Severity'] != 'info'}
            <= {e['EventId'] for e in east['c7n:activity']})


def test_report_gates_on_the_activity(attacked):
    proc = run_cli(['custodian-ext', 'report', str(attacked['out']), '--format', 'json', '-o', '-',
                    '--fail-on', 'high'], attacked['account'].env, check=1)
    doc = json.loads(proc.stdout)
    assert doc['problems'] == []
    found = {(f['policy'], f['region'], f['severity']) for f in doc['findings']}
    assert {(X1, 'us-east-1', 'critical'), (X1, 'us-west-2', 'critical'),
            (SUSPECTS, 'us-east-1', 'high')} <= found
    assert not any(f['policy'] == SENSITIVE for f in doc['findings'])


def test_c7n_org_reports_the_same_events(attacked):
    account, tmp = attacked['account'], attacked['tmp']
    bundle = tmp / 'bundle.yml'
    run_cli(['custodian-ext', 'bundle'] + FILES + ['-o', str(bundle)], account.env, check=0)
    accounts = tmp / 'accounts.yml'
    accounts.write_text(yaml.safe_dump({
        'vars': yaml.safe_load(Path(attacked['vars']).read_text()),
        'accounts': [{'name': 'victim', 'account_id': account.id,
                      'role': f'arn:aws:iam::{account.id}:role/OrganizationAccountAccessRole',
                      'regions': REGIONS}]}))
    out = tmp / 'org-out'
    env = dict(client_env(account.url), C7N_ORG_PARALLEL='2', HOME=str(tmp / 'home'))
    proc = run_cli(['c7n-org', 'run', '-c', str(accounts), '-u', str(bundle), '-s', str(out),
                    '--cache-period', '0'] + region_args(), env, check=0)
    for region in REGIONS:
        [org] = resources(out / 'victim' / region / X1 / 'resources.json')
        [single] = resources(attacked['out'] / region / X1 / 'resources.json')
        assert {e['EventId'] for e in org['c7n:activity']} == \
            {e['EventId'] for e in single['c7n:activity']}, proc.stderr[-2000:]


def test_periodic_function_reviews_the_activity(attacked, tmp_path):
    """The function's zip carries the pack, its catalogue and resource map: the handler,
    run as Lambda would (only the zip and the runtime's libraries), writes the finding."""
    from c7n import mu
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources

    from custodian_ext import periodic

    account = attacked['account']
    bucket = f'results-{account.id}'
    account.client('s3').create_bucket(Bucket=bucket)
    output = f's3://{bucket}/{{account_id}}/{{region}}?region=us-east-1'
    [(_, data)] = [(s, p) for s, p in periodic.build(FILES[1:], 'rate(1 day)', 'lambda-role',
                                                     output)]
    load_resources((data['resource'],))
    policy = Policy(data, Config.empty(region='us-east-1', account_id=account.id,
                                       output_dir='out', tracer=None))
    policy.expand_variables(policy.get_variables(yaml.safe_load(
        Path(attacked['vars']).read_text())))
    archive = mu.PolicyLambda(policy).get_archive()
    names = set(archive.get_filenames())
    assert {'custodian_ext/data/activity-catalogue.yml',
            'custodian_ext/data/activity-resources.yml',
            'custodian_ext/activity/review.py'} <= names
    assert not any(n.startswith('custodian_ext_dev/') for n in names)
    event = {'version': '0', 'id': 'e1', 'detail-type': 'Scheduled Event',
             'source': 'aws.events', 'account': account.id, 'time': '2026-11-28T10:00:00Z',
             'region': 'us-east-1', 'detail': {},
             'resources': [f'arn:aws:events:us-east-1:{account.id}:rule/custodian-{X1}']}
    run_lambda_handler(archive.get_bytes(), event, account.env, tmp_path)
    s3 = account.client('s3')
    [key] = [o['Key'] for o in s3.list_objects_v2(Bucket=bucket)['Contents']
             if o['Key'].endswith('resources.json.gz')]
    [found] = json.loads(gzip.decompress(s3.get_object(Bucket=bucket, Key=key)['Body'].read()))
    assert set(ATTACK_CALLS) <= {e['EventName'] for e in found['c7n:activity']}
