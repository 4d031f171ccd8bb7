"""X3: keep an IAM user's details as evidence before Custodian's ``delete`` removes it.

``export-user`` writes everything the user holds to the evidence bucket (or
the policy output). Put it before ``delete`` in the same policy: if any
export fails, the action fails after the last user, the policy stops, and
``delete`` does not run for anyone.
"""
from botocore.exceptions import ClientError
from c7n.query import RetryPageIterator
from c7n.utils import type_schema

from custodian_ext.actions.core import DONE, PackAction, result
from custodian_ext.actions.evidence import EVIDENCE_SCHEMA, EvidenceStore, evidence_permissions
from custodian_ext.actions.passwords import check_known_users, is_known_user
from custodian_ext.registry import register_action
from custodian_ext.settings import or_placeholder


def _pages(action, client, operation, key, **params):
    paginator = client.get_paginator(operation)
    paginator.PAGE_ITERATOR_CLS = RetryPageIterator  # throttling is retried per page
    out = []
    for page in paginator.paginate(**params):
        out.extend(page.get(key, ()))
    return out


@register_action('export-user', ['iam-user'])
class ExportUser(PackAction):
    """Write an IAM user's details as evidence, before it is deleted (X3).

    Exported: the user (with tags), attached managed policies, inline
    policies with their documents, groups, access keys with their last use,
    the login profile, MFA devices, signing certificates, SSH public keys
    and service-specific credentials. Any API error fails the export for
    that user, and then the policy: Custodian's ``delete`` after it does not
    run. ``known-users`` guards as in ``remove-console-access``: listed users
    are never exported for deletion (their result fails), and an empty list
    fails the action. The identity running the policy fails the same way.

    :example:

    .. code-block:: yaml

        policies:
          - name: x3-delete-unknown-users
            resource: aws.iam-user
            filters:
              - type: unknown-principal
                known: '{known_users}'
            actions:
              - type: export-user
                known-users: '{known_users}'
                incident-id: '{incident_id}'
                evidence-bucket: '{evidence_bucket}'
              - delete
    """

    schema = type_schema(
        'export-user', required=['known-users'],
        **{'known-users': or_placeholder({'type': 'array', 'items': {'type': 'string'}})},
        **EVIDENCE_SCHEMA)
    permissions = (
        'iam:ListAttachedUserPolicies', 'iam:ListUserPolicies', 'iam:GetUserPolicy',
        'iam:ListGroupsForUser', 'iam:ListAccessKeys', 'iam:GetAccessKeyLastUsed',
        'iam:GetLoginProfile', 'iam:ListMFADevices', 'iam:ListSigningCertificates',
        'iam:ListSSHPublicKeys', 'iam:ListServiceSpecificCredentials')

    def get_permissions(self):
        return self.permissions + evidence_permissions(self.data)

    def process(self, resources):
        check_known_users(self)
        self.iam = self.client('iam')
        self.evidence = EvidenceStore(self)
        # A user running the pack with its own keys must not delete itself.
        self.caller = self.call(self.client('sts').get_caller_identity).get('Arn')
        return super().process(resources)

    def process_resource(self, r):
        user = r['UserName']
        if is_known_user(self, user):
            # Fails, so that a delete after this action cannot run.
            raise RuntimeError(f'{user} is in known_users; refusing to export it for deletion')
        if r.get('Arn') == self.caller:
            raise RuntimeError(f'{user} is the identity running this policy; refusing to export '
                               f'it for deletion')
        location = self.evidence.put('iam-user', user, self.details(r))
        return result(user, DONE, 'exported', evidence=location)

    def details(self, r):
        iam, user = self.iam, r['UserName']
        call = self.call
        doc = {'User': r}
        doc['AttachedPolicies'] = _pages(self, iam, 'list_attached_user_policies',
                                         'AttachedPolicies', UserName=user)
        doc['InlinePolicies'] = {
            name: call(iam.get_user_policy, UserName=user, PolicyName=name)['PolicyDocument']
            for name in _pages(self, iam, 'list_user_policies', 'PolicyNames', UserName=user)}
        doc['Groups'] = _pages(self, iam, 'list_groups_for_user', 'Groups', UserName=user)
        keys = _pages(self, iam, 'list_access_keys', 'AccessKeyMetadata', UserName=user)
        for k in keys:
            k['AccessKeyLastUsed'] = call(iam.get_access_key_last_used,
                                          AccessKeyId=k['AccessKeyId']).get('AccessKeyLastUsed')
        doc['AccessKeys'] = keys
        try:
            doc['LoginProfile'] = call(iam.get_login_profile, UserName=user)['LoginProfile']
        except ClientError as e:
            if e.response['Error']['Code'] != 'NoSuchEntity':
                raise
            doc['LoginProfile'] = None
        doc['MFADevices'] = _pages(self, iam, 'list_mfa_devices', 'MFADevices', UserName=user)
        doc['SigningCertificates'] = _pages(self, iam, 'list_signing_certificates', 'Certificates',
                                            UserName=user)
        doc['SSHPublicKeys'] = _pages(self, iam, 'list_ssh_public_keys', 'SSHPublicKeys',
                                      UserName=user)
        doc['ServiceSpecificCredentials'] = call(
            iam.list_service_specific_credentials, UserName=user
        ).get('ServiceSpecificCredentials', [])
        return doc
