"""Property-based: no settings file or value makes the settings checks crash (issue #15, item 4).

``custodian_ext.settings.load`` and ``validate`` take whatever a user wrote in
``policies/vars.yml`` (or an accounts file's ``vars:``). Whatever it is, they
return the checked settings or raise ``SettingsError`` with one line; never
another exception (a traceback). Generated with hypothesis, from YAML-ish
values (what ``yaml.safe_load`` can produce: None, booleans, numbers with
NaN and infinities, strings, dates, naive and aware datetimes, lists and
mappings) and from arbitrary file contents.
"""
import datetime
import os
import tempfile

import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from custodian_ext import settings

# CI has 2 cores: a modest number of examples (HYPOTHESIS_EXAMPLES=1000 for a longer hunt)
EXAMPLES = hsettings(max_examples=int(os.environ.get('HYPOTHESIS_EXAMPLES', 100)), deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(['2026-11-28T09:30:00Z', '2026-11-28', '2999-01-01T00:00:00Z',
                     '0001-01-01T00:00:00Z', '9999-12-31T23:59:59Z', '2026-11-28T09:30Z',
                     '2026-02-30T09:30:00Z', '2026-11-28T09:30:00+0000', 'us-east-1',
                     'xx-fake-1', '123456789012', 'AKIAIOSFODNN7EXAMPLE', '{incident_start}',
                     's3://bucket/prefix', 'arn:aws:sns:us-east-1:123456789012:t']),
    st.dates(),
    st.datetimes(),
    st.datetimes(timezones=st.sampled_from([datetime.timezone.utc,
                                            datetime.timezone(datetime.timedelta(hours=2))])),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.text(max_size=12), st.integers()),
                                            inner, max_size=4)),
    max_leaves=12)
KEYS = st.one_of(st.sampled_from(sorted(settings.SETTINGS)), st.text(max_size=20),
                 st.sampled_from(['alowed_regions', 'incident-start', 'known_user']))


def _one_line(error):
    message = str(error)
    assert message and '\n' not in message, repr(message)


@EXAMPLES
@given(values=st.dictionaries(KEYS, VALUES, max_size=8),
       strict=st.booleans(), unknown=st.booleans(),
       names=st.one_of(st.none(), st.sets(st.sampled_from(sorted(settings.SETTINGS)))))
def test_validate_returns_settings_or_one_line_error(values, strict, unknown, names):
    try:
        out = settings.validate(values, source='vars.yml', names=names, strict=strict,
                                unknown=unknown)
    except settings.SettingsError as e:
        _one_line(e)
        return
    assert isinstance(out, dict)
    for name in (settings.SETTINGS if names is None else names):
        assert name in out  # checked or defaulted


@EXAMPLES
@given(values=VALUES)
def test_validate_takes_any_document_shape(values):
    try:
        settings.validate(values, source='vars.yml')
    except settings.SettingsError as e:
        _one_line(e)


@EXAMPLES
@given(content=st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    st.dictionaries(KEYS, VALUES, max_size=8).map(
        lambda d: yaml.safe_dump(d, allow_unicode=True, default_flow_style=False)),
    st.builds(lambda head, tail: head + tail,
              st.sampled_from(['incident_start: ', 'allowed_regions: [', '- ', ': :', '? [a]\n',
                               'a: &x [*x]\n', '%YAML 9.9\n---\n',
                               'incident_start: !!python/name:os.system\n']),
              st.text(max_size=60))))
def test_load_returns_settings_or_one_line_error(content):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'vars.yml')
        with open(path, 'wb') as fh:
            fh.write(content if isinstance(content, bytes) else content.encode('utf-8'))
        try:
            out = settings.load(path)
        except settings.SettingsError as e:
            _one_line(e)
            return
        assert isinstance(out, dict)


def test_load_of_a_folder_or_unreadable_file_is_one_line(tmp_path):
    for path in (tmp_path, tmp_path / 'missing.yml'):
        try:
            settings.load(str(path))
        except settings.SettingsError as e:
            _one_line(e)
        else:
            raise AssertionError(f'{path} loaded')
