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
