"""`custodian-ext bundle`: one policy file for c7n-org's -u, each policy unchanged, names unique."""
import glob
import os
import re

import pytest
import yaml

from custodian_ext.bundle import write_bundle
from custodian_ext.cli import main
from custodian_ext.errors import PackError
from tests.support import POLICIES

DETECT = os.path.join(POLICIES, 'detect')


def test_bundle_of_detect_is_every_policy_unchanged(tmp_path):
    out = tmp_path / 'build' / 'detect.yml'
    assert main(['bundle', DETECT, '-o', str(out)]) == 0
    expected = []
    for path in sorted(glob.glob(os.path.join(DETECT, '*.yml'))):
        with open(path) as fh:
            expected.extend(yaml.safe_load(fh)['policies'])
    text = out.read_text()
    assert yaml.safe_load(text) == {'policies': expected}
    assert len(expected) >= 4
    # each policy says where it came from; vars.yml is never bundled
    assert f"# from {os.path.join(DETECT, 'x1.yml')}" in text
    assert not re.search(r'^incident_start:', text, re.M)  # no vars.yml line


def test_files_and_folders_mix_and_order_is_kept(tmp_path):
    a = tmp_path / 'a.yml'
    a.write_text(yaml.safe_dump({'policies': [{'name': 'zz-last', 'resource': 'aws.ec2'}]}))
    out = tmp_path / 'b.yml'
    write_bundle([str(a), DETECT], str(out))
    names = [p['name'] for p in yaml.safe_load(out.read_text())['policies']]
    assert names[0] == 'zz-last' and 'x1-quarantined-user-active-keys' in names


def test_duplicate_names_are_refused_naming_both_files(tmp_path):
    for f in ('one.yml', 'two.yml'):
        (tmp_path / f).write_text(yaml.safe_dump(
            {'policies': [{'name': 'same', 'resource': 'aws.ec2'}]}))
    with pytest.raises(PackError) as e:
        write_bundle([str(tmp_path)], str(tmp_path / 'out.yml'))
    assert str(e.value) == (f"policy name 'same' is defined in both {tmp_path / 'one.yml'} and "
                            f"{tmp_path / 'two.yml'}; names must be unique across the bundle")
    assert not (tmp_path / 'out.yml').exists()


@pytest.mark.parametrize('content,needle', [
    ({'name': 'x'}, "not a policy file (no top-level 'policies:' list)"),
    ({'policies': [{'resource': 'aws.ec2'}]}, 'policy #1 has no name'),
    ({'policies': [], 'vars': {'a': 1}}, "top-level key(s) vars cannot be merged"),
])
def test_bad_files_get_one_line(tmp_path, capsys, content, needle):
    bad = tmp_path / 'bad.yml'
    bad.write_text(yaml.safe_dump(content))
    assert main(['bundle', str(bad), '-o', str(tmp_path / 'o.yml')]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"custodian-ext: error: {bad}: {needle}")


def test_malformed_yaml_gets_one_line_with_where(tmp_path, capsys):
    bad = tmp_path / 'bad.yml'
    bad.write_text('policies:\n  - name: x\n    resource: [aws.ec2\n')
    assert main(['bundle', str(bad), '-o', str(tmp_path / 'o.yml')]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"custodian-ext: error: {bad}: not valid YAML at line 4, column 1: ")
