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


@pytest.mark.parametrize('key,value,expected', [
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
])
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
