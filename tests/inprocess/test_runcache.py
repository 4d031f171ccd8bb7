"""custodian_ext.runcache, in-process: what one account-region run shares, and what it never does.

The pieces are tested on their own, without installing the layer into this
process (it would then serve every other in-process test from one cache);
tests/cli/test_performance.py runs it installed, in the real console scripts.
"""
import boto3
import pytest
from botocore.exceptions import ClientError
from c7n.config import Config

from custodian_ext import runcache


@pytest.fixture(autouse=True)
def _empty():
    runcache.clear()
    yield
    runcache.clear()


def config(account='111111111111', region='us-east-1'):
    return Config.empty(account_id=account, region=region)


def test_each_get_is_a_copy_so_one_policy_never_sees_anothers_annotations():
    cache = runcache.RunCache(config())
    cache.save({'resource': 'ec2'}, [{'InstanceId': 'i-1'}])
    first = cache.get({'resource': 'ec2'})
    first[0]['c7n:MatchedFilters'] = ['State.Name']
    assert cache.get({'resource': 'ec2'}) == [{'InstanceId': 'i-1'}]
    assert cache.get({'resource': 'ebs'}) is None
    assert cache.load() and cache.size() > 0


def test_another_account_region_starts_empty_and_nothing_accumulates():
    east = runcache.RunCache(config(region='us-east-1'))
    east.save('k', ['east'])
    west = runcache.RunCache(config(region='us-west-2'))
    assert west.get('k') is None          # never served another region's listing
    west.save('k', ['west'])
    other = runcache.RunCache(config(account='222222222222', region='us-west-2'))
    assert other.get('k') is None         # nor another account's
    # one account-region is held at a time: the first has been let go
    assert east.get('k') is None
    assert east.size() == 0


def test_cache_key_holds_the_policys_query_block():
    class Manager:
        data = {'query': [{'augment-keys': ['Policy']}]}

    key = runcache.query_in_cache_key(lambda self, q: {'resource': 's3', 'q': q})(Manager(), None)
    assert key['policy_query'] == [{'augment-keys': ['Policy']}]
    Manager.data = {}
    assert 'policy_query' not in runcache.query_in_cache_key(
        lambda self, q: {'resource': 's3', 'q': q})(Manager(), None)


class FakePolicy:
    def __init__(self, actions, dryrun):
        self.data = {'actions': actions} if actions else {}
        self.options = Config.empty(dryrun=dryrun)


class FakeMode:
    """What the patch wraps: c7n's PullMode.run, which every entry point reaches."""
    def __init__(self, actions, dryrun):
        self.policy = FakePolicy(actions, dryrun)


@pytest.mark.parametrize('actions, dryrun, kept', [
    ([], False, True),                # detection: the next policy may reuse the listing
    (['stop'], True, True),           # a dry run changed nothing
    (['stop'], False, False),         # actions ran: the next policy must see what changed
])
def test_a_policy_that_acted_empties_the_cache(actions, dryrun, kept):
    cache = runcache.RunCache(config())
    cache.save('k', ['listed'])
    runcache.acting_policies_bypass(lambda self: None)(FakeMode(actions, dryrun))
    assert (cache.get('k') == ['listed']) is kept


def test_an_action_that_fails_still_empties_the_cache():
    cache = runcache.RunCache(config())
    cache.save('k', ['listed'])

    def boom(self):
        raise RuntimeError('half done')

    with pytest.raises(RuntimeError):
        runcache.acting_policies_bypass(boom)(FakeMode(['stop'], False))
    assert cache.get('k') is None


def client(service, region='us-east-1', key='AKIAEXAMPLE1'):
    # never called: shared_read is handed the call to make
    return boto3.Session(aws_access_key_id=key, aws_secret_access_key='x',
                         region_name=region).client(service, endpoint_url='http://127.0.0.1:9')


def counting(answer):
    made = []

    def call():
        made.append(1)
        if isinstance(answer, Exception):
            raise answer
        return answer
    return call, made


def test_a_shared_read_is_made_once_per_account_region_and_parameters():
    trails = client('cloudtrail')
    call, made = counting({'trailList': [{'Name': 't'}]})
    for _ in range(3):
        assert runcache.shared_read(trails, 'DescribeTrails', {}, call) == {
            'trailList': [{'Name': 't'}]}
    assert len(made) == 1
    # other parameters, another region, another account (access key): asked again
    runcache.shared_read(trails, 'DescribeTrails', {'includeShadowTrails': False}, call)
    runcache.shared_read(client('cloudtrail', 'eu-west-1'), 'DescribeTrails', {}, call)
    runcache.shared_read(client('cloudtrail', key='AKIAEXAMPLE2'), 'DescribeTrails', {}, call)
    assert len(made) == 4


def test_reads_outside_the_list_are_never_shared():
    iam = client('iam')
    call, made = counting({'State': 'COMPLETE'})
    for _ in range(2):
        runcache.shared_read(iam, 'GenerateCredentialReport', {}, call)
    assert len(made) == 2


def err(code, op):
    return ClientError({'Error': {'Code': code, 'Message': code}}, op)


def test_an_error_that_is_an_answer_is_shared_and_raised_again():
    orgs = client('organizations')
    call, made = counting(err('AWSOrganizationsNotInUseException', 'DescribeOrganization'))
    for _ in range(2):
        with pytest.raises(ClientError) as e:
            runcache.shared_read(orgs, 'DescribeOrganization', {}, call)
        assert e.value.response['Error']['Code'] == 'AWSOrganizationsNotInUseException'
    assert len(made) == 1


def test_throttling_and_access_denied_are_never_kept():
    orgs = client('organizations')
    for code in ('TooManyRequestsException', 'AccessDeniedException'):
        call, made = counting(err(code, 'DescribeOrganization'))
        for _ in range(2):
            with pytest.raises(ClientError):
                runcache.shared_read(orgs, 'DescribeOrganization', {}, call)
        assert len(made) == 2


def test_a_policy_with_actions_reads_and_verifies_against_the_account_as_it_is():
    """An action that re-reads what it changed (restart-logging checks GetTrailStatus after
    StartLogging) must never be answered from before the change."""
    cache = runcache.RunCache(config())
    cache.save('k', ['listed by a detect policy'])
    trails = client('cloudtrail')
    before, made = counting({'IsLogging': False})
    runcache.shared_read(trails, 'GetTrailStatus', {'Name': 't'}, before)
    seen = {}

    def run(self):
        seen['listing'] = cache.get('k')
        cache.save('k2', ['listed by the acting policy'])
        after, made_after = counting({'IsLogging': True})
        seen['status'] = runcache.shared_read(trails, 'GetTrailStatus', {'Name': 't'}, after)
        seen['calls'] = len(made_after)

    runcache.acting_policies_bypass(run)(FakeMode(['restart-logging'], False))
    assert seen == {'listing': None, 'status': {'IsLogging': True}, 'calls': 1}
    assert cache.get('k2') is None and cache.get('k') is None
    assert not runcache.bypassed()
