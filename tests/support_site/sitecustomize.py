"""Start-up hook for the console scripts the fault and stress tests start (test tooling only).

Put this folder first on the child process's ``PYTHONPATH``; Python imports
``sitecustomize`` at start-up. ``CUSTODIAN_TEST_READ_TIMEOUT=<seconds>`` then
becomes botocore's default read timeout (60 s) for every client that does not
set its own, so that the emulator's injected timeouts
(``custodian_ext_dev.emulator.faults``) cost a second, not a minute. botocore
has no environment variable or config-file key for the read timeout.
"""
import os

_timeout = os.environ.get('CUSTODIAN_TEST_READ_TIMEOUT')
if _timeout:
    import botocore.config

    botocore.config.Config.OPTION_DEFAULTS['read_timeout'] = float(_timeout)

# CUSTODIAN_TEST_SLOW_CALLS="StopInstances=1.0,UpdateAccessKey=0.5": sleep that many seconds
# before each such call, so that a test can signal a run in the middle of its resources.
_slow = os.environ.get('CUSTODIAN_TEST_SLOW_CALLS')
if _slow:
    import time

    import botocore.client

    _delays = {op: float(s) for op, _, s in (p.partition('=') for p in _slow.split(',') if p)}
    _real_call = botocore.client.BaseClient._make_api_call

    def _make_api_call(self, operation, params):
        if operation in _delays:
            time.sleep(_delays[operation])
        return _real_call(self, operation, params)

    botocore.client.BaseClient._make_api_call = _make_api_call
