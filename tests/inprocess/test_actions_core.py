"""PackAction: per-resource results are written, one failure does not stop the rest, and fails
the run."""
import json
import os

import pytest
from c7n.exceptions import PolicyExecutionError
from c7n.utils import type_schema

from custodian_ext.actions.core import DONE, PackAction, result
from custodian_ext_dev.emulator import AMI_X86
from custodian_ext.registry import register


class TagOrFail(PackAction):
    """Test-only action: tags instances, fails on the one named in ``fail``."""
    schema = type_schema('test-tag-or-fail', fail={'type': 'string'})
    permissions = ('ec2:CreateTags',)

    def process_resource(self, r):
        if r['InstanceId'] == self.data.get('fail'):
            raise RuntimeError('injected failure')
        self.manager.session_factory().client('ec2').create_tags(
            Resources=[r['InstanceId']], Tags=[{'Key': 'contained', 'Value': 'yes'}])
        return result(r['InstanceId'], DONE)


register('action', 'test-tag-or-fail', TagOrFail, ['ec2'])


def test_results_written_and_failure_raised_after_the_others_complete(aws, tmp_path):
    from tests.support import run_policy
    ec2 = aws.client('ec2')
    ids = [i['InstanceId'] for i in ec2.run_instances(
        ImageId=AMI_X86, MinCount=3, MaxCount=3)['Instances']]
    policy = {'name': 'contain', 'resource': 'aws.ec2',
              'actions': [{'type': 'test-tag-or-fail', 'fail': ids[1]}]}
    with pytest.raises(PolicyExecutionError, match='failed for 1 of 3 resources'):
        run_policy(policy, {}, account=aws, output_dir=str(tmp_path))
    with open(os.path.join(tmp_path, 'contain', 'action-results-test-tag-or-fail.json')) as fh:
        results = {r['resource_id']: r for r in json.load(fh)}
    assert results[ids[1]]['status'] == 'failed' and 'injected failure' in results[ids[1]]['reason']
    assert results[ids[0]]['status'] == results[ids[2]]['status'] == 'done'
    tagged = {i['InstanceId'] for r in ec2.describe_instances(
        Filters=[{'Name': 'tag:contained', 'Values': ['yes']}])['Reservations']
        for i in r['Instances']}
    assert tagged == {ids[0], ids[2]}
