"""The patch table (custodian_ext.patches): one declaration, install and uninstall, targets
pinned to the locked c7n, c7n-org and botocore versions; the package's layout rules."""
import ast
import importlib
import inspect
import os
import pathlib
import subprocess
import sys

import pytest

from custodian_ext import patches
from custodian_ext.patches import PROGRAMS
from custodian_ext.patches.table import TABLE

REPO = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = REPO / 'custodian_ext'


def test_every_target_has_the_signature_of_the_locked_versions():
    """A version bump that changes a patched function fails here, next to the cause."""
    wrong = []
    for p in TABLE:
        target = patches.original(p.target)
        if p.signature is None:
            assert not callable(target), f"{p.target}: a callable needs its signature pinned"
            continue
        found = str(inspect.signature(target))
        if found != p.signature:
            wrong.append(f"{p.target}: table says {p.signature}, locked version has {found}")
    assert not wrong, '\n'.join(wrong)


def test_every_row_says_why_and_names_known_programs():
    targets = [p.target for p in TABLE]
    assert len(targets) == len(set(targets)), 'a target is patched twice'
    for p in TABLE:
        assert p.why and len(p.why) > 20, p.target
        assert p.programs and set(p.programs) <= set(PROGRAMS), p.target


@pytest.mark.program(None)
@pytest.mark.parametrize('program', PROGRAMS)
def test_install_applies_exactly_the_programs_rows_and_uninstall_restores(program):
    before = {p.target: patches.original(p.target) for p in TABLE}
    patches.install(program)
    try:
        expected = [p.target for p in TABLE if patches.applies(p, program)]
        assert patches.active() == expected
        assert patches.installed() == program
        for p in TABLE:
            owner, name, is_item = patches.resolve(p.target)
            now = owner[name] if is_item else getattr(owner, name)
            if p.target in expected and not is_item:
                assert getattr(now, '_custodian_ext', None) == p.target
        patches.install(program)  # a second install is a no-op
        assert patches.active() == expected
    finally:
        patches.uninstall()
    assert patches.active() == [] and patches.installed() is None
    for p in TABLE:
        owner, name, is_item = patches.resolve(p.target)
        now = owner[name] if is_item else owner.__dict__.get(name, getattr(owner, name))
        assert now is before[p.target], p.target


@pytest.mark.program(None)
def test_the_performance_layer_is_left_out_when_switched_off(monkeypatch):
    monkeypatch.setenv('CUSTODIAN_EXT_PERF', '0')
    patches.install('c7n-org')
    try:
        assert set(patches.active()) == {p.target for p in TABLE
                                          if p.always and 'c7n-org' in p.programs}
    finally:
        patches.uninstall()


@pytest.mark.program(None)
def test_the_resource_cache_rule_holds_for_every_entry_point():
    """c7n defines Policy.run = __call__; c7n-org calls run, custodian calls __call__: the
    rule sits on PullMode.run, which both reach."""
    from c7n.policy import Policy, PullMode
    assert Policy.run is Policy.__call__  # the alias that a __call__ wrapper would miss
    patches.install('c7n-org')
    try:
        assert getattr(PullMode.run, '_custodian_ext', None) == 'c7n.policy:PullMode.run'
    finally:
        patches.uninstall()


def _module_files():
    return sorted(PACKAGE.rglob('*.py'))


def test_no_module_of_the_shipped_package_imports_the_development_package():
    offenders = []
    for path in _module_files():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == 'custodian_ext_dev' or n.startswith('custodian_ext_dev.') for n in names):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, offenders


def test_no_import_cycle_inside_the_package():
    # the house's own analysis (module-level imports), in ../shared beside the repository
    tool = REPO.parent / 'shared' / 'hooks' / 'import_cycles.py'
    proc = subprocess.run([sys.executable, str(tool), str(PACKAGE)], capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1].endswith(': 0'), proc.stdout


def test_importing_any_module_patches_nothing():
    """In a fresh interpreter: import every module of the package; no c7n, c7n-org or
    botocore function has changed."""
    modules = []
    for path in _module_files():
        rel = path.relative_to(REPO).with_suffix('')
        parts = list(rel.parts)
        if parts[-1] == '__init__':
            parts = parts[:-1]
        modules.append('.'.join(parts))
    probe = f'''
import importlib, json
from custodian_ext.patches import resolve
from custodian_ext.patches.table import TABLE
def snapshot():
    out = {{}}
    for p in TABLE:
        owner, name, is_item = resolve(p.target)
        out[p.target] = id(owner[name] if is_item else getattr(owner, name))
    return out
before = snapshot()
for m in {modules!r}:
    if m != 'custodian_ext.handler':  # the Lambda entry point installs the lambda patches
        importlib.import_module(m)
after = snapshot()
print(json.dumps(sorted(k for k in before if before[k] != after[k])))
'''
    env = dict(os.environ, CUSTODIAN_EXT_AUTOLOAD='0', PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == '[]', proc.stdout


def test_the_lambda_handler_installs_the_lambda_patches_only():
    probe = '''
import json
import custodian_ext.handler
from custodian_ext import patches
print(json.dumps([patches.installed(), patches.active()]))
'''
    env = dict(os.environ, CUSTODIAN_EXT_AUTOLOAD='0', PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json
    program, active = json.loads(proc.stdout)
    assert program == 'lambda'
    assert active == [p.target for p in TABLE if patches.applies(p, 'lambda')]
    assert not any('commands' in t or 'c7n_org' in t or 'botocore' in t for t in active)
    importlib.invalidate_caches()
