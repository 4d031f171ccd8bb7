"""R3.3 (instances outside allowed regions) and X6 (stopped instances), against the emulator."""
import json
import os

from custodian_ext_dev.emulator import AMI_X86
from custodian_ext.filters.instances import StoppedFor, stopped_since
from tests.support import load_policy, policy_vars, run_policy

R33 = load_policy('detect/r3-3.yml', 'r3-3-ec2-outside-allowed-regions')
X6 = load_policy('detect/x6.yml', 'x6-stopped-instances')


def _launch(aws, region, itype='t3.micro', stop=False):
    ec2 = aws.client('ec2', region)
    iid = ec2.run_instances(ImageId=AMI_X86, MinCount=1, MaxCount=1,
                            InstanceType=itype)['Instances'][0]['InstanceId']
    if stop:
        ec2.stop_instances(InstanceIds=[iid])
    return iid


def test_r3_3_flags_running_and_stopped_instances_outside_allowed_regions(aws, tmp_path):
    running = _launch(aws, 'eu-north-1', 'p3.2xlarge')
    stopped = _launch(aws, 'eu-north-1', stop=True)
    found = run_policy(R33, policy_vars(), region='eu-north-1', account=aws,
                       output_dir=str(tmp_path))
    assert {r['InstanceId'] for r in found} == {running, stopped}


def test_r3_3_does_not_run_in_allowed_regions_and_says_it_skipped(aws, tmp_path):
    _launch(aws, 'us-west-2')
    assert run_policy(R33, policy_vars(), region='us-west-2', account=aws,
                      output_dir=str(tmp_path)) == []
    with open(os.path.join(tmp_path, R33['name'], 'skipped.json')) as fh:
        assert json.load(fh)['reason'] == 'execution conditions'


def test_r3_3_ignores_terminated_instances(aws, tmp_path):
    iid = _launch(aws, 'ap-south-1')
    aws.client('ec2', 'ap-south-1').terminate_instances(InstanceIds=[iid])
    assert run_policy(R33, policy_vars(), region='ap-south-1', account=aws,
                      output_dir=str(tmp_path)) == []


def test_x6_flags_stopped_instance_with_its_stop_time(aws, tmp_path):
    stopped = _launch(aws, 'us-east-1', stop=True)
    _launch(aws, 'us-east-1')  # running: not a finding
    [found] = run_policy(X6, policy_vars(), account=aws, output_dir=str(tmp_path))
    assert found['InstanceId'] == stopped
    assert found['c7n:stopped-since'].endswith('Z')
    assert 0 <= found['c7n:stopped-days'] < 1


def test_x6_keeps_instances_whose_stop_time_is_unknown():
    f = StoppedFor({'type': 'stopped-for', 'days': 30})
    unknown = {'InstanceId': 'i-1', 'State': {'Name': 'stopped'}, 'StateTransitionReason': ''}
    recent = {'InstanceId': 'i-2', 'State': {'Name': 'stopped'},
              'StateTransitionReason': 'User initiated (2099-01-01 00:00:00 GMT)'}
    running = {'InstanceId': 'i-3', 'State': {'Name': 'running'}}
    assert [r['InstanceId'] for r in f.process([unknown, recent, running])] == ['i-1']
    assert unknown['c7n:stopped-since'] == 'unknown'


def test_stop_time_parses_aws_and_moto_forms():
    aws_form = {'StateTransitionReason': 'User initiated (2016-05-03 19:40:43 GMT)'}
    moto_form = {'StateTransitionReason': 'User initiated (2016-05-03 19:40:43 UTC)'}
    assert stopped_since(aws_form) == stopped_since(moto_form)
    assert stopped_since(aws_form).isoformat() == '2016-05-03T19:40:43+00:00'
