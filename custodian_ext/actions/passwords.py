"""X4 console passwords: force a change for users you keep, remove it for the others.

- ``require-password-reset``: the user must choose a new password at next
  sign-in. With ``randomize: true`` the current password is also replaced
  by a random one that is never stored or shown, so whoever knows the old
  password (the attacker too) cannot sign in and pick the new one; an
  administrator then sets a temporary password for the real user.
- ``remove-console-access``: delete the login profile (the console
  password). Access keys are not affected.
"""
import fnmatch
import secrets
import string

from botocore.exceptions import ClientError
from c7n.exceptions import PolicyExecutionError
from c7n.utils import type_schema

from custodian_ext.actions.core import DONE, SKIPPED, PackAction, result
from custodian_ext.filters.options import flatten
from custodian_ext.registry import register_action
from custodian_ext.settings import is_placeholder, or_placeholder


def random_password(length):
    """A password that meets any IAM password policy up to ``length`` characters."""
    classes = (string.ascii_uppercase, string.ascii_lowercase, string.digits,
               '!@#$%^&*()_+-=[]{}|')
    chars = [secrets.choice(c) for c in classes]
    alphabet = ''.join(classes)
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return ''.join(chars)


@register_action('require-password-reset', ['iam-user'])
class RequirePasswordReset(PackAction):
    """Require the user to set a new console password at next sign-in (X4).

    Updates the login profile with ``PasswordResetRequired``; with
    ``randomize: true`` it also replaces the password with a random one
    (never stored or shown), which locks out anyone who knows the old one.
    Users without a console password are skipped.

    :example:

    .. code-block:: yaml

        policies:
          - name: x4-require-password-reset
            resource: aws.iam-user
            filters:
              - not:
                  - type: unknown-principal
                    known: '{known_users}'
              - type: login-profile
            actions:
              - type: require-password-reset
                randomize: true
    """

    schema = type_schema('require-password-reset', randomize={'type': 'boolean'})
    permissions = ('iam:UpdateLoginProfile',)

    def get_permissions(self):
        return self.permissions + (('iam:GetAccountPasswordPolicy',)
                                   if self.data.get('randomize') else ())

    def process(self, resources):
        self.iam = self.client('iam')
        self.length = 32
        if self.data.get('randomize') and resources:
            try:
                policy = self.call(self.iam.get_account_password_policy)['PasswordPolicy']
                self.length = max(self.length, policy.get('MinimumPasswordLength', 0))
            except ClientError as e:
                if e.response['Error']['Code'] != 'NoSuchEntity':  # no policy: IAM defaults
                    raise
        return super().process(resources)

    def process_resource(self, r):
        user = r['UserName']
        params = {'UserName': user, 'PasswordResetRequired': True}
        if self.data.get('randomize'):
            params['Password'] = random_password(self.length)
        try:
            self.call(self.iam.update_login_profile, **params)
        except ClientError as e:
            if e.response['Error']['Code'] == 'NoSuchEntity':
                return result(user, SKIPPED, 'the user has no console password')
            raise
        return result(user, DONE, 'password replaced with a random one; reset required at next '
                                  'sign-in' if self.data.get('randomize') else
                                  'reset required at next sign-in',
                      randomized=bool(self.data.get('randomize')))


@register_action('remove-console-access', ['iam-user'])
class RemoveConsoleAccess(PackAction):
    """Delete the user's console password (login profile) (X4).

    For users not in ``known_users``. ``known-users`` repeats that list as a
    guard: listed users are never touched, and the action fails (the policy
    errors, other policies still run) while the list is empty, because "not
    in known_users" would then be every user. The result keeps the login
    profile's creation date.

    :example:

    .. code-block:: yaml

        policies:
          - name: x4-remove-console-access
            resource: aws.iam-user
            filters:
              - type: unknown-principal
                known: '{known_users}'
              - type: login-profile
            actions:
              - type: remove-console-access
                known-users: '{known_users}'
    """

    schema = type_schema(
        'remove-console-access', required=['known-users'],
        **{'known-users': or_placeholder({'type': 'array', 'items': {'type': 'string'}})})
    permissions = ('iam:GetLoginProfile', 'iam:DeleteLoginProfile')

    def process(self, resources):
        check_known_users(self)
        self.iam = self.client('iam')
        return super().process(resources)

    def process_resource(self, r):
        user = r['UserName']
        if is_known_user(self, user):
            return result(user, SKIPPED, 'listed in known_users')
        try:
            profile = self.call(self.iam.get_login_profile, UserName=user)['LoginProfile']
            self.call(self.iam.delete_login_profile, UserName=user)
        except ClientError as e:
            if e.response['Error']['Code'] == 'NoSuchEntity':
                return result(user, SKIPPED, 'the user has no console password')
            raise
        return result(user, DONE, 'console password removed', login_profile=profile)


def is_known_user(action, user):
    """``user`` matches ``known-users`` as the detect filter counts it (names or patterns)."""
    return any(fnmatch.fnmatchcase(user, p) for p in flatten(action.data['known-users']))


def check_known_users(action):
    """Refuse an empty ``known-users`` list: the filter would then match every user.

    Checked when the action runs, not in validate(): `custodian run` stops
    every policy when one fails validation, and the other respond policies
    (X1 keys, X7 instances) do not need known_users.
    """
    value = action.data.get('known-users')
    if is_placeholder(value):
        raise PolicyExecutionError(f'{action.type}: known-users is {value}; run with --vars-file')
    if not value:
        raise PolicyExecutionError(
            f'{action.type}: known_users is empty, so every user counts as unknown; list the '
            f'users you keep in policies/vars.yml (known_users) first')
