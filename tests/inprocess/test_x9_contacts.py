"""X9 alternate contacts, against the emulator (moto implements alternate contacts)."""
from tests.support import load_policy, policy_vars, run_policy

MISSING = load_policy('detect/x9.yml', 'x9-alternate-contacts-missing')
DIFFER = load_policy('detect/x9.yml', 'x9-alternate-contacts-differ')


def test_alternate_contacts(aws, tmp_path):
    account = aws.client('account')
    [acct] = run_policy(MISSING, policy_vars(), account=aws, output_dir=str(tmp_path))
    assert {c['Type'] for c in acct['c7n:alternate-contacts']} == {
        'SECURITY', 'BILLING', 'OPERATIONS'}
    for ctype in ('SECURITY', 'BILLING', 'OPERATIONS'):
        account.put_alternate_contact(
            AlternateContactType=ctype, EmailAddress=f'{ctype.lower()}@example.com',
            Name='Team', PhoneNumber='+1-555-0100', Title='On call')
    expected = {'security': 'Security@Example.com', 'billing': 'billing@example.com'}
    assert run_policy(MISSING, policy_vars(), account=aws, output_dir=str(tmp_path)) == []
    assert run_policy(DIFFER, policy_vars(expected_contacts=expected), account=aws,
                      output_dir=str(tmp_path)) == []
    account.put_alternate_contact(AlternateContactType='SECURITY', EmailAddress='x@evil.test',
                                  Name='Mallory', PhoneNumber='+1-555-0199', Title='x')
    [acct] = run_policy(DIFFER, policy_vars(expected_contacts=expected), account=aws,
                        output_dir=str(tmp_path))
    assert acct['c7n:alternate-contacts'] == [{
        'Type': 'SECURITY', 'Problem': 'differs', 'EmailAddress': 'x@evil.test',
        'Expected': 'Security@Example.com', 'Name': 'Mallory', 'PhoneNumber': '+1-555-0199',
        'Title': 'x'}]
