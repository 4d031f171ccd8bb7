"""Load the pack into the stock ``custodian`` and ``c7n-org`` commands.

``custodian_ext.pth`` imports this module in every Python process of the
environment, so it must stay cheap and import nothing else unless the running
program is one of Cloud Custodian's console scripts. c7n has no plugin
discovery: its registries are filled at import time, so the pack has to be
imported before the command parses any policy.

``CUSTODIAN_EXT_AUTOLOAD=1`` forces the import (``python -m c7n.cli``, and
workers started with the ``spawn`` method, as on macOS: the flag is exported
when the pack loads so that spawned c7n-org workers load it too);
``CUSTODIAN_EXT_AUTOLOAD=0`` disables it. Loading the pack means importing it
(registrations only) and installing the program's patches
(``custodian_ext.patches``); ``CUSTODIAN_EXT_PROGRAM`` names the program when
the command's name does not (forced loads; it defaults to ``custodian``).
"""
import os
import sys

PROGRAMS = ('custodian', 'c7n-org')


def _program():
    argv0 = sys.argv[0] if getattr(sys, 'argv', None) else ''
    name = os.path.basename(argv0)
    for suffix in ('.exe', '-script.py', '.py'):
        if name.endswith(suffix):
            name = name[:-len(suffix)]
    return name


def wanted():
    flag = os.environ.get('CUSTODIAN_EXT_AUTOLOAD')
    if flag in ('0', 'false', 'no'):
        return False
    return flag in ('1', 'true', 'yes') or _program() in PROGRAMS


def program():
    name = _program()
    return name if name in PROGRAMS else os.environ.get('CUSTODIAN_EXT_PROGRAM', 'custodian')


if wanted():
    if _program() == 'c7n-org':
        # spawned (not forked) workers start a fresh interpreter: tell them too
        os.environ.setdefault('CUSTODIAN_EXT_AUTOLOAD', '1')
        os.environ.setdefault('CUSTODIAN_EXT_PROGRAM', 'c7n-org')
    try:
        import custodian_ext  # noqa: F401
        from custodian_ext import patches
        patches.install(program())
    except Exception as e:  # a broken pack must not stop Python itself
        sys.stderr.write('custodian-ext: could not load the policy pack: %s\n' % e)
