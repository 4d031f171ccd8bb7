"""``aws.account-region``: the account, once in every region swept.

c7n's ``aws.account`` is a global resource: ``custodian run`` and c7n-org
run its policies in the first region only. Some account-level questions are
regional, though: CloudTrail records EC2, STS and CloudTrail calls in the
region they were made in (R2.2), and IAM Roles Anywhere trust anchors are
per region (R4.2). Policies on this pseudo-resource run in every region
given, like any regional resource, and see one resource:
``{'account_id': ..., 'region': ...}``. Listing it makes no API call.
"""
from c7n.manager import resources
from c7n.query import DescribeSource, QueryResourceManager, TypeInfo
from c7n.resources.resource_map import ResourceMap

TYPE = 'account-region'


class DescribeAccountRegion(DescribeSource):

    def resources(self, query=None):
        return [self.get()]

    def get_resources(self, resource_ids, cache=True):
        return [self.get()]

    def get(self):
        config = self.manager.config
        return {'account_id': config.account_id, 'region': config.region}

    def augment(self, resources):
        return resources


@resources.register(TYPE)
class AccountRegion(QueryResourceManager):
    """The account in one region. Filters: ``cloudtrail-events``,
    ``roles-anywhere-trust-anchors``.

    :example:

    .. code-block:: yaml

        policies:
          - name: r2-2-trail-tampering-since-incident
            resource: aws.account-region
            filters:
              - type: cloudtrail-events
                since: '{incident_start}'
                events: [StopLogging, DeleteTrail]
    """

    class resource_type(TypeInfo):
        # CloudTrail is in every region, so c7n runs these policies in every region swept.
        service = 'cloudtrail'
        id = 'account_id'
        name = 'account_id'
        arn = False
        filter_name = None
        global_resource = False
        cfn_type = None

    source_mapping = {'describe': DescribeAccountRegion}

    @classmethod
    def get_permissions(cls):
        return ()

    def get_model(self):
        return self.resource_type


# c7n loads resource types through this map (``load_resources``); list ours.
ResourceMap.setdefault(f'aws.{TYPE}', AccountRegion)
