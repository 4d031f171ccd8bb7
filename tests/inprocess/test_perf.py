"""custodian_ext.perf: the performance layer's session and client sharing, installed as the
``custodian`` program installs it (the ``pack_patches`` fixture)."""

import boto3
import pytest


def test_sessions_share_one_loader_and_its_parsed_models():
    a, b = boto3.Session(region_name='us-east-1'), boto3.Session(region_name='eu-west-1')
    loader = a._session.get_component('data_loader')
    assert b._session.get_component('data_loader') is loader
    # boto3 adds its data folder once per session; the shared list keeps one copy
    assert len(loader.search_paths) == len(set(loader.search_paths))
    model = loader.load_service_model('ec2', 'service-2')
    assert b._session.get_component('data_loader').load_service_model('ec2', 'service-2') is model
    # clients still work as before, each with its own region
    assert a.client('ec2', endpoint_url='http://127.0.0.1:1').meta.region_name == 'us-east-1'
    assert b.client('ec2', endpoint_url='http://127.0.0.1:1').meta.region_name == 'eu-west-1'


def probe():
    import boto3
    from botocore.config import Config
    from c7n.credentials import SessionFactory

    calls = []
    factory = SessionFactory('us-east-1')
    factory.policy_name = 'first-policy'
    factory.set_subscribers([lambda s: s.events.register(
        'after-call.*.*', lambda **kw: calls.append(1), unique_id='c7n-api-stats')])
    session = factory()
    ec2 = session.client('ec2', endpoint_url='http://127.0.0.1:9')
    again = session.client('ec2', endpoint_url='http://127.0.0.1:9')
    west = session.client('ec2', region_name='us-west-2', endpoint_url='http://127.0.0.1:9')
    configured = session.client('ec2', endpoint_url='http://127.0.0.1:9', config=Config())
    other = factory().client('ec2', endpoint_url='http://127.0.0.1:9')
    plain = boto3.Session(region_name='us-east-1').client('ec2', endpoint_url='http://127.0.0.1:9')
    plain_again = boto3.Session(region_name='us-east-1').client('ec2', endpoint_url='http://127.0.0.1:9')
    factory.policy_name = 'second-policy'
    factory.update(session)
    handed = session.client('ec2', endpoint_url='http://127.0.0.1:9')
    return ({
        'cached': ec2 is again and handed is ec2,
        'per_region': west is not ec2,
        'config_not_cached': configured is not ec2,
        'per_session': other is not ec2,
        'plain_sessions_not_cached': plain is not plain_again,
        'model_shared': other.meta.service_model is ec2.meta.service_model
                        and plain.meta.service_model is ec2.meta.service_model,
        'user_agent': handed._user_agent_creator._session_user_agent_extra,
        'methods': hasattr(plain, 'describe_instances') and hasattr(handed, 'run_instances'),
        'stats_handler':
            handed.meta.events._emitter._unique_id_handlers.get('c7n-api-stats') is not None
            or handed.meta.events._unique_id_handlers.get('c7n-api-stats') is not None,
    })


def test_performance_layer_caches_clients_per_session_and_shares_models(monkeypatch):
    for k, v in (('AWS_ACCESS_KEY_ID', 'x'), ('AWS_SECRET_ACCESS_KEY', 'x')):
        monkeypatch.setenv(k, v)
    found = probe()
    assert found.pop('user_agent') == 'c7n/policy#second-policy'
    assert found == {k: True for k in found}, found


@pytest.mark.program(None)
def test_without_the_patches_nothing_is_shared():
    a, b = boto3.Session(region_name='us-east-1'), boto3.Session(region_name='eu-west-1')
    assert b._session.get_component('data_loader') is not a._session.get_component('data_loader')
