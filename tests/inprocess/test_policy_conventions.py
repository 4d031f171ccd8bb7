"""House rules every shipped policy follows (see DESIGN.md and the README)."""
import glob
import os
import re

import pytest
import yaml

from custodian_ext.report.model import SEVERITIES
from tests.support import POLICIES

FILES = sorted(glob.glob(os.path.join(POLICIES, '*', '*.yml')))
POLICIES_BY_FILE = [(f, p) for f in FILES for p in yaml.safe_load(open(f))['policies']]
IDS = [f"{os.path.basename(os.path.dirname(f))}/{p['name']}" for f, p in POLICIES_BY_FILE]

RUNBOOK_ID = re.compile(r'^(R\d+\.\d+|X\d+)$')
ACCOUNT_ID = re.compile(r'(?<!\d)\d{12}(?!\d)')
REGION = re.compile(r'\b(us|eu|ap|sa|ca|me|af|il|mx)-'
                    r'(east|west|north|south|central|northeast|southeast|northwest|southwest)-\d\b')
DATE = re.compile(r'\b20\d\d-\d\d-\d\d')


def slug(step):
    return step.lower().replace('.', '-')


@pytest.mark.parametrize('path,policy', POLICIES_BY_FILE, ids=IDS)
def test_policy_follows_house_rules(path, policy):
    meta = policy.get('metadata') or {}
    step = str(meta.get('runbook', ''))
    assert RUNBOOK_ID.match(step), f"metadata.runbook {step!r} is not a runbook id"
    assert meta.get('severity') in SEVERITIES
    assert meta.get('remediation'), 'metadata.remediation is missing'
    assert policy.get('description'), 'description is missing'
    assert policy['name'].startswith(slug(step) + '-'), 'name must start with the runbook id'
    base = os.path.basename(path)
    assert base == slug(step) + '.yml' or base.startswith(slug(step) + '-'), \
        'file must be named after its runbook step (r4-2.yml or r4-2-<topic>.yml)'
    tags = policy.get('tags') or []
    assert f'runbook:{step}' in tags and f"severity:{meta['severity']}" in tags


@pytest.mark.parametrize('path,policy', POLICIES_BY_FILE, ids=IDS)
def test_no_literal_accounts_regions_or_dates(path, policy):
    body = yaml.safe_dump({k: v for k, v in policy.items() if k not in ('description', 'metadata')})
    assert not ACCOUNT_ID.search(body), 'account ids come from vars.yml'
    assert not REGION.search(body), 'regions come from vars.yml'
    assert not DATE.search(body), 'dates come from vars.yml'


@pytest.mark.parametrize('path,policy', [(f, p) for f, p in POLICIES_BY_FILE if '/detect/' in f],
                         ids=[i for i in IDS if i.startswith('detect/')])
def test_detect_policies_change_nothing(path, policy):
    assert not policy.get('actions'), 'detect policies never carry actions'
    assert not policy.get('mode'), 'detect policies run in pull mode'


def test_policy_names_are_unique():
    names = [p['name'] for _, p in POLICIES_BY_FILE]
    assert len(names) == len(set(names))
