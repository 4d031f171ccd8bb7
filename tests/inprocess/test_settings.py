"""The pack's settings: every key checked, documented and present in policies/vars.yml."""
import datetime
import os
import re

import pytest

from custodian_ext import settings
from tests.support import POLICIES, REPO, write_vars

VARS = os.path.join(POLICIES, 'vars.yml')


def test_shipped_vars_file_is_valid_and_complete():
    values = settings.load(VARS, strict=True)
    with open(VARS) as fh:
        text = fh.read()
    for name in settings.SETTINGS:
        assert re.search(rf'^{name}:', text, re.M), f"{name} missing from policies/vars.yml"
    assert values['allowed_regions'] == ['us-east-1', 'us-west-2']


def test_readme_documents_every_setting():
    with open(os.path.join(REPO, 'README.md')) as fh:
        readme = fh.read()
    for name in settings.SETTINGS:
        assert f'`{name}`' in readme, f"README does not document {name}"


# One malformed value per setting at least (a test checks that every setting has one).
MALFORMED = [
    ('allowed_regions', 'us-east-1', 'allowed_regions: expected a list of region names'),
    ('allowed_regions', [], 'allowed_regions: the list is empty'),
    ('allowed_regions', ['us-east-1', 'useast2'],
     "allowed_regions[1]: 'useast2' is not an AWS region"),
    ('incident_start', 'yesterday', "incident_start: 'yesterday' is not an ISO-8601 UTC timestamp"),
    ('incident_start', '2026-11-28',
     "incident_start: '2026-11-28' is not an ISO-8601 UTC timestamp"),
    ('incident_start', '2026-11-28T09:30:00+02:00', 'is not an ISO-8601 UTC timestamp'),
    ('incident_start', '2026-13-28T09:30:00Z', 'is not a valid date and time'),
    ('known_users', 'alice', 'known_users: expected a list of names'),
    ('known_accounts', ['12345'], "known_accounts[0]: '12345' is not a 12-digit AWS account id"),
    ('trusted_accounts', 'none', 'trusted_accounts: expected a list of 12-digit account ids'),
    ('stale_days', 0, 'stale_days: expected a number greater than 0'),
    ('stale_days', 'ninety', 'stale_days: expected a number greater than 0'),
    ('global_region', 'global', "global_region: 'global' is not an AWS region name"),
    ('key_grace_days', 1.5, 'key_grace_days: expected a whole number of days'),
    ('evidence_bucket', 's3://evidence',
     "evidence_bucket: 's3://evidence' is not an S3 bucket name"),
    ('expected_contacts', {'security': 'nobody'},
     "expected_contacts.security: 'nobody' is not an email"),
    ('expected_contacts', {'legal': 'a@b.c'}, 'expected_contacts.legal: unknown contact type'),
    ('expected_contacts', 'sec@example.com',
     'expected_contacts: expected a mapping of contact type (security, billing, operations)'),
    ('known_roles', ['ops-*', ''], 'known_roles: expected a list of names such as [alice,'),
    ('incident_id', 'has space', "incident_id: 'has space' must be 1-128 letters, digits"),
    ('keep_access_keys', 'AKIAIOSFODNN7EXAMPLE',
     'keep_access_keys: expected a list of access key ids such as [AKIAIOSFODNN7EXAMPLE]'),
    ('keep_access_keys', ['akia-lower'],
     "keep_access_keys[0]: 'akia-lower' is not an access key id (like AKIAIOSFODNN7EXAMPLE)"),
    ('unusual_instance_types', 'p4d.*',
     "unusual_instance_types: expected a list of patterns such as ['p4d.*', 'g5.*']"),
    ('cost_increase_ratio', -1, 'cost_increase_ratio: expected a number greater than 0'),
    ('cost_min_amount', True, 'cost_min_amount: expected a number greater than 0'),
    ('restore_preview', 'yes', "restore_preview: expected true or false, got 'yes'"),
    ('restore_max_objects', 0, 'restore_max_objects: expected a whole number, 1 or more'),
    ('object_scan_max_versions', 2.5,
     'object_scan_max_versions: expected a whole number, 1 or more, got 2.5'),
    ('restore_continuation', ['x'],
     'restore_continuation: expected a mapping of bucket name to the continuation token'),
    ('restore_continuation', {'Bad_Bucket': 'abc'},
     "restore_continuation.Bad_Bucket: 'Bad_Bucket' is not an S3 bucket name"),
    ('restore_continuation', {'data-bucket': 'a b'},
     "restore_continuation.data-bucket: 'a b' is not a continuation token"),
    ('restore_pitr_margin_minutes', -5,
     'restore_pitr_margin_minutes: expected a whole number of minutes (0 or more)'),
    ('react_role', 'arn:aws:iam::111122223333:role/r', 'react_role: '),
    ('react_member_role', 'a b', "react_member_role: 'a b' is not an IAM role name"),
    ('react_output', 'bucket/prefix', 'react_output: '),
    ('notify_transport', 'sns', 'notify_transport: expected {type: sns, topic: '),
    ('notify_transport', {'type': 'sns'},
     'notify_transport.topic: None is not an SNS topic ARN or name'),
    ('notify_transport', {'type': 'sqs', 'queue': 'q', 'topic': 't'},
     'notify_transport: unexpected topic for a sqs transport'),
    ('notify_transport', {'type': 'sns', 'topic': 't', 'attributes': {'team': 1}},
     'notify_transport.attributes: a mapping of name to string value'),
    ('notify_to', ['sec@example.com', ''], 'notify_to: expected a list of recipients'),
]


@pytest.mark.parametrize('key,value,expected', MALFORMED)
def test_malformed_value_is_one_line_naming_the_key(tmp_path, key, value, expected):
    values = settings.load(VARS)
    values[key] = value
    path = write_vars(tmp_path / 'vars.yml', values)
    with pytest.raises(settings.SettingsError) as e:
        settings.load(path)
    msg = str(e.value)
    assert '\n' not in msg
    assert msg.startswith(path + ': ')
    assert expected in msg


def test_misspelt_key_is_rejected_with_a_suggestion(tmp_path):
    values = settings.load(VARS)
    values['alowed_regions'] = values.pop('allowed_regions')
    with pytest.raises(settings.SettingsError,
                       match="unknown setting 'alowed_regions'; did you mean 'allowed_regions'"):
        settings.validate(values, source='v.yml')


def test_unrelated_extra_key_allowed_unless_strict():
    values = dict(settings.load(VARS), team_channel='#sec')
    assert settings.validate(values)['team_channel'] == '#sec'
    with pytest.raises(settings.SettingsError, match="unknown setting 'team_channel'"):
        settings.validate(values, strict=True)


def test_missing_required_key_names_it():
    with pytest.raises(settings.SettingsError,
                       match="required setting 'incident_start' is missing"):
        settings.validate({'allowed_regions': ['us-east-1']}, source='v.yml')


def test_defaults_fill_optional_keys_only_for_requested_names():
    out = settings.validate({'incident_start': '2026-11-28T09:30:00Z'},
                            names=['incident_start', 'stale_days'])
    assert out == {'incident_start': '2026-11-28T09:30:00Z', 'stale_days': 90}


def test_unquoted_account_ids_and_yaml_timestamps_are_normalized():
    out = settings.validate({
        'allowed_regions': ['eu-west-1'],
        'incident_start': datetime.datetime(2026, 11, 28, 9, 30, tzinfo=datetime.timezone.utc),
        'known_accounts': [12345678901],
    })
    assert out['known_accounts'] == ['012345678901']
    assert out['incident_start'] == '2026-11-28T09:30:00Z'


def test_yaml_syntax_error_is_one_line(tmp_path):
    path = tmp_path / 'vars.yml'
    path.write_text('allowed_regions: [us-east-1\nincident_start: x\n')
    with pytest.raises(settings.SettingsError) as e:
        settings.load(str(path))
    assert 'not valid YAML at line' in str(e.value) and '\n' not in str(e.value)


def test_non_mapping_vars_file(tmp_path):
    path = tmp_path / 'vars.yml'
    path.write_text('- just\n- a list\n')
    with pytest.raises(settings.SettingsError, match='expected a mapping of setting: value'):
        settings.load(str(path))


def test_referenced_finds_only_pack_settings():
    data = {'filters': [{'value': '{incident_start}'}, {'value': '{account_id}'}],
            'conditions': [{'value': '{allowed_regions}'}]}
    assert settings.referenced(data) == {'incident_start', 'allowed_regions'}


def test_every_setting_has_a_malformed_case():
    assert set(settings.SETTINGS) - {key for key, _, _ in MALFORMED} == set()


def test_every_setting_declares_its_rule_and_takes_its_own_default_and_sample():
    for name, spec in settings.SETTINGS.items():
        assert spec.rule.error, f'{name}: the rule says nothing when a value is wrong'
        for value in (spec.default, spec.sample):
            if value not in (settings.REQUIRED, None):
                spec.check(value)
    assert settings.validate(settings.samples(), strict=True)


def test_blank_optional_values_and_normalized_forms():
    out = settings.validate({'react_member_role': '/org/OrganizationAccountAccessRole',
                             'react_output': None, 'evidence_bucket': '',
                             'notify_transport': {}, 'restore_continuation': '',
                             'keep_access_keys': [], 'known_accounts': ['000000000042', 42]},
                            names=['react_member_role', 'react_output', 'evidence_bucket',
                                   'notify_transport', 'restore_continuation',
                                   'keep_access_keys', 'known_accounts'])
    assert out == {'react_member_role': 'org/OrganizationAccountAccessRole', 'react_output': '',
                   'evidence_bucket': '', 'notify_transport': {}, 'restore_continuation': {},
                   'keep_access_keys': [], 'known_accounts': ['000000000042', '000000000042']}


def test_an_option_is_checked_as_its_setting_and_named_as_the_option():
    with pytest.raises(settings.SettingsError,
                       match="^incident-start: 'soon' is not an ISO-8601 UTC timestamp"):
        settings.check('incident_start', 'soon', key='incident-start')
    assert settings.check('restore_pitr_margin_minutes', 0, key='pitr-margin-minutes') == 0


@pytest.mark.parametrize('value,expected', [
    ('{incident_start}', True),
    ('{account_id}', True),  # exactly {name}: c7n's own variables too
    ('{my_own_setting}', True),
    ('restore-{incident_id}', True),  # contains a pack setting
    ('{allowed_regions} and {account_id}', True),
    ('arn:aws:iam::{account_id}:role/x', False),  # c7n's, inside a longer string
    ('{incident start}', False),
    ('{not closed', False),
    ('2026-11-28T09:30:00Z', False),
    ('', False),
    (None, False),
    (7, False),
    (['{known_users}'], False),
])
def test_is_placeholder(value, expected):
    assert settings.is_placeholder(value) is expected


def test_placeholder_schema_takes_a_whole_placeholder_only():
    import jsonschema
    schema = settings.or_placeholder({'type': 'number', 'minimum': 0})
    for good in (3, 0, '{key_grace_days}'):
        jsonschema.validate(good, schema)
    for bad in (-1, 'seven', 'x{key_grace_days}'):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
