"""Where the activity review reads CloudTrail records: event history or the trail's log files.

One interface, two implementations that return the same records (the dict
CloudTrail writes, equal in both):

- ``EventHistory``: ``LookupEvents`` by ``AccessKeyId`` (a credential's every
  call, failed ones included) and by ``EventName`` (calls by anyone), in one
  region, within AWS's 2 requests/s per account-region (the pack's one rate
  limiter, ``filters.event_history.limiter``) and its 50-event pages, from the
  window start (at most the 90 days CloudTrail keeps). A lookup stops after
  ``max-pages`` pages and is then reported as cut short. Results are shared
  with the R2.2 policies (``filters.event_history.cached_lookup``).
- ``TrailLogs``: the log files a trail delivers to S3, listed by day
  (``<prefix>/AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/``, or
  ``<prefix>/AWSLogs/<org id>/<account>/...`` for an organization trail) for
  the window's days only, each object streamed and parsed record by record
  (``logfile.records``): memory holds one record and one chunk, whatever the
  volume. They also hold data events (S3 object calls, Lambda invocations)
  when the trail's selectors ask for them, which event history never has.

``find_trail`` inspects the trails that cover a region (``DescribeTrails``,
``GetTrailStatus``, ``GetEventSelectors``) and says whether and why one can
stand in for event history.

A source answers a ``Query``: the records, in one region and the window, of
some access keys, of some event names, and (``sensitive``) those the
catalogue marks as sensitive reads. Event history can look those up only by
event name, so it asks for the catalogue's sensitive event names; trail logs
ask the catalogue about every record, so they also see sensitive entries
whose names are patterns.
"""
import collections
import datetime
import functools
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from botocore.exceptions import ClientError
from c7n.utils import get_retry

from custodian_ext.activity import logfile, records
from custodian_ext.filters import event_history

log = logging.getLogger('custodian.ext.activity')

EVENT_HISTORY, TRAIL_LOGS = 'event-history', 'trail-logs'
DATA_TYPES = ('AWS::S3::Object', 'AWS::Lambda::Function')
# Keys per ListObjectsV2 page: small pages keep the reader's memory flat however many log
# files a day holds (S3's own page is 1,000 keys; a LIST costs the same either way).
LIST_PAGE = 100
# Log files read at once.
READERS = 8
# Event history has no "any of these names" lookup: one request (or more) per name, at 2
# per second. Most regions of an account see few read-only calls: when the region's whole
# read-only history in the window fits in this many pages, it answers every name at once
# (about 20 sensitive reads and the credential-issuing calls); else each name is looked up.
READ_STREAM_PAGES = 2
READ_STREAM_MIN_NAMES = 4  # fewer names than this: the lookups by name cost no more
# S3's transient errors (SlowDown is its throttling), retried with back-off.
s3_retry = get_retry(('SlowDown', 'ServiceUnavailable', 'InternalError', 'RequestTimeout',
                      'Throttling', 'ThrottlingException'))


# The start of a coverage note about a read that failed: the activity filter marks the
# finding incomplete (custodian_ext.incomplete) with it, naming the action.
UNREADABLE = 'could not read'


@dataclass(frozen=True)
class Query:
    """What one round of the review asks a source for, in one region."""
    keys: frozenset = frozenset()     # userIdentity.accessKeyId is one of these
    names: frozenset = frozenset()    # eventName is one of these (any principal)
    sensitive: bool = False           # the catalogue marks it a sensitive read (any principal)

    def __bool__(self):
        return bool(self.keys or self.names or self.sensitive)


class Unreadable(Exception):
    """The source cannot be read (AccessDenied, a missing bucket); the message says why."""


@dataclass
class Window:
    start: datetime.datetime
    end: datetime.datetime


class EventHistory:
    """CloudTrail event history (``LookupEvents``) of one account."""
    name = EVENT_HISTORY

    def __init__(self, session, account_id, retry, window, max_pages, sensitive_names=()):
        self.session = session
        self.account_id = account_id
        self.retry = retry
        self.window = window
        self.max_pages = max_pages
        self.sensitive_names = tuple(sensitive_names)
        self.cut_short = []
        self.requests = 0
        self._clients = {}

    def _client(self, region):
        if region not in self._clients:
            self._clients[region] = self.session.client('cloudtrail', region_name=region)
        return self._clients[region]

    def names(self, query):
        return set(query.names) | (set(self.sensitive_names) if query.sensitive else set())

    def lookups(self, query, names=None):
        out = [('AccessKeyId', k) for k in sorted(query.keys)]
        out += [('EventName', n) for n in sorted(self.names(query) if names is None else names)]
        return out

    def _lookup(self, region, attribute, value, pages):
        return event_history.cached_lookup(
            self._client(region), self.retry, (self.account_id, region),
            {'AttributeKey': attribute, 'AttributeValue': value},
            self.window.start, self.window.end, pages)

    def whole(self, region):
        """The region's every event in the window, when they fit in
        ``event_history.HISTORY_PAGES`` pages (every round's keys and names at once; the
        rounds of a review follow one another); else None."""
        return event_history.whole(self._client(region), self.retry, (self.account_id, region),
                                   self.window.start, self.window.end)

    def prefetch(self, region, query=Query()):
        """Read ``whole(region)`` on a thread of its own, while the review waits for the
        global-events region: its rounds here then need no request. When the region is too
        busy for that, make the lookups of ``query`` (what its first round will ask whatever
        the global phase finds: the first suspects' keys, the credential-issuing calls, the
        sensitive reads), so that only what depends on the global phase is left for after
        it. Results go to the lookups' cache; a failure here is met again, and reported,
        when the rounds read."""
        self._client(region)  # made here: a boto3 session is not safe to share across threads

        def read():
            try:
                if self.whole(region) is None and query:
                    self.rows(region, query)
            except Exception as e:  # noqa: BLE001 - the rounds' own read reports it
                log.debug('event history of %s not read ahead: %s', region, e)
        threading.Thread(target=read, name=f'custodian-ext-history-{region}',
                         daemon=True).start()

    def from_read_stream(self, region, names):
        """(rows, names they answer): a quiet region's whole read-only history, when it fits
        in ``READ_STREAM_PAGES`` pages, answers every read-event name at once; otherwise
        (rows, nothing) and each name is looked up on its own."""
        reads = {n for n in names if not event_history.is_write_event(n)}
        if len(reads) < READ_STREAM_MIN_NAMES:
            return [], set()
        rows, cut = self._lookup(region, 'ReadOnly', 'true', READ_STREAM_PAGES)
        if cut:
            return [], set()
        return [r for r in rows if r.get('EventName') in reads], reads

    def rows(self, region, query):
        """The raw rows that answer ``query`` (duplicates possible)."""
        names = self.names(query)
        every = self.whole(region)
        if every is not None:
            # the fields the lookups by EventName and AccessKeyId match
            return [r for r in every
                    if r.get('EventName') in names or r.get('AccessKeyId') in query.keys]
        streamed, answered = self.from_read_stream(region, names)
        rows = list(streamed)
        wanted = self.lookups(query, names - answered)
        answers = event_history.lookups_at_once(
            functools.partial(self._lookup, region, attribute, value, self.max_pages)
            for attribute, value in wanted)
        for (attribute, value), (raw, cut) in zip(wanted, answers):
            if cut:
                self.cut_short.append(
                    f'event history in {region}: the lookup of {attribute} {value} stopped after '
                    f'{self.max_pages} pages of {event_history.PAGE_SIZE} events; older events '
                    f'were not read')
            rows.extend(raw)
        return rows

    def read(self, region, query):
        seen = set()
        for row in self.rows(region, query):
            try:
                record = json.loads(row.get('CloudTrailEvent') or '{}')
            except ValueError:
                continue
            eid = record.get('eventID') or row.get('EventId')
            if eid in seen:
                continue
            seen.add(eid)
            yield record


@dataclass
class Trail:
    """A trail whose log files may stand in for event history in one region."""
    name: str
    arn: str
    bucket: str
    prefix: str
    home_region: str
    organization: bool
    data_types: tuple = ()          # data event resource types the trail records
    usable: bool = True
    why: str = ''                   # why it cannot be used, when it cannot
    notes: list = field(default_factory=list)

    @property
    def records_data_events(self):
        return bool(self.data_types)


def selector_coverage(selectors):
    """(management reads?, management writes?, excluded event sources, data event types).

    From a ``GetEventSelectors`` answer, basic or advanced selectors.
    """
    advanced = selectors.get('AdvancedEventSelectors') or []
    reads = writes = False
    excluded, data = set(), set()
    if advanced:
        for s in advanced:
            fields = {f.get('Field'): f for f in s.get('FieldSelectors') or ()}
            category = (fields.get('eventCategory') or {}).get('Equals') or []
            if 'Management' in category:
                ro = (fields.get('readOnly') or {}).get('Equals') or []
                reads = reads or not ro or 'true' in ro
                writes = writes or not ro or 'false' in ro
                excluded.update((fields.get('eventSource') or {}).get('NotEquals') or ())
            if 'Data' in category:
                types = (fields.get('resources.type') or {}).get('Equals') or []
                data.update(t for t in types if t in DATA_TYPES)
        return reads, writes, tuple(sorted(excluded)), tuple(sorted(data))
    # No selectors at all: a trail's default, every management event (AWS shows it as one
    # selector; the emulator as none).
    basic = selectors.get('EventSelectors') or [
        {'ReadWriteType': 'All', 'IncludeManagementEvents': True}]
    for s in basic:
        rw = s.get('ReadWriteType', 'All')
        if s.get('IncludeManagementEvents', True):
            reads = reads or rw in ('All', 'ReadOnly')
            writes = writes or rw in ('All', 'WriteOnly')
            excluded.update(s.get('ExcludeManagementEventSources') or ())
        data.update(r.get('Type') for r in s.get('DataResources') or ()
                    if r.get('Type') in DATA_TYPES)
    return reads, writes, tuple(sorted(excluded)), tuple(sorted(data))


def _stamp(value):
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    if isinstance(value, (int, float)) and value:
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    return None


def find_trails(session, region, global_region, window, retry):
    """(trails covering ``region`` with a bucket, notes) — each says whether it is usable.

    A trail is usable when it is logging, has logged since the window
    started, records management reads and writes (event history has both),
    and, in the global-events region, includes global service events.
    """
    notes = []
    try:
        # shadow trails included (the API's default), with the parameters c7n's aws.cloudtrail
        # sends, so that the run's shared reads answer both (custodian_ext.runcache)
        listed = retry(session.client('cloudtrail', region_name=region).describe_trails
                       )['trailList']
    except ClientError as e:
        return [], [f'{UNREADABLE} cloudtrail:DescribeTrails in {region} '
                    f'({e.response["Error"]["Code"]}): trail logs and data events not read']
    out = []
    for t in listed:
        home = t.get('HomeRegion') or region
        if not t.get('S3BucketName') or not (t.get('IsMultiRegionTrail') or home == region):
            continue
        trail = Trail(name=t.get('Name'), arn=t.get('TrailARN') or t.get('Name'),
                      bucket=t['S3BucketName'], prefix=t.get('S3KeyPrefix') or '',
                      home_region=home, organization=bool(t.get('IsOrganizationTrail')))
        client = session.client('cloudtrail', region_name=home)
        try:
            action = 'cloudtrail:GetTrailStatus'
            status = retry(client.get_trail_status, Name=trail.arn)
            action = 'cloudtrail:GetEventSelectors'
            selectors = retry(client.get_event_selectors, TrailName=trail.arn)
        except ClientError as e:
            trail.usable, trail.why = False, (
                f'its status or event selectors could not be read ({e.response["Error"]["Code"]})')
            notes.append(f'{UNREADABLE} {action} for trail {trail.name} '
                         f'({e.response["Error"]["Code"]}): its logs and data events not read')
            out.append(trail)
            continue
        reads, writes, excluded, trail.data_types = selector_coverage(selectors)
        started = _stamp(status.get('StartLoggingTime'))
        if not status.get('IsLogging'):
            stopped = _stamp(status.get('StopLoggingTime'))
            when = f' since {records.iso(stopped)}' if stopped else ''
            trail.usable, trail.why = False, f'it is not logging{when}'
        elif started and started > window.start:
            trail.usable, trail.why = False, (
                f'it has logged only since {records.iso(started)}, after the window started')
        elif not (reads and writes):
            trail.usable, trail.why = False, (
                f"it records only management {'reads' if reads else 'writes'} or none")
        elif region == global_region and not t.get('IncludeGlobalServiceEvents', True):
            trail.usable, trail.why = False, 'it does not include global service events'
        if excluded:
            trail.notes.append(f'trail {trail.name} leaves out the management events of '
                               f'{", ".join(excluded)}, which event history has')
        out.append(trail)
    # Prefer a usable trail that records data events.
    out.sort(key=lambda tr: (not tr.usable, not tr.records_data_events))
    return out, notes


def days(window):
    day = window.start.astimezone(datetime.timezone.utc).date()
    last = window.end.astimezone(datetime.timezone.utc).date()
    while day <= last:
        yield day
        day += datetime.timedelta(days=1)


class TrailLogs:
    """The log files a trail delivers to S3, for one account."""
    name = TRAIL_LOGS

    def __init__(self, session, account_id, trail, window, retry, classify=None):
        self.session = session
        self.account_id = account_id
        self.trail = trail
        self.window = window
        self.retry = retry
        self.classify = classify
        self.cut_short = []
        self.objects = 0
        self.bytes = 0
        self._client = None
        self._owner = None

    def client(self):
        if self._client is None:
            self._client = self.session.client('s3', region_name=self.trail.home_region)
        return self._client

    def _base(self):
        prefix = self.trail.prefix.strip('/')
        return f'{prefix}/AWSLogs/' if prefix else 'AWSLogs/'

    def owner(self):
        """``<account>`` or, for an organization trail, ``<org id>/<account>``."""
        if self._owner is None:
            if not self.trail.organization:
                self._owner = self.account_id
            else:
                found = None
                for page in self._pages(Prefix=self._base(), Delimiter='/'):
                    for cp in page.get('CommonPrefixes') or ():
                        part = cp['Prefix'][len(self._base()):].strip('/')
                        if part.startswith('o-'):
                            found = part
                            break
                    if found:
                        break
                self._owner = f'{found}/{self.account_id}' if found else self.account_id
        return self._owner

    def _pages(self, **params):
        params = dict(params, Bucket=self.trail.bucket)
        while True:
            try:
                page = s3_retry(self.client().list_objects_v2, **params)
            except ClientError as e:
                raise Unreadable(self._denied('list', e)) from None
            yield page
            if not page.get('IsTruncated'):
                return
            params['ContinuationToken'] = page['NextContinuationToken']

    def _denied(self, what, e):
        code = e.response['Error']['Code']
        return (f'the log files of trail {self.trail.name} in s3://{self.trail.bucket}/'
                f'{self._base()} could not be {"listed" if what == "list" else "read"} ({code})')

    def keys(self, region):
        """The log file keys of ``region`` for the window's days, oldest first."""
        for day in days(self.window):
            prefix = f'{self._base()}{self.owner()}/CloudTrail/{region}/{day:%Y/%m/%d}/'
            for page in self._pages(Prefix=prefix, MaxKeys=LIST_PAGE):
                for obj in page.get('Contents') or ():
                    if obj['Key'].endswith('.json.gz'):
                        yield obj['Key'], obj.get('Size', 0)

    def probe(self, region):
        """Raise Unreadable unless the bucket can be listed where the region's logs are."""
        next(iter(self._pages(Prefix=f'{self._base()}{self.owner()}/CloudTrail/{region}/',
                              MaxKeys=1)), None)

    def wanted(self, record, query):
        if records.access_key(record) in query.keys or record.get('eventName') in query.names:
            return True
        if query.sensitive and self.classify is not None:
            c = self.classify(record)
            return bool(c is not None and c.sensitive)
        return False

    def _scan(self, key, query):
        """The wanted records of one log file (run in a reader thread): (records, problem)."""
        try:
            body = s3_retry(self.client().get_object, Bucket=self.trail.bucket, Key=key)['Body']
        except ClientError as e:
            if e.response['Error']['Code'] in ('NoSuchKey', '404'):
                return [], None  # deleted since it was listed
            raise Unreadable(self._denied('read', e)) from None
        found = []
        try:
            for record in logfile.records(body):
                when = records.event_time(record)
                if when is None or when < self.window.start or when > self.window.end:
                    continue
                if self.wanted(record, query):
                    found.append(record)
        except logfile.LogFileError as e:
            return found, (f's3://{self.trail.bucket}/{key} is not a readable CloudTrail log '
                           f'file ({e}); its events were not read')
        finally:
            body.close()
        return found, None

    def read(self, region, query):
        """The wanted records of the region's log files in the window.

        ``READERS`` files are read at once (S3 answers each GET in tens of
        milliseconds; one after another, 90 days of a busy region would take a
        quarter of an hour), at most twice that many in flight: memory holds a
        chunk and a record per reader, and the wanted records of the files in flight.
        """
        self.client()  # one client, made before the readers share it
        pool = ThreadPoolExecutor(READERS, thread_name_prefix='trail-logs')
        pending = collections.deque()
        try:
            for key, size in self.keys(region):
                pending.append((size, pool.submit(self._scan, key, query)))
                if len(pending) >= 2 * READERS:
                    yield from self._collect(*pending.popleft())
            while pending:
                yield from self._collect(*pending.popleft())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _collect(self, size, future):
        found, problem = future.result()
        self.objects += 1
        self.bytes += size
        if problem:
            self.cut_short.append(problem)
        yield from found
