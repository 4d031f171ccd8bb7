"""Files the pack writes into a policy's output folder, written whole or not at all.

c7n's ``DirectoryOutput.write_file`` opens the file and writes into it: a run
killed in the middle leaves half a JSON document, which reads as a result
that is not there. ``write_atomic`` writes a temporary file in the same
folder and renames it over the target (``os.replace``, atomic on POSIX and
Windows), so a reader sees the old file or the new one, never part of one.
c7n's S3 output (``BlobOutput``) writes the same local folder and uploads it
when the policy ends; an S3 object is replaced whole by each ``PutObject``.

``mark_partial`` records, in ``partial.json``, what a check could not read
(CloudTrail keeps 90 days of event history; a lookup cut short), so that the
report shows the run as partial rather than as clean. A leaf module: it
imports nothing of the pack.
"""
import json
import logging
import os
import tempfile

log = logging.getLogger('custodian.ext')

PARTIAL_FILE = 'partial.json'


def _root(output):
    """The local folder of a c7n output, or None for outputs that write nowhere."""
    from c7n.output import DirectoryOutput
    if isinstance(output, DirectoryOutput) and output.root_dir:
        return output.root_dir
    return None


def write_atomic(output, name, text, durable=True):
    """Write ``text`` to ``name`` in ``output``'s folder: the whole file or nothing."""
    root = _root(output)
    if root is None:
        return output.write_file(name, text)
    return write_file_atomic(os.path.join(root, name), text, durable)


def write_file_atomic(path, text, durable=True):
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename;
    ``durable``: on the disk (fsync) before the rename, so a crash cannot leave it empty."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def mark_partial(manager, note):
    """Record in the running policy's ``partial.json`` that part of its check was not done.

    ``note`` says what could not be checked, in one line. Notes are kept in
    order, once each; the log says it too.
    """
    ctx = getattr(manager, 'ctx', None)
    policy = getattr(ctx, 'policy', None)
    name = getattr(policy, 'name', None) or manager.data.get('name')
    log.warning("policy %s in %s is partial: %s", name, manager.config.region, note)
    output = getattr(ctx, 'output', None)
    if output is None or not getattr(getattr(policy, 'options', None), 'output_dir', None):
        return
    notes = getattr(ctx, '_ext_partial_notes', None)
    if notes is None:
        notes = []
        try:
            ctx._ext_partial_notes = notes
        except AttributeError:
            pass
    if note in notes:
        return
    notes.append(note)
    write_atomic(output, PARTIAL_FILE, json.dumps({
        'policy': name, 'region': manager.config.region,
        'account_id': manager.config.account_id, 'notes': notes}, indent=2))
