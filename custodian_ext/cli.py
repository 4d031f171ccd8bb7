"""``custodian-ext``: the pack's own commands.

report, check-vars, check-triage, bundle, org-check, shard, periodic,
react-role-policy, permissions.
"""
import argparse
import sys

from custodian_ext.errors import PackError


def cmd_report(args):
    """Exit 0: nothing at or above --fail-on; 1: findings at or above it; 2: a policy
    errored or did not run, or the input is not Custodian output."""
    from custodian_ext.report import ReportInputError
    from custodian_ext.report import document, render
    from custodian_ext.report.loader import load_runs
    from custodian_ext.settings import SettingsError
    try:
        formats = render.parse_formats(args.format) if args.format else []
        if args.output == '-' and len(formats) != 1:
            raise ReportInputError('-o -: name exactly one --format to print it to stdout')
        gate = document.Gate(args.fail_on)
        export = _securityhub_args(args)
        triage = _triage(args)
        warnings = []
        runs = load_runs(args.paths, allow_mixed=args.allow_mixed, warnings=warnings)
        for w in warnings:
            sys.stderr.write(f"custodian-ext: warning: {w}\n")
        if args.config:
            runs.extend(_unreported(args, runs))
        doc = document.build(runs, fail_on=gate.fail_on, sources=args.paths, triage=triage)
    except (ReportInputError, SettingsError) as e:
        sys.stderr.write(f"custodian-ext: error: {e}\n")
        return document.EXIT_ERRORED
    if args.output == '-':
        sys.stdout.write(render.render(doc, formats[0]))
        if formats[0] == 'ocsf' and doc['problems']:
            sys.stderr.write(f"custodian-ext: {len(doc['problems'])} policy run(s) errored or "
                             f"did not run: not in the OCSF events, results unknown\n")
    else:
        sys.stdout.write(render.render(doc, 'text'))
        for path in render.write(doc, formats, args.output):
            sys.stdout.write(f"wrote {path}\n")
    if export is not None:
        return _export_securityhub(doc, export) or doc['gate']['exit_code']
    return doc['gate']['exit_code']


def _triage(args):
    if not args.triage:
        return None
    import os
    from custodian_ext.report import triage
    vars_file = args.vars_file
    if vars_file is None:
        sibling = os.path.join(os.path.dirname(os.path.abspath(args.triage)), 'vars.yml')
        vars_file = sibling if os.path.exists(sibling) else None
    loaded = triage.load(args.triage)
    loaded.critical_max_days = triage.critical_max_days(vars_file)
    return loaded


def _securityhub_args(args):
    """(aggregation, role) for --to securityhub, or None without it."""
    import re
    from custodian_ext.report import ReportInputError
    from custodian_ext.report.triage import REGION_RE
    if args.to is None:
        if args.aggregation_account or args.aggregation_region or args.role:
            raise ReportInputError('--aggregation-account, --aggregation-region and --role '
                                   'go with --to securityhub')
        return None
    if args.to != 'securityhub':
        raise ReportInputError(f"--to: unknown destination {args.to!r}; choose securityhub")
    account, region = args.aggregation_account, args.aggregation_region
    if bool(account) != bool(region):
        raise ReportInputError('--aggregation-account and --aggregation-region go together')
    if account and not re.match(r'^\d{12}$', account):
        raise ReportInputError(f"--aggregation-account {account!r}: give a 12-digit account id")
    if region and not REGION_RE.match(region):
        raise ReportInputError(f"--aggregation-region {region!r}: not a region name")
    return ((account, region) if account else None, args.role)


def _export_securityhub(doc, export):
    from custodian_ext.report import securityhub
    aggregation, role = export
    try:
        totals = securityhub.export(doc, securityhub.Sessions(role=role),
                                    aggregation=aggregation)
    except securityhub.ExportError as e:
        sys.stderr.write(f"custodian-ext: error: securityhub: {e}\n")
        return 2
    sys.stderr.write(securityhub.summary_line(totals, aggregation) + '\n')
    return 0


def cmd_check_triage(args):
    from custodian_ext.report import triage
    import datetime
    loaded = triage.load(args.path)
    days = triage.critical_max_days(args.vars_file)
    now = datetime.datetime.now(datetime.timezone.utc)
    print(f"{args.path}: {len(loaded.entries)} entr{'y' if len(loaded.entries) == 1 else 'ies'} "
          f"valid; critical findings can be accepted for at most {days} days")
    for e in loaded.entries:
        if e.expires <= now:
            print(f"{args.path}: entry {e.number} expired {triage._iso(e.expires)}: it no "
                  f"longer applies")
        elif e.expires - now > datetime.timedelta(days=days):
            print(f"{args.path}: entry {e.number} expires in more than {days} days: it will "
                  f"not accept critical findings")
    return 0


def _selected_accounts(args):
    import custodian_ext.runs as runs
    import custodian_ext.shards as shards
    accounts = runs.load_accounts(args.config, getattr(args, 'accounts', ()), args.tags,
                                  getattr(args, 'not_accounts', ()))
    return shards.select(accounts, (), args.ou)


def _unreported(args, found):
    """Missing runs for the accounts of ``-c`` without any output (sharded sweeps)."""
    import custodian_ext.runs as runs
    from custodian_ext.report import ReportInputError
    try:
        accounts = _selected_accounts(args)
    except PackError as e:
        raise ReportInputError(str(e)) from None
    return runs.unreported(found, accounts, args.region, args.shards)


def cmd_check_vars(args):
    import custodian_ext.settings as settings
    settings.load(args.path, strict=True)
    print(f"{args.path}: settings are valid")
    return 0


def cmd_bundle(args):
    from custodian_ext.bundle import write_bundle
    n = write_bundle(args.paths, args.output)
    if args.output != '-':
        sys.stderr.write(f"custodian-ext: wrote {n} policies to {args.output}\n")
    return 0


def cmd_org_check(args):
    import custodian_ext.runs as runs
    if args.mark_missing and args.output_dir.startswith('s3://'):
        raise PackError('--mark-missing writes into a local folder; for S3 output, give the '
                        'report the accounts file instead (custodian-ext report URL -c FILE)')
    accounts = _selected_accounts(args)
    policies = runs.load_policies(args.use, args.policy, args.policy_tags, args.resource)
    check = runs.check_output(args.output_dir, accounts, policies, args.region, args.log,
                              shards=args.shards)
    sys.stdout.write(runs.render(check))
    if args.mark_missing and not check.ok:
        n = runs.mark_missing(args.output_dir, check, policies)
        if n:
            sys.stdout.write(f"org-check: marked {n} run(s) that never happened as errored "
                             f"in {args.output_dir} (not-run.json)\n")
    return 0 if check.ok else 2


def cmd_shard(args):
    import custodian_ext.shards as shards
    index = args.index if args.index is not None else shards.index_from_env()
    if index is None:
        raise PackError('--index is required (or AWS_BATCH_JOB_ARRAY_INDEX / '
                        'JOB_COMPLETION_INDEX, as AWS Batch and Kubernetes set it)')
    mine, text = shards.write(args.config, args.output, index, args.count, args.tags, args.ou)
    if text is not None:
        sys.stdout.write(text)
    else:
        sys.stderr.write(f"custodian-ext: shard {index} of {args.count}: {len(mine)} "
                         f"account(s) written to {args.output}\n")
    return 0


def cmd_periodic(args):
    import custodian_ext.periodic as periodic
    n = periodic.write(args.paths, args.output, schedule=args.schedule, role=args.role,
                       output=args.s3_output, runtime=args.runtime, prefix=args.prefix,
                       role_policy=args.role_policy)
    sys.stderr.write(f"custodian-ext: wrote {n} periodic policies to {args.output}; deploy "
                     f"with: custodian run -s out --vars-file policies/vars.yml {args.output}\n")
    return 0


def cmd_react_role_policy(args):
    import json
    import os
    import custodian_ext.react as react
    import custodian_ext.settings as settings
    from custodian_ext.bundle import collect
    values = settings.load(args.vars_file)
    doc = react.execution_role_policy([p for _, p in collect(args.paths)], values)
    text = json.dumps(doc, indent=2) + '\n'
    if args.output == '-':
        sys.stdout.write(text)
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, 'w') as fh:
        fh.write(text)
    sys.stderr.write(f"custodian-ext: wrote the react functions' execution role policy to "
                     f"{args.output}\n")
    return 0


def cmd_permissions(args):
    import json
    import os
    from custodian_ext import permissions, settings
    from custodian_ext.errors import PackError
    values = settings.load(args.vars_file) if args.vars_file else None
    if args.format == 'policies':
        text = ''.join(f"{name}: {' '.join(actions)}\n"
                       for name, actions in permissions.by_policy(args.paths, values).items())
        return _emit(text, args.output)
    actions, outputs = permissions.required(args.paths, values)
    if args.format == 'md':
        return _emit(permissions.markdown(actions), args.output)
    doc = permissions.document(actions, outputs)
    n = permissions.size(doc)
    if n <= permissions.MANAGED_POLICY_LIMIT:
        return _emit(json.dumps(doc, indent=2) + '\n', args.output)
    docs = permissions.split(doc)
    if not args.split:
        raise PackError(
            f"the policy is {n:,} characters (IAM counts them without white space), over the "
            f"{permissions.MANAGED_POLICY_LIMIT:,} a managed policy holds: add --split to "
            f"write it as {len(docs)} policies to attach together")
    if args.output == '-':
        return _emit(json.dumps(docs, indent=2) + '\n', '-')
    os.makedirs(args.output, exist_ok=True)
    for i, d in enumerate(docs, 1):
        path = os.path.join(args.output, f'policy-{i}.json')
        with open(path, 'w') as fh:
            fh.write(json.dumps(d, indent=2) + '\n')
        sys.stderr.write(f"custodian-ext: wrote {path}\n")
    return 0


def _emit(text, output):
    import os
    if output == '-':
        sys.stdout.write(text)
        return 0
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    with open(output, 'w') as fh:
        fh.write(text)
    sys.stderr.write(f"custodian-ext: wrote {output}\n")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog='custodian-ext',
        description='Cloud Custodian policy pack for a suspected AWS account compromise.')
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser(
        'report',
        help='the incident report from custodian / c7n-org output (folders or s3:// URLs)',
        description='Read custodian / c7n-org output (folders or s3://bucket/prefix) and write '
                    'the incident report. Exit status: 0 nothing at or above --fail-on, '
                    '1 findings at or above it, 2 a policy errored or did not run (or bad input).')
    p.add_argument('paths', nargs='+', metavar='OUT_DIR',
                   help='a -s output folder of custodian run or c7n-org run, or s3://bucket/prefix')
    p.add_argument('--format', metavar='FORMATS', default=None,
                   help='comma-separated: md, html, json, junit, text, ocsf (files written '
                        'to -o); '
                        'without it, only the terminal summary is printed')
    p.add_argument('-o', '--output', metavar='DIR', default='.',
                   help="folder for the report files (default: the current folder); "
                        "'-' prints the one --format to stdout")
    p.add_argument('--fail-on', metavar='SEVERITY', default=None,
                   help='critical, high, medium, low or info: exit 1 when any finding is at or '
                        'above it')
    p.add_argument('--triage', metavar='FILE', default=None,
                   help='accepted findings (policies/triage.yml): shown apart, not counted '
                        'for --fail-on')
    p.add_argument('--vars-file', metavar='FILE', default=None,
                   help='settings for --triage (triage_critical_max_days); default: vars.yml '
                        'next to the triage file')
    p.add_argument('--to', metavar='DEST', default=None,
                   help='securityhub: import the findings into AWS Security Hub '
                        '(BatchImportFindings) and resolve those no longer seen')
    p.add_argument('--aggregation-account', metavar='ID', default=None,
                   help='with --to securityhub: import every finding into this account '
                        '(the credentials\' own) ...')
    p.add_argument('--aggregation-region', metavar='REGION', default=None,
                   help='... and this region')
    p.add_argument('--role', metavar='NAME', default=None,
                   help='with --to securityhub: a role name (or ARN with {account_id}) to '
                        'assume in each finding\'s account')
    p.add_argument('--allow-mixed', action='store_true',
                   help='report a folder that holds more than one run (refused otherwise: '
                        'runs written into the same -s folder at different times)')
    p.add_argument('-c', '--accounts-file', dest='config', default=None,
                   help="c7n-org output: the full accounts file of the sweep; every account "
                        "in it without output is reported as missing (a shard that never ran)")
    p.add_argument('-t', '--tags', action='append', default=[],
                   help='with -c: the account tag filter the sweep used')
    p.add_argument('--ou', action='append', default=[], help='with -c: the OU paths it used')
    p.add_argument('-r', '--region', action='append', default=[],
                   help="with -c: the sweep's regions (default: those in the output)")
    p.add_argument('--shards', type=int, default=0,
                   help='with -c: the sweep ran as N shards (custodian-ext shard); name the '
                        'shard of each missing account')
    p.set_defaults(func=cmd_report)

    p = sub.add_parser('check-triage', help='check a triage file (policies/triage.yml)')
    p.add_argument('path')
    p.add_argument('--vars-file', default=None,
                   help='settings (triage_critical_max_days); default: its default, 7')
    p.set_defaults(func=cmd_check_triage)

    p = sub.add_parser('check-vars', help='check a vars file (policies/vars.yml)')
    p.add_argument('path')
    p.set_defaults(func=cmd_check_vars)

    p = sub.add_parser(
        'bundle', help="merge policy files into one file for c7n-org's -u",
        description='Merge policy files (and the *.yml of folders) into one policy file. '
                    'Each policy is copied unchanged; duplicate names are refused.')
    p.add_argument('paths', nargs='+', metavar='PATH', help='policy files or folders')
    p.add_argument('-o', '--output', required=True, help="file to write ('-' for stdout)")
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser(
        'org-check', help='check that every account x region x policy of a c7n-org run completed',
        description='Compute the runs a c7n-org run should have made (same -c, -u, -r, -a, '
                    '-t, -p, -l as c7n-org) and compare them with its output folder. Prints '
                    'every account-region whose policies errored or never ran; exits 2 if any.')
    p.add_argument('-c', '--config', required=True, help='the c7n-org accounts file')
    p.add_argument('-u', '--use', required=True, help='the policy file given to c7n-org')
    p.add_argument('-s', '--output-dir', required=True,
                   help="c7n-org's output: a folder or s3://bucket/prefix")
    p.add_argument('-r', '--region', action='append', default=[], help="as c7n-org's -r")
    p.add_argument('-a', '--accounts', action='append', default=[])
    p.add_argument('--not-accounts', action='append', default=[])
    p.add_argument('-t', '--tags', action='append', default=[], help='account tag filter')
    p.add_argument('--ou', action='append', default=[],
                   help='OU paths, as given to custodian-ext shard')
    p.add_argument('--shards', type=int, default=0,
                   help='the sweep ran as N shards (custodian-ext shard): name the shards '
                        'that never reported')
    p.add_argument('-p', '--policy', action='append', default=[])
    p.add_argument('-l', '--policytags', dest='policy_tags', action='append', default=[])
    p.add_argument('--resource', default=None)
    p.add_argument('--log', help="c7n-org's log (its stderr), to say why runs failed")
    p.add_argument('--mark-missing', action='store_true',
                   help='write an errored run folder for each run that never happened, so '
                        'that the report lists it')
    p.set_defaults(func=cmd_org_check)

    p = sub.add_parser(
        'shard', help="one batch job's share of a c7n-org accounts file",
        description='Write the accounts file of shard I of N: the accounts c7n-org would '
                    'select (-t tags, --ou OU paths), ordered by account id, every N-th from I. '
                    'Run c7n-org on it in each job of an AWS Batch array job or a Kubernetes '
                    'Indexed Job (examples/batch/), all writing to one -s s3://bucket/prefix; '
                    'then org-check and report with the full accounts file and --shards N.')
    p.add_argument('--index', type=int, default=None,
                   help='this shard, 0 to N-1 (default: $AWS_BATCH_JOB_ARRAY_INDEX or '
                        '$JOB_COMPLETION_INDEX)')
    p.add_argument('--count', type=int, required=True, help='N, the number of shards')
    p.add_argument('-c', '--config', required=True, help='the full c7n-org accounts file')
    p.add_argument('-t', '--tags', action='append', default=[],
                   help="account tag filter, as c7n-org's -t (every tag must match)")
    p.add_argument('--ou', action='append', default=[],
                   help="Organizations OU path (/Prod/Web): accounts under it, from the "
                        "path: tags `c7n-org aws-accounts` writes")
    p.add_argument('-o', '--output', required=True, help="the shard's accounts file ('-': stdout)")
    p.set_defaults(func=cmd_shard)

    p = sub.add_parser(
        'periodic', help='turn detect policies into scheduled Lambda policies (periodic mode)',
        description='Write the policies with c7n periodic mode, the pack packaged with them '
                    'and its handler; deploy the file with custodian run or c7n-org run.')
    p.add_argument('paths', nargs='+', metavar='PATH', help='detect policy files or folders')
    p.add_argument('--schedule', required=True,
                   help="EventBridge schedule: 'rate(1 day)', 'cron(0 6 * * ? *)'")
    p.add_argument('--role', required=True,
                   help="the functions' execution role: a name, or "
                        "arn:aws:iam::{account_id}:role/NAME")
    p.add_argument('--output', dest='s3_output', default=None,
                   help="where the functions write results: s3://bucket/prefix "
                        "({account_id} and {region} are filled in)")
    p.add_argument('--runtime', default='python3.11', help='Lambda runtime (%(default)s)')
    p.add_argument('--prefix', default='custodian-', help='function name prefix (%(default)s)')
    p.add_argument('--role-policy', metavar='FILE',
                   help="also write the execution role's IAM policy (JSON) to FILE")
    p.add_argument('-o', required=True, dest='output', help='file to write')
    p.set_defaults(func=cmd_periodic)

    p = sub.add_parser(
        'react-role-policy',
        help="the IAM policy of the real-time containment functions' execution role",
        description='Write the IAM policy document (JSON) the execution role of the '
                    'policies/react functions needs, for the settings in --vars-file '
                    '(notify_transport, react_output, react_member_role).')
    p.add_argument('paths', nargs='*', metavar='PATH', default=['policies/react'],
                   help='react policy files or folders (default: %(default)s)')
    p.add_argument('--vars-file', default='policies/vars.yml', help='settings (%(default)s)')
    p.add_argument('-o', '--output', default='-', help="file to write ('-' for stdout)")
    p.set_defaults(func=cmd_react_role_policy)

    p = sub.add_parser(
        'permissions', help='the IAM policy (JSON) that policy files need',
        description="Print the IAM policy document the policies need: each policy's resource, "
                    "filters, actions and mode, as Custodian declares them, plus the pack's "
                    "corrections for calls Custodian does not declare; every action is checked "
                    "against botocore's service models. For Lambda policies (periodic, react) it "
                    "is the functions' execution role.")
    p.add_argument('paths', nargs='+', metavar='PATH', help='policy files or folders')
    p.add_argument('--format', choices=('json', 'md', 'policies'), default='json',
                   help='json: the IAM policy document (default); md: one line per service; '
                        'policies: one line per policy with its actions')
    p.add_argument('--vars-file', default=None,
                   help='settings to substitute (default: example settings); they matter for '
                        'react (notify transport, output bucket)')
    p.add_argument('--split', action='store_true',
                   help="past IAM's 6,144 characters for a managed policy, write several "
                        "policies (a JSON list on stdout, or policy-N.json files in -o DIR)")
    p.add_argument('-o', '--output', default='-', help="file (or folder with --split) to write; "
                                                      "'-' for stdout (default)")
    p.set_defaults(func=cmd_permissions)
    return parser


def main(argv=None):
    from custodian_ext.report import ReportInputError
    from custodian_ext.settings import SettingsError
    args = build_parser().parse_args(argv)
    try:
        import custodian_ext  # noqa: F401  registers the pack's filters and actions
        import custodian_ext.patches as patches
        if patches.installed() is None:  # called in-process by a program that has its own
            patches.install('custodian-ext')
        return args.func(args)
    except (PackError, ReportInputError, SettingsError, FileNotFoundError) as e:
        sys.stderr.write(f"custodian-ext: error: {e}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write('custodian-ext: interrupted\n')
        return 130


if __name__ == '__main__':
    sys.exit(main())
