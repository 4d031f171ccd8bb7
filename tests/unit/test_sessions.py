"""custodian_ext.sessions: botocore sessions share one data loader (c7n-org makes one per account-region)."""
import boto3

from custodian_ext.sessions import share_loader


def test_sessions_share_one_loader_and_its_parsed_models():
    share_loader()
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
