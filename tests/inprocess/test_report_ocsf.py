"""`custodian-ext report --format ocsf`: OCSF 1.5.0 Detection Finding events, one per finding.

Each event is validated against the DetectionFinding model of py-ocsf-models
(a maintained OCSF model package, Prowler's), and must survive a round trip
through it unchanged: a field the model does not know, or a value it would
coerce, fails the test. The fixture is the recorded c7n-org sweep of
tests/data/report/org (two of its runs errored).
"""
import glob
import json
import os
import shutil

import py_ocsf_models
import pytest
import yaml
from py_ocsf_models.events.findings.detection_finding import DetectionFinding

from custodian_ext.report import attack, ocsf
from tests.support import POLICIES, REPO, run_cli

FIXTURE = os.path.join(REPO, 'tests', 'data', 'report', 'org')


def plain_env():
    return {k: v for k, v in os.environ.items() if not k.startswith('AWS_')}


def report(tmp_path, *extra, src=FIXTURE, check=2):
    out = tmp_path / 'report'
    proc = run_cli(['custodian-ext', 'report', src, '--format', 'ocsf,json', '-o', str(out),
                    *extra], plain_env(), check=check)
    with open(out / 'report.ocsf.json') as fh:
        events = json.load(fh)
    with open(out / 'report.ocsf-status.json') as fh:
        status = json.load(fh)
    with open(out / 'report.json') as fh:
        doc = json.load(fh)
    return events, status, doc, proc


def test_every_event_is_a_detection_finding_the_ocsf_model_accepts_unchanged(tmp_path):
    events, _, doc, _ = report(tmp_path)
    assert len(events) == len(doc['findings']) == 5
    for event in events:
        model = DetectionFinding.model_validate(event)
        assert model.model_dump(mode='json', exclude_none=True) == event
        assert event['class_uid'] == 2004 and event['category_uid'] == 2
        assert event['type_uid'] == 200401 and event['activity_id'] == 1
        # the OCSF version stated in each event is the one the model package implements
        assert event['metadata']['version'] == ocsf.OCSF_VERSION == py_ocsf_models.OCSF_VERSION
        assert event['metadata']['product']['name'] == 'custodian-ext'


def test_mapping_of_severity_attack_step_account_region_resource_remediation(tmp_path):
    events, _, doc, _ = report(tmp_path)
    by_policy = {}
    for e in events:
        by_policy.setdefault(e['metadata']['event_code'], []).append(e)
    [x1] = by_policy['x1-quarantined-user-active-keys']
    f = next(f for f in doc['findings'] if f['policy'] == 'x1-quarantined-user-active-keys')
    assert (x1['severity_id'], x1['severity']) == (5, 'Critical')
    assert (x1['status_id'], x1['status']) == (1, 'New')
    assert x1['cloud'] == {'provider': 'AWS', 'region': 'us-east-1', 'account': {
        'uid': '111111111111', 'name': 'prod', 'type_id': 10, 'type': 'AWS Account'}}
    [res] = x1['resources']
    assert res['uid'] == 'arn:aws:iam::111111111111:user/deploy-bot' == f['arn']
    assert (res['name'], res['type'], res['region']) == ('deploy-bot', 'aws.iam-user',
                                                         'us-east-1')
    assert x1['remediation']['desc'].startswith(f['remediation'])
    assert 'Respond policy: x1-deactivate-quarantined-keys' in x1['remediation']['desc']
    assert x1['finding_info']['types'] == ['runbook:X1']
    assert 'runbook:X1' in x1['metadata']['labels']
    assert x1['unmapped']['runbook_step'] == 'X1'
    assert x1['unmapped']['contained'][0]['status'] == 'done'
    for why in f['why']:
        assert why in x1['finding_info']['desc']
    # ATT&CK: the policy's technique, as a sub-technique of its parent, per tactic
    technique = attack.technique(f['attack'])
    assert [a['tactic']['uid'] for a in x1['finding_info']['attacks']] == [
        t for t, _ in technique.tactics]
    for a in x1['finding_info']['attacks']:
        assert a['sub_technique']['uid'] == f['attack']
        assert a['technique']['uid'] == f['attack'].split('.')[0]
    severities = {e['metadata']['event_code']: e['severity_id'] for e in events}
    assert severities['x6-stopped-instances'] == 3
    assert severities['r3-3-ec2-outside-allowed-regions'] == 4
    [r33] = by_policy['r3-3-ec2-outside-allowed-regions'][:1]
    assert r33['cloud']['region'] == 'eu-north-1'
    assert r33['resources'][0]['uid'].startswith('arn:aws:ec2:eu-north-1:111111111111:instance/')


def test_finding_uids_are_stable_and_distinct(tmp_path):
    first, _, _, _ = report(tmp_path / 'a')
    second, _, _, _ = report(tmp_path / 'b')
    uids = [e['finding_info']['uid'] for e in first]
    assert uids == [e['finding_info']['uid'] for e in second]
    assert len(set(uids)) == len(uids)


def test_errored_runs_are_not_events_and_the_status_file_says_so(tmp_path):
    events, status, doc, proc = report(tmp_path, check=2)
    assert not [e for e in events if 'lightsail' in json.dumps(e)]
    assert status['gate']['exit_code'] == 2 and status['gate']['status'] == 'error'
    assert [(p['policy'], p['account'], p['status']) for p in status['problems']] == [
        ('x6-lightsail-instances', 'dev', 'errored'),
        ('x6-lightsail-instances', 'prod', 'errored')]
    assert status['events'] == len(events) and status['ocsf_version'] == '1.5.0'
    # printed to stdout: the events only, and a line on stderr about the errored runs
    proc = run_cli(['custodian-ext', 'report', FIXTURE, '--format', 'ocsf', '-o', '-'],
                   plain_env(), check=2)
    assert [e['finding_info']['uid'] for e in json.loads(proc.stdout)] == [
        e['finding_info']['uid'] for e in events]
    assert '2 policy run(s) errored or did not run: not in the OCSF events' in proc.stderr


def test_a_clean_sweep_writes_no_events_and_passes(tmp_path):
    src = tmp_path / 'org'
    shutil.copytree(FIXTURE, src)
    for path in glob.glob(str(src / '*' / '*' / '*')):
        if os.path.basename(path).startswith('x6-lightsail'):
            shutil.rmtree(path)
        elif os.path.exists(os.path.join(path, 'resources.json')):
            with open(os.path.join(path, 'resources.json'), 'w') as fh:
                json.dump([], fh)
            for results in glob.glob(os.path.join(path, 'action-results-*.json')):
                os.remove(results)
    events, status, _, _ = report(tmp_path, '--fail-on', 'info', src=str(src), check=0)
    assert events == [] and status['problems'] == [] and status['gate']['exit_code'] == 0


def test_accepted_findings_are_suppressed_events(tmp_path):
    triage = tmp_path / 'triage.yml'
    triage.write_text(yaml.safe_dump({'accept': [{
        'match': {'policy': 'x6-stopped-instances', 'account': 'prod', 'region': '*',
                  'resource': 'i-*'},
        'reason': 'parked build runner, decommissioned in OPS-4711', 'owner': 'alice',
        'expires': '2099-01-01'}]}))
    events, status, doc, _ = report(tmp_path, '--triage', str(triage))
    [x6] = [e for e in events if e['metadata']['event_code'] == 'x6-stopped-instances']
    assert (x6['status_id'], x6['status']) == (3, 'Suppressed')
    assert x6['comment'] == 'parked build runner, decommissioned in OPS-4711'
    assert 'by alice until 2099-01-01T00:00:00Z' in x6['status_detail']
    DetectionFinding.model_validate(x6)
    assert status['accepted'] == 1 and len(events) == 5


def test_every_policy_technique_is_in_the_attack_data():
    """The OCSF attacks and Security Hub types need each policy's technique."""
    missing = []
    for path in glob.glob(os.path.join(POLICIES, '*', '*.yml')):
        with open(path) as fh:
            data = yaml.safe_load(fh) or {}
        if not isinstance(data, dict):
            continue
        for p in data.get('policies') or ():
            tid = (p.get('metadata') or {}).get('attack')
            if tid and attack.technique(tid) is None:
                missing.append((p['name'], tid))
    assert missing == []
    assert attack.technique('T1078.004').full_name == 'Valid Accounts: Cloud Accounts'
    assert attack.technique('T9999') is None


@pytest.mark.parametrize('sev,expected', [('critical', 5), ('high', 4), ('medium', 3),
                                          ('low', 2), ('info', 1)])
def test_severity_ids(sev, expected):
    assert ocsf.SEVERITY[sev][0] == expected
