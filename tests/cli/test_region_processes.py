"""Issue #17: ``custodian run`` shares its regions between processes
(``custodian_ext.region_processes``), and the run reads as one process's would.

The real ``custodian run`` of ``policies/detect`` over one compromised account in
three regions (``bench/faults.py``'s world), against the emulator process:

- shared between three processes, every policy in every region finds what one
  process finds;
- a policy that fails in another process is an error of the run, as in one process
  (every call denied: same statuses, same exit status);
- a process killed during the run (the kernel's out-of-memory killer, an operator)
  leaves no policy of its share unaccounted for: each is in the report as it finished,
  or errored with the reason, and the run exits 2.
"""
import os
import signal
import subprocess
import time

import pytest

from bench import faults as bench
from custodian_ext_dev.emulator import calls
from tests.support import BIN, POLICIES, REPO, write_vars

pytestmark = pytest.mark.e2e

REGIONS = bench.REGIONS  # us-east-1 (the global checks) and two others


@pytest.fixture(scope='module')
def world(emulator, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('processes')
    account, settings = bench.world(emulator.url)
    return {'url': emulator.url, 'account': account, 'tmp': tmp,
            'vars': write_vars(str(tmp / 'vars.yml'), settings)}


def command(world, out, verbose=False):
    cmd = [os.path.join(BIN, 'custodian'), 'run', '-s', str(out), '--cache-period', '0',
           '--vars-file', world['vars'], os.path.join(POLICIES, 'detect')]
    for r in REGIONS:
        cmd += ['-r', r]
    return cmd + (['-v'] if verbose else [])


def environment(world, processes):
    return dict(world['account'].env, CUSTODIAN_EXT_PROCESSES=str(processes))


def sweep(world, name, processes):
    out = world['tmp'] / name
    proc = subprocess.run(command(world, out, verbose=True), env=environment(world, processes),
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    return proc, report(world, out)


def report(world, out):
    proc = subprocess.run([os.path.join(BIN, 'custodian-ext'), 'report', str(out),
                           '--format', 'json', '-o', '-'], env=world['account'].env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    import json
    assert proc.stdout.strip().startswith('{'), proc.stderr[-2000:]
    return {'exit': proc.returncode, 'checks': bench.checks(json.loads(proc.stdout))}


@pytest.fixture(scope='module')
def one(world):
    return sweep(world, 'one', 1)


def test_three_processes_find_what_one_finds(world, one):
    proc, shared = sweep(world, 'three', 3)
    assert proc.returncode == one[0].returncode == 0, proc.stderr[-4000:]
    # the run was shared: one region per process, the first keeping the global checks'
    shared_line = [ln for ln in proc.stderr.splitlines() if 'regions shared between' in ln]
    assert len(shared_line) == 1, proc.stderr[-3000:]
    assert shared_line[0].endswith("3 processes: [['us-east-1'], ['eu-north-1'], "
                                   "['us-west-2']]"), shared_line
    assert shared == one[1]
    statuses = [c['status'] for c in shared['checks'].values()]
    assert statuses.count('findings') >= 15 and 'errored' not in statuses
    assert {region for _, region in shared['checks']} == set(REGIONS)


def test_a_policy_failing_in_another_process_fails_the_run_as_in_one(world):
    """Every policy call denied (``denied`` faults at rate 1: AWS's access-denied answer of
    each protocol): one process and two report the same errored checks, exit the same."""
    results = {}
    for n in (1, 2):
        calls.inject_faults(world['url'], seed=1, rate=1.0, kinds={'denied': 1})
        try:
            results[n] = sweep(world, f'denied-{n}', n)
        finally:
            calls.inject_faults(world['url'], seed=0, rate=0)
    (proc1, rep1), (proc2, rep2) = results[1], results[2]
    assert proc2.returncode == proc1.returncode == 2
    assert rep2['exit'] == rep1['exit'] == 2
    assert {k: v['status'] for k, v in rep2['checks'].items()} == \
        {k: v['status'] for k, v in rep1['checks'].items()}
    errored = [k for k, v in rep2['checks'].items() if v['status'] == 'errored']
    assert {region for _, region in errored} == set(REGIONS)
    # the other process's errors reach the first one's log, with their cause
    assert 'failed in the process running' in proc2.stderr
    assert 'AccessDenied' in proc2.stderr or 'UnauthorizedOperation' in proc2.stderr


def child_of(pid, deadline):
    while time.time() < deadline:
        try:
            found = []
            for task in os.listdir(f'/proc/{pid}/task'):
                with open(f'/proc/{pid}/task/{task}/children') as fh:
                    found += fh.read().split()
        except OSError:
            return None
        if found:
            return int(found[0])
        time.sleep(0.05)
    return None


def test_a_killed_process_leaves_no_policy_unaccounted_for(world, one):
    # at AWS's latency (and CloudTrail's 2 requests per second) the run lasts long enough
    # to kill the second process in the middle of its share
    calls.set_latency(world['url'], seed=3, scale=1.0, rate_limits=True)
    out = world['tmp'] / 'killed'
    try:
        proc = subprocess.Popen(command(world, out), env=environment(world, 2), cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        child = child_of(proc.pid, time.time() + 60)
        assert child is not None, 'custodian run started no second process'
        time.sleep(1.0)
        os.kill(child, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=600)
    finally:
        calls.set_latency(world['url'], on=False)
    assert proc.returncode == 2, stderr[-4000:]
    assert 'was killed by SIGKILL' in stderr
    killed = report(world, out)
    assert killed['exit'] == 2
    # every check of the one-process run is in the report: as it was, or errored
    assert set(killed['checks']) == set(one[1]['checks'])
    lost = [k for k, v in killed['checks'].items()
            if v['status'] == 'errored' and 'was killed by SIGKILL' in v['error']]
    assert lost, 'the kill came after the second process had finished'
    for key, check in killed['checks'].items():
        if check['status'] != 'errored':
            assert check == one[1]['checks'][key], key
    # the first process's regions are untouched; the lost policies are the second's
    assert {region for _, region in lost} <= set(REGIONS) - {'us-east-1'}
    assert all(v['status'] != 'errored' for (_, region), v in killed['checks'].items()
               if region == 'us-east-1')


def test_a_bad_setting_stops_the_run_with_one_line(world):
    out = world['tmp'] / 'bad-setting'
    proc = subprocess.run(command(world, out), env=environment(world, 'two'), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    said = ("custodian: error: CUSTODIAN_EXT_PROCESSES='two': give the number of processes a "
            "custodian run shares its regions between, 1 (one process) to 64")
    # the one error, last; before it only c7n's own warnings as it loads the policies
    assert lines[-1] == said, proc.stderr[-2000:]
    assert all(':WARNING ' in ln for ln in lines[:-1]), lines
    assert 'Traceback' not in proc.stderr
    assert not os.path.exists(out) or not any(os.scandir(out))  # no policy ran
