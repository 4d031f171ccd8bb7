"""What the processes of one run share: a private folder and file locks.

c7n-org runs each account-region in one of ``C7N_ORG_PARALLEL`` worker processes,
and ``custodian run`` shares its regions between processes
(``custodian_ext.region_processes``), so the regions of one account run in
different processes at once. Two things must then hold across processes, not only
across threads:

- AWS's rate limits count per account and region, whoever sends: every
  region's activity review and global event-history checks read the account's
  global events in us-east-1, and CloudTrail allows ``LookupEvents`` 2
  requests per second there (``filters.event_history.RateLimiter``).
- The same CloudTrail lookup wanted by several processes is made once: the
  first takes its lock and reads it, the others wait and read its answer.

``start()`` (c7n-org's parent, or the first ``custodian run`` process, before the
others exist) makes a private folder (mode 0700) and names it in
``CUSTODIAN_EXT_SHARED_RUN``; forked or spawned processes inherit the variable. The
parent removes the folder at exit. Without the variable (a ``custodian run`` in one
process), nothing here is used.
Locks are ``fcntl.flock`` (Linux, macOS); elsewhere nothing is shared.
"""
import atexit
import contextlib
import hashlib
import os
import pickle
import shutil
import tempfile
import time

try:
    import fcntl
except ImportError:  # Windows: each process keeps its own limits and answers
    fcntl = None

ENV = 'CUSTODIAN_EXT_SHARED_RUN'


def start():
    """Create the run's folder (once per run, in the parent process)."""
    if fcntl is None or os.environ.get(ENV):
        return os.environ.get(ENV)
    path = tempfile.mkdtemp(prefix='custodian-ext-run-')
    os.environ[ENV] = path
    owner = os.getpid()

    def remove():
        if os.getpid() == owner:  # a forked worker never removes its parent's folder
            shutil.rmtree(path, ignore_errors=True)
            if os.environ.get(ENV) == path:
                del os.environ[ENV]
    atexit.register(remove)
    return path


def directory():
    path = os.environ.get(ENV)
    if fcntl is None or not path or not os.path.isdir(path):
        return None
    return path


def _file(path, name, suffix):
    digest = hashlib.sha256(repr(name).encode()).hexdigest()[:40]
    return os.path.join(path, digest + suffix)


@contextlib.contextmanager
def held(path, name):
    """An exclusive lock on ``name`` across the run's processes (and threads)."""
    fd = os.open(_file(path, name, '.lock'), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def load(path, name, max_age):
    """The value stored under ``name`` less than ``max_age`` seconds ago, or None."""
    try:
        with open(_file(path, name, '.pickle'), 'rb') as fh:
            stamp, value = pickle.load(fh)  # nosec: our own files, in our 0700 folder
    except (OSError, EOFError, pickle.UnpicklingError):
        return None
    if time.time() - stamp >= max_age:
        return None
    return value


def store(path, name, value):
    target = _file(path, name, '.pickle')
    tmp = f'{target}.{os.getpid()}.tmp'
    with open(tmp, 'wb') as fh:
        pickle.dump((time.time(), value), fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, target)


def read_clock(path, name):
    """A float kept under ``name`` (call with its lock held), or None."""
    try:
        with open(_file(path, name, '.clock')) as fh:
            return float(fh.read() or 'nan')
    except (OSError, ValueError):
        return None


def write_clock(path, name, value):
    with open(_file(path, name, '.clock'), 'w') as fh:
        fh.write(repr(value))
