"""`custodian validate` accepts every policy file the pack ships."""
import glob
import os

import pytest

from tests.support import POLICIES, run_cli

pytestmark = pytest.mark.e2e

FILES = sorted(f for f in glob.glob(os.path.join(POLICIES, '*', '*.yml')))


def test_every_policy_file_validates():
    assert FILES
    proc = run_cli(['custodian', 'validate'] + FILES, dict(os.environ), check=0)
    for f in FILES:
        assert f'Configuration valid: {f}' in proc.stderr, f
