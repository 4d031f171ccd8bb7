"""Benchmark: the activity review's trail-log reader, and a sweep with activity review.

    .venv/bin/python bench/trail_logs.py                       # N=20 log files, then 10N
    .venv/bin/python bench/trail_logs.py -n 40 --records 500
    .venv/bin/python bench/trail_logs.py --docs docs/performance.md   # also write the figures

It starts the local emulator (moto, loopback only) and measures, in one run:

1. Memory of the trail-log reader (``custodian_ext.activity.sources.TrailLogs``):
   N and then 10N gzip log files of ``--records`` CloudTrail records each, in
   AWS's layout, in one account's trail bucket, read the way the review reads
   them (list the window's day prefixes, stream each object, keep the records of
   one suspect key). Peak Python memory (``tracemalloc``) of each read, and the
   ratio: it must not grow with the number of files. Then one log file of 10x
   the records, streamed, against the obvious ``json.loads(gzip.decompress(...))``.
2. A sweep with activity review: the three activity policies
   (policies/detect/r2-2-activity.yml, x1-activity.yml) through the stock
   ``custodian run``, over an account attacked as in issue #14
   (tests/attack_replay.py), in R regions, once with ``source: event-history``
   and once with ``source: trail-logs``: wall time, client CPU, API calls by
   operation (counted by the emulator), and whether both found the same events.

Benchmarks print figures; the tests assert correctness.
"""
import argparse
import datetime
import gc
import gzip
import io
import json
import os
import resource
import sys
import time
import tracemalloc
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import yaml  # noqa: E402

from custodian_ext_dev.emulator import Emulator, calls  # noqa: E402

ACCOUNT_REGION = 'us-east-1'
SUSPECT = 'AKIAEXAMPLESUSPECT01'
MARK = ('<!-- bench:activity -->', '<!-- /bench:activity -->')


def say(msg):
    sys.stdout.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stdout.flush()


def record(account, region, when, i):
    """One realistic management event (about 1.5 kB of JSON)."""
    key = SUSPECT if i % 97 == 0 else f'ASIAEXAMPLE{i % 1000:09d}'
    return {
        'eventVersion': '1.09', 'eventID': str(uuid.uuid4()), 'requestID': str(uuid.uuid4()),
        'eventTime': when.strftime('%Y-%m-%dT%H:%M:%SZ'), 'eventSource': 'ec2.amazonaws.com',
        'eventName': 'DescribeInstances', 'awsRegion': region, 'readOnly': True,
        'sourceIPAddress': '198.51.100.7', 'eventType': 'AwsApiCall', 'managementEvent': True,
        'recipientAccountId': account, 'eventCategory': 'Management',
        'userAgent': 'aws-cli/2.15.30 Python/3.11.8 Linux/6.6.9 exe/x86_64 prompt/off '
                     'command/ec2.describe-instances',
        'userIdentity': {
            'type': 'AssumedRole', 'principalId': f'AROAEXAMPLE:{i}', 'accountId': account,
            'arn': f'arn:aws:sts::{account}:assumed-role/app-role/i-{i:017x}',
            'accessKeyId': key, 'sessionContext': {
                'sessionIssuer': {'type': 'Role', 'principalId': 'AROAEXAMPLE',
                                  'arn': f'arn:aws:iam::{account}:role/app-role',
                                  'accountId': account, 'userName': 'app-role'},
                'attributes': {'creationDate': when.strftime('%Y-%m-%dT%H:%M:%SZ'),
                               'mfaAuthenticated': 'false'}}},
        'requestParameters': {'instancesSet': {'items': [{'instanceId': f'i-{i:017x}'}]},
                              'filterSet': {'items': [{
                                  'name': 'tag:Name', 'valueSet': {'items': [{'value': 'web'}]}}]}},
        'responseElements': None,
        'tlsDetails': {'tlsVersion': 'TLSv1.3', 'cipherSuite': 'TLS_AES_128_GCM_SHA256',
                       'clientProvidedHostHeader': f'ec2.{region}.amazonaws.com'},
    }


def log_file(account, region, when, count, offset):
    body = json.dumps({'Records': [record(account, region, when, offset + i)
                                   for i in range(count)]}).encode()
    return gzip.compress(body)


def put_logs(s3, bucket, account, start, files, records, first=0):
    """``files`` log files from ``start`` on, 5 minutes apart, over the window's days."""
    from custodian_ext_dev.emulator.trail_logs import object_key
    for n in range(first, first + files):
        when = start + datetime.timedelta(minutes=5 * n)
        key = object_key('audit', account, ACCOUNT_REGION, when)
        s3.put_object(Bucket=bucket, Key=key, Body=log_file(account, ACCOUNT_REGION, when,
                                                            records, n * records))


class _Clients:
    """A session whose S3 client is built once, outside the measured reads."""

    def __init__(self, client):
        self.s3 = client

    def client(self, service, region_name=None):
        return self.s3


def read_all(session, account, bucket, window):
    from custodian_ext.activity import sources
    trail = sources.Trail(name='bench', arn='bench', bucket=bucket, prefix='audit',
                          home_region=ACCOUNT_REGION, organization=False)
    logs = sources.TrailLogs(session, account, trail, window, lambda f, **kw: f(**kw))
    query = sources.Query(keys=frozenset({SUSPECT}))
    found = sum(1 for _ in logs.read(ACCOUNT_REGION, query))
    return found, logs.objects, logs.bytes


def measure(fn):
    """(fn's result, peak Python memory allocated while it ran, seconds)."""
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        result = fn()
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak, elapsed


def memory(url, n, records):
    from tests.support import new_account
    account = new_account(url)
    session = account.session()
    s3 = session.client('s3')
    bucket = f'bench-trail-{account.id}'
    s3.create_bucket(Bucket=bucket)
    from custodian_ext.activity.sources import Window
    now = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
    start = now - datetime.timedelta(minutes=5 * 10 * n + 10)
    window = Window(start, now)
    rows = []
    reader = _Clients(session.client('s3', region_name=ACCOUNT_REGION))
    put_logs(s3, bucket, account.id, start, n, records)
    (found, objects, size), peak, elapsed = measure(
        lambda: read_all(reader, account.id, bucket, window))
    rows.append(('N', objects, found, size, peak, elapsed))
    put_logs(s3, bucket, account.id, start, 9 * n, records, first=n)
    (found, objects, size), peak, elapsed = measure(
        lambda: read_all(reader, account.id, bucket, window))
    rows.append(('10N', objects, found, size, peak, elapsed))
    # one big file: streamed, against reading it whole
    from custodian_ext.activity import logfile
    big = log_file(account.id, ACCOUNT_REGION, now, 10 * records, 0)
    _, streamed, _ = measure(lambda: sum(1 for _ in logfile.records(io.BytesIO(big))))
    _, whole, _ = measure(lambda: len(json.loads(gzip.decompress(big))['Records']))
    return rows, (10 * records, len(big), streamed, whole)


def activity_sweep(url, regions, tmp):
    """The activity policies through `custodian run`, per source: figures and event ids."""
    from custodian_ext_dev.emulator import DEFAULT_ACCOUNT, trail_logs
    from tests.attack_replay import seed_attacked
    from tests.support import POLICIES, new_account, policy_vars, write_vars
    account = new_account(url)
    info = seed_attacked(account)
    trail_logs.deliver_now(url, account.id)
    values = policy_vars(incident_start=info['start'], trusted_accounts=[DEFAULT_ACCOUNT],
                         known_users=['alice', 'deploy-bot'],
                         known_roles=['OrganizationAccountAccessRole'])
    vars_file = write_vars(os.path.join(tmp, 'vars.yml'), values)
    out = {}
    for source in ('event-history', 'trail-logs'):
        folder = os.path.join(tmp, source)
        os.makedirs(folder, exist_ok=True)
        for name in ('r2-2-activity.yml', 'x1-activity.yml'):
            with open(os.path.join(POLICIES, 'detect', name)) as fh:
                doc = yaml.safe_load(fh)
            for p in doc['policies']:
                p['filters'][0]['source'] = source
            with open(os.path.join(folder, name), 'w') as fh:
                yaml.safe_dump(doc, fh)
        cmd = [os.path.join(os.path.dirname(sys.executable), 'custodian'), 'run', '-s',
               os.path.join(tmp, f'out-{source}'), '--cache-period', '0', '--vars-file',
               vars_file, folder]
        for r in regions:
            cmd += ['-r', r]
        import subprocess
        calls.start(url)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=dict(account.env), capture_output=True, text=True,
                              timeout=1800, check=False)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        counted = [c for c in calls.fetch(url) if c['account'] == account.id]
        ops = {}
        for c in counted:
            k = f"{c['service']}.{c['operation']}"
            ops[k] = ops.get(k, 0) + c['served']
        events = set()
        for r in regions:
            path = os.path.join(tmp, f'out-{source}', r, 'x1-leaked-key-activity',
                                'resources.json')
            with open(path) as fh:
                for res in json.load(fh):
                    events |= {e['EventId'] for e in res['c7n:activity']
                               if e['EventSource'] != 's3.amazonaws.com'}
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        out[source] = {'wall': wall, 'cpu': cpu, 'ops': ops, 'events': events}
    return out


def render(args, rows, big, sweep, regions, elapsed, load):
    n, n10 = rows
    lines = [MARK[0],
             (f'Command: `python bench/trail_logs.py -n {args.n} --records {args.records} '
              f'--docs docs/performance.md`  '),
             (f'Machine: {os.cpu_count()} cores; load average before the runs: '
              f"{', '.join(f'{x:.2f}' for x in load)}; whole benchmark {elapsed:.0f}s."),
             '',
             ('Trail-log reader, one region, one suspect key (peak Python memory of the read, '
              '`tracemalloc`):'),
             '',
             '| log files | records | kept | compressed MB | peak memory (MB) | time (s) |',
             '|--:|--:|--:|--:|--:|--:|']
    for label, objects, found, size, peak, secs in rows:
        lines.append(f'| {objects} ({label}) | {objects * args.records} | {found} | '
                     f'{size / 1e6:.2f} | {peak / 1e6:.2f} | {secs:.1f} |')
    lines += ['', f'Peak memory at 10N / at N: **{n10[4] / n[4]:.2f}**.', '',
              (f'One log file of {big[0]} records ({big[1] / 1e6:.2f} MB compressed): '
               f'streamed {big[2] / 1e6:.2f} MB peak, read whole '
               f'(`json.loads(gzip.decompress(...))`) {big[3] / 1e6:.2f} MB.'),
              '',
              (f'Sweep with activity review: the three activity policies, `custodian run`, one '
               f'attacked account x {len(regions)} regions ({", ".join(regions)}):'),
              '',
              '| | event history | trail logs |', '|---|--:|--:|']
    eh, tl = sweep['event-history'], sweep['trail-logs']
    lines.append(f"| wall time (s) | {eh['wall']:.1f} | {tl['wall']:.1f} |")
    lines.append(f"| client CPU (s) | {eh['cpu']:.1f} | {tl['cpu']:.1f} |")
    for op in sorted(set(eh['ops']) | set(tl['ops'])):
        if op.startswith(('cloudtrail.', 's3.')) or op in ('iam.GetAccountAuthorizationDetails',):
            lines.append(f"| {op} | {eh['ops'].get(op, 0)} | {tl['ops'].get(op, 0)} |")
    lines.append(f"| all API calls | {sum(eh['ops'].values())} | {sum(tl['ops'].values())} |")
    same = 'yes' if eh['events'] == tl['events'] else 'NO'
    lines += [f"| x1 management events found | {len(eh['events'])} | {len(tl['events'])} |",
              f'| same event ids | {same} | |', MARK[1]]
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('-n', type=int, default=20, help='log files in the first read')
    parser.add_argument('--records', type=int, default=200, help='records per log file')
    parser.add_argument('-r', '--regions', default='us-east-1,us-west-2')
    parser.add_argument('--docs', help='write the figures into this Markdown file')
    args = parser.parse_args()
    started = time.time()
    load = os.getloadavg()
    regions = args.regions.split(',')
    import tempfile
    with Emulator(log_file=os.devnull) as emu, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(emu.env())
        say(f'reader memory: {args.n} then {10 * args.n} log files of {args.records} records')
        rows, big = memory(emu.url, args.n, args.records)
        for label, objects, found, size, peak, secs in rows:
            say(f'{label}: {objects} files, {size / 1e6:.2f} MB, kept {found}, '
                f'peak {peak / 1e6:.2f} MB, {secs:.1f}s')
        say(f'ratio 10N/N: {rows[1][4] / rows[0][4]:.2f}; one big file streamed '
            f'{big[2] / 1e6:.2f} MB, whole {big[3] / 1e6:.2f} MB')
        say('sweep with activity review, per source')
        sweep = activity_sweep(emu.url, regions, tmp)
        for source, s in sweep.items():
            say(f"{source}: wall {s['wall']:.1f}s, CPU {s['cpu']:.1f}s, "
                f"{sum(s['ops'].values())} calls, {len(s['events'])} events")
    text = render(args, rows, big, sweep, regions, time.time() - started, load)
    sys.stdout.write(text + '\n')
    if args.docs:
        with open(args.docs) as fh:
            doc = fh.read()
        if MARK[0] in doc:
            head, rest = doc.split(MARK[0], 1)
            doc = head + text + rest.split(MARK[1], 1)[1]
        else:
            doc = doc.rstrip('\n') + '\n\n' + text + '\n'
        with open(args.docs, 'w') as fh:
            fh.write(doc)
        say(f'figures written to {args.docs}')


if __name__ == '__main__':
    main()
