"""AWS Organizations: new or unknown member accounts, an account that left (R4.3).

Attackers with management-account access create or invite accounts they then
use out of sight (fraudulent linked accounts); attackers in a member account
take it out of the organization to escape its service control policies and
organization trail.

Only the management account (or a delegated administrator) can list an
organization's accounts. Run in a member account, the member-accounts check
cannot apply: the policy is then skipped with that reason (``skipped.json``
and a warning), not errored, since sweeping every account of an organization
is the normal use. Any other error is an error.
"""

from botocore.exceptions import ClientError
from c7n.exceptions import PolicyValidationError
from c7n.filters import Filter
from c7n.query import RetryPageIterator
from c7n.utils import local_session, type_schema

import custodian_ext.skips as skips
from custodian_ext.filters.options import aware, check_timestamp, flatten
from custodian_ext.registry import register_filter


def _iso(value):
    return aware(value).strftime('%Y-%m-%dT%H:%M:%SZ') if value else None


ACCOUNTS_SCHEMA = {'oneOf': [{'type': 'string'}, {'type': 'array', 'items': {
    'oneOf': [{'type': 'string'}, {'type': 'array', 'items': {'type': 'string'}}]}}]}


@register_filter('organization-accounts', ['account'])
class OrganizationAccounts(Filter):
    """Organization membership checks (R4.3).

    ``check: member-accounts`` (in the management account or a delegated
    administrator) matches when the organization has member accounts that
    joined (created or accepted an invitation) at or after ``since``, or whose
    id is not in ``known-accounts``; ``c7n:organization-accounts`` lists them
    with name, email, status, how and when they joined.

    ``check: left-organization`` matches when this account is in
    ``known-accounts`` (so it is expected in the organization) but AWS
    Organizations says it is in no organization.

    :example:

    .. code-block:: yaml

        policies:
          - name: r4-3-new-or-unknown-member-accounts
            resource: aws.account
            filters:
              - type: organization-accounts
                check: member-accounts
                since: '{incident_start}'
                known-accounts: '{known_accounts}'
    """

    schema = type_schema(
        'organization-accounts', required=['check'],
        check={'enum': ['member-accounts', 'left-organization']},
        since={'type': 'string'},
        **{'known-accounts': ACCOUNTS_SCHEMA})
    schema_alias = False
    permissions = ('organizations:DescribeOrganization', 'organizations:ListAccounts')
    annotation_key = 'c7n:organization-accounts'

    def validate(self):
        if self.data['check'] == 'member-accounts' and 'since' not in self.data:
            raise PolicyValidationError(f"{self.type}: check member-accounts needs 'since'")
        check_timestamp(self)
        return self

    def known(self):
        v = self.data.get('known-accounts') or []
        return set(flatten(v if isinstance(v, list) else [v]))

    def organization(self, client):
        """DescribeOrganization's answer, or None when the account is in no organization."""
        try:
            return self.manager.retry(client.describe_organization)['Organization']
        except ClientError as e:
            if e.response['Error']['Code'] == 'AWSOrganizationsNotInUseException':
                return None
            raise

    def process(self, resources, event=None):
        client = local_session(self.manager.session_factory).client('organizations')
        org = self.organization(client)
        if self.data['check'] == 'left-organization':
            return self.left(resources, org)
        return self.members(resources, client, org)

    def left(self, resources, org):
        own = self.manager.config.account_id
        if org is not None or own not in self.known():
            return []
        for r in resources:
            r[self.annotation_key] = [{
                'Id': own, 'Reasons': ['listed in known_accounts but in no organization']}]
        return resources

    def members(self, resources, client, org):
        own = self.manager.config.account_id
        if org is None:
            return []
        pager = client.get_paginator('list_accounts')
        pager.PAGE_ITERATOR_CLS = RetryPageIterator
        try:
            accounts = pager.paginate().build_full_result().get('Accounts', [])
        except ClientError as e:
            if e.response['Error']['Code'] == 'AccessDeniedException' and \
                    org.get('MasterAccountId') != own:
                skips.skip_running_policy(self.manager, (
                    f"member account of organization {org.get('Id')}: only its management "
                    f"account {org.get('MasterAccountId')} or a delegated administrator can "
                    f"list member accounts; run R4.3 there"))
                return []
            raise
        since = aware(self.data['since'])
        known = self.known() | {own, org.get('MasterAccountId')}
        flagged = []
        for a in accounts:
            reasons = []
            joined = a.get('JoinedTimestamp')
            if joined and aware(joined) >= since:
                reasons.append(f"joined ({a.get('JoinedMethod', '?').lower()}) at or after "
                               f"{_iso(since)}")
            if a['Id'] not in known:
                reasons.append('not in known_accounts')
            if reasons:
                flagged.append({'Id': a['Id'], 'Name': a.get('Name'), 'Email': a.get('Email'),
                                'Status': a.get('Status'), 'JoinedMethod': a.get('JoinedMethod'),
                                'JoinedTimestamp': _iso(joined), 'Reasons': reasons})
        if not flagged:
            return []
        for r in resources:
            r[self.annotation_key] = flagged
        return resources
