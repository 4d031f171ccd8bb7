"""EC2 instance checks (X6)."""
import datetime
import re

from dateutil.parser import parse as parse_date
from c7n.filters import Filter
from c7n.utils import type_schema

from custodian_ext.registry import register_filter

# "User initiated (2016-05-03 19:40:43 GMT)"; moto writes UTC instead of GMT.
TRANSITION_TIME = re.compile(r'\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\s*(GMT|UTC)?\)')


def stopped_since(instance):
    """When the instance stopped, from StateTransitionReason, or None if unknown."""
    m = TRANSITION_TIME.search(instance.get('StateTransitionReason') or '')
    if not m:
        return None
    return parse_date(m.group(1)).replace(tzinfo=datetime.timezone.utc)


@register_filter('stopped-for', ['ec2'])
class StoppedFor(Filter):
    """Stopped instances, annotated with how long they have been stopped (X6).

    Attackers park instances stopped: they cost little, are skipped by most
    inventories, and can be started again later. Matches instances in the
    ``stopped`` or ``stopping`` state that have been stopped at least ``days``
    (default 0), and annotates ``c7n:stopped-since`` (ISO time) and
    ``c7n:stopped-days``. An instance whose stop time AWS does not give is
    kept, with ``c7n:stopped-since: unknown``, rather than hidden.

    :example:

    .. code-block:: yaml

        policies:
          - name: x6-stopped-instances
            resource: aws.ec2
            filters:
              - type: stopped-for
                days: 0
    """

    schema = type_schema('stopped-for', days={'type': 'number', 'minimum': 0})
    permissions = ('ec2:DescribeInstances',)

    def process(self, resources, event=None):
        now = datetime.datetime.now(datetime.timezone.utc)
        min_days = self.data.get('days', 0)
        results = []
        for r in resources:
            if r.get('State', {}).get('Name') not in ('stopped', 'stopping'):
                continue
            since = stopped_since(r)
            if since is None:
                r['c7n:stopped-since'] = 'unknown'
                r['c7n:stopped-days'] = None
                results.append(r)
                continue
            days = (now - since).total_seconds() / 86400
            if days >= min_days:
                r['c7n:stopped-since'] = since.strftime('%Y-%m-%dT%H:%M:%SZ')
                r['c7n:stopped-days'] = round(days, 2)
                results.append(r)
        return results
