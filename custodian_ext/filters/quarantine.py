"""X1: AWS's quarantine marker on IAM users whose access key leaked.

AWS marks such a user in one of two ways, and both must be recognised:

- older notices: the inline user policy ``AWSExposedCredentialPolicy_DO_NOT_REMOVE``;
- newer notices: an AWS-managed policy ``AWSCompromisedKeyQuarantine``,
  ``AWSCompromisedKeyQuarantineV2`` or ``AWSCompromisedKeyQuarantineV3``.
"""
from c7n.filters import Filter
from c7n.query import RetryPageIterator
from c7n.utils import local_session, type_schema

from custodian_ext.registry import register_filter

INLINE_MARKER = 'AWSExposedCredentialPolicy_DO_NOT_REMOVE'
MANAGED_MARKERS = (
    'AWSCompromisedKeyQuarantine',
    'AWSCompromisedKeyQuarantineV2',
    'AWSCompromisedKeyQuarantineV3',
)


def is_aws_managed(arn):
    # arn:<partition>:iam::aws:policy/<name>: a customer policy that merely
    # borrows the name is not AWS's marker.
    parts = (arn or '').split(':')
    return len(parts) >= 6 and parts[4] == 'aws'


def markers_of(user_detail):
    """The quarantine markers in one entry of GetAccountAuthorizationDetails' UserDetailList."""
    found = []
    for p in user_detail.get('UserPolicyList', ()):
        if p.get('PolicyName') == INLINE_MARKER:
            found.append({'kind': 'inline', 'PolicyName': INLINE_MARKER})
    for p in user_detail.get('AttachedManagedPolicies', ()):
        if p.get('PolicyName') in MANAGED_MARKERS and is_aws_managed(p.get('PolicyArn')):
            found.append({'kind': 'managed', 'PolicyName': p['PolicyName'],
                          'PolicyArn': p['PolicyArn']})
    return found


def quarantine_markers(manager):
    """Map user name -> markers, for the whole account, in one paginated pass.

    GetAccountAuthorizationDetails returns every user's inline policy names and
    attached managed policies together: about one call per 100 users instead of
    two per user.
    """
    cache = manager._cache
    key = {'account': manager.config.account_id, 'custodian-ext': 'quarantine-markers'}
    with cache:
        found = cache.get(key)
        if found is not None:
            return found
        client = local_session(manager.session_factory).client('iam')
        paginator = client.get_paginator('get_account_authorization_details')
        paginator.PAGE_ITERATOR_CLS = RetryPageIterator
        found = {}
        for page in paginator.paginate(Filter=['User']):
            for detail in page.get('UserDetailList', ()):
                found[detail['UserName']] = markers_of(detail)
        cache.save(key, found)
    return found


@register_filter('quarantine-marker', ['iam-user'])
class QuarantineMarker(Filter):
    """IAM users that carry AWS's exposed-key quarantine marker (X1).

    Matches the inline policy ``AWSExposedCredentialPolicy_DO_NOT_REMOVE`` and
    the AWS-managed ``AWSCompromisedKeyQuarantine`` (V1, V2, V3) policies, and
    annotates ``c7n:quarantine-markers``. ``value: false`` selects users
    without a marker.

    :example:

    .. code-block:: yaml

        policies:
          - name: x1-quarantined-user-active-keys
            resource: aws.iam-user
            filters:
              - type: quarantine-marker
              - type: access-key
                key: Status
                value: Active
    """

    schema = type_schema('quarantine-marker', value={'type': 'boolean'})
    permissions = ('iam:GetAccountAuthorizationDetails',)
    annotation_key = 'c7n:quarantine-markers'

    def process(self, resources, event=None):
        want = self.data.get('value', True)
        markers = quarantine_markers(self.manager)
        results = []
        for r in resources:
            found = markers.get(r['UserName'], [])
            if found:
                r[self.annotation_key] = found
            if bool(found) == want:
                results.append(r)
        return results
