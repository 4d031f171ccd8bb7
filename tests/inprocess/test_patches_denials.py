"""custodian_ext/patches/denials.py: c7n's swallowed access denials, made errors.

In-process with botocore's Stubber and AWS-shaped error responses: each test
shows c7n's own code hiding the denial, then the wrapper raising it. The
wrappers are not in the patch table (no pack policy uses these paths today).
"""
import logging
import types

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from c7n.executor import MainThreadExecutor

from custodian_ext.patches import denials


def stubbed(service):
    client = boto3.Session(region_name='us-east-1', aws_access_key_id='x',
                           aws_secret_access_key='x').client(service)
    return client, Stubber(client)


FUNCTIONS = [{'FunctionName': 'open'}, {'FunctionName': 'private'}, {'FunctionName': 'locked'}]
POLICY = '{"Statement": [{"Principal": "*"}]}'


def lambda_stubs():
    client, stub = stubbed('lambda')
    stub.add_response('get_policy', {'Policy': POLICY}, {'FunctionName': 'open'})
    stub.add_client_error('get_policy', 'ResourceNotFoundException', http_status_code=404,
                          expected_params={'FunctionName': 'private'})
    stub.add_client_error('get_policy', 'AccessDeniedException', http_status_code=403,
                          service_message='User: x is not authorized to perform: '
                                          'lambda:GetPolicy',
                          expected_params={'FunctionName': 'locked'})
    return client, stub


def test_lambda_policies_denied_is_an_error_not_an_unshared_function():
    from c7n.resources.awslambda import get_lambda_policies
    log = logging.getLogger('test')
    client, stub = lambda_stubs()
    with stub:
        stock = list(get_lambda_policies(client, MainThreadExecutor,
                                         [dict(f) for f in FUNCTIONS], log))
    # c7n: the denied function comes back without its policy, as if it had none
    assert sorted(f['FunctionName'] for f in stock) == ['locked', 'open']
    assert 'c7n:Policy' not in [f for f in stock if f['FunctionName'] == 'locked'][0]
    client, stub = lambda_stubs()
    patched = denials.lambda_policies(get_lambda_policies)
    with stub, pytest.raises(ClientError, match='lambda:GetPolicy'):
        patched(client, MainThreadExecutor, [dict(f) for f in FUNCTIONS], log)
    client, stub = lambda_stubs()
    with stub:
        found = patched(client, MainThreadExecutor, [dict(f) for f in FUNCTIONS[:2]], log)
    assert [(f['FunctionName'], f['c7n:Policy']) for f in found] == [('open', POLICY)]


def sqs_source(client):
    manager = types.SimpleNamespace(
        get_client=lambda: client, retry=lambda f, **kw: f(**kw),
        executor_factory=MainThreadExecutor, log=logging.getLogger('test'))
    return types.SimpleNamespace(manager=manager)


def test_sqs_queue_denied_is_an_error_not_a_missing_queue():
    from c7n.resources.sqs import DescribeQueue
    url = 'https://sqs.us-east-1.amazonaws.com/123456789012/q'
    client, stub = stubbed('sqs')
    stub.add_client_error('get_queue_attributes', 'AccessDenied', http_status_code=403)
    with stub:
        assert DescribeQueue.augment(sqs_source(client), [url]) == []  # c7n: queue gone
    client, stub = stubbed('sqs')
    stub.add_client_error('get_queue_attributes', 'AccessDenied', http_status_code=403)
    augment = denials.sqs_augment(DescribeQueue.augment)
    with stub, pytest.raises(ClientError):
        augment(sqs_source(client), [url])
    client, stub = stubbed('sqs')
    stub.add_client_error('get_queue_attributes', 'AWS.SimpleQueueService.NonExistentQueue')
    with stub:
        assert augment(sqs_source(client), [url]) == []  # deleted meanwhile: as before


@pytest.mark.parametrize('code,raises', [('AccessDenied', True), ('Throttling', False)])
def test_resources_by_id_raises_denials_only(code, raises):
    from c7n.query import QueryResourceManager

    def get_resources(ids):
        raise ClientError({'Error': {'Code': code, 'Message': 'm'}}, 'GetUser')
    manager = types.SimpleNamespace(
        _get_cached_resources=lambda ids: None, log=logging.getLogger('test'),
        source=types.SimpleNamespace(get_resources=get_resources), augment=lambda r: r)
    assert QueryResourceManager.get_resources(manager, ['u']) == []  # c7n: nothing found
    patched = denials.resources_by_id(QueryResourceManager.get_resources)
    if raises:
        with pytest.raises(ClientError):
            patched(manager, ['u'])
    else:
        assert patched(manager, ['u']) == []
