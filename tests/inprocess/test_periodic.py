"""custodian_ext.periodic in-process: the generated mode survives c7n's validation unchanged."""
import os

import yaml

from custodian_ext import periodic
from tests.support import POLICIES


def test_validating_a_periodic_policy_leaves_its_role_alone():
    """The pack validates policies that use settings on a copy with sample values; c7n's
    get_variables rewrites mode.role in place, so the copy must not share the data."""
    import custodian_ext  # noqa: F401
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    with open(os.path.join(POLICIES, 'detect', 'r3-3.yml')) as fh:
        [source] = [p for p in yaml.safe_load(fh)['policies']
                    if p['name'] == 'r3-3-ec2-outside-allowed-regions']
    data = periodic.periodic_policy(source, 'rate(1 day)', 'CustodianPackLambda')
    load_resources(('aws.ec2',))
    policy = Policy(data, Config.empty(region='us-east-1'))
    policy.validate()
    assert policy.data['mode']['role'] == 'CustodianPackLambda'
    assert policy.data['conditions'][0]['value'] == '{allowed_regions}'


def test_long_descriptions_are_cut_at_a_word_for_lambda():
    text = 'word ' * 80
    short = periodic.shorten(text)
    assert len(short) <= 256 and short.endswith('word...')
    assert periodic.shorten('short one') == 'short one'


def test_function_names_over_lambdas_limit_are_refused():
    import pytest
    from custodian_ext.errors import PackError
    with pytest.raises(PackError, match='longer than Lambda'):
        periodic.periodic_policy({'name': 'x6-' + 'a' * 60, 'resource': 'aws.ec2'},
                                 'rate(1 day)', 'R')
