"""Shared handling of filter options that carry settings (custodian_ext/filters/options.py)."""
import datetime

import pytest
from c7n.exceptions import PolicyValidationError

from custodian_ext.filters.options import aware, check_timestamp, flatten, list_option


class F:
    type = 'probe'

    def __init__(self, **data):
        self.data = data


def test_timestamp_option_accepts_iso_and_unsubstituted_settings_and_refuses_the_rest():
    check_timestamp(F(since='2026-11-28T09:30:00Z'))
    check_timestamp(F(since='{incident_start}'))  # custodian validate: not substituted yet
    check_timestamp(F())
    with pytest.raises(PolicyValidationError, match="probe: since 'last week' is not an ISO-8601"):
        check_timestamp(F(since='last week'))


def test_aware_reads_naive_times_as_utc():
    assert aware('2026-11-28T09:30:00') == datetime.datetime(
        2026, 11, 28, 9, 30, tzinfo=datetime.timezone.utc)
    assert aware('2026-11-28T10:30:00+01:00').utcoffset() == datetime.timedelta(hours=1)


def test_list_options_flatten_nested_settings_and_drop_blanks():
    assert flatten(['a', ['b', ['c']], '', None, 12]) == ['a', 'b', 'c', '12']
    assert list_option({'known': 'alice'}, 'known') == ['alice']
    assert list_option({}, 'known') == []


def test_respond_guards_count_known_users_as_the_detect_filter_does():
    """known_users may hold patterns: the X3/X4 guards must not act on a pattern-matched user."""
    from custodian_ext.actions.passwords import is_known_user
    action = F(**{'known-users': ['alice', 'svc-*']})
    assert is_known_user(action, 'svc-build') and is_known_user(action, 'alice')
    assert not is_known_user(action, 'backdoor-admin')
