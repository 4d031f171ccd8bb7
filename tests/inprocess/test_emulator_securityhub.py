"""The emulator's Security Hub findings API (custodian_ext_dev/emulator/securityhub.py).

What moto 5.2.5 lacks or gets wrong, checked against the behaviour the
Security Hub API reference documents: the hub must be enabled, batches hold
1 to 100 findings, only the finding's own account imports it under the
default product, ASFF required attributes, BatchUpdateFindings, the
customer's Workflow and Note surviving a provider's update, the workflow
reset when a finding is made ACTIVE again, GetFindings filters.
"""
import pytest
from botocore.exceptions import ClientError

from tests.support import new_account

REGION = 'eu-west-1'


def hub(account):
    client = account.client('securityhub', REGION)
    client.enable_security_hub()
    return client


def finding(account, fid='f-1', **over):
    f = {
        'SchemaVersion': '2018-10-08', 'Id': fid,
        'ProductArn': f'arn:aws:securityhub:{REGION}:{account.id}:product/{account.id}/default',
        'GeneratorId': 'custodian-ext/test', 'AwsAccountId': account.id,
        'Types': ['Software and Configuration Checks/AWS Security Best Practices/test'],
        'CreatedAt': '2026-11-28T10:00:00.000Z', 'UpdatedAt': '2026-11-28T10:00:00.000Z',
        'Severity': {'Label': 'HIGH'}, 'Title': 'title', 'Description': 'description',
        'Resources': [{'Type': 'Other', 'Id': 'r-1'}],
        'ProductFields': {'custodian-ext/Policy': 'test'},
    }
    f.update(over)
    return f


def code(e):
    return e.value.response['Error']['Code']


def test_finding_calls_need_security_hub_enabled(account):
    client = account.client('securityhub', REGION)
    for call in (lambda: client.batch_import_findings(Findings=[finding(account)]),
                 lambda: client.get_findings(),
                 lambda: client.batch_update_findings(
                     FindingIdentifiers=[{'Id': 'x', 'ProductArn': 'y'}],
                     Workflow={'Status': 'RESOLVED'})):
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) == 'InvalidAccessException'


def test_batches_of_one_to_a_hundred(account):
    client = hub(account)
    with pytest.raises(ClientError) as e:
        client.batch_import_findings(Findings=[finding(account, f'f-{i}') for i in range(101)])
    assert code(e) == 'InvalidInputException'
    resp = client.batch_import_findings(Findings=[finding(account, f'f-{i}') for i in range(100)])
    assert (resp['SuccessCount'], resp['FailedCount']) == (100, 0)


def test_only_the_findings_own_account_imports_it(account, emulator):
    client = hub(account)
    other = new_account(emulator.url)
    with pytest.raises(ClientError) as e:
        client.batch_import_findings(Findings=[finding(account, AwsAccountId=other.id)])
    assert code(e) == 'AccessDeniedException'
    assert 'is not authorized to perform: securityhub:BatchImportFindings' in str(e.value)
    theirs = f'arn:aws:securityhub:{REGION}:{other.id}:product/{other.id}/default'
    with pytest.raises(ClientError) as e:
        client.batch_import_findings(Findings=[finding(account, ProductArn=theirs)])
    assert code(e) == 'AccessDeniedException'
    assert client.get_findings()['Findings'] == []


def test_asff_required_attributes(account):
    client = hub(account)
    bad = finding(account, 'bad')
    del bad['Severity']  # required by ASFF; botocore's model does not check it
    resp = client.batch_import_findings(Findings=[finding(account, 'good'), bad,
                                                  finding(account, 'long', Title='x' * 257),
                                                  finding(account, 'types', Types=['Nope/x'])])
    assert resp['SuccessCount'] == 1 and resp['FailedCount'] == 3
    errors = {f['Id']: f['ErrorMessage'] for f in resp['FailedFindings']}
    assert "required property 'Severity'" in errors['bad']
    assert 'Title' in errors['long'] and 'namespace' in errors['types']
    assert [f['Id'] for f in client.get_findings()['Findings']] == ['good']


def test_update_keeps_the_customers_workflow_and_note(account):
    client = hub(account)
    client.batch_import_findings(Findings=[finding(account)])
    [stored] = client.get_findings()['Findings']
    assert stored['Workflow'] == {'Status': 'NEW'} and stored['RecordState'] == 'ACTIVE'
    assert stored['Region'] == REGION
    arn = stored['ProductArn']
    resp = client.batch_update_findings(
        FindingIdentifiers=[{'Id': 'f-1', 'ProductArn': arn}, {'Id': 'nope', 'ProductArn': arn},
                            {'Id': 'f-1', 'ProductArn': arn}],
        Workflow={'Status': 'SUPPRESSED'}, Note={'Text': 'accepted', 'UpdatedBy': 'alice'})
    assert resp['ProcessedFindings'] == [{'Id': 'f-1', 'ProductArn': arn}]
    assert sorted(u['ErrorCode'] for u in resp['UnprocessedFindings']) == [
        'DuplicatedFindingIdentifier', 'FindingNotFound']
    [after] = client.get_findings()['Findings']
    assert after['UpdatedAt'] == stored['UpdatedAt']  # BatchUpdateFindings leaves it
    # a provider's update (BatchImportFindings) cannot change Workflow or Note
    client.batch_import_findings(Findings=[finding(
        account, UpdatedAt='2026-11-29T10:00:00.000Z', Title='new title',
        Workflow={'Status': 'NEW'}, Note={'Text': 'x', 'UpdatedBy': 'provider',
                                          'UpdatedAt': '2026-11-29T10:00:00.000Z'})])
    [again] = client.get_findings()['Findings']
    assert again['Title'] == 'new title' and again['UpdatedAt'] == '2026-11-29T10:00:00.000Z'
    assert again['Workflow'] == {'Status': 'SUPPRESSED'}
    assert (again['Note']['Text'], again['Note']['UpdatedBy']) == ('accepted', 'alice')
    with pytest.raises(ClientError) as e:
        client.batch_update_findings(FindingIdentifiers=[{'Id': 'f-1', 'ProductArn': arn}],
                                     Workflow={'Status': 'DONE'})
    assert code(e) == 'InvalidInputException'


def test_archived_then_active_again_resets_a_resolved_workflow(account):
    client = hub(account)
    client.batch_import_findings(Findings=[finding(account)])
    arn = client.get_findings()['Findings'][0]['ProductArn']
    client.batch_import_findings(Findings=[finding(account, RecordState='ARCHIVED')])
    client.batch_update_findings(FindingIdentifiers=[{'Id': 'f-1', 'ProductArn': arn}],
                                 Workflow={'Status': 'RESOLVED'})
    [f] = client.get_findings()['Findings']
    assert (f['RecordState'], f['Workflow']['Status']) == ('ARCHIVED', 'RESOLVED')
    client.batch_import_findings(Findings=[finding(account, RecordState='ACTIVE')])
    [f] = client.get_findings()['Findings']
    assert (f['RecordState'], f['Workflow']['Status']) == ('ACTIVE', 'NEW')


def test_get_findings_filters_and_pages(account):
    client = hub(account)
    client.batch_import_findings(Findings=[
        finding(account, f'a-{i}', GeneratorId='custodian-ext/a',
                ProductFields={'custodian-ext/Policy': 'a'}) for i in range(5)] + [
        finding(account, 'b-1', GeneratorId='custodian-ext/b', RecordState='ARCHIVED'),
        finding(account, 'c-1', GeneratorId='other/c')])

    def ids(**filters):
        out, token = [], None
        while True:
            kw = {'Filters': filters, 'MaxResults': 2}
            if token:
                kw['NextToken'] = token
            page = client.get_findings(**kw)
            out += [f['Id'] for f in page['Findings']]
            token = page.get('NextToken')
            if not token:
                return out

    assert ids(GeneratorId=[{'Value': 'custodian-ext/', 'Comparison': 'PREFIX'}]) == [
        'a-0', 'a-1', 'a-2', 'a-3', 'a-4', 'b-1']
    assert ids(GeneratorId=[{'Value': 'custodian-ext/b', 'Comparison': 'EQUALS'},
                            {'Value': 'other/c', 'Comparison': 'EQUALS'}]) == ['b-1', 'c-1']
    assert ids(RecordState=[{'Value': 'ACTIVE', 'Comparison': 'EQUALS'}],
               GeneratorId=[{'Value': 'custodian-ext/a', 'Comparison': 'NOT_EQUALS'}]) == ['c-1']
    assert ids(ProductFields=[{'Key': 'custodian-ext/Policy', 'Value': 'a',
                               'Comparison': 'EQUALS'}]) == ['a-0', 'a-1', 'a-2', 'a-3', 'a-4']
    with pytest.raises(ClientError) as e:
        client.get_findings(Filters={'MalwareName': [{'Value': 'x', 'Comparison': 'EQUALS'}]})
    assert code(e) == 'InvalidInputException' and 'not emulated' in str(e.value)
