"""custodian_ext.shards and `custodian-ext shard`: each batch job's share of the accounts.

tests/cli/test_shards.py runs the shards as separate c7n-org processes against the
emulator and compares their S3 output with one unsharded sweep.
"""
import pytest
import yaml

from custodian_ext import cli, shards
from custodian_ext.errors import PackError


def account(i, tags=()):
    return {'name': f'acct-{i:02d}', 'account_id': '%012d' % (900 - i),
            'role': 'arn:aws:iam::%012d:role/OrganizationAccountAccessRole' % (900 - i),
            'tags': list(tags)}


ACCOUNTS = [account(i) for i in range(7)]


def test_shards_are_disjoint_cover_every_account_and_differ_by_at_most_one():
    parts = [shards.shard(ACCOUNTS, i, 3) for i in range(3)]
    names = [a['name'] for part in parts for a in part]
    assert sorted(names) == sorted(a['name'] for a in ACCOUNTS) and len(set(names)) == 7
    assert sorted(len(p) for p in parts) == [2, 2, 3]


def test_the_share_depends_on_account_ids_not_on_the_files_order():
    reordered = list(reversed(ACCOUNTS))
    for i in range(3):
        assert shards.shard(reordered, i, 3) == shards.shard(ACCOUNTS, i, 3)
    # by account id: the lowest id goes to shard 0
    assert shards.shard(ACCOUNTS, 0, 3)[0]['account_id'] == min(a['account_id'] for a in ACCOUNTS)
    assert shards.assignment(ACCOUNTS, 3) == {
        a['name']: i for i in range(3) for a in shards.shard(ACCOUNTS, i, 3)}


def test_tags_and_ou_paths_select_as_c7n_org_and_aws_accounts_tag_them():
    accounts = [account(1, ['env:prod', 'path:/Workloads', 'path:/Workloads/Prod']),
                account(2, ['env:dev', 'path:/Workloads', 'path:/Workloads/Dev']),
                account(3, ['env:prod', 'path:/Security'])]
    assert [a['name'] for a in shards.select(accounts, ['env:prod'])] == ['acct-01', 'acct-03']
    assert [a['name'] for a in shards.select(accounts, (), ['/Workloads'])] == [
        'acct-01', 'acct-02']
    assert [a['name'] for a in shards.select(accounts, ['env:prod'], ['Workloads/Prod/'])] == [
        'acct-01']
    assert len(shards.select(accounts, (), ['/'])) == 3


@pytest.mark.parametrize('index, count', [(3, 3), (-1, 3), (0, 0), (None, 2)])
def test_an_index_outside_the_count_is_one_clear_line(index, count):
    with pytest.raises(PackError) as e:
        shards.shard(ACCOUNTS, index, count)
    assert '\n' not in str(e.value)


def test_the_batch_engines_index():
    assert shards.index_from_env({'AWS_BATCH_JOB_ARRAY_INDEX': '4'}) == 4
    assert shards.index_from_env({'JOB_COMPLETION_INDEX': '0'}) == 0
    assert shards.index_from_env({}) is None
    with pytest.raises(PackError):
        shards.index_from_env({'JOB_COMPLETION_INDEX': 'two'})


@pytest.fixture
def accounts_file(tmp_path):
    path = tmp_path / 'accounts.yml'
    path.write_text(yaml.safe_dump({'vars': {'global_region': 'us-east-1'},
                                    'accounts': ACCOUNTS}))
    return path


def test_the_command_writes_the_shards_accounts_file_keeping_the_rest(accounts_file, tmp_path,
                                                                      monkeypatch, capsys):
    monkeypatch.setenv('AWS_BATCH_JOB_ARRAY_INDEX', '1')
    out = tmp_path / 'shard.yml'
    assert cli.main(['shard', '--count', '3', '-c', str(accounts_file), '-o', str(out)]) == 0
    data = yaml.safe_load(out.read_text())
    assert data['vars'] == {'global_region': 'us-east-1'}
    assert data['accounts'] == shards.shard(ACCOUNTS, 1, 3)
    assert 'shard 1 of 3: 2 account(s)' in capsys.readouterr().err


def test_the_command_needs_an_index_and_accounts(accounts_file, tmp_path, monkeypatch, capsys):
    for name in shards.INDEX_ENV:
        monkeypatch.delenv(name, raising=False)
    assert cli.main(['shard', '--count', '2', '-c', str(accounts_file), '-o', '-']) == 1
    assert '--index is required' in capsys.readouterr().err
    assert cli.main(['shard', '--index', '0', '--count', '2', '-c', str(accounts_file),
                     '-t', 'env:none', '-o', '-']) == 1
    assert 'no account matches env:none' in capsys.readouterr().err
