"""Injected faults: a failed call is an errored check, never a clean one (issue #15, item 3).

The real ``custodian run`` of ``policies/detect`` (three regions) over one
compromised account, once clean and once with the emulator answering a
seeded share of the policies' calls with throttling, server errors,
timeouts past the client's read timeout (1 s here) and access denied
(``custodian_ext_dev.emulator.faults``, not AWS behaviour), each in its
protocol's shape; ``bench/faults.py`` does the seeding, the runs and the
comparison, and prints the README's figure. The invariant: every call that
failed after the client's retries made a check errored in the report, and
every other check found exactly what the clean run found.
"""
import botocore.exceptions
import pytest

from bench import faults as bench
from custodian_ext_dev.emulator import calls

pytestmark = pytest.mark.e2e

SEED, RATE = 3, 0.1   # about 20 faults of every kind in about 200 calls


def test_a_faulted_sweep_errors_exactly_the_checks_it_broke(emulator, tmp_path):
    figure, violations, details = bench.run(emulator.url, str(tmp_path), seed=SEED, rate=RATE)
    assert violations == [], bench.render(figure, violations)
    # a test that cannot fail proves nothing: faults of every kind were injected, some
    # calls failed for good, and their checks were reported as errored
    assert set(figure['by_kind']) == set(bench.KINDS), figure
    assert figure['calls_failed_after_retries'] >= 3, figure
    assert figure['checks_errored'] >= 3, figure
    assert figure['clean_errored'] == 0, figure
    assert figure['checks_unchanged'] == figure['checks'] - figure['checks_errored'] > 100
    failed = [f for f in details['faults']['faults'] if f['failed']]
    assert {f['kind'] for f in failed} >= {'denied', 'error'}, failed
    # the gate fails on errored checks: exit 2 from `custodian-ext report`
    assert details['faulted']['report']['gate']['exit_code'] == 2
    assert details['faulted']['report_exit'] == 2
    assert details['faulted']['exit'] != 0  # and `custodian run` itself did not exit 0


def _policy_client(account, service, region='us-east-1', attempts=1):
    """A client whose calls look like a Custodian policy's (User-Agent c7n/policy#probe)."""
    from botocore.config import Config
    return account.session(region).client(service, config=Config(
        user_agent_extra='c7n/policy#probe', read_timeout=1,
        retries={'mode': 'standard', 'total_max_attempts': attempts}))


@pytest.mark.parametrize('kind,service,call,code', [
    ('denied', 'ec2', 'describe_instances', 'UnauthorizedOperation'),
    ('denied', 'iam', 'list_users', 'AccessDenied'),
    ('denied', 's3', 'list_buckets', 'AccessDenied'),
    ('denied', 'lambda', 'list_functions', 'AccessDeniedException'),
    ('denied', 'cloudtrail', 'describe_trails', 'AccessDeniedException'),
    ('throttle', 'ec2', 'describe_instances', 'RequestLimitExceeded'),
    ('throttle', 'iam', 'list_users', 'Throttling'),
    ('throttle', 's3', 'list_buckets', 'SlowDown'),
    ('throttle', 'lambda', 'list_functions', 'TooManyRequestsException'),
    ('throttle', 'cloudtrail', 'describe_trails', 'ThrottlingException'),
    ('error', 'ec2', 'describe_instances', ('InternalError', 'Unavailable')),
    ('error', 'iam', 'list_users', ('InternalFailure', 'ServiceUnavailable')),
    ('error', 's3', 'list_buckets', ('InternalError', 'ServiceUnavailable')),
    ('error', 'lambda', 'list_functions', ('InternalFailure', 'ServiceUnavailableException')),
    ('error', 'cloudtrail', 'describe_trails',
     ('InternalFailure', 'ServiceUnavailableException')),
])
def test_emulator_answers_each_protocols_fault(emulator, account, kind, service, call, code):
    """botocore parses each injected fault as the error AWS sends for that protocol."""
    client = _policy_client(account, service)
    calls.inject_faults(emulator.url, seed=1, rate=1.0, kinds={kind: 1}, persistent=1.0)
    try:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            getattr(client, call)()
    finally:
        log = calls.injected_faults(emulator.url)
        calls.inject_faults(emulator.url, 0, 0)
    got = e.value.response['Error']['Code']
    assert got in (code if isinstance(code, tuple) else (code,))
    [entry] = log['faults']
    assert (entry['policy'], entry['kind'], entry['code'], entry['failed']) == (
        'probe', kind, got, True)


def test_timeouts_and_transient_faults_clear_on_retry(emulator, account):
    client = _policy_client(account, 'ec2', attempts=1)
    calls.inject_faults(emulator.url, seed=1, rate=1.0, kinds={'timeout': 1}, persistent=1.0,
                        delay=1.5)
    try:
        with pytest.raises(botocore.exceptions.ReadTimeoutError):
            client.describe_instances()
        # transient: the first attempt is refused, botocore's retry is served
        calls.inject_faults(emulator.url, seed=1, rate=1.0, kinds={'error': 1}, persistent=0.0)
        _policy_client(account, 'ec2', attempts=2).describe_instances()
        # calls outside a policy (no c7n/policy# User-Agent) are never faulted
        account.client('ec2').describe_instances()
        log = calls.injected_faults(emulator.url)
    finally:
        calls.inject_faults(emulator.url, 0, 0)
    [entry] = log['faults']
    assert (entry['refused'], entry['served'], entry['failed']) == (1, True, False)


def test_the_comparison_catches_a_swallowed_failure_and_changed_findings():
    """bench.faults.compare, on made-up reports: the invariant's check can fail."""
    def report(runs, findings):
        return {'runs': [{'policy': p, 'region': r, 'status': s, 'error': e}
                         for p, r, s, e in runs],
                'findings': [{'policy': p, 'region': r, 'resource_id': i}
                             for p, r, i in findings]}
    clean = report([('a', 'us-east-1', 'findings', ''), ('b', 'us-east-1', 'clean', '')],
                   [('a', 'us-east-1', 'i-1')])
    spans = {'a': [(100.0, 110.0, 'us-east-1')], 'b': [(110.0, 120.0, 'us-east-1')]}
    fault = {'policy': 'b', 'time': 115.0, 'kind': 'denied', 'code': 'AccessDenied',
             'service': 'iam', 'operation': 'ListUsers', 'refused': 1, 'max': 1,
             'failed': True}
    # the call failed, the check says clean: a violation
    _, violations = bench.compare(clean, clean, {'faults': [dict(fault)]}, spans)
    assert len(violations) == 1 and 'b in us-east-1' in violations[0]
    # the check errored: fine
    errored = report([('a', 'us-east-1', 'findings', ''), ('b', 'us-east-1', 'errored', 'x')],
                     [('a', 'us-east-1', 'i-1')])
    figure, violations = bench.compare(clean, errored, {'faults': [dict(fault)]}, spans)
    assert violations == [] and figure['checks_errored'] == 1
    # a finding lost without an error: a violation
    lost = report([('a', 'us-east-1', 'clean', ''), ('b', 'us-east-1', 'clean', '')], [])
    _, violations = bench.compare(clean, lost, {'faults': []}, spans)
    assert violations == ["a in us-east-1: clean [] but the clean run gave findings ['i-1']"]
    # an error with no failed call of its own policy near it: a violation
    spurious = report([('a', 'us-east-1', 'findings', ''), ('b', 'us-east-1', 'errored', 'x')],
                      [('a', 'us-east-1', 'i-1')])
    _, violations = bench.compare(clean, spurious, {'faults': []}, spans)
    assert violations == ['b in us-east-1: errored without an injected fault: x']


def test_a_global_phase_failure_explains_each_regional_run_that_met_it():
    """The activity review's global phase is computed by whichever regional run of the
    policy asks first; a persistent fault there errors each run that computes it (seen:
    the us-west-2 run computed it, and the fault's region is us-east-1)."""
    def report(statuses):
        return {'runs': [{'policy': 'review', 'region': r, 'status': s,
                          'error': 'ReadTimeoutError' if s == 'errored' else ''}
                         for r, s in statuses], 'findings': []}
    clean = report([('us-east-1', 'clean'), ('us-west-2', 'clean'), ('eu-north-1', 'clean')])
    spans = {'review': [(100.0, 130.0, 'us-east-1'), (100.0, 130.0, 'us-west-2'),
                        (100.0, 105.0, 'eu-north-1')]}
    fault = {'policy': 'review', 'time': 115.0, 'kind': 'timeout', 'code': 'ReadTimeout',
             'service': 'cloudtrail', 'operation': 'LookupEvents', 'region': 'us-east-1',
             'refused': 3, 'max': 3, 'failed': True}
    faulted = report([('us-east-1', 'errored'), ('us-west-2', 'errored'),
                      ('eu-north-1', 'clean')])
    _, violations = bench.compare(clean, faulted, {'faults': [fault]}, spans)
    assert violations == []
    # a run that had ended before the failed call is not explained by it
    early = report([('us-east-1', 'errored'), ('us-west-2', 'clean'), ('eu-north-1', 'errored')])
    _, violations = bench.compare(clean, early, {'faults': [fault]}, spans)
    assert violations == ['review in eu-north-1: errored without an injected fault: '
                          'ReadTimeoutError']
