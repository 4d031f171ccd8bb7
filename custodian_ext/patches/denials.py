"""Wrappers that make c7n's swallowed access denials errors, for the patch table.

c7n 0.9.53 catches some API errors while it adds details to resources, logs a
warning and goes on as if there were nothing to see, so a policy run without a
permission reads as clean. Found by reading c7n's resource modules, and, for
the resource types and filters the pack's policies use, by removing each
permission of ``custodian-ext permissions`` on an emulator that enforces IAM
(tests/cli/test_missing_permissions.py):

- ``c7n.resources.awslambda:get_lambda_policies`` (``cross-account`` and
  ``event-source`` on ``aws.lambda``): a denied ``lambda:GetPolicy`` leaves
  the function without its policy (then "not shared"); any other error drops
  the function. :func:`lambda_policies` raises instead; a function without a
  policy (``ResourceNotFoundException``) is dropped as before.
- ``c7n.resources.sqs:DescribeQueue.augment`` (``aws.sqs``): a denied
  ``sqs:GetQueueAttributes`` drops the queue from the resources.
  :func:`sqs_augment` raises instead; a queue deleted meanwhile is dropped as
  before.
- ``c7n.query:QueryResourceManager.get_resources`` (resources named by an
  event: c7n's event-driven modes): any API error gives no resources.
  :func:`resources_by_id` raises a denial instead (other errors as before).
  The pack's react mode no longer calls it (``custodian_ext.react``).
- ``c7n.resources.s3:BucketAssembly.assemble``: a denied bucket detail is
  recorded in ``c7n:DeniedMethods`` and left out. The pack's S3 policies put
  the ``details-readable`` filter first, which fails the run naming the denied
  actions; no patch is needed.

The pack's current policies use none of the first three (the removal test
shows no detect check swallowing a denial), so this module installs nothing:
each function is a wrapper factory, ``make(original) -> replacement``, as
``custodian_ext.patches.table`` takes them, for the day a pack policy uses one
of these paths.
"""
from concurrent.futures import as_completed

from botocore.exceptions import ClientError

DENIED = ('AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation',
          'UnauthorizedAccess', 'Forbidden', 'AuthorizationError')


def is_denied(error):
    return isinstance(error, ClientError) and error.response.get('Error', {}).get(
        'Code') in DENIED


def lambda_policies(original):
    """Target ``c7n.resources.awslambda:get_lambda_policies``."""
    def get_lambda_policies(client, executor_factory, resources, log):
        def fetch(r):
            try:
                r['c7n:Policy'] = client.get_policy(FunctionName=r['FunctionName'])['Policy']
            except client.exceptions.ResourceNotFoundException:
                return None  # no resource policy: nothing shared
            return r

        results, futures = [], {}
        with executor_factory(max_workers=3) as w:
            for r in resources:
                if 'c7n:Policy' in r:
                    results.append(r)
                    continue
                futures[w.submit(fetch, r)] = r
            for f in as_completed(futures):
                if f.exception():
                    raise f.exception()
                results.append(f.result())
        return [r for r in results if r]
    return get_lambda_policies


def sqs_augment(original):
    """Target ``c7n.resources.sqs:DescribeQueue.augment``."""
    from c7n.tags import universal_augment

    def augment(self, resources):
        client = self.manager.get_client()

        def fetch(url):
            try:
                queue = self.manager.retry(client.get_queue_attributes, QueueUrl=url,
                                           AttributeNames=['All'])['Attributes']
            except ClientError as e:
                if e.response['Error']['Code'] == 'AWS.SimpleQueueService.NonExistentQueue':
                    return None
                raise
            queue['QueueUrl'] = url
            queue['QueueName'] = queue['QueueArn'].rsplit(':', 1)[-1]
            return queue

        with self.manager.executor_factory(max_workers=2) as w:
            return universal_augment(self.manager, [q for q in w.map(fetch, resources) if q])
    return augment


def resources_by_id(original):
    """Target ``c7n.query:QueryResourceManager.get_resources``."""
    def get_resources(self, ids, cache=True, augment=True):
        if not ids:
            return []
        if cache:
            resources = self._get_cached_resources(ids)
            if resources is not None:
                return resources
        try:
            resources = self.source.get_resources(ids)
            return self.augment(resources) if augment else resources
        except ClientError as e:
            if is_denied(e):
                raise
            self.log.warning("event ids not resolved: %s error:%s", ids, e)
            return []
    return get_resources
