"""Keep evidence, snapshot every volume, and only then terminate (X7).

c7n's ``snapshot`` followed by ``terminate`` terminates an instance even when
its snapshot failed: ``snapshot`` logs some errors and carries on, and
``terminate`` does not know. ``snapshot-before-terminate`` does all of it per
instance and fails closed: an instance is stopped or terminated only after
its evidence was written and every one of its snapshots reached
``completed``.
"""
import time
from dataclasses import dataclass, field

from botocore.exceptions import ClientError
from c7n.utils import chunks, type_schema

from custodian_ext.actions.core import DONE, FAILED, SKIPPED, PackAction, result, utcnow
from custodian_ext.actions.evidence import EVIDENCE_SCHEMA, EvidenceStore, evidence_permissions
from custodian_ext.actions.isolate import PERMISSIONS as ISOLATE_PERMISSIONS, Isolator
from custodian_ext.registry import register_action

INCIDENT_TAG = 'custodian-ext:incident'
INSTANCE_TAG = 'custodian-ext:instance-id'
DEVICE_TAG = 'custodian-ext:device'
POLICY_TAG = 'custodian-ext:policy'
CONTAINED_TAG = 'custodian-ext:contained'


class SnapshotError(RuntimeError):
    pass


@dataclass
class Pending:
    """An instance whose snapshots were started: what exists so far."""
    instance_id: str
    state: str
    evidence: str = ''
    snapshots: dict = field(default_factory=dict)  # snapshot id -> {volume, device, state}
    isolation: dict = None
    image: str = ''

    def details(self):
        out = {'evidence': self.evidence,
               'snapshots': [dict(snapshot_id=k, **v) for k, v in self.snapshots.items()]}
        if self.isolation:
            out['isolation'] = self.isolation
        if self.image:
            out['image_id'] = self.image
        return out


@register_action('snapshot-before-terminate', ['ec2'])
class SnapshotBeforeTerminate(PackAction):
    """Keep evidence, snapshot every EBS volume, wait, then terminate (X7).

    For each running or stopped instance, in this order:

    1. write its description (and user data) as evidence: to
       ``s3://<evidence-bucket>/...`` when set, else to the policy output;
    2. with ``isolate: true``, move it into the VPC's forensic security
       group (no inbound, no outbound; see ``isolate``);
    3. snapshot all its EBS volumes in one crash-consistent set
       (CreateSnapshots), tagged ``custodian-ext:incident``,
       ``custodian-ext:instance-id``, ``custodian-ext:device`` and
       ``custodian-ext:policy``;
    4. wait until every snapshot is ``completed``, at most ``wait-timeout``
       seconds (all instances of the run wait together);
    5. with ``create-ami: true``, register an AMI from those snapshots (no
       second copy, no reboot);
    6. terminate it, or stop it with ``stop-only: true``. Termination (or
       stop) protection is turned off only with
       ``disable-termination-protection: true``.

    A failure in steps 1-5 (an API error, a snapshot in state ``error``, the
    timeout) leaves the instance running or stopped as it was, and its
    result is ``failed`` with the reason; snapshots and evidence already
    made are kept and listed. Instances in other states (pending, stopping)
    are skipped with the reason. An instance whose root volume is instance
    store fails: it cannot be snapshotted. Instance-store data volumes are
    lost on stop or terminate either way.

    :example:

    .. code-block:: yaml

        policies:
          - name: x7-snapshot-then-terminate
            resource: aws.ec2
            filters:
              - 'tag:custodian-ext:contain': '{incident_id}'
            actions:
              - type: snapshot-before-terminate
                incident-id: '{incident_id}'
                evidence-bucket: '{evidence_bucket}'
                isolate: true
                wait-timeout: 3600
    """

    schema = type_schema(
        'snapshot-before-terminate',
        **{'stop-only': {'type': 'boolean'},
           'create-ami': {'type': 'boolean'},
           'isolate': {'type': 'boolean'},
           'disable-termination-protection': {'type': 'boolean'},
           'wait-timeout': {'type': 'number', 'minimum': 1, 'maximum': 86400}},
        **EVIDENCE_SCHEMA)

    valid_states = ('running', 'stopped')
    default_timeout = 3600
    # seconds between DescribeSnapshots calls: first, then doubling up to the last
    poll_interval = (5, 30)
    sleep = staticmethod(time.sleep)
    clock = staticmethod(time.monotonic)

    def get_permissions(self):
        perms = ('ec2:DescribeInstanceAttribute', 'ec2:CreateSnapshots', 'ec2:CreateTags',
                 'ec2:DescribeSnapshots')
        perms += (('ec2:StopInstances',) if self.data.get('stop-only')
                  else ('ec2:TerminateInstances',))
        if self.data.get('disable-termination-protection'):
            perms += ('ec2:ModifyInstanceAttribute',)
        if self.data.get('create-ami'):
            perms += ('ec2:RegisterImage',)
        if self.data.get('isolate'):
            perms += ISOLATE_PERMISSIONS
        return tuple(dict.fromkeys(perms + evidence_permissions(self.data)))

    @property
    def incident_id(self):
        return self.data.get('incident-id') or 'incident'

    def process(self, resources):
        self.evidence = EvidenceStore(self)
        self.isolator = Isolator(self, self.incident_id)
        ec2 = self.client('ec2')
        started = [self.guarded(r, self.start, ec2) for r in resources]
        failures = self.wait(ec2, [p for p in started if isinstance(p, Pending)])
        results = []
        for r, p in zip(resources, started):
            if isinstance(p, Pending):
                if p.instance_id in failures:
                    p = self.failed(p, failures[p.instance_id])
                else:
                    p = self.guarded(r, self.finish, ec2, p)
            results.append(p)
        return self.conclude(resources, results)

    def failed(self, p, reason):
        return result(p.instance_id, FAILED, f'{reason}; the instance was left {p.state}',
                      **p.details())

    # -- 1-3: evidence, isolation, snapshots ------------------------------------

    def start(self, r, ec2):
        rid, state = r['InstanceId'], r['State']['Name']
        if state not in self.valid_states:
            return result(rid, SKIPPED, f'instance is {state}; this action runs for running or '
                                        f'stopped instances only (run again later)')
        if r.get('RootDeviceType') == 'instance-store':
            return result(rid, FAILED, 'its root volume is instance store, which cannot be '
                                       f'snapshotted; the instance was left {state}')
        volumes = {m['Ebs']['VolumeId']: m['DeviceName']
                   for m in r.get('BlockDeviceMappings', ()) if m.get('Ebs', {}).get('VolumeId')}
        if not volumes:
            return result(rid, FAILED, f'no EBS volume to snapshot; the instance was left {state}')
        p = Pending(rid, state)
        try:
            document = dict(r)
            document['c7n:UserData'] = self.call(
                ec2.describe_instance_attribute, InstanceId=rid,
                Attribute='userData').get('UserData', {}).get('Value')
            p.evidence = self.evidence.put('ec2', rid, document)
            if self.data.get('isolate'):
                p.isolation = self.isolator.isolate(ec2, r) or {'already_isolated': True}
            self.create_snapshots(ec2, r, volumes, p)
        except Exception as e:
            return self.failed(p, f'{type(e).__name__}: {e}')
        return p

    def create_snapshots(self, ec2, r, volumes, p):
        rid = r['InstanceId']
        tags = [{'Key': INCIDENT_TAG, 'Value': self.incident_id},
                {'Key': INSTANCE_TAG, 'Value': rid},
                {'Key': POLICY_TAG, 'Value': self.manager.ctx.policy.name}]
        created = self.call(
            ec2.create_snapshots,
            Description=f'custodian-ext evidence for incident {self.incident_id}: {rid}',
            InstanceSpecification={'InstanceId': rid, 'ExcludeBootVolume': False},
            TagSpecifications=[{'ResourceType': 'snapshot', 'Tags': tags}])['Snapshots']
        for s in created:
            p.snapshots[s['SnapshotId']] = {
                'volume_id': s['VolumeId'], 'device': volumes.get(s['VolumeId'], 'unknown'),
                'state': s.get('State', 'pending')}
        missing = set(volumes) - {s['VolumeId'] for s in created}
        if missing:
            raise SnapshotError('no snapshot was created for ' + ', '.join(
                f'{volumes[v]} ({v})' for v in sorted(missing)))
        for sid, info in p.snapshots.items():
            self.call(ec2.create_tags, Resources=[sid],
                      Tags=[{'Key': DEVICE_TAG, 'Value': info['device']}])

    # -- 4: bounded wait, all instances together ----------------------------------

    def wait(self, ec2, pendings):
        """Wait for every snapshot; return {instance id: why it failed}."""
        timeout = self.data.get('wait-timeout', self.default_timeout)
        deadline = self.clock() + timeout
        owner = {sid: p for p in pendings for sid in p.snapshots}
        todo = set(owner)
        failures = {}

        def fail(p, reason):
            failures.setdefault(p.instance_id, reason)
            todo.difference_update(p.snapshots)

        def describe(batch):
            try:
                return self.call(ec2.describe_snapshots, SnapshotIds=batch)['Snapshots']
            except ClientError as e:
                if e.response['Error']['Code'] == 'InvalidSnapshot.NotFound' and len(batch) > 1:
                    # one deleted snapshot fails the whole call: ask one by one
                    return [s for sid in batch for s in describe([sid])]
                if e.response['Error']['Code'] == 'InvalidSnapshot.NotFound':
                    return []  # reported below as no longer existing
                for sid in batch:
                    fail(owner[sid], f'could not check snapshot {sid}: {e}')
                return []

        delay = self.poll_interval[0]
        while todo:
            for batch in chunks(sorted(todo), 200):
                found = describe(batch)
                seen = set()
                for s in found:
                    sid = s['SnapshotId']
                    seen.add(sid)
                    if sid not in todo:
                        continue
                    p = owner[sid]
                    info = p.snapshots[sid]
                    info['state'], info['progress'] = s['State'], s.get('Progress', '')
                    if s['State'] == 'completed':
                        todo.discard(sid)
                    elif s['State'] != 'pending':
                        fail(p, f"snapshot {sid} of {info['device']} ended in state {s['State']}"
                                + (f": {s['StateMessage']}" if s.get('StateMessage') else ''))
                for sid in set(batch) - seen:
                    if sid in todo:
                        fail(owner[sid], f'snapshot {sid} no longer exists')
            if not todo:
                break
            left = deadline - self.clock()
            if left <= 0:
                for sid in sorted(todo):
                    p = owner[sid]
                    fail(p, f'snapshots not completed within {timeout} seconds: ' + ', '.join(
                        f"{k} {v.get('progress') or v['state']}" for k, v in p.snapshots.items()
                        if v['state'] != 'completed'))
                break
            self.sleep(min(delay, left))
            delay = min(delay * 2, self.poll_interval[1])
        return failures

    # -- 5-6: AMI, then terminate or stop -------------------------------------------

    def finish(self, r, ec2, p):
        try:
            if self.data.get('create-ami'):
                p.image = self.register_image(ec2, r, p)
            if self.data.get('stop-only'):
                if p.state != 'stopped':
                    self.change_state(ec2, p.instance_id, 'stop')
                self.call(ec2.create_tags, Resources=[p.instance_id],
                          Tags=[{'Key': CONTAINED_TAG, 'Value': self.incident_id}])
                done = 'stopped' if p.state != 'stopped' else 'already stopped; snapshots taken'
            else:
                self.change_state(ec2, p.instance_id, 'terminate')
                done = 'terminated'
        except Exception as e:
            reason = f'{type(e).__name__}: {e}'
            return self.failed(p, reason + '; evidence and snapshots are kept')
        return result(p.instance_id, DONE, done, **p.details())

    def register_image(self, ec2, r, p):
        devices = {info['device']: sid for sid, info in p.snapshots.items()}
        root = r.get('RootDeviceName')
        if root not in devices:
            raise SnapshotError(f'no snapshot of the root device {root}: cannot register an AMI')
        params = dict(
            Name=f"custodian-ext-{self.incident_id}-{p.instance_id}-{utcnow():%Y%m%dT%H%M%SZ}",
            Description=f'custodian-ext evidence for incident {self.incident_id}: {p.instance_id}',
            Architecture=r.get('Architecture', 'x86_64'),
            RootDeviceName=root,
            VirtualizationType=r.get('VirtualizationType', 'hvm'),
            BlockDeviceMappings=[
                {'DeviceName': d, 'Ebs': {'SnapshotId': s, 'DeleteOnTermination': True}}
                for d, s in sorted(devices.items())],
            TagSpecifications=[{'ResourceType': 'image', 'Tags': [
                {'Key': INCIDENT_TAG, 'Value': self.incident_id},
                {'Key': INSTANCE_TAG, 'Value': p.instance_id},
                {'Key': POLICY_TAG, 'Value': self.manager.ctx.policy.name}]}])
        if r.get('EnaSupport') is not None:
            params['EnaSupport'] = r['EnaSupport']
        if r.get('BootMode'):
            params['BootMode'] = r['BootMode']
        return self.call(ec2.register_image, **params)['ImageId']

    def change_state(self, ec2, instance_id, op):
        method = ec2.terminate_instances if op == 'terminate' else ec2.stop_instances
        attribute = 'DisableApiTermination' if op == 'terminate' else 'DisableApiStop'
        try:
            self.call(method, InstanceIds=[instance_id])
        except ClientError as e:
            if e.response['Error']['Code'] != 'OperationNotPermitted':
                raise
            if not self.data.get('disable-termination-protection'):
                raise SnapshotError(
                    f'{op} protection is on ({e.response["Error"].get("Message", "")}); set '
                    f'disable-termination-protection: true to turn it off') from None
            self.call(ec2.modify_instance_attribute, InstanceId=instance_id,
                      **{attribute: {'Value': False}})
            self.call(method, InstanceIds=[instance_id])
