"""``custodian-ext``: the pack's own commands (demo, report, check-vars)."""
import argparse
import sys


def cmd_demo(args):
    from custodian_ext.demo.run import run_demo
    run_demo(output=args.output, quick=args.quick, respond=args.respond)
    return 0


def cmd_report(args):
    """Exit 0: nothing at or above --fail-on; 1: findings at or above it; 2: a policy
    errored or did not run, or the input is not Custodian output."""
    from custodian_ext.report import ReportInputError
    from custodian_ext.report import document, render
    from custodian_ext.report.loader import load_runs
    try:
        formats = render.parse_formats(args.format) if args.format else []
        if args.output == '-' and len(formats) != 1:
            raise ReportInputError('-o -: name exactly one --format to print it to stdout')
        gate = document.Gate(args.fail_on)
        runs = load_runs(args.paths)
        doc = document.build(runs, fail_on=gate.fail_on, sources=args.paths)
    except ReportInputError as e:
        sys.stderr.write(f"custodian-ext: error: {e}\n")
        return document.EXIT_ERRORED
    if args.output == '-':
        sys.stdout.write(render.render(doc, formats[0]))
        return doc['gate']['exit_code']
    sys.stdout.write(render.render(doc, 'text'))
    for path in render.write(doc, formats, args.output):
        sys.stdout.write(f"wrote {path}\n")
    return doc['gate']['exit_code']


def cmd_check_vars(args):
    from custodian_ext import settings
    settings.load(args.path, strict=True)
    print(f"{args.path}: settings are valid")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog='custodian-ext',
        description='Cloud Custodian policy pack for a suspected AWS account compromise.')
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('demo', help='run the pack against a compromised organization on a local emulator')
    p.add_argument('-o', '--output', default='demo-output', help='output folder (default: %(default)s)')
    p.add_argument('--respond', action='store_true',
                   help='run the respond policies for real, then sweep again (make demo-respond)')
    p.add_argument('--quick', action='store_true',
                   help='sweep two regions instead of three (the CI test)')
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        'report', help='the incident report from custodian / c7n-org output (folders or s3:// URLs)',
        description='Read custodian / c7n-org output (folders or s3://bucket/prefix) and write '
                    'the incident report. Exit status: 0 nothing at or above --fail-on, '
                    '1 findings at or above it, 2 a policy errored or did not run (or bad input).')
    p.add_argument('paths', nargs='+', metavar='OUT_DIR',
                   help='a -s output folder of custodian run or c7n-org run, or s3://bucket/prefix')
    p.add_argument('--format', metavar='FORMATS', default=None,
                   help='comma-separated: md, html, json, junit, text (files written to -o); '
                        'without it, only the terminal summary is printed')
    p.add_argument('-o', '--output', metavar='DIR', default='.',
                   help="folder for the report files (default: the current folder); "
                        "'-' prints the one --format to stdout")
    p.add_argument('--fail-on', metavar='SEVERITY', default=None,
                   help='critical, high, medium, low or info: exit 1 when any finding is at or '
                        'above it')
    p.set_defaults(func=cmd_report)

    p = sub.add_parser('check-vars', help='check a vars file (policies/vars.yml)')
    p.add_argument('path')
    p.set_defaults(func=cmd_check_vars)
    return parser


def main(argv=None):
    from custodian_ext.hooks import PackError
    from custodian_ext.report import ReportInputError
    from custodian_ext.settings import SettingsError
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (PackError, ReportInputError, SettingsError, FileNotFoundError) as e:
        sys.stderr.write(f"custodian-ext: error: {e}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write('custodian-ext: interrupted\n')
        return 130


if __name__ == '__main__':
    sys.exit(main())
