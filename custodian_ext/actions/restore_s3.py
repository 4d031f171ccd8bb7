"""``restore-object-versions`` (aws.s3): put objects back to their last version before the incident.

This is the recovery from S3 ransomware: mass overwrite, client-side
re-encryption (both are just new versions) or deletion (delete markers).
"""
import base64
import json
import logging
import re
from collections import Counter

import yaml
from botocore.exceptions import ClientError
from c7n.exceptions import PolicyValidationError
from c7n.query import RetryPageIterator
from c7n.resources.s3 import bucket_client, get_region
from c7n.utils import get_retry, local_session, type_schema

from custodian_ext.actions.core import DONE, FAILED, SKIPPED, result
from custodian_ext.actions.recovery import (
    RECOVER_SCHEMA, RecoverAction, as_utc, iso)
from custodian_ext.registry import register_action
from custodian_ext.settings import SETTINGS, SettingsError, or_placeholder

log = logging.getLogger('custodian.ext.actions.restore_s3')

#: CopyObject copies objects up to 5 GiB; larger ones need a multipart copy
COPY_LIMIT = 5 * 1024 ** 3
#: storage classes a restored copy keeps; archive classes are restored to STANDARD
KEEP_CLASSES = ('STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER_IR')
#: version ids listed per object in the details, at most
SUSPECT_LIST_LIMIT = 20
CONTINUATION_FILE = 'restore-continuation.yml'
DEFAULT_MAX_OBJECTS = SETTINGS['restore_max_objects'].default
TOKEN_VERSION = 1

_retry = get_retry((
    'SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded',
    'ServiceUnavailable', 'InternalError', 'RequestTimeout'))


class S3RetryPageIterator(RetryPageIterator):
    retry = staticmethod(_retry)


# -- continuation tokens ---------------------------------------------------------

def encode_token(bucket, prefix, incident_start, key, done=False, preview=False):
    """An opaque, URL-safe token: where a pass over a bucket stopped, and for what."""
    data = {'v': TOKEN_VERSION, 'b': bucket, 'p': prefix, 't': incident_start, 'k': key}
    if done:
        data['done'] = True
    if preview:
        data['preview'] = True
    raw = json.dumps(data, separators=(',', ':'), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip('=')


def decode_token(token):
    try:
        raw = base64.urlsafe_b64decode(token + '=' * (-len(token) % 4))
        data = json.loads(raw)
    except (ValueError, TypeError):
        raise ValueError('not a token printed by restore-object-versions') from None
    if not isinstance(data, dict) or data.get('v') != TOKEN_VERSION or 'b' not in data:
        raise ValueError('not a token printed by restore-object-versions')
    return data


# -- listing and planning --------------------------------------------------------

def iter_keys(client, bucket, prefix='', key_marker=None, page_size=1000):
    """Yield ``(key, versions, delete_markers)`` per key, each newest first.

    ListObjectVersions pages split a key's versions anywhere, and boto3
    returns versions and delete markers as two lists; the last key of a
    page is held back until the next page shows a different key.
    """
    paginator = client.get_paginator('list_object_versions')
    paginator.PAGE_ITERATOR_CLS = S3RetryPageIterator
    kw = {'Bucket': bucket, 'Prefix': prefix or '',
          'PaginationConfig': {'PageSize': page_size}}
    if key_marker:
        kw['KeyMarker'] = key_marker  # listing starts after this key
    held_key, held = None, None
    for page in paginator.paginate(**kw):
        groups = {}
        for v in page.get('Versions') or ():
            groups.setdefault(v['Key'], ([], []))[0].append(v)
        for m in page.get('DeleteMarkers') or ():
            groups.setdefault(m['Key'], ([], []))[1].append(m)
        # S3 lists keys in UTF-8 binary order
        for key in sorted(groups, key=lambda k: k.encode('utf-8')):
            versions, markers = groups[key]
            if key == held_key:
                held[0].extend(versions)
                held[1].extend(markers)
                continue
            if held_key is not None:
                yield held_key, held[0], held[1]
            held_key, held = key, (versions, markers)
    if held_key is not None:
        yield held_key, held[0], held[1]


def _newest_first(entries):
    # stable: entries sharing a timestamp keep S3's listing order (newest first)
    return sorted(entries, key=lambda e: as_utc(e['LastModified']), reverse=True)


def plan_key(versions, markers, start, can_remove_markers=True):
    """What restores one object to its state just before ``start``; None if untouched.

    Returns a dict with ``action`` one of:

    - ``copy``: copy ``source`` (the newest version before ``start``) over as
      the new current version;
    - ``undelete``: only delete markers were placed at or after ``start``:
      removing them (``markers``) makes ``source`` current again, with its
      original version id;
    - ``unchanged``: the current version was written after ``start`` but has
      the same content (ETag and size) as ``source``, e.g. an earlier restore;
    - ``left``: nothing safe to do (``reason`` says why); a person decides.
    """
    versions, markers = _newest_first(versions), _newest_first(markers)
    latest = next((e for e in versions + markers if e.get('IsLatest')), None)
    if latest is None:
        return {'action': 'left', 'reason': 'no current version in the listing'}
    if as_utc(latest['LastModified']) < start:
        return None
    suspect = _newest_first([e for e in versions + markers
                             if as_utc(e['LastModified']) >= start])
    plan = {'suspect_versions': [e['VersionId'] for e in suspect[:SUSPECT_LIST_LIMIT]],
            'suspect_count': len(suspect)}
    before = [v for v in versions if as_utc(v['LastModified']) < start]
    if not before:
        return dict(plan, action='left', reason=(
            'created at or after incident_start: there is no earlier version; the '
            'versions are kept for review'))
    source = before[0]
    plan['source'] = source
    marker_before = next((m for m in markers if as_utc(m['LastModified']) < start), None)
    if marker_before is not None:
        m_time, s_time = as_utc(marker_before['LastModified']), as_utc(source['LastModified'])
        if m_time > s_time:
            return dict(plan, action='left', reason=(
                'deleted before incident_start: the object did not exist at the incident, '
                'so there is nothing to put back (versions are never deleted)'))
        if m_time == s_time:
            return dict(plan, action='left', reason=(
                'a version and a delete marker from before incident_start share a timestamp; '
                'which came last cannot be told from the listing'))
    written_after = [v for v in versions if as_utc(v['LastModified']) >= start]
    if not written_after and can_remove_markers:
        return dict(plan, action='undelete', markers=[
            m['VersionId'] for m in markers if as_utc(m['LastModified']) >= start])
    if ('ETag' in latest and latest.get('ETag') == source.get('ETag')
            and latest.get('Size') == source.get('Size')):
        return dict(plan, action='unchanged')
    return dict(plan, action='copy')


# -- the action ------------------------------------------------------------------

@register_action('restore-object-versions', ['s3'])
class RestoreObjectVersions(RecoverAction):
    """Restore each object changed at or after ``incident-start`` to its last earlier version.

    For every object under ``prefix`` whose current version was written, or
    whose delete marker was placed, at or after ``incident-start``:

    - overwritten (or re-encrypted): the newest version from before
      ``incident-start`` is copied over it as the new current version, with
      its metadata, tags, storage class and server-side encryption;
    - deleted: the delete markers placed since are removed, which makes the
      earlier version current again with its own version id (with MFA delete
      on, the earlier version is copied instead);
    - created after the incident, or deleted before it: left as it is and
      listed for a person.

    No version is ever deleted: what the attacker wrote stays as evidence.
    An object already matching its earlier version (same ETag and size) is
    not rewritten, so a pass can be repeated.

    At most ``max-objects`` objects (keys) are examined per run, over all
    buckets; a bucket left unfinished gets a continuation token. The run
    writes them to ``restore-continuation.yml`` in the policy's output; put
    that mapping in ``restore_continuation`` (policies/vars.yml) and run
    again to go on where it stopped. Each changed, failed or left object is
    one line of ``action-details-restore-object-versions.jsonl``.

    :example:

    .. code-block:: yaml

        policies:
          - name: x8-s3-restore-object-versions
            resource: aws.s3
            filters:
              - 'tag:incident-restore': '{incident_id}'
            actions:
              - type: restore-object-versions
                incident-start: '{incident_start}'
                incident-id: '{incident_id}'
                prefix: ''
                max-objects: '{restore_max_objects}'
                continuation: '{restore_continuation}'
                dry-run-report: '{restore_preview}'
    """

    schema = type_schema(
        'restore-object-versions',
        prefix={'type': 'string'},
        **RECOVER_SCHEMA,
        **{'max-objects': or_placeholder({'type': 'integer', 'minimum': 1}),
           'continuation': or_placeholder({'type': 'object',
                                           'additionalProperties': {'type': 'string'}})})
    permissions = (
        's3:GetBucketVersioning', 's3:GetEncryptionConfiguration', 's3:ListBucketVersions',
        's3:GetObjectVersion', 's3:GetObjectVersionTagging', 's3:PutObject',
        's3:PutObjectTagging', 's3:DeleteObjectVersion', 'kms:Decrypt', 'kms:GenerateDataKey')
    id_key = 'Name'
    retry = staticmethod(_retry)

    def validate(self):
        super().validate()
        self.option('max-objects', 'restore_max_objects', DEFAULT_MAX_OBJECTS)
        tokens = self.option('continuation', 'restore_continuation', {}) or {}
        for bucket, token in tokens.items():
            try:
                data = decode_token(token)
            except ValueError as e:
                raise PolicyValidationError(
                    f"{self.type}: continuation.{bucket}: {e}; copy it from "
                    f"{CONTINUATION_FILE} in the previous run's output") from None
            if data['b'] != bucket:
                raise PolicyValidationError(
                    f"{self.type}: continuation.{bucket}: the token was issued for bucket "
                    f"{data['b']}")
        return self

    @property
    def prefix(self):
        return self.data.get('prefix') or ''

    def process(self, resources):
        self.remaining = self.option('max-objects', 'restore_max_objects', DEFAULT_MAX_OBJECTS)
        self.tokens_in = dict(self.option('continuation', 'restore_continuation', {}) or {})
        self.tokens_out = {}
        try:
            return super().process(resources)
        finally:
            self.write_continuation()

    def write_continuation(self):
        tokens = dict(self.tokens_in)
        tokens.update(self.tokens_out)
        output = getattr(self.manager.ctx, 'output', None)
        if not self.tokens_out or output is None:
            return
        unfinished = sorted(b for b, t in self.tokens_out.items()
                            if not decode_token(t).get('done'))
        header = (
            '# restore-object-versions: to go on where this run stopped, put this mapping\n'
            '# in policies/vars.yml and run the policy again. Finished buckets carry a\n'
            "# 'done' token, so a repeated run skips them.\n")
        if self.preview:
            header += ('# These tokens come from a preview (dry-run-report) run: only a preview '
                       'accepts them.\n')
        output.write_file(CONTINUATION_FILE, header + yaml.safe_dump(
            {'restore_continuation': tokens}, default_flow_style=False, sort_keys=True))
        if unfinished:
            log.info('%s: stopped at the object bound in %s; resume with restore_continuation '
                     'from %s', self.type, ', '.join(unfinished), CONTINUATION_FILE)

    # -- one bucket ----------------------------------------------------------------

    def start_token(self, bucket):
        """Where to start in ``bucket``: (key marker, done); raises on a token for other
        settings."""
        token = self.tokens_in.get(bucket)
        if not token:
            return None, False
        data = decode_token(token)
        start = iso(self.incident_start)
        if data.get('t') != start or (data.get('p') or '') != self.prefix:
            raise SettingsError(
                f"the continuation token for {bucket} was issued for incident_start "
                f"{data.get('t')} and prefix {data.get('p')!r}, not {start} and "
                f"{self.prefix!r}; remove it from restore_continuation to start over")
        if data.get('preview') and not self.preview:
            raise SettingsError(
                f"the continuation token for {bucket} comes from a preview run (nothing was "
                f"restored up to it); remove it from restore_continuation")
        return data.get('k'), bool(data.get('done'))

    def versioning(self, client, bucket, resource):
        if 'Versioning' in resource and resource['Versioning'] is not None:
            return resource['Versioning']
        return self.retry(client.get_bucket_versioning, Bucket=bucket)

    def default_key_problem(self, client, bucket):
        """Why restored copies must not be written yet: a default KMS key from another account."""
        account = self.manager.config.account_id
        try:
            conf = self.retry(client.get_bucket_encryption, Bucket=bucket)
        except ClientError as e:
            if e.response['Error']['Code'] == 'ServerSideEncryptionConfigurationNotFoundError':
                return None
            raise
        for rule in conf.get('ServerSideEncryptionConfiguration', {}).get('Rules') or ():
            key = (rule.get('ApplyServerSideEncryptionByDefault') or {}).get('KMSMasterKeyID') or ''
            m = re.match(r'^arn:aws[\w-]*:kms:[^:]*:(\d{12}):', key)
            if m and account and m.group(1) != account:
                return (f"the bucket's default encryption uses KMS key {key} of account "
                        f"{m.group(1)}; objects without their own encryption would be restored "
                        f"under it. Set the default encryption back to a key you own, then run "
                        f"again")
        return None

    def process_resource(self, b):
        bucket = b['Name']
        region = get_region(b)
        if self.manager.config.region and region != self.manager.config.region:
            # c7n lists every bucket in every region's run: restore each once, at home
            return result(bucket, SKIPPED, f'the bucket is in {region}: the run in {region} '
                          f'restores it (include -r {region})')
        client = bucket_client(local_session(self.manager.session_factory), b)
        versioning = self.versioning(client, bucket, b)
        if versioning.get('Status') not in ('Enabled', 'Suspended'):
            return result(bucket, SKIPPED, 'versioning was never enabled: there are no earlier '
                          'versions to restore from')
        try:
            key_marker, done = self.start_token(bucket)
        except SettingsError as e:
            return result(bucket, FAILED, str(e))
        common = {'prefix': self.prefix, 'incident_start': iso(self.incident_start),
                  'preview': self.preview}
        if done:
            self.tokens_out[bucket] = self.tokens_in[bucket]
            return result(bucket, SKIPPED, 'finished by an earlier run (its restore_continuation '
                          'token says done); remove the token to scan the bucket again',
                          complete=True, **common)
        if self.remaining <= 0:
            if bucket in self.tokens_in:
                self.tokens_out[bucket] = self.tokens_in[bucket]
            return result(bucket, SKIPPED, 'the object bound (max-objects) was used up by earlier '
                          'buckets in this run; run again to continue', complete=False,
                          resume_after=key_marker, **common)
        problem = self.default_key_problem(client, bucket)
        if problem:
            if self.preview:
                return result(bucket, SKIPPED, f'preview (dry-run-report): a real run would '
                              f'refuse this bucket: {problem}', **common)
            return result(bucket, FAILED, problem, **common)
        remove_markers = versioning.get('MFADelete') != 'Enabled'
        counts, complete, resume = self.scan(client, bucket, key_marker, remove_markers)
        finished = complete and not counts['failed']
        self.tokens_out[bucket] = encode_token(
            bucket, self.prefix, iso(self.incident_start), None if finished else resume,
            done=finished, preview=self.preview)
        details = dict(common, counts=dict(counts), complete=finished,
                       continuation=self.tokens_out[bucket])
        changed = counts['restored'] + counts['undeleted']
        summary = ', '.join(f'{n} {k}' for k, n in sorted(counts.items()) if n)
        if counts['failed']:
            return result(bucket, FAILED, f"{counts['failed']} objects could not be restored "
                          f"(see action-details-{self.type}.jsonl): {self._first_error}; {summary}",
                          **details)
        if self.preview:
            return result(bucket, SKIPPED, f'preview (dry-run-report), nothing changed: {summary}',
                          **details)
        if changed:
            return result(bucket, DONE, summary, **details)
        return result(bucket, SKIPPED, f'nothing to restore: {summary or "no objects"}', **details)

    def scan(self, client, bucket, key_marker, remove_markers):
        """Examine keys after ``key_marker`` up to the bound; return (counts, complete, resume).

        ``resume`` is the key marker for the next run: the last key examined,
        or, after a failure, the key before the first failed one, so that the
        next run tries it again.
        """
        counts = Counter()
        start = self.incident_start
        complete, resume, failed = True, key_marker, False
        self._first_error = ''
        for key, versions, markers in iter_keys(client, bucket, self.prefix, key_marker):
            if self.remaining <= 0:
                complete = False
                break
            self.remaining -= 1
            counts['examined'] += 1
            plan = plan_key(versions, markers, start, remove_markers)
            if plan is None:
                counts['untouched'] += 1
            elif plan['action'] == 'unchanged':
                counts['unchanged'] += 1
            else:
                status = self.apply(client, bucket, key, plan)
                counts[status] += 1
                failed = failed or status == 'failed'
            if not failed:
                resume = key
        return counts, complete, resume

    def apply(self, client, bucket, key, plan):
        """Carry out (or, in preview, describe) one object's plan; record a detail line."""
        source = plan.get('source') or {}
        detail = {'bucket': bucket, 'key': key, 'action': plan['action'],
                  'suspect_versions': plan.get('suspect_versions'),
                  'suspect_count': plan.get('suspect_count')}
        if source:
            detail.update(source_version=source['VersionId'],
                          source_last_modified=iso(as_utc(source['LastModified'])))
        self.details.append(detail)
        if plan['action'] == 'left':
            detail.update(status='left', reason=plan['reason'])
            return 'left'
        if self.preview:
            detail['status'] = f"would-{'undelete' if plan['action'] == 'undelete' else 'restore'}"
            if plan['action'] == 'undelete':
                detail['delete_markers'] = plan['markers']
            return detail['status']
        try:
            if plan['action'] == 'undelete':
                for marker in plan['markers']:
                    self.retry(client.delete_object, Bucket=bucket, Key=key, VersionId=marker)
                detail.update(status='undeleted', removed_delete_markers=plan['markers'])
                return 'undeleted'
            detail['new_version'] = self.copy_version(client, bucket, key, source)
            detail['status'] = 'restored'
            return 'restored'
        except (ClientError, ValueError) as e:
            reason = (f"{e.response['Error']['Code']}: {e.response['Error'].get('Message', '')}"
                      if isinstance(e, ClientError) else str(e))
            detail.update(status='failed', reason=reason)
            if not self._first_error:
                self._first_error = f'{key}: {reason}'
            return 'failed'

    def copy_version(self, client, bucket, key, source):
        """Copy ``source`` over ``key`` as its new current version; return the new version id."""
        if (source.get('Size') or 0) > COPY_LIMIT:
            raise ValueError(
                f"{source['Size']} bytes: CopyObject copies at most 5 GiB; copy version "
                f"{source['VersionId']} by hand (aws s3 cp with --version-id... or a multipart "
                'copy)')
        head = self.retry(client.head_object, Bucket=bucket, Key=key, VersionId=source['VersionId'])
        if head.get('SSECustomerAlgorithm'):
            raise ValueError('encrypted with a customer-provided key (SSE-C): copy it by hand '
                             'with that key')
        kw = {'Bucket': bucket, 'Key': key,
              'CopySource': {'Bucket': bucket, 'Key': key, 'VersionId': source['VersionId']},
              'MetadataDirective': 'COPY', 'TaggingDirective': 'COPY'}
        # Keep the earlier version's own encryption, not the bucket default the
        # attacker may have changed.
        sse = head.get('ServerSideEncryption')
        if sse:
            kw['ServerSideEncryption'] = sse
            if sse.startswith('aws:kms') and head.get('SSEKMSKeyId'):
                kw['SSEKMSKeyId'] = head['SSEKMSKeyId']
                if head.get('BucketKeyEnabled'):
                    kw['BucketKeyEnabled'] = True
        if source.get('StorageClass') in KEEP_CLASSES:
            kw['StorageClass'] = source['StorageClass']
        return self.retry(client.copy_object, **kw).get('VersionId')
