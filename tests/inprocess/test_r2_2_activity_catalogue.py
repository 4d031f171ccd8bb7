"""R2.2 activity review: the classification catalogue (custodian_ext/data/activity-catalogue.yml).

Pure data tests, no emulator: CloudTrail records are classified in-process.

- Every entry flags a CloudTrail record built from a real-shaped template filled per entry
  (each of its event names, with what its ``where`` and ``error`` require), and the extra
  records of tests/data/activity/catalogue-cases.yml.
- Every entry has at least one harmless case (same call without the sensitive parameter,
  or a neighbouring call) that stays unclassified or low; an entry without one fails.
- tests/data/activity/cloudtrail-records.json: whole records of the calls issue #14 names,
  shaped after public attack records (Stratus Red Team detonation logs, Invictus-IR, Datadog
  Security Labs, Halcyon; own values), with the expected entry (or none).
"""
import copy
import json
import os
import re

import pytest
import yaml

from custodian_ext.activity import catalogue
from custodian_ext.errors import PackError
from tests.support import REPO

DATA = os.path.join(REPO, 'tests', 'data', 'activity')
CATALOGUE = catalogue.load()
ENTRIES = list(CATALOGUE)
with open(os.path.join(DATA, 'catalogue-cases.yml')) as fh:
    CASES = yaml.safe_load(fh)
with open(os.path.join(DATA, 'cloudtrail-records.json')) as fh:
    RECORDS = json.load(fh)

QUIET = ('low', 'info')
REQUIRED_TACTICS = {'credential-access', 'discovery', 'execution', 'persistence',
                    'privilege-escalation', 'defense-evasion', 'lateral-movement', 'exfiltration',
                    'impact'}

# The calls and end states issue #14's first paragraph names: (source, name, where-values).
NAMED_CALLS = [
    ('secretsmanager', 'GetSecretValue', {}),
    ('secretsmanager', 'BatchGetSecretValue', {}),
    ('ssm', 'GetParameter', {'requestParameters': {'name': '/p', 'withDecryption': True}}),
    ('ssm', 'GetParameters', {'requestParameters': {'names': ['/p'], 'withDecryption': True}}),
    ('ec2', 'GetPasswordData', {}),
    ('ec2', 'DescribeInstanceAttribute', {'requestParameters': {'attribute': 'userData'}}),
    ('ec2', 'ModifyInstanceAttribute',
     {'requestParameters': {'userData': '<sensitiveDataRemoved>'}}),
    ('ec2-instance-connect', 'SendSSHPublicKey', {}),
    ('ssm', 'SendCommand', {}),
    ('ssm', 'StartSession', {}),
    ('bedrock', 'InvokeModel', {}),
    ('ses', 'GetSendQuota', {}),
    ('ses', 'ListIdentities', {}),
    ('ses', 'GetAccountSendingEnabled', {}),
    ('organizations', 'LeaveOrganization', {'errorCode': 'AccessDenied'}),
    ('sts', 'GetFederationToken', {}),
    ('s3', 'PutBucketLifecycle',
     {'requestParameters': {'LifecycleConfiguration': {'Rule': {'Expiration': {'Days': 1}}}}}),
    ('ec2', 'DeregisterImage', {}),
    ('s3', 'DeleteObjects', {}),
    ('s3', 'DeleteObject', {}),
]


def template():
    """A CloudTrail record as a log file holds it: a leaked IAM user key from outside."""
    return {
        'eventVersion': '1.09',
        'userIdentity': {
            'type': 'IAMUser', 'principalId': 'AIDAEXAMPLEDEPLOYBOT1',
            'arn': 'arn:aws:iam::111122223333:user/deploy-bot', 'accountId': '111122223333',
            'accessKeyId': 'AKIAEXAMPLELEAKED7Q2', 'userName': 'deploy-bot'},
        'eventTime': '2026-11-27T10:15:42Z',
        'eventSource': None,
        'eventName': None,
        'awsRegion': 'us-east-1',
        'sourceIPAddress': '203.0.113.66',
        'userAgent': 'aws-cli/2.15.30 Python/3.11.8 Linux/6.6.9-amd64 exe/x86_64.kali.2024',
        'requestParameters': None,
        'responseElements': None,
        'requestID': '0b5c3a4e-2f1d-4c6b-9a8e-7d6c5b4a3f21',
        'eventID': 'e1d2c3b4-a5f6-4789-8abc-def012345678',
        'readOnly': False,
        'eventType': 'AwsApiCall',
        'managementEvent': True,
        'recipientAccountId': '111122223333',
        'eventCategory': 'Management',
    }


def _set(record, path, value):
    node = record
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = value


def _value_for(cond):
    """A value that satisfies a ``where`` condition, or ``_SKIP`` for 'must be absent'."""
    if isinstance(cond, list):
        return cond[0]
    if isinstance(cond, dict):
        op, arg = next(iter(cond.items()))
        if op == 'exists':
            return 'HIDDEN_DUE_TO_SECURITY_REASONS' if arg else _SKIP
        if op == 'in':
            return arg[0]
        if op == 'prefix':
            return (arg[0] if isinstance(arg, list) else arg) + 'Example'
        if op == 'contains':
            return 'arn:aws:iam::222233334444' + arg
        return _SKIP
    return cond


_SKIP = object()


def filled(entry, name, conditions=True):
    """The template filled for ``entry`` and event ``name`` ('*' made concrete)."""
    record = template()
    record['eventSource'] = entry.source
    record['eventName'] = name.replace('*', 'Example')
    if not conditions:
        return record
    for path, cond in entry.where:
        value = _value_for(cond)
        if value is not _SKIP:
            _set(record, path, value)
    if entry.error == 'failure':
        record['errorCode'] = 'AccessDenied'
        record['errorMessage'] = 'User is not authorized to perform this action'
    elif isinstance(entry.error, frozenset):
        record['errorCode'] = min(entry.error)
    return record


def overlay(base, extra):
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = copy.deepcopy(v)
    return out


def flag_cases():
    for entry in ENTRIES:
        eid = entry.classification.id
        for name in entry.names:
            yield pytest.param(eid, filled(entry, name), id=f"{eid}:{name}")
        for i, extra in enumerate((CASES.get(eid) or {}).get('flag') or ()):
            base = filled(entry, extra.get('eventName', entry.names[0]))
            yield pytest.param(eid, overlay(base, extra), id=f"{eid}:flag{i}")


def quiet_cases():
    for entry in ENTRIES:
        eid = entry.classification.id
        for i, extra in enumerate((CASES.get(eid) or {}).get('quiet') or ()):
            base = filled(entry, extra.get('eventName', entry.names[0]), conditions=False)
            base['eventSource'] = extra.get('eventSource', entry.source)
            yield pytest.param(eid, overlay(base, extra), id=f"{eid}:quiet{i}")


# -- every entry flags, and a harmless call stays quiet --------------------------------

@pytest.mark.parametrize('entry_id,record', list(flag_cases()))
def test_entry_flags_its_record(entry_id, record):
    found = CATALOGUE.classify(record)
    assert found is not None and found.id == entry_id, (entry_id, found)


@pytest.mark.parametrize('entry_id,record', list(quiet_cases()))
def test_harmless_call_stays_quiet(entry_id, record):
    found = CATALOGUE.classify(record)
    assert found is None or (found.id != entry_id and found.severity in QUIET
                             and not found.sensitive), (record['eventName'], found)


@pytest.mark.parametrize('entry', [e for e in ENTRIES if e.where or e.error != 'any'],
                         ids=lambda e: e.classification.id)
def test_without_its_condition_the_entry_does_not_match(entry):
    """The parameter (or error) the entry requires is what makes it match."""
    for name in entry.names:
        record = filled(entry, name, conditions=False)
        for path, cond in entry.where:  # a field that must be absent: put it there
            if cond == {'exists': False}:
                _set(record, path, {'TargetBucket': 'access-logs'})
        found = CATALOGUE.classify(record)
        assert found is None or found.id != entry.classification.id, name


def test_every_entry_has_cases_and_no_case_is_stale():
    ids = [e.classification.id for e in ENTRIES]
    missing = [i for i in ids if not (CASES.get(i) or {}).get('quiet')]
    assert not missing, f"entries without a harmless case in catalogue-cases.yml: {missing}"
    stale = sorted(set(CASES) - set(ids))
    assert not stale, f"cases for entries the catalogue does not have: {stale}"
    for eid, case in CASES.items():
        assert set(case) <= {'flag', 'quiet'}, eid


# -- whole records shaped after public attack records ----------------------------------

@pytest.mark.parametrize('item', RECORDS,
                         ids=lambda r: f"{r['record']['eventName']}->{r['expect']}")
def test_realistic_records(item):
    found = CATALOGUE.classify(item['record'])
    if item['expect'] is None:
        assert found is None, found
    else:
        assert found is not None and found.id == item['expect'], found


def test_realistic_records_cover_every_named_call():
    names = {(r['record']['eventSource'], r['record']['eventName'])
             for r in RECORDS if r['expect']}
    for source, name, _ in NAMED_CALLS:
        assert (f'{source}.amazonaws.com', name) in names, name


@pytest.mark.parametrize('source,name,extra', NAMED_CALLS,
                         ids=lambda v: v if isinstance(v, str) else '')
def test_every_call_the_issue_names_is_classified_high_enough(source, name, extra):
    record = template()
    record.update(eventSource=f'{source}.amazonaws.com', eventName=name)
    for k, v in extra.items():
        record[k] = v
    found = CATALOGUE.classify(record)
    assert found is not None and found.severity in ('critical', 'high', 'medium'), found


def test_sensitive_reads_are_marked_sensitive():
    """Issue #14: secrets, decrypted parameters, password data, user data, model invocation
    and SES sending checks are findings even for principals not yet suspect."""
    for source, name, extra in NAMED_CALLS[:7] + NAMED_CALLS[10:14]:
        if name == 'ModifyInstanceAttribute':
            continue
        record = dict(template(), eventSource=f'{source}.amazonaws.com', eventName=name, **extra)
        assert CATALOGUE.classify(record).sensitive, name
    # a change is not a read
    record = dict(template(), eventSource='iam.amazonaws.com', eventName='CreateUser')
    assert not CATALOGUE.classify(record).sensitive


def test_failed_leave_organization_is_still_defense_evasion():
    record = dict(template(), eventSource='organizations.amazonaws.com',
                  eventName='LeaveOrganization', errorCode='AccessDenied')
    found = CATALOGUE.classify(record)
    assert (found.id, found.tactic, found.tactic_id, found.technique) == (
        'organizations-leave-failed', 'defense-evasion', 'TA0005', 'T1666')
    del record['errorCode']
    assert CATALOGUE.classify(record).severity == 'critical'


# -- the catalogue as a whole ----------------------------------------------------------

def test_catalogue_covers_every_required_tactic():
    tactics = {e.classification.tactic for e in ENTRIES}
    assert REQUIRED_TACTICS <= tactics, REQUIRED_TACTICS - tactics


def test_technique_and_tactic_ids_are_well_formed():
    for e in ENTRIES:
        c = e.classification
        assert re.match(r'^T\d{4}(\.\d{3})?$', c.technique), c
        assert catalogue.TACTICS[c.tactic] == c.tactic_id, c
        assert c.severity in catalogue.SEVERITIES, c
        assert re.match(r'^[a-z0-9][a-z0-9-]*$', c.id) and '\n' not in c.title, c
        assert any(ref.startswith('https://attack.mitre.org/techniques/' +
                                  c.technique.replace('.', '/')) for ref in e.reference), c
        assert all(ref.startswith('https://') for ref in e.reference), c


def test_wildcards_only_for_enumeration_and_versioned_lambda_names():
    """``List*``/``Describe*``/``Get*`` are discovery at low severity; the only other
    wildcards are Lambda's API-version suffixes (CreateFunction20150331)."""
    for e in ENTRIES:
        for name in e.names:
            if '*' not in name:
                continue
            if name.startswith(('List', 'Describe', 'Get')):
                assert (e.classification.tactic, e.classification.severity) == (
                    'discovery', 'low'), e.classification.id
            else:
                assert e.source == 'lambda.amazonaws.com' and name.endswith('*'), name


def test_exact_name_and_more_conditions_win():
    rec = dict(template(), eventSource='ec2.amazonaws.com', eventName='DescribeInstanceAttribute',
               requestParameters={'attribute': 'userData'})
    assert CATALOGUE.classify(rec).id == 'ec2-read-user-data'
    rec['requestParameters'] = {'attribute': 'instanceType'}
    assert CATALOGUE.classify(rec).id == 'ec2-enumerate'
    rec = dict(template(), eventSource='iam.amazonaws.com', eventName='AttachUserPolicy',
               requestParameters={'policyArn': 'arn:aws:iam::aws:policy/AdministratorAccess'})
    assert CATALOGUE.classify(rec).id == 'iam-attach-admin-policy'
    rec['requestParameters'] = {'policyArn': 'arn:aws:iam::aws:policy/ReadOnlyAccess'}
    assert CATALOGUE.classify(rec).id == 'iam-attach-policy'


def test_unknown_event_is_none_and_partial_records_do_not_raise():
    assert CATALOGUE.classify({}) is None
    assert CATALOGUE.classify({'eventSource': 'ec2.amazonaws.com'}) is None
    assert CATALOGUE.classify({'eventSource': 'ec2.amazonaws.com', 'eventName': 'CreateTags',
                               'requestParameters': None}) is None
    # lookups through lists, nulls and scalars on the way
    rec = {'eventSource': 's3.amazonaws.com', 'eventName': 'PutBucketLifecycle',
           'requestParameters': {'LifecycleConfiguration': {'Rule': ['x', None, {}]}}}
    assert CATALOGUE.classify(rec) is None


def test_string_booleans_match_as_in_lookup_events_output():
    rec = dict(template(), eventSource='ssm.amazonaws.com', eventName='GetParameter',
               requestParameters={'name': '/p', 'withDecryption': 'true'})
    assert CATALOGUE.classify(rec).id == 'ssm-get-parameter-decrypted'
    rec['requestParameters']['withDecryption'] = 'false'
    assert CATALOGUE.classify(rec) is None


def test_load_is_cached_and_classification_is_frozen():
    assert catalogue.load() is CATALOGUE
    c = CATALOGUE.classify(dict(template(), eventSource='ssm.amazonaws.com',
                                eventName='SendCommand'))
    with pytest.raises(AttributeError):
        c.severity = 'low'
    assert {f for f in c.__dataclass_fields__} == {
        'id', 'tactic', 'tactic_id', 'technique', 'severity', 'sensitive', 'title'}


def test_catalogue_ships_in_the_lambda_package():
    from c7n.mu import custodian_archive

    from custodian_ext.periodic import PACKAGES
    archive = custodian_archive(packages=PACKAGES)
    archive.close()
    assert 'custodian_ext/data/activity-catalogue.yml' in archive.get_filenames()
    assert catalogue.DEFAULT_PATH.endswith(
        os.path.join('custodian_ext', 'data', 'activity-catalogue.yml'))


# -- a broken catalogue is one clear line ----------------------------------------------

GOOD = {'id': 'x-entry', 'match': {'source': 'ec2.amazonaws.com', 'events': ['RunInstances']},
        'tactic': 'execution', 'tactic_id': 'TA0002', 'technique': 'T1578.002',
        'severity': 'low', 'sensitive': False, 'title': 'Instances launched',
        'source': 'https://attack.mitre.org/techniques/T1578/002/'}


def _broken(**change):
    entry = dict(GOOD)
    for k, v in change.items():
        if v is None:
            entry.pop(k)
        else:
            entry[k] = v
    return {'entries': [entry]}


@pytest.mark.parametrize('data,message', [
    ('entries: [', 'not valid YAML at line'),
    ({'entry': []}, "needs a top-level 'entries:' list"),
    ({'entries': []}, "'entries:' is empty"),
    ({'entries': ['x']}, 'entry #1: an entry is a mapping'),
    (_broken(id='Bad Id'), "entry #1: 'id' must be lower-case"),
    ({'entries': [GOOD, GOOD]}, 'x-entry: duplicate id'),
    (_broken(extra=1), 'x-entry: unknown key(s) extra'),
    (_broken(title=None), 'x-entry: missing title'),
    (_broken(tactic='recon'), "x-entry: tactic 'recon' is not an ATT&CK tactic"),
    (_broken(tactic_id='TA0003'), 'x-entry: tactic_id of execution is TA0002, not TA0003'),
    (_broken(technique='T15'), "x-entry: technique 'T15' is not an ATT&CK technique id"),
    (_broken(severity='severe'), "x-entry: severity 'severe' must be one of"),
    (_broken(sensitive='yes'), "x-entry: 'sensitive' must be true or false"),
    (_broken(title='two\nlines'), "x-entry: 'title' must be one line"),
    (_broken(source='attack.mitre.org'), "x-entry: 'source' must be an https:// reference"),
    (_broken(match={'source': 'ec2', 'events': ['X']}), 'x-entry: match.source must be'),
    (_broken(match={'source': 'ec2.amazonaws.com', 'events': []}), 'x-entry: match.events'),
    (_broken(match={'source': 'ec2.amazonaws.com', 'events': ['A-B']}), 'x-entry: match.events'),
    (_broken(match={'source': 'ec2.amazonaws.com', 'events': ['A'], 'when': 1}),
     'x-entry: match: unknown key(s) when'),
    (_broken(match={'source': 'ec2.amazonaws.com', 'events': ['A'], 'where': {'a..b': 1}}),
     "x-entry: match.where: 'a..b' is not a dotted record path"),
    (_broken(match={'source': 'ec2.amazonaws.com', 'events': ['A'],
                    'where': {'a': {'exists': 'yes'}}}),
     'x-entry: match.where.a: exists takes true or false'),
    (_broken(match={'source': 'ec2.amazonaws.com', 'events': ['A'],
                    'where': {'a': {'like': 'x'}}}),
     'x-entry: match.where.a: an operator condition is one of'),
    (_broken(match={'source': 'ec2.amazonaws.com', 'events': ['A'], 'error': 'sometimes'}),
     'x-entry: match.error must be any, success, failure'),
])
def test_bad_catalogue_is_one_clear_line(tmp_path, data, message):
    path = tmp_path / 'catalogue.yml'
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    with pytest.raises(PackError) as e:
        catalogue.load(str(path))
    text = str(e.value)
    assert '\n' not in text and text.startswith(str(path) + ':'), text
    assert message in text, text


def test_missing_catalogue_file(tmp_path):
    with pytest.raises(PackError, match='activity catalogue not found'):
        catalogue.load(str(tmp_path / 'nope.yml'))
