"""Record tests/data/report/org: real c7n-org output of the pack against the emulator.

    .venv/bin/python tests/data/generate_report_fixture.py

Two accounts (``prod``, compromised; ``dev``, clean) in two regions
(us-east-1, allowed; eu-north-1, not). The stock ``c7n-org run`` sweeps them
with the detect policies plus ``x6-lightsail-instances``, which errors in
eu-north-1 because the emulator has no Lightsail API (so the fixture has
errored runs, as a real sweep does when a service refuses). Global policies
are skipped outside us-east-1 and R3.3 inside it (skipped runs).

Then two respond runs, in-process through c7n-org's own ``run_account``
(the function its workers call), so that the output has what respond
policies leave: ``x1-deactivate-quarantined-keys`` for real, with a
fixture-only PackAction standing in for the respond engineer's action, and
``x7-snapshot-then-terminate`` in --dryrun with stock c7n actions.

The recorded tree is committed; re-record only when the output format
changes, then update the golden files (UPDATE_GOLDEN=1, see
tests/inprocess/test_report.py).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from custodian_ext_dev.emulator import AMI_X86, Emulator  # noqa: E402
from custodian_ext_dev.demo import story  # noqa: E402
from tests.support import BIN, POLICIES, new_account  # noqa: E402

DEST = os.path.join(REPO, 'tests', 'data', 'report', 'org')
PROD, DEV = '111111111111', '222222222222'
REGIONS = ['us-east-1', 'eu-north-1']

LIGHTSAIL = {
    'name': 'x6-lightsail-instances',
    'resource': 'aws.lightsail-instance',
    'description': 'A Lightsail instance outside the allowed regions.',
    'metadata': {'runbook': 'X6', 'severity': 'high', 'remediation': 'Find the owner.'},
    'tags': ['runbook:X6', 'severity:high', 'detect'],
    'conditions': [{'type': 'value', 'key': 'region', 'op': 'not-in',
                    'value': '{allowed_regions}'}],
}

RESPOND_X1 = {
    'name': 'x1-deactivate-quarantined-keys',
    'resource': 'aws.iam-user',
    'description': 'Deactivate the active keys of users AWS quarantined.',
    'metadata': {'runbook': 'X1'},
    'tags': ['runbook:X1', 'respond'],
    'conditions': [{'type': 'value', 'key': 'region', 'value': '{global_region}'}],
    'filters': [{'type': 'quarantine-marker'},
                {'type': 'access-key', 'key': 'Status', 'value': 'Active'}],
    'actions': [{'type': 'fixture-deactivate-keys'}],
}

RESPOND_X7 = {
    'name': 'x7-snapshot-then-terminate',
    'resource': 'aws.ec2',
    'description': ('Snapshot the volumes of instances outside the allowed regions, then '
                    'terminate them.'),
    'metadata': {'runbook': 'X7'},
    'tags': ['runbook:X7', 'respond'],
    'conditions': [{'type': 'value', 'key': 'region', 'op': 'not-in',
                    'value': '{allowed_regions}'}],
    'actions': ['snapshot', 'terminate'],
}


def register_standin_action():
    """Stands in for the pack's key-deactivation action (being written separately)."""
    from c7n.utils import local_session, type_schema
    from custodian_ext.actions.core import DONE, SKIPPED, PackAction, result
    from custodian_ext.registry import register

    class DeactivateKeys(PackAction):
        schema = type_schema('fixture-deactivate-keys')
        permissions = ('iam:UpdateAccessKey',)

        def process_resource(self, r):
            keys = [k['AccessKeyId'] for k in r.get('c7n:matched-keys', ())]
            if not keys:
                return result(r['UserName'], SKIPPED, 'no matched keys')
            iam = local_session(self.manager.session_factory).client('iam')
            for k in keys:
                iam.update_access_key(UserName=r['UserName'], AccessKeyId=k, Status='Inactive')
            return result(r['UserName'], DONE, '', access_keys=keys)

    register('action', 'fixture-deactivate-keys', DeactivateKeys, ['iam-user'])


def seed(emu):
    prod = new_account(emu.url, PROD)
    dev = new_account(emu.url, DEV)
    for acct in (prod, dev):
        story.seed_baseline(acct.url, acct.id)
    start = story.incident_boundary()
    iam = prod.client('iam')
    iam.attach_user_policy(UserName='deploy-bot',
                           PolicyArn='arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2')
    iam.create_access_key()  # root key: signed by the account itself
    far = prod.client('ec2', 'eu-north-1')
    ids = [i['InstanceId'] for i in far.run_instances(
        ImageId=AMI_X86, MinCount=2, MaxCount=2, InstanceType='p3.2xlarge')['Instances']]
    far.stop_instances(InstanceIds=ids[1:])
    dev.client('ec2', 'us-east-1').run_instances(
        ImageId=AMI_X86, MinCount=1, MaxCount=1, InstanceType='t3.small')
    return prod, dev, start


def detect_bundle(path):
    policies = []
    for name in sorted(os.listdir(os.path.join(POLICIES, 'detect'))):
        if name.endswith('.yml'):
            with open(os.path.join(POLICIES, 'detect', name)) as fh:
                policies.extend(yaml.safe_load(fh)['policies'])
    policies.append(LIGHTSAIL)
    with open(path, 'w') as fh:
        yaml.safe_dump({'policies': policies}, fh, sort_keys=False)


def main():
    work = tempfile.mkdtemp(prefix='report-fixture-')
    out = os.path.join(work, 'out')
    with Emulator(log_file=os.path.join(work, 'emulator.log')) as emu:
        prod, dev, start = seed(emu)
        variables = story.demo_vars(start)
        accounts = {'vars': variables, 'accounts': [
            {'name': name, 'account_id': a.id,
             'role': f'arn:aws:iam::{a.id}:role/OrganizationAccountAccessRole'}
            for name, a in (('prod', prod), ('dev', dev))]}
        with open(os.path.join(work, 'accounts.yml'), 'w') as fh:
            yaml.safe_dump(accounts, fh)
        detect_bundle(os.path.join(work, 'detect.yml'))
        env = emu.env()
        env['HOME'] = work
        cmd = [os.path.join(BIN, 'c7n-org'), 'run', '-c', os.path.join(work, 'accounts.yml'),
               '-u', os.path.join(work, 'detect.yml'), '-s', out, '--cache-period', '0']
        for r in REGIONS:
            cmd += ['-r', r]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        print(proc.stderr[-3000:])

        os.environ.update(env)
        import custodian_ext  # noqa: F401
        from c7n_org.cli import run_account
        register_standin_action()
        for a in accounts['accounts']:
            a['vars'] = variables
            for region in REGIONS:
                for policy, dryrun in ((RESPOND_X1, False), (RESPOND_X7, True)):
                    counts, ok = run_account(a, region, {'policies': [policy]}, out, 0, work,
                                             False, dryrun, False)
                    print(a['name'], region, policy['name'], counts, ok)
    # The recorded paths would name this temporary folder; name the fixture instead.
    for root, _, files in os.walk(out):
        for f in files:
            p = os.path.join(root, f)
            with open(p) as fh:
                text = fh.read()
            text = text.replace(work, '/tmp/report-fixture')
            with open(p, 'w') as fh:
                fh.write(text)
    if os.path.exists(DEST):
        shutil.rmtree(DEST)
    shutil.copytree(out, DEST)
    shutil.rmtree(work)
    print('recorded', DEST)
    print(json.dumps(sorted(os.listdir(os.path.join(DEST, 'prod', 'eu-north-1')))))


if __name__ == '__main__':
    main()
