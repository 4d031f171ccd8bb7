"""X1, in real time: record on the user which AWS notice the pack acted on."""
import re

from c7n.utils import type_schema

from custodian_ext.actions.core import DONE, SKIPPED, PackAction, result
from custodian_ext.filters.exposed_key import ExposedKey
from custodian_ext.registry import register_action

TAG_PREFIX = 'custodian-ext:x1-notice-'
SOURCES = {'health': 'aws.health', 'trusted-advisor': 'aws.trustedadvisor'}
# IAM tag values: letters, digits, spaces and _ . : / = + - @, at most 256.
_UNSAFE = re.compile(r'[^\w .:/=+\-@]')


def tag_value(text):
    return _UNSAFE.sub('_', str(text))[:256]


def notice_tags(notice):
    tags = {'source': SOURCES.get(notice.get('kind'), notice.get('kind')),
            'id': notice.get('event_id'), 'time': notice.get('time'),
            'ref': notice.get('reference')}
    return [{'Key': TAG_PREFIX + k, 'Value': tag_value(v)} for k, v in tags.items() if v]


@register_action('tag-notice', ['iam-user'])
class TagNotice(PackAction):
    """Tag the user with the AWS notice that named its key: source, event id, time (X1).

    Reads ``c7n:exposed-key-notice`` (set by the ``exposed-key`` filter) and
    writes ``custodian-ext:x1-notice-source`` (``aws.health`` or
    ``aws.trustedadvisor``), ``-id`` (the EventBridge event id), ``-time``
    (when AWS sent it) and ``-ref`` (the Health event ARN, or the Trusted
    Advisor support case id), so the user shows why it was contained.

    :example:

    .. code-block:: yaml

        policies:
          - name: x1-react-tag-notified-user
            resource: aws.iam-user
            mode:
              type: exposed-key-notice
              notice: health
              role: '{react_role}'
              handler: custodian_ext.handler.run
              packages: [custodian_ext, yaml]
            filters:
              - exposed-key
            actions:
              - tag-notice
    """

    schema = type_schema('tag-notice')
    permissions = ('iam:TagUser',)

    def validate(self):
        return self.require_filter(ExposedKey, 'records the notice the exposed-key filter read')

    def process(self, resources):
        self.iam = self.client('iam')
        return super().process(resources)

    def process_resource(self, r):
        user = r['UserName']
        tags = notice_tags(r.get(ExposedKey.notice_key) or {})
        if not tags:
            return result(user, SKIPPED, 'no notice recorded by the exposed-key filter')
        self.call(self.iam.tag_user, UserName=user, Tags=tags)
        return result(user, DONE, 'tagged with the notice',
                      tags={t['Key']: t['Value'] for t in tags})
