"""Start-up hook for the console scripts the fault-injection runs start (test tooling only).

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
