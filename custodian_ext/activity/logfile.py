"""Read one CloudTrail log file as a stream of records, in bounded memory.

A log file is a gzip-compressed JSON document ``{"Records": [{...}, {...}]}``
(https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-log-file-examples.html).
``records(stream)`` decompresses it piece by piece and yields each record as
soon as it is complete, so memory holds one chunk and one record, however
large the file and however many files are read: no file is ever held whole.
It needs only the standard library (``zlib``, ``json.JSONDecoder.raw_decode``),
so it also runs in the pack's Lambda functions.
"""
import json
import zlib

CHUNK = 64 * 1024
MAX_RECORD = 8 * 1024 * 1024   # one record larger than this is not a CloudTrail record
_WS = ' \t\r\n'


class LogFileError(ValueError):
    """The object is not a CloudTrail log file; the message says why."""


def _chunks(stream, chunk_size):
    """Decompressed text from a gzip byte stream (``read(n)``), one piece at a time."""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip header and trailer
    while True:
        raw = stream.read(chunk_size)
        if not raw:
            break
        while raw:
            try:
                out = inflate.decompress(raw, chunk_size)
            except zlib.error as e:
                raise LogFileError(f'not a gzip file: {e}') from None
            if out:
                yield out
            raw = inflate.unconsumed_tail
            if inflate.eof:  # concatenated gzip members: start the next one
                rest = inflate.unused_data
                inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                raw = rest + raw
                if not raw:
                    break
    tail = inflate.flush()
    if tail:
        yield tail


class _Text:
    """A growing window on the decompressed text; consumed from the left."""

    def __init__(self, pieces):
        self.pieces = pieces
        self.decoder = json.JSONDecoder()
        self.buf = ''
        self.pos = 0
        self.done = False
        self._pending = b''

    def more(self):
        """Read one more piece; False at the end of the file."""
        for piece in self.pieces:
            data = self._pending + piece
            try:
                text = data.decode('utf-8')
                self._pending = b''
            except UnicodeDecodeError as e:  # a character split across pieces
                if e.start < len(data) - 3:
                    raise LogFileError(f'not UTF-8 text: {e}') from None
                text, self._pending = data[:e.start].decode('utf-8'), data[e.start:]
            self.buf = self.buf[self.pos:] + text
            self.pos = 0
            return True
        self.done = True
        return False

    def skip_ws(self):
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.buf) or not self.more():
                return

    def peek(self):
        self.skip_ws()
        return self.buf[self.pos] if self.pos < len(self.buf) else ''

    def expect(self, token):
        self.skip_ws()
        while len(self.buf) - self.pos < len(token) and self.more():
            pass
        if not self.buf.startswith(token, self.pos):
            got = self.buf[self.pos:self.pos + 20] or 'the end of the file'
            raise LogFileError(f'expected {token!r}, found {got!r}')
        self.pos += len(token)

    def value(self):
        """The next JSON value, read as far as needed to complete it."""
        self.skip_ws()
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as e:
                if self.done or len(self.buf) - self.pos > MAX_RECORD:
                    raise LogFileError(f'malformed JSON: {e.msg}') from None
                if not self.more():
                    raise LogFileError(f'truncated JSON: {e.msg}') from None
                continue
            if end == len(self.buf) and not self.done and isinstance(obj, (int, float)):
                self.more()  # a number may go on in the next piece
                continue
            self.pos = end
            return obj


def records(stream, chunk_size=CHUNK):
    """Yield the records of a gzip CloudTrail log file read from ``stream``, one at a time."""
    text = _Text(_chunks(stream, chunk_size))
    text.expect('{')
    while True:
        if text.peek() == '}':
            return
        key = text.value()
        text.expect(':')
        if key != 'Records':
            text.value()  # another top-level key: read past it
        else:
            text.expect('[')
            if text.peek() == ']':
                text.expect(']')
            else:
                while True:
                    record = text.value()
                    if not isinstance(record, dict):
                        raise LogFileError('a member of Records is not a JSON object')
                    yield record
                    if text.peek() == ',':
                        text.expect(',')
                        continue
                    text.expect(']')
                    break
        if text.peek() == ',':
            text.expect(',')
            continue
        text.expect('}')
        return
