"""X2: root access keys.

moto 5.2 has no ``<root_account>`` row and a fixed ``AccountAccessKeysPresent:
0``; the emulator process extends moto (custodian_ext_dev.emulator.extensions)
with both, following AWS's documented behaviour. The credential-report
polling and the "summary says yes, report says nothing" case use botocore's
Stubber with AWS-shaped responses.
"""
import datetime

import boto3
import pytest
from botocore.stub import Stubber
from c7n.exceptions import PolicyExecutionError

from custodian_ext.filters.credentials import fetch_credential_report
from tests.support import CREDENTIAL_REPORT_HEADER, load_policy, policy_vars, run_policy

POLICY = load_policy('detect/x2.yml', 'x2-root-access-keys')


def test_flags_root_key_with_details(aws, tmp_path):
    aws.client('iam').create_access_key()  # no UserName, signed by the account: a root key
    [acct] = run_policy(POLICY, policy_vars(), account=aws, output_dir=str(tmp_path))
    info = acct['c7n:root-access-keys']
    assert info['AccountAccessKeysPresent'] == 1
    assert info['credential_report_row'] is True
    assert [k['active'] for k in info['keys']] == [True]


def test_clean_account_with_user_keys_is_not_flagged(aws, tmp_path):
    iam = aws.client('iam')
    iam.create_user(UserName='alice')
    iam.create_access_key(UserName='alice')
    assert run_policy(POLICY, policy_vars(), account=aws, output_dir=str(tmp_path)) == []


def _iam():
    return boto3.client('iam', region_name='us-east-1', aws_access_key_id='x',
                        aws_secret_access_key='y')


def test_report_polling_waits_for_complete_then_reads():
    iam = _iam()
    sleeps = []
    with Stubber(iam) as stub:
        stub.add_response('generate_credential_report', {'State': 'STARTED'})
        stub.add_response('generate_credential_report', {'State': 'INPROGRESS'})
        stub.add_response('generate_credential_report', {'State': 'COMPLETE'})
        stub.add_response('get_credential_report', {
            'Content': (CREDENTIAL_REPORT_HEADER
                        + '<root_account>,arn,x,not_supported,N/A,not_supported,'
                        'not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,'
                        'false,N/A,false,N/A\n').encode(),
            'ReportFormat': 'text/csv', 'GeneratedTime': datetime.datetime(2026, 11, 28)})
        text = fetch_credential_report(iam, sleep=sleeps.append)
    assert text.startswith('user,arn') and len(sleeps) == 2


def test_report_polling_gives_up_with_an_error_not_an_empty_report():
    iam = _iam()
    with Stubber(iam) as stub:
        for _ in range(4):
            stub.add_response('generate_credential_report', {'State': 'INPROGRESS'})
        with pytest.raises(PolicyExecutionError, match='not ready after'):
            fetch_credential_report(iam, max_wait=3, sleep=lambda s: None)


def test_summary_alone_is_enough_to_flag(monkeypatch, tmp_path):
    """AccountAccessKeysPresent=1 flags the account even when the report has no root row."""
    from custodian_ext.filters import credentials
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    load_resources(('aws.account',))
    monkeypatch.setattr(credentials, 'credential_report', lambda manager, max_wait=120: {})
    iam = _iam()
    stub = Stubber(iam)
    stub.add_response('get_account_summary', {'SummaryMap': {'AccountAccessKeysPresent': 1}})
    stub.activate()
    data = dict(POLICY, conditions=[])
    p = Policy(data, Config.empty(region='us-east-1', account_id='111122223333',
                                  output_dir=str(tmp_path)))
    f = p.resource_manager.filters[0]
    monkeypatch.setattr(credentials, 'local_session', lambda factory: type(
        'S', (), {'client': staticmethod(lambda name: iam)})())
    [acct] = f.process([{'account_id': '111122223333'}])
    assert acct['c7n:root-access-keys']['AccountAccessKeysPresent'] == 1
    assert acct['c7n:root-access-keys']['credential_report_row'] is False
