"""CloudTrail event history since the incident started (R2.2, R4.3).

c7n has no filter over CloudTrail's event history (``LookupEvents``); this one
reads it, within the limits AWS sets, and annotates who did what:

- Rate: AWS allows ``LookupEvents`` 2 requests per second per account and
  region. Every call in this process waits for its account-region slot
  (``MIN_INTERVAL``), and throttling errors are retried with back-off. The
  spacing holds where AWS counts, when the requests go out: a request sent
  late (its thread kept from the CPU) delays the next, and retries are spaced
  too.
- Window: ``since`` (the incident start) to now, clamped to the 90 days of
  history AWS keeps (``HISTORY_DAYS``; ``window_start``). A clamped window is
  recorded in the annotation (``WindowClamped``) and for the whole run
  (``partial.json``, ``custodian_ext.outputs.mark_partial``): the report shows
  the check as partial, saying which part of the window could not be read.
- Quiet regions: when the account-region's whole history in the window fits in
  ``HISTORY_PAGES`` pages (``whole``), that one read answers every event name
  (and the activity review's rounds): most regions of an account see few calls.
  The read gives up after the page that shows the window needs more.
- Pages: LookupEvents takes one lookup attribute per request and returns 50
  events a page. Otherwise, write events are read as one stream (``ReadOnly=false``) and
  matched by name; read-only events (``AssumeRole``, ``GetFederationToken``)
  by event name. Each stream stops after ``max-pages`` pages (default 20, at
  most 100: 1,000 to 5,000 events). When the write stream is cut short, each
  requested write event name is looked up on its own, again with
  ``max-pages``. A lookup still cut short is reported, never hidden: the
  annotation says so, and an account resource then matches even
  without matching events, because its history was not read to the end.
- In flight: the lookups one read needs (one per event name, access key) are
  made ``IN_FLIGHT`` at a time (``lookups_at_once``), still sent 2 per second:
  made one after another, every slow answer (LookupEvents' p90 is about a second,
  and us-east-1 has been measured at seconds on average) would hold back all the
  slots after it.
- Requests per policy and account-region are therefore at most
  ``1 + max-pages * (1 + number of event names)``; in a quiet region one for all the
  policies of the run.
- Results are reused for ``CACHE_SECONDS`` within one run (several
  policies read the same history in one run; CloudTrail itself delivers events
  minutes late, so a minute-old read misses nothing it could have seen). Policies
  running at once (``custodian_ext.concurrency``) that want the same history wait
  for one read of it: each lookup is made once per account-region and window.
  In c7n-org the regions of one account run in different worker processes, and
  all of them read the account's global events: the lookups and the 2 requests
  per second are shared across the run's processes (``custodian_ext.shared_run``).
- ``parameters`` keeps only the events whose request parameters match
  (``ModifyInstanceAttribute`` that changed ``userData``): it narrows the events
  read, never the reads, so the request count is the same.
"""
import datetime
import functools
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from c7n.exceptions import PolicyValidationError
from c7n.filters import Filter
from c7n.utils import get_partition
from c7n.utils import local_session, type_schema

import custodian_ext.shared_run as shared_run
from custodian_ext.activity.known import KnownPrincipals
from custodian_ext.filters.options import aware, check_timestamp, list_option
from custodian_ext.outputs import mark_partial
from custodian_ext.registry import register_filter
from custodian_ext.settings import is_placeholder

log = logging.getLogger('custodian.ext.event-history')

MIN_INTERVAL = 0.5       # seconds between LookupEvents calls per account-region (2/s)
HISTORY_DAYS = 90        # CloudTrail event history keeps 90 days
PAGE_SIZE = 50           # LookupEvents' largest page
DEFAULT_PAGES = 20
# A region's whole history in the window, when it fits in this many pages, answers every
# lookup there by name, key or read-only flag (each is one request or more at 2/s otherwise,
# and a sweep's policies and the activity review's rounds ask many): busy regions cost one
# request more, shared by the run's policies (``whole``).
HISTORY_PAGES = 4
# A window clamped to the history AWS keeps starts on a multiple of this, so that the
# policies of one sweep, started seconds apart, ask for one window and share its lookups
# (the cache keys on the start). It gives up at most this much of the oldest day kept.
CLAMP_STEP = 600
MAX_PAGES = 100
CACHE_SECONDS = 60
IN_FLIGHT = 8            # lookups of one read waiting on AWS at once (2/s x ~4 s answers)
MAX_ANNOTATED = 200      # events kept in one resource's annotation

# Where CloudTrail records global service events (IAM, STS global endpoint,
# Organizations), per partition.
GLOBAL_EVENT_REGIONS = {'aws': 'us-east-1', 'aws-us-gov': 'us-gov-west-1',
                        'aws-cn': 'cn-north-1'}
WRITE_VERBS = ('Create', 'Delete', 'Put', 'Attach', 'Detach', 'Update', 'Modify', 'Authorize',
               'Revoke', 'Stop', 'Start', 'Leave', 'Remove', 'Add', 'Import', 'Set', 'Run',
               'Terminate', 'Enable', 'Disable', 'Deregister', 'Register', 'Upload', 'Tag',
               'Untag', 'Associate', 'Disassociate', 'Accept', 'Invite', 'Reset', 'Change')

# The process clock and sleep, module attributes so tests can replace them.
clock = time.monotonic
sleep = time.sleep


class RateLimiter:
    """At most one call per ``interval`` seconds for each key (account, region).

    ``wait`` gives each call its slot. ``sending`` is called again as the request
    goes out (botocore's before-send, retries included): a call planned earlier
    but sent late, by a thread the CPU kept waiting, never brings two requests
    closer than ``interval`` where AWS counts them, at arrival.
    """

    def __init__(self, interval):
        self.interval = interval
        self.lock = threading.Lock()
        self.next_slot = {}
        self.last_sent = {}

    def wait(self, key):
        with self.lock:
            now = clock()
            slot = max(now, self.next_slot.get(key, now))
            self.next_slot[key] = slot + self.interval
        if slot > now:
            sleep(slot - now)

    def sending(self, key):
        while True:
            with self.lock:
                now = clock()
                earliest = self.last_sent.get(key, now - self.interval) + self.interval
                if now >= earliest:
                    earliest = self._across_processes(key, now)
                if now >= earliest:
                    self.last_sent[key] = now
                    self.next_slot[key] = max(self.next_slot.get(key, now), now + self.interval)
                    return
            sleep(earliest - now)

    def _across_processes(self, key, now):
        """The other worker processes of a c7n-org run send for this account-region too
        (every region reads the account's global events): the earliest this request may
        go out, taking the slot when it is now (``custodian_ext.shared_run``)."""
        path = shared_run.directory()
        if path is None:
            return now
        name = ('lookup-events-sent', key)
        with shared_run.held(path, name):
            last = shared_run.read_clock(path, name)
            earliest = now if last is None else max(now, last + self.interval)
            if earliest <= now:
                shared_run.write_clock(path, name, now)
        return earliest


_pacing = threading.local()  # the account-region whose LookupEvents this thread sends


def _pace(**kwargs):
    """botocore before-send of LookupEvents: the request goes out no sooner than its slot."""
    key = getattr(_pacing, 'key', None)
    if key is not None:
        limiter.sending(key)


def paced(client):
    client.meta.events.register('before-send.cloudtrail.LookupEvents', _pace,
                                unique_id='custodian-ext-lookup-pace')
    return client


limiter = RateLimiter(MIN_INTERVAL)
_cache = {}
_reading = {}  # a lookup being made -> Event set when it is done
_cache_lock = threading.Lock()
READ_WAIT_SECONDS = 600


def clear_cache():
    with _cache_lock:
        _cache.clear()


def is_write_event(name):
    return name.startswith(WRITE_VERBS)


def global_event_region(region):
    return GLOBAL_EVENT_REGIONS.get(get_partition(region), 'us-east-1')


def window_start(since, now):
    """The start of a history window from ``since`` to ``now``: ``since``, or when that is
    older than the ``HISTORY_DAYS`` CloudTrail keeps (and than ``LookupEvents`` accepts), the
    oldest moment kept rounded up to ``CLAMP_STEP`` seconds."""
    oldest = now - datetime.timedelta(days=HISTORY_DAYS)
    if since >= oldest:
        return since
    step = -(-int(oldest.timestamp()) // CLAMP_STEP) * CLAMP_STEP
    return datetime.datetime.fromtimestamp(step, tz=datetime.timezone.utc)


def lookup(client, retry, key, attribute, start, end, max_pages, early=False):
    """Every event for one lookup attribute (None: every event) in [start, end]: (raw
    events, cut short?). ``early``: give up as soon as the pages read show that the rest
    of the window needs more than ``max_pages`` pages (``needs_more``)."""
    params = {'StartTime': start, 'EndTime': end, 'MaxResults': PAGE_SIZE}
    if attribute is not None:
        params['LookupAttributes'] = [attribute]
    events = []
    paced(client)
    _pacing.key = key
    try:
        for page in range(1, max_pages + 1):
            limiter.wait(key)
            resp = retry(client.lookup_events, **params)
            events.extend(resp.get('Events', ()))
            token = resp.get('NextToken')
            if not token:
                return events, False
            if early and needs_more(events, start, end, page, max_pages):
                return events, True
            params['NextToken'] = token
        return events, True
    finally:
        _pacing.key = None


def needs_more(events, start, end, pages, max_pages):
    """Whether a history read newest first needs more than ``max_pages`` pages: ``pages``
    pages covered (oldest event read, end]; the rest of the window, at the same rate of
    events, would take the pages beyond. One page of a busy region says so."""
    oldest = _aware(events[-1].get('EventTime')) if events else None
    if oldest is None:
        return False
    covered = (_aware(end) - oldest).total_seconds()
    rest = (oldest - _aware(start)).total_seconds()
    if covered <= 0:
        return True
    return pages + pages * rest / covered > max_pages


def _aware(value):
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=datetime.timezone.utc)
    return value


def cached_lookup(client, retry, key, attribute, start, end, max_pages, early=False):
    """``lookup``, once per account-region, attribute, window and pages for the run."""
    what = ('*', '*') if attribute is None else (attribute['AttributeKey'],
                                                 attribute['AttributeValue'])
    ckey = key + what + (start.isoformat(), max_pages) + (('early',) if early else ())
    while True:
        with _cache_lock:
            hit = _cache.get(ckey)
            if hit and clock() - hit[0] < CACHE_SECONDS:
                return hit[1], hit[2]
            # policies running at once (custodian_ext.concurrency) ask for the same
            # history: one reads it, the others wait for its answer
            reading = _reading.get(ckey)
            if reading is None:
                _reading[ckey] = threading.Event()
                break
        reading.wait(READ_WAIT_SECONDS)
    try:
        events, cut = shared_lookup(client, retry, key, attribute, start, end, max_pages, ckey,
                                    early)
        with _cache_lock:
            _cache[ckey] = (clock(), events, cut)
    finally:
        with _cache_lock:
            _reading.pop(ckey).set()
    return events, cut


def shared_lookup(client, retry, key, attribute, start, end, max_pages, ckey, early=False):
    """``lookup``, made once for all the worker processes of a c7n-org run: the first to
    want it reads it, the others wait for its answer (``custodian_ext.shared_run``)."""
    path = shared_run.directory()
    if path is None:
        return lookup(client, retry, key, attribute, start, end, max_pages, early)
    name = ('lookup-events', ckey)
    with shared_run.held(path, name):
        hit = shared_run.load(path, name, CACHE_SECONDS)
        if hit is not None:
            return hit
        events, cut = lookup(client, retry, key, attribute, start, end, max_pages, early)
        shared_run.store(path, name, (events, cut))
    return events, cut


def lookups_at_once(calls):
    """The results of ``calls`` (each makes paced LookupEvents requests), in order, with up
    to ``IN_FLIGHT`` of them waiting on AWS at once; the limiter keeps the 2 per second.
    An error stops the calls not yet started and is raised (the first in order)."""
    calls = list(calls)
    if len(calls) < 2:
        return [call() for call in calls]
    from custodian_ext.perf import carried
    pool = ThreadPoolExecutor(min(IN_FLIGHT, len(calls)),
                              thread_name_prefix='custodian-ext-lookup')
    try:
        futures = [pool.submit(carried(call)) for call in calls]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def whole(client, retry, key, start, end):
    """The account-region's every event in [start, end] when they fit in ``HISTORY_PAGES``
    pages; else None (the read stopped once its pages showed the window needs more)."""
    rows, cut = cached_lookup(client, retry, key, None, start, end, HISTORY_PAGES, early=True)
    return None if cut else rows


def history(client, retry, key, names, start, end, max_pages):
    """Raw events with the given names: (events, names whose lookup was cut short)."""
    names = list(dict.fromkeys(names))
    every = whole(client, retry, key, start, end)
    if every is not None:
        wanted = set(names)
        return [e for e in every if e.get('EventName') in wanted], []
    writes = [n for n in names if is_write_event(n)]
    others = [n for n in names if not is_write_event(n)]
    found, cut_short = [], []
    if writes:
        stream, cut = cached_lookup(client, retry, key, {
            'AttributeKey': 'ReadOnly', 'AttributeValue': 'false'}, start, end, max_pages)
        if cut:
            others = writes + others
        else:
            wanted = set(writes)
            found.extend(e for e in stream if e.get('EventName') in wanted)
    answers = lookups_at_once(functools.partial(cached_lookup, client, retry, key, {
        'AttributeKey': 'EventName', 'AttributeValue': name}, start, end, max_pages)
        for name in others)
    for name, (events, cut) in zip(others, answers):
        found.extend(events)
        if cut:
            cut_short.append(name)
    return found, cut_short


def _iso(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    return str(value) if value is not None else None


def principal_label(ui):
    if ui.get('arn'):
        return ui['arn']
    if ui.get('type') == 'AWSAccount':
        return f"account {ui.get('accountId')}"
    if ui.get('type') == 'AWSService':
        return ui.get('invokedBy') or 'AWS service'
    return ui.get('principalId') or ui.get('type') or 'unknown'


def _trim(value, limit=500):
    if isinstance(value, dict):
        return {k: _trim(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_trim(v, limit) for v in value[:20]]
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + '...'
    return value


def summarize(raw):
    """The annotation form of one LookupEvents row."""
    try:
        ct = json.loads(raw.get('CloudTrailEvent') or '{}')
    except ValueError:
        ct = {}
    ui = ct.get('userIdentity') or {}
    out = {
        'EventName': raw.get('EventName') or ct.get('eventName'),
        'EventTime': _iso(raw.get('EventTime')) or ct.get('eventTime'),
        'EventSource': raw.get('EventSource') or ct.get('eventSource'),
        'EventId': raw.get('EventId') or ct.get('eventID'),
        'Region': ct.get('awsRegion'),
        'Principal': principal_label(ui),
        'PrincipalType': ui.get('type'),
        'PrincipalAccount': ui.get('accountId'),
        'AccessKeyId': ui.get('accessKeyId') or raw.get('AccessKeyId'),
        'SourceIPAddress': ct.get('sourceIPAddress'),
        'UserAgent': ct.get('userAgent'),
        'Resources': [{'Type': r.get('ResourceType'), 'Name': r.get('ResourceName')}
                      for r in raw.get('Resources') or ()],
        'RequestParameters': _trim(ct.get('requestParameters') or {}),
    }
    if ct.get('errorCode'):
        out['ErrorCode'] = ct['errorCode']
    issuer = ((ui.get('sessionContext') or {}).get('sessionIssuer') or {})
    if issuer.get('arn'):
        out['SessionIssuer'] = issuer['arn']
    return out


EVENT_SCHEMA_ITEMS = {'oneOf': [{'type': 'string'}, {'type': 'array', 'items': {'type': 'string'}}]}
PARAMETER_SCHEMA = {
    'type': 'object', 'additionalProperties': False, 'required': ['key', 'value'],
    'properties': {'key': {'type': 'string', 'minLength': 1},
                   'value': {'oneOf': [{'type': 'string'}, {'type': 'boolean'},
                                       {'type': 'array', 'items': {'type': 'string'}}]}}}


def _parameter(params, path):
    """The request parameter at a dotted ``path`` (``userData``, ``attribute``), or None.

    A flat key holding the dots (``userData.value``, as some recorders write
    query parameters) is found too.
    """
    if not isinstance(params, dict):
        return None
    if path in params:
        return params[path]
    head, _, rest = path.partition('.')
    if rest and isinstance(params.get(head), dict):
        return _parameter(params[head], rest)
    prefix = path + '.'
    nested = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
    return nested or None


def parameter_matches(params, spec):
    """One ``parameters`` entry: ``value: present``, a value, or a list of values."""
    found = _parameter(params, spec['key'])
    want = spec['value']
    if want == 'present':
        return found is not None
    if want == 'absent':
        return found is None
    wanted = want if isinstance(want, list) else [want]
    values = found if isinstance(found, list) else [found]
    return any(str(v).lower() == str(w).lower() for v in values for w in wanted
               if v is not None)


@register_filter('cloudtrail-events', ['account', 'account-region', 'iam-user', 'iam-role',
                                       'iam-policy', 'ec2'])
class CloudTrailEvents(Filter):
    """Events in CloudTrail's event history since ``since`` (R2.2).

    On ``aws.account`` (global events, once per account) and
    ``aws.account-region`` (every region) every matching event is kept; on IAM users, roles and
    policies only the events that concern the resource (by the resources
    CloudTrail names, or ``userName`` / ``roleName`` / ``roleArn`` /
    ``policyArn`` request parameters), which answers "who created it"; on EC2
    instances the events that name the instance (``instanceId``).
    ``c7n:cloudtrail-events`` lists each event with its principal, time,
    source IP, user agent and resources; ``c7n:cloudtrail-history`` records
    the window read and any lookup cut short (see the module docstring for
    the limits).

    ``scope: global`` reads the region where CloudTrail records global
    service events (IAM, STS's global endpoint, Organizations): us-east-1 in
    the commercial partition. ``principals: unknown`` keeps only events by
    principals outside ``known-users`` / ``known-roles`` (shell-style
    patterns) and ``known-accounts``; AWS services and the roles AWS itself
    owns (paths ``/aws-service-role/``, ``/aws-reserved/``) count as known.
    Failed calls (``errorCode``) are left out unless ``include-failed``.
    ``parameters`` keeps only events whose request parameters match at least
    one entry: ``{key: <dotted name>, value: present | absent | <value> |
    [<values>]}`` (values compared without case).

    A history cut short (see the module docstring) matches every resource,
    with the events found so far: it was not read to the end, so no resource
    can be called clean.

    :example:

    .. code-block:: yaml

        policies:
          - name: r2-2-iam-changes-since-incident
            resource: aws.account
            conditions:
              - type: value
                key: region
                value: '{global_region}'
            filters:
              - type: cloudtrail-events
                scope: global
                since: '{incident_start}'
                events: [CreateUser, CreateAccessKey, CreateLoginProfile]

          - name: r2-2-instance-user-data-changed-since-incident
            resource: aws.ec2
            filters:
              - type: cloudtrail-events
                since: '{incident_start}'
                events: [ModifyInstanceAttribute]
                parameters:
                  - {key: userData, value: present}
                  - {key: attribute, value: userData}
    """

    paced = 1  # LookupEvents at 2/s per account-region: started early (registry)

    schema = type_schema(
        'cloudtrail-events',
        required=['events', 'since'],
        events={'type': 'array', 'minItems': 1, 'items': {'type': 'string'}},
        since={'type': 'string'},
        scope={'enum': ['regional', 'global']},
        principals={'enum': ['any', 'unknown']},
        **{'known-users': {'oneOf': [{'type': 'string'},
                                     {'type': 'array', 'items': EVENT_SCHEMA_ITEMS}]},
           'known-roles': {'oneOf': [{'type': 'string'},
                                     {'type': 'array', 'items': EVENT_SCHEMA_ITEMS}]},
           'known-accounts': {'oneOf': [{'type': 'string'},
                                        {'type': 'array', 'items': EVENT_SCHEMA_ITEMS}]},
           'max-pages': {'type': 'integer', 'minimum': 1, 'maximum': MAX_PAGES},
           'include-failed': {'type': 'boolean'},
           'parameters': {'type': 'array', 'minItems': 1, 'items': PARAMETER_SCHEMA}})
    schema_alias = False
    permissions = ('cloudtrail:LookupEvents',)
    annotation_key = 'c7n:cloudtrail-events'
    history_key = 'c7n:cloudtrail-history'

    def validate(self):
        check_timestamp(self)
        for k in ('known-users', 'known-roles', 'known-accounts'):
            v = self.data.get(k)
            if isinstance(v, str) and not is_placeholder(v):
                raise PolicyValidationError(
                    f"{self.type}: {k} must be a list (or a {{variable}} holding one), got {v!r}")
        return self

    def since(self):
        return aware(self.data['since'])

    def _known(self, key):
        return list_option(self.data, key)

    def known_principals(self):
        return KnownPrincipals(
            self.manager.config.account_id, tuple(self._known('known-users')),
            tuple(self._known('known-roles')), tuple(self._known('known-accounts')))

    def is_known(self, event):
        """Whether the principal of one summarized event is known (``activity.known``)."""
        return self.known_principals().knows(
            event.get('PrincipalType'), event.get('Principal'), event.get('PrincipalAccount'),
            event.get('SessionIssuer'))

    def read_history(self):
        region = self.manager.config.region
        if self.data.get('scope') == 'global':
            region = global_event_region(region)
        now = datetime.datetime.now(datetime.timezone.utc)
        start = window_start(self.since(), now)
        client = local_session(self.manager.session_factory).client(
            'cloudtrail', region_name=region)
        key = (self.manager.config.account_id, region)
        raw, cut_short = history(client, self.manager.retry, key, self.data['events'],
                                 start, now, self.data.get('max-pages', DEFAULT_PAGES))
        events = [summarize(e) for e in raw]
        if not self.data.get('include-failed'):
            events = [e for e in events if not e.get('ErrorCode')]
        if self.data.get('principals') == 'unknown':
            events = [e for e in events if not self.is_known(e)]
        if self.data.get('parameters'):
            specs = self.data['parameters']
            events = [e for e in events if any(
                parameter_matches(e.get('RequestParameters') or {}, p) for p in specs)]
        # Oldest first; LookupEvents pages are newest first, and times are whole seconds.
        events.reverse()
        events.sort(key=lambda e: e.get('EventTime') or '')
        info = {'Region': region, 'Start': _iso(start), 'End': _iso(now),
                'Events': self.data['events']}
        if self.since() < start:
            info['WindowClamped'] = f'history before {_iso(start)} is not kept by CloudTrail'
            # The whole run, not only the resources that match: a clean result must say
            # that part of the window was not read (the report shows it as partial).
            mark_partial(self.manager, (
                f"CloudTrail keeps {HISTORY_DAYS} days of event history: events from "
                f"{_iso(self.since())} to {_iso(start)} (incident_start to {HISTORY_DAYS} "
                f"days ago) cannot be checked in {region}"))
        if cut_short:
            info['CutShort'] = cut_short
            mark_partial(self.manager, (
                f"event history for {', '.join(cut_short)} in {region} was cut short after "
                f"{self.data.get('max-pages', DEFAULT_PAGES)} pages: older events were not read"))
        return events, info

    def concerns(self, resource, event):
        rtype = self.manager.type
        params = event.get('RequestParameters') or {}

        def named(kind):
            return {r.get('Name') for r in event.get('Resources') or ()
                    if r.get('Type') == f'AWS::IAM::{kind}'}

        if rtype == 'iam-user':
            name = resource.get('UserName')
            return name in named('User') or params.get('userName') == name
        if rtype == 'iam-role':
            name, arn = resource.get('RoleName'), resource.get('Arn')
            return (bool({name, arn} & named('Role')) or params.get('roleName') == name
                    or params.get('roleArn') == arn)
        if rtype == 'iam-policy':
            arn = resource.get('Arn')
            return (arn in named('Policy') or params.get('policyArn') == arn or (
                event.get('EventName') == 'CreatePolicy'
                and params.get('policyName') == resource.get('PolicyName')))
        if rtype == 'ec2':
            iid = resource.get('InstanceId')
            return iid in {r.get('Name') for r in event.get('Resources') or ()
                           if r.get('Type') == 'AWS::EC2::Instance'} or \
                params.get('instanceId') == iid
        return True

    def process(self, resources, event=None):
        events, info = self.read_history()
        results = []
        for r in resources:
            mine = [e for e in events if self.concerns(r, e)]
            # A history cut short matches every resource: none of them can be called clean.
            if not mine and not info.get('CutShort'):
                continue
            r[self.annotation_key] = mine[-MAX_ANNOTATED:]
            if len(mine) > MAX_ANNOTATED:
                info = dict(info, Omitted=len(mine) - MAX_ANNOTATED)
            r[self.history_key] = info
            results.append(r)
        return results
