"""The policy patches (custodian_ext/patches/policy.py) and region placement (regions.py):
validation before substitution, global_region first."""
import pytest
from c7n.config import Config
from c7n.exceptions import PolicyValidationError
from c7n.policy import Policy
from c7n.resources import load_resources

import custodian_ext  # noqa: F401
from custodian_ext.errors import PackError
from custodian_ext.regions import place_global_region

DATE_POLICY = {
    'name': 'new-users', 'resource': 'aws.iam-user',
    'filters': [{'type': 'value', 'key': 'CreateDate', 'value_type': 'date', 'op': 'gte',
                 'value': '{incident_start}'}]}


@pytest.mark.parametrize('regions,expected', [
    ([], ['us-east-1', 'eu-west-1']),
    (['eu-north-1', 'us-east-1'], ['us-east-1', 'eu-north-1']),
    (['all'], ['us-east-1', 'all']),
])
def test_global_region_goes_first(regions, expected):
    assert place_global_region(regions, 'us-east-1', 'eu-west-1') == expected


def test_explicit_regions_without_global_region_are_refused():
    with pytest.raises(PackError, match='add -r us-east-1'):
        place_global_region(['eu-west-1'], 'us-east-1', 'eu-west-1')


def _policy(data):
    load_resources(('aws.iam-user',))
    return Policy(data, Config.empty(region='us-east-1', account_id='111122223333'))


def test_validate_before_substitution_uses_sample_settings():
    """custodian validate has no vars: '{incident_start}' must still pass as a date."""
    _policy(DATE_POLICY).validate()


def test_validate_before_substitution_still_catches_bad_values():
    bad = dict(DATE_POLICY, filters=[dict(DATE_POLICY['filters'][0], value='{incident_start}x')])
    with pytest.raises(PolicyValidationError, match='invalid date value'):
        _policy(bad).validate()
