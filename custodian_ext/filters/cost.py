"""Spend by service and by region, this month against last month (R3.1).

Miners and fraudulent workloads show up on the bill before anyone notices the
resources: a service the account never used, a region it never ran in, or a
service whose spend jumps. Cost Explorer answers this with two requests.
"""
import datetime

from c7n.exceptions import PolicyValidationError
from c7n.filters import Filter
from c7n.utils import get_partition
from c7n.utils import local_session, type_schema

from custodian_ext.registry import register_filter
from custodian_ext.settings import is_placeholder

# Cost Explorer has one endpoint per partition.
CE_REGIONS = {'aws': 'us-east-1', 'aws-cn': 'cn-northwest-1'}
DIMENSIONS = ('SERVICE', 'REGION')


def periods(today):
    """(first day of last month, first day of this month, days in last month, days elapsed)."""
    this_month = today.replace(day=1)
    last_month = (this_month - datetime.timedelta(days=1)).replace(day=1)
    return last_month, this_month, (this_month - last_month).days, (today - this_month).days


def _number(value, name):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise PolicyValidationError(f"cost-changes: {name} must be a number, got {value!r}")


@register_filter('cost-changes', ['account'])
class CostChanges(Filter):
    """Services and regions that are new this month or whose spend rose (R3.1).

    Reads month-to-date spend (up to yesterday, Cost Explorer's latest full
    day) and last month's, by service and by region (``GetCostAndUsage``,
    monthly, grouped by SERVICE, then by REGION). Last month is pro-rated to
    the days elapsed this month. A service or region spending at least
    ``min-amount`` this month is flagged when it had no spend last month
    (``new``) or spends at least ``ratio`` times last month's pro-rated
    amount (``increase``). Nothing is flagged on the first day of a month
    (no full day yet). ``c7n:cost-changes`` lists each flag with both amounts.

    :example:

    .. code-block:: yaml

        policies:
          - name: r3-1-spend-new-or-rising
            resource: aws.account
            filters:
              - type: cost-changes
                ratio: '{cost_increase_ratio}'
                min-amount: '{cost_min_amount}'
    """

    schema = type_schema(
        'cost-changes',
        ratio={'oneOf': [{'type': 'number', 'exclusiveMinimum': 0}, {'type': 'string'}]},
        metric={'enum': ['UnblendedCost', 'AmortizedCost', 'NetUnblendedCost', 'BlendedCost']},
        **{'min-amount': {'oneOf': [{'type': 'number', 'minimum': 0}, {'type': 'string'}]}})
    schema_alias = False
    permissions = ('ce:GetCostAndUsage',)
    annotation_key = 'c7n:cost-changes'

    def validate(self):
        for key in ('ratio', 'min-amount'):
            v = self.data.get(key)
            if isinstance(v, str) and not is_placeholder(v):
                _number(v, key)
        return self

    def today(self):
        return datetime.datetime.now(datetime.timezone.utc).date()

    def spend(self, client, dimension, start, end, metric):
        """{(period start, key): amount} for one dimension."""
        params = {'TimePeriod': {'Start': start.isoformat(), 'End': end.isoformat()},
                  'Granularity': 'MONTHLY', 'Metrics': [metric],
                  'GroupBy': [{'Type': 'DIMENSION', 'Key': dimension}]}
        out = {}
        while True:
            resp = self.manager.retry(client.get_cost_and_usage, **params)
            for period in resp.get('ResultsByTime', ()):
                pstart = period['TimePeriod']['Start']
                for g in period.get('Groups', ()):
                    amount = float(g['Metrics'][metric]['Amount'])
                    key = (pstart, g['Keys'][0])
                    out[key] = out.get(key, 0.0) + amount
            token = resp.get('NextPageToken')
            if not token:
                return out
            params['NextPageToken'] = token

    def process(self, resources, event=None):
        ratio = _number(self.data.get('ratio', 1.5), 'ratio')
        minimum = _number(self.data.get('min-amount', 10), 'min-amount')
        metric = self.data.get('metric', 'UnblendedCost')
        last_start, this_start, last_days, elapsed = periods(self.today())
        if elapsed < 1:
            return []
        region = CE_REGIONS.get(get_partition(self.manager.config.region), 'us-east-1')
        client = local_session(self.manager.session_factory).client('ce', region_name=region)
        end = this_start + datetime.timedelta(days=elapsed)
        changes = []
        for dimension in DIMENSIONS:
            spend = self.spend(client, dimension, last_start, end, metric)
            keys = {k for _, k in spend}
            for key in sorted(keys):
                now = round(spend.get((this_start.isoformat(), key), 0.0), 2)
                before = round(spend.get((last_start.isoformat(), key), 0.0), 2)
                prorated = round(before * elapsed / last_days, 2)
                if now < minimum:
                    continue
                item = {'Dimension': dimension, 'Key': key, 'ThisMonth': now,
                        'LastMonth': before, 'LastMonthProRated': prorated,
                        'DaysElapsed': elapsed}
                if before <= 0:
                    changes.append(dict(item, Change='new'))
                elif prorated > 0 and now >= ratio * prorated:
                    changes.append(dict(item, Change='increase', Ratio=round(now / prorated, 2)))
        if not changes:
            return []
        for r in resources:
            r[self.annotation_key] = changes
        return resources
