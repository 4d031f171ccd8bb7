"""The README's map from runbook step to policy, code and test is generated, never stale.

custodian_ext_dev/runbook_map.py builds it from the policies, c7n's registries and the
tests. This file names no shipped policy on purpose: the map lists every test file that
names one.
"""
import difflib
import os
import re
import shutil

import pytest

from custodian_ext_dev import runbook_map
from tests.support import REPO

RUNBOOK = os.path.join(os.path.dirname(REPO), 'shared', 'RUNBOOK.md')


def test_readme_map_is_current():
    with open(os.path.join(REPO, 'README.md')) as fh:
        current = runbook_map.readme_section(fh.read())
    generated = runbook_map.render()
    if current != generated:
        diff = ''.join(list(difflib.unified_diff(
            current.splitlines(True), generated.splitlines(True), 'README.md', 'generated'))[:60])
        pytest.fail(f"README.md's runbook map is out of date; run: {runbook_map.COMMAND}\n"
                    f"{diff}", pytrace=False)


@pytest.mark.skipif(not os.path.exists(RUNBOOK), reason='../shared/RUNBOOK.md is not here')
def test_steps_are_the_runbook_steps_in_its_order():
    from custodian_ext.report.model import STEPS
    with open(RUNBOOK) as fh:
        ids = re.findall(r'^(?:- )?(R\d+\.\d+|X\d+) ', fh.read(), re.M)
    assert list(STEPS) == ids


def test_code_column_names_the_module_that_registers_each_element():
    import custodian_ext  # noqa: F401
    policy = {'name': 'z9-example', 'resource': 'aws.account-region',
              'filters': [{'or': [{'type': 'cloudtrail-events', 'since': '{incident_start}'},
                                  {'tag:team': 'none'}]}, 'value'],
              'actions': [{'type': 'notify'}]}
    assert runbook_map.code_cell(runbook_map.elements(policy)) == (
        '`custodian_ext/resources.py` (`aws.account-region`); '
        '`custodian_ext/filters/event_history.py` (`cloudtrail-events`); '
        'stock `value`, `notify`')
    only_conditions = {'name': 'z9-example', 'resource': 'aws.ec2',
                       'conditions': [{'type': 'value', 'key': 'region', 'value': 'x'}]}
    assert runbook_map.code_cell(runbook_map.elements(only_conditions)) == (
        'no filter: every resource its `conditions` let through')
    with pytest.raises(runbook_map.MapError, match="filter 'no-such-filter' is not registered"):
        runbook_map.elements(dict(policy, filters=[{'type': 'no-such-filter'}]))


def test_a_policy_name_inside_a_longer_one_does_not_count():
    files = {'a.py': "load('z9-keys-since-incident')", 'b.py': "x = 'z9-keys'\n"}
    assert runbook_map.naming('z9-keys', files) == ['b.py']


def test_a_policy_without_a_known_step_is_refused(tmp_path):
    (tmp_path / 'policies' / 'detect').mkdir(parents=True)
    (tmp_path / 'policies' / 'detect' / 'z9.yml').write_text(
        'policies:\n  - name: z9-example\n    resource: aws.ec2\n    metadata: {runbook: R9.9}\n')
    with pytest.raises(runbook_map.MapError, match="metadata.runbook 'R9.9' is not a runbook"):
        runbook_map.rows(str(tmp_path))


def test_check_names_the_fix_and_write_applies_it(tmp_path, capsys):
    for folder in ('policies', 'tests'):
        os.symlink(os.path.join(REPO, folder), tmp_path / folder)
    shutil.copy(os.path.join(REPO, 'README.md'), tmp_path / 'README.md')
    text = (tmp_path / 'README.md').read_text()
    section = runbook_map.readme_section(text)
    (tmp_path / 'README.md').write_text(text.replace(section, section.replace(
        '| step |', '| stale step |', 1)))
    assert runbook_map.main(['--check'], repo=str(tmp_path)) == 1
    assert 'run: make runbook-map' in capsys.readouterr().err
    assert runbook_map.main(['--write'], repo=str(tmp_path)) == 0
    assert runbook_map.main(['--check'], repo=str(tmp_path)) == 0
    assert (tmp_path / 'README.md').read_text() == text
