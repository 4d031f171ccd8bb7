"""Issue #7: the performance layer changes the cost of a sweep, never its findings.

The real ``c7n-org`` and ``custodian`` run the bundled detect pack against the
moto server process, over two accounts reached with sts:AssumeRole and two
regions, seeded as ``bench/sweep.py`` seeds them (the demo story's busy
account and the resource checks' clean account in each; the compromise in
the first). Every sweep runs twice: with the layer off (``CUSTODIAN_EXT_PERF=0``,
stock Cloud Custodian) and on. The API calls are counted by the emulator's
extension (custodian_ext_dev/emulator/calls.py, not AWS behaviour), which also
injects AWS's throttling errors. These tests assert correctness only; the
figures come from ``make bench``.
"""
import collections
import json
import os
import subprocess
import sys

import botocore.session
import pytest
from botocore import xform_name

from bench import sweep
from custodian_ext_dev.emulator import calls, client_env
from tests.support import REPO, fresh_account_id, run_cli

pytestmark = pytest.mark.e2e

REGIONS = ['us-east-1', 'us-west-2']
GLOBAL_SERVICES = ('iam', 'organizations', 'route53domains')


# The emulator's client environment makes one attempt per call (fail fast on what moto
# lacks); the throttling tests drop that, so that the pack's retry defaults apply.
RETRY_ENV = ('AWS_MAX_ATTEMPTS', 'AWS_RETRY_MODE')


def org_run(org, out, perf, retries=False):
    """c7n-org over both accounts; (API calls counted, outcomes)."""
    env = dict(client_env(org['url']), CUSTODIAN_EXT_PERF=perf, C7N_ORG_PARALLEL='2',
               HOME=str(out) + '-home')
    if retries:
        for k in RETRY_ENV:
            env.pop(k)
    calls.start(org['url'])
    proc = run_cli(['c7n-org', 'run', '-c', org['accounts'], '-u', org['bundle'], '-s', str(out),
                    '--cache-period', '0'] + sweep_regions(), env, timeout=600)
    counted = calls.fetch(org['url'])
    assert proc.returncode == 0, proc.stderr[-4000:]
    return counted, sweep.outcomes(str(out))


def sweep_regions():
    return [arg for r in REGIONS for arg in ('-r', r)]


# The activity review reads, from every region's run, the global-events region and the
# trail's home region (README "Activity review"): its calls are not per account-region, so
# the floors below do not apply to it. bench/trail_logs.py measures it.
ACTIVITY = ('r2-2-activity.yml', 'x1-activity.yml')


def detect_files():
    folder = os.path.join(REPO, 'policies', 'detect')
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder))
            if f.endswith('.yml') and f not in ACTIVITY]


@pytest.fixture(scope='module')
def org(emulator, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('perf')
    ids_wanted = [fresh_account_id(), fresh_account_id()]
    accounts, ids, known, settings = sweep.seed(emulator.url, 2, ids_wanted)
    accounts_path = sweep.accounts_file(str(tmp / 'accounts.yml'), ids, known, settings)
    bundle = str(tmp / 'detect.yml')
    run_cli(['custodian-ext', 'bundle'] + detect_files() + ['-o', bundle],
            client_env(emulator.url), check=0)
    first = list(ids)[0]
    vars_path = str(tmp / 'vars-single.yml')
    import yaml
    with open(vars_path, 'w') as fh:
        yaml.safe_dump(dict(settings, known_users=known[first][0], known_roles=known[first][1]),
                       fh, sort_keys=False)
    return {'url': emulator.url, 'tmp': tmp, 'accounts': accounts_path, 'bundle': bundle,
            'ids': ids, 'first': accounts[0], 'vars': vars_path}


@pytest.fixture(scope='module')
def sweeps(org):
    """The same c7n-org sweep with the layer off (a) and on (b)."""
    results = {}
    for key, perf in (('a', '0'), ('b', '1')):
        results[key] = org_run(org, org['tmp'] / f'out-{key}', perf)
    return results


def annotated(folder):
    """{(account, region, policy): resources as written}, but for the one field that is
    the time of the run: the end of the CloudTrail lookup window (R2.2, the activity review)."""
    from custodian_ext.report.loader import load_runs
    out = {}
    for run in load_runs([str(folder)], missing=False):
        resources = []
        for r in run.resources:
            history = r.get('c7n:cloudtrail-history')
            if isinstance(history, dict):
                r = dict(r, **{'c7n:cloudtrail-history': dict(history, End='(run time)')})
            coverage = r.get('c7n:activity-coverage')
            if isinstance(coverage, dict):
                window = dict(coverage['Window'], End='(run time)')
                r = dict(r, **{'c7n:activity-coverage': dict(coverage, Window=window)})
            resources.append(json.dumps(r, sort_keys=True, default=str))
        out[(run.account, run.region, run.policy)] = sorted(resources)
    return out


def test_c7n_org_findings_identical_with_and_without_the_layer(sweeps, org):
    a, b = sweeps['a'][1], sweeps['b'][1]
    assert a == b
    statuses = collections.Counter(status for status, _ in b.values())
    # a real sweep: every policy ran in every account-region, many found something
    assert statuses['errored'] == 0
    assert statuses['findings'] >= 30
    assert len({k[0] for k in b}) == 2 and {k[1] for k in b} == set(REGIONS)
    # not only the same resource ids: the same resources, annotations included
    assert annotated(org['tmp'] / 'out-a') == annotated(org['tmp'] / 'out-b')


def listing_operations(bundle):
    """{(service, Operation)} of the list/describe call of each resource type the bundle uses."""
    import yaml
    import custodian_ext  # noqa: F401  registers the pack's resources
    from c7n.resources import load_resources
    from c7n.resources.aws import AWS
    with open(bundle) as fh:
        types = {p['resource'] for p in yaml.safe_load(fh)['policies']}
    load_resources(tuple(types))
    session = botocore.session.get_session()
    ops = set()
    for name in types:
        model = AWS.resources.get(name.split('.', 1)[1]).resource_type
        spec = getattr(model, 'enum_spec', None)
        if not spec or not spec[0]:
            continue
        try:
            service_model = session.get_service_model(model.service)
        except Exception:
            continue  # a service botocore does not model (the emulator's extensions)
        for op in service_model.operation_names:
            if xform_name(op) == spec[0]:
                ops.add((model.service, op))
    return ops


def per_scope(counted, ops, scope):
    totals = collections.Counter()
    for c in counted:
        if (c['service'], c['operation']) in ops:
            key = (c['service'], c['operation'], c['account']) + (
                (c['region'],) if scope == 'account-region' else ())
            totals[key] += c['served']
    return totals


def test_each_listing_is_called_once_per_account_region(sweeps, org):
    ops = listing_operations(org['bundle'])
    assert ('ec2', 'DescribeInstances') in ops and ('iam', 'ListUsers') in ops
    members = set(org['ids'].values())
    regional = {op for op in ops if op[0] not in GLOBAL_SERVICES}
    stock = per_scope(sweeps['a'][0], regional, 'account-region')
    pack = per_scope(sweeps['b'][0], regional, 'account-region')
    # the seeded resources fit in one page, so once is the floor
    assert {k: n for k, n in pack.items() if n > 1 and k[2] in members} == {}
    assert pack and set(pack) == set(stock)
    # and the counter does see repeats: stock Custodian lists instances per policy
    assert max(stock.values()) > 1
    # global services: once per account, not once per region
    globals_ = {op for op in ops if op[0] in GLOBAL_SERVICES}
    pack_global = per_scope(sweeps['b'][0], globals_, 'account')
    assert {k: n for k, n in pack_global.items() if n > 1 and k[2] in members} == {}
    assert ('iam', 'ListUsers') in {k[:2] for k in pack_global}


def test_shared_reads_are_answered_once_per_account_region(sweeps):
    from custodian_ext.runcache import SHARED_READS
    pack = per_scope(sweeps['b'][0], set(SHARED_READS), 'account-region')
    stock = per_scope(sweeps['a'][0], set(SHARED_READS), 'account-region')
    # ListAccessKeys is per user (UserName is a parameter): once per user, so at most
    # the number of users; the others take no per-resource parameter
    repeated = {k: n for k, n in pack.items() if n > 1 and k[1] != 'ListAccessKeys'}
    assert repeated == {}
    assert max(n for k, n in stock.items() if k[1] == 'DescribeTrails') > 1


def test_sweep_with_throttling_completes_with_identical_findings(sweeps, org):
    """Every 7th request is answered with the service's throttling error (Throttling,
    RequestLimitExceeded, ThrottlingException, SlowDown...), once: botocore's standard
    retry mode, which the pack sets as the default, retries it."""
    calls.throttle(org['url'], 7)
    try:
        counted, outcome = org_run(org, org['tmp'] / 'out-throttled', '1', retries=True)
    finally:
        calls.throttle(org['url'], 0)
    throttled = sum(c['throttled'] for c in counted)
    served = sum(c['served'] for c in counted)
    assert throttled >= served // 8 > 0
    assert {c['service'] for c in counted if c['throttled']} >= {'ec2', 'iam', 's3'}
    assert outcome == sweeps['b'][1]


def single_run(org, out, perf):
    """custodian run over the first account's two regions: outcomes."""
    env = dict(org['first'].env, CUSTODIAN_EXT_PERF=perf, HOME=str(out) + '-home')
    proc = run_cli(['custodian', 'run', '-s', str(out), '--cache-period', '0',
                    '--vars-file', org['vars'], os.path.join(REPO, 'policies', 'detect')]
                   + sweep_regions(), env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return sweep.outcomes(str(out))


@pytest.fixture(scope='module')
def singles(org):
    """{perf: outcomes} and {perf + '-calls': the emulator's counted calls of that run}."""
    out = {}
    for perf in ('0', '1'):
        calls.start(org['url'])
        out[perf] = single_run(org, org['tmp'] / f'single-{perf}', perf)
        out[perf + '-calls'] = calls.fetch(org['url'])
    return out


def test_custodian_run_findings_identical_with_and_without_the_layer(singles):
    """custodian run over two regions: the pack runs every policy of both regions at once
    (custodian_ext.concurrency); stock Custodian one after another."""
    assert singles['0'] == singles['1']
    assert sum(1 for status, _ in singles['1'].values() if status == 'findings') >= 15


def test_custodian_run_asks_sts_who_it_is_once(singles):
    """The pack's pre-flight GetCallerIdentity gives c7n the account id it would otherwise
    ask STS for again, one round trip later, before it loads the policies."""
    for perf in ('0', '1'):
        assert sum(c['served'] for c in singles[perf + '-calls']
                   if c['operation'] == 'GetCallerIdentity') == 1, perf


def test_at_aws_latency_and_rate_limits_findings_identical_and_no_request_refused(
        sweeps, singles, org):
    """The emulator answers at real AWS latency (custodian_ext_dev/emulator/latency.yml,
    scaled to a tenth to keep the test short) and refuses what exceeds AWS's rate limits
    (LookupEvents: 2 per second per account-region, at full rate). The pack runs an
    account-region's policies at once; every policy still finds what stock Custodian,
    one policy after another, finds, and no request is refused: one attempt per call
    (the emulator's environment), so a refusal would have errored its policy."""
    calls.set_latency(org['url'], seed=7, scale=0.1, rate_limits=True)
    try:
        counted, outcome = org_run(org, org['tmp'] / 'out-latency', '1')
        log = calls.requests(org['url'])
        single = single_run(org, org['tmp'] / 'single-latency', '1')
        single_log = calls.requests(org['url'])
    finally:
        calls.set_latency(org['url'], on=False)
    assert outcome == sweeps['a'][1] and single == singles['0']
    assert sum(c['rate_limited'] for c in counted) == 0
    assert [r for r in log + single_log if r['status'] != 'ok'] == []
    # the limit was in play: account-regions read their history in more requests than a
    # burst of two allows at once
    lookups = collections.Counter((r['account'], r['region']) for r in log
                                  if r['operation'] == 'LookupEvents')
    assert max(lookups.values()) >= 3
    assert all(r['latency_ms'] > 0 for r in log)
    # c7n-org's two workers started both accounts' us-east-1 (the global region, whose
    # event history the other regions wait for) before either account's other region;
    # c7n-org's own order starts the first account's two regions (custodian_ext.org_order)
    started = account_region_starts(org['tmp'] / 'out-latency')
    assert max(started[a, 'us-east-1'] for a, _ in started) < \
        min(started[a, 'us-west-2'] for a, _ in started)


def account_region_starts(folder):
    """{(account name, region): the earliest start of its policies' runs} (metadata.json)."""
    starts = {}
    for account in os.listdir(folder):
        if not os.path.isdir(os.path.join(folder, account)):
            continue
        for region in os.listdir(os.path.join(folder, account)):
            for root, _, files in os.walk(os.path.join(folder, account, region)):
                if 'metadata.json' in files:
                    with open(os.path.join(root, 'metadata.json')) as fh:
                        start = json.load(fh)['execution']['start']
                    key = (account, region)
                    starts[key] = min(starts.get(key, start), start)
    return starts


RETRY_PROBE = r'''
import json, sys
from botocore.retries import standard
# the backoff is zeroed to keep the test fast; the number of attempts is what is tested
standard.ExponentialBackoff.delay_amount = lambda self, context: 0
from custodian_ext.perf import MAX_ATTEMPTS
from custodian_ext import patches
patches.install('custodian')  # the retry rows apply to the custodian program
import boto3
from botocore.exceptions import ClientError
client = boto3.client('ec2', region_name='us-east-1', endpoint_url=sys.argv[1])
try:
    client.describe_instances()
    print(json.dumps({'ok': True}))
except ClientError as e:
    print(json.dumps({'code': e.response['Error']['Code'],
                      'retries': e.response['ResponseMetadata'].get('RetryAttempts'),
                      'mode': client.meta.config.retries, 'max': MAX_ATTEMPTS}))
'''


def _probe(org, env_extra=None):
    env = {k: v for k, v in org['first'].env.items() if k not in RETRY_ENV}
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, '-c', RETRY_PROBE, org['url']], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_retries_are_bounded_when_throttling_persists(org):
    """A call throttled more often than the client retries fails with the throttling error
    after exactly MAX_ATTEMPTS requests: no endless retry loop, and the error surfaces (so
    c7n records the policy as errored, never as "no findings")."""
    calls.throttle(org['url'], 1, times=100)
    calls.start(org['url'])
    try:
        result = _probe(org)
    finally:
        calls.throttle(org['url'], 0)
    counted = calls.fetch(org['url'])
    assert result['code'] == 'RequestLimitExceeded'
    assert result['retries'] == result['max'] - 1
    assert result['mode']['mode'] == 'standard'
    assert sum(c['throttled'] for c in counted
               if c['operation'] == 'DescribeInstances') == result['max']


def test_the_users_retry_configuration_wins(org):
    calls.throttle(org['url'], 1, times=100)
    try:
        result = _probe(org, {'AWS_RETRY_MODE': 'legacy', 'AWS_MAX_ATTEMPTS': '2'})
    finally:
        calls.throttle(org['url'], 0)
    assert result['mode']['mode'] == 'legacy'
    assert result['retries'] == 1
