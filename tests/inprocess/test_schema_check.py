"""custodian_ext.schema_check: c7n's schema check, each policy against its own resource type;
whatever it cannot accept is left to c7n's own check, whose answer is then unchanged."""
import copy
import glob
import os

import pytest
import yaml
from c7n.resources import load_resources

import custodian_ext.settings as settings
from custodian_ext import schema_check
from tests.support import REPO

FILES = sorted(glob.glob(os.path.join(REPO, 'policies', '*', '*.yml')))


def _schema_for(data):
    from c7n.schema import generate
    types = {p['resource'] if '.' in p['resource'] else 'aws.' + p['resource']
             for p in data['policies']}
    load_resources(tuple(types))
    return generate(types), types


def _original(data, schema):
    from c7n.schema import JsonSchemaValidator, check_unique
    errors = list(JsonSchemaValidator(schema).iter_errors(data))
    return errors or check_unique(data) or []


def _file(path):
    with open(path) as fh:
        data = yaml.safe_load(fh)
    return settings.substitute(data, settings.samples()) if settings.referenced(data) else data


@pytest.mark.parametrize('path', FILES, ids=[os.path.relpath(f, REPO) for f in FILES])
def test_every_policy_file_of_the_pack_is_accepted_as_c7n_accepts_it(path):
    data = _file(path)
    assert data['policies'], path
    schema, _ = _schema_for(data)
    assert _original(data, schema) == []
    assert schema_check.valid(data, schema)


MUTATIONS = {
    'unknown filter': lambda p: dict(p, filters=[{'type': 'no-such-filter', 'days': 1}]),
    'bad operator': lambda p: dict(p, filters=[{'type': 'value', 'key': 'a', 'op': 'nope'}]),
    'filter of another resource type': lambda p: dict(
        p, filters=[{'type': 'instance-age', 'days': 1}]),
    'unknown resource': lambda p: dict(p, resource='aws.no-such-thing'),
    'resource not a string': lambda p: dict(p, resource=['aws.iam-user']),
    'unknown policy key': lambda p: dict(p, surprise=1),
    'policy not a mapping': lambda p: 'aws.iam-user',
}


@pytest.mark.parametrize('what', sorted(MUTATIONS) + ['unknown top-level key',
                                                      'policies not a list'])
def test_what_it_cannot_accept_goes_to_c7n_which_answers_as_before(what):
    from c7n.schema import validate
    from custodian_ext import patches
    data = _file(os.path.join(REPO, 'policies', 'detect', 'r4-1.yml'))
    schema, types = _schema_for(data)
    assert data['policies'][0]['resource'] == 'aws.iam-user'
    bad = copy.deepcopy(data)
    if what == 'unknown top-level key':
        bad['surprise'] = 1
    elif what == 'policies not a list':
        bad['policies'] = {'a': 1}
    else:
        bad['policies'].append(MUTATIONS[what](bad['policies'][0]))
    assert not schema_check.valid(bad, schema)
    stock = patches.original('c7n.schema:validate')
    assert validate is not stock  # the pack's check is installed
    found = validate(bad, resource_types=types)
    assert found
    assert [str(e) for e in found] == [str(e) for e in stock(bad, resource_types=types)]


def test_a_policy_is_checked_against_its_own_type_only():
    """The cost it removes: c7n checks a policy's filters against every type of the file."""
    data = _file(FILES[0])
    schema, _ = _schema_for(data)
    by_name = schema_check._definitions_by_resource(
        schema, schema['properties']['policies']['items']['anyOf'])
    for p in data['policies']:
        assert len(by_name[p['resource']]) == 1


def test_what_c7n_accepts_in_other_shapes_is_accepted_too():
    """c7n reads ``{'type': 'instance-age'}`` on a user as a value filter (key ``type``), and
    accepts boolean blocks and one-word filters: so does the check, by c7n's own schema."""
    from custodian_ext import patches
    data = _file(os.path.join(REPO, 'policies', 'detect', 'r4-1.yml'))
    schema, types = _schema_for(data)
    first = data['policies'][0]
    for filters in ([{'type': 'instance-age'}], [{'or': [{'tag:a': 'b'}, {'not': [
            {'type': 'value', 'key': 'UserName', 'value': 'x'}]}]}], ['credential']):
        data['policies'].append(dict(first, name=f"extra-{len(data['policies'])}",
                                     filters=filters))
    assert _original(data, schema) == []
    assert schema_check.valid(data, schema)
    assert patches.original('c7n.schema:validate')(data, resource_types=types) == []
