"""Filter options that carry the pack's settings: ``since: '{incident_start}'``,
``known: '{known_users}'`` and the like.

``custodian validate`` checks a policy before its settings are substituted,
so a still-unsubstituted ``{name}`` (``settings.is_placeholder``) is accepted here,
and the real value is checked when the policy runs with its vars.
"""
import datetime

from dateutil.parser import parse as parse_date
from c7n.exceptions import PolicyValidationError

from custodian_ext.settings import TIMESTAMP_EXAMPLE, is_placeholder


def aware(value):
    """A timestamp (ISO text or datetime) as an aware datetime; naive means UTC."""
    if not isinstance(value, datetime.datetime):
        value = parse_date(str(value))
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def flatten(values):
    """A list option as a flat list of strings: settings may nest lists, blanks are dropped."""
    out = []
    for v in values or ():
        if isinstance(v, (list, tuple)):
            out.extend(flatten(v))
        elif v not in (None, ''):
            out.append(str(v))
    return out


def list_option(data, key):
    v = data.get(key) or []
    return flatten(v if isinstance(v, (list, tuple)) else [v])


def check_timestamp(filter_, key='since'):
    """Raise PolicyValidationError when option ``key`` is a malformed timestamp."""
    value = filter_.data.get(key)
    if value is None or is_placeholder(value):
        return
    try:
        aware(value)
    except (ValueError, OverflowError):
        raise PolicyValidationError(
            f"{filter_.type}: {key} {value!r} is not an ISO-8601 timestamp such as "
            f"{TIMESTAMP_EXAMPLE}") from None
