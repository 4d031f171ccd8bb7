"""What a person looks at first: priorities (critical and high findings, how to contain
them, what to do by hand) and the per-account chart of an organization sweep.

Through the real `custodian-ext report` on the recorded c7n-org sweep
(tests/data/report/org), and the JSON document checked against the schema.
"""
import json
import os
import shutil
import xml.etree.ElementTree as ET

import jsonschema
import yaml

from custodian_ext.report import chart
from tests.support import REPO, run_cli

FIXTURE = os.path.join(REPO, 'tests', 'data', 'report', 'org')
SCHEMA = os.path.join(REPO, 'docs', 'report-schema.json')


def plain_env():
    return {k: v for k, v in os.environ.items() if not k.startswith('AWS_')}


def report(tmp_path, src=FIXTURE, *extra, check=2):
    out = tmp_path / 'out'
    proc = run_cli(['custodian-ext', 'report', str(src), '--format', 'json,html', '-o',
                    str(out), *extra], plain_env(), check=check)
    with open(out / 'report.json') as fh:
        doc = json.load(fh)
    return proc, doc, (out / 'report.html').read_text()


def test_what_to_do_first_comes_first_in_the_terminal_and_the_html(tmp_path):
    proc, doc, html = report(tmp_path)
    assert [(p['severity'], p['step'], p['policy'], p['findings']) for p in doc['priorities']] \
        == [('critical', 'X1', 'x1-quarantined-user-active-keys', 1),
            ('critical', 'X2', 'x2-root-access-keys', 1),
            ('high', 'R3.3', 'r3-3-ec2-outside-allowed-regions', 2)]
    x1, x2, r33 = doc['priorities']
    assert x1['respond_policy'] == 'x1-deactivate-quarantined-keys'
    assert x1['contained'] == {'done': 1} and x1['uncontained'] == 0
    assert x2['respond_policy'] is None and x2['remediation'].startswith('Sign in as the root')
    assert r33['contained'] == {'planned': 2} and r33['uncontained'] == 2
    # the terminal: first thing after the sweep line, before the findings by step
    text = proc.stdout
    first = text.index('What to do first:')
    assert first < text.index('R3.3  Resources outside the allowed regions')
    assert text.index('1. [CRITICAL] X1 x1-quarantined-user-active-keys') < \
        text.index('3. [HIGH    ] R3.3 r3-3-ec2-outside-allowed-regions')
    assert 'contain: x1-deactivate-quarantined-keys (1 done)' in text
    assert 'contain: no respond policy: by hand' in text
    assert '- manual: X2 Delete root access keys as the root user (prod)' in text
    assert 'Then the rest: 1 medium, low and info finding(s).' in text
    # the HTML: the first section, with the same order
    root = ET.fromstring(html)
    sections = [s.get('id') for s in root.iter('section')]
    assert sections[:3] == ['first', 'summary', 'chart']
    items = [li for li in root.iter('li') if li.get('class', '').startswith('priority ')]
    assert [li.get('data-policy') for li in items] == [p['policy'] for p in doc['priorities']]
    assert 'By hand:' in ''.join(items[1].itertext())


def test_chart_of_findings_per_account_and_step_is_inline_svg(tmp_path):
    _, doc, html = report(tmp_path)
    assert [(r['account'], r['total'], r['by_step']) for r in doc['summary']['by_account']] == [
        ('dev', 0, {}), ('prod', 5, {'R3.3': 2, 'X1': 1, 'X2': 1, 'X6': 1})]
    root = ET.fromstring(html)
    [svg] = list(root.iter('svg'))
    cells = {(g.get('data-account'), g.get('data-step')): int(g.get('data-count'))
             for g in svg.iter('g') if g.get('class') == 'cell'}
    prod = {'R3.3': 2, 'X1': 1, 'X2': 1, 'X6': 1}
    assert cells == {**{('prod', s): n for s, n in prod.items()},
                     **{('dev', s): 0 for s in prod}}
    # offline: no reference to anything outside the file
    assert not [e for e in svg.iter() if any(k.endswith('href') for k in e.attrib)]
    assert 'http' not in ET.tostring(svg, encoding='unicode')
    assert 'Open findings per account and runbook step:' in \
        run_cli(['custodian-ext', 'report', FIXTURE], plain_env(), check=2).stdout


def test_no_chart_for_a_single_account(tmp_path):
    single = tmp_path / 'single'
    shutil.copytree(os.path.join(FIXTURE, 'prod'), single)
    proc, doc, html = report(tmp_path, single)
    assert chart.svg(doc) == '' and '<svg' not in html
    assert 'Open findings per account' not in proc.stdout


def test_the_document_with_triage_matches_the_schema(tmp_path):
    triage = tmp_path / 'triage.yml'
    triage.write_text(yaml.safe_dump({'accept': [
        {'match': {'policy': 'x6-*', 'account': '*', 'region': '*', 'resource': '*'},
         'reason': 'known parked runner, OPS-4711', 'owner': 'alice', 'expires': '2099-01-01'},
        {'match': {'step': 'X9', 'account': '*', 'region': '*', 'resource': '*'},
         'reason': 'contacts kept by the organization', 'owner': 'bob',
         'expires': '2020-01-01'}]}))
    _, doc, _ = report(tmp_path, FIXTURE, '--triage', str(triage))
    with open(SCHEMA) as fh:
        schema = json.load(fh)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    validator.validate(doc)
    assert doc['schema_version'] == '1.2'
    assert len(doc['accepted']) == 1 and doc['triage']['expired'] == [2]
    broken = dict(doc, accepted=[dict(doc['accepted'][0], accepted={'entry': 1})])
    assert list(validator.iter_errors(broken))
