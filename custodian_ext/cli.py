"""``custodian-ext``: the pack's own commands (demo, report, check-vars)."""
import argparse
import sys


def cmd_demo(args):
    from custodian_ext.demo.run import run_demo
    run_demo(output=args.output)
    return 0


def cmd_report(args):
    from custodian_ext.report import load_runs
    from custodian_ext.report.text import render_text
    runs = load_runs(args.paths)
    sys.stdout.write(render_text(runs))
    return 2 if any(r.status == 'errored' for r in runs) else 0


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

    p = sub.add_parser('demo', help='run the pack against a compromised account on a local emulator')
    p.add_argument('-o', '--output', default='demo-output', help='output folder (default: %(default)s)')
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser('report', help='summarize custodian / c7n-org output folders')
    p.add_argument('paths', nargs='+', metavar='OUT_DIR')
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
