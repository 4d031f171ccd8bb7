"""Benchmark: a sweep's wall time at real AWS latency and rate limits, next to its floor.

    .venv/bin/python bench/walltime.py     # 20 accounts x all enabled regions (make bench)
    .venv/bin/python bench/walltime.py -n 3 -r 4 --workers 4,8   # a quick look (~3 minutes)
    .venv/bin/python bench/walltime.py --docs docs/performance.md

The emulator answers every call after the latency real AWS would take and refuses
requests beyond AWS's documented rate limits (custodian_ext_dev/emulator/latency.py
and latency.yml: the figures, and where each comes from). The benchmark seeds N
accounts as bench/sweep.py does, then runs the bundled detect policies:

- ``custodian run -r all`` over every enabled region of the first account (the
  pack's ``--repeat`` times, 3 by default: one slow LookupEvents draw moves its floor);
- ``c7n-org run -r all`` over all N accounts, at each ``--workers`` value of
  ``C7N_ORG_PARALLEL`` (and once without it: c7n-org's default, as the pack sets it);

each twice: (b) the pack as shipped, and (a) "stock": the same command with
``CUSTODIAN_EXT_PERF=0``, i.e. the pack's checks run the way stock Cloud Custodian
runs policies (one region, then one policy, after another; no shared listings
or clients; c7n-org's own default worker count). Stock Cloud Custodian cannot
run the pack's policies at all (they use the pack's filters), so this is the
closest stock baseline; it is also what the tests compare findings with.

Each figure stands next to its floor: the time the calls the run could not
avoid take at the latencies the emulator drew for them and under the rate
limits, computed from the emulator's request log (see ``floor``):

- an account-region cannot finish before the longest chain of calls that
  depend on one another: credentials (sts:AssumeRole, c7n-org), a connection,
  a listing (its pages one after another), a read per resource, and a job's
  result after the job (IAM's service-last-accessed reports): the slowest call
  of each level, at the latency drawn for it;
- nor before its LookupEvents calls fit AWS's 2 per second (no more than two in any
  one second) and have answered (the slowest sent first: ``paced_floor``);
- a single-account sweep has its regions in parallel: its floor is its slowest
  account-region, after the run's own first calls (GetCallerIdentity,
  DescribeRegions);
- an organization sweep with W workers cannot beat the sum of its
  account-regions' floors divided by W, nor its slowest account-region.

Client CPU (the command's and its workers' rusage) and the emulator's CPU are
reported too: the machine's cores are a limit the API floor leaves out.
Findings of every path are compared (policy, account, region, resource ids).
"""
import argparse
import collections
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import yaml  # noqa: E402

from bench import sweep  # noqa: E402
from custodian_ext.region_processes import cores  # noqa: E402
from custodian_ext_dev.emulator import Emulator, calls, client_env  # noqa: E402

BIN = os.path.dirname(sys.executable)
LOOKUP = ('cloudtrail', 'LookupEvents')
# The calls a run makes once, before any account-region can start.
RUN_PREFIX = {('sts', 'GetCallerIdentity'), ('ec2', 'DescribeRegions')}
PATHS = (('b', 'the pack', '1'), ('a', 'stock (CUSTODIAN_EXT_PERF=0)', '0'))


def say(msg):
    sys.stdout.write(f"[walltime {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stdout.flush()


# -- the floor ----------------------------------------------------------------------

_levels = {}


def level(service, operation):
    """1: callable first (no required input); 2: needs an id from a listing; 3: a job's result."""
    key = (service, operation)
    if key in _levels:
        return _levels[key]
    import botocore.session
    result = 1
    try:
        model = botocore.session.get_session().get_service_model(service)
        shape = model.operation_model(operation).input_shape
        result = 2 if shape is not None and shape.required_members else 1
        if operation.startswith('Get') and 'Generate' + operation[3:] in model.operation_names:
            result = level(service, 'Generate' + operation[3:]) + 1
    except Exception:
        result = 2
    _levels[key] = result
    return result


def rate_rules():
    from custodian_ext_dev.emulator import latency
    return {tuple(r['match'].split('.', 1)): (float(r['rate']), float(r['burst']))
            for r in latency.load().get('rate_limits') or () if '*' not in r['match']}


def floor(requests, assumed, rules=None):
    """The run's floor from its request log: {'ars': {(account, region): s}, 'prefix': s}.

    ``assumed``: the run assumes a role for each account-region (c7n-org). A call's
    cost is its drawn latency without the handshake; an account-region that opened a
    connection pays one handshake (one that sent only on connections a worker kept from
    the account-regions before it pays none: reusing them is what avoids it).
    """
    rules = rules if rules is not None else rate_rules()
    by_ar = collections.defaultdict(list)
    assume = collections.defaultdict(list)
    prefix = 0.0
    opened = set()
    for r in requests:
        if r['status'] != 'ok':
            continue
        cost = (r['latency_ms'] - r['handshake_ms']) / 1000.0
        op = (r['service'], r['operation'])
        if op == ('sts', 'AssumeRole'):
            assume[r['region']].append(cost)
            continue
        if op in RUN_PREFIX:
            prefix = max(prefix, cost) if op == ('ec2', 'DescribeRegions') else prefix + cost
            continue
        by_ar[(r['account'], r['region'])].append((op, cost, r['continuation'], r['rtt_ms']))
        if r.get('new_connection', True):
            opened.add((r['account'], r['region']))
    handshake_rtts = 2.0
    out = {}
    # c7n-org assumes the member role once per account-region (from the caller's account,
    # through STS's endpoint in us-east-1): a typical AssumeRole comes first
    roles = [c for costs in assume.values() for c in costs]
    credentials = statistics.median(roles) if assumed and roles else 0.0
    for ar, rows in by_ar.items():
        handshake = handshake_rtts * max(rtt for *_, rtt in rows) / 1000.0 \
            if ar in opened else 0.0
        chains = collections.defaultdict(lambda: [0.0, 0.0])  # op -> [max first call, sum of pages]
        lookups = []
        for op, cost, cont, _ in rows:
            c = chains[op]
            if cont:
                c[1] += cost
            else:
                c[0] = max(c[0], cost)
            if op == LOOKUP:
                lookups.append(cost)
        by_level = collections.defaultdict(float)
        for op, (first, pages) in chains.items():
            lv = level(*op)
            by_level[lv] = max(by_level[lv], first + pages)
        sequential = credentials + handshake + sum(by_level.values())
        limited = 0.0
        if lookups:
            rate = rules.get(LOOKUP, (2.0, 2.0))[0]
            limited = credentials + handshake + paced_floor(lookups, rate)
        out[ar] = max(sequential, limited)
    return {'ars': out, 'prefix': prefix}


def paced_floor(latencies, rate):
    """The soonest requests of these latencies can all have answered when no more than
    ``rate`` of them go in any one second (AWS's documented "two per second" for
    LookupEvents, as ``lookup_rate`` counts it): the k-th sent goes ``k // rate`` seconds
    in, the earliest any such order allows, and the longest latencies sent first end
    soonest. The emulator's bucket (``latency.yml``) would let a third through half a
    second in: AWS documents no bucket, and a sweep that counted on one would exceed the
    documented rate, so the floor does not count on it either."""
    rate = int(rate)
    slots = (k // rate for k in range(len(latencies)))
    return max(slot + latency for slot, latency in zip(slots, sorted(latencies, reverse=True)))


def run_floor(fl, workers=None):
    """The whole run's floor: regions in parallel; with ``workers``, at most that many at once."""
    ars = list(fl['ars'].values()) or [0.0]
    longest = fl['prefix'] + max(ars)
    if not workers:
        return longest
    return max(longest, fl['prefix'] + sum(ars) / workers)


def lookup_rate(requests):
    """The most LookupEvents requests served to one account-region within any one second
    (a half-open second, less 5 ms for the clocks' granularity: 0 s, 0.5 s and 1 s are two
    per second, as AWS counts them)."""
    times = collections.defaultdict(list)
    for r in requests:
        if (r['service'], r['operation']) == LOOKUP and r['status'] == 'ok':
            times[(r['account'], r['region'])].append(r['t'])
    worst = 0
    for ts in times.values():
        ts.sort()
        j = 0
        for i, t in enumerate(ts):
            while ts[j] <= t - 0.995:
                j += 1
            worst = max(worst, i - j + 1)
    return worst


# -- measuring ----------------------------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of a process (the emulator), from /proc."""
    try:
        with open(f'/proc/{pid}/stat') as fh:
            fields = fh.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, IndexError, ValueError):
        return 0.0


def measure(cmd, env, emu, log_path, assumed, workers=None):
    before = cpu_seconds(emu.proc.pid)
    m = sweep.measure(cmd, env, emu.url, log_path)
    m['emulator_cpu'] = cpu_seconds(emu.proc.pid) - before
    reqs = calls.requests(emu.url)
    with open(log_path[:-len('.log')] + '-requests.json', 'w') as fh:
        json.dump(reqs, fh)
    fl = floor(reqs, assumed)
    m['floor'] = run_floor(fl, workers)
    m['floor_ars'] = len(fl['ars'])
    m['requests'] = len(reqs)
    m['rate_limited'] = sum(1 for r in reqs if r['status'] == 'rate-limited')
    m['lookup_rate'] = lookup_rate(reqs)
    m['overruns'] = sum(1 for r in reqs if r['status'] == 'ok' and r['took_ms'] > r['latency_ms'])
    m['new_connections'] = sum(1 for r in reqs if r['new_connection'])
    m['latency_sum'] = sum(r['latency_ms'] for r in reqs) / 1000.0
    del m['calls']
    return m


def warm(accounts, regions):
    """Create moto's per-region EC2 backends (a default VPC each: ~1 s of emulator CPU)
    before anything is timed."""
    from concurrent.futures import ThreadPoolExecutor

    def one(args):
        account, region = args
        account.client('ec2', region).describe_vpcs()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, [(a, r) for a in accounts for r in regions]))


WARM_ACCOUNT = '599999999999'  # in no accounts file: its event history is its own


def warm_sweep(url, vars_path, regions, work):
    """One untimed sweep of the pack over an empty account of its own, latency off.

    moto does work on the first request for a service that it never repeats (its Flask
    app and URL rules, the parsers of the service's model, the account-region's backend):
    about 1.5 s of emulator CPU for the detect pack, which would otherwise be paid inside
    the first timed sweep, on the cores the client uses; AWS has no such cost. Another
    account, so the swept accounts' event histories and resources are unchanged."""
    from tests.support import new_account
    account = new_account(url, WARM_ACCOUNT)
    out = os.path.join(work, 'out-warm')
    cmd = [os.path.join(BIN, 'custodian'), 'run', '-s', out, '--cache-period', '0',
           '--vars-file', vars_path, os.path.join(REPO, 'policies', 'detect')
           ] + region_args(regions)
    with open(os.path.join(work, 'custodian-warm.log'), 'w') as log:
        code = subprocess.run(cmd, env=env_for(account.env, '1', work, None), stdout=log,
                              stderr=subprocess.STDOUT, cwd=REPO).returncode
    if code not in (0, 1):  # 1: a policy errored in an empty account; the warming is done
        say(f"warm-up sweep exited {code} (see {log.name}); the first sweep may be slower")


def enabled_regions(account):
    ec2 = account.client('ec2', 'us-east-1')
    return [r['RegionName'] for r in ec2.describe_regions()['Regions']]


def env_for(base, perf, home, workers, threads=None, processes=None):
    env = dict(base)
    env.update({'CUSTODIAN_EXT_PERF': perf, 'HOME': home})
    env.pop('CUSTODIAN_EXT_THREADS', None)
    if threads:
        env['CUSTODIAN_EXT_THREADS'] = str(threads)
    env.pop('CUSTODIAN_EXT_PROCESSES', None)
    if processes:
        env['CUSTODIAN_EXT_PROCESSES'] = str(processes)
    env.pop('C7N_ORG_PARALLEL', None)
    if workers:
        env['C7N_ORG_PARALLEL'] = str(workers)
    return env


def region_args(regions):
    out = []
    for r in regions:
        out += ['-r', r]
    return out


def run_all(emu, args, work, accounts_path, bundle, single, regions, n_regions):
    runs = []
    for key, title, perf in PATHS:
        if key == 'a' and args.no_stock:
            continue
        home = os.path.join(work, f'home-{key}')
        os.makedirs(home, exist_ok=True)
        # the pack's single-account sweep is short, and one heavy-tailed draw of a
        # LookupEvents latency moves its floor by seconds: it is measured --repeat times
        for i in range(0 if args.no_single else args.repeat if key == 'b' else 1):
            account, vars_path = single
            suffix = f'-{i + 1}' if i else ''
            out = os.path.join(work, f'out-{key}-single{suffix}')
            cmd = [os.path.join(BIN, 'custodian'), 'run', '-s', out, '--cache-period', '0',
                   '--vars-file', vars_path, os.path.join(REPO, 'policies', 'detect')
                   ] + region_args(regions)
            say(f"({key}) {title}: custodian run, 1 account x {n_regions} regions")
            m = measure(cmd, env_for(account.env, perf, home, None, args.threads,
                                     args.processes), emu,
                        os.path.join(work, f'custodian-{key}{suffix}.log'), assumed=False)
            m.update(kind='single', path=key, workers=None, outcomes=sweep.outcomes(out))
            say(f"({key}) exit {m['exit']}, {m['wall']:.1f}s wall, floor {m['floor']:.1f}s, "
                f"{m['cpu']:.1f}s CPU")
            runs.append(m)
        for w in (args.workers if key == 'b' else args.stock_workers):
            out = os.path.join(work, f'out-{key}-org-{w or "default"}')
            cmd = [os.path.join(BIN, 'c7n-org'), 'run', '-c', accounts_path, '-u', bundle,
                   '-s', out, '--cache-period', '0'] + region_args(regions)
            org_env = env_for(client_env(emu.url), perf, home, w, args.threads)
            say(f"({key}) {title}: c7n-org run, {args.accounts} accounts, "
                f"C7N_ORG_PARALLEL={w or 'default'}")
            m = measure(cmd, org_env, emu, os.path.join(work, f'c7n-org-{key}-{w}.log'),
                        assumed=True, workers=w or default_workers(perf))
            m.update(kind='org', path=key, workers=w, outcomes=sweep.outcomes(out))
            say(f"({key}) exit {m['exit']}, {m['wall']:.1f}s wall, floor {m['floor']:.1f}s, "
                f"{m['cpu']:.1f}s CPU")
            runs.append(m)
    return runs


def default_workers(perf):
    """C7N_ORG_PARALLEL when unset, as each path sees it."""
    code = ('import custodian_ext.patches as p; p.install("c7n-org"); '
            'import c7n_org.cli as c; print(c.WORKER_COUNT)')
    env = dict(os.environ, CUSTODIAN_EXT_PERF=perf, PYTHONPATH=REPO)
    env.pop('C7N_ORG_PARALLEL', None)
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True)
    try:
        return int(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return os.cpu_count() * 4


# -- figures ------------------------------------------------------------------------

def render(runs, args, n_regions, load, elapsed, command, header=None):
    stock = {}
    for m in runs:
        if m['path'] == 'a':
            stock[(m['kind'], m['workers'])] = m
    # the reference: the first pack run of each kind; every run should hold the runs any
    # run of its kind holds (an account-region without output is missing, not clean)
    ref, expected = {}, {}
    for m in runs:
        if m['path'] == 'b':
            ref.setdefault(m['kind'], m['outcomes'])
        expected.setdefault(m['kind'], set()).update(m['outcomes'])
    lines = header or [
        f"Command: `{' '.join(command)}`  ",
        f"Machine: {cores()} cores shared with other work; load average before the "
        f"runs: {load}; whole benchmark {elapsed:.0f}s (seeding included). Latency: "
        f"custodian_ext_dev/emulator/latency.yml (runner in us-east-1), scale "
        f"{args.scale}, seed {args.seed}; "
        + ("plain HTTP." if getattr(args, 'plain_http', False) else
           "HTTPS (the clients verify the emulator with botocore's CA bundle).")]
    lines = lines + [
        '',
        '| sweep | path | C7N_ORG_PARALLEL | wall (s) | floor (s) | wall / floor '
        '| CPU / cores (s) | wall / stock | client CPU (s) | emulator CPU (s) | emulator late '
        '| API calls | refused for rate | errored runs | missing runs | same findings |',
        '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|']
    repeats = sum(1 for m in runs if m['kind'] == 'single' and m['path'] == 'b')
    # the CPU the run and the emulator used, over the cores they shared: on this machine
    # no wall time can be shorter, whatever the calls allow
    n_cores = cores()
    nth = collections.Counter()
    for m in runs:
        title = ('custodian run, 1 account x %d regions' % n_regions if m['kind'] == 'single'
                 else 'c7n-org, %d accounts x %d regions' % (args.accounts, n_regions))
        if m['kind'] == 'single' and m['path'] == 'b' and repeats > 1:
            nth[m['path']] += 1  # each sweep's own calls are in the next one's event history
            title += ' (sweep %d)' % nth[m['path']]
        path = 'pack' if m['path'] == 'b' else 'stock'
        base = stock.get((m['kind'], m['workers'])) or stock.get((m['kind'], None))
        if base is None and m['kind'] == 'org':
            base = next((s for (k, _), s in stock.items() if k == 'org'), None)
        vs = f"{m['wall'] / base['wall']:.2f}" if base and base is not m else ''
        errored = sum(1 for v in m['outcomes'].values() if v[0] == 'errored')
        missing = len(expected[m['kind']] - set(m['outcomes']))
        diff = sweep.differences(ref.get(m['kind'], {}), m['outcomes'])
        workers = '' if m['kind'] == 'single' else (m['workers'] or 'default')
        lines.append(
            f"| {title} | {path} | {workers} | {m['wall']:.1f} | {m['floor']:.1f} | "
            f"{m['wall'] / m['floor']:.1f} | {(m['cpu'] + m['emulator_cpu']) / n_cores:.1f} | "
            f"{vs} | {m['cpu']:.0f} | {m['emulator_cpu']:.0f} | "
            f"{100.0 * m['overruns'] / max(m['requests'], 1):.0f}% | "
            f"{m['requests']} | {m['rate_limited']} | {errored} | {missing} | "
            f"{'yes' if not diff else 'NO: %d differ' % len(diff)} |")
    return '\n'.join(lines) + '\n'


def rerender(args, work):
    """The table again from a finished run's folder (results.json, walltime.md's header,
    the output folders), e.g. after a change to the table."""
    with open(os.path.join(work, 'results.json')) as fh:
        runs = json.load(fh)
    with open(os.path.join(work, 'walltime.md')) as fh:
        header = fh.read().splitlines()[:2]
    for m in runs:
        m['outcomes'] = sweep.outcomes(m['cmd'][m['cmd'].index('-s') + 1])
        requests = m['log'][:-len('.log')] + '-requests.json'
        if os.path.exists(requests):  # the floor again, from the run's request log
            with open(requests) as fh:
                fl = floor(json.load(fh), m['kind'] == 'org')
            workers = m['workers'] or (default_workers('1' if m['path'] == 'b' else '0')
                                       if m['kind'] == 'org' else None)
            m['floor'] = run_floor(fl, workers)
    n_regions = int(re.search(r'x (\d+) regions', open(
        os.path.join(work, 'walltime.md')).read()).group(1))
    return render(runs, args, n_regions, None, 0, None, header=header)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='bench/walltime.py', description=__doc__.split('\n')[0])
    parser.add_argument('-n', '--accounts', type=int, default=20)
    parser.add_argument('-r', '--regions', default='all',
                        help="'all' (every region enabled in the accounts: 17) or N: the first N")
    parser.add_argument('--workers', default='4,8,16',
                        help='C7N_ORG_PARALLEL values for the pack; 0 is "unset" (the default)')
    parser.add_argument('--stock-workers', default='8',
                        help='C7N_ORG_PARALLEL values for stock (default: 8)')
    parser.add_argument('--no-stock', action='store_true', help='the pack only')
    parser.add_argument('--no-single', action='store_true', help='no custodian run sweep')
    parser.add_argument('--repeat', type=int, default=3,
                        help="times the pack's custodian run sweep is measured (default 3)")
    parser.add_argument('--threads', type=int, default=None,
                        help='CUSTODIAN_EXT_THREADS for the runs (default: unset, the default)')
    parser.add_argument('--processes', type=int, default=None,
                        help='CUSTODIAN_EXT_PROCESSES for custodian run (default: unset, the '
                             'default)')
    parser.add_argument('--incident-start', metavar='ISO',
                        help="incident_start of every sweep (default: the seeding's start); "
                             "older than 90 days, every history window is clamped")
    parser.add_argument('--scale', type=float, default=1.0, help='multiply every latency')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--plain-http', action='store_true',
                        help='the emulator without TLS (tables before December 2026)')
    parser.add_argument('--out', default=os.path.join(REPO, 'bench-output', 'walltime'))
    parser.add_argument('--docs', default='', help='write the figures into this Markdown file')
    parser.add_argument('--rerender', metavar='DIR',
                        help="only the table again, from a finished run's --out folder")
    args = parser.parse_args(argv)
    if args.rerender:
        text = rerender(args, args.rerender)
        sys.stdout.write(text)
        if args.docs:
            sweep.write_docs(args.docs, 'walltime', text)
        return 0
    args.workers = [int(x) or None for x in args.workers.split(',') if x != '']
    args.stock_workers = [int(x) or None for x in args.stock_workers.split(',') if x != '']
    command = ['python', 'bench/walltime.py'] + (argv if argv is not None else sys.argv[1:])
    started = time.time()
    work = args.out
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    say(f"emulator starting; seeding {args.accounts} accounts")
    with Emulator(log_file=os.path.join(work, 'emulator.log'), tls=not args.plain_http) as emu:
        if emu.ca_bundle:  # AWS speaks HTTPS only: every client here verifies the emulator
            os.environ['AWS_CA_BUNDLE'] = emu.ca_bundle
        accounts, ids, known, settings = sweep.seed(emu.url, args.accounts)
        if args.incident_start:
            settings['incident_start'] = args.incident_start
        enabled = enabled_regions(accounts[0])
        if args.regions == 'all':
            regions, n_regions = ['all'], len(enabled)
        else:
            first = [r for r in sweep.REGIONS if r in enabled]
            first += [r for r in enabled if r not in first]
            regions = first[:int(args.regions)]
            n_regions = len(regions)
        swept = enabled if regions == ['all'] else regions
        say(f"seeded in {time.time() - started:.0f}s; warming {len(accounts) * len(swept)} "
            f"account-regions")
        warm(accounts, swept)
        accounts_path = sweep.accounts_file(os.path.join(work, 'accounts.yml'), ids, known,
                                            settings)
        first_id = list(ids)[0]
        vars_path = os.path.join(work, 'vars-single.yml')
        with open(vars_path, 'w') as fh:
            yaml.safe_dump(dict(settings, known_users=known[first_id][0],
                                known_roles=known[first_id][1]), fh, sort_keys=False)
        bundle = os.path.join(work, 'detect.yml')
        subprocess.run([os.path.join(BIN, 'custodian-ext'), 'bundle',
                        os.path.join(REPO, 'policies', 'detect'), '-o', bundle], check=True,
                       cwd=REPO, stdout=subprocess.DEVNULL)
        say("warm-up sweep of an empty account (untimed, latency off)")
        warm_sweep(emu.url, vars_path, regions, work)
        calls.set_latency(emu.url, seed=args.seed, scale=args.scale)
        load = sweep.load_average()
        runs = run_all(emu, args, work, accounts_path, bundle, (accounts[0], vars_path),
                       regions, n_regions)
        calls.set_latency(emu.url, on=False)
    text = render(runs, args, n_regions, load, time.time() - started, command)
    sys.stdout.write('\n' + text)
    with open(os.path.join(work, 'walltime.md'), 'w') as fh:
        fh.write(text)
    with open(os.path.join(work, 'results.json'), 'w') as fh:
        json.dump([{k: v for k, v in m.items() if k != 'outcomes'} for m in runs], fh,
                  indent=1, default=str)
    if args.docs:
        sweep.write_docs(args.docs, 'walltime', text)
        say(f"figures written to {args.docs}")
    say(f"done in {time.time() - started:.0f}s; output in {work}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
