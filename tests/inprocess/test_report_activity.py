"""The incident report's activity review: attack timeline and blast radius, every format.

The fixture tests/data/report/activity is real output of c7n-org's ``run_account`` with the
pack against the emulator (tests/data/generate_activity_report_fixture.py): deploy-bot's
leaked key reads a secret and a SecureString parameter, checks SES, creates a backdoor user
and a role, assumes the role, and with the session key launches a GPU miner in eu-north-1,
changes user data, shares a snapshot and fails to leave the organization. The activity
policy is a fixture stand-in writing the shared ``c7n:activity`` shape; respond runs
contained deploy-bot's and the backdoor user's keys and planned the miner's termination.
Golden files are in tests/data/report/golden-activity; after an intended change to the
output, rewrite them with UPDATE_GOLDEN=1 and review the diff.
"""
import datetime
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from custodian_ext.report import activity, document, render
from custodian_ext.report.loader import load_runs
from tests.inprocess.test_report import _Balance
from tests.support import REPO

FIXTURE = 'tests/data/report/activity'
GOLDEN = os.path.join(REPO, 'tests', 'data', 'report', 'golden-activity')
SCHEMA = os.path.join(REPO, 'docs', 'report-schema.json')
NOW = datetime.datetime(2026, 12, 2, 0, 0, 0, tzinfo=datetime.timezone.utc)
ACTIVITY_RUNS = ('prod/us-east-1/r2-2-suspect-activity', 'prod/eu-north-1/r2-2-suspect-activity')


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def build(paths=(FIXTURE,), fail_on='high'):
    return document.build(load_runs(list(paths)), fail_on=fail_on, sources=list(paths), now=NOW)


@pytest.fixture(scope='module')
def doc():
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return build()
    finally:
        os.chdir(cwd)


def copy_fixture(tmp_path):
    dest = tmp_path / 'activity'
    shutil.copytree(os.path.join(REPO, FIXTURE), dest)
    return str(dest)


def edit_resources(root, rel, change):
    path = os.path.join(root, rel, 'resources.json')
    with open(path) as fh:
        resources = json.load(fh)
    change(resources)
    with open(path, 'w') as fh:
        json.dump(resources, fh)


def raw_events():
    out = []
    for rel in ACTIVITY_RUNS:
        with open(os.path.join(REPO, FIXTURE, rel, 'resources.json')) as fh:
            out.extend(json.load(fh)[0]['c7n:activity'])
    return out


# -- golden output -----------------------------------------------------------------------

@pytest.mark.parametrize('fmt', ['md', 'json', 'junit', 'text'])
def test_golden_output(doc, fmt):
    text = render.render(doc, fmt)
    path = os.path.join(GOLDEN, render.FORMATS[fmt][0])
    if os.environ.get('UPDATE_GOLDEN'):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, 'w') as fh:
            fh.write(text)
    with open(path) as fh:
        assert text == fh.read(), f'{path} differs; rerun with UPDATE_GOLDEN=1 and review'


def test_json_matches_the_committed_schema(doc):
    with open(SCHEMA) as fh:
        schema = json.load(fh)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    data = json.loads(render.render(doc, 'json'))
    validator.validate(data)
    assert data['schema_version'] == '1.1'
    broken = json.loads(json.dumps(data))
    broken['activity']['suspects'][0]['timeline'][0]['severity'] = 'severe'
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)
    del broken['activity']['suspects'][0]['timeline']
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_the_recorded_sweep_is_whole(doc):
    """No errored or missing run: every section below is about a complete sweep."""
    assert doc['problems'] == []
    assert doc['summary']['runs']['skipped'] == 16 and doc['summary']['runs']['findings'] == 11


# -- the timeline ------------------------------------------------------------------------

def lanes(doc):
    """The leaked key's lane and its session's lane."""
    key, session = doc['activity']['suspects']
    return key, session


def test_timeline_groups_every_event_by_suspect_credential_in_time_order(doc):
    raw = raw_events()
    act = doc['activity']
    assert act['summary']['suspects'] == 2 and act['summary']['accounts'] == ['prod']
    key, session = lanes(doc)
    leaked = next(e['AccessKeyId'] for e in raw if e['AccessKeyId'].startswith('AKIA'))
    temp = next(e['AccessKeyId'] for e in raw if e['AccessKeyId'].startswith('ASIA'))
    # the leaked key's lane first, then the session it opened, with the chain
    assert (key['credential'], key['kind'], key['via']) == (leaked, 'key', [leaked])
    assert (session['credential'], session['kind'], session['via']) == (
        temp, 'session', [leaked, temp])
    assert (key['account'], key['account_id']) == ('prod', '111111111111')
    assert key['reason'] == 'AWS quarantine marker AWSCompromisedKeyQuarantineV2 on user ' \
                            'deploy-bot'
    assert session['reason'] == f'temporary credentials {leaked} obtained with AssumeRole'
    # every event of both regions' runs, once, in its credential's lane, in time order
    assert sorted(e['id'] for s in (key, session) for e in s['timeline']) == sorted(
        e['EventId'] for e in raw)
    for s in (key, session):
        assert {e['access_key_id'] for e in s['timeline']} == {s['credential']}
        times = [e['time'] for e in s['timeline']]
        assert times == sorted(times) and (s['first_seen'], s['last_seen']) == (
            times[0], times[-1])
        assert s['source_ips'] == [{'ip': '203.0.113.66', 'events': s['events']}]
    assert key['first_seen'] < session['first_seen']
    assert key['regions'] == ['us-east-1'] and session['regions'] == ['eu-north-1', 'us-east-1']
    assert key['principals'] == ['arn:aws:iam::111111111111:user/deploy-bot']
    assert session['principals'] == [
        'arn:aws:sts::111111111111:assumed-role/ops-maintenance/maintenance']
    by_name = {e['event']: e for e in session['timeline']}
    miner = by_name['RunInstances']
    assert (miner['region'], miner['via'], miner['catalogue_id']) == (
        'eu-north-1', [leaked, temp], 'ec2-run-gpu-instances')
    assert miner['title'].startswith('GPU, accelerator or very large instances launched')
    # a failed call is kept: an attempt is evidence
    leave = by_name['LeaveOrganization']
    assert (leave['error_code'], leave['tactic'], leave['technique'], leave['severity']) == (
        'AWSOrganizationsNotInUseException', 'defense-evasion', 'T1666', 'high')
    assert (key['failed'], session['failed']) == (0, 1)
    # calls the catalogue does not know stay on the timeline
    assert by_name['StopInstances']['tactic'] == 'unclassified'
    assert by_name['StopInstances']['catalogue_id'] is None


def test_same_event_from_both_sources_and_two_runs_is_one_event(tmp_path):
    src = copy_fixture(tmp_path)
    with open(os.path.join(src, ACTIVITY_RUNS[0], 'resources.json')) as fh:
        first = json.load(fh)[0]
    twin = dict(first['c7n:activity'][0], Source='trail-logs')

    def add_twin(resources):
        resources[0]['c7n:activity'].append(twin)
    edit_resources(src, ACTIVITY_RUNS[1], add_twin)  # another run, the other source
    suspects = build([src])['activity']['suspects']
    assert sum(s['events'] for s in suspects) == len(raw_events())
    ev = next(e for s in suspects for e in s['timeline'] if e['id'] == twin['EventId'])
    assert ev['sources'] == ['event-history', 'trail-logs']


def test_another_suspect_gets_its_own_lane_in_the_order_it_started(tmp_path):
    src = copy_fixture(tmp_path)

    def second_suspect(resources):
        ev = dict(resources[0]['c7n:activity'][0], EventId='other-event-1',
                  EventTime='2026-12-01T22:00:00Z', AccessKeyId='AKIAOTHERSUSPECT0001',
                  Suspect={'Credential': 'AKIAOTHERSUSPECT0001', 'Reason': 'suspect_access_keys',
                           'Via': ['AKIAOTHERSUSPECT0001']})
        resources[0]['c7n:activity'].append(ev)
    edit_resources(src, ACTIVITY_RUNS[0], second_suspect)
    doc = build([src])
    suspects = doc['activity']['suspects']
    assert suspects[0]['credential'] == 'AKIAOTHERSUSPECT0001'
    assert [s['events'] for s in suspects[1:]] == [s['events'] for s in lanes(build())]
    svg = activity.timeline_svg(doc['activity'])
    assert [lane['label'] for lane in svg['lanes']] == [s['credential'] for s in suspects]
    assert svg['lanes'][0]['marks'][0]['x'] == svg['label_width']  # the earliest event


# -- the blast radius --------------------------------------------------------------------

def test_blast_radius_what_it_did(doc):
    key, session = lanes(doc)
    for s in (key, session):
        assert sum(s['by_tactic'].values()) == s['events']
        assert list(s['by_tactic']) == [t for t in activity.TACTIC_ORDER if t in s['by_tactic']]
    assert key['by_tactic']['credential-access'] == 2  # the secret and the parameter
    assert session['by_tactic']['credential-access'] == 1  # the instance's user data
    assert key['by_tactic']['persistence'] == 3
    rows = {r['event']: r for r in key['by_event']}
    assert rows['GetSecretValue'] == {
        'event': 'GetSecretValue', 'source': 'secretsmanager.amazonaws.com', 'count': 1,
        'failed': 0, 'tactic': 'credential-access', 'technique': 'T1555.006',
        'severity': 'high'}
    assert key['by_event'][0]['severity'] == 'critical' == key['severity']
    assert session['severity'] == 'high'
    assert doc['activity']['summary']['severity'] == 'critical'
    assert doc['activity']['summary']['events'] == len(raw_events())


def test_blast_radius_links_each_finding_to_the_event_that_created_it(doc):
    key, session = lanes(doc)
    expected = {
        key['credential']: {
            'r4-1-iam-users-created-since-incident': ('backdoor-admin', 'CreateUser'),
            'r4-1-access-keys-created-since-incident': ('backdoor-admin', 'CreateAccessKey'),
            'r4-1-iam-roles-created-since-incident': ('ops-maintenance', 'CreateRole')},
        session['credential']: {
            'r3-3-ec2-outside-allowed-regions': (None, 'RunInstances'),
            'r4-2-ebs-snapshot-shared': (None, 'ModifySnapshotAttribute')},
    }
    finding_ids = {f['id'] for f in doc['findings']}
    for s in (key, session):
        links = {c['policy']: c for c in s['created']}
        assert set(links) == set(expected[s['credential']])
        by_id = {e['id']: e for e in s['timeline']}
        for policy, link in links.items():
            name, event = expected[s['credential']][policy]
            assert name in (None, link['resource_id'])
            assert link['how'] == 'created' and link['finding'] in finding_ids
            assert event in [e['event'] for e in link['events']], link
            for e in link['events']:  # each linked event names the finding back
                assert link['finding'] in by_id[e['id']]['findings']
        # a read never "creates or changes"
        assert not any(e['event'].startswith(('Describe', 'Get', 'List'))
                       for c in s['created'] for e in c['events'])
    # the leaked user existed before: its finding is not the attacker's creation
    assert not any(c['resource_id'] == 'deploy-bot' for c in key['created'] + session['created'])
    assert doc['activity']['summary']['linked_findings'] == 5


def test_blast_radius_what_was_contained(doc):
    key, session = lanes(doc)

    def got(s):
        return {(c['policy'], c['resource_id'], c['action'], c['status'], c['matched'])
                for c in s['contained']}
    assert got(key) == {
        ('x1-deactivate-quarantined-keys', 'deploy-bot', 'fixture-deactivate-keys', 'done',
         'credential'),
        ('x3-deactivate-unknown-user-keys', 'backdoor-admin', 'fixture-deactivate-keys', 'done',
         'resource')}
    miner = next(c['resource_id'] for c in session['created']
                 if c['policy'] == 'r3-3-ec2-outside-allowed-regions')
    # deactivating deploy-bot's key does not end the session it opened: not listed here
    assert got(session) == {
        ('x7-snapshot-then-terminate', miner, 'snapshot', 'planned', 'resource'),
        ('x7-snapshot-then-terminate', miner, 'terminate', 'planned', 'resource')}


def test_nothing_contained_is_said_plainly(tmp_path):
    src = copy_fixture(tmp_path)
    for d in os.listdir(os.path.join(src, 'prod')):
        for p in ('x1-deactivate-quarantined-keys', 'x3-deactivate-unknown-user-keys',
                  'x7-snapshot-then-terminate'):
            shutil.rmtree(os.path.join(src, 'prod', d, p), ignore_errors=True)
            shutil.rmtree(os.path.join(src, 'dev', d, p), ignore_errors=True)
    doc = build([src])
    assert [s['contained'] for s in doc['activity']['suspects']] == [[], []]
    md = render.render(doc, 'md')
    assert md.count('nothing yet: no respond result') == 2
    assert md.count("revoke the role's sessions (X5)") == 1  # for the session only
    assert render.render(doc, 'html').count('Nothing yet: no respond result') == 2


def test_coverage_says_what_was_not_read(doc):
    cov = doc['activity']['coverage']
    assert [(c['account'], c['region']) for c in cov] == [('prod', 'eu-north-1'),
                                                         ('prod', 'us-east-1')]
    assert all(c['sources'] == ['event-history'] and c['data_events'] == 'not-recorded'
               for c in cov)
    assert doc['activity']['summary']['not_recorded'] == ['prod/eu-north-1', 'prod/us-east-1']
    md = render.render(doc, 'md')
    assert 'were not read in prod/eu-north-1, prod/us-east-1' in md


# -- every format ------------------------------------------------------------------------

def test_markdown_has_timeline_and_blast_radius(doc):
    md = render.render(doc, 'md')
    section = md[md.index('## Activity review: attack timeline and blast radius'):]
    key, session = lanes(doc)
    assert section.index(f"### Suspect credential `{key['credential']}` (prod)") < \
        section.index(f"### Suspect credential `{session['credential']}` (prod)")
    assert f"Chain: `{key['credential']}` → `{session['credential']}`" in section
    for s in (key, session):
        part = section[section.index(f"### Suspect credential `{s['credential']}`"):]
        for heading in ('**What it did:**', '**What it created or changed:**',
                        '**What was contained:**', f"<summary>Timeline: {s['events']} event(s)"):
            assert heading in part
        rows = [ln for ln in part[:part.index('</details>')].splitlines()
                if re.match(r'^\| 2026-', ln)]
        assert [r.split(' | ')[0][2:] for r in rows] == [e['time'] for e in s['timeline']]


def test_markdown_caps_long_timelines(tmp_path, monkeypatch):
    monkeypatch.setattr(render, 'MD_EVENTS_PER_SUSPECT', 5)
    md = render.render(build(), 'md')
    key, session = lanes(build())
    assert f"… and {key['events'] - 5} more: see report.html or report.json." in md
    assert f"… and {session['events'] - 5} more: see report.html or report.json." in md


def test_text_summary_is_short(doc):
    text = render.render(doc, 'text')
    block = text[text.index('Activity review:'):text.index('Errored policy runs')]
    assert len(block.strip().splitlines()) <= 14
    key, session = lanes(doc)
    assert f"{key['credential']} (prod): {key['events']} event(s)" in block
    assert f"{session['credential']} (prod), opened with {key['credential']}: " \
           f"{session['events']} event(s)" in block
    assert 'created or changed: 3 finding(s)' in block and 'contained: 2' in block


def test_junit_stays_valid_with_an_activity_suite(doc):
    text = render.render(doc, 'junit')
    root = ET.fromstring(text)
    suites = {s.get('name'): s for s in root.findall('testsuite')}
    act = suites['activity-review']
    cases = act.findall('testcase')
    assert len(cases) == 2 and act.get('tests') == '2' and act.get('failures') == '0'
    assert int(root.get('tests')) == sum(int(s.get('tests')) for s in suites.values())
    assert int(root.get('tests')) == len(list(root.iter('testcase')))
    props = {p.get('name'): p.get('value') for p in act.find('properties')}
    assert props['events'] == '22' and props['worst-severity'] == 'critical'
    out = cases[0].find('system-out').text
    assert 'Chain: ' in out and 'Created or changed: backdoor-admin' in out
    assert sum(c.find('system-out').text.count('\n2026-') for c in cases) == 22


def test_html_timeline_is_an_offline_svg_with_a_mark_per_event(doc):
    text = render.render(doc, 'html')
    balance = _Balance()
    balance.feed(text)
    balance.close()
    assert balance.errors == [] and balance.stack == []
    root = ET.fromstring(text)
    assert not root.findall('.//link') and not root.findall('.//img')
    assert not [s for s in root.iter('script') if s.get('src')]
    assert 'http://' not in text and 'https://' not in text and '@import' not in text
    svg = next(root.iter('svg'))
    suspects = doc['activity']['suspects']
    events = [e for s in suspects for e in s['timeline']]
    circles = list(svg.iter('circle'))
    assert len(circles) == len(events)
    titles = [c.find('title').text for c in circles]
    assert all(any(e['event'] in t for e in events) for t in titles)
    leave = next(t for t in titles if 'LeaveOrganization' in t)
    assert 'FAILED AWSOrganizationsNotInUseException' in leave and 'defense-evasion' in leave
    failed = [c for c in circles if c.get('fill') == 'none']
    assert len(failed) == sum(s['failed'] for s in suspects)
    colours = {c.get('stroke') for c in circles}
    assert len(colours) == len({e['tactic'] for e in events})  # one colour per tactic
    # lane labels, legend and links: every in-page link has its target
    assert all(s['credential'] in ''.join(svg.itertext()) for s in suspects)
    ids = {el.get('id') for el in root.iter() if el.get('id')}
    hrefs = [a.get('href') for a in root.iter('a') if a.get('href', '').startswith('#')]
    assert hrefs and all(h[1:] in ids for h in hrefs), [h for h in hrefs if h[1:] not in ids]
    section = next(sec for sec in root.iter('section') if sec.get('id') == 'activity')
    body = ''.join(section.itertext())
    for heading in ('What it did', 'What it created or changed', 'What was contained'):
        assert heading in body


def test_no_activity_no_section():
    doc = document.build(load_runs(['tests/data/report/org']), now=NOW)
    assert doc['activity']['suspects'] == []
    for fmt in ('md', 'html', 'text'):
        assert 'Activity review' not in render.render(doc, fmt)
    assert 'activity-review' not in render.render(doc, 'junit')
    assert activity.timeline_svg(doc['activity']) is None


def test_malformed_annotations_do_not_break_the_report(tmp_path):
    src = copy_fixture(tmp_path)

    def damage(resources):
        evs = resources[0]['c7n:activity']
        evs.append('not an event')
        evs.append({'EventName': 'Mystery'})  # no id, time, suspect
        evs[0]['Suspect'] = None
        evs[1]['Resources'] = [None, {'Type': 'X'}]
        resources[0]['c7n:activity-coverage'] = {'DataEvents': 'maybe', 'Window': 'x'}
    edit_resources(src, ACTIVITY_RUNS[0], damage)
    doc = build([src])
    for fmt in render.FORMATS:
        render.render(doc, fmt)
    cov = next(c for c in doc['activity']['coverage'] if c['region'] == 'us-east-1')
    assert cov['data_events'] == 'unknown' and cov['window'] == {'start': None, 'end': None}
    with open(SCHEMA) as fh:
        jsonschema.Draft202012Validator(json.load(fh)).validate(
            json.loads(render.render(doc, 'json')))


def test_why_column_summarises_the_annotations(doc):
    f = next(f for f in doc['findings'] if f['policy'] == 'r2-2-suspect-activity'
             and f['region'] == 'us-east-1')
    key, session = lanes(doc)
    assert f['why'][0].startswith('21 suspect event(s), worst critical: ')
    assert f"{key['credential']} (13)" in f['why'][0] and session['credential'] in f['why'][0]
    assert f['why'][1].startswith('activity read event-history, data events not recorded')
