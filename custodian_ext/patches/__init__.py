"""Every patch the pack makes to c7n, c7n-org and botocore: declared in ``table.TABLE``,
applied by ``install(program)``, undone by ``uninstall()``.

Cloud Custodian has no extension points for what the pack adds (settings checked
before substitution, skip records, one-line errors, the performance layer), so
the pack wraps a few functions. Each row of the table names its target, the
wrapper factory (``make(original) -> replacement``), the programs it applies to
and why. Nothing else in the package patches anything, and importing any module
of the package patches nothing: the programs call ``install``:

- ``custodian`` and ``c7n-org``: ``custodian_ext_autoload`` (through the .pth file);
- ``lambda``: ``custodian_ext.handler`` (periodic and react functions);
- ``custodian-ext``: the pack's own command line.

``tests/conftest.py`` installs a program's patches around each in-process test
(fixture ``pack_patches``), so in-process tests run with exactly the patches
that program gets. ``tests/inprocess/test_patches.py`` pins each target's
signature to the locked c7n, c7n-org and botocore versions.
"""
import functools
import importlib
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

log = logging.getLogger('custodian.ext')

PROGRAMS = ('custodian', 'c7n-org', 'lambda', 'custodian-ext')
ALL = PROGRAMS
CLI = ('custodian', 'c7n-org')

_lock = threading.RLock()
_applied = []        # [(patch, owner, attribute or key, original)], in install order
_program = [None]


@dataclass(frozen=True)
class Patch:
    """One patch: ``target`` is ``'module:Attr.attr'`` or ``'module:NAME[key]'`` (a dict item)."""
    target: str
    wrapper: Callable
    programs: tuple
    why: str
    # the target's signature in the locked versions (callables; None for dict items)
    signature: Optional[str] = None
    # False: applied only while the performance layer is on (CUSTODIAN_EXT_PERF)
    always: bool = True
    requires: tuple = field(default=())  # importable modules it needs (Lambda has no jsonschema)


def performance_enabled():
    """False when ``CUSTODIAN_EXT_PERF=0``: stock c7n behaviour, for comparison."""
    return os.environ.get('CUSTODIAN_EXT_PERF', '1').strip().lower() not in (
        '0', 'false', 'no', 'off')


def resolve(target):
    """(owner, name, is_item) for a target string, importing its module."""
    module, _, path = target.partition(':')
    owner = importlib.import_module(module)
    item = None
    if path.endswith(']'):
        path, _, item = path[:-1].partition('[')
    parts = path.split('.')
    for p in parts[:-1]:
        owner = getattr(owner, p)
    if item is not None:
        return getattr(owner, parts[-1]), item, True
    return owner, parts[-1], False


def original(target):
    """The unpatched object behind ``target`` (for tests and for signatures)."""
    with _lock:
        for patch, owner, name, orig in _applied:
            if patch.target == target:
                return orig
    owner, name, is_item = resolve(target)
    return owner[name] if is_item else owner.__dict__.get(name, getattr(owner, name))


def applies(patch, program):
    if program not in patch.programs:
        return False
    if not patch.always and not performance_enabled():
        return False
    for module in patch.requires:
        try:
            importlib.import_module(module)
        except ImportError:
            return False
    return True


def install(program):
    """Apply the table's patches for ``program``; a second call is a no-op.

    Installing for another program first undoes the current one's patches.
    """
    from custodian_ext.patches.table import TABLE
    if program not in PROGRAMS:
        raise ValueError(f"unknown program {program!r}; one of {', '.join(PROGRAMS)}")
    with _lock:
        if _program[0] == program:
            return
        if _program[0] is not None:
            uninstall()
        for patch in TABLE:
            if not applies(patch, program):
                continue
            owner, name, is_item = resolve(patch.target)
            if is_item:
                orig = owner[name]
                owner[name] = patch.wrapper(orig)
            else:
                # the attribute as stored on its owner (a staticmethod stays one)
                orig = owner.__dict__[name] if name in getattr(owner, '__dict__', {}) \
                    else getattr(owner, name)
                replacement = patch.wrapper(orig)
                # The original's name, module and qualified name: c7n-org pickles
                # run_account by name to send it to its worker processes. (A class, such
                # as an executor_factory's subclass, keeps its own.)
                if not isinstance(replacement, type):
                    functools.update_wrapper(replacement, orig)
                replacement._custodian_ext = patch.target
                setattr(owner, name, replacement)
            _applied.append((patch, owner, name, orig))
        _program[0] = program
        log.debug("custodian-ext: %d patches installed for %s", len(_applied), program)


def uninstall():
    """Undo every patch, newest first, and reset the state the wrappers keep."""
    with _lock:
        while _applied:
            patch, owner, name, orig = _applied.pop()
            if isinstance(owner, dict):
                owner[name] = orig
            else:
                setattr(owner, name, orig)
        _program[0] = None
    import custodian_ext.concurrency as concurrency
    import custodian_ext.perf as perf
    import custodian_ext.runcache as runcache
    runcache.reset()
    perf.reset()
    concurrency.reset()


def installed():
    """The program whose patches are installed, or None."""
    return _program[0]


def active():
    """Targets patched now, in install order."""
    with _lock:
        return [p.target for p, *_ in _applied]
