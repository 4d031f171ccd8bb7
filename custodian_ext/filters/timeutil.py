"""Times shared by the "created since the incident" filters."""
import datetime

from dateutil.parser import parse as parse_date
from c7n.exceptions import PolicyValidationError

from custodian_ext.settings import is_placeholder

def as_utc(value):
    """An aware UTC datetime from a datetime, an ISO string or epoch seconds; None if empty."""
    if value in (None, ''):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    if not isinstance(value, datetime.datetime):
        value = parse_date(str(value))
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def since_value(filter_, key='since'):
    """The filter's ``since`` timestamp as UTC, or None while it is still a placeholder."""
    value = filter_.data.get(key)
    if is_placeholder(value):
        return None
    try:
        return as_utc(value)
    except (ValueError, OverflowError, TypeError):
        raise PolicyValidationError(
            f"{filter_.data.get('type')}: {key} {value!r} is not a timestamp; write it "
            f"like 2026-11-28T09:30:00Z or use '{{incident_start}}'") from None


def iso(value):
    return as_utc(value).strftime('%Y-%m-%dT%H:%M:%SZ')
