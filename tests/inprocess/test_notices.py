"""Reading AWS's leaked-key notices (custodian_ext.notices), and the rules that deliver them.

The sample events are under tests/data/react/ (their sources are cited in its
README.md). The rule patterns are checked with moto's EventBridge pattern
matcher, in-process: moto's TestEventPattern API is a stub.
"""
import copy
import json
import os

import pytest
from moto.events.models import EventPattern

from custodian_ext import notices
from tests.support import REPO

DATA = os.path.join(REPO, 'tests', 'data', 'react')


def sample(name):
    with open(os.path.join(DATA, name)) as fh:
        return json.load(fh)


HEALTH = sample('health-exposed-key.json')
ADVISOR = sample('advisor-exposed-key.json')


def matches(kind, event):
    return EventPattern.load(json.dumps(notices.PATTERNS[kind])).matches_event(event)


def test_health_notice_names_the_key_and_the_affected_account():
    n = notices.parse(HEALTH, notices.HEALTH)
    assert (n.kind, n.event_id, n.time, n.account, n.affected_account) == (
        'health', HEALTH['id'], '2026-11-28T09:41:07Z', '123456789012', '123456789012')
    assert [(k.key_id, k.user_name) for k in n.keys] == [('AKIAIOSFODNN7EXAMPLE', None)]
    assert n.reference == HEALTH['detail']['eventArn']


def test_health_notice_received_by_the_management_account():
    event = copy.deepcopy(HEALTH)
    event['detail']['affectedAccount'] = '210987654321'
    event['detail']['affectedEntities'].append({'entityValue': 'AKIAI44QH8DHBEXAMPLE'})
    n = notices.parse(event, notices.HEALTH)
    assert (n.account, n.affected_account) == ('123456789012', '210987654321')
    assert [k.key_id for k in n.keys] == ['AKIAIOSFODNN7EXAMPLE', 'AKIAI44QH8DHBEXAMPLE']


def test_advisor_notice_names_the_key_and_the_user():
    n = notices.parse(ADVISOR, notices.TRUSTED_ADVISOR)
    assert [(k.key_id, k.user_name) for k in n.keys] == [('AKIAIOSFODNN7EXAMPLE', 'deploy-bot')]
    assert n.affected_account == '123456789012'
    assert n.reference == '12345678-1234-1234-abcd-1234567890ab'
    assert n.details['Location'].startswith('https://github.com/')


def _without(event, *path):
    event = copy.deepcopy(event)
    target = event
    for p in path[:-1]:
        target = target[p]
    del target[path[-1]]
    return event


def _with(event, value, *path):
    event = copy.deepcopy(event)
    target = event
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return event


@pytest.mark.parametrize('kind,event,reason', [
    ('health', [], 'the event is a list, not a JSON object'),
    ('health', ADVISOR, "source 'aws.trustedadvisor'"),
    ('health', _with(HEALTH, 'AWS_EC2_OPERATIONAL_ISSUE', 'detail', 'eventTypeCode'),
     "eventTypeCode 'AWS_EC2_OPERATIONAL_ISSUE' is not AWS_RISK_CREDENTIALS_EXPOSED"),
    ('health', _with(HEALTH, [], 'detail', 'affectedEntities'), 'names no access key'),
    ('health', _without(HEALTH, 'detail', 'affectedEntities'), 'names no access key'),
    ('health', _with(HEALTH, [{'entityValue': 'arn:aws:iam::123456789012:user/x'}], 'detail',
                     'affectedEntities'), 'is not an access key id'),
    ('health', _with(HEALTH, 'nope', 'detail', 'affectedAccount'), 'affectedAccount'),
    ('health', _with(HEALTH, '{"eventTypeCode": "AWS_RISK_CREDENTIALS_EXPOSED"}', 'detail'),
     'detail is missing or not a JSON object'),
    ('health', _without(HEALTH, 'account'), 'account is missing'),
    ('trusted-advisor', _with(ADVISOR, 'IAM Group', 'detail', 'check-name'),
     "check-name 'IAM Group' is not 'Exposed Access Keys'"),
    ('trusted-advisor', _with(ADVISOR, 'OK', 'detail', 'status'), "status 'OK'"),
    ('trusted-advisor', _without(ADVISOR, 'detail', 'check-item-detail', 'Access Key ID'),
     "'Access Key ID' None is not an access key id"),
    ('trusted-advisor', _with(ADVISOR, '', 'detail', 'check-item-detail',
                              'User Name (IAM or Root)'), 'User Name (IAM or Root) is missing'),
    ('trusted-advisor', _with(ADVISOR, 'a b/c', 'detail', 'check-item-detail',
                              'User Name (IAM or Root)'), 'is not an IAM user name'),
])
def test_malformed_notice_says_why(kind, event, reason):
    with pytest.raises(notices.MalformedNotice) as e:
        notices.parse(event, kind)
    assert reason in str(e.value), str(e.value)


def test_root_key_is_recognised():
    event = _with(ADVISOR, '<root_account>', 'detail', 'check-item-detail',
                  'User Name (IAM or Root)')
    [key] = notices.parse(event, notices.TRUSTED_ADVISOR).keys
    assert notices.is_root(key.user_name) and not notices.is_root('deploy-bot')


def test_rule_patterns_match_their_notice_only():
    assert matches(notices.HEALTH, HEALTH) and not matches(notices.HEALTH, ADVISOR)
    assert matches(notices.TRUSTED_ADVISOR, ADVISOR)
    assert not matches(notices.TRUSTED_ADVISOR, HEALTH)
    # other Health events and other Trusted Advisor checks or statuses do not invoke them
    assert not matches(notices.HEALTH, _with(HEALTH, 'AWS_EC2_OPERATIONAL_ISSUE', 'detail',
                                              'eventTypeCode'))
    assert not matches(notices.TRUSTED_ADVISOR, _with(ADVISOR, 'IAM Group', 'detail', 'check-name'))
    assert not matches(notices.TRUSTED_ADVISOR, _with(ADVISOR, 'OK', 'detail', 'status'))
    # the backup copy Health sends to us-west-2 matches too
    assert matches(notices.HEALTH, _with(HEALTH, 'true', 'detail', 'backupEvent'))
