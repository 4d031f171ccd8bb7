"""The .pth gate: the pack loads into custodian and c7n-org, and nowhere else."""
import importlib
import sys

import pytest

import custodian_ext_autoload as autoload


@pytest.mark.parametrize('argv0,env,expected', [
    ('/venv/bin/custodian', None, True),
    ('/venv/bin/c7n-org', None, True),
    ('C:\\venv\\Scripts\\custodian.exe', None, True),
    ('/venv/bin/python', None, False),
    ('/venv/bin/pytest', None, False),
    ('-c', None, False),
    ('-m', '1', True),
    ('/venv/bin/custodian', '0', False),
])
def test_gate(monkeypatch, argv0, env, expected):
    monkeypatch.setattr(sys, 'argv', [argv0.replace('\\', '/')])
    if env is None:
        monkeypatch.delenv('CUSTODIAN_EXT_AUTOLOAD', raising=False)
    else:
        monkeypatch.setenv('CUSTODIAN_EXT_AUTOLOAD', env)
    assert autoload.wanted() is expected


def test_c7n_org_exports_the_flag_for_spawned_workers(monkeypatch):
    import os
    monkeypatch.setattr(sys, 'argv', ['/venv/bin/c7n-org', 'run'])
    monkeypatch.setenv('CUSTODIAN_EXT_AUTOLOAD', '')  # so teardown restores the original
    monkeypatch.delenv('CUSTODIAN_EXT_AUTOLOAD')
    importlib.reload(autoload)
    assert os.environ.get('CUSTODIAN_EXT_AUTOLOAD') == '1'
