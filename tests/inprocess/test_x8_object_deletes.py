"""X8 S3 objects deleted or overwritten since the incident (``object-changes``), and buckets
where that cannot be checked (``object-changes-not-checkable``).

Against the emulator: moto serves versioning, ListObjectVersions (versions and delete
markers, paged), trails, their status and both kinds of event selector as AWS does. The
selector reading is also tested directly on AWS-shaped documents.
"""
import pytest

from custodian_ext.filters.object_changes import classify
from custodian_ext.filters.trails import s3_write_data_events
from custodian_ext.report.reasons import reasons
from custodian_ext_dev.demo.story import incident_boundary
from tests.support import (
    assert_readme_lists_filter_permissions, load_policy, policy_vars, run_policy)

CHANGED = load_policy('detect/x8.yml', 'x8-s3-objects-deleted-or-overwritten-since-incident')
UNCHECKABLE = load_policy('detect/x8.yml', 'x8-s3-object-changes-not-checkable')


def bucket(aws, name, versioning='Enabled', objects=()):
    s3 = aws.client('s3')
    s3.create_bucket(Bucket=name)
    if versioning:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={'Status': versioning})
    for key in objects:
        s3.put_object(Bucket=name, Key=key, Body=f'{key} v1'.encode())
    return s3


def run(policy, aws, tmp_path, start='2026-11-28T09:30:00Z', **overrides):
    return run_policy(policy, policy_vars(incident_start=start, **overrides), account=aws,
                      output_dir=str(tmp_path))


def test_deleted_and_overwritten_objects_are_flagged(aws, tmp_path):
    name = f'shop-data-{aws.id}'
    s3 = bucket(aws, name, objects=['a.csv', 'b.csv', 'c.csv', 'd.csv', 'gone-before.csv'])
    s3.delete_object(Bucket=name, Key='gone-before.csv')
    start = incident_boundary()
    s3.delete_object(Bucket=name, Key='a.csv')                        # deleted
    s3.put_object(Bucket=name, Key='b.csv', Body=b'ENCRYPTED')       # overwritten
    s3.put_object(Bucket=name, Key='d.csv', Body=b'ENCRYPTED')       # overwritten, then put back
    s3.copy_object(Bucket=name, Key='d.csv', CopySource={
        'Bucket': name, 'Key': 'd.csv', 'VersionId': [
            v for v in s3.list_object_versions(Bucket=name, Prefix='d.csv')['Versions']
            if not v['IsLatest'] and v['Size'] == len(b'd.csv v1')][0]['VersionId']})
    s3.put_object(Bucket=name, Key='README-RANSOM.txt', Body=b'pay')  # new

    [b] = run(CHANGED, aws, tmp_path, start)
    found = b['c7n:object-changes']
    assert (found['Deleted'], found['Overwritten'], found['Restored'], found['New']) == \
        (1, 1, 1, 1)
    assert found['Versioning'] == 'Enabled' and found['Since'] == start
    assert sorted((o['Key'], o['Change']) for o in found['Objects']) == [
        ('a.csv', 'deleted'), ('b.csv', 'overwritten')]
    assert all(o['Time'] >= start for o in found['Objects'])
    assert found['Examined'] == {'Keys': 6, 'Versions': 11}
    assert 'CutShort' not in found
    [line] = reasons({'c7n:object-changes': found})
    assert line.startswith(f'1 object(s) deleted and 1 overwritten since {start}')
    assert '1 already restored, 1 created since' in line
    # the bucket policy X8 recovery would act on it
    assert CHANGED['metadata']['respond'] == 'x8-s3-restore-object-versions'


def test_a_bucket_changed_only_before_the_incident_or_with_new_objects_is_clean(aws, tmp_path):
    name = f'reports-{aws.id}'
    s3 = bucket(aws, name, objects=['2025.pdf', 'draft.pdf'])
    s3.put_object(Bucket=name, Key='draft.pdf', Body=b'v2')
    s3.delete_object(Bucket=name, Key='2025.pdf')
    start = incident_boundary()
    s3.put_object(Bucket=name, Key='2026.pdf', Body=b'new')
    s3.put_object(Bucket=name, Key='2026.pdf', Body=b'newer')  # created since, then rewritten
    bucket(aws, f'logs-{aws.id}', versioning=None, objects=['x'])  # unversioned: not here
    assert run(CHANGED, aws, tmp_path, start) == []


def test_the_version_bound_cuts_short_and_says_so(aws, tmp_path):
    name = f'big-{aws.id}'
    bucket(aws, name, objects=[f'k{i}' for i in range(5)])
    start = incident_boundary()
    [b] = run(CHANGED, aws, tmp_path, start, object_scan_max_versions=3)
    found = b['c7n:object-changes']
    assert (found['Deleted'], found['Overwritten']) == (0, 0)   # none seen, yet not clean
    assert found['CutShort'] == {'Limit': 3, 'NextKey': 'k3'}
    assert found['Examined'] == {'Keys': 3, 'Versions': 3}
    assert 'CUT SHORT at object_scan_max_versions (3)' in reasons({'c7n:object-changes': found})[0]
    assert run(CHANGED, aws, tmp_path, start, object_scan_max_versions=5) == []


def test_a_suspended_bucket_is_scanned_and_also_reported_as_partly_uncheckable(aws, tmp_path):
    name = f'paused-{aws.id}'
    s3 = bucket(aws, name, objects=['a'])
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={'Status': 'Suspended'})
    start = incident_boundary()
    s3.delete_object(Bucket=name, Key='a')
    [b] = run(CHANGED, aws, tmp_path, start)
    assert b['c7n:object-changes']['Deleted'] == 1
    assert b['c7n:object-changes']['Versioning'] == 'Suspended'
    [b] = run(UNCHECKABLE, aws, tmp_path, start)
    assert b['c7n:object-changes-not-checkable']['Reason'].startswith(
        'not checkable from the API (versioning suspended')


def test_emulator_versioning_suspended_bucket_follows_aws(aws):
    """S3 User Guide: in a versioning-suspended bucket a PUT replaces only the null version
    and a DELETE puts a null delete marker; versions from before the suspension stay."""
    name = f'suspended-{aws.id}'
    s3 = bucket(aws, name, objects=['k'])
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={'Status': 'Suspended'})
    s3.put_object(Bucket=name, Key='k', Body=b'null 1')
    s3.put_object(Bucket=name, Key='k', Body=b'null 2')   # replaces the null version
    listed = s3.list_object_versions(Bucket=name)
    assert [(v['VersionId'] == 'null', v['IsLatest']) for v in listed['Versions']] == [
        (True, True), (False, False)]
    assert s3.get_object(Bucket=name, Key='k')['Body'].read() == b'null 2'
    resp = s3.delete_object(Bucket=name, Key='k')
    assert resp['VersionId'] == 'null' and resp['DeleteMarker'] is True
    listed = s3.list_object_versions(Bucket=name)
    assert [v['VersionId'] != 'null' for v in listed['Versions']] == [True]
    assert [(m['VersionId'], m['IsLatest']) for m in listed['DeleteMarkers']] == [('null', True)]


def trail(aws, name, **selectors):
    logs = f'{name}-logs-{aws.id}'
    aws.client('s3').create_bucket(Bucket=logs)
    ct = aws.client('cloudtrail')
    ct.create_trail(Name=name, S3BucketName=logs, S3KeyPrefix='ct', IsMultiRegionTrail=True)
    ct.start_logging(Name=name)
    if selectors:
        ct.put_event_selectors(TrailName=name, **selectors)
    return ct, logs


def test_unversioned_buckets_are_reported_with_why_they_cannot_be_checked(aws, tmp_path):
    name = f'uploads-{aws.id}'
    bucket(aws, name, versioning=None, objects=['a'])
    bucket(aws, f'safe-{aws.id}')                     # versioned: checkable, not listed here
    ct, logs = trail(aws, 'main')                     # management events only
    found = {b['Name']: b['c7n:object-changes-not-checkable']
             for b in run(UNCHECKABLE, aws, tmp_path)}
    assert set(found) == {name, logs}                 # the trail's own bucket is unversioned too
    info = found[name]
    assert info['Versioning'] == 'Disabled' and info['DataEvents'] == 'not-recorded'
    assert info['Reason'] == (
        'not checkable from the API (versioning never enabled: the versions cannot show '
        'deletes or overwrites); no logging trail records S3 data events for it: deletes and '
        'overwrites are recorded nowhere the pack can read')
    assert reasons({'c7n:object-changes-not-checkable': info}) == [info['Reason']]

    # the trail records the bucket's write data events: the log files are where to look
    ct.put_event_selectors(TrailName='main', EventSelectors=[{
        'ReadWriteType': 'WriteOnly', 'IncludeManagementEvents': True,
        'DataResources': [{'Type': 'AWS::S3::Object', 'Values': [f'arn:aws:s3:::{name}/']}]}])
    info = {b['Name']: b['c7n:object-changes-not-checkable']
            for b in run(UNCHECKABLE, aws, tmp_path)}[name]
    assert info['DataEvents'] == 'recorded'
    assert info['Trails'] == [{'Name': 'main', 'Coverage': 'recorded', 'LogBucket': logs,
                               'LogPrefix': 'ct'}]
    assert 'trail main records its S3 write data events, but the pack does not read' in \
        info['Reason']

    # a stopped trail records nothing
    ct.stop_logging(Name='main')
    info = {b['Name']: b['c7n:object-changes-not-checkable']
            for b in run(UNCHECKABLE, aws, tmp_path)}[name]
    assert info['DataEvents'] == 'not-recorded'


def test_advanced_selectors_for_part_of_the_bucket(aws, tmp_path):
    name = f'media-{aws.id}'
    bucket(aws, name, versioning=None)
    trail(aws, 'data', AdvancedEventSelectors=[{'Name': 'uploads only', 'FieldSelectors': [
        {'Field': 'eventCategory', 'Equals': ['Data']},
        {'Field': 'resources.type', 'Equals': ['AWS::S3::Object']},
        {'Field': 'resources.ARN', 'StartsWith': [f'arn:aws:s3:::{name}/uploads/']}]}])
    info = {b['Name']: b['c7n:object-changes-not-checkable']
            for b in run(UNCHECKABLE, aws, tmp_path)}[name]
    assert info['DataEvents'] == 'partial'
    assert 'for part of it' in info['Reason']


# -- readings, on AWS-shaped documents -------------------------------------------------

@pytest.mark.parametrize('selectors,expected', [
    ({}, 'not-recorded'),
    ({'EventSelectors': [{'ReadWriteType': 'All', 'DataResources': [
        {'Type': 'AWS::S3::Object', 'Values': ['arn:aws:s3']}]}]}, 'recorded'),
    ({'EventSelectors': [{'ReadWriteType': 'ReadOnly', 'DataResources': [
        {'Type': 'AWS::S3::Object', 'Values': ['arn:aws:s3:::b/']}]}]}, 'not-recorded'),
    ({'EventSelectors': [{'ReadWriteType': 'All', 'DataResources': [
        {'Type': 'AWS::S3::Object', 'Values': ['arn:aws:s3:::b/logs/']}]}]}, 'partial'),
    ({'EventSelectors': [{'ReadWriteType': 'All', 'DataResources': [
        {'Type': 'AWS::S3::Object', 'Values': ['arn:aws:s3:::other/']},
        {'Type': 'AWS::Lambda::Function', 'Values': ['arn:aws:lambda']}]}]}, 'not-recorded'),
    ({'AdvancedEventSelectors': [{'FieldSelectors': [
        {'Field': 'eventCategory', 'Equals': ['Data']},
        {'Field': 'resources.type', 'Equals': ['AWS::S3::Object']}]}]}, 'recorded'),
    ({'AdvancedEventSelectors': [{'FieldSelectors': [
        {'Field': 'eventCategory', 'Equals': ['Data']},
        {'Field': 'resources.type', 'Equals': ['AWS::S3::Object']},
        {'Field': 'readOnly', 'Equals': ['true']}]}]}, 'not-recorded'),
    ({'AdvancedEventSelectors': [{'FieldSelectors': [
        {'Field': 'eventCategory', 'Equals': ['Data']},
        {'Field': 'resources.type', 'Equals': ['AWS::S3::Object']},
        {'Field': 'resources.ARN', 'NotStartsWith': ['arn:aws:s3:::b/']}]}]}, 'not-recorded'),
    ({'AdvancedEventSelectors': [{'FieldSelectors': [
        {'Field': 'eventCategory', 'Equals': ['Data']},
        {'Field': 'resources.type', 'Equals': ['AWS::S3::Object']},
        {'Field': 'eventName', 'Equals': ['GetObject']}]}]}, 'not-recorded'),
    ({'AdvancedEventSelectors': [{'FieldSelectors': [
        {'Field': 'eventCategory', 'Equals': ['Data']},
        {'Field': 'resources.type', 'Equals': ['AWS::S3::Object']},
        {'Field': 'eventName', 'Equals': ['PutObject', 'DeleteObject', 'DeleteObjects']},
        {'Field': 'resources.ARN', 'StartsWith': ['arn:aws:s3:::b/']}]}]}, 'recorded'),
    ({'AdvancedEventSelectors': [{'FieldSelectors': [
        {'Field': 'eventCategory', 'Equals': ['Data']},
        {'Field': 'resources.type', 'Equals': ['AWS::S3::Object']},
        {'Field': 'userIdentity.arn', 'NotStartsWith': ['arn:aws:iam::1:role/etl']}]}]},
     'partial'),
    ({'AdvancedEventSelectors': [{'FieldSelectors': [
        {'Field': 'eventCategory', 'Equals': ['Management']}]}]}, 'not-recorded'),
])
def test_s3_write_data_events(selectors, expected):
    assert s3_write_data_events(selectors, 'b') == expected


def test_classify_reads_one_object_like_the_restore_does():
    import datetime
    t = datetime.datetime(2026, 11, 28, 9, 30, tzinfo=datetime.timezone.utc)
    before, after = t - datetime.timedelta(days=1), t + datetime.timedelta(hours=1)

    def v(vid, when, latest=False, etag='"1"'):
        return {'VersionId': vid, 'LastModified': when, 'IsLatest': latest, 'ETag': etag,
                'Size': 1}

    def m(vid, when, latest=False):
        return {'VersionId': vid, 'LastModified': when, 'IsLatest': latest}

    assert classify([v('1', before, True)], [], t) == (None, None)
    assert classify([v('1', before)], [m('m', after, True)], t) == ('deleted', after)
    assert classify([v('2', after, True, '"2"'), v('1', before)], [], t) == ('overwritten', after)
    assert classify([v('2', after, True)], [], t) == ('new', after)
    assert classify([v('3', after, True), v('2', after, etag='"2"'), v('1', before)], [], t)[0] \
        == 'restored'
    # deleted before the incident: nothing of it changed since
    assert classify([v('1', before - datetime.timedelta(days=1))], [m('m', before, True)], t) \
        == (None, None)


def test_readme_lists_the_permissions():
    for policy in (CHANGED, UNCHECKABLE):
        assert_readme_lists_filter_permissions(policy)
