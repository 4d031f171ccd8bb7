"""Fault injection: a full detect sweep with injected faults, against the same sweep without.

    .venv/bin/python bench/faults.py                       # seed 7, 5% of the policies' calls
    .venv/bin/python bench/faults.py --seed 3 --rate 0.1 --kinds error,denied

It starts the local emulator (moto, loopback only), seeds one compromised
account (``world``: the resource checks' busy account and attack from
tests/seed_resources.py, and the demo story's users, trail, flow logs and key
compromise), and runs the real ``custodian run`` of ``policies/detect`` over
three regions twice, the way a user runs it:

1. clean;
2. with faults (``custodian_ext_dev.emulator.faults``): a share ``--rate`` of
   the calls the policies make is answered, seeded, with throttling, a server
   error (500/503), a timeout (no answer within the client's read timeout,
   here 1 s) or access denied, each in its protocol's shape. Throttles clear
   on the client's retry; errors and timeouts clear or persist (half each);
   access denied persists. Clients retry as configured (``AWS_MAX_ATTEMPTS=3``).

Then both are read with ``custodian-ext report --format json`` and compared.
The invariant, checked for every check (policy x region):

- every call that failed after the client's retries (never answered) made its
  check *errored* in the report (its policy, during that policy's run);
- every check that is not errored gives exactly the findings (resource ids) of
  the clean run.

Prints the figure (faults injected, calls failed after retries, checks
errored, checks with findings unchanged) and every violation; exits 1 if
there is one. ``tests/cli/test_faults.py`` asserts the same with a fixed seed.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

REGIONS = ['us-east-1', 'us-west-2', 'eu-north-1']
READ_TIMEOUT = 1.0        # the clients' read timeout in the faulted run (seconds)
TIMEOUT_DELAY = 1.6       # how long an injected timeout keeps the client waiting
MAX_ATTEMPTS = 3          # botocore attempts per call (the first and two retries)
SITE = os.path.join(REPO, 'tests', 'support_site')  # sitecustomize: CUSTODIAN_TEST_READ_TIMEOUT
KINDS = ('throttle', 'error', 'timeout', 'denied')


def say(msg):
    sys.stdout.write(f"[faults {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stdout.flush()


def world(url):
    """One compromised account: returns ``(account, settings)`` for the sweeps."""
    from custodian_ext_dev.demo import story
    from custodian_ext_dev.emulator import DEFAULT_ACCOUNT
    from tests import seed_resources as seed
    from tests.support import new_account
    account, foreign = new_account(url), new_account(url)
    seed.seed_clean(account)
    story.seed_busy(url, account.id, story.COMPROMISED, DEFAULT_ACCOUNT)
    story.seed_baseline(url, account.id)
    leaked = story.leak_key(url, account.id)
    start = story.incident_boundary()
    seed.seed_attack(account, foreign_layer=seed.publish_foreign_layer(foreign))
    story.seed_compromise(url, account.id, leaked)
    settings = story.demo_vars(start, allowed_regions=seed.ALLOWED,
                               trusted_accounts=[seed.TRUSTED, DEFAULT_ACCOUNT])
    return account, settings


def sweep(account, out, vars_file, regions=REGIONS, faulted=False, timeout=600):
    """The real ``custodian run`` of policies/detect; then ``custodian-ext report``'s JSON."""
    from tests.support import BIN, POLICIES
    env = account.env
    if faulted:
        env['AWS_MAX_ATTEMPTS'] = str(MAX_ATTEMPTS)
        env['CUSTODIAN_TEST_READ_TIMEOUT'] = str(READ_TIMEOUT)
        env['PYTHONPATH'] = os.pathsep.join(
            [SITE] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    cmd = [os.path.join(BIN, 'custodian'), 'run', '-s', out, '--cache-period', '0',
           '--vars-file', vars_file, os.path.join(POLICIES, 'detect')]
    for r in regions:
        cmd += ['-r', r]
    started = time.time()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False)
    wall = time.time() - started
    report = subprocess.run(
        [os.path.join(BIN, 'custodian-ext'), 'report', out, '--format', 'json', '-o', '-'],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    if not report.stdout.strip().startswith('{'):
        raise RuntimeError(f"custodian-ext report failed ({report.returncode}): "
                           f"{report.stderr[-2000:]}")
    return {'exit': proc.returncode, 'wall': wall, 'stderr': proc.stderr,
            'report': json.loads(report.stdout), 'report_exit': report.returncode}


def checks(report):
    """{(policy, region): {'status', 'ids', 'error'}} from the report document."""
    ids = collections.defaultdict(list)
    for f in report['findings']:
        ids[(f['policy'], f['region'])].append(f['resource_id'])
    out = {}
    for run in report['runs']:
        key = (run['policy'], run['region'])
        out[key] = {'status': run['status'], 'error': run.get('error') or '',
                    'ids': sorted(ids.get(key, ()))}
    return out


def windows(out):
    """{policy: [(start, end, region)]}: when each policy ran, from c7n's metadata.json."""
    spans = collections.defaultdict(list)
    for dirpath, _dirs, files in os.walk(out):
        if 'metadata.json' not in files:
            continue
        with open(os.path.join(dirpath, 'metadata.json')) as fh:
            meta = json.load(fh)
        execution = meta.get('execution') or {}
        if execution.get('skipped'):
            continue
        spans[meta['policy']['name']].append(
            (execution['start'], execution.get('end_time') or execution['start'],
             meta['config']['region']))
    return spans


def attribute(fault, spans, slack=0.5, errored=()):
    """The region of the policy run during which ``fault`` was injected (None: outside one).

    The pack runs policies at once (custodian_ext.concurrency), so runs of one policy in
    several regions overlap: the run in the region the call was signed for is the one
    (a regional call), unless another run of the policy then errored: a call to the
    global-events region (IAM, STS, CloudTrail's global events: signed for us-east-1)
    made by the run of another region; else the nearest start.
    """
    t = fault['time']
    during = [(start, region) for start, end, region in spans.get(fault['policy'], ())
              if start - slack <= t <= end + slack]
    if not during:
        return None
    regions = [region for _, region in during]
    failed = [r for r in regions if (fault['policy'], r) in errored]
    signed = fault.get('region')
    if signed in failed or (signed in regions and not failed):
        return signed
    if failed:
        return failed[0]
    return min(during, key=lambda d: abs(t - d[0]))[1]


def _failed_during(key, failed, spans, slack):
    """The failed calls made while the check ``key`` (policy, region) ran."""
    for start, end, region in spans.get(key[0], ()):
        if region == key[1]:
            for f in failed:
                if start - slack <= f['time'] <= end + slack:
                    yield f


def shared_failure(key, run, failed, spans, slack=0.5):
    """An errored check explained by a failed call another policy's run made while it ran:
    reads shared by the policies of a run (an account's suspects, AWS Health's notices,
    a region's trails) are made once, by whichever policy asks first, under its name."""
    return any(mentions(run.get('error'), f['operation'])
               for f in _failed_during(key, failed, spans, slack))


def global_failure(key, failed, spans, global_region, slack=0.5):
    """An errored check explained by its own policy's failed call to the global-events
    region, made while the check ran: the activity review's global phase is computed once
    by whichever of the policy's regional runs asks first, and each run that waited for a
    computation that failed computes it again (and meets a persistent fault again)."""
    return any(f['policy'] == key[0] and f.get('region') == global_region
               for f in _failed_during(key, failed, spans, slack))


def mentions(text, operation):
    """Whether an error names ``operation`` (``GetBucketPolicy`` or ``get_bucket_policy``)."""
    import re
    snake = re.sub(r'(?<!^)(?=[A-Z])', '_', operation).lower()
    return operation in (text or '') or snake in (text or '')


def compare(clean, faulted, faults, spans, global_region=REGIONS[0]):
    """The figure and the invariant's violations (see the module docstring)."""
    clean_checks, faulted_checks = checks(clean), checks(faulted)
    injected = faults['faults']
    failed = [f for f in injected if f['failed']]
    violations = []
    explained = set()
    errored = sorted(k for k, v in faulted_checks.items() if v['status'] in ('errored', 'missing'))
    for f in failed:
        region = attribute(f, spans, errored=set(errored))
        f['check_region'] = region
        where = (f['policy'], region)
        label = (f"{f['service']}:{f['operation']} {f['kind']} {f['code']} "
                 f"(refused {f['refused']} of {f['max']} attempts)")
        # The policy that made the call errored; or the call read something a shared
        # listing keeps (c7n's S3 bucket details) and the check that needs it errored,
        # naming the call.
        naming = [k for k in errored if k[1] == region
                  and mentions(faulted_checks[k]['error'], f['operation'])]
        explained.update(naming)
        if region is None:
            violations.append(f"failed call outside any run of {f['policy']}: {label}")
        elif where in errored:
            explained.add(where)
        elif not naming:
            violations.append(f"{f['policy']} in {region}: {label} failed after retries, but "
                              f"the check is {faulted_checks.get(where, {}).get('status')} and "
                              f"no errored check names {f['operation']}")
    faulted_where = {(f['policy'], attribute(f, spans, errored=set(errored))) for f in injected}
    unchanged = 0
    for key, run in sorted(faulted_checks.items()):
        before = clean_checks.get(key)
        if run['status'] in ('errored', 'missing'):
            if key not in faulted_where and key not in explained and not shared_failure(
                    key, run, failed, spans) and not global_failure(
                    key, failed, spans, global_region):
                violations.append(f"{key[0]} in {key[1]}: errored without an injected fault: "
                                  f"{run['error'][:200]}")
            continue
        if before is None:
            violations.append(f"{key[0]} in {key[1]}: not in the clean run")
        elif (before['status'], before['ids']) != (run['status'], run['ids']):
            violations.append(
                f"{key[0]} in {key[1]}: {run['status']} {run['ids']} but the clean run gave "
                f"{before['status']} {before['ids']}")
        else:
            unchanged += 1
    for key in sorted(set(clean_checks) - set(faulted_checks)):
        violations.append(f"{key[0]} in {key[1]}: missing from the faulted run's report")
    kinds = collections.Counter(f['kind'] for f in injected)
    figure = {
        'faults_injected': len(injected),
        'by_kind': dict(sorted(kinds.items())),
        'calls_failed_after_retries': len(failed),
        'checks': len(faulted_checks),
        'checks_errored': len(errored),
        'checks_errored_by_failed_calls': len(explained),
        'checks_unchanged': unchanged,
        'clean_errored': sum(1 for v in clean_checks.values()
                             if v['status'] in ('errored', 'missing')),
    }
    return figure, violations


def run(url, work, seed=7, rate=0.05, kinds=KINDS, persistent=0.5, account=None,
        settings=None):
    """Seed (unless given), sweep clean and faulted; return ``(figure, violations, details)``."""
    from custodian_ext_dev.emulator import calls
    from tests.support import write_vars
    os.makedirs(work, exist_ok=True)
    if account is None:
        say('seeding one compromised account')
        account, settings = world(url)
    vars_file = write_vars(os.path.join(work, 'vars.yml'), settings)
    say('clean sweep')
    clean = sweep(account, os.path.join(work, 'clean'), vars_file)
    calls.inject_faults(url, seed, rate, kinds={k: 1 for k in kinds}, persistent=persistent,
                        delay=TIMEOUT_DELAY)
    try:
        say(f'faulted sweep (seed {seed}, rate {rate}, kinds {",".join(kinds)})')
        faulted = sweep(account, os.path.join(work, 'faulted'), vars_file, faulted=True)
    finally:
        faults = calls.injected_faults(url)
        calls.inject_faults(url, 0, 0)
    figure, violations = compare(clean['report'], faulted['report'], faults,
                                 windows(os.path.join(work, 'faulted')))
    figure['wall_clean'] = round(clean['wall'], 1)
    figure['wall_faulted'] = round(faulted['wall'], 1)
    return figure, violations, {'clean': clean, 'faulted': faulted, 'faults': faults}


def render(figure, violations):
    lines = [
        (f"faults injected: {figure['faults_injected']} "
         f"({', '.join(f'{k} {v}' for k, v in figure['by_kind'].items())})"),
        f"calls failed after retries: {figure['calls_failed_after_retries']}",
        (f"checks (policy x region): {figure['checks']}; errored: {figure['checks_errored']} "
         f"(by a failed call: {figure['checks_errored_by_failed_calls']}); findings "
         f"unchanged: {figure['checks_unchanged']} of the "
         f"{figure['checks'] - figure['checks_errored']} not errored"),
        f"wall time: clean {figure['wall_clean']} s, faulted {figure['wall_faulted']} s",
        f"violations: {len(violations)}",
    ]
    lines.extend(f"  - {v}" for v in violations)
    return '\n'.join(lines) + '\n'


def main(argv=None):
    import tempfile
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seed', type=int, default=7)
    parser.add_argument('--rate', type=float, default=0.05)
    parser.add_argument('--kinds', default=','.join(KINDS))
    parser.add_argument('--persistent', type=float, default=0.5)
    parser.add_argument('--work', default=None, help='keep the outputs here (default: a temp dir)')
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(',') if k]
    from custodian_ext_dev.emulator import Emulator
    work = args.work or tempfile.mkdtemp(prefix="faults-")
    os.makedirs(work, exist_ok=True)
    with Emulator(log_file=os.path.join(work, 'emulator.log')) as emu:
        figure, violations, _ = run(emu.url, work, args.seed, args.rate, kinds, args.persistent)
    sys.stdout.write(render(figure, violations))
    say(f'outputs in {work}')
    return 1 if violations else 0


if __name__ == '__main__':
    sys.exit(main())
