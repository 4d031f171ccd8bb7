"""X8 pre-incident-image: the launch template version and AMI to go back to.

Runs the two shipped (read-only) policies in-process against the emulator;
moto keeps launch template versions with their creation time and stamps
images and versions with the real time, so the "before" ones are made, then
``incident_boundary()``, then the attacker's.
"""
from custodian_ext_dev.demo.story import incident_boundary
from custodian_ext_dev.emulator import AMI_X86
from custodian_ext.report.reasons import reasons
from tests.support import load_policy, policy_vars, run_policy


def test_groups_and_templates_changed_since_the_incident(aws, tmp_path):
    ec2, asg = aws.client('ec2'), aws.client('autoscaling')
    [builder] = [i['InstanceId'] for i in ec2.run_instances(
        ImageId=AMI_X86, MinCount=1, MaxCount=1)['Instances']]
    golden = ec2.create_image(InstanceId=builder, Name='app-golden')['ImageId']
    app = ec2.create_launch_template(LaunchTemplateName='app', LaunchTemplateData={
        'ImageId': golden, 'InstanceType': 't3.small'})['LaunchTemplate']['LaunchTemplateId']
    base = ec2.create_launch_template(LaunchTemplateName='base', LaunchTemplateData={
        'ImageId': golden})['LaunchTemplate']['LaunchTemplateId']
    asg.create_launch_configuration(LaunchConfigurationName='legacy-v1', ImageId=golden,
                                    InstanceType='t3.micro')

    def group(name, **launch):
        asg.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=0, MaxSize=1,
                                      AvailabilityZones=['us-east-1a'], **launch)

    group('web', LaunchTemplate={'LaunchTemplateId': app, 'Version': '$Default'})
    group('batch', LaunchTemplate={'LaunchTemplateId': base, 'Version': '$Default'})
    group('legacy', LaunchConfigurationName='legacy-v1')
    start = incident_boundary()
    # The attacker bakes a backdoored image, makes it app's default, and adds a
    # non-default version to base and a new launch configuration for a new group.
    backdoor = ec2.create_image(InstanceId=builder, Name='app-golden-v2')['ImageId']
    ec2.create_launch_template_version(LaunchTemplateId=app, LaunchTemplateData={
        'ImageId': backdoor, 'InstanceType': 't3.small'})
    ec2.modify_launch_template(LaunchTemplateId=app, DefaultVersion='2')
    ec2.create_launch_template_version(LaunchTemplateId=base, LaunchTemplateData={
        'ImageId': backdoor})
    asg.create_launch_configuration(LaunchConfigurationName='legacy-v2', ImageId=backdoor,
                                    InstanceType='t3.micro')
    group('miner', LaunchConfigurationName='legacy-v2')
    variables = policy_vars(incident_start=start)

    groups = {r['AutoScalingGroupName']: r['c7n:pre-incident-image'] for r in run_policy(
        load_policy('recover/x8.yml', 'x8-asg-pre-incident-image'), variables, account=aws,
        output_dir=str(tmp_path))}
    assert set(groups) == {'web', 'miner'}  # batch's default and legacy predate the incident
    web = groups['web']
    assert (web['current_version'], web['current']['image_id']) == (2, backdoor)
    assert (web['pre_incident_version'], web['pre_incident']['image_id']) == (1, golden)
    assert web['pre_incident']['image_name'] == 'app-golden'
    assert reasons({'c7n:pre-incident-image': web}) == [
        f'now version 2 (image {backdoor}); before the incident version 1 (image {golden})']
    assert groups['miner']['launch_configuration'] == 'legacy-v2'
    assert 'keep no history' in groups['miner']['note']

    templates = run_policy(load_policy('recover/x8.yml', 'x8-launch-template-pre-incident-image'),
                           variables, account=aws, output_dir=str(tmp_path))
    assert [(t['LaunchTemplateName'], t['VersionNumber']) for t in templates] == [('app', 2)]
    assert templates[0]['c7n:pre-incident-image']['pre_incident']['image_id'] == golden
