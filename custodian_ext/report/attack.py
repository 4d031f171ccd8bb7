"""MITRE ATT&CK techniques of the pack's policies (``custodian_ext/data/attack-techniques.yml``).

A policy names one technique in ``metadata.attack`` (``T1078.004``); the
OCSF and Security Hub outputs need its name and tactics.
"""
import functools
import os
from dataclasses import dataclass

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data',
                    'attack-techniques.yml')


@dataclass(frozen=True)
class Technique:
    id: str           # T1078.004
    name: str         # Cloud Accounts
    parent_id: str    # T1078 (itself for a technique)
    parent_name: str  # Valid Accounts
    tactics: tuple    # ((TA0005, Defense Evasion), ...)
    version: str      # ATT&CK version of the data

    @property
    def is_sub(self):
        return self.id != self.parent_id

    @property
    def full_name(self):
        return f"{self.parent_name}: {self.name}" if self.is_sub else self.name


@functools.lru_cache(maxsize=1)
def _data():
    import yaml
    with open(DATA) as fh:
        return yaml.safe_load(fh)


def technique(tid):
    """The Technique for ``tid``, or None when the catalogue does not know it."""
    if not tid:
        return None
    data = _data()
    tid = str(tid).strip()
    entry = data['techniques'].get(tid)
    if entry is None:
        return None
    parent_id = tid.split('.')[0]
    parent = data['techniques'].get(parent_id) or entry
    tactics = tuple((t, data['tactics'][t]) for t in entry['tactics'])
    return Technique(tid, entry['name'], parent_id, parent['name'], tactics,
                     str(data['version']))


def known():
    return set(_data()['techniques'])
