"""The triage file (policies/triage.yml): accepted findings with a reason, an owner and an expiry.

Through the real `custodian-ext report --triage` and `custodian-ext check-triage`
on the recorded c7n-org sweep (tests/data/report/org: accounts prod and dev;
prod has findings X1 and X2 critical, R3.3 high (two instances) and X6 medium;
x6-lightsail-instances errored in both accounts in eu-north-1).
"""
import datetime
import json
import os
import shutil
import xml.etree.ElementTree as ET

import pytest
import yaml

from custodian_ext.report import triage as triage_mod
from tests.support import POLICIES, REPO, run_cli

FIXTURE = os.path.join(REPO, 'tests', 'data', 'report', 'org')
LIGHTSAIL = '*/*/x6-lightsail-instances'
TODAY = datetime.datetime.now(datetime.timezone.utc).date()


def days(n):
    return (TODAY + datetime.timedelta(days=n)).isoformat()


def plain_env():
    return {k: v for k, v in os.environ.items() if not k.startswith('AWS_')}


def copy_fixture(tmp_path, drop=()):
    dest = tmp_path / 'org'
    shutil.copytree(FIXTURE, dest)
    for rel in drop:
        for path in sorted(dest.glob(rel)):
            shutil.rmtree(path)
    return str(dest)


def entry(reason='parked build runner, tracked in OPS-4711', owner='alice@example.com',
          expires=None, **match):
    m = {'account': '*', 'region': '*', 'resource': '*'}
    m.update(match)
    return {'match': m, 'reason': reason, 'owner': owner, 'expires': expires or days(5)}


def write_triage(tmp_path, *entries, name='triage.yml'):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({'accept': list(entries)}, sort_keys=False))
    return str(path)


def report(tmp_path, src, *extra, check=None):
    out = tmp_path / 'out'
    proc = run_cli(['custodian-ext', 'report', src, '--format', 'json,html,md', '-o', str(out),
                    *extra], plain_env(), check=check)
    doc = None
    if (out / 'report.json').exists():
        with open(out / 'report.json') as fh:
            doc = json.load(fh)
    return proc, doc


def test_accepted_findings_have_their_own_section_and_do_not_count_for_the_gate(tmp_path):
    src = copy_fixture(tmp_path, drop=[LIGHTSAIL, '*/*/x1-*', '*/*/x2-*', '*/*/r3-3-*'])
    proc, doc = report(tmp_path, src, '--fail-on', 'medium', check=1)  # the X6 finding
    assert doc['gate']['findings_at_or_above'] == 1
    path = write_triage(tmp_path, entry(policy='x6-stopped-instances', account='prod',
                                        region='eu-north-1', resource='i-*'))
    proc, doc = report(tmp_path, src, '--fail-on', 'medium', '--triage', path, check=0)
    assert doc['findings'] == [] and doc['summary']['findings'] == 0
    [acc] = doc['accepted']
    assert acc['policy'] == 'x6-stopped-instances' and acc['account'] == 'prod'
    assert acc['accepted'] == {'entry': 1, 'reason': 'parked build runner, tracked in OPS-4711',
                               'owner': 'alice@example.com',
                               'expires': f'{days(5)}T00:00:00Z', 'file': path}
    assert doc['summary']['accepted'] == 1 and doc['triage']['stale'] == []
    assert doc['gate']['message'] == 'no open findings at or above medium (1 accepted in the ' \
                                     'triage file)'
    # every format shows them apart, with reason, owner and expiry
    assert 'Accepted in' in proc.stdout and 'alice@example.com' in proc.stdout
    md = (tmp_path / 'out' / 'report.md').read_text()
    assert '## Accepted findings (triage)' in md and 'OPS-4711' in md
    root = ET.fromstring((tmp_path / 'out' / 'report.html').read_text())
    table = next(t for t in root.iter('table') if t.get('id') == 'accepted-findings')
    cells = [''.join(c.itertext()) for c in table.find('tbody').find('tr').findall('td')]
    assert 'alice@example.com' in cells and f'{days(5)}T00:00:00Z' in cells
    findings = next(t for t in root.iter('table') if t.get('id') == 'findings') \
        if any(t.get('id') == 'findings' for t in root.iter('table')) else None
    assert findings is None  # nothing open


def test_expired_entries_stop_applying_and_are_listed(tmp_path):
    src = copy_fixture(tmp_path, drop=[LIGHTSAIL, '*/*/x1-*', '*/*/x2-*', '*/*/r3-3-*'])
    path = write_triage(tmp_path, entry(policy='x6-stopped-instances', expires=days(-1)))
    proc, doc = report(tmp_path, src, '--fail-on', 'medium', '--triage', path, check=1)
    assert [f['policy'] for f in doc['findings']] == ['x6-stopped-instances']
    assert doc['accepted'] == [] and doc['triage']['expired'] == [1]
    [e] = doc['triage']['entries']
    assert e['status'] == 'expired' and '1 finding(s) it matched are open again' in e['note']
    assert 'entry 1 EXPIRED' in proc.stdout


def test_an_entry_that_matched_nothing_is_stale(tmp_path):
    src = copy_fixture(tmp_path, drop=[LIGHTSAIL])
    path = write_triage(tmp_path,
                        entry(policy='x6-stopped-instances', account='dev'),
                        entry(step='X6', account='prod', region='eu-north-1'))
    _, doc = report(tmp_path, src, '--triage', path, check=0)
    assert [(e['entry'], e['status'], e['accepted']) for e in doc['triage']['entries']] == [
        (1, 'stale', 0), (2, 'applied', 1)]
    assert doc['triage']['stale'] == [1]
    assert 'matched no finding' in doc['triage']['entries'][0]['note']


def test_critical_findings_only_with_a_short_expiry(tmp_path):
    src = copy_fixture(tmp_path, drop=[LIGHTSAIL])
    far = write_triage(tmp_path, entry(policy='x1-*', expires=days(30)), name='far.yml')
    _, doc = report(tmp_path, src, '--triage', far, '--fail-on', 'critical', check=1)
    assert 'x1-quarantined-user-active-keys' in {f['policy'] for f in doc['findings']}
    [e] = doc['triage']['entries']
    assert (e['status'], e['refused']) == ('refused', 1)
    assert 'at most 7 days' in e['note'] and doc['triage']['refused'] == [1]
    near = write_triage(tmp_path, entry(policy='x1-*', expires=days(6)), name='near.yml')
    _, doc = report(tmp_path, src, '--triage', near, check=0)
    assert [f['policy'] for f in doc['accepted']] == ['x1-quarantined-user-active-keys']
    # the limit is a setting: triage_critical_max_days
    vars_file = tmp_path / 'vars.yml'
    with open(os.path.join(POLICIES, 'vars.yml')) as fh:
        values = yaml.safe_load(fh)
    values['triage_critical_max_days'] = 45
    vars_file.write_text(yaml.safe_dump(values))
    _, doc = report(tmp_path, src, '--triage', far, '--vars-file', str(vars_file), check=0)
    assert [f['policy'] for f in doc['accepted']] == ['x1-quarantined-user-active-keys']
    assert doc['triage']['critical_max_days'] == 45


@pytest.mark.parametrize('entries', [
    [entry()],                                                   # everything
    [entry(policy='x6-lightsail-instances')],                     # the errored policy itself
    [entry(step='X6', region='eu-north-1')],
    [entry(policy='*', account='dev'), entry(policy='*', account='prod')],
])
def test_errored_runs_can_never_be_accepted_into_clean(tmp_path, entries):
    """Whatever the file says, an errored or missing run stays a problem and the gate 2."""
    src = copy_fixture(tmp_path, drop=['dev/us-east-1/x1-quarantined-user-active-keys'])
    path = write_triage(tmp_path, *entries)
    _, before = report(tmp_path, src, '--fail-on', 'info', check=2)
    _, doc = report(tmp_path, src, '--fail-on', 'info', '--triage', path, check=2)
    assert doc['problems'] == before['problems']
    assert {(p['policy'], p['account'], p['status']) for p in doc['problems']} == {
        ('x6-lightsail-instances', 'dev', 'errored'),
        ('x6-lightsail-instances', 'prod', 'errored'),
        ('x1-quarantined-user-active-keys', 'dev', 'missing')}
    assert doc['gate']['exit_code'] == 2 and doc['gate']['status'] == 'error'
    assert not [a for a in doc['accepted'] if a['policy'] == 'x6-lightsail-instances']
    assert len(doc['findings']) + len(doc['accepted']) == len(before['findings'])


def test_one_file_for_an_org_sweep_and_a_single_account_run(tmp_path):
    """`account` matches the c7n-org account name or the account id."""
    path = write_triage(tmp_path, entry(policy='x6-stopped-instances', account='111111111111'))
    _, doc = report(tmp_path, copy_fixture(tmp_path, drop=[LIGHTSAIL]), '--triage', path,
                    check=0)
    assert [(a['account'], a['policy']) for a in doc['accepted']] == [
        ('prod', 'x6-stopped-instances')]
    single = tmp_path / 'single'
    shutil.copytree(os.path.join(FIXTURE, 'prod'), single)  # custodian run: OUT/<region>/<policy>
    shutil.rmtree(single / 'eu-north-1' / 'x6-lightsail-instances')
    _, doc = report(tmp_path, str(single), '--triage', path, check=0)
    assert [(a['account'], a['policy']) for a in doc['accepted']] == [
        ('111111111111', 'x6-stopped-instances')]


BAD = [
    ('accept: [{reason: x}]', "accept[1]: 'match' is required"),
    ('accept:\n  - match: {policy: a, account: "*", region: "*", resource: "*"}\n'
     '    reason: long enough reason\n    owner: bob\n    expiry: 2026-12-01\n',
     "accept[1]: unknown key 'expiry'; did you mean 'expires'?"),
    ('accept:\n  - match: {policy: a, step: X1, account: "*", region: "*", resource: "*"}\n'
     '    reason: long enough reason\n    owner: bob\n    expires: 2026-12-01\n',
     'name exactly one of policy and step'),
    ('accept:\n  - match: {policy: a, region: "*", resource: "*"}\n'
     '    reason: long enough reason\n    owner: bob\n    expires: 2026-12-01\n',
     "'account' is required; write '*' to match every account"),
    ('accept:\n  - match: {policy: a, account: "*", region: us-east-9x, resource: "*"}\n'
     '    reason: long enough reason\n    owner: bob\n    expires: 2026-12-01\n',
     "'us-east-9x' is not an AWS region name"),
    ('accept:\n  - match: {step: Z9, account: "*", region: "*", resource: "*"}\n'
     '    reason: long enough reason\n    owner: bob\n    expires: 2026-12-01\n',
     "'Z9' is not a runbook step id"),
    ('accept:\n  - match: {policy: a, account: "*", region: "*", resource: "*"}\n'
     '    reason: ok\n    owner: bob\n    expires: 2026-12-01\n',
     'say why the finding is accepted (at least 10 characters)'),
    ('accept:\n  - match: {policy: a, account: "*", region: "*", resource: "*"}\n'
     '    reason: long enough reason\n    owner: bob\n    expires: next week\n',
     "'next week' is not a date; write it like 2026-12-15"),
    ('accept:\n  - match: {policy: a, account: "*", region: "*", resource: "*"}\n'
     '    reason: long enough reason\n    owner: bob\n', "'expires' is required"),
    ('acept: []', "unknown key 'acept'; did you mean 'accept'?"),
    ('accept: [1, 2', 'not valid YAML at line'),
]


@pytest.mark.parametrize('text,needle', BAD)
def test_bad_triage_files_are_one_line(tmp_path, text, needle):
    path = tmp_path / 'triage.yml'
    path.write_text(text)
    proc = run_cli(['custodian-ext', 'check-triage', str(path)], plain_env(), check=1)
    assert proc.stderr.count('\n') == 1 and needle in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f'custodian-ext: error: {path}')
    if text == BAD[0][0] or text == BAD[-1][0]:  # the report checks the file the same way
        proc = run_cli(['custodian-ext', 'report', FIXTURE, '--triage', str(path)],
                       plain_env(), check=2)
        assert proc.stdout == '' and proc.stderr.count('\n') == 1 and needle in proc.stderr


def test_check_triage_says_what_is_expired_or_too_long_for_critical(tmp_path):
    path = write_triage(tmp_path, entry(policy='a', expires=days(-3)),
                        entry(policy='b', expires=days(60)), entry(policy='c'))
    proc = run_cli(['custodian-ext', 'check-triage', path], plain_env(), check=0)
    assert f'{path}: 3 entries valid; critical findings can be accepted for at most 7 days' \
        in proc.stdout
    assert f'{path}: entry 1 expired {days(-3)}T00:00:00Z: it no longer applies' in proc.stdout
    assert 'entry 2 expires in more than 7 days: it will not accept critical findings' \
        in proc.stdout
    assert 'entry 3' not in proc.stdout
    assert run_cli(['custodian-ext', 'check-triage', str(tmp_path / 'nope.yml')], plain_env(),
                   check=1).stderr.strip().endswith('triage file not found')


def test_the_shipped_triage_file_is_valid_and_accepts_nothing():
    loaded = triage_mod.load(os.path.join(POLICIES, 'triage.yml'))
    assert loaded.entries == []
    proc = run_cli(['custodian-ext', 'check-triage', 'policies/triage.yml'], plain_env(),
                   check=0)
    assert '0 entries valid' in proc.stdout


def test_unquoted_account_ids_and_dates_and_times():
    [e] = triage_mod.parse({'accept': [{
        'match': {'policy': 'p', 'account': 12345678901, 'region': '*', 'resource': 'r'},
        'reason': 'a good enough reason', 'owner': 'o',
        'expires': datetime.date(2026, 12, 15)}]}, 'f')
    assert e.match['account'] == '012345678901'
    assert e.expires == datetime.datetime(2026, 12, 15, tzinfo=datetime.timezone.utc)
    [e] = triage_mod.parse({'accept': [{
        'match': {'policy': 'p', 'account': '*', 'region': '*', 'resource': 'r'},
        'reason': 'a good enough reason', 'owner': 'o',
        'expires': '2026-12-15T09:30:00Z'}]}, 'f')
    assert e.expires.hour == 9
