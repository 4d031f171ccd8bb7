import os

import pytest

from custodian_ext_dev.emulator import Emulator
from tests.support import new_account, reset_sessions

# compromised_world, shared by in-process and command-line tests
pytest_plugins = ['tests.seed_resources']


@pytest.fixture(scope='session')
def emulator(tmp_path_factory):
    """One moto server process (with the pack's extensions) for the session, on loopback."""
    log = tmp_path_factory.mktemp('emulator') / 'emulator.log'
    with Emulator(log_file=str(log)) as emu:
        yield emu


@pytest.fixture
def account(emulator):
    """A fresh, empty AWS account on the emulator."""
    return new_account(emulator.url)


@pytest.fixture
def aws(account, monkeypatch, tmp_path):
    """``account``, with in-process boto3 and c7n pointed at it."""
    account.apply_env(monkeypatch)
    monkeypatch.setenv('HOME', str(tmp_path))
    reset_sessions()
    yield account
    reset_sessions()


def pytest_configure(config):
    config.addinivalue_line(
        'markers', "program(name): run an in-process test with that program's patches "
        "(custodian, c7n-org, lambda, custodian-ext; default custodian)")


@pytest.fixture(autouse=True)
def pack_patches(request):
    """The patches a program gets (custodian_ext.patches.table), around each test.

    Default: the ``custodian`` console script's; ``@pytest.mark.program('c7n-org')``
    for another program's, ``@pytest.mark.program(None)`` for none (stock c7n).
    """
    import custodian_ext  # noqa: F401  registers the pack
    from custodian_ext import patches
    marker = request.node.get_closest_marker('program')
    program = marker.args[0] if marker else 'custodian'
    if program:
        patches.install(program)
    try:
        yield program
    finally:
        patches.uninstall()


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch, tmp_path):
    # Belt and braces: no test may pick up real credentials or config.
    for k in ('AWS_PROFILE', 'AWS_DEFAULT_PROFILE'):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv('AWS_CONFIG_FILE', os.devnull)
    monkeypatch.setenv('AWS_SHARED_CREDENTIALS_FILE', os.devnull)
    monkeypatch.setenv('AWS_EC2_METADATA_DISABLED', 'true')
    monkeypatch.setenv('CUSTODIAN_TEST_HOME', str(tmp_path))
