"""Benchmark: the detect pack over N accounts x R regions, stock Custodian against the pack.

    .venv/bin/python bench/sweep.py                 # N=10 accounts, R=4 regions (make bench)
    .venv/bin/python bench/sweep.py -n 20 -r 2
    .venv/bin/python bench/sweep.py --memory 5,20   # peak RSS at N=5 and N=20 (make bench-memory)
    .venv/bin/python bench/sweep.py --docs docs/performance.md   # also write the figures there

It starts the local emulator (moto, loopback only), creates N accounts reached
with sts:AssumeRole (as c7n-org reaches them), seeds them (``seed``: the demo
story's busy account and the resource checks' clean account in every one, the
demo's compromise in the first), and runs the bundled detect policies the way
a user runs them, twice:

(a) stock: ``CUSTODIAN_EXT_PERF=0``, the pack's checks without its performance
    layer, as stock Cloud Custodian runs them;
(b) the pack: the same commands with the performance layer on (the default).

Each path runs ``c7n-org run`` over all accounts and regions (bundled with
``custodian-ext bundle``, ``--cache-period 0``, ``C7N_ORG_PARALLEL`` workers)
and ``custodian run -r ...`` over the regions of the first account. For each
command: wall time, client CPU (the command's and its workers' rusage),
API calls per account-region by service and operation (counted by the
emulator, custodian_ext_dev/emulator/calls.py), peak RSS (the largest process),
and whether both paths found the same resources (policy, account, region,
resource ids). Benchmarks print figures; the tests assert correctness.
"""
import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import yaml  # noqa: E402

from custodian_ext_dev.demo import story  # noqa: E402
from custodian_ext_dev.emulator import DEFAULT_ACCOUNT, Emulator, calls, client_env  # noqa: E402

REGIONS = ['us-east-1', 'us-west-2', 'eu-north-1', 'eu-west-1', 'ap-southeast-2',
           'eu-central-1', 'ap-northeast-1', 'ca-central-1', 'sa-east-1', 'ap-south-1']
ROLE = 'OrganizationAccountAccessRole'
# (key, title, CUSTODIAN_EXT_PERF, cache arguments). (a) is the baseline of the ratios:
# stock Cloud Custodian run as the pack's README runs it, without c7n's file cache,
# which would report an account as it was up to 15 minutes ago. (a2) is stock with
# c7n's defaults (a 15-minute file cache, empty at the start), for comparison.
PATHS = (('a', 'stock, --cache-period 0', '0', ['--cache-period', '0']),
         ('a2', "stock, c7n's default 15-minute file cache", '0', []),
         ('b', 'the pack (performance layer on)', '1', ['--cache-period', '0']))
MEMORY_PATHS = ('a', 'b')
BIN = os.path.dirname(sys.executable)


def say(msg):
    sys.stdout.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stdout.flush()


# -- the emulated organization ------------------------------------------------------

def seed(url, n, account_ids=None):
    """N accounts with a realistic mix; the first one compromised. Returns what the runs need."""
    from tests import seed_resources
    from tests.support import new_account
    account_ids = account_ids or ['5%011d' % (i + 1) for i in range(n)]
    accounts = [new_account(url, account_ids[i]) for i in range(n)]
    ids = {}
    leaked = None
    for i, a in enumerate(accounts):
        name = story.COMPROMISED if i == 0 else story.DEV
        story.seed_busy(url, a.id, name, DEFAULT_ACCOUNT)
        if i == 0:
            story.seed_baseline(url, a.id)
            leaked = story.leak_key(url, a.id)
        seed_resources.seed_clean(a)
        ids[f'acct-{i:02d}'] = a.id
    known = {name: story.known_principals(url, account_id) for name, account_id in ids.items()}
    start = story.incident_boundary()
    story.seed_compromise(url, accounts[0].id, leaked)
    if n > 1:
        story.seed_ordinary_work(url, accounts[1].id, story.DEV)
    settings = story.org_vars(start, ids)
    settings['trusted_accounts'] = sorted(set(settings['trusted_accounts'])
                                          | {seed_resources.TRUSTED})
    return accounts, ids, known, settings


def accounts_file(path, ids, known, settings, names=None):
    accounts = []
    for name, account_id in ids.items():
        if names is not None and name not in names:
            continue
        users, roles = known[name]
        accounts.append({'name': name, 'account_id': account_id,
                         'role': f'arn:aws:iam::{account_id}:role/{ROLE}',
                         'vars': {'known_users': users, 'known_roles': roles}})
    with open(path, 'w') as fh:
        yaml.safe_dump({'vars': settings, 'accounts': accounts}, fh, sort_keys=False)
    return path


# -- measuring one command ----------------------------------------------------------

def measure(cmd, env, url, log_path):
    """Run ``cmd``; its wall time, CPU and peak RSS (with its workers), and the calls it made."""
    calls.start(url)
    started = time.time()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - started
    return {'cmd': cmd, 'exit': proc.returncode, 'wall': wall,
            'cpu': usage.ru_utime + usage.ru_stime,
            'rss_mb': usage.ru_maxrss / 1024.0,  # Linux: KB; the largest process of the tree
            'calls': calls.fetch(url), 'log': log_path}


def outcomes(folder):
    """{(account, region, policy): (status, sorted resource ids)} of one output folder."""
    from custodian_ext.report.loader import load_runs, resource_id
    out = {}
    for run in load_runs([folder], missing=False):
        ids = sorted(resource_id(run.resource_type, r) for r in run.resources)
        out[(run.account, run.region, run.policy)] = (run.status, ids)
    return out


def differences(a, b):
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


# -- the runs -----------------------------------------------------------------------

def org_command(accounts_path, bundle, out, regions, cache_args):
    cmd = [os.path.join(BIN, 'c7n-org'), 'run', '-c', accounts_path, '-u', bundle, '-s', out
           ] + cache_args
    for r in regions:
        cmd += ['-r', r]
    return cmd


def single_command(vars_path, out, regions, cache_args):
    cmd = [os.path.join(BIN, 'custodian'), 'run', '-s', out] + cache_args + [
           '--vars-file', vars_path, os.path.join(REPO, 'policies', 'detect')]
    for r in regions:
        cmd += ['-r', r]
    return cmd


def env_for(base, perf, home, workers):
    env = dict(base)
    env.update({'CUSTODIAN_EXT_PERF': perf, 'HOME': home, 'C7N_ORG_PARALLEL': str(workers)})
    return env


def run_paths(url, work, accounts_path, bundle, regions, workers, single=None, label='',
              keys=None):
    """Every path: {'a': {'org': m, 'single': m}, 'a2': ..., 'b': ...}."""
    results = {}
    for key, title, perf, cache_args in PATHS:
        if keys is not None and key not in keys:
            continue
        results[key] = {}
        home = os.path.join(work, f'home-{key}{label}')
        os.makedirs(home, exist_ok=True)
        out = os.path.join(work, f'out-{key}{label}')
        shutil.rmtree(out, ignore_errors=True)
        org_env = env_for(client_env(url), perf, home, workers)
        say(f"({key}) {title}: c7n-org run ... {' '.join('-r ' + r for r in regions)}")
        m = measure(org_command(accounts_path, bundle, os.path.join(out, 'org'), regions,
                                cache_args),
                    org_env, url, os.path.join(work, f'c7n-org-{key}{label}.log'))
        m['outcomes'] = outcomes(os.path.join(out, 'org'))
        results[key]['org'] = m
        say(f"({key}) exit {m['exit']}, {m['wall']:.1f}s wall, {m['cpu']:.1f}s CPU")
        if single is not None:
            account, vars_path = single
            env = env_for(account.env, perf, home, workers)
            say(f"({key}) {title}: custodian run (account {account.id})")
            m = measure(single_command(vars_path, os.path.join(out, 'single'), regions, cache_args),
                        env, url, os.path.join(work, f'custodian-{key}{label}.log'))
            m['outcomes'] = outcomes(os.path.join(out, 'single'))
            results[key]['single'] = m
            say(f"({key}) exit {m['exit']}, {m['wall']:.1f}s wall, {m['cpu']:.1f}s CPU")
    return results


# -- figures ------------------------------------------------------------------------

def api_table(results, n_accounts, n_regions, kind='org'):
    """Rows (service.operation, {path: calls per account-region}, most in one account-region
    (b))."""
    rows = {}
    for key in results:
        per_ar = collections.Counter()
        for c in results[key][kind]['calls']:
            op = f"{c['service']}.{c['operation']}"
            rows.setdefault(op, {'max': 0})
            rows[op][key] = rows[op].get(key, 0) + c['served']
            if key == 'b':
                per_ar[(op, c['account'], c['region'])] += c['served']
        for (op, _, _), n in per_ar.items():
            rows[op]['max'] = max(rows[op]['max'], n)
    ars = n_accounts * n_regions
    return [(op, {k: r.get(k, 0) / ars for k in results}, r['max'])
            for op, r in sorted(rows.items())]


def total_calls(m):
    return sum(c['served'] for c in m['calls'])


def summary_rows(results, n_accounts, n_regions):
    rows = []
    for kind, ars, title in (('org', n_accounts * n_regions,
                              f'c7n-org run, {n_accounts} accounts x {n_regions} regions'),
                             ('single', n_regions,
                              f'custodian run, 1 account x {n_regions} regions')):
        if kind not in results['a']:
            continue
        row = {'title': title, 'ars': ars, 'paths': {}}
        for key in results:
            m = results[key][kind]
            diff = differences(results['b'][kind]['outcomes'], m['outcomes'])
            row['paths'][key] = {
                'wall': m['wall'], 'cpu': m['cpu'], 'cpu_ar': m['cpu'] / ars,
                'calls_ar': total_calls(m) / ars, 'rss': m['rss_mb'], 'exit': m['exit'],
                'same_as_b': not diff, 'differences': diff[:20]}
        b = results['b'][kind]['outcomes']
        row['runs'] = len(b)
        row['findings'] = sum(len(v[1]) for v in b.values() if v[0] == 'findings')
        row['errored'] = sum(1 for v in b.values() if v[0] == 'errored')
        rows.append(row)
    return rows


def render(rows, table, args, load, elapsed):
    keys = [k for k, *_ in PATHS]
    titles = {k: t for k, t, *_ in PATHS}
    lines = [f"Command: `{' '.join(args)}`  ",
             f"Machine: {os.cpu_count()} cores; load average before the runs: {load}; "
             f"whole benchmark {elapsed:.0f}s (seeding included).", '',
             'Paths: ' + '; '.join(f'({k}) {titles[k]}' for k in keys) + '.', '',
             '| | ' + ' | '.join(f'({k})' for k in keys) + ' | (b)/(a) | (b)/(a2) |',
             '|---|' + '--:|' * (len(keys) + 2)]
    for r in rows:
        lines.append(f"| **{r['title']}** |" + ' |' * (len(keys) + 2))
        for label, key, fmt in (('wall time (s)', 'wall', '{:.1f}'),
                                ('client CPU (s)', 'cpu', '{:.1f}'),
                                ('client CPU per account-region (s)', 'cpu_ar', '{:.2f}'),
                                ('API calls per account-region', 'calls_ar', '{:.1f}'),
                                ('peak RSS, largest process (MB)', 'rss', '{:.0f}')):
            values = [r['paths'][k][key] for k in keys]
            b = r['paths']['b'][key]
            ratios = [(b / r['paths'][k][key]) if r['paths'][k][key] else 0 for k in ('a', 'a2')]
            lines.append(f"| {label} | " + ' | '.join(fmt.format(v) for v in values) + ' | '
                         + ' | '.join(f'{x:.2f}' for x in ratios) + ' |')
        same = ['yes' if r['paths'][k]['same_as_b'] else
                'NO: %d differ' % len(r['paths'][k]['differences']) for k in keys]
        lines.append('| same findings as (b) | ' + ' | '.join(same) + ' | | |')
        lines.append(f"| (b): policy runs, resources found, errored | | | "
                     f"{r['runs']}, {r['findings']}, {r['errored']} | | |")
    lines.append('')
    lines.append('API calls per account-region, c7n-org run (calls / (accounts x regions); '
                 'global services are called in one region, so their per-account count is '
                 'this times the number of regions). "max (b)" is the most calls of that '
                 'operation in one account-region in (b): 1 for a listing is the floor.')
    lines.append('')
    lines.append('| service.operation | ' + ' | '.join(f'({k})' for k in keys) + ' | max (b) |')
    lines.append('|---|' + '--:|' * (len(keys) + 1))
    for op, per, bmax in table:
        lines.append(f"| {op} | " + ' | '.join(f'{per.get(k, 0):.2f}' for k in keys)
                     + f' | {bmax} |')
    return '\n'.join(lines) + '\n'


def render_memory(rows, args, load):
    lines = [f"Command: `{' '.join(args)}`  ",
             f"Machine: {os.cpu_count()} cores; load average before the runs: {load}.", '',
             '| path | accounts | account-regions | peak RSS (MB) '
             '| client CPU per account-region (s) | wall (s) |',
             '|---|--:|--:|--:|--:|--:|']
    for r in rows:
        lines.append(f"| {r['path']} | {r['n']} | {r['ars']} | {r['rss']:.0f} | "
                     f"{r['cpu_ar']:.2f} | {r['wall']:.1f} |")
    return '\n'.join(lines) + '\n'


def write_docs(path, marker, text):
    """Replace the text between <!-- bench:MARKER --> and <!-- /bench:MARKER --> in ``path``."""
    with open(path) as fh:
        doc = fh.read()
    start, end = f'<!-- bench:{marker} -->', f'<!-- /bench:{marker} -->'
    if start not in doc or end not in doc:
        raise SystemExit(f"{path}: no {start} ... {end} section to write the figures into")
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    with open(path, 'w') as fh:
        fh.write(head + start + '\n' + text + end + tail)


def load_average():
    try:
        return ', '.join(f'{x:.2f}' for x in os.getloadavg())
    except OSError:
        return 'unknown'


def main(argv=None):
    parser = argparse.ArgumentParser(prog='bench/sweep.py', description=__doc__.split('\n')[0])
    parser.add_argument('-n', '--accounts', type=int, default=10)
    parser.add_argument('-r', '--regions', type=int, default=4,
                        help=f'the first R of {", ".join(REGIONS)}')
    parser.add_argument('--workers', type=int, default=4, help='C7N_ORG_PARALLEL (default 4)')
    parser.add_argument('--memory', default='',
                        help='N1,N2: peak RSS of c7n-org at N1 and N2 accounts (both paths)')
    parser.add_argument('--out', default=os.path.join(REPO, 'bench-output'))
    parser.add_argument('--docs', default='', help='write the figures into this Markdown file')
    args = parser.parse_args(argv)
    if not 1 <= args.regions <= len(REGIONS):
        parser.error(f'-r takes 1 to {len(REGIONS)}')
    if args.accounts < 1:
        parser.error('-n takes at least 1')
    command = ['python', 'bench/sweep.py'] + (argv if argv is not None else sys.argv[1:])
    regions = REGIONS[:args.regions]
    sizes = [int(x) for x in args.memory.split(',') if x] if args.memory else []
    n = max(sizes) if sizes else args.accounts
    started = time.time()
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    say(f"emulator starting; {n} accounts x {len(regions)} regions ({', '.join(regions)})")
    with Emulator(log_file=os.path.join(args.out, 'emulator.log')) as emu:
        accounts, ids, known, settings = seed(emu.url, n)
        say(f"seeded {n} accounts in {time.time() - started:.0f}s")
        bundle = os.path.join(args.out, 'detect.yml')
        subprocess.run([os.path.join(BIN, 'custodian-ext'), 'bundle',
                        os.path.join(REPO, 'policies', 'detect'), '-o', bundle], check=True,
                       cwd=REPO, stdout=subprocess.DEVNULL)
        load = load_average()
        if sizes:
            rows = []
            for size in sizes:
                names = list(ids)[:size]
                path = accounts_file(os.path.join(args.out, f'accounts-{size}.yml'), ids, known,
                                     settings, names)
                res = run_paths(emu.url, args.out, path, bundle, regions, args.workers,
                                label=f'-{size}', keys=MEMORY_PATHS)
                for key, title, *_ in PATHS:
                    if key not in res:
                        continue
                    m = res[key]['org']
                    ars = size * len(regions)
                    rows.append({'path': f'({key}) {title}', 'n': size, 'ars': ars,
                                 'rss': m['rss_mb'], 'cpu_ar': m['cpu'] / ars, 'wall': m['wall']})
            text = render_memory(rows, command, load)
            marker = 'memory'
        else:
            path = accounts_file(os.path.join(args.out, 'accounts.yml'), ids, known, settings)
            first = list(ids)[0]
            single_vars = dict(settings, known_users=known[first][0], known_roles=known[first][1])
            vars_path = os.path.join(args.out, 'vars-single.yml')
            with open(vars_path, 'w') as fh:
                yaml.safe_dump(single_vars, fh, sort_keys=False)
            res = run_paths(emu.url, args.out, path, bundle, regions, args.workers,
                            single=(accounts[0], vars_path))
            rows = summary_rows(res, n, len(regions))
            table = api_table(res, n, len(regions))
            text = render(rows, table, command, load, time.time() - started)
            marker = 'sweep'
            with open(os.path.join(args.out, 'results.json'), 'w') as fh:
                json.dump({'rows': rows, 'api': table}, fh, indent=1, default=str)
    sys.stdout.write('\n' + text)
    with open(os.path.join(args.out, f'{marker}.md'), 'w') as fh:
        fh.write(text)
    if args.docs:
        write_docs(args.docs, marker, text)
        say(f"figures written to {args.docs}")
    say(f"done in {time.time() - started:.0f}s; output in {args.out}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
