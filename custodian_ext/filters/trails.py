"""CloudTrail trails that do not record management events (R2.1).

Narrowing a trail's event selectors is a quieter way than StopLogging to hide
what an attacker does next. c7n's ``check-cloudtrail`` looks at basic event
selectors only when a trail has both kinds of key in its answer, and its
``event-selectors`` filter leaves the reading of basic against advanced
selectors to the policy; this filter reads both.
"""
from c7n.filters import Filter
from c7n.resources.cloudtrail import get_trail_groups
from c7n.utils import type_schema

from custodian_ext.registry import register_filter


def management_coverage(selectors):
    """Which management events a trail records:
    {'Read', 'Write', 'Selectors', 'ExcludedSources'}."""
    advanced = selectors.get('AdvancedEventSelectors') or []
    basic = selectors.get('EventSelectors') or []
    read = write = False
    excluded = []
    if advanced:
        kind = 'advanced'
        for s in advanced:
            fields = {f.get('Field'): f for f in s.get('FieldSelectors') or ()}
            category = fields.get('eventCategory') or {}
            if 'Management' not in (category.get('Equals') or ()):
                continue
            ro = fields.get('readOnly')
            if ro is None:
                r, w = True, True
            elif ro.get('Equals'):
                values = {str(v).lower() for v in ro['Equals']}
                r, w = 'true' in values, 'false' in values
            elif ro.get('NotEquals'):
                values = {str(v).lower() for v in ro['NotEquals']}
                r, w = 'true' not in values, 'false' not in values
            else:
                r, w = True, True
            read, write = read or r, write or w
            src = fields.get('eventSource') or {}
            excluded.extend(src.get('NotEquals') or ())
    elif basic:
        kind = 'basic'
        for s in basic:
            if not s.get('IncludeManagementEvents', True):
                continue
            rw = s.get('ReadWriteType', 'All')
            read = read or rw in ('All', 'ReadOnly')
            write = write or rw in ('All', 'WriteOnly')
            excluded.extend(s.get('ExcludeManagementEventSources') or ())
    else:
        # No selectors at all is AWS's default for a new trail: all management events.
        kind, read, write = 'default', True, True
    return {'Read': read, 'Write': write, 'Selectors': kind,
            'ExcludedSources': sorted(set(excluded))}


@register_filter('management-events-excluded', ['cloudtrail'])
class ManagementEventsExcluded(Filter):
    """Trails whose event selectors leave out management events of a ``kind`` (R2.1).

    ``kind: write`` (default) matches trails that do not record management
    write events (every create, delete and change an attacker makes);
    ``kind: read`` those that do not record management read events. Basic
    selectors (``IncludeManagementEvents``, ``ReadWriteType``) and advanced
    selectors (``eventCategory = Management``, ``readOnly``) are both read.
    ``c7n:management-events`` holds what the trail records.

    :example:

    .. code-block:: yaml

        policies:
          - name: r2-1-trail-excludes-management-events
            resource: aws.cloudtrail
            filters:
              - type: is-shadow
                state: false
              - type: management-events-excluded
                kind: write
    """

    schema = type_schema('management-events-excluded', kind={'enum': ['write', 'read']})
    permissions = ('cloudtrail:GetEventSelectors',)
    annotation_key = 'c7n:management-events'

    def process(self, resources, event=None):
        kind = self.data.get('kind', 'write').capitalize()
        results = []
        for region, (client, trails) in get_trail_groups(
                self.manager.session_factory, resources).items():
            for t in trails:
                selectors = self.manager.retry(client.get_event_selectors,
                                               TrailName=t['TrailARN'])
                coverage = management_coverage(selectors)
                if not coverage[kind]:
                    t[self.annotation_key] = coverage
                    results.append(t)
        return results


#: the S3 data events that delete or overwrite an object
S3_WRITE_EVENTS = ('PutObject', 'DeleteObject', 'DeleteObjects', 'CopyObject',
                   'CompleteMultipartUpload')
RECORDED, PARTIAL, NOT_RECORDED = 'recorded', 'partial', 'not-recorded'
_RANK = {NOT_RECORDED: 0, PARTIAL: 1, RECORDED: 2}


def _best(values):
    return max(values, key=_RANK.get, default=NOT_RECORDED)


def _arn_prefix_coverage(values, bucket_arn):
    """How much of a bucket a list of object-ARN prefixes reaches."""
    out = NOT_RECORDED
    for v in values or ():
        if bucket_arn.startswith(v):
            return RECORDED
        if v.startswith(bucket_arn):
            out = PARTIAL
    return out


def _arn_reach(arn, bucket_arn):
    """How much of the bucket one ``resources.ARN`` field selector lets through.

    The positive operators (Equals, StartsWith, EndsWith) are alternatives;
    the negative ones (NotEquals, NotStartsWith, NotEndsWith) each exclude.
    """
    positive = []
    if arn.get('StartsWith'):
        positive.append(_arn_prefix_coverage(arn['StartsWith'], bucket_arn))
    if arn.get('Equals'):
        positive.append(PARTIAL if any(str(v).startswith(bucket_arn) for v in arn['Equals'])
                        else NOT_RECORDED)
    if arn.get('EndsWith'):
        positive.append(PARTIAL)
    reach = _best(positive) if positive else RECORDED
    excluded = _arn_prefix_coverage(arn.get('NotStartsWith'), bucket_arn)
    if excluded == RECORDED:
        return NOT_RECORDED
    if excluded == PARTIAL or arn.get('NotEndsWith') or any(
            str(v).startswith(bucket_arn) for v in arn.get('NotEquals') or ()):
        reach = min(reach, PARTIAL, key=_RANK.get)
    return reach


def _advanced_s3_writes(fields, bucket_arn):
    """What one advanced selector (its field selectors ANDed) records of the bucket's writes."""
    category = fields.get('eventCategory') or {}
    if 'Data' not in (category.get('Equals') or ()):
        return NOT_RECORDED
    rtype = fields.get('resources.type') or {}
    if 'AWS::S3::Object' not in (rtype.get('Equals') or ()):
        return NOT_RECORDED
    level = RECORDED
    ro = fields.get('readOnly')
    if ro is not None:
        equals = {str(v).lower() for v in ro.get('Equals') or ()}
        not_equals = {str(v).lower() for v in ro.get('NotEquals') or ()}
        if (equals and 'false' not in equals) or 'false' in not_equals:
            return NOT_RECORDED
    arn = fields.get('resources.ARN')
    if arn is not None:
        level = min(level, _arn_reach(arn, bucket_arn), key=_RANK.get)
    name = fields.get('eventName')
    if name is not None:
        equals = set(name.get('Equals') or ())
        not_equals = set(name.get('NotEquals') or ())
        if equals and not equals & {'PutObject', 'DeleteObject', 'DeleteObjects'}:
            return NOT_RECORDED
        if (equals and not {'PutObject', 'DeleteObject', 'DeleteObjects'} <= equals) or \
                not_equals & set(S3_WRITE_EVENTS) or set(name) - {'Field', 'Equals', 'NotEquals'}:
            level = min(level, PARTIAL, key=_RANK.get)
    others = set(fields) - {'eventCategory', 'resources.type', 'readOnly', 'resources.ARN',
                            'eventName'}
    if others:  # e.g. userIdentity.arn, eventSource: only some writes are recorded
        level = min(level, PARTIAL, key=_RANK.get)
    return level


def s3_write_data_events(selectors, bucket, partition='aws'):
    """Whether a trail's selectors record object deletes and overwrites in ``bucket``.

    Returns ``recorded`` (every object of the bucket), ``partial`` (some
    keys, or some of the write events) or ``not-recorded``. Basic selectors:
    ``DataResources`` of type ``AWS::S3::Object`` whose values are prefixes
    of object ARNs (``arn:aws:s3`` for every bucket, ``arn:aws:s3:::bucket/``,
    ``arn:aws:s3:::bucket/prefix``), with ``ReadWriteType`` All or WriteOnly.
    Advanced selectors: ``eventCategory = Data``, ``resources.type =
    AWS::S3::Object``, ``readOnly`` not limited to reads, and the
    ``resources.ARN`` and ``eventName`` conditions; any other field narrows
    the selector to ``partial``.
    """
    bucket_arn = f'arn:{partition}:s3:::{bucket}/'
    advanced = selectors.get('AdvancedEventSelectors') or []
    if advanced:
        return _best(_advanced_s3_writes(
            {f.get('Field'): f for f in s.get('FieldSelectors') or ()}, bucket_arn)
            for s in advanced)
    levels = []
    for s in selectors.get('EventSelectors') or ():
        if s.get('ReadWriteType', 'All') not in ('All', 'WriteOnly'):
            continue
        for dr in s.get('DataResources') or ():
            if dr.get('Type') == 'AWS::S3::Object':
                levels.append(_arn_prefix_coverage(dr.get('Values'), bucket_arn))
    return _best(levels)
