"""Isolate an EC2 instance: swap its security groups for a forensic group (X7).

The forensic group has no inbound and no outbound rules, so the instance can
no longer reach out (exfiltration, mining pools, command and control) or be
reached, while it keeps running for memory capture or until its snapshots
complete. One forensic group per VPC and incident, found by its tag
``custodian-ext:forensic-group = <incident id>``, created when missing.

Security groups are stateful: AWS lets tracked connections that were open
before the change continue until they close or time out. Use a network ACL
for an immediate cut.
"""
from c7n.utils import type_schema

from custodian_ext.actions.core import DONE, SKIPPED, PackAction, result
from custodian_ext.actions.evidence import EVIDENCE_SCHEMA, EvidenceStore, evidence_permissions
from custodian_ext.registry import register_action

FORENSIC_TAG = 'custodian-ext:forensic-group'
ISOLATED_TAG = 'custodian-ext:isolated'

PERMISSIONS = (
    'ec2:DescribeSecurityGroups', 'ec2:CreateSecurityGroup', 'ec2:RevokeSecurityGroupEgress',
    'ec2:CreateTags', 'ec2:ModifyNetworkInterfaceAttribute')



class IsolationError(RuntimeError):
    pass


def _default_egress(rule):
    """The allow-all outbound rule AWS gives every new security group."""
    ranges = [r.get('CidrIp') for r in rule.get('IpRanges') or ()] + \
        [r.get('CidrIpv6') for r in rule.get('Ipv6Ranges') or ()]
    return (rule.get('IpProtocol') == '-1' and not rule.get('UserIdGroupPairs')
            and not rule.get('PrefixListIds') and set(ranges) <= {'0.0.0.0/0', '::/0'})


class Isolator:
    """Moves instances into their VPC's forensic group. Shared by ``isolate``
    and ``snapshot-before-terminate`` (option ``isolate``)."""

    def __init__(self, action, incident_id):
        self.action = action
        self.incident_id = incident_id or 'incident'
        self.groups = {}  # VPC id -> forensic group id, once per run

    def _tagged(self, client, vpc_id):
        return self.action.call(
            client.describe_security_groups,
            Filters=[{'Name': 'vpc-id', 'Values': [vpc_id]},
                     {'Name': f'tag:{FORENSIC_TAG}', 'Values': [self.incident_id]}])[
                'SecurityGroups']

    def find_group(self, client, vpc_id):
        """The VPC's forensic group for the incident, or None; never creates one."""
        if vpc_id in self.groups:
            return self.groups[vpc_id]
        found = self._tagged(client, vpc_id)
        return found[0]['GroupId'] if found else None

    def is_isolated(self, client, instance):
        """Every interface in the forensic group, and the instance tagged so."""
        enis = instance.get('NetworkInterfaces') or []
        tags = {t['Key']: t['Value'] for t in instance.get('Tags') or ()}
        if not enis or not instance.get('VpcId') or tags.get(ISOLATED_TAG) != self.incident_id:
            return False
        gid = self.find_group(client, instance['VpcId'])
        return bool(gid) and all([g['GroupId'] for g in e.get('Groups', ())] == [gid]
                                 for e in enis)

    def forensic_group(self, client, vpc_id):
        """The VPC's forensic group for the incident, created (rule-free) when missing.

        Two runs at once may both look for it while one creates it: the name is fixed per
        incident, so only one CreateSecurityGroup succeeds (AWS refuses the second with
        ``InvalidGroup.Duplicate``), and either run removes the allow-all egress rule AWS
        puts on a new group. Any other rule means someone changed the group: refused.
        """
        if vpc_id in self.groups:
            return self.groups[vpc_id]
        found = self._tagged(client, vpc_id)
        gid = found[0]['GroupId'] if found else self.create_group(client, vpc_id)
        self.make_rule_free(client, gid, vpc_id)
        self.groups[vpc_id] = gid
        return gid

    def create_group(self, client, vpc_id):
        from botocore.exceptions import ClientError
        name = f'custodian-ext-forensic-{self.incident_id}'
        try:
            return self.action.call(
                client.create_security_group,
                GroupName=name,
                Description=f'custodian-ext forensic isolation for incident {self.incident_id}: '
                            f'no inbound, no outbound',
                VpcId=vpc_id,
                TagSpecifications=[{'ResourceType': 'security-group', 'Tags': [
                    {'Key': FORENSIC_TAG, 'Value': self.incident_id},
                    {'Key': 'Name', 'Value': f'forensic-{self.incident_id}'}]}])['GroupId']
        except ClientError as e:
            if e.response['Error']['Code'] != 'InvalidGroup.Duplicate':
                raise
        # another run created it a moment ago
        found = self.action.call(
            client.describe_security_groups,
            Filters=[{'Name': 'vpc-id', 'Values': [vpc_id]},
                     {'Name': 'group-name', 'Values': [name]}])['SecurityGroups']
        if not found:
            raise IsolationError(f'forensic group {name} exists in {vpc_id} but cannot be read')
        return found[0]['GroupId']

    def describe(self, client, gid):
        return self.action.call(client.describe_security_groups, GroupIds=[gid])[
            'SecurityGroups'][0]

    def make_rule_free(self, client, gid, vpc_id):
        from botocore.exceptions import ClientError
        group = self.describe(client, gid)
        ingress, egress = group.get('IpPermissions') or [], group.get('IpPermissionsEgress') or []
        if ingress or any(not _default_egress(rule) for rule in egress):
            # Someone added rules: it no longer isolates anything.
            raise IsolationError(
                f"forensic group {gid} in {vpc_id} has rules; remove them "
                f"(it must allow nothing) or delete the group")
        if egress:  # the allow-all rule of a new group (IPv4, and IPv6 in a dual-stack VPC)
            try:
                self.action.call(client.revoke_security_group_egress, GroupId=gid,
                                 IpPermissions=egress)
            except ClientError as e:  # another run removed it first
                if e.response['Error']['Code'] != 'InvalidPermission.NotFound':
                    raise
        left = self.describe(client, gid)
        if left.get('IpPermissions') or left.get('IpPermissionsEgress'):
            raise IsolationError(f'could not remove the default rules of forensic group {gid}')

    def isolate(self, client, instance):
        """Move every network interface into the forensic group.

        Returns ``{'forensic_group', 'original_groups': {eni: [group ids]}}``,
        or None when the instance is already isolated.
        """
        enis = instance.get('NetworkInterfaces') or []
        vpc_id = instance.get('VpcId')
        if not enis or not vpc_id:
            raise IsolationError('instance has no VPC network interface to isolate')
        gid = self.forensic_group(client, vpc_id)
        original = {e['NetworkInterfaceId']: [g['GroupId'] for g in e.get('Groups', ())]
                    for e in enis}
        tags = {t['Key']: t['Value'] for t in instance.get('Tags') or ()}
        if all(groups == [gid] for groups in original.values()):
            if tags.get(ISOLATED_TAG) != self.incident_id:  # a run stopped before tagging
                self.action.call(client.create_tags, Resources=[instance['InstanceId']],
                                 Tags=[{'Key': ISOLATED_TAG, 'Value': self.incident_id}])
            return None
        for eni, groups in original.items():
            if groups != [gid]:
                self.action.call(client.modify_network_interface_attribute,
                                 NetworkInterfaceId=eni, Groups=[gid])
        self.action.call(client.create_tags, Resources=[instance['InstanceId']],
                         Tags=[{'Key': ISOLATED_TAG, 'Value': self.incident_id}])
        return {'forensic_group': gid, 'original_groups': original}


@register_action('isolate', ['ec2'])
class Isolate(PackAction):
    """Move an instance into a forensic security group with no rules (X7).

    Keeps the instance's description (with its original security groups) as
    evidence first, then replaces the security groups of every network
    interface with the VPC's forensic group (tag ``custodian-ext:forensic-group
    = <incident id>``, created when missing), and tags the instance
    ``custodian-ext:isolated = <incident id>``. The result lists the original
    groups per network interface, to restore them
    (``aws ec2 modify-network-interface-attribute --groups ...``).

    :example:

    .. code-block:: yaml

        policies:
          - name: x7-isolate-instances
            resource: aws.ec2
            filters:
              - 'tag:custodian-ext:isolate': '{incident_id}'
            actions:
              - type: isolate
                incident-id: '{incident_id}'
                evidence-bucket: '{evidence_bucket}'
    """

    schema = type_schema('isolate', **EVIDENCE_SCHEMA)

    def get_permissions(self):
        return PERMISSIONS + ('ec2:DescribeInstances',) + evidence_permissions(self.data)

    def process(self, resources):
        self.evidence = EvidenceStore(self)
        self.isolator = Isolator(self, self.data.get('incident-id'))
        self.ec2 = self.client('ec2')
        return super().process(resources)

    def still_needed(self, r):
        # as it is now: another run (or an earlier one) may have isolated it already
        found = self.call(self.ec2.describe_instances, InstanceIds=[r['InstanceId']])
        fresh = [i for res in found.get('Reservations', ()) for i in res.get('Instances', ())]
        if not fresh:
            return 'the instance no longer exists'
        r.update(fresh[0])
        if self.isolator.is_isolated(self.ec2, r):
            return 'already isolated'
        return None

    def process_resource(self, r):
        rid = r['InstanceId']
        if r['State']['Name'] in ('shutting-down', 'terminated'):
            return result(rid, SKIPPED, f"instance is {r['State']['Name']}")
        location = self.evidence.put('ec2', rid, r)
        done = self.isolator.isolate(self.ec2, r)
        if done is None:
            return result(rid, SKIPPED, 'already isolated', evidence=location)
        return result(rid, DONE, 'isolated', evidence=location, **done)
