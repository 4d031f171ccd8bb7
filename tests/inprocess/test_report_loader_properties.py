"""Property-based: no folder content makes the report crash (issue #15, item 4).

``custodian-ext report`` reads whatever is in the folder it is given:
Custodian's output, half-written files, someone else's JSON, binary junk.
For any such folder, ``custodian_ext.report.loader.load_runs`` returns runs or
raises ``ReportInputError`` with one line; and the runs it returns build a
report document that renders in every format. Generated with hypothesis:
folders of policy-like paths holding arbitrary bytes, arbitrary JSON, and
Custodian metadata with fields replaced by values of the wrong type.
"""
import json
import os
import tempfile

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from custodian_ext.report import document, render
from custodian_ext.report.loader import ReportInputError, load_runs
from custodian_ext.report.reasons import FACTS, FORMATTERS

# CI has 2 cores: a modest number of examples (HYPOTHESIS_EXAMPLES=1000 for a longer hunt)
EXAMPLES = hsettings(max_examples=int(os.environ.get('HYPOTHESIS_EXAMPLES', 60)), deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])

JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=10)

GOOD_META = {
    'policy': {'name': 'x1-p', 'resource': 'aws.iam-user', 'tags': ['detect'],
               'metadata': {'runbook': 'X1', 'severity': 'high'},
               'actions': [{'type': 'notify'}]},
    'config': {'region': 'us-east-1', 'account_id': '123456789012', 'dryrun': False},
    'execution': {'start': 1796000000.0, 'end_time': 1796000001.0, 'duration': 1.0},
    'metrics': [{'MetricName': 'ResourceCount', 'Value': 1}],
}


def _mutated_meta(path, value):
    """GOOD_META with the field at ``path`` (a tuple of keys) replaced by ``value``."""
    meta = json.loads(json.dumps(GOOD_META))
    target = meta
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return meta


FIELDS = st.sampled_from([
    ('policy',), ('policy', 'name'), ('policy', 'resource'), ('policy', 'tags'),
    ('policy', 'metadata'), ('policy', 'metadata', 'severity'), ('policy', 'metadata', 'runbook'),
    ('policy', 'actions'), ('policy', 'description'), ('config',), ('config', 'region'),
    ('config', 'account_id'), ('config', 'dryrun'), ('execution',), ('execution', 'start'),
    ('execution', 'duration'), ('execution', 'end_time'), ('metrics',)])
TYPES = st.sampled_from(sorted(FACTS) + ['aws.iam-user', 'aws.account', 'aws.nope', 'x'])
METADATA = st.one_of(st.just(GOOD_META), st.builds(_mutated_meta, FIELDS, JSON), JSON,
                     st.builds(_mutated_meta, st.just(('policy', 'resource')), TYPES))

# Annotations the report has a formatter for, and resource types it describes, with
# values of any shape (and a few of the right one).
ANNOTATIONS = sorted(set(FORMATTERS) | {'c7n:activity', 'c7n:other'})
EVENT = st.fixed_dictionaries({'EventName': st.text(max_size=8)}, optional={
    'EventTime': st.one_of(st.text(max_size=25), st.integers()), 'EventId': JSON,
    'Principal': JSON, 'Resources': JSON, 'CloudTrailEvent': st.text(max_size=30)})
RESOURCE = st.dictionaries(
    st.one_of(st.sampled_from(ANNOTATIONS), st.sampled_from([
        'UserName', 'InstanceId', 'Name', 'CreateDate', 'CreationDate', 'LaunchTime',
        'State', 'Tags', 'Attachments', 'VolumeSize', 'InstanceType']), st.text(max_size=8)),
    st.one_of(JSON, st.lists(EVENT, max_size=2), EVENT), max_size=6)
RESOURCES = st.one_of(JSON, st.lists(st.one_of(JSON, RESOURCE), max_size=3))

NAMES = st.sampled_from(['metadata.json', 'resources.json', 'skipped.json', 'partial.json',
                         'action-results-x.json', 'custodian-run.log', 'not-run.json',
                         'notes.txt'])
CONTENT = {
    'metadata.json': METADATA.map(json.dumps),
    'resources.json': RESOURCES.map(json.dumps),
    'partial.json': st.one_of(JSON, st.fixed_dictionaries({'notes': JSON})).map(json.dumps),
    'action-results-x.json': st.one_of(JSON, st.lists(st.one_of(JSON, st.fixed_dictionaries(
        {'resource_id': JSON, 'status': JSON, 'action': JSON, 'reason': JSON})),
        max_size=3)).map(json.dumps),
}
FOLDERS = st.sampled_from(['p', 'us-east-1/p', 'acct/us-east-1/p', 'acct/eu-west-1/q',
                           'us-east-1/q', 'a/b/c/d'])


@st.composite
def trees(draw):
    files = {}
    if draw(st.booleans()):  # one well-formed run whose resources are anything
        folder = draw(FOLDERS)
        meta = _mutated_meta(('policy', 'resource'), draw(TYPES))
        files[f'{folder}/metadata.json'] = json.dumps(meta).encode()
        files[f'{folder}/resources.json'] = json.dumps(
            draw(st.lists(RESOURCE, min_size=1, max_size=3))).encode()
    for _ in range(draw(st.integers(1, 6))):
        folder, name = draw(FOLDERS), draw(NAMES)
        if draw(st.booleans()) and name in CONTENT:
            data = draw(CONTENT[name]).encode('utf-8')
        else:
            data = draw(st.one_of(st.binary(max_size=60),
                                  st.text(max_size=60).map(lambda t: t.encode('utf-8'))))
        files[f'{folder}/{name}'] = data
    return files


def _write(root, files):
    for rel, data in files.items():
        path = os.path.join(root, *rel.split('/'))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as fh:
            fh.write(data)


@EXAMPLES
@given(files=trees(), allow_mixed=st.booleans())
def test_any_folder_gives_runs_or_one_line_error(files, allow_mixed):
    with tempfile.TemporaryDirectory() as root:
        _write(root, files)
        try:
            runs = load_runs([root], allow_mixed=allow_mixed, warnings=[])
        except ReportInputError as e:
            assert str(e) and '\n' not in str(e), repr(str(e))
            return
        doc = document.build(runs, fail_on='high', sources=[root])
        for fmt in render.FORMATS:
            assert render.render(doc, fmt)
