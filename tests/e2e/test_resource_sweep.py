"""The resource checks (R3.3, X6, X8, R4.2 shares) through the stock `custodian run`.

Two sweeps of three regions (two allowed, one unused), each running every
policy in r3-3.yml, x6.yml, x8.yml and r4-2-shares.yml:

- a clean, busy account (tests/seed_resources.py ``seed_clean``: default
  VPCs and security groups in every region, instances, volumes, snapshots,
  AMIs, functions, buckets, RDS, all older than incident_start, shares only
  with trusted_accounts): no high or critical finding, nothing errored;
- the same plus what an attacker leaves (``seed_attack``): many findings,
  each where it belongs.

Emulator extensions used: ECS createdAt, Lambda LastModified and foreign
layers, Route 53 Domains tags, Lightsail (custodian_ext/emulator/extensions.py).
"""
import os
from collections import defaultdict

import pytest

from custodian_ext.demo import story
from custodian_ext.report import findings, load_runs
from custodian_ext.report.reasons import reasons
from tests import seed_resources as seed
from tests.support import POLICIES, run_cli, write_vars

pytestmark = pytest.mark.e2e

FILES = [os.path.join(POLICIES, 'detect', f)
         for f in ('r3-3.yml', 'x6.yml', 'x8.yml', 'r4-2-shares.yml')]


def sweep(account, tmp_path, incident_start):
    vars_file = write_vars(tmp_path / 'vars.yml', story.demo_vars(
        incident_start, allowed_regions=seed.ALLOWED, trusted_accounts=[seed.TRUSTED]))
    cmd = ['custodian', 'run', '-s', str(tmp_path / 'out'), '--cache-period', '0',
           '--vars-file', vars_file] + FILES
    for r in seed.SWEPT:
        cmd += ['-r', r]
    proc = run_cli(cmd, account.env, check=0)
    runs = load_runs([str(tmp_path / 'out')])
    errored = [(r.policy, r.region, r.error) for r in runs if r.status == 'errored']
    assert not errored, (errored, proc.stderr[-3000:])
    return runs


def by_policy(runs):
    out = defaultdict(list)
    for f in findings(runs):
        out[f.run.policy].append(f)
    return out


def test_clean_busy_account_has_no_high_or_critical_findings(account, tmp_path):
    seed.seed_clean(account)
    start = story.incident_boundary()
    runs = sweep(account, tmp_path, start)
    serious = [(f.run.policy, f.run.region, f.resource_id) for f in findings(runs)
               if f.severity in ('critical', 'high')]
    assert serious == []
    medium = [(f.run.policy, f.resource_id) for f in findings(runs) if f.severity == 'medium']
    assert medium == []
    # Readiness findings are expected in a real account: volumes nobody snapshots.
    low = by_policy(runs)
    assert {f.run.policy for fs in low.values() for f in fs} == {'x8-ebs-volumes-without-snapshot'}
    status = {(r.policy, r.region): r.status for r in runs}
    # R3.3 ran in the unused region and was skipped, without a call, in the allowed ones.
    assert status[('r3-3-ec2-outside-allowed-regions', seed.UNUSED)] == 'clean'
    assert status[('r3-3-lambda-functions-outside-allowed-regions', 'us-west-2')] == 'skipped'
    # global services once, in global_region
    assert status[('x6-new-route53-domains', 'us-east-1')] == 'clean'
    assert status.get(('x6-new-route53-domains', seed.UNUSED), 'skipped') == 'skipped'
    assert status[('x8-s3-buckets-without-versioning', 'us-west-2')] == 'skipped'


def test_compromised_account_trips_the_resource_checks(compromised_world, tmp_path):
    w = compromised_world
    bad = w.bad
    runs = sweep(w.account, tmp_path, w.start)
    found = by_policy(runs)

    def where(policy):
        return {(f.run.region, f.resource_id) for f in found[policy]}

    # R3.3: every type in the unused region, nothing in the allowed ones
    r33 = [p for p in found if p.startswith('r3-3-')]
    assert len(r33) == 11
    assert all(f.run.region == seed.UNUSED and f.severity == 'high'
               for p in r33 for f in found[p])
    assert [f.resource['name'] for f in
            found['r3-3-lightsail-instances-outside-allowed-regions']] == ['far-box']
    # X6 in an allowed region and in the unused one
    assert ('us-east-1', bad['spot']) in where('x6-new-instances')
    assert (seed.UNUSED, bad['far-miner']) in where('x6-new-instances')
    unusual = {f.resource['InstanceType'] for f in found['x6-unusual-instance-types']}
    assert unusual == {'g4dn.xlarge', 'p3.2xlarge'}
    assert {f.resource['KeyName'] for f in found['x6-new-key-pairs']} == {'attacker-key'}
    assert [f.run.region for f in found['x6-new-route53-domains']] == ['us-east-1']
    assert {f.resource['GroupName'] for f in found['x6-security-groups-open-to-world']} == {'debug'}
    for policy in ('x6-new-amis', 'x6-new-asgs', 'x6-new-ebs-volumes', 'x6-new-ebs-snapshots',
                   'x6-new-ecs-clusters', 'x6-new-ecr-repositories', 'x6-new-lambda-functions',
                   'x6-new-lambda-layers', 'x6-new-lightsail-instances',
                   'x6-new-sagemaker-notebooks', 'x6-unusual-notebook-instance-types'):
        assert found[policy], policy
    # R4.2 shares
    assert {f.resource_id for f in found['r4-2-ebs-snapshot-shared']} == {
        bad['exfil-snap'], bad['public-snap']}
    assert {f.resource_id for f in found['r4-2-ami-shared']} == {bad['public-ami']}
    assert [f.resource_id for f in found['r4-2-rds-snapshot-shared']] == ['prod-db-copy']
    assert [f.resource_id for f in found['r4-2-rds-cluster-snapshot-shared']] == ['orders-copy']
    assert [f.resource_id for f in found['r4-2-bucket-policy-untrusted']] == [bad['drop-bucket']]
    assert {f.resource_id for f in found['r4-2-lambda-public-or-foreign']} == {
        'backdoor-fn', 'report-fn'}
    assert [f.resource_id for f in found['r4-2-lambda-foreign-layer']] == ['backdoor-fn']
    # X8
    assert [f.resource_id for f in found['x8-rds-instances-without-backups']] == ['scratch-db']
    assert [f.resource_id for f in found['x8-s3-buckets-without-versioning']] == [
        bad['drop-bucket']]
    total = sum(len(v) for v in found.values())
    assert total >= 50, total
    # every finding reads as a sentence in the report
    for fs in found.values():
        for f in fs:
            assert reasons(f.resource, resource_type=f.run.resource_type), f.run.policy
