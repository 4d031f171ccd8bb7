"""Respond under stress through the real `custodian run` (issue #15, item 5).

- SIGTERM and SIGINT in the middle of a run: the resource at hand is finished,
  the others are untouched and recorded so, the run exits non-zero, and the
  next run finishes the job; a third changes nothing.
- SIGKILL: nothing can be deferred. The results of the resources finished
  before are on disk (whole), the killed run's claim keeps another run off the
  resource it held until the lease ends, then the next run finishes the job
  without acting twice on anything.
- Two runs at once, on the same resources: each resource is acted on by one
  of them only (``custodian_ext.actions.claims``).

To signal a run between its resources, some calls are slowed down in the
child process (``CUSTODIAN_TEST_SLOW_CALLS``, tests/support_site/sitecustomize.py:
test tooling, not the pack). Counting "acted on" uses what AWS records: the
emulator's CloudTrail event history (custodian_ext_dev/emulator/event_history.py)
and the snapshots that exist.
"""
import json
import os
import signal
import subprocess
import time

import pytest

from custodian_ext.actions import claims
from custodian_ext_dev.demo import story
from custodian_ext_dev.emulator import AMI_X86
from tests.support import BIN, POLICIES, REPO, fast_client, quarantine_user, write_vars

pytestmark = pytest.mark.e2e

SITE = os.path.join(REPO, 'tests', 'support_site')
INCIDENT = 'inc-stress'
X1 = 'x1-deactivate-quarantined-keys'
X7 = 'x7-snapshot-then-stop-outside-allowed-regions'
FAR = 'eu-north-1'


def settings_file(tmp_path):
    return write_vars(tmp_path / 'vars.yml', story.demo_vars(
        '2026-11-28T09:30:00Z', allowed_regions=['us-east-1'], incident_id=INCIDENT,
        key_grace_days=7))


def start(account, tmp_path, out, policy_file, region, slow='', lease=None):
    env = dict(account.env)
    env['PYTHONPATH'] = os.pathsep.join([SITE, REPO])
    if slow:
        env['CUSTODIAN_TEST_SLOW_CALLS'] = slow
    if lease:
        env['CUSTODIAN_EXT_CLAIM_LEASE'] = str(lease)
    cmd = [os.path.join(BIN, 'custodian'), 'run', '-s', str(out), '--cache-period', '0',
           '--vars-file', settings_file(tmp_path), os.path.join(POLICIES, 'respond', policy_file),
           '-r', region]
    if region != 'us-east-1':
        cmd += ['-r', 'us-east-1']  # global_region, as the pack requires
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def results_file(out, policy, action, region=None):
    folder = os.path.join(str(out), region, policy) if region else os.path.join(str(out), policy)
    return os.path.join(folder, f'action-results-{action}.json')


def read_results(path):
    try:
        with open(path) as fh:
            return {r['resource_id']: r for r in json.load(fh)}
    except FileNotFoundError:
        return {}


def wait_for(path, predicate, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = read_results(path)  # always whole JSON: written atomically
        if predicate(found):
            return found
        time.sleep(0.05)
    raise AssertionError(f'{path}: never satisfied')


def claimed(account):
    """The resources that respond runs hold claims on now (Parameter Store)."""
    ssm = fast_client(account, 'ssm')
    return [json.loads(p['Value']).get('resource')
            for page in ssm.get_paginator('get_parameters_by_path').paginate(
                Path=claims.PREFIX, Recursive=True)
            for p in page['Parameters']]


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def key_events(account):
    """{access key id: UpdateAccessKey calls}, from the emulator's CloudTrail event history."""
    ct = fast_client(account, 'cloudtrail')
    counts = {}
    for page in ct.get_paginator('lookup_events').paginate(LookupAttributes=[
            {'AttributeKey': 'EventName', 'AttributeValue': 'UpdateAccessKey'}]):
        for e in page['Events']:
            kid = json.loads(e['CloudTrailEvent'])['requestParameters']['accessKeyId']
            counts[kid] = counts.get(kid, 0) + 1
    return counts


def quarantined(account, n):
    users = [f'leaky-{i}' for i in range(n)]
    for u in users:
        quarantine_user(account, u)
    iam = fast_client(account, 'iam')
    return {u: iam.list_access_keys(UserName=u)['AccessKeyMetadata'][0]['AccessKeyId']
            for u in users}


def key_state(account, user):
    iam = fast_client(account, 'iam')
    [key] = iam.list_access_keys(UserName=user)['AccessKeyMetadata']
    tags = {t['Key']: t['Value'] for t in iam.list_user_tags(UserName=user)['Tags']}
    return key['Status'], 'custodian-ext:x1-deactivated-keys' in tags


def far_instances(account, n):
    ec2 = fast_client(account, 'ec2', FAR)
    return [i['InstanceId'] for i in ec2.run_instances(
        ImageId=AMI_X86, MinCount=n, MaxCount=n,
        BlockDeviceMappings=[{'DeviceName': '/dev/xvda', 'Ebs': {'VolumeSize': 8}}])['Instances']]


def instance_state(account, iid):
    ec2 = fast_client(account, 'ec2', FAR)
    [i] = ec2.describe_instances(InstanceIds=[iid])['Reservations'][0]['Instances']
    snaps = ec2.describe_snapshots(OwnerIds=['self'], Filters=[
        {'Name': 'tag:custodian-ext:instance-id', 'Values': [iid]}])['Snapshots']
    groups = {g['GroupName'] for e in i['NetworkInterfaces'] for g in e['Groups']}
    return i['State']['Name'], len(snaps), groups == {f'custodian-ext-forensic-{INCIDENT}'}


def test_sigterm_finishes_the_user_at_hand_and_a_rerun_finishes_the_job(account, tmp_path):
    keys = quarantined(account, 4)
    out = tmp_path / 'first'
    proc = start(account, tmp_path, out, 'x1.yml', 'us-east-1', slow='UpdateAccessKey=1.0')
    path = results_file(out, X1, 'deactivate-access-keys')
    wait_for(path, lambda r: len(r) >= 1)
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert code == 143, err[-3000:]
    assert 'SIGTERM received: finishing' in err and 'run the policy again to finish' in err
    recorded = read_results(path)
    done = {u for u, r in recorded.items() if r['status'] == 'done'}
    untouched = {u for u, r in recorded.items() if r['reason'].startswith('untouched')}
    assert done and untouched and done | untouched == set(keys), recorded
    for user in keys:  # each user fully handled or untouched, never in between
        assert key_state(account, user) == (('Inactive', True) if user in done
                                             else ('Active', False))
    # the rerun finishes; a third run changes nothing
    rerun = start(account, tmp_path, tmp_path / 'rerun', 'x1.yml', 'us-east-1')
    assert finish(rerun)[0] == 0
    assert {u: key_state(account, u) for u in keys} == {u: ('Inactive', True) for u in keys}
    third = start(account, tmp_path, tmp_path / 'third', 'x1.yml', 'us-east-1')
    assert finish(third)[0] == 0
    assert key_events(account) == {k: 1 for k in keys.values()}  # each key deactivated once


def test_sigint_finishes_the_instances_started_and_leaves_the_others_untouched(
        account, tmp_path):
    iids = far_instances(account, 4)
    out = tmp_path / 'first'
    proc = start(account, tmp_path, out, 'x7.yml', FAR, slow='CreateSnapshots=1.0')
    path = results_file(out, X7, 'snapshot-before-terminate', FAR)
    wait_for(path, lambda r: len(r) >= 1)
    proc.send_signal(signal.SIGINT)
    code, err = finish(proc)
    assert code != 0, err[-3000:]
    recorded = read_results(path)
    done = {i for i, r in recorded.items() if r['status'] == 'done'}
    untouched = {i for i, r in recorded.items() if r['reason'].startswith('untouched')}
    assert done and untouched and done | untouched == set(iids), recorded
    for iid in iids:
        assert instance_state(account, iid) == (('stopped', 1, True) if iid in done
                                                else ('running', 0, False))
    rerun = start(account, tmp_path, tmp_path / 'rerun', 'x7.yml', FAR)
    assert finish(rerun)[0] == 0
    assert {i: instance_state(account, i) for i in iids} == {i: ('stopped', 1, True)
                                                              for i in iids}


def test_sigkill_keeps_finished_results_and_the_lease_then_a_rerun_finishes(
        account, tmp_path):
    keys = quarantined(account, 4)
    out = tmp_path / 'killed'
    proc = start(account, tmp_path, out, 'x1.yml', 'us-east-1', slow='UpdateAccessKey=1.5',
                 lease=8)
    path = results_file(out, X1, 'deactivate-access-keys')
    # kill while the run holds a claim on a user it has not finished: the file
    # is written after a user's claim is released, so its length alone can land
    # the kill between two users, when nothing is held
    before = wait_for(path, lambda r: len(r) >= 1 and set(claimed(account)) - set(r))
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    killed_at = time.time()
    held_at_kill = set(claimed(account))
    assert held_at_kill, 'the killed run held no claim'
    after = read_results(path)  # whole JSON, the users finished before the kill
    assert after and all(r['status'] == 'done' for r in after.values()), after
    assert set(before) <= set(after)
    # a run inside the lease leaves the user the killed run held, and says until when
    soon = start(account, tmp_path, tmp_path / 'soon', 'x1.yml', 'us-east-1', lease=8)
    code, err = finish(soon)
    held = {u: r for u, r in read_results(results_file(tmp_path / 'soon', X1,
                                                        'deactivate-access-keys')).items()
            if 'claimed by another run' in r['reason']}
    if time.time() - killed_at < 8:
        assert set(held) == held_at_kill, read_results(results_file(tmp_path / 'soon', X1,
                                                                    'deactivate-access-keys'))
    time.sleep(max(0.0, killed_at + 9 - time.time()))
    late = start(account, tmp_path, tmp_path / 'late', 'x1.yml', 'us-east-1', lease=8)
    assert finish(late)[0] == 0
    assert {u: key_state(account, u) for u in keys} == {u: ('Inactive', True) for u in keys}
    assert key_events(account) == {k: 1 for k in keys.values()}


def test_two_runs_at_once_never_act_twice_on_one_resource(account, tmp_path):
    keys = quarantined(account, 6)
    iids = far_instances(account, 6)
    runs = [start(account, tmp_path, tmp_path / f'run{i}', f, region, slow=slow)
            for i in (1, 2)
            for f, region, slow in (('x1.yml', 'us-east-1', 'UpdateAccessKey=0.5'),
                                    ('x7.yml', FAR, 'CreateSnapshots=0.5'))]
    ended = [finish(p) for p in runs]
    assert [code for code, _ in ended] == [0, 0, 0, 0], [
        [ln[-400:] for ln in err.splitlines() if 'PolicyExecutionError' in ln] for _, err in ended]
    # keys: each deactivated by exactly one run; the other run skipped it, saying why
    assert key_events(account) == {k: 1 for k in keys.values()}
    x1 = [read_results(results_file(tmp_path / f'run{i}', X1, 'deactivate-access-keys'))
          for i in (1, 2)]
    for user in keys:
        statuses = sorted(r[user]['status'] for r in x1 if user in r)
        assert statuses.count('done') == 1, (user, x1)
    # the runs did overlap: both listed a user, and one of them was kept off it
    assert any(user in x1[0] and user in x1[1] for user in keys), x1
    # instances: one set of snapshots each, stopped once
    for iid in iids:
        assert instance_state(account, iid) == ('stopped', 1, True)
    x7 = [read_results(results_file(tmp_path / f'run{i}', X7, 'snapshot-before-terminate', FAR))
          for i in (1, 2)]
    for iid in iids:
        assert sum(1 for r in x7 if r.get(iid, {}).get('status') == 'done') == 1, (iid, x7)
    assert any(iid in x7[0] and iid in x7[1] for iid in iids), x7
