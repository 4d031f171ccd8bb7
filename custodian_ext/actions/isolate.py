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


class Isolator:
    """Moves instances into their VPC's forensic group. Shared by ``isolate``
    and ``snapshot-before-terminate`` (option ``isolate``)."""

    def __init__(self, action, incident_id):
        self.action = action
        self.incident_id = incident_id or 'incident'
        self.groups = {}  # VPC id -> forensic group id, once per run

    def forensic_group(self, client, vpc_id):
        if vpc_id in self.groups:
            return self.groups[vpc_id]
        found = self.action.call(
            client.describe_security_groups,
            Filters=[{'Name': 'vpc-id', 'Values': [vpc_id]},
                     {'Name': f'tag:{FORENSIC_TAG}', 'Values': [self.incident_id]}]
        )['SecurityGroups']
        if found:
            group = found[0]
            if group.get('IpPermissions') or group.get('IpPermissionsEgress'):
                # Someone added rules: it no longer isolates anything.
                raise IsolationError(
                    f"forensic group {group['GroupId']} in {vpc_id} has rules; remove them "
                    f"(it must allow nothing) or delete the group")
            self.groups[vpc_id] = group['GroupId']
            return group['GroupId']
        gid = self.action.call(
            client.create_security_group,
            GroupName=f'custodian-ext-forensic-{self.incident_id}',
            Description=f'custodian-ext forensic isolation for incident {self.incident_id}: '
                        f'no inbound, no outbound',
            VpcId=vpc_id,
            TagSpecifications=[{'ResourceType': 'security-group', 'Tags': [
                {'Key': FORENSIC_TAG, 'Value': self.incident_id},
                {'Key': 'Name', 'Value': f'forensic-{self.incident_id}'}]}])['GroupId']
        # A new group allows all outbound traffic (IPv4, and IPv6 in a dual-stack VPC).
        egress = self.action.call(
            client.describe_security_groups, GroupIds=[gid])['SecurityGroups'][0].get(
                'IpPermissionsEgress', [])
        if egress:
            self.action.call(client.revoke_security_group_egress, GroupId=gid, IpPermissions=egress)
        left = self.action.call(
            client.describe_security_groups, GroupIds=[gid])['SecurityGroups'][0]
        if left.get('IpPermissions') or left.get('IpPermissionsEgress'):
            raise IsolationError(f'could not remove the default rules of forensic group {gid}')
        self.groups[vpc_id] = gid
        return gid

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
        if all(groups == [gid] for groups in original.values()):
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
        return PERMISSIONS + evidence_permissions(self.data)

    def process(self, resources):
        self.evidence = EvidenceStore(self)
        self.isolator = Isolator(self, self.data.get('incident-id'))
        self.ec2 = self.client('ec2')
        return super().process(resources)

    def process_resource(self, r):
        rid = r['InstanceId']
        if r['State']['Name'] in ('shutting-down', 'terminated'):
            return result(rid, SKIPPED, f"instance is {r['State']['Name']}")
        location = self.evidence.put('ec2', rid, r)
        done = self.isolator.isolate(self.ec2, r)
        if done is None:
            return result(rid, SKIPPED, 'already isolated', evidence=location)
        return result(rid, DONE, 'isolated', evidence=location, **done)
