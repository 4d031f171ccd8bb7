"""Least privilege, proven: the pack's policies run as roles holding exactly the IAM policy
``custodian-ext permissions`` generates, on an emulator that enforces IAM.

One emulator process with IAM enforcement (custodian_ext_dev/emulator/iam_auth.py)
for the module: every account is seeded first, then enforcement is switched on,
and from then on every call is checked against its caller's policies.

- detect: the real ``custodian run`` of policies/detect, in three regions, on the
  compromised account of tests/least_privilege.py, as the generated role and as a
  role allowed everything: no errors, the same findings;
- respond: ``custodian run`` of policies/respond, acting (not a dry run: acting is
  the point), on two identical accounts (tests/least_privilege.py), one as
  each role: no errors, the same results per policy, action and status;
- recover: the same for policies/recover, acting on two identical accounts with a
  bucket, a volume and DB instances to restore;
- react: the pack's handler, from the function's zip as Lambda runs it, on AWS
  Health's notice, with the credentials of a role holding exactly
  ``custodian-ext permissions policies/react`` (the functions' execution role):
  it contains the key and reports it.
"""
import json
import os
from collections import Counter
from types import SimpleNamespace

import pytest

from custodian_ext.report import load_runs
from custodian_ext.report.loader import resource_id
from custodian_ext_dev.demo import story
from custodian_ext_dev.emulator import Emulator
from tests import least_privilege as lp
from tests.support import POLICIES, policy_vars, run_cli, run_lambda_handler, write_vars

pytestmark = pytest.mark.e2e

OWN = ('pack-', lp.OPERATOR)  # the test's own principals, whose activity the checks see


@pytest.fixture(scope='module')
def enforced(tmp_path_factory):
    log = tmp_path_factory.mktemp('iam-emulator') / 'emulator.log'
    with Emulator(log_file=str(log), iam_auth='inf') as emu:
        ns = SimpleNamespace(emulator=emu, tmp=tmp_path_factory.mktemp('least-privilege'))
        ns.detect = lp.compromised_world(emu)
        ns.respond = [lp.respond_world(emu) for _ in range(2)]
        ns.recover = [lp.recover_world(emu) for _ in range(2)]
        ns.react = lp.react_world(emu)
        emu.enforce_iam(0)
        yield ns


def generated(emulator, folder, vars_file=None):
    args = ['custodian-ext', 'permissions', os.path.join(POLICIES, folder)]
    if vars_file:
        args += ['--vars-file', str(vars_file)]
    return json.loads(run_cli(args, emulator.env(), check=0).stdout)


def outcome(run):
    if run.status != 'findings':
        return run.status, frozenset()
    ids = {resource_id(run.resource_type, r) for r in run.resources}
    ids = frozenset(i for i in ids if not i.startswith(OWN))
    return ('findings' if ids else 'clean'), ids


def runs_of(out):
    return {(r.policy, r.region): r for r in load_runs([str(out)])}


def errored(runs):
    return [(k, r.error) for k, r in runs.items() if r.status == 'errored']


def test_detect_sweep_as_the_generated_policy_finds_what_an_unrestricted_one_finds(enforced):
    w = enforced.detect
    w.role('pack-admin', lp.ADMIN_DOC)
    w.role('pack-detect', generated(enforced.emulator, 'detect'))
    variables = lp.world_vars(w)
    results = {}
    for role in ('pack-admin', 'pack-detect'):
        out = enforced.tmp / f'detect-{role}'
        proc = lp.sweep(w, role, str(out), variables, lp.SWEPT)
        runs = runs_of(out / 'out')
        assert proc.returncode == 0 and not errored(runs), (role, errored(runs),
                                                            proc.stderr[-3000:])
        results[role] = {k: outcome(r) for k, r in runs.items()}
    assert results['pack-detect'] == results['pack-admin']
    statuses = Counter(s for s, _ in results['pack-detect'].values())
    assert statuses['findings'] >= 60 and statuses['clean'] >= 40, statuses


def acting_run(w, role, folder, variables, out, regions):
    vars_file = write_vars(os.path.join(out, 'vars.yml'), variables)
    cmd = ['custodian', 'run', '-s', os.path.join(out, 'out'), '--cache-period', '0',
           '--vars-file', vars_file, os.path.join(POLICIES, folder)]
    for r in regions:
        cmd += ['-r', r]
    return run_cli(cmd, w.env(role), timeout=600)


def contained(out, emulator):
    """(policy, region, action, status) of every resource the run acted on, from the report."""
    report = os.path.join(out, 'report')
    run_cli(['custodian-ext', 'report', os.path.join(out, 'out'), '--format', 'json',
             '-o', report], emulator.env())
    with open(os.path.join(report, 'report.json')) as fh:
        doc = json.load(fh)
    return Counter((c['policy'], c['region'], c['action'], c['status'])
                   for c in doc['contained'])


def twin_runs(enforced, worlds, folder, variables_of, regions):
    """The folder's policies acting in two identical accounts: one as a role allowed
    everything, one as the generated policy. Their contained results."""
    results = {}
    for w, role in zip(worlds, ('pack-admin', f'pack-{folder}')):
        os.makedirs(enforced.tmp / f'{folder}-{role}', exist_ok=True)
        vars_file = write_vars(enforced.tmp / f'{folder}-{role}' / 'vars.yml', variables_of(w))
        doc = lp.ADMIN_DOC if role == 'pack-admin' else generated(
            enforced.emulator, folder, vars_file)
        w.role(role, doc)
        out = str(enforced.tmp / f'{folder}-{role}')
        proc = acting_run(w, role, folder, variables_of(w), out, regions)
        runs = runs_of(os.path.join(out, 'out'))
        assert proc.returncode == 0 and not errored(runs), (role, errored(runs),
                                                            proc.stderr[-3000:])
        assert not any(r.dryrun for r in runs.values())
        results[role] = contained(out, enforced.emulator)
    return results


def test_respond_acting_as_the_generated_policy_does_what_an_unrestricted_one_does(enforced):
    def variables(w):
        return story.demo_vars(w.start, incident_id='ir-2026-11',
                               evidence_bucket=w.bad['bucket'])
    results = twin_runs(enforced, enforced.respond, 'respond', variables,
                        ['us-east-1', 'eu-north-1'])
    assert results['pack-respond'] == results['pack-admin']
    done = Counter(p for (p, _, _, status), n in results['pack-respond'].items()
                   if status == 'done' for _ in range(n))
    # every respond policy that had something to contain contained it
    assert {'x1-deactivate-quarantined-keys', 'x3-delete-unknown-users',
            'x5-revoke-role-sessions', 'x7-snapshot-then-terminate',
            'x7-snapshot-then-stop-outside-allowed-regions', 'r2-1-restart-stopped-trails',
            'r4-2-unshare-ebs-snapshots'} <= set(done), done


def test_recover_acting_as_the_generated_policy_does_what_an_unrestricted_one_does(enforced):
    def variables(w):
        return story.demo_vars(w.start, incident_id='ir-2026-11',
                               restore_pitr_margin_minutes=0)
    results = twin_runs(enforced, enforced.recover, 'recover', variables, ['us-east-1'])
    assert results['pack-recover'] == results['pack-admin']
    done = {p for (p, _, _, status) in results['pack-recover'] if status == 'done'}
    assert done == {'x8-s3-restore-object-versions', 'x8-ebs-restore-from-snapshot',
                    'x8-rds-restore-from-backup'}, results['pack-recover']


def test_react_function_contains_a_reported_key_as_its_generated_execution_role(
        enforced, tmp_path):
    w = enforced.react
    values = policy_vars(notify_transport={'type': 'sns', 'topic': w.bad['topic']},
                         notify_to=['security@example.com'], react_output=w.bad['output'])
    vars_file = write_vars(tmp_path / 'vars.yml', values)
    doc = generated(enforced.emulator, 'react', vars_file)
    w.role('pack-react', doc)
    leaked, other = w.bad['keys']
    event = lp.react_notice('health-exposed-key.json', w.account.id, leaked)
    policy = lp.deployed_policy(w.account.id, values, 'x1-react-health-exposed-key')
    archive = policy.get_execution_mode().policy_lambda(policy).get_archive()
    run_lambda_handler(archive.get_bytes(), event, w.env('pack-react'), tmp_path)

    iam = w.operator_client('iam')
    keys = {k['AccessKeyId']: k['Status']
            for k in iam.list_access_keys(UserName='deploy-bot')['AccessKeyMetadata']}
    assert keys == {leaked: 'Inactive', other: 'Active'}
    assert 'AWSRevokeOlderSessions' in iam.list_role_policies(
        RoleName='ci-deployer')['PolicyNames']
    sqs = w.operator_client('sqs')
    assert sqs.receive_message(QueueUrl=w.bad['queue']).get('Messages'), 'no notification'
    bucket = w.bad['output'][5:].split('/', 1)[0]
    written = [o['Key'] for o in w.operator_client('s3').list_objects_v2(
        Bucket=bucket).get('Contents', ())]
    assert any(k.endswith(f"notice-{event['id']}.json.gz") for k in written), written
