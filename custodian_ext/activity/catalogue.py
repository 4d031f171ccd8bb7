"""The activity classification catalogue: CloudTrail call -> ATT&CK tactic, technique, severity.

The catalogue is data (``custodian_ext/data/activity-catalogue.yml``); this module reads it,
checks it (one clear line per mistake: ``file:entry: what to fix``) and classifies CloudTrail
records against it::

    from custodian_ext.activity import catalogue
    c = catalogue.load().classify(record)   # record: one entry of a log file's Records
    if c is not None:
        c.id, c.tactic, c.tactic_id, c.technique, c.severity, c.sensitive, c.title

An entry matches on the record's ``eventSource`` and ``eventName`` (a name may hold ``*``
wildcards), and optionally on ``where`` (dotted paths into the record, e.g.
``requestParameters.withDecryption: true``; lists on the way are searched element by
element) and ``error`` (``any``, the default; ``success``; ``failure``; or a list of error
codes). When several entries match, the most specific wins: an exact event name before a
wildcard, then more conditions before fewer, then file order.
"""
import dataclasses
import os
import re
import threading

import yaml
from c7n.utils import yaml_load

from custodian_ext.errors import PackError

DEFAULT_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data', 'activity-catalogue.yml')

SEVERITIES = ('critical', 'high', 'medium', 'low', 'info')

# MITRE ATT&CK Enterprise tactics (https://attack.mitre.org/tactics/enterprise/).
TACTICS = {
    'reconnaissance': 'TA0043',
    'resource-development': 'TA0042',
    'initial-access': 'TA0001',
    'execution': 'TA0002',
    'persistence': 'TA0003',
    'privilege-escalation': 'TA0004',
    'defense-evasion': 'TA0005',
    'credential-access': 'TA0006',
    'discovery': 'TA0007',
    'lateral-movement': 'TA0008',
    'collection': 'TA0009',
    'command-and-control': 'TA0011',
    'exfiltration': 'TA0010',
    'impact': 'TA0040',
}

TECHNIQUE_RE = re.compile(r'^T\d{4}(\.\d{3})?$')
ID_RE = re.compile(r'^[a-z0-9][a-z0-9-]*$')
SOURCE_RE = re.compile(r'^[a-z0-9-]+(\.[a-z0-9-]+)*\.amazonaws\.com$')
NAME_RE = re.compile(r'^[A-Za-z0-9*]+$')
ERROR_KEYWORDS = ('any', 'success', 'failure')

_ENTRY_KEYS = {'id', 'match', 'tactic', 'tactic_id', 'technique', 'severity', 'sensitive',
               'title', 'source'}
_MATCH_KEYS = {'source', 'events', 'where', 'error'}
_OPS = {'exists', 'in', 'prefix', 'contains', 'not'}


@dataclasses.dataclass(frozen=True)
class Classification:
    """What a catalogue entry says about a CloudTrail record."""
    id: str
    tactic: str
    tactic_id: str
    technique: str
    severity: str
    sensitive: bool
    title: str


class _Entry:
    __slots__ = ('classification', 'error', 'names', 'rank', 'reference', 'source', 'where')

    def __init__(self, classification, source, names, where, error, rank, reference):
        self.classification = classification
        self.source = source
        self.names = names
        self.where = where
        self.error = error
        self.rank = rank
        self.reference = reference

    def matches(self, record):
        if not _error_matches(self.error, record.get('errorCode')):
            return False
        return all(_condition_holds(_resolve(record, path), cond) for path, cond in self.where)


class Catalogue:
    """The loaded catalogue: ``classify(record)`` in O(entries for that call)."""

    def __init__(self, entries, path):
        self.path = path
        self.entries = entries
        self._exact = {}
        self._wild = {}
        for entry in entries:
            for name in entry.names:
                if '*' in name:
                    pattern = re.compile('^' + '.*'.join(map(re.escape, name.split('*'))) + '$')
                    self._wild.setdefault(entry.source, []).append((pattern, entry))
                else:
                    self._exact.setdefault((entry.source, name), []).append(entry)
        for bucket in self._exact.values():
            bucket.sort(key=lambda e: e.rank)
        for bucket in self._wild.values():
            bucket.sort(key=lambda pe: pe[1].rank)

    def __len__(self):
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    def entry(self, entry_id):
        for entry in self.entries:
            if entry.classification.id == entry_id:
                return entry
        raise KeyError(entry_id)

    def classify(self, record):
        """The Classification of one CloudTrail record, or None if no entry matches."""
        source, name = record.get('eventSource'), record.get('eventName')
        for entry in self._exact.get((source, name), ()):
            if entry.matches(record):
                return entry.classification
        for pattern, entry in self._wild.get(source, ()):
            if pattern.match(name or '') and entry.matches(record):
                return entry.classification
        return None


_cache = {}
_lock = threading.Lock()


def load(path=None):
    """The catalogue at ``path`` (default: the pack's), read and checked once per process."""
    path = os.path.abspath(path or DEFAULT_PATH)
    with _lock:
        if path not in _cache:
            _cache[path] = _read(path)
        return _cache[path]


def _read(path):
    try:
        with open(path) as fh:
            data = yaml_load(fh)
    except FileNotFoundError:
        raise PackError(f"{path}: activity catalogue not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, 'problem_mark', None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ''
        problem = getattr(e, 'problem', None) or str(e).splitlines()[0]
        raise PackError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict) or not isinstance(data.get('entries'), list):
        raise PackError(f"{path}: the catalogue needs a top-level 'entries:' list")
    entries, seen = [], set()
    for index, raw in enumerate(data['entries']):
        entry = _check_entry(path, index, raw, seen)
        entries.append(entry)
    if not entries:
        raise PackError(f"{path}: 'entries:' is empty")
    return Catalogue(entries, path)


def _check_entry(path, index, raw, seen):
    label = f"entry #{index + 1}"

    def fail(message):
        raise PackError(f"{path}:{label}: {message}")

    if not isinstance(raw, dict):
        fail("an entry is a mapping with id, match, tactic, tactic_id, technique, severity, "
             "sensitive, title and source")
    entry_id = raw.get('id')
    if not isinstance(entry_id, str) or not ID_RE.match(entry_id):
        fail("'id' must be lower-case letters, digits and dashes "
             "(e.g. ssm-get-parameter-decrypted)")
    label = entry_id
    if entry_id in seen:
        fail("duplicate id; every entry needs its own")
    seen.add(entry_id)
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        fail(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
             f"allowed: {', '.join(sorted(_ENTRY_KEYS))}")
    missing = [k for k in ('match', 'tactic', 'tactic_id', 'technique', 'severity', 'sensitive',
                           'title', 'source') if k not in raw]
    if missing:
        fail(f"missing {', '.join(missing)}")
    tactic, tactic_id = raw['tactic'], raw['tactic_id']
    if tactic not in TACTICS:
        fail(f"tactic '{tactic}' is not an ATT&CK tactic; one of {', '.join(TACTICS)}")
    if tactic_id != TACTICS[tactic]:
        fail(f"tactic_id of {tactic} is {TACTICS[tactic]}, not {tactic_id}")
    technique = raw['technique']
    if not isinstance(technique, str) or not TECHNIQUE_RE.match(technique):
        fail(f"technique '{technique}' is not an ATT&CK technique id (T1234 or T1234.001)")
    if raw['severity'] not in SEVERITIES:
        fail(f"severity '{raw['severity']}' must be one of {', '.join(SEVERITIES)}")
    if not isinstance(raw['sensitive'], bool):
        fail("'sensitive' must be true or false")
    title = raw['title']
    if not isinstance(title, str) or not title.strip() or '\n' in title.strip():
        fail("'title' must be one line of text")
    reference = raw['source']
    refs = reference if isinstance(reference, list) else [reference]
    if not refs or not all(isinstance(r, str) and r.startswith('https://') for r in refs):
        fail("'source' must be an https:// reference (or a list of them): the ATT&CK technique "
             "page, a Stratus Red Team technique, a Pacu module or a public CloudTrail record")
    match = raw['match']
    if not isinstance(match, dict):
        fail("'match' must be a mapping with source, events and optional where/error")
    unknown = set(match) - _MATCH_KEYS
    if unknown:
        fail(f"match: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
             f"allowed: {', '.join(sorted(_MATCH_KEYS))}")
    source = match.get('source')
    if not isinstance(source, str) or not SOURCE_RE.match(source):
        fail("match.source must be an event source such as ssm.amazonaws.com")
    names = match.get('events')
    if isinstance(names, str):
        names = [names]
    if (not isinstance(names, list) or not names
            or not all(isinstance(n, str) and NAME_RE.match(n) for n in names)):
        fail("match.events must be a list of event names (letters and digits, '*' wildcards)")
    where = match.get('where') or {}
    if not isinstance(where, dict):
        fail("match.where must map record paths (requestParameters.withDecryption) to values")
    conditions = []
    for key, cond in where.items():
        if not isinstance(key, str) or not key or any(not part for part in key.split('.')):
            fail(f"match.where: '{key}' is not a dotted record path")
        problem = _check_condition(cond)
        if problem:
            fail(f"match.where.{key}: {problem}")
        conditions.append((tuple(key.split('.')), cond))
    error = match.get('error', 'any')
    if isinstance(error, list):
        if not error or not all(isinstance(c, str) and c for c in error):
            fail("match.error must be any, success, failure or a list of error codes")
        error = frozenset(error)
    elif error not in ERROR_KEYWORDS:
        fail("match.error must be any, success, failure or a list of error codes")
    wildcard = any('*' in n for n in names)
    specificity = len(conditions) + (0 if error == 'any' else 1)
    rank = (1 if wildcard else 0, -specificity, index)
    classification = Classification(
        id=entry_id, tactic=tactic, tactic_id=tactic_id, technique=technique,
        severity=raw['severity'], sensitive=raw['sensitive'], title=title.strip())
    return _Entry(classification, source, tuple(names), tuple(conditions), error, rank,
                  tuple(refs))


def _check_condition(cond):
    if isinstance(cond, (str, bool, int, float)):
        return None
    if isinstance(cond, list):
        if cond and all(isinstance(c, (str, bool, int, float)) for c in cond):
            return None
        return "a list condition holds the allowed scalar values"
    if isinstance(cond, dict):
        if len(cond) != 1 or next(iter(cond)) not in _OPS:
            return f"an operator condition is one of {{{', '.join(sorted(_OPS))}: ...}}"
        op, arg = next(iter(cond.items()))
        if op == 'exists' and not isinstance(arg, bool):
            return "exists takes true or false"
        if op == 'contains' and not isinstance(arg, str):
            return "contains takes a string"
        if op == 'prefix' and not (isinstance(arg, str) or (
                isinstance(arg, list) and arg and all(isinstance(a, str) for a in arg))):
            return "prefix takes a string or a list of strings"
        if op == 'in' and not (isinstance(arg, list) and arg):
            return "in takes a list of values"
        if op == 'not':
            return _check_condition(arg)
        return None
    return "a condition is a value, a list of values or {exists|in|prefix|contains|not: ...}"


def _resolve(record, path):
    """Every value at ``path`` in ``record``; lists on the way are searched element-wise."""
    values = [record]
    for part in path:
        found = []
        for value in values:
            for item in (value if isinstance(value, list) else [value]):
                if isinstance(item, dict) and part in item:
                    found.append(item[part])
        values = found
        if not values:
            break
    flat = []
    for value in values:
        flat.extend(value if isinstance(value, list) else [value])
    return flat


def _equal(value, expected):
    if isinstance(expected, bool):
        if isinstance(value, str):
            return value.lower() == str(expected).lower()
        return value is expected
    if isinstance(value, bool):
        return False
    if isinstance(expected, (int, float)) and isinstance(value, str):
        try:
            return float(value) == expected
        except ValueError:
            return False
    return value == expected


def _condition_holds(values, cond):
    if isinstance(cond, list):
        return any(_equal(v, c) for v in values for c in cond)
    if isinstance(cond, dict):
        op, arg = next(iter(cond.items()))
        if op == 'exists':
            return bool([v for v in values if v is not None]) is arg
        if op == 'in':
            return any(_equal(v, c) for v in values for c in arg)
        if op == 'prefix':
            prefixes = tuple(arg) if isinstance(arg, list) else (arg,)
            return any(isinstance(v, str) and v.startswith(prefixes) for v in values)
        if op == 'contains':
            return any(isinstance(v, str) and arg in v for v in values)
        if op == 'not':
            return not _condition_holds(values, arg)
    return any(_equal(v, cond) for v in values)


def _error_matches(error, code):
    if error == 'any':
        return True
    if error == 'success':
        return not code
    if error == 'failure':
        return bool(code)
    return code in error
