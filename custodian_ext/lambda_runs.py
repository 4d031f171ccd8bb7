"""What each policy ``c7n.handler`` runs in one Lambda invocation found.

The pack's functions export their findings (AWS Security Hub) after the run;
c7n's handler returns nothing per policy, so the ``lambda`` program's patch of
``Policy.push`` (custodian_ext/patches/table.py) records each run here while
``recording()`` is open. Outside it, the patch only calls the original.
"""
import contextlib
import threading

_local = threading.local()


def recorded_push(original):
    def push(self, event, lambda_ctx=None):
        resources = original(self, event, lambda_ctx)
        ran = getattr(_local, 'ran', None)
        if ran is not None:
            ran.append((self, resources))
        return resources
    return push


@contextlib.contextmanager
def recording():
    """Record (policy, resources) of every policy pushed in the block."""
    _local.ran = ran = []
    try:
        yield ran
    finally:
        _local.ran = None
