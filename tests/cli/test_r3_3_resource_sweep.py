"""The resource checks (R3.3, X6, X8, R4.2 shares) through the stock `custodian run`.

Two sweeps of three regions (two allowed, one unused), each running every
policy in r3-3.yml, x6.yml, x8.yml and r4-2-shares.yml:

- a clean, busy account (tests/seed_resources.py ``seed_clean``: default
  VPCs and security groups in every region, instances, volumes, snapshots,
  AMIs, functions, buckets, RDS, all older than incident_start, shares only
  with trusted_accounts): no high or critical finding, nothing errored;
- the same plus what an attacker leaves (``seed_attack``, the session's
  ``compromised_world``): many findings, each where it belongs.

The per-policy tests read the compromised sweep's output: for each policy,
one test that it flags the attacker's resources and one that it leaves the
account's own alone (older, shared only with trusted accounts, or in an
allowed region). Running the policies in-process again would double the
time for nothing: this is the real path.

Emulator extensions used: ECS createdAt, Lambda LastModified and foreign
layers, Route 53 Domains tags, Lightsail (custodian_ext_dev/emulator/extensions.py).
"""
import os

import pytest

from custodian_ext_dev.demo import story
from custodian_ext.report import findings
from custodian_ext.report.reasons import reasons
from tests import seed_resources as seed
from tests.support import POLICIES, by_policy, detect_sweep

pytestmark = pytest.mark.e2e

FILES = [os.path.join(POLICIES, 'detect', f)
         for f in ('r3-3.yml', 'x6.yml', 'x8.yml', 'r4-2-shares.yml')]


def sweep(account, tmp_path, incident_start):
    return detect_sweep(account, tmp_path, story.demo_vars(
        incident_start, allowed_regions=seed.ALLOWED, trusted_accounts=[seed.TRUSTED]),
        seed.SWEPT, paths=FILES)


def ids(world, names):
    out = set()
    for n in names:
        if n.startswith('clean:'):
            out.add(world.clean[n[6:]])
        elif n.startswith('bad:'):
            out.add(world.bad[n[4:]])
        elif n.startswith('acct:'):
            out.add(n[5:].format(account=world.account.id))
        else:
            out.add(n)
    return out


def by(field):
    return lambda r: r[field]


E = 'us-east-1'
# policy file, name, region, resource id, {flagged}, {left alone}
CASES = [
    # X6: created at or after incident_start, in every region
    ('detect/x6.yml', 'x6-new-instances', E, by('InstanceId'),
     {'bad:spot'}, {'clean:web-us-east-1', 'clean:worker'}),
    ('detect/x6.yml', 'x6-unusual-instance-types', E, by('InstanceId'),
     {'bad:spot'}, {'clean:web-us-east-1'}),
    ('detect/x6.yml', 'x6-unusual-notebook-instance-types', E, by('NotebookInstanceName'),
     {'gpu-nb'}, {'research'}),
    ('detect/x6.yml', 'x6-new-amis', E, by('ImageId'), {'bad:public-ami'}, {'clean:web-ami'}),
    ('detect/x6.yml', 'x6-new-asgs', E, by('AutoScalingGroupName'), {'worker-asg'}, {'web-asg'}),
    ('detect/x6.yml', 'x6-new-ebs-volumes', E, by('VolumeId'),
     {'bad:new-vol', 'bad:spot-root'}, {'clean:data-vol', 'clean:web-root'}),
    ('detect/x6.yml', 'x6-new-ebs-snapshots', E, by('SnapshotId'),
     {'bad:exfil-snap', 'bad:public-snap'}, {'clean:web-snap'}),
    ('detect/x6.yml', 'x6-new-ecs-clusters', E, by('clusterName'),
     {'prod', 'batch'}, {'legacy', 'idle'}),
    ('detect/x6.yml', 'x6-new-ecr-repositories', E, by('repositoryName'), {'tools'}, {'app'}),
    ('detect/x6.yml', 'x6-new-lambda-functions', E, by('FunctionName'),
     {'backdoor-fn', 'report-fn'}, {'app-fn'}),
    ('detect/x6.yml', 'x6-new-lambda-layers', E, by('LayerVersionArn'),
     {'bad:tools-layer'}, {'clean:libs-layer'}),
    ('detect/x6.yml', 'x6-new-lightsail-instances', E, by('name'), {'new-box'}, {'blog'}),
    ('detect/x6.yml', 'x6-new-route53-domains', E, by('DomainName'),
     {'examp1e-corp.com'}, {'example-corp.com'}),
    ('detect/x6.yml', 'x6-new-sagemaker-notebooks', E, by('NotebookInstanceName'),
     {'gpu-nb'}, {'research'}),
    ('detect/x6.yml', 'x6-new-key-pairs', E, by('KeyName'), {'attacker-key'}, {'ops-key'}),
    ('detect/x6.yml', 'x6-security-groups-open-to-world', E, by('GroupName'),
     {'debug'}, {'web-https', 'default'}),
    # X8: readiness
    ('detect/x8.yml', 'x8-s3-buckets-without-versioning', E, by('Name'),
     {'acct:drop-{account}'}, {'acct:data-{account}', 'acct:alb-logs-{account}'}),
    ('detect/x8.yml', 'x8-rds-instances-without-backups', E, by('DBInstanceIdentifier'),
     {'scratch-db'}, {'prod-db'}),
    ('detect/x8.yml', 'x8-ebs-volumes-without-snapshot', E, by('VolumeId'),
     {'clean:worker-root'}, {'clean:web-root', 'clean:data-vol'}),
    # R4.2: shares and resource policies
    ('detect/r4-2-shares.yml', 'r4-2-ebs-snapshot-shared', E, by('SnapshotId'),
     {'bad:exfil-snap', 'bad:public-snap'}, {'clean:web-snap'}),
    ('detect/r4-2-shares.yml', 'r4-2-ami-shared', E, by('ImageId'),
     {'bad:public-ami'}, {'clean:web-ami'}),
    ('detect/r4-2-shares.yml', 'r4-2-rds-snapshot-shared', E, by('DBSnapshotIdentifier'),
     {'prod-db-copy'}, {'prod-db-manual'}),
    ('detect/r4-2-shares.yml', 'r4-2-rds-cluster-snapshot-shared', E,
     by('DBClusterSnapshotIdentifier'), {'orders-copy'}, {'orders-manual'}),
    ('detect/r4-2-shares.yml', 'r4-2-bucket-policy-untrusted', E, by('Name'),
     {'acct:drop-{account}'}, {'acct:data-{account}', 'acct:alb-logs-{account}'}),
    ('detect/r4-2-shares.yml', 'r4-2-lambda-public-or-foreign', E, by('FunctionName'),
     {'backdoor-fn', 'report-fn'}, {'app-fn'}),
    ('detect/r4-2-shares.yml', 'r4-2-lambda-foreign-layer', E, by('FunctionName'),
     {'backdoor-fn'}, {'app-fn'}),
]

# R3.3: flagged in the unused region; in an allowed region the policy is skipped.
U = seed.UNUSED
R33 = [
    ('r3-3-ec2-outside-allowed-regions', by('InstanceId'), {'bad:far-miner'}),
    ('r3-3-amis-outside-allowed-regions', by('ImageId'), {'bad:far-ami'}),
    ('r3-3-asgs-outside-allowed-regions', by('AutoScalingGroupName'), {'miner-asg'}),
    ('r3-3-ebs-volumes-outside-allowed-regions', by('VolumeId'), {'bad:far-root'}),
    ('r3-3-ebs-snapshots-outside-allowed-regions', by('SnapshotId'), {'bad:far-snap'}),
    ('r3-3-ecs-clusters-outside-allowed-regions', by('clusterName'), {'miners'}),
    ('r3-3-ecr-repositories-outside-allowed-regions', by('repositoryName'), {'xmrig'}),
    ('r3-3-lambda-functions-outside-allowed-regions', by('FunctionName'), {'far-fn'}),
    ('r3-3-lambda-layers-outside-allowed-regions', by('LayerVersionArn'), {'bad:far-layer'}),
    ('r3-3-lightsail-instances-outside-allowed-regions', by('name'), {'far-box'}),
    ('r3-3-sagemaker-notebooks-outside-allowed-regions', by('NotebookInstanceName'), {'far-nb'}),
]


@pytest.mark.parametrize('path,name,region,key,bad,good', CASES, ids=[c[1] for c in CASES])
def test_flags_the_attackers_resources(world, run, path, name, region, key, bad, good):
    found = run(path, name, region, key)
    assert ids(world, bad) <= set(found), f"{name} missed {ids(world, bad) - set(found)}"


@pytest.mark.parametrize('path,name,region,key,bad,good', CASES, ids=[c[1] for c in CASES])
def test_leaves_the_accounts_own_resources_alone(world, run, path, name, region, key, bad, good):
    found = run(path, name, region, key)
    assert not ids(world, good) & set(found), f"{name} flagged {ids(world, good) & set(found)}"


@pytest.mark.parametrize('name,key,bad', R33, ids=[c[0] for c in R33])
def test_r3_3_flags_resources_in_an_unused_region(world, run, name, key, bad):
    assert ids(world, bad) <= set(run('detect/r3-3.yml', name, U, key))


@pytest.fixture(scope='module')
def world(compromised_world, tmp_path_factory):
    """The session's compromised account, swept once by `custodian run` for this module."""
    w = compromised_world
    w.runs = sweep(w.account, tmp_path_factory.mktemp('compromised'), w.start)
    return w


@pytest.fixture
def run(world):
    """``run(path, name, region, key)``: what the sweep found for one policy in one region,
    as {key(resource): resource}. The policy must have run there (not skipped)."""
    def found(path, name, region, key):
        [r] = [r for r in world.runs if r.policy == name and r.region == region]
        assert r.status in ('findings', 'clean'), (name, region, r.status, r.error)
        return {key(res): res for res in r.resources}
    return found


def test_clean_busy_account_has_no_high_or_critical_findings(account, tmp_path):
    seed.seed_clean(account)
    start = story.incident_boundary()
    runs = sweep(account, tmp_path, start)
    serious = [(f.run.policy, f.run.region, f.resource_id) for f in findings(runs)
               if f.severity in ('critical', 'high')]
    assert serious == []
    # Nothing new since the incident, no world-open group, no share to an unknown account:
    # the only findings are readiness (X8, low): volumes nobody snapshots.
    assert set(by_policy(runs)) == {'x8-ebs-volumes-without-snapshot'}
    status = {(r.policy, r.region): r.status for r in runs}
    # R3.3 ran in the unused region and was skipped, without a call, in the allowed ones.
    assert status[('r3-3-ec2-outside-allowed-regions', seed.UNUSED)] == 'clean'
    assert status[('r3-3-lambda-functions-outside-allowed-regions', 'us-west-2')] == 'skipped'
    # global services once, in global_region
    assert status[('x6-new-route53-domains', 'us-east-1')] == 'clean'
    assert status.get(('x6-new-route53-domains', seed.UNUSED), 'skipped') == 'skipped'
    assert status[('x8-s3-buckets-without-versioning', 'us-west-2')] == 'skipped'


def test_compromised_account_trips_the_resource_checks(world):
    bad = world.bad
    runs = world.runs
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


def test_snapshot_policies_list_only_the_accounts_own_snapshots(world, run):
    """The Amazon-owned snapshots behind public AMIs are visible to the account (and
    created after incident_start in the unused region) but are never its findings."""
    ec2 = seed.client(world.account, 'ec2', U)
    amazon = {s['SnapshotId'] for s in ec2.describe_snapshots()['Snapshots']
              if s['OwnerId'] != world.account.id}
    assert amazon, 'the emulator should show the public AMIs\' snapshots'
    for path, name in (('detect/x6.yml', 'x6-new-ebs-snapshots'),
                       ('detect/r3-3.yml', 'r3-3-ebs-snapshots-outside-allowed-regions')):
        found = run(path, name, U, by('SnapshotId'))
        assert world.bad['far-snap'] in found
        assert not amazon & set(found)
        assert {r['OwnerId'] for r in found.values()} == {world.account.id}


def test_shares_are_annotated_with_the_untrusted_grantees_only(world, run):
    found = run('detect/r4-2-shares.yml', 'r4-2-ebs-snapshot-shared', E, by('SnapshotId'))
    exfil = found[world.bad['exfil-snap']]
    assert exfil['c7n:shared-with'] == {'public': False, 'accounts': [seed.FOREIGN]}
    assert found[world.bad['public-snap']]['c7n:shared-with']['public'] is True
    ami = run('detect/r4-2-shares.yml', 'r4-2-ami-shared', E, by('ImageId'))
    assert ami[world.bad['public-ami']]['c7n:shared-with']['public'] is True


def test_lambda_annotations_name_who_is_let_in(world, run):
    found = run('detect/r4-2-shares.yml', 'r4-2-lambda-public-or-foreign', E, by('FunctionName'))
    assert found['backdoor-fn']['c7n:untrusted-principals'] == ['*']
    assert found['report-fn']['c7n:untrusted-principals'] == [seed.FOREIGN]
    layers = run('detect/r4-2-shares.yml', 'r4-2-lambda-foreign-layer', E, by('FunctionName'))
    assert layers['backdoor-fn']['c7n:foreign-layers'] == [world.foreign_layer]


def test_ecs_annotation_tells_new_cluster_from_new_service(world, run):
    found = run('detect/x6.yml', 'x6-new-ecs-clusters', E, by('clusterName'))
    assert found['prod']['c7n:cluster-activity']['new_services'] == ['metrics-agent']
    assert found['prod']['c7n:cluster-activity']['nothing_older'] is False
    assert found['batch']['c7n:cluster-activity']['nothing_older'] is True


def test_security_group_match_names_the_world_open_rules(world, run):
    from custodian_ext.report.reasons import reasons
    found = run('detect/x6.yml', 'x6-security-groups-open-to-world', E, by('GroupName'))
    [line] = reasons(found['debug'], resource_type='aws.security-group')[:1]
    assert 'tcp 22 from 0.0.0.0/0' in line and 'all ports from ::/0' in line
