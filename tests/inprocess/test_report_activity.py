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


# -- the timeline ------------------------------------------------------------------------

def test_timeline_groups_every_event_by_suspect_credential_in_time_order(doc):
    raw = raw_events()
    act = doc['activity']
    assert act['summary']['suspects'] == 1 and act['summary']['accounts'] == ['prod']
    s = act['suspects'][0]
    key = raw[0]['Suspect']['Credential']
    session = next(e['AccessKeyId'] for e in raw if e['AccessKeyId'].startswith('ASIA'))
    assert (s['credential'], s['account'], s['account_id']) == (key, 'prod', '111111111111')
    assert s['via'] == [key, session]
    assert s['reason'] == 'AWS quarantine marker AWSCompromisedKeyQuarantineV2 on user deploy-bot'
    # every event of both regions' runs, once, in time order
    assert sorted(e['id'] for e in s['timeline']) == sorted(e['EventId'] for e in raw)
    times = [e['time'] for e in s['timeline']]
    assert times == sorted(times) and (s['first_seen'], s['last_seen']) == (times[0], times[-1])
    assert s['regions'] == ['eu-north-1', 'us-east-1']
    assert s['source_ips'] == [{'ip': '203.0.113.66', 'events': len(raw)}]
    assert s['principals'] == ['arn:aws:iam::111111111111:user/deploy-bot',
                               'arn:aws:sts::111111111111:assumed-role/ops-maintenance/maintenance']
    by_name = {e['event']: e for e in s['timeline']}
    miner = by_name['RunInstances']
    assert (miner['region'], miner['access_key_id'], miner['via'], miner['catalogue_id']) == (
        'eu-north-1', session, [key, session], 'ec2-run-gpu-instances')
    assert miner['title'].startswith('GPU, accelerator or very large instances launched')
    # a failed call is kept: an attempt is evidence
    leave = by_name['LeaveOrganization']
    assert (leave['error_code'], leave['tactic'], leave['technique'], leave['severity']) == (
        'AWSOrganizationsNotInUseException', 'defense-evasion', 'T1666', 'high')
    assert s['failed'] == 1
    # calls the catalogue does not know stay on the timeline
    assert by_name['StopInstances']['tactic'] == 'unclassified'
    assert by_name['StopInstances']['severity'] is None


def test_same_event_from_both_sources_and_two_runs_is_one_event(tmp_path):
    src = copy_fixture(tmp_path)
    with open(os.path.join(src, ACTIVITY_RUNS[0], 'resources.json')) as fh:
        first = json.load(fh)[0]
    twin = dict(first['c7n:activity'][0], Source='trail-logs')

    def add_twin(resources):
        resources[0]['c7n:activity'].append(twin)
    edit_resources(src, ACTIVITY_RUNS[1], add_twin)  # another run, the other source
    s = build([src])['activity']['suspects'][0]
    assert s['events'] == len(raw_events())
    ev = next(e for e in s['timeline'] if e['id'] == twin['EventId'])
    assert ev['sources'] == ['event-history', 'trail-logs']


def test_two_credentials_are_two_lanes_ordered_by_first_event(tmp_path):
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
    assert [s['credential'] for s in suspects][0] == 'AKIAOTHERSUSPECT0001'
    assert [s['events'] for s in suspects] == [1, len(raw_events())]
    svg = activity.timeline_svg(doc['activity'])
    assert [lane['label'] for lane in svg['lanes']] == [s['credential'] for s in suspects]
    assert svg['lanes'][0]['marks'][0]['x'] == svg['label_width']  # the earliest event


# -- the blast radius --------------------------------------------------------------------

def test_blast_radius_what_it_did(doc):
    s = doc['activity']['suspects'][0]
    assert sum(s['by_tactic'].values()) == s['events']
    assert list(s['by_tactic']) == [t for t in activity.TACTIC_ORDER if t in s['by_tactic']]
    assert s['by_tactic']['credential-access'] == 3  # secret, parameter, user data
    assert s['by_tactic']['persistence'] == 3
    rows = {r['event']: r for r in s['by_event']}
    assert rows['GetSecretValue'] == {
        'event': 'GetSecretValue', 'source': 'secretsmanager.amazonaws.com', 'count': 1,
        'failed': 0, 'tactic': 'credential-access', 'technique': 'T1555.006',
        'severity': 'high'}
    assert s['by_event'][0]['severity'] == 'critical' == s['severity']
    assert doc['activity']['summary']['severity'] == 'critical'


def test_blast_radius_links_each_finding_to_the_event_that_created_it(doc):
    s = doc['activity']['suspects'][0]
    links = {(c['policy'], c['resource_id']): c for c in s['created']}
    by_id = {e['id']: e for e in s['timeline']}
    expected = {
        'r4-1-iam-users-created-since-incident': ('backdoor-admin', 'CreateUser'),
        'r4-1-access-keys-created-since-incident': ('backdoor-admin', 'CreateAccessKey'),
        'r4-1-iam-roles-created-since-incident': ('ops-maintenance', 'CreateRole'),
        'r3-3-ec2-outside-allowed-regions': (None, 'RunInstances'),
        'r4-2-ebs-snapshot-shared': (None, 'ModifySnapshotAttribute'),
    }
    assert {p for p, _ in links} == set(expected)
    for (policy, rid), link in links.items():
        name, event = expected[policy]
        assert name in (None, rid)
        assert link['how'] == 'created'
        assert event in [e['event'] for e in link['events']], link
        for e in link['events']:  # each linked event names the finding back
            assert link['finding'] in by_id[e['id']]['findings']
        assert link['finding'] in {f['id'] for f in doc['findings']}
    # the leaked user existed before: its finding is not the attacker's creation
    assert not any(rid == 'deploy-bot' for _, rid in links)
    # a read never "creates or changes"
    assert not any(e['event'].startswith(('Describe', 'Get', 'List'))
                   for c in s['created'] for e in c['events'])
    assert doc['activity']['summary']['linked_findings'] == 5


def test_blast_radius_what_was_contained(doc):
    s = doc['activity']['suspects'][0]
    got = {(c['policy'], c['resource_id'], c['action'], c['status'], c['matched'])
           for c in s['contained']}
    miner = next(c['resource_id'] for c in s['created']
                 if c['policy'] == 'r3-3-ec2-outside-allowed-regions')
    assert got == {
        ('x1-deactivate-quarantined-keys', 'deploy-bot', 'fixture-deactivate-keys', 'done',
         'credential'),
        ('x3-deactivate-unknown-user-keys', 'backdoor-admin', 'fixture-deactivate-keys', 'done',
         'resource'),
        ('x7-snapshot-then-terminate', miner, 'snapshot', 'planned', 'resource'),
        ('x7-snapshot-then-terminate', miner, 'terminate', 'planned', 'resource'),
    }


def test_nothing_contained_is_said_plainly(tmp_path):
    src = copy_fixture(tmp_path)
    for d in os.listdir(os.path.join(src, 'prod')):
        for p in ('x1-deactivate-quarantined-keys', 'x3-deactivate-unknown-user-keys',
                  'x7-snapshot-then-terminate'):
            shutil.rmtree(os.path.join(src, 'prod', d, p), ignore_errors=True)
            shutil.rmtree(os.path.join(src, 'dev', d, p), ignore_errors=True)
    doc = build([src])
    assert doc['activity']['suspects'][0]['contained'] == []
    assert 'nothing yet: no respond result' in render.render(doc, 'md')
    assert 'Nothing yet: no respond result' in render.render(doc, 'html')


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
    s = doc['activity']['suspects'][0]
    section = md[md.index('## Activity review: attack timeline and blast radius'):]
    assert f"### Suspect credential `{s['credential']}` (prod)" in section
    assert f"Chain: `{s['via'][0]}` → `{s['via'][1]}`" in section
    for heading in ('**What it did:**', '**What it created or changed:**',
                    '**What was contained:**', '<summary>Timeline: 22 event(s)</summary>'):
        assert heading in section
    rows = [ln for ln in section.splitlines() if re.match(r'^\| 2026-', ln)]
    assert len(rows) == s['events']
    assert [r.split(' | ')[0][2:] for r in rows] == [e['time'] for e in s['timeline']]


def test_markdown_caps_long_timelines(tmp_path, monkeypatch):
    monkeypatch.setattr(render, 'MD_EVENTS_PER_SUSPECT', 5)
    md = render.render(build(), 'md')
    assert '… and 17 more: see report.html or report.json.' in md


def test_text_summary_is_short(doc):
    text = render.render(doc, 'text')
    block = text[text.index('Activity review:'):text.index('Errored policy runs')]
    assert len(block.strip().splitlines()) <= 12
    s = doc['activity']['suspects'][0]
    assert f"{s['credential']} (prod) via {s['via'][1]}: 22 event(s)" in block
    assert 'created or changed: 5 finding(s)' in block and 'contained: 4' in block


def test_junit_stays_valid_with_an_activity_suite(doc):
    text = render.render(doc, 'junit')
    root = ET.fromstring(text)
    suites = {s.get('name'): s for s in root.findall('testsuite')}
    act = suites['activity-review']
    cases = act.findall('testcase')
    assert len(cases) == 1 and act.get('tests') == '1' and act.get('failures') == '0'
    assert int(root.get('tests')) == sum(int(s.get('tests')) for s in suites.values())
    assert int(root.get('tests')) == len(list(root.iter('testcase')))
    props = {p.get('name'): p.get('value') for p in act.find('properties')}
    assert props['events'] == '22' and props['worst-severity'] == 'critical'
    out = cases[0].find('system-out').text
    assert 'Chain: ' in out and 'Created or changed: backdoor-admin' in out
    assert out.count('\n2026-') == 22


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
    s = doc['activity']['suspects'][0]
    circles = list(svg.iter('circle'))
    assert len(circles) == s['events']
    titles = [c.find('title').text for c in circles]
    assert all(any(e['event'] in t for e in s['timeline']) for t in titles)
    leave = next(t for t in titles if 'LeaveOrganization' in t)
    assert 'FAILED AWSOrganizationsNotInUseException' in leave and 'defense-evasion' in leave
    failed = [c for c in circles if c.get('fill') == 'none']
    assert len(failed) == s['failed']
    colours = {c.get('stroke') for c in circles}
    assert len(colours) == len(s['by_tactic'])  # one colour per tactic
    # lane label, legend and links: every in-page link has its target
    assert s['credential'] in ''.join(svg.itertext())
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
    s = doc['activity']['suspects'][0]
    assert f['why'][0].startswith('21 suspect event(s), worst critical: ' + s['credential'])
    assert f['why'][1].startswith('activity read event-history, data events not recorded')
