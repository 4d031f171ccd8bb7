"""The activity review of one account-region: sources, rounds, events and coverage.

``Review(...).run()`` returns the events of ``c7n:activity`` and the
``c7n:activity-coverage`` of the region the policy runs in.

How a region is reviewed, in rounds, each round one ``Query`` to the source:

1. Suspects come from ``suspects.seeds`` (once per account and process).
2. The global-events region (us-east-1 in the commercial partition: IAM, STS's
   global endpoint, Organizations) is reviewed first, because that is where
   most credentials are handed out and most roles changed: round 1 asks for
   the suspects' records, the credential-issuing calls of every principal
   (to find unknown ones) and, in that region's own run, the sensitive reads;
   each later round asks for the credentials and roles the previous one led
   to (``suspects.Chain``), until nothing new turns up (at most
   ``suspects.MAX_DEPTH`` steps). That phase is computed once per process and
   reused by the other regions' runs.
3. Another region starts from every suspect the global phase found and runs
   the same rounds in its own records. While the global phase is under way it
   reads ahead what its first round asks whatever that phase finds: its whole
   history when that is short, else the first suspects' keys, the
   credential-issuing calls and the sensitive reads (``EventHistory.prefetch``).

Events kept: the records of suspect credentials in the region, and the
sensitive reads (catalogue ``sensitive``) there by principals that are not
known. Each is classified by the catalogue.

Source per region (``source``): ``event-history``, ``trail-logs``, or
``auto``: a trail's log files when a usable trail covers the region, its
bucket can be read, and the window is longer than ``TRAIL_LOGS_FROM`` (event
history is then many rate-limited pages) or the trail records data events
(which only log files carry); event history otherwise. An unreadable bucket is
a note and a fallback to event history; with ``source: trail-logs`` it makes
the coverage incomplete instead.
"""
import copy
import datetime
import heapq
import logging
import threading
import time
from dataclasses import dataclass, field

from custodian_ext.activity import records, sources, suspects

log = logging.getLogger('custodian.ext.activity')

TRAIL_LOGS_FROM = datetime.timedelta(hours=6)
CACHE_SECONDS = 600
MAX_EVENTS = 1000        # events kept (and annotated) per region; the most severe, then newest
AUTO, EVENT_HISTORY, TRAIL_LOGS = 'auto', sources.EVENT_HISTORY, sources.TRAIL_LOGS

_cache = {}
_lock = threading.Lock()
clock = time.monotonic


_computing = {}  # key -> the lock of the thread computing it


def clear_cache():
    with _lock:
        _cache.clear()
        _computing.clear()


def _fresh(key):
    hit = _cache.get(key)
    return hit if hit and clock() - hit[0] < CACHE_SECONDS else None


def cached(key, compute):
    """``compute()``'s value, kept for the run. Policies running at once
    (custodian_ext.concurrency) that want the same key wait for one computation (the
    account's suspects read IAM's whole authorization details)."""
    with _lock:
        hit = _fresh(key)
        if hit:
            return hit[1]
        computing = _computing.setdefault(key, threading.Lock())
    with computing:
        with _lock:
            hit = _fresh(key)
        if hit:
            return hit[1]
        value = compute()
        with _lock:
            _cache[key] = (clock(), value)
    return value


@dataclass(frozen=True)
class Options:
    account_id: str
    region: str
    global_region: str
    start: datetime.datetime
    end: datetime.datetime
    known: object                  # KnownPrincipals
    kinds: tuple = suspects.KINDS
    listed_keys: tuple = ()
    source: str = AUTO
    sensitive: bool = True
    max_pages: int = 20
    max_depth: int = suspects.MAX_DEPTH

    def phase_key(self, region, sensitive):
        return ('phase', self.account_id, region, self.start.isoformat(), self.kinds,
                self.listed_keys, self.known, self.source, sensitive, self.max_pages,
                self.max_depth)


@dataclass
class Phase:
    """What reviewing one region gave."""
    region: str
    chain: object
    events: dict = field(default_factory=dict)      # eventID -> event (Suspect filled at the end)
    sources: list = field(default_factory=list)
    cut_short: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    data_events: str = 'unknown'
    omitted: int = 0
    requests: dict = field(default_factory=dict)


class Kept:
    """At most ``limit`` events, the most severe and then the newest."""

    def __init__(self, limit=MAX_EVENTS):
        self.limit = limit
        self.events = {}
        self.heap = []
        self.dropped = set()

    def add(self, event):
        eid = event['EventId']
        if eid in self.events or eid in self.dropped:
            return
        self.events[eid] = event
        heapq.heappush(self.heap, (-records.severity_rank(event['Severity']),
                                   event.get('EventTime') or '', eid))
        if len(self.events) > self.limit:
            _, _, gone = heapq.heappop(self.heap)
            del self.events[gone]
            self.dropped.add(gone)


class Review:
    """The activity review of ``options.region``, for one policy run."""

    def __init__(self, session, retry, options, classify, sensitive_names=(), seeds=None):
        self.session = session
        self.retry = retry
        self.options = options
        self.classify = classify
        self.sensitive_names = tuple(sensitive_names)
        self.seed_fn = seeds or (lambda notes: {})
        self.window = sources.Window(options.start, options.end)

    # -- sources -------------------------------------------------------------------------

    def event_history(self):
        o = self.options
        return sources.EventHistory(self.session, o.account_id, self.retry, self.window,
                                    o.max_pages, self.sensitive_names)

    def trails(self, region):
        o = self.options
        return cached(('trails', o.account_id, region, o.start.isoformat()),
                      lambda: sources.find_trails(self.session, region, o.global_region,
                                                  self.window, self.retry))

    def choose(self, region, phase):
        """The source for ``region`` (None: none can be read); notes and DataEvents in ``phase``."""
        o = self.options
        trails, notes = self.trails(region)
        phase.notes.extend(notes)
        for t in trails:
            phase.notes.extend(t.notes)
        usable = [t for t in trails if t.usable]
        unusable = [f'trail {t.name}: {t.why}' for t in trails if not t.usable]
        span = self.window.end - self.window.start
        chosen, why_not = None, ''
        if o.source != EVENT_HISTORY and usable:
            trail = usable[0]
            large = span > TRAIL_LOGS_FROM
            if o.source == TRAIL_LOGS or large or trail.records_data_events:
                logs = sources.TrailLogs(self.session, o.account_id, trail, self.window,
                                         self.retry, self.classify)
                try:
                    logs.probe(region)
                    chosen = logs
                except sources.Unreadable as e:
                    why_not = str(e)
            else:
                why_not = (f'the window is shorter than {_span(TRAIL_LOGS_FROM)} and trail '
                           f'{trail.name} records no data events: event history is cheaper')
        if chosen is not None:
            reason = ('set by the policy' if o.source == TRAIL_LOGS else
                      f'the window is {_span(span)}' if span > TRAIL_LOGS_FROM else
                      'the trail records data events')
            phase.notes.append(f'{region}: read from the log files of trail {chosen.trail.name} '
                               f'(s3://{chosen.trail.bucket}/{chosen._base()}), {reason}')
            phase.data_events = 'recorded' if chosen.trail.records_data_events else 'not-recorded'
            if not chosen.trail.records_data_events:
                phase.notes.append(
                    f'trail {chosen.trail.name} records no data events: S3 object deletes and '
                    f'overwrites and Lambda invocations are not in this review')
            return chosen
        if o.source == TRAIL_LOGS:
            why = '; '.join(w for w in [why_not] + unusable if w)
            phase.cut_short.append(f'{region}: no trail log files could be read '
                                   f"({why or 'no trail delivers to S3 in this region'})")
            phase.data_events = 'unknown'
            return None
        if why_not:
            phase.notes.append(f'{region}: event history, not trail logs: {why_not}')
        elif o.source == EVENT_HISTORY:
            phase.notes.append(f'{region}: event history (set by the policy)')
        elif unusable:
            phase.notes.append(f'{region}: event history; no trail could stand in for it '
                               f"({'; '.join(unusable)})")
        recording = [t for t in trails if t.records_data_events]
        if recording:
            phase.data_events = 'unknown'
            types = ', '.join(recording[0].data_types)
            phase.notes.append(
                f'trail {recording[0].name} records data events ({types}) but its log files '
                f'were not read here: S3 object deletes and overwrites and Lambda invocations '
                f'are not in this review')
        elif notes:
            phase.data_events = 'unknown'
        else:
            phase.data_events = 'not-recorded'
            phase.notes.append('no trail records data events: S3 object deletes and overwrites '
                               'and Lambda invocations cannot be reviewed')
        return self.event_history()

    # -- rounds -------------------------------------------------------------------------------

    def offer(self, kept, record, chain, source, sensitive):
        key = records.access_key(record)
        classification = self.classify(record)
        sensitive_read = (sensitive and classification is not None and classification.sensitive
                          and not self.options.known.knows_identity(record.get('userIdentity')))
        if key in chain.suspects or sensitive_read:
            kept.add(records.event(record, source, classification, None))

    @staticmethod
    def round_query(keys, roles, discovery, sensitive, first):
        """What one round asks its source for: the credentials and roles it reads, the
        credential-issuing calls (first round, unknown-principal discovery) and the
        sensitive reads (first round)."""
        names = set()
        if first and discovery:
            names |= suspects.DISCOVERY_CALLS
        if roles:
            names |= suspects.ROLE_ASSUMPTIONS
        return sources.Query(frozenset(keys), frozenset(names), sensitive and first)

    def rounds(self, region, chain, source, sensitive, phase):
        kept = Kept()
        first = True
        for _ in range(chain.max_depth + 3):
            keys, roles = chain.take()
            query = self.round_query(keys, roles, chain.discovery, sensitive, first)
            if not query:
                break
            for record in source.read(region, query):
                chain.observe(record)
                self.offer(kept, record, chain, source.name, sensitive)
            chain.settle()
            first = False
        phase.events = kept.events
        phase.omitted = len(kept.dropped)

    def phase(self, region, chain, sensitive, chosen=None):
        """Review ``region`` from ``chain``; ``chosen``: (Phase, source) from ``choose``."""
        if chosen is None:
            phase = Phase(region, chain)
            source = self.choose(region, phase)
        else:
            phase, source = chosen
            phase.chain = chain
        if source is None:
            return phase
        start = copy.deepcopy(chain)
        try:
            self.rounds(region, chain, source, sensitive, phase)
        except sources.Unreadable as e:
            if self.options.source == TRAIL_LOGS:
                phase.cut_short.append(f'{region}: {e}')
                return phase
            phase.notes.append(f'{region}: {e}; read event history instead')
            phase.chain = chain = start
            source = self.event_history()
            phase.data_events = 'unknown'
            self.rounds(region, chain, source, sensitive, phase)
        phase.sources.append(source.name)
        phase.cut_short.extend(source.cut_short)
        if chain.too_deep:
            phase.cut_short.append(
                f'{region}: {len(chain.too_deep)} credential(s) more than '
                f'{chain.max_depth} steps from a first suspect were not followed')
        if isinstance(source, sources.TrailLogs):
            phase.notes.append(f'{region}: {source.objects} log file(s), '
                               f'{source.bytes / 1e6:.1f} MB, read from S3')
        return phase

    # -- the whole review ------------------------------------------------------------------------

    def run(self):
        o = self.options
        notes = []
        first = cached(('seeds', o.account_id, o.kinds, o.listed_keys),
                       lambda: (self.seed_fn(notes), list(notes)))
        seeds, seed_notes = first
        known = o.known if suspects.UNKNOWN in o.kinds else None
        g = o.global_region
        own = o.region == g

        def global_phase():
            chain = suspects.Chain(o.account_id, seeds, known, max_depth=o.max_depth)
            return self.phase(g, chain, sensitive=own and o.sensitive)

        chosen = None
        if not own:
            # this region's source chosen, and its event history read, while the global
            # phase is (often by another policy's thread) under way
            here = Phase(o.region, None)
            source = self.choose(o.region, here)
            chosen = (here, source)
            if isinstance(source, sources.EventHistory):
                # a subset of this region's first round, which asks for every suspect the
                # global phase ends with (the first ones among them) and the same names
                source.prefetch(o.region, self.round_query(
                    seeds, (), known is not None, o.sensitive, first=True))
        phases = [cached(o.phase_key(g, own and o.sensitive), global_phase)]
        if not own:
            before = phases[0].chain
            chain = suspects.Chain(o.account_id, before.suspects, known, roles=before.roles,
                                   max_depth=o.max_depth)
            phases.append(self.phase(o.region, chain, sensitive=o.sensitive, chosen=chosen))
        mine = phases[-1]
        events = []
        for e in mine.events.values():
            events.append(dict(e, Suspect=self.suspect_of(e, mine.chain)))
        events.sort(key=lambda e: (e.get('EventTime') or '', e.get('EventId') or ''))
        coverage = {
            'Sources': sorted({s for p in phases for s in p.sources}),
            'Window': {'Start': records.iso(o.start), 'End': records.iso(o.end)},
            'Regions': list(dict.fromkeys([g, o.region])),
            'DataEvents': mine.data_events,
            'CutShort': [c for p in phases for c in p.cut_short],
            'Notes': list(dict.fromkeys(seed_notes + [n for p in phases for n in p.notes])),
        }
        if mine.omitted:
            coverage['Notes'].append(
                f'{mine.omitted} event(s) of lower severity are left out: at most {MAX_EVENTS} '
                f'are kept per region')
        return events, coverage, mine.chain

    def suspect_of(self, event, chain):
        key = event.get('AccessKeyId')
        if key in chain.suspects:
            return chain.suspects[key].annotation()
        who = event.get('Principal')
        return {'Credential': key or who,
                'Reason': f'a sensitive read by {who}, which is not a known principal',
                'Via': [key or who]}


def _span(delta):
    hours = delta.total_seconds() / 3600
    return f'{hours / 24:.0f} days' if hours >= 48 else f'{hours:.1f} hours'
