"""Trusted Advisor's "Exposed Access Keys" check (R3.2).

AWS scans public code repositories for access keys and flags the ones it
finds, with the fraud it suspects. The AWS Support API that reads the check
needs a Business, Enterprise On-Ramp or Enterprise support plan; without one
it answers SubscriptionRequiredException. That is not an error of the sweep:
the policy is then skipped, visibly (``skipped.json`` with the reason, and a
warning in the log). Any other error is an error.
"""
from botocore.exceptions import ClientError
from c7n.filters import Filter
from c7n.utils import get_support_region, local_session, type_schema

import custodian_ext.skips as skips
from custodian_ext.registry import register_filter

# Trusted Advisor check id of "Exposed Access Keys" (Security category), and the
# columns of its flagged resources' metadata, from the Trusted Advisor check reference.
CHECK_ID = '12Fnkpl8Y5'
COLUMNS = ('AccessKeyId', 'UserName', 'FraudType', 'CaseId', 'TimeUpdated', 'Location',
           'Deadline', 'UsageUSDPerDay')
NO_PLAN = ('no Business or Enterprise support plan: the AWS Support API answered '
           'SubscriptionRequiredException, so Trusted Advisor cannot be read; check the '
           'Exposed Access Keys notices in the AWS Health dashboard and support cases instead')


@register_filter('exposed-access-keys', ['account'])
class ExposedAccessKeys(Filter):
    """The account has access keys that Trusted Advisor flags as exposed (R3.2).

    ``c7n:exposed-access-keys`` lists each flagged key: key id, user, fraud
    type, support case, when AWS updated it, where it was found, the deadline
    AWS set, and the suspected usage.

    :example:

    .. code-block:: yaml

        policies:
          - name: r3-2-trusted-advisor-exposed-keys
            resource: aws.account
            filters:
              - type: exposed-access-keys
    """

    schema = type_schema('exposed-access-keys')
    permissions = ('support:DescribeTrustedAdvisorCheckResult',)
    annotation_key = 'c7n:exposed-access-keys'

    def process(self, resources, event=None):
        client = local_session(self.manager.session_factory).client(
            'support', region_name=get_support_region(self.manager))
        keys = flagged_keys(client, self.manager.retry)
        if keys is None:
            skips.skip_running_policy(self.manager, NO_PLAN)
            return []
        if not keys:
            return []
        for r in resources:
            r[self.annotation_key] = keys
        return resources


def flagged_keys(client, retry):
    """The keys the check flags (one dict per key, ``COLUMNS`` and ``Status``).

    None when the account has no Business or Enterprise support plan
    (SubscriptionRequiredException); any other error raises.
    """
    try:
        result = retry(client.describe_trusted_advisor_check_result,
                       checkId=CHECK_ID, language='en')['result']
    except ClientError as e:
        if e.response['Error']['Code'] == 'SubscriptionRequiredException':
            return None
        raise
    keys = []
    for res in result.get('flaggedResources', ()):
        if res.get('isSuppressed') or res.get('status') == 'ok':
            continue
        meta = list(res.get('metadata') or ())
        row = dict(zip(COLUMNS, meta + [None] * (len(COLUMNS) - len(meta))))
        row['Status'] = res.get('status')
        keys.append(row)
    return keys
