"""X8 restore-object-versions: an S3 bucket hit by ransomware reads back exactly as before.

Runs the shipped policy in-process against the emulator (moto's S3 keeps
versions and delete markers as AWS does). moto stamps versions with the real
time, so the "before" versions are written, then ``incident_boundary()``
gives an ``incident_start`` strictly after them, then the attack is written.
"""
import json
import os

import pytest
import yaml
from c7n.exceptions import PolicyExecutionError

from custodian_ext.actions.restore_s3 import (
    CONTINUATION_FILE, decode_token, encode_token, iter_keys, plan_key)
from custodian_ext_dev.demo.story import incident_boundary
from custodian_ext.settings import parse_timestamp
from tests.support import load_policy, policy_vars, run_policy

POLICY = 'x8-s3-restore-object-versions'
INCIDENT = 'inc-42'


def policy():
    return load_policy('recover/x8.yml', POLICY)


def run(aws, out, start, **overrides):
    variables = policy_vars(incident_start=start, incident_id=INCIDENT, **overrides)
    return run_policy(policy(), variables, account=aws, output_dir=str(out))


def read_results(out):
    with open(os.path.join(out, POLICY, 'action-results-restore-object-versions.json')) as fh:
        return {r['resource_id']: r for r in json.load(fh)}


def read_details(out):
    path = os.path.join(out, POLICY, 'action-details-restore-object-versions.jsonl')
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        return {d['key']: d for d in map(json.loads, fh)}


def make_bucket(s3, name, flag=True, versioning=True):
    s3.create_bucket(Bucket=name)
    if versioning:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={'Status': 'Enabled'})
    if flag:
        s3.put_bucket_tagging(Bucket=name, Tagging={'TagSet': [
            {'Key': 'incident-restore', 'Value': INCIDENT}]})


def state(s3, bucket):
    """Every current object: bytes, content type, metadata, tags and version id."""
    out = {}
    for page in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket):
        for o in page.get('Contents') or ():
            obj = s3.get_object(Bucket=bucket, Key=o['Key'])
            out[o['Key']] = {
                'body': obj['Body'].read(), 'type': obj['ContentType'],
                'meta': obj['Metadata'], 'version': obj['VersionId'],
                'tags': s3.get_object_tagging(Bucket=bucket, Key=o['Key'])['TagSet']}
    return out


def all_versions(s3, bucket):
    versions, markers = set(), set()
    for page in s3.get_paginator('list_object_versions').paginate(Bucket=bucket):
        versions |= {(v['Key'], v['VersionId']) for v in page.get('Versions') or ()}
        markers |= {(m['Key'], m['VersionId']) for m in page.get('DeleteMarkers') or ()}
    return versions, markers


def seed_before(s3, bucket):
    """The bucket before the incident: 8 objects, some with older versions of their own."""
    for i in range(8):
        key = f'data/file-{i}.csv'
        if i % 3 == 0:
            s3.put_object(Bucket=bucket, Key=key, Body=f'old {i}'.encode())
        s3.put_object(Bucket=bucket, Key=key, Body=f'id,value\n{i},{i * i}\n'.encode() * 50,
                      ContentType='text/csv', Metadata={'owner': f'team-{i}'},
                      Tagging=f'class=internal&n={i}')
    s3.put_object(Bucket=bucket, Key='img/logo.png', Body=bytes(range(256)) * 4,
                  ContentType='image/png')


def attack(s3, bucket):
    """Ransomware: re-encrypt some objects, delete others, leave a note."""
    for i in (0, 1, 2):  # client-side re-encryption: a new version with other bytes
        s3.put_object(Bucket=bucket, Key=f'data/file-{i}.csv',
                      Body=b'\x00ENCRYPTED' + bytes([i]) * 64,
                      Metadata={'x-locked': 'yes'})
    s3.delete_object(Bucket=bucket, Key='data/file-3.csv')  # deleted
    s3.delete_object(Bucket=bucket, Key='data/file-4.csv')  # deleted twice
    s3.delete_object(Bucket=bucket, Key='data/file-4.csv')
    s3.put_object(Bucket=bucket, Key='data/file-5.csv', Body=b'ENC')  # overwritten, then deleted
    s3.delete_object(Bucket=bucket, Key='data/file-5.csv')
    s3.put_object(Bucket=bucket, Key='img/logo.png', Body=b'ENC-logo')
    s3.put_object(Bucket=bucket, Key='README-RANSOM.txt', Body=b'pay up')


def test_ransomed_bucket_reads_back_exactly_as_before(aws, tmp_path):
    s3 = aws.client('s3')
    bucket = f'ransomed-{aws.id}'
    make_bucket(s3, bucket)
    seed_before(s3, bucket)
    before = state(s3, bucket)
    start = incident_boundary()
    attack(s3, bucket)
    attacked_versions, _ = all_versions(s3, bucket)
    # A key's versions straddle listing pages; each key comes out once, with all of them.
    full = {k: (len(v), len(m)) for k, v, m in iter_keys(s3, bucket)}
    assert full['data/file-4.csv'] == (1, 2) and full['data/file-0.csv'] == (3, 0)
    for size in (1, 2, 3):
        assert {k: (len(v), len(m)) for k, v, m in iter_keys(s3, bucket, page_size=size)} == full
    assert [k for k, _, _ in iter_keys(s3, bucket, key_marker='data/file-7.csv', page_size=2)] == \
        ['img/logo.png']

    run(aws, tmp_path / 'out', start)

    after = state(s3, bucket)
    ransom = after.pop('README-RANSOM.txt')
    assert ransom['body'] == b'pay up'  # left for review, not deleted
    assert set(after) == set(before)
    for key, was in before.items():
        now = after[key]
        assert (now['body'], now['type'], now['meta'], now['tags']) == \
            (was['body'], was['type'], was['meta'], was['tags']), key
    # untouched objects were not rewritten; deleted ones came back as their own version
    for key in ('data/file-3.csv', 'data/file-4.csv', 'data/file-6.csv', 'data/file-7.csv'):
        assert after[key]['version'] == before[key]['version'], key
    for key in ('data/file-0.csv', 'data/file-1.csv', 'data/file-2.csv', 'data/file-5.csv',
                'img/logo.png'):
        assert after[key]['version'] != before[key]['version'], key
    # every version the attacker wrote is still there, as evidence
    versions_now, _ = all_versions(s3, bucket)
    assert attacked_versions <= versions_now

    [res] = read_results(tmp_path / 'out').values()
    assert res['status'] == 'done' and res['complete'] is True
    assert res['counts'] == {'examined': 10, 'restored': 5, 'undeleted': 2, 'untouched': 2,
                             'left': 1}
    details = read_details(tmp_path / 'out')
    assert details['README-RANSOM.txt']['status'] == 'left'
    assert details['data/file-4.csv']['status'] == 'undeleted'
    assert len(details['data/file-4.csv']['removed_delete_markers']) == 2
    assert details['data/file-0.csv']['source_version'] == before['data/file-0.csv']['version']
    assert set(details) == {'data/file-0.csv', 'data/file-1.csv', 'data/file-2.csv',
                            'data/file-3.csv', 'data/file-4.csv', 'data/file-5.csv',
                            'img/logo.png', 'README-RANSOM.txt'}

    # A second run changes nothing: restored copies match their source.
    versions_before_rerun = all_versions(s3, bucket)
    run(aws, tmp_path / 'again', start)
    assert all_versions(s3, bucket) == versions_before_rerun
    [res] = read_results(tmp_path / 'again').values()
    assert res['status'] == 'skipped' and res['counts']['unchanged'] == 5


def test_resumable_passes_with_a_continuation_token(aws, tmp_path):
    s3 = aws.client('s3')
    bucket = f'big-{aws.id}'
    make_bucket(s3, bucket)
    keys = [f'k{i:02d}' for i in range(9)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=f'clean {k}'.encode())
    start = incident_boundary()
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b'ENC')

    run(aws, tmp_path / 'p1', start, restore_max_objects=4)
    [res] = read_results(tmp_path / 'p1').values()
    assert res['complete'] is False and res['counts']['restored'] == 4
    with open(tmp_path / 'p1' / POLICY / CONTINUATION_FILE) as fh:
        resume = yaml.safe_load(fh)['restore_continuation']
    assert decode_token(resume[bucket])['k'] == 'k03'
    assert [s3.get_object(Bucket=bucket, Key=k)['Body'].read() for k in keys[3:5]] == \
        [b'clean k03', b'ENC']

    run(aws, tmp_path / 'p2', start, restore_max_objects=4, restore_continuation=resume)
    [res] = read_results(tmp_path / 'p2').values()
    assert res['complete'] is False and res['counts'] == {'examined': 4, 'restored': 4}
    with open(tmp_path / 'p2' / POLICY / CONTINUATION_FILE) as fh:
        resume = yaml.safe_load(fh)['restore_continuation']

    run(aws, tmp_path / 'p3', start, restore_max_objects=4, restore_continuation=resume)
    [res] = read_results(tmp_path / 'p3').values()
    assert res['complete'] is True and res['counts'] == {'examined': 1, 'restored': 1}
    assert [s3.get_object(Bucket=bucket, Key=k)['Body'].read() for k in keys] == \
        [f'clean {k}'.encode() for k in keys]
    with open(tmp_path / 'p3' / POLICY / CONTINUATION_FILE) as fh:
        done = yaml.safe_load(fh)['restore_continuation']
    assert decode_token(done[bucket]).get('done') is True

    # With the finished token, the bucket is not scanned again.
    run(aws, tmp_path / 'p4', start, restore_continuation=done)
    [res] = read_results(tmp_path / 'p4').values()
    assert res['status'] == 'skipped' and 'finished by an earlier run' in res['reason']

    # A token issued for other settings is refused, not misapplied.
    token = encode_token(bucket, 'other/', start, 'k01')
    with pytest.raises(PolicyExecutionError, match="prefix 'other/'"):
        run(aws, tmp_path / 'p5', start, restore_continuation={bucket: token})


def test_preview_changes_nothing_and_only_flagged_buckets_of_the_region_are_restored(aws, tmp_path):
    s3 = aws.client('s3')
    flagged, other, unversioned, abroad = (
        f'flagged-{aws.id}', f'other-{aws.id}', f'plain-{aws.id}', f'abroad-{aws.id}')
    make_bucket(s3, flagged)
    make_bucket(s3, other, flag=False)
    make_bucket(s3, unversioned, versioning=False)
    s3_eu = aws.client('s3', 'eu-west-1')
    s3_eu.create_bucket(Bucket=abroad,
                        CreateBucketConfiguration={'LocationConstraint': 'eu-west-1'})
    s3_eu.put_bucket_versioning(Bucket=abroad, VersioningConfiguration={'Status': 'Enabled'})
    s3_eu.put_bucket_tagging(Bucket=abroad, Tagging={'TagSet': [
        {'Key': 'incident-restore', 'Value': INCIDENT}]})
    buckets = (flagged, other, unversioned, abroad)
    for b in buckets:
        s3.put_object(Bucket=b, Key='a.txt', Body=b'clean')
    start = incident_boundary()
    for b in buckets:
        s3.put_object(Bucket=b, Key='a.txt', Body=b'ENC')
    snapshot = {b: all_versions(s3, b) for b in buckets}

    run(aws, tmp_path / 'out', start, restore_preview=True)

    assert {b: all_versions(s3, b) for b in snapshot} == snapshot
    results = read_results(tmp_path / 'out')
    assert set(results) == {flagged, unversioned, abroad}  # the unflagged bucket is not selected
    assert results[flagged]['status'] == 'skipped' and results[flagged]['preview'] is True
    assert results[flagged]['counts'] == {'examined': 1, 'would-restore': 1}
    assert read_details(tmp_path / 'out')['a.txt']['status'] == 'would-restore'
    assert 'versioning was never enabled' in results[unversioned]['reason']
    assert 'the run in eu-west-1 restores it' in results[abroad]['reason']

    # the preview's token is refused by a real run
    with open(tmp_path / 'out' / POLICY / CONTINUATION_FILE) as fh:
        preview_tokens = yaml.safe_load(fh)['restore_continuation']
    with pytest.raises(PolicyExecutionError, match='comes from a preview run'):
        run(aws, tmp_path / 'real', start, restore_continuation=preview_tokens)
    assert {b: all_versions(s3, b) for b in snapshot} == snapshot


def test_foreign_default_kms_key_fails_closed(aws, tmp_path):
    """A default encryption key from another account would encrypt the restored copies: refuse."""
    s3 = aws.client('s3')
    bucket = f'kms-{aws.id}'
    make_bucket(s3, bucket)
    s3.put_object(Bucket=bucket, Key='a.txt', Body=b'clean')
    start = incident_boundary()
    s3.put_object(Bucket=bucket, Key='a.txt', Body=b'ENC')
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={'Rules': [{
        'ApplyServerSideEncryptionByDefault': {
            'SSEAlgorithm': 'aws:kms',
            'KMSMasterKeyID': 'arn:aws:kms:us-east-1:999999999999:key/attacker'}}]})
    before = all_versions(s3, bucket)
    with pytest.raises(PolicyExecutionError, match='999999999999'):
        run(aws, tmp_path / 'out', start)
    assert all_versions(s3, bucket) == before
    assert read_results(tmp_path / 'out')[bucket]['status'] == 'failed'


START = parse_timestamp('2026-11-28T09:30:00Z')


def v(vid, when, latest=False, etag='"e1"', size=10, marker=False):
    out = {'VersionId': vid, 'LastModified': parse_timestamp(when), 'IsLatest': latest}
    if not marker:
        out.update(ETag=etag, Size=size)
    return out


@pytest.mark.parametrize('versions,markers,mfa,expected', [
    # untouched: current version from before the incident
    ([v('1', '2026-11-28T09:00:00Z', True)], [], False, None),
    # deleted before the incident and not touched since: nothing to do
    ([v('1', '2026-11-28T08:00:00Z')], [v('m', '2026-11-28T09:00:00Z', True, marker=True)],
     False, None),
    # written exactly at incident_start counts as after
    ([v('2', '2026-11-28T09:30:00Z', True, etag='"x"'), v('1', '2026-11-28T09:00:00Z')], [], False,
     ('copy', '1')),
    # only delete markers since: remove them
    ([v('1', '2026-11-28T09:00:00Z')], [v('m', '2026-11-28T10:00:00Z', True, marker=True)], False,
     ('undelete', '1')),
    # ... unless MFA delete is on: copy instead
    ([v('1', '2026-11-28T09:00:00Z')], [v('m', '2026-11-28T10:00:00Z', True, marker=True)], True,
     ('copy', '1')),
    # rewritten with the same content (an earlier restore): leave it
    ([v('3', '2026-11-28T11:00:00Z', True), v('2', '2026-11-28T10:00:00Z', etag='"x"'),
      v('1', '2026-11-28T09:00:00Z')], [], False, ('unchanged', '1')),
    # created after the incident: nothing earlier to restore
    ([v('1', '2026-11-28T10:00:00Z', True)], [], False, ('left', None)),
    # deleted before the incident, re-created after: the pre-incident state is "absent"
    ([v('2', '2026-11-28T10:00:00Z', True), v('1', '2026-11-28T08:00:00Z')],
     [v('m', '2026-11-28T09:00:00Z', marker=True)], False, ('left', '1')),
])
def test_plan_key(versions, markers, mfa, expected):
    plan = plan_key(versions, markers, START, can_remove_markers=not mfa)
    if expected is None:
        assert plan is None
    else:
        assert (plan['action'], (plan.get('source') or {}).get('VersionId')) == expected
