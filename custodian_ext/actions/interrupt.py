"""Finish the resource at hand when a respond run is told to stop (SIGINT, SIGTERM).

A pack action changes a resource in several calls (deactivate, then record;
snapshot, wait, then terminate). Python's default SIGINT (Ctrl-C) raises
``KeyboardInterrupt`` between any two of them, and SIGTERM (``kill``, a CI
job cancelled, a container stopped) ends the process at once: the resource
is left half handled and nothing records how far it got.

While an action works through its resources, ``Deferred`` catches both
signals: the resource being handled is finished (its calls, its result
written), the resources not started yet are recorded as untouched, and then
the run stops: ``KeyboardInterrupt`` for SIGINT, exit status 143 for SIGTERM.
A second signal stops at once. Only the main thread can install signal
handlers; elsewhere (threads, Lambda) the defaults stay. A crash or SIGKILL
cannot be deferred: results are written after every resource
(``PackAction.record``), and each action's steps are ordered so that a rerun
finishes a resource left half done.
"""
import logging
import signal
import threading

log = logging.getLogger('custodian.ext.actions')

SIGNALS = (signal.SIGINT, signal.SIGTERM)
NAMES = {signal.SIGINT: 'SIGINT', signal.SIGTERM: 'SIGTERM'}


class Deferred:
    """Context manager: defer SIGINT/SIGTERM; ``requested`` says which arrived."""

    def __init__(self, what='the current resource'):
        self.what = what
        self.requested = None
        self.previous = {}

    @property
    def name(self):
        return NAMES.get(self.requested, str(self.requested))

    def _handler(self, signum, frame):
        if self.requested is not None:  # asked twice: stop now
            self._restore()
            raise KeyboardInterrupt
        self.requested = signum
        log.warning('%s received: finishing %s, then stopping (send it again to stop now)',
                    NAMES.get(signum, signum), self.what)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                try:
                    self.previous[sig] = signal.signal(sig, self._handler)
                except (ValueError, OSError):  # pragma: no cover - not allowed here
                    pass
        return self

    def _restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def __exit__(self, *exc):
        self._restore()
        return False

    def stop(self):
        """Stop the run the way the signal asked, once the results are written."""
        if self.requested == signal.SIGTERM:
            raise SystemExit(128 + signal.SIGTERM)
        raise KeyboardInterrupt
