"""Access granted to accounts outside ``trusted_accounts`` (R4.2).

Attackers keep access, or take data out, by sharing what they can reach:

- EBS snapshots, AMIs and RDS (cluster) snapshots shared with their own
  account, or made public (``shared-with-untrusted``);
- Lambda functions whose resource policy lets ``*`` or a foreign account
  invoke them (``policy-grants-untrusted``), or that load a layer published
  by a foreign account (``foreign-layers``).

c7n has ``cross-account`` filters for these, but they log an API error and
carry on, so a snapshot whose permissions could not be read looks unshared,
and a Lambda function whose policy could not be read drops out of the
results. Here an API error fails the policy run, which then shows as
errored. The Lambda filter reuses c7n's policy checker (conditions such as
``aws:SourceAccount`` are understood the same way).
"""
from c7n.exceptions import PolicyValidationError
from c7n.filters import Filter
from c7n.filters.iamaccess import CrossAccountAccessFilter
from c7n.utils import local_session, type_schema

from custodian_ext.registry import register_filter
from custodian_ext.settings import PLACEHOLDER_SCHEMA

TRUSTED_SCHEMA = {'oneOf': [
    {'type': 'array', 'items': {'type': 'string'}},
    PLACEHOLDER_SCHEMA,  # '{trusted_accounts}' before expansion
]}

PUBLIC = 'all'


def arn_account(arn):
    parts = (arn or '').split(':')
    return parts[4] if len(parts) > 5 else None


def trusted_accounts(filter_):
    trusted = filter_.data.get('trusted', [])
    if isinstance(trusted, str):
        raise PolicyValidationError(
            f"{filter_.data['type']}: trusted {trusted!r} was not expanded; run with "
            f"--vars-file policies/vars.yml")
    accounts = set(trusted)
    if filter_.manager.config.account_id:
        accounts.add(filter_.manager.config.account_id)
    return accounts


def _validate_trusted(filter_):
    trusted = filter_.data.get('trusted', [])
    if isinstance(trusted, list) and not all(isinstance(a, str) for a in trusted):
        raise PolicyValidationError(
            f"{filter_.data['type']}: trusted must be a list of quoted 12-digit account ids, "
            f"got {trusted!r}")


def _ec2_grants(permissions):
    out = []
    for g in permissions:
        out.append(g.get('Group') or g.get('UserId') or g.get('OrganizationArn') or
                   g.get('OrganizationalUnitArn'))
    return [g for g in out if g]


def _rds_grants(attributes):
    return [v for a in attributes if a.get('AttributeName') == 'restore'
            for v in a.get('AttributeValues') or ()]


# resource type -> (service, how to read its share permissions, permission)
SHARES = {
    'ebs-snapshot': ('ec2', 'ec2:DescribeSnapshotAttribute', lambda c, r: _ec2_grants(
        c.describe_snapshot_attribute(
            SnapshotId=r['SnapshotId'],
            Attribute='createVolumePermission')['CreateVolumePermissions'])),
    'ami': ('ec2', 'ec2:DescribeImageAttribute', lambda c, r: _ec2_grants(
        c.describe_image_attribute(
            ImageId=r['ImageId'], Attribute='launchPermission')['LaunchPermissions'])),
    'rds-snapshot': ('rds', 'rds:DescribeDBSnapshotAttributes', lambda c, r: _rds_grants(
        c.describe_db_snapshot_attributes(
            DBSnapshotIdentifier=r['DBSnapshotIdentifier'])[
            'DBSnapshotAttributesResult']['DBSnapshotAttributes'])),
    'rds-cluster-snapshot': ('rds', 'rds:DescribeDBClusterSnapshotAttributes',
                             lambda c, r: _rds_grants(c.describe_db_cluster_snapshot_attributes(
                                 DBClusterSnapshotIdentifier=r['DBClusterSnapshotIdentifier'])[
                                 'DBClusterSnapshotAttributesResult'][
                                 'DBClusterSnapshotAttributes'])),
}


def untrusted_grantees(grantees, trusted):
    """Grantees outside ``trusted``: 'all' (public), account ids, and org/OU ARNs.

    An AMI shared with an organization or OU is trusted when the
    organization's management account (the account in the ARN) is.
    """
    out = []
    for g in grantees:
        if g == PUBLIC:
            out.append(g)
        elif g.startswith('arn:'):
            if arn_account(g) not in trusted:
                out.append(g)
        elif g not in trusted:
            out.append(g)
    return sorted(set(out))


@register_filter('shared-with-untrusted', list(SHARES))
class SharedWithUntrusted(Filter):
    """Snapshots and images shared with accounts outside ``trusted``, or public.

    Reads each resource's share permissions (createVolumePermission,
    launchPermission, the RDS ``restore`` attribute): one call per resource,
    as AWS has no batch form. Put cheap filters first (an RDS snapshot can
    only be shared when it is ``manual``). The account itself is always
    trusted. Annotates ``c7n:shared-with`` (``public``, ``accounts``) and, as
    c7n's own filters do, ``c7n:CrossAccountViolations``.

    :example:

    .. code-block:: yaml

        policies:
          - name: r4-2-ebs-snapshot-shared
            resource: aws.ebs-snapshot
            filters:
              - type: shared-with-untrusted
                trusted: '{trusted_accounts}'
    """

    schema = type_schema('shared-with-untrusted', trusted=TRUSTED_SCHEMA)
    annotation_key = 'c7n:shared-with'

    def get_permissions(self):
        return (SHARES[self.manager.type][1],)

    def validate(self):
        _validate_trusted(self)
        return self

    def process(self, resources, event=None):
        trusted = trusted_accounts(self)
        service, _, read = SHARES[self.manager.type]
        client = local_session(self.manager.session_factory).client(service)

        def check(r):
            grantees = self.manager.retry(read, client, r)
            bad = untrusted_grantees(grantees, trusted)
            if not bad:
                return None
            r[self.annotation_key] = {
                'public': PUBLIC in bad, 'accounts': [g for g in bad if g != PUBLIC]}
            r['c7n:CrossAccountViolations'] = bad
            return r

        # map() re-raises the first error: an unreadable share is never "not shared".
        with self.executor_factory(max_workers=3) as w:
            return [r for r in w.map(check, resources) if r is not None]


def summarize_statements(statements):
    """The principals (and source accounts) that the violating statements let in."""
    who = set()
    for s in statements:
        principal = s.get('Principal')
        if isinstance(principal, str):
            who.add(principal)
        elif isinstance(principal, dict):
            for kind, value in principal.items():
                values = [value] if isinstance(value, str) else value
                if kind == 'Service':
                    for cond in (s.get('Condition') or {}).values():
                        for k, v in cond.items():
                            if k.lower() in ('aws:sourceaccount', 'aws:sourcearn',
                                             'aws:sourceowner'):
                                vs = [v] if isinstance(v, str) else v
                                who.update(f"{values[0]} from {x}" for x in vs)
                else:
                    who.update(values)
        elif 'NotPrincipal' in s:
            who.add('NotPrincipal (everyone else)')
    return sorted(who)


@register_filter('policy-grants-untrusted', ['lambda'])
class PolicyGrantsUntrusted(CrossAccountAccessFilter):
    """Lambda functions whose resource policy lets ``*`` or an untrusted account in.

    c7n's policy checker decides (service principals limited by
    ``aws:SourceAccount``/``aws:SourceArn`` to trusted accounts are fine; a
    public function URL, ``Principal: *`` with ``lambda:FunctionUrlAuthType:
    NONE``, is not). Unlike c7n's ``cross-account`` on ``aws.lambda``, a
    GetPolicy error fails the run instead of dropping the function.
    Annotates ``c7n:untrusted-principals`` and c7n's
    ``CrossAccountViolations`` (the statements).

    :example:

    .. code-block:: yaml

        policies:
          - name: r4-2-lambda-public-or-foreign
            resource: aws.lambda
            filters:
              - type: policy-grants-untrusted
                trusted: '{trusted_accounts}'
    """

    schema = type_schema('policy-grants-untrusted', trusted=TRUSTED_SCHEMA)
    permissions = ('lambda:GetPolicy',)
    policy_attribute = 'c7n:Policy'

    def validate(self):
        _validate_trusted(self)
        return self

    def get_accounts(self):
        return trusted_accounts(self)

    def fetch_policy(self, client, r):
        if 'c7n:Policy' in r:
            return
        try:
            r['c7n:Policy'] = self.manager.retry(
                client.get_policy, FunctionName=r['FunctionArn'])['Policy']
        except client.exceptions.ResourceNotFoundException:
            r['c7n:Policy'] = None  # no resource policy: nobody else may invoke it

    def process(self, resources, event=None):
        client = local_session(self.manager.session_factory).client('lambda')
        with self.executor_factory(max_workers=3) as w:
            list(w.map(lambda r: self.fetch_policy(client, r), resources))
        matched = super().process(resources, event)
        for r in matched:
            r['c7n:untrusted-principals'] = summarize_statements(
                r.get(self.annotation_key) or ())
        return matched


@register_filter('foreign-layers', ['lambda'])
class ForeignLayers(Filter):
    """Lambda functions that load a layer published by an untrusted account.

    A layer runs inside the function with its role; a layer from an
    attacker's account is a backdoor. Publishers of layers you rely on
    (vendors, AWS-managed extensions) go in ``trusted``. No API calls: the
    layer ARNs come with ListFunctions. Annotates ``c7n:foreign-layers``.

    :example:

    .. code-block:: yaml

        policies:
          - name: r4-2-lambda-foreign-layer
            resource: aws.lambda
            filters:
              - type: foreign-layers
                trusted: '{trusted_accounts}'
    """

    schema = type_schema('foreign-layers', trusted=TRUSTED_SCHEMA)
    permissions = ()  # the layer ARNs come with lambda:ListFunctions
    annotation_key = 'c7n:foreign-layers'

    def validate(self):
        _validate_trusted(self)
        return self

    def process(self, resources, event=None):
        trusted = trusted_accounts(self)
        results = []
        for r in resources:
            foreign = [layer['Arn'] for layer in r.get('Layers') or ()
                       if arn_account(layer.get('Arn')) not in trusted]
            if foreign:
                r[self.annotation_key] = foreign
                results.append(r)
        return results
