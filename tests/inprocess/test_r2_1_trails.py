"""R2.1 Is CloudTrail still recording? Against the emulator (moto implements trails,
their status and both kinds of event selector)."""
from custodian_ext.filters.trails import management_coverage
from tests.support import load_policy, policy_vars, run_policy

NO_MULTI = load_policy('detect/r2-1.yml', 'r2-1-no-multi-region-trail')
NOT_LOGGING = load_policy('detect/r2-1.yml', 'r2-1-trail-not-logging')
NO_WRITES = load_policy('detect/r2-1.yml', 'r2-1-trail-excludes-management-events')
NO_READS = load_policy('detect/r2-1.yml', 'r2-1-trail-excludes-management-reads')
NO_VALIDATION = load_policy('detect/r2-1.yml', 'r2-1-trail-log-validation-off')


def trail(aws, name, region='us-east-1', multi=True, logging=True, validation=True):
    bucket = f'{name}-{aws.id}'
    aws.client('s3', region).create_bucket(
        Bucket=bucket, **({} if region == 'us-east-1' else {
            'CreateBucketConfiguration': {'LocationConstraint': region}}))
    ct = aws.client('cloudtrail', region)
    ct.create_trail(Name=name, S3BucketName=bucket, IsMultiRegionTrail=multi,
                    EnableLogFileValidation=validation)
    if logging:
        ct.start_logging(Name=name)
    return ct


def run(policy, aws, tmp_path, region='us-east-1'):
    return run_policy(policy, policy_vars(), region=region, account=aws, output_dir=str(tmp_path))


def test_a_logging_multi_region_trail_with_validation_is_clean(aws, tmp_path):
    trail(aws, 'org-audit')
    for policy in (NO_MULTI, NOT_LOGGING, NO_WRITES, NO_READS, NO_VALIDATION):
        assert run(policy, aws, tmp_path) == [], policy['name']
    # the same trail seen from another region is a shadow: not checked twice
    for policy in (NOT_LOGGING, NO_WRITES, NO_VALIDATION):
        assert run(policy, aws, tmp_path, region='us-west-2') == []


def test_single_region_stopped_trail_without_validation(aws, tmp_path):
    ct = trail(aws, 'main', region='us-west-2', multi=False, logging=False, validation=False)
    assert ct.get_trail_status(Name='main')['IsLogging'] is False
    [acct] = run(NO_MULTI, aws, tmp_path)
    assert acct['c7n:cloudtrails'] == []  # a single-region trail shows only in its region
    [t] = run(NOT_LOGGING, aws, tmp_path, region='us-west-2')
    assert t['Name'] == 'main' and t['c7n:TrailStatus']['IsLogging'] is False
    [t] = run(NO_VALIDATION, aws, tmp_path, region='us-west-2')
    assert t['Name'] == 'main'


SELECTOR_CASES = [
    ({'EventSelectors': [{'ReadWriteType': 'All', 'IncludeManagementEvents': False,
                          'DataResources': [{'Type': 'AWS::S3::Object',
                                             'Values': ['arn:aws:s3']}]}]}, True, True),
    ({'EventSelectors': [{'ReadWriteType': 'ReadOnly', 'IncludeManagementEvents': True}]},
     True, False),
    ({'AdvancedEventSelectors': [{'Name': 'reads only', 'FieldSelectors': [
        {'Field': 'eventCategory', 'Equals': ['Management']},
        {'Field': 'readOnly', 'Equals': ['true']}]}]}, True, False),
    ({'AdvancedEventSelectors': [{'Name': 'data only', 'FieldSelectors': [
        {'Field': 'eventCategory', 'Equals': ['Data']},
        {'Field': 'resources.type', 'Equals': ['AWS::S3::Object']}]}]}, True, True),
    ({'EventSelectors': [{'ReadWriteType': 'WriteOnly', 'IncludeManagementEvents': True}]},
     False, True),
    ({'AdvancedEventSelectors': [{'Name': 'management', 'FieldSelectors': [
        {'Field': 'eventCategory', 'Equals': ['Management']}]}]}, False, False),
]


def test_event_selectors(aws, tmp_path):
    ct = trail(aws, 'main')
    for selectors, no_writes, no_reads in SELECTOR_CASES:
        ct.put_event_selectors(TrailName='main', **selectors)
        writes = run(NO_WRITES, aws, tmp_path)
        reads = run(NO_READS, aws, tmp_path)
        assert [t['Name'] for t in writes] == (['main'] if no_writes else []), selectors
        assert [t['Name'] for t in reads] == (['main'] if no_reads else []), selectors
        if no_writes:
            assert writes[0]['c7n:management-events']['Write'] is False


def test_management_coverage_reads_advanced_not_equals():
    cov = management_coverage({'AdvancedEventSelectors': [{'FieldSelectors': [
        {'Field': 'eventCategory', 'Equals': ['Management']},
        {'Field': 'readOnly', 'NotEquals': ['true']},
        {'Field': 'eventSource', 'NotEquals': ['kms.amazonaws.com']}]}]})
    assert cov == {'Read': False, 'Write': True, 'Selectors': 'advanced',
                   'ExcludedSources': ['kms.amazonaws.com']}
    assert management_coverage({})['Selectors'] == 'default'
