"""AWS's notices that an access key leaked, as EventBridge delivers them.

Two notices name a leaked key:

- AWS Health, ``source: aws.health``, ``detail-type: AWS Health Event``,
  ``detail.eventTypeCode: AWS_RISK_CREDENTIALS_EXPOSED``. The affected
  entities are the access key ids (``detail.affectedEntities[].entityValue``);
  the event does not name the user. ``detail.affectedAccount`` is the account
  the key belongs to, which differs from ``account`` when the event reaches an
  organization's management account or the Health delegated administrator
  (organizational view). Health sends IAM events to us-east-1, and a backup
  copy to us-west-2 (``detail.backupEvent: "true"``).
  https://docs.aws.amazon.com/health/latest/ug/aws-health-events-eventbridge-schema.html
  https://docs.aws.amazon.com/health/latest/ug/choosing-a-region.html
- Trusted Advisor, ``source: aws.trustedadvisor``, ``detail-type: Trusted
  Advisor Check Item Refresh Notification``, ``detail.check-name: Exposed
  Access Keys``: one flagged key per event, in ``detail.check-item-detail``
  (``Access Key ID``, ``User Name (IAM or Root)``, ``Case ID``, ``Location``,
  ...); ``detail.status`` is ``ERROR`` for a flagged key. Trusted Advisor
  sends its events to us-east-1.
  https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-trustedadvisor.html
  https://github.com/aws/Trusted-Advisor-Tools/tree/master/ExposedAccessKeys

``parse(event, kind)`` turns one into a ``Notice`` or raises
``MalformedNotice`` with the reason; it makes no API call.
"""
import re
from dataclasses import asdict, dataclass, field

HEALTH, TRUSTED_ADVISOR = 'health', 'trusted-advisor'
KINDS = (HEALTH, TRUSTED_ADVISOR)

HEALTH_SOURCE = 'aws.health'
HEALTH_DETAIL_TYPE = 'AWS Health Event'
HEALTH_EVENT_TYPE = 'AWS_RISK_CREDENTIALS_EXPOSED'
ADVISOR_SOURCE = 'aws.trustedadvisor'
ADVISOR_DETAIL_TYPE = 'Trusted Advisor Check Item Refresh Notification'
ADVISOR_CHECK = 'Exposed Access Keys'
ADVISOR_FLAGGED = ('ERROR',)

# The EventBridge rule each kind of notice needs.
PATTERNS = {
    HEALTH: {'source': [HEALTH_SOURCE], 'detail-type': [HEALTH_DETAIL_TYPE],
             'detail': {'eventTypeCode': [HEALTH_EVENT_TYPE]}},
    TRUSTED_ADVISOR: {'source': [ADVISOR_SOURCE], 'detail-type': [ADVISOR_DETAIL_TYPE],
                      'detail': {'check-name': [ADVISOR_CHECK],
                                 'status': list(ADVISOR_FLAGGED)}},
}
# Regions (standard partition) where AWS delivers each notice for IAM keys.
DELIVERY_REGIONS = {HEALTH: ('us-east-1', 'us-west-2'), TRUSTED_ADVISOR: ('us-east-1',)}

KEY_ID_RE = re.compile(r'^[A-Z0-9]{16,128}$')
ACCOUNT_RE = re.compile(r'^\d{12}$')
USER_RE = re.compile(r'^[\w+=,.@-]{1,64}$')
# How Trusted Advisor names the root user in "User Name (IAM or Root)".
ROOT_NAMES = ('root', '<root>', '<root_account>')


class MalformedNotice(ValueError):
    """The event is not a usable notice of a leaked key; the message says why."""


@dataclass
class NamedKey:
    key_id: str
    user_name: str = None  # Trusted Advisor names the user; Health does not


@dataclass
class Notice:
    kind: str
    event_id: str
    time: str
    account: str            # the account the event was delivered to
    affected_account: str   # the account the keys belong to
    keys: list = field(default_factory=list)
    reference: str = ''     # Health event ARN, or Trusted Advisor support case id
    details: dict = field(default_factory=dict)

    def as_dict(self):
        return asdict(self)


def _text(mapping, key, where):
    value = mapping.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MalformedNotice(f"{where}{key} is missing or empty")
    return value.strip()


def _envelope(event, source, detail_type):
    if not isinstance(event, dict):
        raise MalformedNotice(f"the event is a {type(event).__name__}, not a JSON object")
    if event.get('source') != source or event.get('detail-type') != detail_type:
        raise MalformedNotice(
            f"source {event.get('source')!r} / detail-type {event.get('detail-type')!r} is not "
            f"{source} / {detail_type}")
    detail = event.get('detail')
    if not isinstance(detail, dict):
        raise MalformedNotice('detail is missing or not a JSON object')
    account = _text(event, 'account', '')
    if not ACCOUNT_RE.match(account):
        raise MalformedNotice(f"account {account!r} is not a 12-digit account id")
    return detail, account


def _key_id(value, where):
    if not isinstance(value, str) or not KEY_ID_RE.match(value.strip()):
        raise MalformedNotice(f"{where} {value!r} is not an access key id")
    return value.strip()


def parse_health(event):
    detail, account = _envelope(event, HEALTH_SOURCE, HEALTH_DETAIL_TYPE)
    code = detail.get('eventTypeCode')
    if code != HEALTH_EVENT_TYPE:
        raise MalformedNotice(f"detail.eventTypeCode {code!r} is not {HEALTH_EVENT_TYPE}")
    affected = detail.get('affectedAccount', account)
    if not isinstance(affected, str) or not ACCOUNT_RE.match(affected):
        raise MalformedNotice(f"detail.affectedAccount {affected!r} is not a 12-digit account id")
    entities = detail.get('affectedEntities')
    if not isinstance(entities, list) or not entities:
        raise MalformedNotice('detail.affectedEntities names no access key')
    keys = []
    for i, entity in enumerate(entities):
        value = entity.get('entityValue') if isinstance(entity, dict) else None
        kid = _key_id(value, f'detail.affectedEntities[{i}].entityValue')
        if kid not in [k.key_id for k in keys]:
            keys.append(NamedKey(kid))
    return Notice(
        kind=HEALTH, event_id=_text(event, 'id', ''), time=_text(event, 'time', ''),
        account=account, affected_account=affected, keys=keys,
        reference=detail.get('eventArn') or '',
        details={k: detail[k] for k in ('statusCode', 'startTime', 'communicationId',
                                        'backupEvent') if k in detail})


def parse_trusted_advisor(event):
    detail, account = _envelope(event, ADVISOR_SOURCE, ADVISOR_DETAIL_TYPE)
    if detail.get('check-name') != ADVISOR_CHECK:
        raise MalformedNotice(f"detail.check-name {detail.get('check-name')!r} is not "
                              f"{ADVISOR_CHECK!r}")
    if detail.get('status') not in ADVISOR_FLAGGED:
        raise MalformedNotice(f"detail.status {detail.get('status')!r}: Trusted Advisor does "
                              f"not flag the key (it flags with {', '.join(ADVISOR_FLAGGED)})")
    item = detail.get('check-item-detail')
    if not isinstance(item, dict):
        raise MalformedNotice('detail.check-item-detail is missing or not a JSON object')
    kid = _key_id(item.get('Access Key ID'), "detail.check-item-detail 'Access Key ID'")
    user = _text(item, 'User Name (IAM or Root)', "detail.check-item-detail ")
    if user.lower() not in ROOT_NAMES and not USER_RE.match(user):
        raise MalformedNotice(f"detail.check-item-detail 'User Name (IAM or Root)' {user!r} "
                              f"is not an IAM user name")
    return Notice(
        kind=TRUSTED_ADVISOR, event_id=_text(event, 'id', ''), time=_text(event, 'time', ''),
        account=account, affected_account=account, keys=[NamedKey(kid, user)],
        reference=item.get('Case ID') or '',
        details={k: item[k] for k in ('Fraud Type', 'Location', 'Time Updated', 'Deadline',
                                      'Usage (USD per Day)') if k in item})


PARSERS = {HEALTH: parse_health, TRUSTED_ADVISOR: parse_trusted_advisor}


def parse(event, kind):
    """The ``Notice`` in ``event``, a notice of kind ``kind``; ``MalformedNotice`` otherwise."""
    return PARSERS[kind](event)


def is_root(user_name):
    return (user_name or '').lower() in ROOT_NAMES
