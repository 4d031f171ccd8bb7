"""EC2 instance checks (X6): stopped, created since the incident, unusual types."""
import datetime
import fnmatch
import re

from dateutil.parser import parse as parse_date
from c7n.exceptions import PolicyExecutionError, PolicyValidationError
from c7n.filters import Filter
from c7n.utils import type_schema

from custodian_ext.filters.timeutil import as_utc, since_value
from custodian_ext.registry import register_filter
from custodian_ext.settings import PLACEHOLDER_SCHEMA

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


def instance_created(instance):
    """When the instance was first launched, and where that time comes from.

    ``LaunchTime`` is reset by every stop and start, so an old instance that
    was restarted would look new. The root EBS volume stays attached across
    stop and start, and its ``AttachTime`` is the original launch; AWS
    suggests it for exactly this. Instance-store roots have no attach time,
    and for them ``LaunchTime`` is the only clue.
    """
    root = instance.get('RootDeviceName')
    attach_times = [
        m['Ebs']['AttachTime'] for m in instance.get('BlockDeviceMappings') or ()
        if m.get('Ebs', {}).get('AttachTime') and m.get('DeviceName') == root]
    if attach_times:
        return as_utc(attach_times[0]), 'root volume attach time'
    if instance.get('LaunchTime'):
        return as_utc(instance['LaunchTime']), 'launch time'
    return None, 'unknown'


@register_filter('created-since', ['ec2'])
class CreatedSince(Filter):
    """Instances first launched at or after ``since`` (X6).

    EC2 has no creation-time field: ``LaunchTime`` changes on every start.
    This filter dates an instance by its root EBS volume's ``AttachTime``
    (kept across stop/start), falling back to ``LaunchTime`` for
    instance-store roots, and annotates ``c7n:created`` and
    ``c7n:created-from``. Spot and stopped instances are included; the
    policy decides which states to keep. No API calls: both fields come
    with DescribeInstances.

    :example:

    .. code-block:: yaml

        policies:
          - name: x6-new-instances
            resource: aws.ec2
            filters:
              - type: created-since
                since: '{incident_start}'
    """

    schema = type_schema('created-since', required=['since'], since={'type': 'string'})
    permissions = ('ec2:DescribeInstances',)

    def validate(self):
        since_value(self)
        return self

    def process(self, resources, event=None):
        since = since_value(self)
        results = []
        for r in resources:
            created, source = instance_created(r)
            if created is not None and created >= since:
                r['c7n:created'] = created.strftime('%Y-%m-%dT%H:%M:%SZ')
                r['c7n:created-from'] = source
                results.append(r)
        return results


def type_patterns_match(instance_type, patterns):
    """The first shell-style pattern that ``instance_type`` matches, or None.

    SageMaker writes its types with an ``ml.`` prefix (``ml.p3.2xlarge``);
    the patterns are EC2's, so the prefix is dropped before matching.
    """
    if not isinstance(instance_type, str):
        return None
    bare = instance_type[3:] if instance_type.startswith('ml.') else instance_type
    for p in patterns:
        if fnmatch.fnmatchcase(bare, p):
            return p
    return None


@register_filter('unusual-instance-type', ['ec2', 'sagemaker-notebook'])
class UnusualInstanceType(Filter):
    """Instances whose type matches one of ``patterns`` (shell-style) (X6).

    Crypto-mining favours GPU, accelerator and very large types; the pack's
    ``unusual_instance_types`` setting lists them. c7n's value filter takes
    one glob, not a list, hence this filter. Annotates
    ``c7n:unusual-instance-type`` with the pattern that matched. SageMaker
    notebook types (``ml.p3.2xlarge``) are matched without their ``ml.``
    prefix.

    :example:

    .. code-block:: yaml

        policies:
          - name: x6-unusual-instance-types
            resource: aws.ec2
            filters:
              - type: unusual-instance-type
                patterns: '{unusual_instance_types}'
    """

    schema = type_schema(
        'unusual-instance-type', required=['patterns'],
        patterns={'oneOf': [{'type': 'array', 'items': {'type': 'string'}},
                            PLACEHOLDER_SCHEMA]})
    permissions = ()  # reads the resource as described; no further calls

    def validate(self):
        patterns = self.data.get('patterns')
        if isinstance(patterns, str):
            return self  # '{unusual_instance_types}' before expansion
        if not patterns or not all(isinstance(p, str) and p for p in patterns):
            raise PolicyValidationError(
                f"unusual-instance-type: patterns must be a non-empty list of instance type "
                f"patterns such as ['p4d.*', 'g5.*'], got {patterns!r}")
        return self

    def process(self, resources, event=None):
        patterns = self.data['patterns']
        if isinstance(patterns, str):
            raise PolicyExecutionError(
                f"unusual-instance-type: patterns {patterns!r} was not expanded; "
                f"run with --vars-file policies/vars.yml")
        results = []
        for r in resources:
            matched = type_patterns_match(r.get('InstanceType'), patterns)
            if matched:
                r['c7n:unusual-instance-type'] = matched
                results.append(r)
        return results
