"""R3.3, X6, X8 and R4.2 (shares) resource policies, against the emulator.

One account is seeded for the whole session (``tests/seed_resources.py``
``compromised_world``): a clean, busy account, then ``incident_start``, then
what the attacker did.
Each policy runs once (in-process, as ``custodian run`` would) and two tests
read its result: it flags the attacker's resources, and it leaves the
account's own (older, trusted, or in an allowed region) alone.

Emulator extensions used (custodian_ext/emulator/extensions.py): ECS
``createdAt`` on services, Lambda layers of other accounts, Lightsail
instances. Lightsail is also tested with botocore's Stubber in
test_lightsail_policies.py.
"""
import copy
import functools
import json
import os

import botocore.client
import pytest
import yaml

from tests import seed_resources as seed
from tests.support import (POLICIES, policy_vars, reset_sessions, run_policies_in_account,
                           run_policy)


@functools.lru_cache(maxsize=None)
def _policies(path):
    with open(os.path.join(POLICIES, path)) as fh:
        return {p['name']: p for p in yaml.load(fh, Loader=getattr(yaml, 'CSafeLoader',
                                                                   yaml.SafeLoader))['policies']}


def policy(path, name):
    return copy.deepcopy(_policies(path)[name])


@pytest.fixture(scope='module')
def world(compromised_world):
    w = compromised_world
    w.results, w.runner = {}, None
    yield w
    reset_sessions()


@pytest.fixture
def run(world, monkeypatch, tmp_path):
    """Run a policy (once per module) in the seeded account; returns {id: resource}."""
    world.account.apply_env(monkeypatch)
    monkeypatch.setenv('HOME', str(tmp_path))

    def go(path, name, region, key):
        cache_key = (name, region)
        if cache_key not in world.results:
            if world.runner is None:
                # One c7n session for the whole module: all runs are in this account.
                world.runner = run_policies_in_account(world.account)
            found = world.runner(policy(path, name),
                              policy_vars(incident_start=world.start,
                                          allowed_regions=seed.ALLOWED,
                                          trusted_accounts=[seed.TRUSTED]),
                              region=region, output_dir=str(tmp_path / 'out'))
            world.results[cache_key] = {key(r): r for r in found}
        return world.results[cache_key]
    return go


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


class CallCounter:
    def __init__(self, monkeypatch):
        self.calls = []
        original = botocore.client.BaseClient._make_api_call
        counter = self

        def counted(client, operation, params):
            counter.calls.append((client.meta.service_model.service_name, operation,
                                  client.meta.region_name))
            return original(client, operation, params)
        monkeypatch.setattr(botocore.client.BaseClient, '_make_api_call', counted)


def test_r3_3_makes_no_api_call_in_allowed_regions(world, monkeypatch, tmp_path):
    """Every R3.3 policy, in both allowed regions (which hold resources): skipped, zero calls."""
    world.account.apply_env(monkeypatch)
    monkeypatch.setenv('HOME', str(tmp_path))
    counter = CallCounter(monkeypatch)
    variables = policy_vars(incident_start=world.start, allowed_regions=seed.ALLOWED)
    names = [c[0] for c in R33]
    for region in seed.ALLOWED:
        for name in names:
            out = tmp_path / region
            assert run_policy(policy('detect/r3-3.yml', name), variables, region=region,
                              account=world.account, output_dir=str(out)) == []
            with open(os.path.join(out, name, 'skipped.json')) as fh:
                assert json.load(fh)['reason'] == 'execution conditions'
    reset_sessions()
    assert counter.calls == []


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
