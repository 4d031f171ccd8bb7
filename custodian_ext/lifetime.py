"""A sweep process's garbage collection and exit (the performance layer).

By its end a ``custodian run -r all`` of the detect pack holds about 1.4 million
Python objects (81 policies in 17 regions, their resources, sessions and
clients). Python's cyclic collector walks all of them in every full collection,
and holds every policy thread while it does: measured at AWS latency, 11 full
collections took 2.2 s of the run's 12 s of CPU. At exit the interpreter then
frees the objects one by one, 2 to 4 s after the last output file is written.

- ``settle()``, once the policies are loaded and before they run: what exists
  then (modules, models, the loaded policies) lives as long as the process and
  is left out of collections (``gc.freeze``; in c7n-org, before the workers
  fork, which also keeps their copies of those pages shared), and the young
  generation is collected every ``YOUNG`` allocations rather than 700. Memory
  still held by a cycle is collected, later.
- ``quick_exit(code)``, the ``custodian`` console script after c7n's ``main``:
  the exit callbacks run (log handlers flushed and closed, as at any exit), the
  standard streams are flushed, and the process ends without freeing its
  objects one by one. Only when no thread but daemons is left.
"""
import atexit
import gc
import os
import sys
import threading

YOUNG = 20000        # allocations between young-generation collections (CPython: 700)
OLDER = 20           # collections of a generation before the next one is collected (10)

_settled = []


def settle():
    """Freeze what exists now and space collections out (once per console-script process)."""
    if _settled or not console():
        return
    _settled.append(True)
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, OLDER, OLDER)


def _exit_status(code):
    """``sys.exit``'s meaning of ``code``: None is 0, an int itself, anything else printed
    to stderr and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f'{code}\n')
    return 1


def console():
    """The process is the ``custodian`` or ``c7n-org`` console script (not a test or a
    program that imports c7n)."""
    import custodian_ext_autoload
    return custodian_ext_autoload._program() in custodian_ext_autoload.PROGRAMS


def can_exit_quickly():
    main = threading.main_thread()
    return threading.current_thread() is main and all(
        t is main or t.daemon for t in threading.enumerate())


def quick_exit(code):
    """End the process now with ``code`` (as ``sys.exit`` would), after the exit callbacks."""
    status = _exit_status(code)
    atexit._run_exitfuncs()
    flush_std_streams()
    os._exit(status)


def flush_std_streams():
    """Flush stdout and stderr before ``os._exit`` (which does not), whatever they are."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
