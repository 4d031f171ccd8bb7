"""The incident report on a recorded c7n-org sweep (tests/data/report/org).

The fixture is real output of the stock c7n-org with the pack against the
emulator (tests/data/generate_report_fixture.py): two accounts, two regions,
findings, clean, skipped and errored runs, a respond run with the pack's
action results and one in --dryrun. Golden files are in
tests/data/report/golden; after an intended change to the output, rewrite
them with UPDATE_GOLDEN=1 and review the diff.
"""
import datetime
import html.parser
import io
import json
import os
import shutil
import xml.etree.ElementTree as ET
from contextlib import redirect_stderr, redirect_stdout

import jsonschema
import pytest

from custodian_ext import cli
from custodian_ext.report import document, render
from custodian_ext.report.loader import load_runs
from tests.support import REPO

FIXTURE = 'tests/data/report/org'
GOLDEN = os.path.join(REPO, 'tests', 'data', 'report', 'golden')
SCHEMA = os.path.join(REPO, 'docs', 'report-schema.json')
NOW = datetime.datetime(2026, 11, 28, 15, 0, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # sources and paths in the report are relative to it


def fixture_doc(fail_on='high', paths=(FIXTURE,)):
    return document.build(load_runs(list(paths)), fail_on=fail_on, sources=list(paths), now=NOW)


def copy_fixture(tmp_path, drop=()):
    """A copy of the fixture without the policy folders named in ``drop``."""
    dest = tmp_path / 'org'
    shutil.copytree(os.path.join(REPO, FIXTURE), dest)
    for rel in drop:
        for path in sorted(dest.glob(rel)):
            shutil.rmtree(path)
    return str(dest)


def report(argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(['report'] + argv)
    return code, out.getvalue(), err.getvalue()


# -- golden output -----------------------------------------------------------

@pytest.mark.parametrize('fmt', ['md', 'json', 'junit', 'text'])
def test_golden_output(fmt):
    text = render.render(fixture_doc(), fmt)
    path = os.path.join(GOLDEN, render.FORMATS[fmt][0])
    if os.environ.get('UPDATE_GOLDEN'):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, 'w') as fh:
            fh.write(text)
    with open(path) as fh:
        assert text == fh.read(), f'{path} differs; rerun with UPDATE_GOLDEN=1 and review'


def test_order_contents_and_counts():
    doc = fixture_doc()
    # runbook step order, then severity
    assert [f['step'] for f in doc['findings']] == ['R3.3', 'R3.3', 'X1', 'X2', 'X6']
    x1 = next(f for f in doc['findings'] if f['step'] == 'X1')
    assert (x1['account'], x1['account_id'], x1['region'], x1['resource_id']) == (
        'prod', '111111111111', 'us-east-1', 'deploy-bot')
    assert 'quarantine marker: AWSCompromisedKeyQuarantineV2' in x1['why']
    assert x1['respond_policy'] == 'x1-deactivate-quarantined-keys'
    assert x1['remediation'].startswith('Rotate in stages')
    assert x1['age'] == '1 h' and x1['created'].startswith('2026-11-28T13:')
    # what the respond run did to it, from action-results-*.json
    assert x1['contained'] == [{
        'policy': 'x1-deactivate-quarantined-keys', 'action': 'fixture-deactivate-keys',
        'status': 'done', 'reason': None, 'time': x1['contained'][0]['time']}]
    # a --dryrun respond run is what would be contained
    r33 = [f for f in doc['findings'] if f['step'] == 'R3.3']
    assert all([(c['action'], c['status']) for c in f['contained']]
               == [('snapshot', 'planned'), ('terminate', 'planned')] for f in r33)
    s = doc['summary']
    assert s['by_severity'] == {'critical': 2, 'high': 2, 'medium': 1, 'low': 0, 'info': 0}
    assert [(x['step'], x['total']) for x in s['by_step']] == [
        ('R3.3', 2), ('X1', 1), ('X2', 1), ('X6', 1)]
    assert s['runs']['errored'] == 2 and s['runs']['missing'] == 0
    assert s['runs']['total'] == s['runs']['detect'] + s['runs']['respond'] == 28
    assert [a['name'] for a in s['accounts']] == ['dev', 'prod']
    # errored runs are listed, never clean
    assert {(p['policy'], p['account'], p['region']) for p in doc['problems']} == {
        ('x6-lightsail-instances', 'prod', 'eu-north-1'),
        ('x6-lightsail-instances', 'dev', 'eu-north-1')}
    assert not [r for r in doc['runs'] if r['policy'] == 'x6-lightsail-instances'
                and r['region'] == 'eu-north-1' and r['status'] == 'clean']
    assert {r['status'] for r in doc['runs']} == {'findings', 'clean', 'skipped', 'errored'}
    manual = {m['step']: m for m in doc['manual_steps']}
    assert list(manual) == ['X10', 'X2', 'R3.1']
    assert manual['X2']['accounts'] == ['prod']


def test_json_matches_the_committed_schema():
    with open(SCHEMA) as fh:
        schema = json.load(fh)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    doc = json.loads(render.render(fixture_doc(), 'json'))
    validator.validate(doc)
    # the schema is strict enough to catch a broken document
    broken = dict(doc, gate=dict(doc['gate'], exit_code=3))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)
    del broken['gate']
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


class _Balance(html.parser.HTMLParser):
    """Checks that every element is closed in order (void elements excepted)."""
    VOID = {'meta', 'br', 'input', 'link', 'img', 'hr', 'col', 'wbr'}

    def __init__(self):
        super().__init__()
        self.stack, self.errors = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass  # <br/>: opened and closed

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f'</{tag}> closes <{self.stack[-1] if self.stack else None}>')
        else:
            self.stack.pop()


def test_html_is_well_formed_self_contained_and_has_every_finding():
    doc = fixture_doc()
    text = render.render(doc, 'html')
    balance = _Balance()
    balance.feed(text)
    balance.close()
    assert balance.errors == [] and balance.stack == []
    root = ET.fromstring(text)  # strict XML well-formedness too
    # no external assets: it must work offline
    assert not root.findall('.//link') and not root.findall('.//img')
    assert not [s for s in root.iter('script') if s.get('src')]
    assert 'http://' not in text and 'https://' not in text
    table = next(t for t in root.iter('table') if t.get('id') == 'findings')
    rows = table.find('tbody').findall('tr')
    assert len(rows) == len(doc['findings'])
    for row, f in zip(rows, doc['findings']):
        cells = [''.join(c.itertext()) for c in row.findall('td')]
        assert (row.get('data-severity'), row.get('data-account'), row.get('data-step')) == (
            f['severity'], f['account'], f['step'])
        assert f['policy'] in cells[2] and f['resource_id'] in cells[5] and f['region'] == cells[4]
        for why in f['why']:
            assert why in cells[6]
    # filters for severity, account and step offer what is in the table
    selects = {s.get('id'): [o.get('value') for o in s.findall('option')]
               for s in root.iter('select')}
    assert selects['filter-severity'] == ['', 'critical', 'high', 'medium']
    assert selects['filter-account'] == ['', 'prod']
    assert selects['filter-step'] == ['', 'R3.3', 'X1', 'X2', 'X6']
    assert 'errored' in ''.join(next(s for s in root.iter('section')
                                     if s.get('id') == 'problems').itertext())


def test_html_escapes_what_resources_contain(tmp_path):
    src = copy_fixture(tmp_path)
    path = os.path.join(src, 'prod', 'us-east-1', 'x1-quarantined-user-active-keys',
                        'resources.json')
    with open(path) as fh:
        resources = json.load(fh)
    resources[0]['UserName'] = '<script>alert(1)</script>&|x'
    with open(path, 'w') as fh:
        json.dump(resources, fh)
    doc = document.build(load_runs([src]), now=NOW)
    text = render.render(doc, 'html')
    assert '<script>alert(1)' not in text and '&lt;script&gt;alert(1)&lt;/script&gt;&amp;|x' in text
    ET.fromstring(text)
    ET.fromstring(render.render(doc, 'junit'))
    # a | would end the Markdown table cell
    assert '| `<script>alert(1)</script>&\\|x` |' in render.render(doc, 'md')


def test_junit_one_case_per_policy_account_region():
    doc = fixture_doc('high')
    root = ET.fromstring(render.render(doc, 'junit'))
    cases = list(root.iter('testcase'))
    assert len(cases) == len(doc['runs']) == 28
    by_name = {c.get('name'): c for c in cases}
    assert len(by_name) == 28
    x1 = by_name['x1-quarantined-user-active-keys [prod/us-east-1]']
    assert x1.find('failure').get('message') == '1 finding(s) at or above high'
    x6 = by_name['x6-stopped-instances [prod/eu-north-1]']  # medium: below the gate
    assert x6.find('failure') is None and 'i-' in x6.find('system-out').text
    err = by_name['x6-lightsail-instances [dev/eu-north-1]']
    assert err.find('error').get('type') == 'errored'
    assert by_name['x2-root-access-keys [dev/eu-north-1]'].find('skipped') is not None
    assert by_name['x2-root-access-keys [dev/us-east-1]'].find('*') is None  # clean: passes
    assert root.get('errors') == '2' and root.get('failures') == '3'
    # the gate decides what fails
    root = ET.fromstring(render.render(fixture_doc('critical'), 'junit'))
    assert root.get('failures') == '2'
    root = ET.fromstring(render.render(fixture_doc(None), 'junit'))
    assert root.get('failures') == '0'


def test_markdown_caps_rows_per_policy(monkeypatch):
    monkeypatch.setattr(render, 'MD_ROWS_PER_POLICY', 1)
    text = render.render(fixture_doc(), 'md')
    assert '… and 1 more: see report.html or report.json.' in text


# -- exit codes --------------------------------------------------------------

LIGHTSAIL = '*/*/x6-lightsail-instances'


def test_exit_2_when_any_policy_errored(tmp_path):
    for gate in ([], ['--fail-on', 'critical'], ['--fail-on', 'info']):
        code, out, err = report([FIXTURE] + gate)
        assert code == 2, gate
        assert 'Result: ERROR (exit 2)' in out


@pytest.mark.parametrize('gate,code', [
    (None, 0), ('critical', 1), ('high', 1), ('HIGH', 1), ('medium', 1), ('info', 1)])
def test_exit_1_at_or_above_the_gate(tmp_path, gate, code):
    src = copy_fixture(tmp_path, drop=[LIGHTSAIL])
    assert report([src] + (['--fail-on', gate] if gate else []))[0] == code


def test_exit_0_when_findings_are_below_the_gate(tmp_path):
    # keep only the medium X6 finding
    src = copy_fixture(tmp_path, drop=[LIGHTSAIL, '*/*/x1-*', '*/*/x2-*', '*/*/r3-3-*'])
    assert report([src, '--fail-on', 'high'])[0] == 0
    assert report([src, '--fail-on', 'medium'])[0] == 1


def test_a_run_c7n_org_did_not_write_is_missing_and_exit_2(tmp_path):
    src = copy_fixture(tmp_path, drop=[LIGHTSAIL, 'dev/us-east-1/x1-quarantined-user-active-keys'])
    code, out, _ = report([src, '--fail-on', 'critical', '--format', 'json', '-o', str(tmp_path)])
    assert code == 2
    with open(tmp_path / 'report.json') as fh:
        doc = json.load(fh)
    assert [(p['policy'], p['account'], p['region'], p['status']) for p in doc['problems']] == [
        ('x1-quarantined-user-active-keys', 'dev', 'us-east-1', 'missing')]


def test_writes_every_format_and_prints_one_to_stdout(tmp_path):
    code, out, err = report([FIXTURE, '--format', 'md,html,json,junit', '-o', str(tmp_path / 'r')])
    assert code == 2 and err == ''
    assert sorted(os.listdir(tmp_path / 'r')) == [
        'report.html', 'report.json', 'report.junit.xml', 'report.md']
    assert f"wrote {tmp_path / 'r' / 'report.html'}" in out
    code, out, err = report([FIXTURE, '--format', 'md', '-o', '-'])
    assert out.startswith('# Incident report\n')


@pytest.mark.parametrize('argv,needle', [
    (['{empty}'], 'the folder is empty; run the policies first'),
    (['{notout}'], 'no Custodian output here (no metadata.json under it)'),
    (['{tmp}/nope'], 'no such folder'),
    ([FIXTURE, '--format', 'md,pdf'],
     "--format: unknown format 'pdf'; choose from md, html, json, junit, text"),
    ([FIXTURE, '--fail-on', 'severe'], "--fail-on: unknown severity 'severe'"),
    ([FIXTURE, '--format', 'md,json', '-o', '-'], '-o -: name exactly one --format'),
    (['{badmeta}'], 'not a Custodian metadata.json'),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, argv, needle):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'notout' / 'x').mkdir(parents=True)
    (tmp_path / 'notout' / 'x' / 'notes.txt').write_text('hello')
    (tmp_path / 'badmeta' / 'p').mkdir(parents=True)
    (tmp_path / 'badmeta' / 'p' / 'metadata.json').write_text('[1, 2]')
    argv = [a.format(empty=tmp_path / 'empty', notout=tmp_path / 'notout', tmp=tmp_path,
                     badmeta=tmp_path / 'badmeta') for a in argv]
    code, out, err = report(argv)
    assert code == 2 and out == ''
    assert err.count('\n') == 1 and err.startswith('custodian-ext: error: ') and needle in err


# -- layouts -------------------------------------------------------------------

def test_custodian_run_layouts(tmp_path):
    """`custodian run` output: OUT/<policy>/ (one region) and OUT/<region>/<policy>/."""
    prod = os.path.join(REPO, FIXTURE, 'prod')
    one = tmp_path / 'one'
    shutil.copytree(os.path.join(prod, 'us-east-1'), one)
    runs = load_runs([str(one)])
    assert {(r.account, r.region) for r in runs} == {('111111111111', 'us-east-1')}
    many = tmp_path / 'many'
    shutil.copytree(prod, many)
    runs = load_runs([str(many)])
    assert {r.region for r in runs} == {'us-east-1', 'eu-north-1'}
    assert {r.account for r in runs} == {'111111111111'}
    doc = document.build(runs, now=NOW)
    assert doc['summary']['findings'] == 5 and doc['summary']['runs']['missing'] == 0


@pytest.mark.parametrize('layout', ['custodian run', 'c7n-org'])
def test_a_policy_that_started_and_never_finished_is_an_error(tmp_path, layout):
    """A sweep killed mid-run (out of memory, a stopped machine): c7n had written the
    policy's custodian-run.log as it started, never its metadata.json. The run is errored,
    named after its folder, where a report that skipped it would have read as complete."""
    src = copy_fixture(tmp_path, drop=[LIGHTSAIL])
    out = os.path.join(src, 'prod') if layout == 'custodian run' else src
    assert report([out])[0] == 0  # every run finished, no gate: exit 0
    folder = os.path.join(src, 'prod', 'eu-north-1', 'x1-quarantined-user-active-keys')
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    with open(os.path.join(folder, 'custodian-run.log'), 'w') as fh:
        fh.write('2026-11-28 14:59:01,001 - custodian.policy - INFO - running\n')
    runs = [r for r in load_runs([out]) if r.policy == 'x1-quarantined-user-active-keys'
            and r.region == 'eu-north-1' and r.account in ('prod', 'unknown')]
    assert [(r.status, r.account) for r in runs] == [
        ('errored', 'unknown' if layout == 'custodian run' else 'prod')]
    assert runs[0].error.startswith('policy did not finish: custodian-run.log but no '
                                    'metadata.json')
    code, text, _ = report([out])
    assert code == 2 and 'x1-quarantined-user-active-keys' in text and 'Result: ERROR' in text


def test_a_detect_policy_that_notifies_still_reports_findings(tmp_path):
    """Only policies that change resources are respond runs; notify does not count."""
    src = copy_fixture(tmp_path, drop=[LIGHTSAIL])
    path = os.path.join(src, 'prod', 'eu-north-1', 'r3-3-ec2-outside-allowed-regions',
                        'metadata.json')
    with open(path) as fh:
        meta = json.load(fh)
    meta['policy']['tags'] = []  # not even the pack's detect tag
    meta['policy']['actions'] = [{'type': 'notify', 'to': ['secops@example.com']}]
    with open(path, 'w') as fh:
        json.dump(meta, fh)
    doc = document.build(load_runs([src]), now=NOW)
    assert len([f for f in doc['findings']
                if f['policy'] == 'r3-3-ec2-outside-allowed-regions']) == 2
    meta['policy']['actions'].append('stop')
    with open(path, 'w') as fh:
        json.dump(meta, fh)
    doc = document.build(load_runs([src]), now=NOW)
    assert not [f for f in doc['findings'] if f['policy'] == 'r3-3-ec2-outside-allowed-regions']
    assert {(c['resource_id'][:2], c['action'], c['status']) for c in doc['contained']
            if c['policy'] == 'r3-3-ec2-outside-allowed-regions'} == {('i-', 'stop', 'done')}
