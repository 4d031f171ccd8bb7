"""ECS clusters created or put to new use since the incident (X6).

ECS reports no creation time for a cluster. What it does date is the
cluster's contents: each service's ``createdAt``, each container
instance's ``registeredAt`` and each task's ``createdAt``. A cluster
whose oldest dated content is at or after the incident was, as far as the
API can tell, created after it; a service created since the incident in an
older cluster is the other way attackers run miners on ECS.
"""
from c7n.filters import Filter
from c7n.query import RetryPageIterator
from c7n.utils import chunks, local_session, type_schema

from custodian_ext.filters.timeutil import as_utc, iso, since_value
from custodian_ext.registry import register_filter


def _pages(client, operation, key, **params):
    paginator = client.get_paginator(operation)
    paginator.PAGE_ITERATOR_CLS = RetryPageIterator
    for page in paginator.paginate(**params):
        yield from page.get(key, ())


@register_filter('new-activity', ['ecs'])
class ClusterNewActivity(Filter):
    """ECS clusters created, or given a new service, at or after ``since``.

    A cluster matches when

    - a service in it was created at or after ``since``; or
    - nothing in it predates ``since``: its oldest service, container
      instance or running task is at or after ``since`` (the cluster was
      very probably created after it).

    An empty cluster cannot be dated and is not matched; it runs nothing.
    A cluster that runs only scheduled (standalone) tasks is dated by its
    current tasks and so looks new: review it and move on.

    Cost: one ListServices per cluster, plus one DescribeServices per 10
    services; container instances and tasks are listed only when no service
    predates ``since``. Annotates ``c7n:cluster-activity``.

    :example:

    .. code-block:: yaml

        policies:
          - name: x6-new-ecs-clusters
            resource: aws.ecs
            filters:
              - type: new-activity
                since: '{incident_start}'
    """

    schema = type_schema('new-activity', required=['since'], since={'type': 'string'})
    permissions = ('ecs:ListServices', 'ecs:DescribeServices', 'ecs:ListContainerInstances',
                   'ecs:DescribeContainerInstances', 'ecs:ListTasks', 'ecs:DescribeTasks')
    annotation_key = 'c7n:cluster-activity'

    def validate(self):
        since_value(self)
        return self

    def process(self, resources, event=None):
        since = since_value(self)
        client = local_session(self.manager.session_factory).client('ecs')
        return [r for r in resources if self.check(client, r, since)]

    def dated(self, client, cluster):
        """(time, what) for the cluster's contents, services first, lazily."""
        retry = self.manager.retry
        arns = list(_pages(client, 'list_services', 'serviceArns', cluster=cluster))
        for batch in chunks(arns, 10):
            for s in retry(client.describe_services, cluster=cluster,
                           services=batch)['services']:
                yield 'service', s.get('serviceName'), as_utc(s.get('createdAt'))
        yield 'end-of-services', None, None
        arns = list(_pages(client, 'list_container_instances', 'containerInstanceArns',
                           cluster=cluster))
        for batch in chunks(arns, 100):
            for ci in retry(client.describe_container_instances, cluster=cluster,
                            containerInstances=batch)['containerInstances']:
                yield ('container instance', ci.get('ec2InstanceId') or
                       ci.get('containerInstanceArn'), as_utc(ci.get('registeredAt')))
        arns = list(_pages(client, 'list_tasks', 'taskArns', cluster=cluster))
        for batch in chunks(arns, 100):
            for t in retry(client.describe_tasks, cluster=cluster, tasks=batch)['tasks']:
                yield 'task', t.get('taskArn', '').rsplit('/', 1)[-1], as_utc(t.get('createdAt'))

    def check(self, client, cluster, since):
        new_services, first = [], None
        for kind, name, when in self.dated(client, cluster['clusterArn']):
            if kind == 'end-of-services':
                if first is not None and first[0] < since:
                    break  # an older service: the cluster predates the incident
                continue
            if when is None:
                continue
            if kind == 'service' and when >= since:
                new_services.append(name)
            if first is None or when < first[0]:
                first = (when, f"{kind} {name}")
            if kind != 'service' and first[0] < since:
                break
        created_after = first is not None and first[0] >= since
        if not (new_services or created_after):
            return False
        cluster[self.annotation_key] = {
            'first_activity': iso(first[0]),
            'first_activity_of': first[1],
            'nothing_older': created_after,
            'new_services': new_services,
        }
        return True
