"""The triage file (``policies/triage.yml``): findings a person accepted, with a reason,
an owner and an expiry.

::

    accept:
      - match:
          policy: x6-stopped-instances   # or step: X6 (exactly one of the two)
          account: acme-dev              # c7n-org account name or account id
          region: us-east-1
          resource: 'i-0abc*'            # resource id or ARN
        reason: Build runner parked for the release freeze; ticket OPS-4711
        owner: alice@example.com
        expires: 2026-12-15              # stops applying at 00:00 UTC that day

Every field is required; ``policy``, ``step``, ``account``, ``region`` and
``resource`` take shell patterns (``*``, ``?``, ``[...]``), so an entry that
means "every region" says ``region: '*'``. ``account`` matches the c7n-org
account name or the account id, so one file serves a single-account run and
an organization sweep.

In the report (``custodian-ext report --triage policies/triage.yml``):

- a finding the first applicable entry matches is *accepted*: it is listed in
  its own section with the entry's reason, owner and expiry, and does not
  count for ``--fail-on``;
- an entry whose ``expires`` has passed no longer applies (its findings are
  open again) and is listed as expired;
- an entry that matched nothing is listed as stale;
- a critical finding is accepted only by an entry that expires within
  ``triage_critical_max_days`` (a setting, default 7) of the report; a longer
  one leaves it open and says so.

Only findings can be accepted: an errored or missing policy run is not a
finding, so nothing in this file can make it, or the gate, clean.

Bad input gets one line, like the vars file (``custodian_ext.settings``).
"""
import datetime
import difflib
import fnmatch
import re

import yaml

import custodian_ext.settings as settings
from custodian_ext.report.model import STEPS
from custodian_ext.settings import SettingsError

ENTRY_KEYS = ('match', 'reason', 'owner', 'expires')
MATCH_KEYS = ('policy', 'step', 'account', 'region', 'resource')
MIN_REASON = 10
EXAMPLE = ("accept: [{match: {policy: x6-stopped-instances, account: acme-dev, region: "
           "us-east-1, resource: i-0abc}, reason: ..., owner: alice@example.com, "
           "expires: 2026-12-15}]")
PATTERN_CHARS = re.compile(r'[*?\[]')
STEP_RE = re.compile(r'^[RX]\d+(\.\d+)?$')
NAME_RE = re.compile(r'^[\w*?\[\]!.:/@+=,-]+$')
# as the settings' region and timestamp rules (custodian_ext.settings)
REGION_RE = re.compile(r'^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$')
TIMESTAMP_RE = re.compile(r'^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]00:?00)$')


class TriageError(SettingsError):
    """The triage file is malformed. The message is one line."""


def _unknown(key, allowed, where):
    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else f"; expected {', '.join(allowed)}"
    return TriageError(f"{where}: unknown key '{key}'{hint}")


def _pattern(value, where, what):
    if isinstance(value, int) and not isinstance(value, bool) and what == 'account':
        value = '%012d' % value  # an unquoted account id: YAML read it as a number
    if not isinstance(value, str) or not value.strip():
        raise TriageError(f"{where}: expected {what} (a name, an id or a shell pattern such "
                          f"as '*'), got {value!r}")
    value = value.strip()
    if what != 'resource' and not NAME_RE.match(value):
        raise TriageError(f"{where}: {value!r} is not a valid {what} or shell pattern")
    if what == 'step' and not PATTERN_CHARS.search(value) and not STEP_RE.match(value):
        raise TriageError(f"{where}: {value!r} is not a runbook step id; write it like X6 or "
                          f"R4.2 ({', '.join(list(STEPS)[:4])}, ...)")
    if what == 'region' and not PATTERN_CHARS.search(value) and \
            not REGION_RE.match(value):
        raise TriageError(f"{where}: {value!r} is not an AWS region name; write it like "
                          f"us-east-1, or '*' for every region")
    return value


def _expires(value, where):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None or value.utcoffset() != datetime.timedelta(0):
            raise TriageError(f"{where}: {value} has no UTC offset; write a date like "
                              f"2026-12-15 or a UTC time like 2026-12-15T09:00:00Z")
        return value
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day,
                                 tzinfo=datetime.timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        try:
            if re.match(r'^\d{4}-\d{2}-\d{2}$', text):
                d = datetime.date.fromisoformat(text)
                return datetime.datetime(d.year, d.month, d.day, tzinfo=datetime.timezone.utc)
            if TIMESTAMP_RE.match(text):
                return datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))
        except ValueError:
            pass
    raise TriageError(f"{where}: {value!r} is not a date; write it like 2026-12-15 (the entry "
                      f"stops applying at 00:00 UTC that day)")


class Entry:
    def __init__(self, number, match, reason, owner, expires):
        self.number = number  # 1-based, as a person counts them in the file
        self.match = match
        self.reason = reason
        self.owner = owner
        self.expires = expires

    def matches(self, f):
        m = self.match
        if 'policy' in m and not fnmatch.fnmatchcase(f['policy'], m['policy']):
            return False
        if 'step' in m and not fnmatch.fnmatchcase(f['step'] or '', m['step']):
            return False
        if not (fnmatch.fnmatchcase(f['account'] or '', m['account']) or
                fnmatch.fnmatchcase(f['account_id'] or '', m['account'])):
            return False
        if not fnmatch.fnmatchcase(f['region'] or '', m['region']):
            return False
        return fnmatch.fnmatchcase(f['resource_id'] or '', m['resource']) or bool(
            f.get('arn') and fnmatch.fnmatchcase(f['arn'], m['resource']))

    def as_doc(self):
        return {'entry': self.number, 'match': dict(self.match), 'reason': self.reason,
                'owner': self.owner, 'expires': _iso(self.expires)}


def _iso(dt):
    return dt.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def parse(data, source):
    """The entries of a triage file's data; TriageError (one line) on any problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TriageError(f"{source}: expected a mapping with an 'accept' list, like {EXAMPLE}")
    for key in data:
        if key != 'accept':
            raise _unknown(key, ['accept'], source)
    entries = data.get('accept') or []
    if not isinstance(entries, list):
        raise TriageError(f"{source}: accept: expected a list of entries, like {EXAMPLE}")
    out = []
    for i, raw in enumerate(entries):
        where = f"{source}: accept[{i + 1}]"
        if not isinstance(raw, dict):
            raise TriageError(f"{where}: expected a mapping with {', '.join(ENTRY_KEYS)}")
        for key in raw:
            if key not in ENTRY_KEYS:
                raise _unknown(key, list(ENTRY_KEYS), where)
        for key in ENTRY_KEYS:
            if raw.get(key) in (None, ''):
                raise TriageError(f"{where}: '{key}' is required (every entry has match, "
                                  f"reason, owner and expires)")
        match = raw['match']
        if not isinstance(match, dict):
            raise TriageError(f"{where}.match: expected a mapping of policy (or step), "
                              f"account, region and resource")
        for key in match:
            if key not in MATCH_KEYS:
                raise _unknown(key, list(MATCH_KEYS), f"{where}.match")
        if ('policy' in match) == ('step' in match):
            raise TriageError(f"{where}.match: name exactly one of policy and step")
        for key in ('account', 'region', 'resource'):
            if match.get(key) in (None, ''):
                raise TriageError(f"{where}.match: '{key}' is required; write '*' to match "
                                  f"every {key}")
        clean = {k: _pattern(match[k], f"{where}.match.{k}", k) for k in MATCH_KEYS
                 if k in match}
        reason = raw['reason']
        if not isinstance(reason, str) or len(reason.strip()) < MIN_REASON:
            raise TriageError(f"{where}.reason: say why the finding is accepted (at least "
                              f"{MIN_REASON} characters), got {reason!r}")
        owner = raw['owner']
        if not isinstance(owner, str) or not owner.strip():
            raise TriageError(f"{where}.owner: expected who owns the accepted risk (a name "
                              f"or an email address), got {owner!r}")
        out.append(Entry(i + 1, clean, ' '.join(reason.split()), owner.strip(),
                         _expires(raw['expires'], f"{where}.expires")))
    return out


def load(path):
    """The entries of the triage file at ``path``."""
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise TriageError(f"{path}: triage file not found") from None
    except IsADirectoryError:
        raise TriageError(f"{path}: a folder; give the triage file (policies/triage.yml)") \
            from None
    except yaml.YAMLError as e:
        raise TriageError(settings.yaml_error(path, e)) from None
    return Triage(path, parse(data, path))


class Triage:
    """A loaded triage file: ``apply`` splits findings into open and accepted."""

    def __init__(self, path, entries, critical_max_days=7):
        self.path = path
        self.entries = entries
        self.critical_max_days = critical_max_days

    def apply(self, findings, now):
        """(open findings, accepted findings, the triage section of the report)."""
        limit = datetime.timedelta(days=self.critical_max_days)
        active = [e for e in self.entries if e.expires > now]
        accepted_n = {e.number: 0 for e in self.entries}
        refused_n = {e.number: 0 for e in self.entries}
        matched_expired = {e.number: 0 for e in self.entries}
        open_, accepted = [], []
        for f in findings:
            for e in self.entries:
                if e.expires <= now and e.matches(f):
                    matched_expired[e.number] += 1
            taken = None
            for e in active:
                if not e.matches(f):
                    continue
                if f['severity'] == 'critical' and e.expires - now > limit:
                    refused_n[e.number] += 1
                    continue
                taken = e
                break
            if taken is None:
                open_.append(f)
                continue
            accepted_n[taken.number] += 1
            accepted.append(dict(f, accepted={
                'entry': taken.number, 'reason': taken.reason, 'owner': taken.owner,
                'expires': _iso(taken.expires), 'file': self.path}))
        entries = []
        for e in self.entries:
            doc = e.as_doc()
            if e.expires <= now:
                status = 'expired'
                note = (f"expired {_iso(e.expires)}: no longer applies"
                        + (f"; {matched_expired[e.number]} finding(s) it matched are open "
                           f"again" if matched_expired[e.number] else ''))
            elif accepted_n[e.number]:
                status, note = 'applied', None
                if refused_n[e.number]:
                    note = (f"left {refused_n[e.number]} critical finding(s) open: it expires "
                            f"more than {self.critical_max_days} days from now")
            elif refused_n[e.number]:
                status = 'refused'
                note = (f"matches {refused_n[e.number]} critical finding(s), which can be "
                        f"accepted for at most {self.critical_max_days} days "
                        f"(triage_critical_max_days): set an earlier expires")
            else:
                status, note = 'stale', 'matched no finding: remove it or fix its match'
            doc.update(status=status, accepted=accepted_n[e.number],
                       refused=refused_n[e.number], note=note)
            entries.append(doc)
        section = {
            'file': self.path,
            'critical_max_days': self.critical_max_days,
            'entries': entries,
            'accepted': len(accepted),
            'expired': [e['entry'] for e in entries if e['status'] == 'expired'],
            'stale': [e['entry'] for e in entries if e['status'] == 'stale'],
            'refused': [e['entry'] for e in entries if e['refused']],
        }
        return open_, accepted, section


def critical_max_days(vars_file=None):
    """``triage_critical_max_days`` from ``vars_file`` (its default without one)."""
    spec = settings.SETTINGS['triage_critical_max_days']
    if not vars_file:
        return spec.default
    return settings.load(vars_file, strict=False)['triage_critical_max_days']
