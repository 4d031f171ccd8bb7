"""Who counts as a known principal in a CloudTrail event (R2.2 and the activity review).

One rule for every check that asks "was this done by someone we know?":

- AWS services, and the roles AWS itself owns and assumes (paths
  ``/aws-service-role/`` and ``/aws-reserved/``), are known;
- the account's own IAM users are known when their name matches
  ``known-users`` (shell-style patterns), sessions of its roles when the role
  name matches ``known-roles``;
- a principal of another account is known when that account is in
  ``known-accounts`` (the pack passes ``trusted_accounts`` and
  ``known_accounts``), whatever its type;
- the root user, federated users and anything else are not.
"""
import fnmatch
from dataclasses import dataclass

AWS_ROLE_PATHS = ('/aws-service-role/', '/aws-reserved/')


def matches_any(name, patterns):
    return any(fnmatch.fnmatchcase(name or '', p) for p in patterns)


@dataclass(frozen=True)
class KnownPrincipals:
    account: str          # the account the events were recorded in
    users: tuple = ()     # user name patterns
    roles: tuple = ()     # role name patterns
    accounts: tuple = ()  # other account ids

    def knows(self, principal_type, arn=None, account=None, issuer_arn=None):
        """Whether a principal, described by CloudTrail's fields, is known."""
        if principal_type == 'AWSService':
            return True
        accounts = set(self.accounts) | {self.account}
        if principal_type == 'AWSAccount':
            return account in accounts
        if account and account != self.account:
            return account in accounts
        if principal_type == 'IAMUser':
            return matches_any((arn or '').rsplit('/', 1)[-1], self.users)
        if principal_type == 'AssumedRole':
            issuer = issuer_arn or ''
            if any(p in issuer for p in AWS_ROLE_PATHS):
                return True
            return matches_any(issuer.rsplit('/', 1)[-1], self.roles)
        return False  # root, federated users, anything else

    def knows_identity(self, identity):
        """Whether the ``userIdentity`` of a CloudTrail record is a known principal."""
        identity = identity or {}
        issuer = ((identity.get('sessionContext') or {}).get('sessionIssuer') or {}).get('arn')
        return self.knows(identity.get('type'), identity.get('arn'), identity.get('accountId'),
                          issuer)
