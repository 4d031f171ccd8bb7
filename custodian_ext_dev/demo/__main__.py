"""``python -m custodian_ext_dev.demo``: what ``make demo`` runs (a development tool, not
shipped)."""
import argparse
import sys

from custodian_ext_dev.demo.run import run_demo


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='make demo',
        description='Run the pack against a compromised organization on a local AWS emulator.')
    parser.add_argument('-o', '--output', default='demo-output',
                        help='output folder (default: %(default)s)')
    parser.add_argument('--respond', action='store_true',
                        help='run the respond policies for real, then sweep again '
                             '(make demo-respond)')
    parser.add_argument('--quick', action='store_true',
                        help='sweep two regions instead of three (the CI test)')
    args = parser.parse_args(argv)
    run_demo(output=args.output, quick=args.quick, respond=args.respond)
    return 0


if __name__ == '__main__':
    sys.exit(main())
