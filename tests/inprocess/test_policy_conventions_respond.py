"""Rules every respond policy follows, beyond the house rules in test_policy_conventions."""
import glob
import os

import pytest
import yaml

from custodian_ext.actions.core import PackAction
from tests.support import POLICIES, load_policy

RESPOND = [(f, p) for f in sorted(glob.glob(os.path.join(POLICIES, 'respond', '*.yml')))
           for p in yaml.safe_load(open(f))['policies']]
DETECT = {p['name'] for f in glob.glob(os.path.join(POLICIES, 'detect', '*.yml'))
          for p in yaml.safe_load(open(f))['policies']}

# Respond policies that act on exactly what a detect policy flags: same conditions and
# filters, so the dry run lists the same resources as the finding.
SAME_SELECTION = [
    ('x1.yml', 'x1-deactivate-quarantined-keys', 'x1.yml', 'x1-quarantined-user-active-keys'),
    ('x7.yml', 'x7-snapshot-then-stop-outside-allowed-regions',
     'r3-3.yml', 'r3-3-ec2-outside-allowed-regions'),
    ('r2-1.yml', 'r2-1-restart-stopped-trails', 'r2-1.yml', 'r2-1-trail-not-logging'),
    ('r4-2-shares.yml', 'r4-2-unshare-ebs-snapshots',
     'r4-2-shares.yml', 'r4-2-ebs-snapshot-shared'),
    ('r4-2-shares.yml', 'r4-2-unshare-amis', 'r4-2-shares.yml', 'r4-2-ami-shared'),
    ('r4-2-shares.yml', 'r4-2-unshare-rds-snapshots',
     'r4-2-shares.yml', 'r4-2-rds-snapshot-shared'),
]


@pytest.mark.parametrize('respond_file,respond,detect_file,detect', SAME_SELECTION)
def test_acts_on_exactly_what_detect_flags(respond_file, respond, detect_file, detect):
    r = load_policy(f'respond/{respond_file}', respond)
    d = load_policy(f'detect/{detect_file}', detect)
    assert r['resource'] == d['resource']
    assert r.get('conditions') == d.get('conditions')
    assert r['filters'] == d['filters']


@pytest.mark.parametrize('path,policy', RESPOND, ids=[p['name'] for _, p in RESPOND])
def test_respond_policy_reports_per_resource_and_names_its_findings(path, policy):
    import custodian_ext  # noqa: F401  registers the pack's actions
    from c7n.resources import load_resources
    from c7n.resources.aws import AWS
    assert 'respond' in policy['tags']
    load_resources((policy['resource'],))
    actions = AWS.resources[policy['resource'].split('.', 1)[1]].action_registry
    names = [a if isinstance(a, str) else a['type'] for a in policy['actions']]
    for i, name in enumerate(names):
        if name == 'delete':
            # Custodian's own delete, only behind the export that keeps the evidence
            assert names[i - 1] == 'export-user'
        else:
            assert issubclass(actions.get(name), PackAction), (
                f'{name} writes no per-resource results')
    detect = policy['metadata'].get('detect')
    for name in ([detect] if isinstance(detect, str) else detect or []):
        assert name in DETECT, f'metadata.detect names no detect policy: {name}'


def test_every_detect_respond_reference_exists():
    # a respond or recover policy (X8's restores answer detect findings too)
    names = {p['name'] for f in glob.glob(os.path.join(POLICIES, '*', '*.yml'))
             if os.path.basename(os.path.dirname(f)) in ('respond', 'recover')
             for p in yaml.safe_load(open(f))['policies']}
    for f in glob.glob(os.path.join(POLICIES, 'detect', '*.yml')):
        for p in yaml.safe_load(open(f))['policies']:
            ref = (p.get('metadata') or {}).get('respond')
            assert ref is None or ref in names, f"{p['name']}: respond policy {ref} does not exist"


def test_readme_lists_every_permission_the_respond_actions_need():
    import custodian_ext  # noqa: F401
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    from tests.support import REPO, policy_vars
    with open(os.path.join(REPO, 'README.md')) as fh:
        readme = fh.read()
    section = readme.split('### Permissions for the respond policies', 1)[1].split('\n### ', 1)[0]
    rows = {line.split('|')[1].strip().strip('`').split('`')[0]: line
            for line in section.splitlines() if line.startswith('| `')}
    variables = dict(policy_vars(evidence_bucket='evidence-bucket'))
    for _, p in RESPOND:
        load_resources((p['resource'],))
        policy = Policy(dict(p), Config.empty(region='us-east-1', account_id='123456789012'))
        policy.expand_variables(policy.get_variables(dict(variables)))
        for action in policy.resource_manager.actions:
            if action.type == 'delete':
                continue  # Custodian's own, summarised
            for perm in action.get_permissions():
                assert f'`{perm}`' in rows[action.type], f'{action.type}: README lacks {perm}'
