"""R3.3 in allowed regions: skipped by its condition, before any API call.

In-process against the emulator, in the session's seeded account
(``tests/seed_resources.py`` ``compromised_world``), whose allowed regions
hold instances, volumes, functions and the rest. Every botocore call is
counted. The other resource-check tests read the output of one real
``custodian run`` sweep (tests/cli/test_r3_3_resource_sweep.py).
"""
import json
import os

import botocore.client
import yaml

from tests import seed_resources as seed
from tests.support import POLICIES, policy_vars, reset_sessions, run_policy


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


def test_r3_3_makes_no_api_call_in_allowed_regions(compromised_world, monkeypatch, tmp_path):
    """Every R3.3 policy, in both allowed regions (which hold resources): skipped, zero calls."""
    world = compromised_world
    world.account.apply_env(monkeypatch)
    monkeypatch.setenv('HOME', str(tmp_path))
    variables = policy_vars(incident_start=world.start, allowed_regions=seed.ALLOWED)
    with open(os.path.join(POLICIES, 'detect', 'r3-3.yml')) as fh:
        policies = yaml.safe_load(fh)['policies']
    assert len(policies) == 11
    counter = CallCounter(monkeypatch)
    for region in seed.ALLOWED:
        for p in policies:
            out = tmp_path / region
            assert run_policy(p, variables, region=region, account=world.account,
                              output_dir=str(out)) == []
            with open(os.path.join(out, p['name'], 'skipped.json')) as fh:
                assert json.load(fh)['reason'] == 'execution conditions'
    reset_sessions()
    assert counter.calls == []
