"""S3 objects deleted or overwritten since the incident started (X8, ransomware).

S3 ransomware deletes objects, or overwrites them with encrypted copies, and
leaves no lasting resource behind. What can be seen afterwards depends on the
bucket:

- Versioned buckets (versioning enabled, or suspended after it was on) keep
  the evidence: a delete places a delete marker and an overwrite leaves the
  old version as noncurrent, each with its time. ``object-changes`` reads
  ``ListObjectVersions`` and reports every object whose state from before
  ``since`` was deleted or overwritten at or after it: exactly the objects
  the X8 recover action ``restore-object-versions`` would put back (the same
  per-object reading, ``custodian_ext.actions.restore_s3.plan_key``). Objects
  already put back (same content as before) are counted as restored, objects
  created since are counted as new (ransom notes are new objects), neither is
  a finding on its own.
- Unversioned buckets keep nothing: only CloudTrail S3 data events (written to
  the trail's log files, never to the event history) record a delete or an
  overwrite. The pack does not read trail log files yet, so
  ``object-changes-not-checkable`` reports each such bucket as not checkable,
  with the reason (no trail records its data events, or a trail does and its
  log files are where to look), never as clean. Buckets with versioning
  suspended are reported there too: objects whose current version is the
  ``null`` version can be overwritten or deleted there without a trace.

Bounds: ``object-changes`` examines at most ``max-versions`` versions and
delete markers per bucket (``object_scan_max_versions``); a bucket cut short
at the bound matches with ``CutShort`` (the key where the scan stopped), never
as clean. Memory holds one object's versions at a time.
"""
import datetime

from botocore.exceptions import ClientError
from c7n.exceptions import PolicyValidationError
from c7n.filters import Filter
from c7n.resources.s3 import get_region
from c7n.utils import local_session, type_schema

from custodian_ext.incomplete import mark as mark_incomplete
from custodian_ext.actions.restore_s3 import iter_keys, plan_key
from custodian_ext.filters.options import aware, check_timestamp
from custodian_ext.filters.trails import NOT_RECORDED, PARTIAL, RECORDED, s3_write_data_events
from custodian_ext.registry import register_filter
from custodian_ext.settings import (
    SETTINGS, SettingsError, check, is_placeholder, or_placeholder)

DEFAULT_MAX_VERSIONS = SETTINGS['object_scan_max_versions'].default
SAMPLE = 20          # objects listed in the annotation, at most
PAGE_SIZE = 1000     # ListObjectVersions' largest page
UNKNOWN = 'unknown'


def _iso(value):
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    return str(value)


def _code(error):
    return error.response.get('Error', {}).get('Code', 'Error')


def classify(versions, markers, start):
    """One object's change since ``start``: (kind, time of the first change) or (None, None).

    ``kind`` is ``deleted`` or ``overwritten`` (its state from before
    ``start`` is gone from view), ``restored`` (changed, then put back to the
    same content), ``new`` (created at or after ``start``) or ``unclear`` (a
    version and a delete marker from before ``start`` share a timestamp).
    """
    plan = plan_key(versions, markers, start)
    if plan is None:
        return None, None
    since = [e['LastModified'] for e in list(versions) + list(markers)
             if aware(e['LastModified']) >= start]
    first = min(since, key=aware) if since else None
    action = plan['action']
    if action == 'unchanged':
        return 'restored', first
    if action in ('copy', 'undelete'):
        latest = next((m for m in markers if m.get('IsLatest')), None)
        return ('deleted' if latest is not None else 'overwritten'), first
    if 'source' not in plan:
        return 'new', first
    if 'share a timestamp' in plan.get('reason', ''):
        return 'unclear', first
    return None, None  # deleted before the incident: nothing changed since


@register_filter('object-changes', ['s3'])
class ObjectChanges(Filter):
    """Versioned buckets with objects deleted or overwritten at or after ``since``.

    Reads each versioned bucket's versions and delete markers
    (``ListObjectVersions``, 1,000 per request) up to ``max-versions`` per
    bucket. A bucket matches when an object it held before ``since`` was
    deleted (delete marker placed since) or overwritten (newer version
    written since) and not put back, when its listing was cut short at the
    bound, or when it could not be read. Buckets without versioning never
    match here (see ``object-changes-not-checkable``). The policy must fetch
    ``Versioning`` (``query: [{augment-keys: [Versioning]}]``).

    ``c7n:object-changes``: ``Deleted``, ``Overwritten``, ``Restored``,
    ``New`` and ``Unclear`` object counts, ``First``/``Last`` change times,
    up to 20 ``Objects`` (key, change, time), ``Examined`` (keys, versions)
    and ``CutShort`` (``Limit``, ``NextKey``) when the bound was hit.

    :example:

    .. code-block:: yaml

        policies:
          - name: x8-s3-objects-deleted-or-overwritten-since-incident
            resource: aws.s3
            query:
              - augment-keys: [Policy, Versioning]
            filters:
              - type: details-readable
                keys: [Versioning]
              - type: object-changes
                since: '{incident_start}'
                max-versions: '{object_scan_max_versions}'
    """

    schema = type_schema(
        'object-changes', required=['since'], since={'type': 'string'},
        **{'max-versions': or_placeholder({'type': 'integer', 'minimum': 1})})
    schema_alias = False
    permissions = ('s3:ListBucketVersions', 's3:GetBucketVersioning')
    annotation_key = 'c7n:object-changes'

    def validate(self):
        check_timestamp(self)
        self.max_versions()
        return self

    def max_versions(self):
        value = self.data.get('max-versions', DEFAULT_MAX_VERSIONS)
        if is_placeholder(value):
            return None
        try:
            return check('object_scan_max_versions', value, key='max-versions')
        except SettingsError as e:
            raise PolicyValidationError(
                f"{self.type}: {e} (policy {self.manager.data.get('name')})") from None

    def process(self, resources, event=None):
        self.start = aware(self.data['since'])
        self.limit = self.max_versions() or DEFAULT_MAX_VERSIONS
        session = local_session(self.manager.session_factory)
        results = []
        for b in resources:
            status = versioning_status(self.manager, session, b)
            if status not in ('Enabled', 'Suspended'):
                continue
            client = session.client('s3', region_name=get_region(b))
            found = self.scan(client, b['Name'])
            found['Versioning'] = status
            if (found.get('Deleted') or found.get('Overwritten') or found.get('Unclear')
                    or found.get('CutShort') or found.get('Unreadable')):
                b[self.annotation_key] = found
                if found.get('Unreadable'):  # the versions not read: not a complete check
                    mark_incomplete(b, f"object versions of {b['Name']}: "
                                       f"{found['Unreadable']}")
                results.append(b)
        return results

    def scan(self, client, bucket):
        counts = dict.fromkeys(('Deleted', 'Overwritten', 'Restored', 'New', 'Unclear'), 0)
        out = {'Since': _iso(self.start)}
        objects, times = [], []
        keys = versions_seen = 0
        try:
            for key, versions, markers in iter_keys(
                    client, bucket, page_size=min(PAGE_SIZE, self.limit)):
                if versions_seen >= self.limit:
                    out['CutShort'] = {'Limit': self.limit, 'NextKey': key}
                    break
                keys += 1
                versions_seen += len(versions) + len(markers)
                kind, first = classify(versions, markers, self.start)
                if kind is None:
                    continue
                counts[kind.capitalize()] += 1
                if kind in ('deleted', 'overwritten', 'unclear'):
                    times.append(aware(first))
                    if len(objects) < SAMPLE:
                        objects.append({'Key': key, 'Change': kind, 'Time': _iso(first)})
        except ClientError as e:
            out['Unreadable'] = f"{_code(e)}: {e.response['Error'].get('Message', '')}"
        out.update(counts)
        out['Examined'] = {'Keys': keys, 'Versions': versions_seen}
        if times:
            out['First'], out['Last'] = _iso(min(times)), _iso(max(times))
        out['Objects'] = objects
        return out


def versioning_status(manager, session, bucket):
    """The bucket's versioning status from the listing (``Versioning``), or asked for."""
    v = bucket.get('Versioning')
    if v is None:
        client = session.client('s3', region_name=get_region(bucket))
        v = manager.retry(client.get_bucket_versioning, Bucket=bucket['Name'])
    return (v or {}).get('Status')


@register_filter('object-changes-not-checkable', ['s3'])
class ObjectChangesNotCheckable(Filter):
    """Buckets whose object deletes and overwrites the pack cannot check (info).

    Every bucket without versioning (never enabled, or suspended) matches:
    its versions cannot show what changed. ``c7n:object-changes-not-checkable``
    says why, and whether any logging trail records the bucket's S3 write data
    events (``DataEvents``: ``recorded``, ``partial``, ``not-recorded`` or
    ``unknown``, read with ``DescribeTrails`` in the bucket's region and each
    trail's ``GetTrailStatus`` and ``GetEventSelectors``, basic and advanced),
    and where those trails deliver their log files: the only record of the
    changes, which the pack does not read yet.

    :example:

    .. code-block:: yaml

        policies:
          - name: x8-s3-object-changes-not-checkable
            resource: aws.s3
            query:
              - augment-keys: [Policy, Versioning]
            filters:
              - type: details-readable
                keys: [Versioning]
              - type: object-changes-not-checkable
    """

    schema = type_schema('object-changes-not-checkable')
    permissions = ('s3:GetBucketVersioning', 'cloudtrail:DescribeTrails',
                   'cloudtrail:GetTrailStatus', 'cloudtrail:GetEventSelectors')
    annotation_key = 'c7n:object-changes-not-checkable'

    def process(self, resources, event=None):
        self.session = local_session(self.manager.session_factory)
        self.trails_in, self.trail_info = {}, {}
        results = []
        for b in resources:
            status = versioning_status(self.manager, self.session, b)
            if status == 'Enabled':
                continue
            b[self.annotation_key] = self.explain(b, status)
            results.append(b)
        return results

    def explain(self, bucket, status):
        coverage, trails, notes = self.data_events(bucket)
        for note in notes:  # a trail that could not be read: coverage unknown, incomplete
            mark_incomplete(bucket, f"S3 data events for {bucket['Name']}: {note}")
        out = {'Versioning': status or 'Disabled', 'DataEvents': coverage, 'Trails': trails}
        if status == 'Suspended':
            why = ('versioning suspended: an object whose current version is the null version '
                   'is overwritten or deleted without a trace in the versions')
        else:
            why = 'versioning never enabled: the versions cannot show deletes or overwrites'
        names = ', '.join(t['Name'] for t in trails if t['Coverage'] in (RECORDED, PARTIAL))
        if coverage == RECORDED:
            where = (f"trail {names} records its S3 write data events, but the pack does not "
                     f"read trail log files: search them for DeleteObject, DeleteObjects and "
                     f"PutObject on this bucket")
        elif coverage == PARTIAL:
            where = (f"trail {names} records S3 write data events for part of it (some keys or "
                     f"events), and the pack does not read trail log files: search them, and "
                     f"treat the rest as unrecorded")
        elif coverage == UNKNOWN:
            where = ('whether a trail records its S3 data events could not be read: '
                     + '; '.join(notes))
        else:
            where = ('no logging trail records S3 data events for it: deletes and overwrites '
                     'are recorded nowhere the pack can read')
        out['Reason'] = f"not checkable from the API ({why}); {where}"
        return out

    def data_events(self, bucket):
        """(coverage, trails, notes) of the trails that could record this bucket's writes."""
        region = get_region(bucket)
        levels, trails, notes = [], [], []
        listed, error = self.trails(region)
        if error:
            return UNKNOWN, [], [f"DescribeTrails in {region}: {error}"]
        for t in listed:
            info = self.trail(t)
            if info.get('Error'):
                levels.append(UNKNOWN)
                notes.append(f"trail {t['Name']}: {info['Error']}")
                trails.append({'Name': t['Name'], 'Coverage': UNKNOWN, 'Error': info['Error']})
                continue
            if not info['Logging']:
                continue
            level = s3_write_data_events(info['Selectors'], bucket['Name'],
                                         partition=t['TrailARN'].split(':')[1])
            if level != NOT_RECORDED:
                trails.append({'Name': t['Name'], 'Coverage': level,
                               'LogBucket': t.get('S3BucketName'),
                               'LogPrefix': t.get('S3KeyPrefix') or ''})
            levels.append(level)
        if RECORDED in levels:
            return RECORDED, trails, notes
        if PARTIAL in levels:
            return PARTIAL, trails, notes
        if UNKNOWN in levels:
            return UNKNOWN, trails, notes
        return NOT_RECORDED, trails, notes

    def trails(self, region):
        """(trails that log this region: its own, multi-region and organization ones, error)."""
        if region not in self.trails_in:
            client = self.session.client('cloudtrail', region_name=region)
            try:
                # includeShadowTrails defaults to true (multi-region and organization
                # trails included); asked as c7n's trail listing asks, the read is shared
                # with it (runcache.SHARED_READS)
                self.trails_in[region] = (self.manager.retry(
                    client.describe_trails).get('trailList') or [], None)
            except ClientError as e:
                error = f"{_code(e)}: {e.response['Error'].get('Message', '')}"
                self.trails_in[region] = ([], error)
        return self.trails_in[region]

    def trail(self, t):
        arn = t['TrailARN']
        if arn not in self.trail_info:
            client = self.session.client('cloudtrail', region_name=t.get('HomeRegion') or
                                         arn.split(':')[3])
            try:
                status = self.manager.retry(client.get_trail_status, Name=arn)
                selectors = self.manager.retry(client.get_event_selectors, TrailName=arn)
                self.trail_info[arn] = {'Logging': bool(status.get('IsLogging')),
                                        'Selectors': selectors}
            except ClientError as e:
                self.trail_info[arn] = {'Error': f"{_code(e)}: "
                                                 f"{e.response['Error'].get('Message', '')}"}
        return self.trail_info[arn]
