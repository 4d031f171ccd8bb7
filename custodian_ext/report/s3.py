"""Read Custodian output from S3 (``custodian run -s s3://bucket/prefix``, c7n-org alike).

c7n's S3 output (``c7n.output.BlobOutput``) gzips every file and, unless the
URL has ``{...}`` placeholders, adds the policy name and the hour of the run:

    prefix/[<account>/][<region>/]<policy>/YYYY/MM/DD/HH/metadata.json.gz
                                                        resources.json.gz
                                                        custodian-run.log.gz

A policy swept every hour leaves one folder per hour. The report reads the
latest of each policy in each account and region: that is the account as the
last sweep saw it. The files are downloaded and unzipped into a temporary
folder and read like a local output folder.
"""
import gzip
import os
import re
import shutil
import tempfile
import urllib.parse

from custodian_ext.report.loader import ReportInputError

# The files a policy folder holds (action results included).
OUTPUT_FILE = re.compile(
    r'^(metadata\.json|resources\.json|custodian-run\.log|skipped\.json|partial\.json|'
    r'action-results-[\w.-]+\.json)(\.gz)?$')
HOUR_PARTS = (re.compile(r'^\d{4}$'), re.compile(r'^\d{2}$'), re.compile(r'^\d{2}$'),
              re.compile(r'^\d{2}$'))


def parse_url(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != 's3' or not parts.netloc:
        raise ReportInputError(f"{url}: not an S3 URL; write it like s3://bucket/prefix")
    return parts.netloc, parts.path.strip('/')


def split_hour(dir_parts):
    """(logical folder, hour stamp) of a policy folder's key parts."""
    tail = dir_parts[-4:]
    if len(dir_parts) >= 5 and all(p.match(t) for p, t in zip(HOUR_PARTS, tail)):
        return tuple(dir_parts[:-4]), tuple(tail)
    return tuple(dir_parts), ()


def latest_folders(keys, prefix):
    """{logical folder parts: (hour stamp, {file name: key})}, the latest hour of each."""
    folders = {}
    for key in keys:
        rel = key[len(prefix):].lstrip('/') if prefix else key
        parts = rel.split('/')
        if len(parts) < 2 or not OUTPUT_FILE.match(parts[-1]):
            continue
        logical, stamp = split_hour(parts[:-1])
        folders.setdefault(logical, {}).setdefault(stamp, {})[parts[-1]] = key
    out = {}
    for logical, stamps in folders.items():
        # A folder counts only where c7n wrote its metadata.
        complete = [s for s, files in stamps.items()
                    if 'metadata.json' in files or 'metadata.json.gz' in files]
        if complete:
            stamp = max(complete)
            out[logical] = (stamp, stamps[stamp])
    return out


def _client(bucket):
    import boto3
    return boto3.Session().client('s3')


def _list_keys(client, bucket, prefix):
    keys = []
    paginator = client.get_paginator('list_objects_v2')
    kw = {'Bucket': bucket}
    if prefix:
        kw['Prefix'] = prefix + '/'
    for page in paginator.paginate(**kw):
        keys.extend(o['Key'] for o in page.get('Contents') or ())
    return keys


def download(url, dest, client=None):
    """Download the latest output of every policy under ``url`` into ``dest``.

    Returns {local folder: S3 URL of the folder it came from}.
    """
    import botocore.exceptions as bexc
    bucket, prefix = parse_url(url)
    try:
        client = client or _client(bucket)
        keys = _list_keys(client, bucket, prefix)
        folders = latest_folders(keys, prefix)
        if not keys:
            raise ReportInputError(f"{url}: nothing under this prefix; run the policies first")
        if not folders:
            raise ReportInputError(
                f"{url}: no Custodian output here (no metadata.json under it); give the "
                f"URL passed to -s")
        origin = {}
        for logical, (stamp, files) in sorted(folders.items()):
            local = os.path.join(dest, *logical)
            os.makedirs(local, exist_ok=True)
            origin[local] = f"s3://{bucket}/" + '/'.join(
                p for p in (prefix, *logical, *stamp) if p)
            for name, key in files.items():
                body = client.get_object(Bucket=bucket, Key=key)['Body'].read()
                if name.endswith('.gz'):
                    body = gzip.decompress(body)
                    name = name[:-3]
                with open(os.path.join(local, name), 'wb') as fh:
                    fh.write(body)
    except ReportInputError:
        raise
    except bexc.NoCredentialsError:
        raise ReportInputError(
            f"{url}: no AWS credentials found to read it; set AWS_PROFILE or "
            f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
    except bexc.ClientError as e:
        err = e.response.get('Error', {})
        raise ReportInputError(
            f"{url}: S3 refused ({err.get('Code')}: {err.get('Message')})") from None
    except (bexc.BotoCoreError, OSError) as e:
        raise ReportInputError(f"{url}: cannot read it ({e})") from None
    return origin


def load(url, load_tree, client=None):
    """PolicyRuns of the latest output under ``url`` (``load_tree`` reads a local folder)."""
    bucket, prefix = parse_url(url)
    base = '/'.join(p for p in (f"s3://{bucket}", prefix) if p)
    tmp = tempfile.mkdtemp(prefix='custodian-ext-report-')
    try:
        origin = download(url, tmp, client)
        runs = load_tree(tmp, label_root=base)
        for run in runs:
            # paths in the report name the S3 folder, hour included
            local = os.path.join(tmp, *run.path[len(base) + 1:].split('/'))
            run.path = origin.get(local, run.path)
        return runs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
