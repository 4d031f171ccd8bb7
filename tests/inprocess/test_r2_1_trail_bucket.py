"""R2.1 The trail's bucket prepared for evidence destruction (``trail-bucket-at-risk``).

Against the emulator: moto serves trails, bucket lifecycle configurations (rules with
Expiration, NoncurrentVersionExpiration, AbortIncompleteMultipartUpload, prefix and tag
filters), bucket policies and versioning as AWS documents them. The rule and statement
readings are also tested directly on AWS-shaped documents.
"""
import datetime
import json

from custodian_ext.filters.trail_bucket import destructive_grants, expiring_rules, log_prefix
from custodian_ext.report.reasons import reasons
from tests.support import (
    assert_readme_lists_filter_permissions, load_policy, policy_vars, run_policy)

EXPIRES = load_policy('detect/r2-1.yml', 'r2-1-trail-bucket-expires-logs')
DELETABLE = load_policy('detect/r2-1.yml', 'r2-1-trail-bucket-deletable-by-outsiders')
FOREIGN = '999988887777'
PARTNER = '444455556666'


def trail(aws, name='org-audit', prefix=None, region='us-east-1'):
    bucket = f'{name}-logs-{aws.id}'
    s3 = aws.client('s3', region)
    s3.create_bucket(Bucket=bucket, **({} if region == 'us-east-1' else {
        'CreateBucketConfiguration': {'LocationConstraint': region}}))
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        'Version': '2012-10-17', 'Statement': [  # what CloudTrail's console writes
            {'Sid': 'AWSCloudTrailAclCheck', 'Effect': 'Allow',
             'Principal': {'Service': 'cloudtrail.amazonaws.com'},
             'Action': 's3:GetBucketAcl', 'Resource': f'arn:aws:s3:::{bucket}'},
            {'Sid': 'AWSCloudTrailWrite', 'Effect': 'Allow',
             'Principal': {'Service': 'cloudtrail.amazonaws.com'}, 'Action': 's3:PutObject',
             'Resource': f'arn:aws:s3:::{bucket}/AWSLogs/{aws.id}/*',
             'Condition': {'StringEquals': {'s3:x-amz-acl': 'bucket-owner-full-control'}}}]}))
    ct = aws.client('cloudtrail', region)
    kw = {'S3KeyPrefix': prefix} if prefix else {}
    ct.create_trail(Name=name, S3BucketName=bucket, IsMultiRegionTrail=True, **kw)
    ct.start_logging(Name=name)
    return s3, bucket


def run(policy, aws, tmp_path, region='us-east-1', **overrides):
    return run_policy(policy, policy_vars(**overrides), region=region, account=aws,
                      output_dir=str(tmp_path))


HARMLESS_RULES = [
    {'ID': 'old-versions', 'Status': 'Enabled', 'Filter': {'Prefix': ''},
     'NoncurrentVersionExpiration': {'NoncurrentDays': 1}},
    {'ID': 'uploads', 'Status': 'Enabled', 'Filter': {},
     'AbortIncompleteMultipartUpload': {'DaysAfterInitiation': 1}},
    {'ID': 'markers', 'Status': 'Enabled', 'Filter': {'Prefix': 'AWSLogs/'},
     'Expiration': {'ExpiredObjectDeleteMarker': True}},
    {'ID': 'retention', 'Status': 'Enabled', 'Filter': {'Prefix': 'AWSLogs/'},
     'Expiration': {'Days': 400}},
    {'ID': 'archive', 'Status': 'Enabled', 'Filter': {'Prefix': 'AWSLogs/'},
     'Transitions': [{'Days': 30, 'StorageClass': 'GLACIER'}]},
    {'ID': 'scratch', 'Status': 'Enabled', 'Filter': {'Prefix': 'tmp/'},
     'Expiration': {'Days': 1}},
    {'ID': 'tagged', 'Status': 'Enabled',
     'Filter': {'Tag': {'Key': 'disposable', 'Value': 'yes'}}, 'Expiration': {'Days': 1}},
    {'ID': 'off', 'Status': 'Disabled', 'Filter': {'Prefix': ''}, 'Expiration': {'Days': 1}},
]


def test_a_trail_bucket_with_only_harmless_rules_and_cloudtrails_policy_is_clean(aws, tmp_path):
    s3, bucket = trail(aws)
    s3.put_bucket_lifecycle_configuration(Bucket=bucket,
                                          LifecycleConfiguration={'Rules': HARMLESS_RULES})
    assert run(EXPIRES, aws, tmp_path) == []
    assert run(DELETABLE, aws, tmp_path) == []
    # a bucket without lifecycle configuration or policy at all
    s3.delete_bucket_lifecycle(Bucket=bucket)
    s3.delete_bucket_policy(Bucket=bucket)
    assert run(EXPIRES, aws, tmp_path) == []
    assert run(DELETABLE, aws, tmp_path) == []


def test_a_short_expiration_on_the_log_prefix_is_flagged(aws, tmp_path):
    s3, bucket = trail(aws, prefix='audit')
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={
        'Rules': HARMLESS_RULES + [{'ID': 'evidence-be-gone', 'Status': 'Enabled',
                                    'Filter': {'Prefix': 'audit/'}, 'Expiration': {'Days': 1}}]})
    [t] = run(EXPIRES, aws, tmp_path)
    risk = t['c7n:trail-bucket-risk']
    assert risk['Bucket'] == bucket and risk['LogPrefix'] == 'audit/AWSLogs/'
    assert risk['Rules'] == [{'Rule': 'evidence-be-gone', 'Prefix': 'audit/',
                              'Expiration': 'expires log files after 1 day(s)'}]
    assert risk['Versioning'] == 'Disabled'
    assert 'deleted for good' in risk['Recoverable']
    [line] = reasons({'c7n:trail-bucket-risk': risk})
    assert line.startswith(f'bucket {bucket} (logs under audit/AWSLogs/): lifecycle rule '
                           f"evidence-be-gone (prefix 'audit/') expires log files after 1 day(s)")
    # the same trail seen from another region is a shadow: checked once, in its home region
    assert run(EXPIRES, aws, tmp_path, region='us-west-2') == []


def test_versioned_bucket_says_whether_expired_logs_can_be_recovered(aws, tmp_path):
    s3, bucket = trail(aws)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={'Status': 'Enabled'})
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={'Rules': [
        {'ID': 'whole-bucket', 'Status': 'Enabled', 'Filter': {}, 'Expiration': {'Days': 7},
         'NoncurrentVersionExpiration': {'NoncurrentDays': 1}}]})
    [t] = run(EXPIRES, aws, tmp_path)
    assert t['c7n:trail-bucket-risk']['Recoverable'] == (
        'versioned: expired log files get a delete marker and stay recoverable for 1 day(s) '
        '(NoncurrentVersionExpiration)')
    # a retention of more than min-days (365) is a retention policy, not a finding
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={'Rules': [
        {'ID': 'whole-bucket', 'Status': 'Enabled', 'Filter': {}, 'Expiration': {'Days': 400}}]})
    assert run(EXPIRES, aws, tmp_path) == []


def test_a_bucket_policy_letting_outsiders_delete_logs_is_flagged(aws, tmp_path):
    s3, bucket = trail(aws)
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)['Policy'])
    policy['Statement'] += [
        {'Sid': 'Partner', 'Effect': 'Allow', 'Principal': {'AWS': f'arn:aws:iam::{PARTNER}:root'},
         'Action': 's3:DeleteObject', 'Resource': f'arn:aws:s3:::{bucket}/*'},
        {'Sid': 'Own', 'Effect': 'Allow', 'Principal': {'AWS': f'arn:aws:iam::{aws.id}:root'},
         'Action': 's3:*', 'Resource': [f'arn:aws:s3:::{bucket}', f'arn:aws:s3:::{bucket}/*']},
        {'Sid': 'Cleanup', 'Effect': 'Allow', 'Principal': {'AWS': FOREIGN},
         'Action': ['s3:Delete*', 's3:PutLifecycleConfiguration'],
         'Resource': [f'arn:aws:s3:::{bucket}', f'arn:aws:s3:::{bucket}/*']}]
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    [t] = run(DELETABLE, aws, tmp_path, trusted_accounts=[PARTNER])
    [grant] = t['c7n:trail-bucket-risk']['Grants']
    assert grant == {'Sid': 'Cleanup', 'Principals': [FOREIGN], 'Actions': [
        's3:DeleteObject', 's3:DeleteObjectVersion', 's3:PutLifecycleConfiguration',
        's3:DeleteBucket']}
    assert f'policy statement Cleanup lets {FOREIGN} s3:DeleteObject' in reasons(
        {'c7n:trail-bucket-risk': t['c7n:trail-bucket-risk']})[0]
    # without the partner among trusted_accounts, its statement is flagged too
    [t] = run(DELETABLE, aws, tmp_path, trusted_accounts=[])
    assert [g['Sid'] for g in t['c7n:trail-bucket-risk']['Grants']] == ['Partner', 'Cleanup']


def test_a_deleted_trail_bucket_is_reported_not_passed(aws, tmp_path):
    s3, bucket = trail(aws)
    s3.delete_bucket_policy(Bucket=bucket)
    s3.delete_bucket(Bucket=bucket)
    for policy in (EXPIRES, DELETABLE):
        [t] = run(policy, aws, tmp_path)
        assert t['c7n:trail-bucket-risk']['Missing'] is True, policy['name']


# -- the readings, on AWS-shaped documents --------------------------------------------

def test_expiring_rules_reads_prefixes_dates_and_legacy_rules():
    now = datetime.datetime(2026, 11, 28, tzinfo=datetime.timezone.utc)
    rules = [
        {'ID': 'legacy', 'Status': 'Enabled', 'Prefix': 'AWSLogs/111122223333/',
         'Expiration': {'Days': 30}},                     # a part of the logs: still flagged
        {'ID': 'date', 'Status': 'Enabled', 'Filter': {'And': {'Prefix': ''}},
         'Expiration': {'Date': datetime.datetime(2027, 1, 1, tzinfo=datetime.timezone.utc)}},
        {'ID': 'big-only', 'Status': 'Enabled',
         'Filter': {'And': {'Prefix': 'AWSLogs/', 'ObjectSizeGreaterThan': 1}},
         'Expiration': {'Days': 2}},
        {'ID': 'tagged', 'Status': 'Enabled',
         'Filter': {'And': {'Prefix': '', 'Tags': [{'Key': 'k', 'Value': 'v'}]}},
         'Expiration': {'Days': 1}},
        {'ID': 'other-prefix', 'Status': 'Enabled', 'Filter': {'Prefix': 'exports/'},
         'Expiration': {'Days': 1}},
    ]
    found = expiring_rules(rules, 'AWSLogs/', 365, now=now)
    assert [(r['Rule'], r['Expiration']) for r in found] == [
        ('legacy', 'expires log files after 30 day(s)'),
        ('date', 'expires every log file on 2027-01-01T00:00:00Z'),
        ('big-only', 'expires log files after 2 day(s)')]
    assert found[2]['Note'] == 'limited by object size'
    assert expiring_rules(rules, 'AWSLogs/', 20, now=now)[0]['Rule'] == 'date'
    assert log_prefix({'S3KeyPrefix': '/org/trail/'}) == 'org/trail/AWSLogs/'


def test_destructive_grants_reads_principals_actions_and_conditions():
    own = '111122223333'

    def policy(**statement):
        return {'Statement': [dict({'Effect': 'Allow', 'Resource': '*'}, **statement)]}

    def sids(doc, trusted=(own,)):
        return [g['Actions'] for g in destructive_grants(doc, set(trusted))]

    assert sids(policy(Principal='*', Action='s3:*')) == [[
        's3:DeleteObject', 's3:DeleteObjectVersion', 's3:PutLifecycleConfiguration',
        's3:DeleteBucket', 's3:PutBucketPolicy']]
    # actions are not case-sensitive; NotAction allows everything it does not name
    assert sids(policy(Principal={'AWS': '*'}, Action='S3:deleteobject')) == [['s3:DeleteObject']]
    assert sids(policy(Principal='*', NotAction=['s3:Delete*'])) == [
        ['s3:PutLifecycleConfiguration', 's3:PutBucketPolicy']]
    # reads, own account, service principals, denies: nothing to report
    assert sids(policy(Principal='*', Action=['s3:GetObject', 's3:ListBucket'])) == []
    assert sids(policy(Principal={'AWS': f'arn:aws:iam::{own}:role/ops'}, Action='s3:*')) == []
    assert sids(policy(Principal={'Service': 'logging.s3.amazonaws.com'}, Action='s3:*')) == []
    assert sids({'Statement': [{'Effect': 'Deny', 'Principal': '*', 'Action': 's3:*',
                                'Resource': '*'}]}) == []
    # everyone, but only callers from the own account (c7n's condition reading)
    assert sids(policy(Principal='*', Action='s3:DeleteObject', Condition={
        'StringEquals': {'aws:PrincipalAccount': own}})) == []
    assert sids(policy(Principal='*', Action='s3:DeleteObject', Condition={
        'StringEquals': {'aws:PrincipalAccount': FOREIGN}})) == [['s3:DeleteObject']]
    assert destructive_grants(None, {own}) == []


def test_readme_lists_the_permissions():
    for policy in (EXPIRES, DELETABLE):
        assert_readme_lists_filter_permissions(policy)
