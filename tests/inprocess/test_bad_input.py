"""Bad input gets one clear line or a clearly marked partial result (issue #15, item 4).

In-process: the future ``incident_start``; duplicate accounts
(``custodian_ext.accounts``); region names and regions not enabled
(``custodian_ext.regions``, against the emulator's per-account DescribeRegions);
a report folder that mixes two runs (``custodian_ext.report.mixed``); a
partial check in every report format. tests/cli/test_bad_input.py runs the
console scripts.
"""
import datetime
import json
import os
import shutil
import time

import pytest

from custodian_ext import accounts_file, policyfiles, regions, settings
from custodian_ext.errors import PackError
from custodian_ext.report import document, render
from custodian_ext.report.loader import ReportInputError, load_runs
from tests.support import REPO

FIXTURE = os.path.join(REPO, 'tests', 'data', 'report', 'org')


def _iso(dt):
    return dt.strftime('%Y-%m-%dT%H:%M:%SZ')


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


# -- incident_start ------------------------------------------------------------

@pytest.mark.parametrize('ahead', [
    datetime.timedelta(days=365),          # 2027 for 2026
    datetime.timedelta(hours=2),           # local time (UTC+2) written as UTC
    settings.CLOCK_SKEW + datetime.timedelta(minutes=1),
])
def test_future_incident_start_is_one_line(ahead):
    value = _iso(_now() + ahead)
    with pytest.raises(settings.SettingsError) as e:
        settings.validate({'incident_start': value, 'allowed_regions': ['us-east-1']},
                          source='vars.yml')
    message = str(e.value)
    assert message.startswith(f'vars.yml: incident_start: {value} is ')
    assert 'in the future' in message and 'local time written as UTC' in message
    assert '\n' not in message


def test_incident_start_within_the_clock_skew_margin_or_long_ago_passes():
    for value in (_iso(_now() + settings.CLOCK_SKEW - datetime.timedelta(minutes=1)),
                  _iso(_now() - datetime.timedelta(days=400)),
                  # YAML reads an unquoted timestamp as a datetime
                  _now().replace(microsecond=0) - datetime.timedelta(days=120)):
        out = settings.validate({'incident_start': value}, names=['incident_start'])
        assert out['incident_start'].endswith('Z')


def test_settings_errors_stay_on_one_line():
    with pytest.raises(settings.SettingsError) as e:
        settings.validate({'expected_contacts': {'secu\nrity': 'a@b'}}, source='v.yml',
                          names=['expected_contacts'])
    assert '\n' not in str(e.value) and 'secu\\nrity' in str(e.value)
    for bad in (float('nan'), float('inf')):
        with pytest.raises(settings.SettingsError, match='greater than 0'):
            settings.validate({'stale_days': bad}, names=['stale_days'])


# -- accounts file -------------------------------------------------------------

def _accounts(*entries):
    return {'accounts': [dict(zip(('name', 'account_id'), e)) for e in entries]}


def test_duplicate_account_ids_are_one_line():
    data = _accounts(('prod', '111111111111'), ('dev', '222222222222'),
                     ('prod-again', '111111111111'))
    with pytest.raises(PackError) as e:
        accounts_file.check_unique(data, 'accounts.yml')
    assert str(e.value) == (
        "accounts.yml: accounts #1 (prod) and #3 (prod-again) have the same account id "
        "'111111111111'; each account must appear once, with its own name (the name is its "
        "output folder)")


def test_duplicate_account_names_are_one_line():
    data = _accounts(('prod', '111111111111'), ('prod', '222222222222'))
    with pytest.raises(PackError, match=r"accounts #1 \(111111111111\) and #2 \(222222222222\) "
                                        r"have the same name 'prod'"):
        accounts_file.check_unique(data, 'accounts.yml')


def test_distinct_accounts_and_odd_entries_pass():
    accounts_file.check_unique(_accounts(('prod', '111111111111'), ('dev', '222222222222')))
    accounts_file.check_unique({'accounts': ['not a mapping', {'name': 'x'}, {'account_id': ''},
                                        {'account_id': ''}]})
    accounts_file.check_unique({'subscriptions': []})
    accounts_file.check_unique(None)


# -- regions -------------------------------------------------------------------

def test_region_names_that_do_not_exist_are_one_line():
    regions.check_names(['us-east-1', 'eu-north-1', 'all', 'us-gov-west-1', 'cn-north-1'])
    with pytest.raises(PackError) as e:
        regions.check_names(['us-east-1', 'xx-fake-1'])
    assert str(e.value).startswith('-r xx-fake-1: not an AWS region')
    with pytest.raises(PackError, match='did you mean eu-north-1'):
        regions.check_names(['eu-nort-1'])


def test_regions_not_enabled_in_the_account_are_one_line(aws):
    """The emulator lists only the account's enabled regions (DescribeRegions)."""
    from custodian_ext_dev.emulator import session
    s = session(aws.url, account_id=aws.id)
    regions.check_enabled(s, ['us-east-1', 'eu-north-1', 'all'], 'us-east-1', aws.id)
    with pytest.raises(PackError) as e:
        regions.check_run(['us-east-1', 'ap-east-1'], s, 'us-east-1', aws.id)
    assert str(e.value) == (
        f"-r ap-east-1: not enabled in account {aws.id}: ap-east-1 (not-opted-in); enable it "
        f"(aws account enable-region --region-name ap-east-1) or leave it out")
    aws.client('account').enable_region(RegionName='ap-east-1')
    regions.check_run(['us-east-1', 'ap-east-1'], s, 'us-east-1', aws.id)


def test_regions_check_is_skipped_when_describe_regions_is_denied(aws, monkeypatch, caplog):
    from custodian_ext_dev.emulator import session
    from tests.support import client_error, inject_faults

    def denied(params, call):
        raise client_error('UnauthorizedOperation', 'DescribeRegions')
    inject_faults(monkeypatch, DescribeRegions=denied)
    regions.check_enabled(session(aws.url, account_id=aws.id), ['ap-east-1'], 'us-east-1')
    assert 'cannot check which regions are enabled' in caplog.text


# -- a report folder that mixes two runs --------------------------------------------

def _copy(tmp_path):
    dest = tmp_path / 'org'
    shutil.copytree(FIXTURE, dest)
    return dest


def _meta(folder, **execution):
    path = os.path.join(folder, 'metadata.json')
    with open(path) as fh:
        meta = json.load(fh)
    meta['execution'].update(execution)
    with open(path, 'w') as fh:
        json.dump(meta, fh)
    return meta


def test_one_run_is_not_mixed(tmp_path):
    assert load_runs([str(_copy(tmp_path))])


def test_runs_a_day_apart_in_one_folder_are_refused(tmp_path):
    src = _copy(tmp_path)
    run = src / 'dev' / 'us-east-1' / 'x1-quarantined-user-active-keys'
    start = _meta(run)['execution']['start']
    _meta(run, start=start + 86400, end_time=start + 86401)
    with pytest.raises(ReportInputError) as e:
        load_runs([str(src)])
    message = str(e.value)
    assert message.startswith(f'{src}: mixes more than one run, not merged: detect runs stop at ')
    assert 'minutes later' in message and '--allow-mixed' in message and '\n' not in message
    warnings = []
    assert load_runs([str(src)], allow_mixed=True, warnings=warnings)
    assert len(warnings) == 1 and 'detect runs stop at' in warnings[0]


def test_a_result_left_by_an_earlier_run_is_refused(tmp_path):
    """An errored run that left the previous run's resources.json behind is not clean."""
    src = _copy(tmp_path)
    run = src / 'prod' / 'us-east-1' / 'x1-quarantined-user-active-keys'
    start = _meta(run)['execution']['start']
    os.utime(run / 'resources.json', (start - 3600, start - 3600))
    with pytest.raises(ReportInputError, match=r'x1-quarantined-user-active-keys/resources.json '
                                               r'was written .*, before the run in its '
                                               r'metadata.json started'):
        load_runs([str(src)])


def test_two_accounts_files_in_one_folder_are_refused(tmp_path):
    src = _copy(tmp_path)
    run = src / 'dev' / 'us-east-1' / 'x1-quarantined-user-active-keys'
    path = run / 'metadata.json'
    meta = json.loads(path.read_text())
    meta['config']['account_id'] = '333333333333'
    path.write_text(json.dumps(meta))
    with pytest.raises(ReportInputError, match='account folder dev holds runs of accounts'):
        load_runs([str(src)])


def test_custodian_runs_of_other_policy_files_are_refused(tmp_path):
    prod = _copy(tmp_path) / 'prod'
    one = prod / 'us-east-1'
    for i, name in enumerate(['r3-3-ec2-outside-allowed-regions',
                              'x1-quarantined-user-active-keys']):
        path = one / name / 'metadata.json'
        meta = json.loads(path.read_text())
        meta['config']['configs'] = [f'policies/detect/file{i}.yml']
        path.write_text(json.dumps(meta))
    with pytest.raises(ReportInputError, match='detect runs with different policy files'):
        load_runs([str(one)])


# -- partial checks ------------------------------------------------------------------

def test_a_partial_check_is_shown_in_every_format(tmp_path):
    src = _copy(tmp_path)
    run = src / 'prod' / 'us-east-1' / 'x1-quarantined-user-active-keys'
    note = ('CloudTrail keeps 90 days of event history: events from 2026-01-01T00:00:00Z to '
            '2026-09-02T00:00:00Z cannot be checked in us-east-1')
    (run / 'partial.json').write_text(json.dumps({'notes': [note]}))
    os.utime(run / 'partial.json', (time.time(), time.time()))
    doc = document.build(load_runs([str(src)]), fail_on='high')
    [partial] = doc['partial']
    assert (partial['policy'], partial['account'], partial['partial']) == (
        'x1-quarantined-user-active-keys', 'prod', [note])
    assert doc['summary']['runs']['partial'] == 1
    for fmt in ('md', 'html', 'text', 'junit', 'json'):
        assert note[:60] in render.render(doc, fmt), fmt
    assert 'Partial checks' in render.render(doc, 'md')
    (run / 'partial.json').write_text('{"notes": 3}')
    with pytest.raises(ReportInputError, match=r'partial.json: expected \{"notes": \[...\]\}'):
        load_runs([str(src)])


# -- a policy file c7n-org would load in its workers only ----------------------------

def _x1(**change):
    import yaml
    with open(os.path.join(REPO, 'policies', 'detect', 'x1.yml')) as fh:
        data = yaml.safe_load(fh)
    data['policies'][0].update(change)
    return data


@pytest.mark.parametrize('change,needle', [
    ({'filters': [{'type': 'quarantine-markr'}]},
     "user.filters Invalid filter type {'type': 'quarantine-markr'}"),
    ({'actions': ['deactivate-acess-keys']},
     "'deactivate-acess-keys' is not valid under any of the given schemas"),
    ({'resource': 'aws.iam-usr'}, 'Invalid resource: iam-usr for provider: aws'),
    ({'filters': [{'type': 'value', 'key': 'a', 'op': 'eqq', 'value': 1}]}, "'eqq' is not one of"),
])
def test_a_policy_file_that_would_not_load_is_one_line(change, needle):
    import custodian_ext  # noqa: F401  the pack's filters and its settings-aware validation
    with pytest.raises(PackError) as e:
        policyfiles.check_policies(_x1(**change), 'build/detect.yml')
    assert str(e.value).startswith('invalid policy file: build/detect.yml error: ')
    assert needle in str(e.value) and '\n' not in str(e.value)


def test_every_shipped_policy_file_loads():
    import glob

    import yaml

    import custodian_ext  # noqa: F401
    for path in sorted(glob.glob(os.path.join(REPO, 'policies', '*', '*.yml'))):
        if not path.endswith('vars.yml'):
            with open(path) as fh:
                policyfiles.check_policies(yaml.safe_load(fh), path)


# -- the checks the pack's patches make before a run (custodian_ext/patches) ---------------

def test_custodian_run_checks_the_regions_before_the_run(aws):
    """regions.check_run: what custodian_cli.checked_run calls after the preflight."""
    import boto3
    session = boto3.Session()
    for bad, needle in ((['us-east-1', 'xx-fake-1'], '-r xx-fake-1: not an AWS region'),
                        (['us-east-1', 'ap-east-1'], f'-r ap-east-1: not enabled in account '
                                                     f'{aws.id}')):
        with pytest.raises(PackError) as e:
            regions.check_run(bad, session, 'us-east-1', aws.id)
        assert str(e.value).startswith(needle)
    regions.check_run(['us-east-1', 'eu-north-1'], session, 'us-east-1', aws.id)
    regions.check_run([], session, 'us-east-1', aws.id)


def test_c7n_org_inputs_duplicates_and_region_names(tmp_path):
    """What patches/c7n_org.checked_init checks for a run of pack policies (the wiring
    itself: tests/cli/test_bad_input.py)."""
    import yaml
    good = {'accounts': [{'name': 'prod', 'account_id': '111111111111', 'role': 'r'},
                         {'name': 'dev', 'account_id': '222222222222', 'role': 'r',
                          'regions': ['us-east-1']}]}
    path = tmp_path / 'accounts.yml'
    path.write_text(yaml.safe_dump(good))
    data = accounts_file.check_accounts_file(str(path))
    accounts_file.check_regions(data, str(path), ('us-east-1', 'all'))
    dup = {'accounts': good['accounts'] + [{'name': 'prod2', 'account_id': '111111111111',
                                            'role': 'r'}]}
    path.write_text(yaml.safe_dump(dup))
    with pytest.raises(PackError, match="have the same account id '111111111111'"):
        accounts_file.check_accounts_file(str(path))
    with pytest.raises(PackError, match='-r us-esat-1: not an AWS region'):
        accounts_file.check_regions(good, str(path), ('us-esat-1',))
    good['accounts'][1]['regions'] = ['us-esat-1']
    with pytest.raises(PackError, match='accounts.yml: account dev region us-esat-1: not an AWS '
                                        'region; did you mean'):
        accounts_file.check_regions(good, str(path))
