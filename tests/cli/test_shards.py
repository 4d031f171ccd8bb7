"""A sharded c7n-org sweep (examples/batch/) against one unsharded sweep, on the emulator.

Three accounts seeded as bench/sweep.py seeds them (the compromise in the first).
One c7n-org run over all of them writes to an S3 prefix; two shards
(`custodian-ext shard --index I --count 2`, as each job of an AWS Batch array job or a
Kubernetes Indexed Job runs it) run as separate c7n-org processes at the same time,
both writing to one prefix of one bucket. `custodian-ext report` and `custodian-ext
org-check` read each output with the full accounts file. A third output holds only
shard 0: the missing shard is an error in both.
"""
import json
import os
import subprocess

import pytest
import yaml

from bench import sweep
from custodian_ext_dev.emulator import client_env, session
from tests.support import BIN, REPO, fresh_account_id, run_cli

pytestmark = pytest.mark.e2e

REGIONS = ['us-east-1', 'eu-north-1']
FILES = ('x1.yml', 'x2.yml', 'r4-1.yml', 'x6.yml', 'r2-2.yml')
# bucket names are global (the emulator's too): one of this module's own
NAME = 'shard-sweeps-%d' % os.getpid()
# ?region= spares c7n its bucket-region probe, which is hard-wired to https
BUCKET = 's3://' + NAME + '/{}?region=us-east-1'


def region_args():
    return [a for r in REGIONS for a in ('-r', r)]


def c7n_org(accounts, policies, prefix, env):
    return [os.path.join(BIN, 'c7n-org'), 'run', '-c', str(accounts), '-u', str(policies),
            '-s', BUCKET.format(prefix), '--cache-period', '0'] + region_args()


@pytest.fixture(scope='module')
def org(emulator, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('shards')
    accounts, ids, known, settings = sweep.seed(emulator.url, 3, [fresh_account_id()
                                                                for _ in range(3)])
    full = sweep.accounts_file(str(tmp / 'accounts.yml'), ids, known, settings)
    policies = tmp / 'policies.yml'
    run_cli(['custodian-ext', 'bundle'] + [os.path.join(REPO, 'policies', 'detect', f)
                                           for f in FILES] + ['-o', str(policies)],
            client_env(emulator.url), check=0)
    session(emulator.url).client('s3').create_bucket(Bucket=NAME)
    env = dict(client_env(emulator.url), C7N_ORG_PARALLEL='2', HOME=str(tmp / 'home'))

    _run(c7n_org(full, policies, 'whole', env), env)
    # the two shards: separate processes, at the same time, into one prefix
    shard_files = []
    for i in range(2):
        path = tmp / f'shard-{i}.yml'
        run_cli(['custodian-ext', 'shard', '--index', str(i), '--count', '2', '-c', full,
                 '-o', str(path)], env, check=0)
        shard_files.append(path)
    procs = [subprocess.Popen(c7n_org(path, policies, 'sharded', env), env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for path in shard_files]
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out[-4000:]
    # a sweep whose shard 1 never ran
    _run(c7n_org(shard_files[0], policies, 'partial', env), env)
    return {'tmp': tmp, 'full': full, 'policies': str(policies), 'env': env,
            'shards': [yaml.safe_load(p.read_text())['accounts'] for p in shard_files]}


def _run(cmd, env):
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


def report(org, prefix, *extra, check=None):
    out = org['tmp'] / f'report-{prefix}'
    proc = run_cli(['custodian-ext', 'report', BUCKET.format(prefix), '-c', org['full'],
                    '--shards', '2', '--format', 'json', '-o', str(out), '--fail-on', 'high']
                   + list(extra),
                   org['env'], check=check)
    with open(out / 'report.json') as fh:
        return proc, json.load(fh)


def comparable(doc):
    """The report without what differs between two sweeps of the same accounts: when and
    where each run was written."""
    runs = sorted((r['policy'], r['account'], r['region'], r['status'])
                  for r in doc['runs'])
    found = sorted((f['policy'], f['account'], f['region'], f['resource_id'], f['severity'])
                   for f in doc['findings'])
    summary = {k: v for k, v in doc['summary'].items() if k not in ('generated', 'duration')}
    return runs, found, summary, doc['gate']


def test_each_account_is_in_exactly_one_shard(org):
    names = [a['name'] for shard in org['shards'] for a in shard]
    assert sorted(names) == ['acct-00', 'acct-01', 'acct-02']


def test_sharded_sweep_reports_what_one_sweep_reports(org):
    _, whole = report(org, 'whole', check=1)    # findings at or above high: exit 1
    _, sharded = report(org, 'sharded', check=1)
    assert comparable(sharded) == comparable(whole)
    assert whole['summary']['findings'] > 5
    assert {f['account'] for f in whole['findings']} >= {'acct-00'}
    assert whole['summary']['runs']['missing'] == 0 == whole['summary']['runs']['errored']


def test_org_check_reads_s3_with_the_full_accounts_file(org):
    for prefix in ('whole', 'sharded'):
        proc = run_cli(['custodian-ext', 'org-check', '-c', org['full'], '-u', org['policies'],
                        '-s', BUCKET.format(prefix), '--shards', '2'] + region_args(),
                       org['env'], check=0)
        assert 'every expected run completed' in proc.stdout


def test_a_shard_that_never_ran_is_an_error_in_org_check_and_report(org):
    missing = [a['name'] for a in org['shards'][1]]
    proc = run_cli(['custodian-ext', 'org-check', '-c', org['full'], '-u', org['policies'],
                    '-s', BUCKET.format('partial'), '--shards', '2'] + region_args(),
                   org['env'], check=2)
    assert (f"FAILED shard 1 of 2: none of its {len(missing)} account(s) has any output "
            f"({', '.join(sorted(missing))})") in proc.stdout
    proc, doc = report(org, 'partial', check=2)
    gone = {(r['account'], r['region']) for r in doc['runs'] if r['status'] == 'missing'}
    assert gone == {(name, region) for name in missing for region in REGIONS}
    assert all('never swept (shard 1 of 2)' in r['error'] for r in doc['runs']
               if r['status'] == 'missing')
    # without the accounts file the report cannot know: it sees only what was written
    proc = run_cli(['custodian-ext', 'report', BUCKET.format('partial')], org['env'])
    assert proc.returncode != 2
