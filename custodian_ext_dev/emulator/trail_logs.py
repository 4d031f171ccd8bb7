"""CloudTrail log files in S3, and the data events only they carry, for the emulator.

moto keeps trails but never writes a log file. AWS delivers a trail's events
to its bucket about every five minutes; here they are delivered on request,
``POST /moto-api/custodian-ext/deliver-trail-logs`` (optional body
``{"account": "<id>"}``), following AWS's documented layout and selection:

- Which trails: every trail that is logging and names a bucket. A
  multi-region trail delivers the events of every region, a single-region
  trail those of its home region. Global service events (IAM,
  Organizations, ...: recorded in us-east-1) only with
  ``IncludeGlobalServiceEvents``. An organization trail delivers the events
  of every account of its organization.
- Which events: the trail's event selectors. Basic selectors:
  ``IncludeManagementEvents`` (default true), ``ReadWriteType``
  (``All``/``ReadOnly``/``WriteOnly``), ``ExcludeManagementEventSources``,
  and ``DataResources`` of type ``AWS::S3::Object`` (``arn:aws:s3`` for
  every bucket, ``arn:aws:s3:::bucket/`` or ``.../prefix``) and
  ``AWS::Lambda::Function`` (``arn:aws:lambda`` or function ARNs). Advanced
  selectors: every field selector of one selector must hold (``Equals``,
  ``NotEquals``, ``StartsWith``, ``NotStartsWith``, ``EndsWith``,
  ``NotEndsWith``) on ``eventCategory``, ``eventSource``, ``eventName``,
  ``readOnly``, ``resources.type`` and ``resources.ARN``. A trail without
  selectors records all management events and no data events.
- Where: ``<prefix>/AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/
  <account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<16 characters>.json.gz``,
  and for an organization trail ``<prefix>/AWSLogs/<org id>/<account>/...``;
  one gzip JSON file ``{"Records": [...]}`` per account, region and five
  minutes of events, each record the same dict ``LookupEvents`` returns in
  ``CloudTrailEvent`` (the same ``eventID``). Each event is delivered once
  per trail. Digest files are not written.

Data events: S3 object calls (``GetObject``, ``PutObject``, ``DeleteObject``,
``DeleteObjects``, ``CopyObject``, ...) signed with an access key are
recorded here as CloudTrail data events (``eventCategory: Data``,
``resources`` naming the object and the bucket), in the caller's account and
the bucket owner's, and Lambda ``Invoke`` in ``event_history``. Like on AWS,
they never appear in ``LookupEvents``.
"""
import collections
import datetime
import gzip
import json
import random
import re
import string
import threading
from types import SimpleNamespace
from xml.etree import ElementTree

from custodian_ext_dev.emulator import calls, event_history

_lock = threading.Lock()
_APPLIED = False
PERIOD_MINUTES = 5

# S3 operations that are data events (the object-level API), by botocore name.
S3_DATA_EVENTS = {
    'GetObject', 'PutObject', 'DeleteObject', 'DeleteObjects', 'CopyObject', 'HeadObject',
    'GetObjectAcl', 'PutObjectAcl', 'GetObjectTagging', 'PutObjectTagging',
    'DeleteObjectTagging', 'RestoreObject', 'CreateMultipartUpload', 'UploadPart',
    'CompleteMultipartUpload', 'AbortMultipartUpload', 'GetObjectAttributes',
    'PutObjectRetention', 'PutObjectLegalHold',
}
S3_READS = {'GetObject', 'HeadObject', 'GetObjectAcl', 'GetObjectTagging',
            'GetObjectAttributes'}
_CREDENTIAL = re.compile(r'Credential=([^/,\s]+)/[^/]+/([^/]+)/s3/')


# -- recording S3 data events --------------------------------------------------------

def _s3_request(environ, body):
    """(bucket, key, operation) of a path-style S3 request, or None."""
    path = environ.get('PATH_INFO', '') or '/'
    parts = path.lstrip('/').split('/', 1)
    if not parts[0]:
        return None
    bucket = parts[0]
    key = parts[1] if len(parts) > 1 else ''
    query = environ.get('QUERY_STRING') or ''
    query_keys = tuple(sorted({q.split('=')[0] for q in query.split('&') if q}))
    op = calls.operation('s3', environ.get('REQUEST_METHOD', 'GET'), path, query_keys,
                         calls._hint(environ, b''))
    if op in ('PutObject', 'CopyObject'):  # one URI template: the copy header tells
        op = 'CopyObject' if environ.get('HTTP_X_AMZ_COPY_SOURCE') else 'PutObject'
    if op not in S3_DATA_EVENTS:
        return None
    return bucket, key, op


def _deleted_keys(body):
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return []
    return [el.text for el in root.iter() if el.tag.split('}')[-1] == 'Key' and el.text]


def _record_s3(environ, access_key, region, status, body, answer, bucket, key, op):
    from moto.iam.models import get_account_id_from
    from moto.s3.exceptions import MissingBucket
    from moto.s3.models import s3_backends
    account_id = get_account_id_from(access_key)
    owner = None
    if bucket in s3_backends.bucket_accounts:
        _, owner = s3_backends.bucket_accounts[bucket]
        try:
            region = s3_backends[owner]['aws'].get_bucket(bucket).region_name
        except MissingBucket:
            owner = None  # deleted meanwhile
    keys = [key] if key else _deleted_keys(body)
    resources = [{'type': 'AWS::S3::Object', 'ARN': f'arn:aws:s3:::{bucket}/{k}'}
                 for k in keys[:50]]
    resources.append({'accountId': owner or account_id, 'type': 'AWS::S3::Bucket',
                      'ARN': f'arn:aws:s3:::{bucket}'})
    params = {'bucketName': bucket, 'Host': environ.get('HTTP_HOST', '')}
    if key:
        params['key'] = key
    elif op == 'DeleteObjects':
        params['delete'] = {'object': [{'key': k} for k in keys[:50]], 'quiet': 'false'}

    request = SimpleNamespace(
        headers={'User-Agent': environ.get('HTTP_USER_AGENT', ''),
                 'X-Forwarded-For': environ.get('HTTP_X_FORWARDED_FOR', '')},
        remote_addr=environ.get('REMOTE_ADDR'))

    event_history.record_data_event(
        account_id=account_id, region=region, event_source='s3.amazonaws.com', action=op,
        access_key=access_key, partition='aws', request=request, params=params,
        status=status, body=answer, read_only=op in S3_READS, resources=resources, owner=owner)


def s3_data_events():
    import io

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    dispatch = DomainDispatcherApplication.__call__

    def call(self, environ, start_response):
        match = _CREDENTIAL.search(environ.get('HTTP_AUTHORIZATION') or '')
        if not match:
            return dispatch(self, environ, start_response)
        length = int(environ.get('CONTENT_LENGTH') or 0)
        body = environ['wsgi.input'].read(length) if length else b''
        environ['wsgi.input'] = io.BytesIO(body)
        target = _s3_request(environ, body)
        if target is None:
            return dispatch(self, environ, start_response)
        seen = {}

        def start(status, headers, exc_info=None):
            seen['status'] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        result = dispatch(self, environ, start)
        status = seen.get('status', 200)
        answer = None
        if status >= 400:  # the error code is in the (small) error body
            answer = b''.join(result)
            result = [answer]
        try:
            access_key, region = match.groups()
            _record_s3(environ, access_key, region, status, body, answer, *target)
        except Exception:  # never let the record break the call it records
            import logging
            logging.getLogger('custodian_ext_dev.emulator').exception('s3 data event')
        return result

    DomainDispatcherApplication.__call__ = call


# -- event selectors -------------------------------------------------------------------

def _selects_management(trail, event):
    if trail.advanced_event_selectors:
        return any(_advanced_match(s, event) for s in trail.advanced_event_selectors)
    selectors = trail.event_selectors or [{'ReadWriteType': 'All',
                                            'IncludeManagementEvents': True}]
    for s in selectors:
        if not s.get('IncludeManagementEvents', True):
            continue
        if event['eventSource'] in (s.get('ExcludeManagementEventSources') or ()):
            continue
        rw = s.get('ReadWriteType', 'All')
        if rw == 'All' or (rw == 'ReadOnly') == bool(event.get('readOnly')):
            return True
    return False


def _selects_data(trail, event):
    if trail.advanced_event_selectors:
        return any(_advanced_match(s, event) for s in trail.advanced_event_selectors)
    arns = [r.get('ARN') or '' for r in event.get('resources') or ()]
    types = {r.get('type') for r in event.get('resources') or ()}
    for s in trail.event_selectors or ():
        rw = s.get('ReadWriteType', 'All')
        if rw != 'All' and (rw == 'ReadOnly') != bool(event.get('readOnly')):
            continue
        for resource in s.get('DataResources') or ():
            if resource.get('Type') not in types:
                continue
            for value in resource.get('Values') or ():
                if value in ('arn:aws:s3', 'arn:aws:s3:::', 'arn:aws:lambda') or any(
                        a == value or (value.endswith('/') and a.startswith(value))
                        or (resource.get('Type') == 'AWS::S3::Object' and a.startswith(value))
                        for a in arns):
                    return True
    return False


def _field_values(event, field):
    if field == 'eventCategory':
        return [event.get('eventCategory') or 'Management']
    if field == 'readOnly':
        return [str(bool(event.get('readOnly'))).lower()]
    if field in ('eventSource', 'eventName', 'eventType'):
        return [event.get(field) or '']
    if field == 'resources.type':
        return [r.get('type') or '' for r in event.get('resources') or ()]
    if field == 'resources.ARN':
        return [r.get('ARN') or '' for r in event.get('resources') or ()]
    return []


def _advanced_match(selector, event):
    for fs in selector.get('FieldSelectors') or ():
        values = _field_values(event, fs.get('Field'))
        if not values:
            return False
        checks = (('Equals', lambda v, x: v == x), ('StartsWith', str.startswith),
                  ('EndsWith', str.endswith))
        for name, test in checks:
            wanted = fs.get(name)
            if wanted and not any(test(v, x) for v in values for x in wanted):
                return False
            unwanted = fs.get('Not' + name)
            if unwanted and any(test(v, x) for v in values for x in unwanted):
                return False
    return True


def selects(trail, entry):
    event = entry['event']
    if event.get('eventCategory') == 'Data':
        return _selects_data(trail, event)
    if entry.get('global') and not trail.include_global_service_events:
        return False
    return _selects_management(trail, event)


# -- delivery ------------------------------------------------------------------------------

def _suffix():
    return ''.join(random.choices(string.ascii_letters + string.digits, k=16))


def _period(when):
    return when.replace(minute=when.minute - when.minute % PERIOD_MINUTES, second=0,
                        microsecond=0)


def object_key(prefix, account_id, region, when, org_id=None):
    """The key AWS gives a log file of ``account_id`` in ``region`` for the period at ``when``."""
    when = when.astimezone(datetime.timezone.utc)
    base = f'{prefix.strip("/")}/' if prefix else ''
    owner = f'{org_id}/{account_id}' if org_id else account_id
    return (f'{base}AWSLogs/{owner}/CloudTrail/{region}/{when:%Y/%m/%d}/'
            f'{account_id}_CloudTrail_{region}_{when:%Y%m%dT%H%MZ}_{_suffix()}.json.gz')


def _org_accounts(trail):
    """(org id, [account ids]) of an organization trail's organization, else (None, [own])."""
    if not trail.is_org_trail:
        return None, [trail.account_id]
    from moto.organizations.models import organizations_backends
    backend = organizations_backends[trail.account_id][trail.partition]
    if backend.org is None:
        return None, [trail.account_id]
    return backend.org.id, [a.id for a in backend.accounts]


def _regions(account_id):
    from moto.cloudtrail.models import cloudtrail_backends
    try:
        return list(cloudtrail_backends[account_id].keys())
    except KeyError:
        return []


def deliver_trail(trail):
    """Write the trail's undelivered events as log files; return (files, records)."""
    from moto.s3.models import s3_backends
    if trail.bucket_name not in s3_backends.bucket_accounts:
        return 0, 0  # AWS reports a delivery error; nothing is written
    partition, owner = s3_backends.bucket_accounts[trail.bucket_name]
    s3 = s3_backends[owner][partition]
    org_id, accounts = _org_accounts(trail)
    files = records = 0
    for account_id in accounts:
        regions = _regions(account_id) if trail.is_multi_region else [trail.region_name]
        for region in regions:
            batches = collections.defaultdict(list)
            entries = list(event_history.events_for(account_id, region)) + list(
                event_history.data_events_for(account_id, region))
            for entry in entries:
                delivered = entry.setdefault('_delivered', set())
                if trail.arn in delivered or not selects(trail, entry):
                    continue
                delivered.add(trail.arn)
                batches[_period(entry['time'])].append(entry)
            for when, batch in sorted(batches.items()):
                batch.sort(key=lambda e: e['time'])
                body = gzip.compress(json.dumps(
                    {'Records': [e['event'] for e in batch]}).encode())
                key = object_key(trail.s3_key_prefix or '', account_id, region, when, org_id)
                s3.put_object(trail.bucket_name, key, body, disable_notification=True)
                files += 1
                records += len(batch)
    return files, records


def deliver(account=None):
    """Deliver every logging trail's new events (of ``account``'s trails, if given)."""
    from moto.cloudtrail.models import cloudtrail_backends
    out = []
    with _lock:
        for account_id in list(cloudtrail_backends.keys()):
            if account and account_id != account:
                continue
            for region, backend in list(cloudtrail_backends[account_id].items()):
                for trail in list(backend.trails.values()):
                    if not trail.status.is_logging or not trail.bucket_name:
                        continue
                    files, records = deliver_trail(trail)
                    out.append({'trail': trail.arn, 'bucket': trail.bucket_name,
                                'files': files, 'records': records})
    return {'delivered': out}


def apply():
    global _APPLIED
    if _APPLIED:
        return
    _APPLIED = True
    calls.CONTROL['deliver-trail-logs'] = lambda body: deliver((body or {}).get('account'))
    s3_data_events()


# -- client side (tests, demo, benchmarks) ---------------------------------------------

def deliver_now(url, account=None):
    """Ask the emulator at ``url`` to deliver the trails' logs now (AWS: every ~5 minutes)."""
    return calls.request(url, 'deliver-trail-logs', {'account': account} if account else {})
