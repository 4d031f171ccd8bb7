"""The account's alternate contacts (X9).

AWS sends security notices (such as a leaked access key) to the security
alternate contact and the root email. An attacker who changes the security
or billing contact to their own address reads those notices first; a missing
contact means nobody gets them.
"""
from botocore.exceptions import ClientError
from c7n.exceptions import PolicyValidationError
from c7n.filters import Filter
from c7n.utils import local_session, type_schema

from custodian_ext.registry import register_filter
from custodian_ext.settings import is_placeholder

TYPES = ('SECURITY', 'BILLING', 'OPERATIONS')


@register_filter('alternate-contacts', ['account'])
class AlternateContacts(Filter):
    """Alternate contacts that are missing, or differ from the expected ones (X9).

    ``check: missing`` matches when any of ``types`` (default all three) is
    not set. ``check: differs`` matches when a contact listed in ``expected``
    (a mapping of ``security`` / ``billing`` / ``operations`` to an email
    address, compared without regard to case) is set to another address.
    ``c7n:alternate-contacts`` lists each problem with the contact's name,
    email and phone as AWS has them.

    :example:

    .. code-block:: yaml

        policies:
          - name: x9-alternate-contacts-differ
            resource: aws.account
            filters:
              - type: alternate-contacts
                check: differs
                expected: '{expected_contacts}'
    """

    schema = type_schema(
        'alternate-contacts', required=['check'],
        check={'enum': ['missing', 'differs']},
        types={'type': 'array', 'items': {'enum': list(TYPES)}},
        expected={'oneOf': [{'type': 'object'}, {'type': 'string'}]})
    schema_alias = False
    permissions = ('account:GetAlternateContact',)
    annotation_key = 'c7n:alternate-contacts'

    def validate(self):
        expected = self.data.get('expected')
        if isinstance(expected, str) and not is_placeholder(expected):
            raise PolicyValidationError(
                f"{self.type}: expected must be a mapping such as "
                f"{{security: sec@example.com}}, got {expected!r}")
        if isinstance(expected, dict):
            for k in expected:
                if k.upper() not in TYPES:
                    raise PolicyValidationError(
                        f"{self.type}: expected.{k}: use security, billing or operations")
        if self.data['check'] == 'differs' and 'expected' not in self.data:
            raise PolicyValidationError(f"{self.type}: check differs needs 'expected'")
        return self

    def contact(self, client, ctype):
        try:
            return self.manager.retry(
                client.get_alternate_contact, AlternateContactType=ctype)['AlternateContact']
        except ClientError as e:
            if e.response['Error']['Code'] == 'ResourceNotFoundException':
                return None
            raise

    def process(self, resources, event=None):
        client = local_session(self.manager.session_factory).client('account')
        problems = []
        if self.data['check'] == 'missing':
            for ctype in self.data.get('types', TYPES):
                if self.contact(client, ctype) is None:
                    problems.append({'Type': ctype, 'Problem': 'missing'})
        else:
            expected = {k.upper(): v for k, v in (self.data.get('expected') or {}).items()}
            for ctype, email in sorted(expected.items()):
                c = self.contact(client, ctype)
                if c is not None and (c.get('EmailAddress') or '').lower() != email.lower():
                    problems.append({'Type': ctype, 'Problem': 'differs',
                                     'EmailAddress': c.get('EmailAddress'), 'Expected': email,
                                     'Name': c.get('Name'), 'PhoneNumber': c.get('PhoneNumber'),
                                     'Title': c.get('Title')})
        if not problems:
            return []
        for r in resources:
            r[self.annotation_key] = problems
        return resources
