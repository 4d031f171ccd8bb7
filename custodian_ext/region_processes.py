"""``custodian run``'s regions shared out between processes (the performance layer).

``custodian_ext.concurrency`` runs the policies of a ``custodian run`` on threads of
one process, and Python runs one thread's code at a time: a sweep whose calls
answer quickly (an account whose event history fits in a read or two per region)
is bound by one core, about 5 s of CPU for the detect pack in 17 regions while its
calls could all be answered in 3. Here, once the policies are loaded and planned and
before any of them starts, the ``custodian`` process forks
``CUSTODIAN_EXT_PROCESSES - 1`` others (default: the cores it may use, at most
``DEFAULT_MAX``; 1 switches this off) and each takes a share of the regions:

- each runs its regions' policies on its own threads, as one process would, and
  writes their output folders and logs where one process would have;
- the others report each policy's outcome as it ends (finished, or its error with
  its traceback) through a pipe, and the first process's c7n loop takes the outcomes
  in its own order: its log, its list of policies that had errors and its exit
  status are those of one process;
- a process that ends before reporting a policy (killed, out of memory) makes each
  policy it had not reported an error of the run: never a silent gap;
- AWS's rate limits and the CloudTrail lookups are shared as between c7n-org's
  workers (``custodian_ext.shared_run``): ``LookupEvents`` stays at 2 per second per
  account-region whichever process sends, and a lookup two processes want is made
  once.

Regions are shared out by their number of policies, the largest first, each to the
share with the fewest so far; the first process keeps the share with the largest
region (the global-events region: IAM, the account's global checks). Only in the
``custodian`` console script on Linux (``fork``), for a run that only reads (the
concurrency plan), and while no other thread has started (a fork copies one thread:
a lock another thread held would stay held). Otherwise one process, as before.
Ctrl-C reaches every process of the terminal's process group; the first process
ends those it started when it stops early.
"""
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import Future

import custodian_ext.lifetime as lifetime
import custodian_ext.perf as perf
import custodian_ext.shared_run as shared_run
from custodian_ext.errors import count_setting

log = logging.getLogger('custodian.ext.processes')

ENV = 'CUSTODIAN_EXT_PROCESSES'
DEFAULT_MAX = 4   # each process holds its own clients and caches: about 65 MB more each
MAX = 64


class RegionProcessError(Exception):
    """A policy run by another process of the same ``custodian run`` failed."""


class RegionProcessLost(RegionProcessError):
    """The process that ran a policy ended before reporting it (``started``: when it was
    started, the earliest the policy can have begun)."""

    def __init__(self, message, started):
        super().__init__(message)
        self.started = started


def processes(environ=None):
    """Processes one ``custodian run`` may use (CUSTODIAN_EXT_PROCESSES)."""
    return count_setting(os.environ if environ is None else environ, ENV,
                         max(1, min(cores(), DEFAULT_MAX)), MAX,
                         'the number of processes a custodian run shares its regions '
                         'between, 1 (one process)')


def cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def can_fork():
    """This process may fork now: the custodian console script on Linux, one thread."""
    return (sys.platform.startswith('linux') and hasattr(os, 'fork') and lifetime.console()
            and threading.active_count() == 1)


def shares(regions, n):
    """``regions`` ({region: weight}, in the run's order) in at most ``n`` shares, each a
    list of regions in the run's order: the heaviest region first, each to the lightest
    share so far (the first share on a tie); the first share holds the heaviest region."""
    n = max(1, min(n, len(regions)))
    order = {r: i for i, r in enumerate(regions)}
    loads, out = [0] * n, [[] for _ in range(n)]
    for region in sorted(regions, key=lambda r: (-regions[r], order[r])):
        i = loads.index(min(loads))
        loads[i] += regions[region]
        out[i].append(region)
    return [sorted(share, key=order.get) for share in out if share]


def fork(policies, run_share, region_of=lambda p: p.options.region):
    """Start the other processes: (the policies this process runs, {id(policy): Future}
    of those the others run).

    ``run_share(policies)`` runs a share and yields ``(policy, exception or None)`` as
    each ends; a forked process calls it with its share, reports, and exits (it never
    returns here).
    """
    weights = {}
    for p in policies:
        weights[region_of(p)] = weights.get(region_of(p), 0) + 1
    n = processes()
    if n < 2 or len(weights) < 2 or not can_fork():
        return policies, {}
    groups = shares(weights, n)
    shared_run.start()  # before the fork: every process names the same folder
    index = {id(p): i for i, p in enumerate(policies)}
    mine = [p for p in policies if region_of(p) in groups[0]]
    remote = {}
    for group in groups[1:]:
        share = [p for p in policies if region_of(p) in group]
        read_end, write_end = os.pipe()
        lifetime.flush_std_streams()  # or the child writes the parent's buffered lines again
        started = time.time()
        pid = os.fork()
        if pid == 0:
            for fd in [read_end] + [w.fd for w in _workers]:  # the others' reports: theirs
                os.close(fd)
            _child(share, run_share, index, write_end)  # never returns
        os.close(write_end)
        futures = {index[id(p)]: Future() for p in share}
        for p in share:
            remote[id(p)] = futures[index[id(p)]]
        names = {index[id(p)]: p.name for p in share}
        _workers.append(_Worker(pid, group, read_end, futures, names, started))
    for worker in _workers:  # once every process is forked: a fork copies one thread
        worker.thread.start()
    log.debug("regions shared between %d processes: %s", len(groups), groups)
    return mine, remote


def end_others():
    """The run stops early (Ctrl-C, ``--debug``'s first error): end the processes it
    started; each policy they had not reported becomes an error."""
    for worker in list(_workers):
        worker.end()


def record_lost(policy, error):
    """Write a lost policy's run as c7n writes one that raised (its execution context: the
    ``PolicyException`` metric in ``metadata.json``, the reason in ``custodian-run.log``,
    uploaded where its output goes), so that the report counts it errored: the process
    may have ended before the policy wrote anything at all."""
    try:
        with policy.ctx as ctx:  # c7n's log output records the error with its reason
            # the run began no later than its process: what it wrote before it was lost
            # (resources.json, before metadata.json) belongs to this run, not an older one
            ctx.start_time = min(ctx.start_time, error.started)
            raise error
    except RegionProcessLost:
        pass
    except Exception as e:  # the run still fails on the policy (c7n's loop gets the error)
        log.warning("could not record policy %s as errored in its output: %s", policy.name, e)


# -- the forked processes -------------------------------------------------------------

def _child(share, run_share, index, fd):
    status = 0
    try:
        forget_inherited()
        with os.fdopen(fd, 'w', encoding='utf-8') as pipe:
            for policy, error in run_share(share):
                text = None if error is None else ''.join(
                    traceback.format_exception(type(error), error, error.__traceback__))
                pipe.write(json.dumps([index[id(policy)], text]) + '\n')
                pipe.flush()
    except KeyboardInterrupt:
        status = 130
    except BrokenPipeError:  # the first process has stopped (--debug's first error, killed)
        status = 1
    except BaseException:  # reported by the first process for every policy left
        traceback.print_exc()
        status = 1
    finally:  # not the exit callbacks: they would wait for policy threads still running
        logging.shutdown()
        lifetime.flush_std_streams()
        os._exit(status)


def forget_inherited():
    """A forked process drops what it shares with its parent: the open connections (one
    socket read by two processes would mix their answers), and the run's process list."""
    perf.forget_connections()
    del _workers[:]


# -- the first process ----------------------------------------------------------------

_workers = []


class _Worker:
    """Another process of the run: reads its reports, resolves the futures of its share."""

    def __init__(self, pid, regions, fd, futures, names, started):
        self.pid, self.regions, self.fd = pid, regions, fd
        self.started = started
        self.futures, self.names = futures, names
        self.lock = threading.Lock()
        self.ended = False
        self.thread = threading.Thread(target=self._read, daemon=True,
                                       name=f'custodian-ext-regions-{pid}')

    def _read(self):
        try:
            with os.fdopen(self.fd, 'r', encoding='utf-8') as pipe:
                for line in pipe:
                    i, text = json.loads(line)
                    future = self.futures.pop(i, None)
                    if future is None:
                        continue
                    if text is None:
                        future.set_result(None)
                    else:
                        future.set_exception(RegionProcessError(
                            f"policy {self.names[i]} failed in the process running "
                            f"{', '.join(self.regions)} (pid {self.pid}):\n{text.rstrip()}"))
        except (OSError, ValueError) as e:  # a torn report: what is left is lost
            log.warning("reports of the process running %s (pid %d) unreadable: %s",
                        ', '.join(self.regions), self.pid, e)
        try:  # ended, not yet reaped: end() cannot signal a reused pid
            os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        with self.lock:
            self.ended = True
        status = _wait(self.pid)
        for i, future in sorted(self.futures.items()):
            future.set_exception(RegionProcessLost(
                f"policy {self.names[i]}: the process running {', '.join(self.regions)} "
                f"(pid {self.pid}) {status} before the policy finished", self.started))
        self.futures.clear()
        if status != 'exited':
            log.error("the process running %s (pid %d) %s", ', '.join(self.regions),
                      self.pid, status)
        if self in _workers:
            _workers.remove(self)

    def end(self):
        with self.lock:
            if not self.ended:
                try:
                    os.kill(self.pid, signal.SIGTERM)
                except OSError:
                    pass


def _wait(pid):
    """How the process ended, as words: 'exited', 'exited with status N', 'was killed by
    SIGKILL'."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return 'exited'
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f'signal {sig}'
        return f'was killed by {name}'
    code = os.WEXITSTATUS(status)
    return 'exited' if code == 0 else f'exited with status {code}'
