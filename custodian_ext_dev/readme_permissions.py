"""README.md's permission lists, generated: ``python -m custodian_ext_dev.readme_permissions``.

Each list sits between ``<!-- permissions: policies/<folder> -->`` and
``<!-- /permissions -->`` and is what ``custodian-ext permissions
policies/<folder> --format md`` prints (with the example settings).
``--check`` only reports (exit 1) a list that differs;
tests/inprocess/test_permissions.py checks the same.
"""
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, 'README.md')
BLOCK = re.compile(r'(<!-- permissions: (\S+) -->\n)(.*?)(<!-- /permissions -->)', re.DOTALL)


def blocks(text):
    """{folder: list text} of every generated list in ``text``."""
    return {m.group(2): m.group(3) for m in BLOCK.finditer(text)}


def expected(folder):
    from custodian_ext import permissions
    actions, _ = permissions.required([os.path.join(REPO, folder)])
    return permissions.markdown(actions)


def render(text):
    return BLOCK.sub(lambda m: m.group(1) + expected(m.group(2)) + m.group(4), text)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(README) as fh:
        text = fh.read()
    new = render(text)
    if new == text:
        return 0
    if '--check' in argv:
        stale = [f for f, body in blocks(text).items() if body != expected(f)]
        sys.stderr.write(f"README.md: stale permission lists: {', '.join(stale)}\n")
        return 1
    with open(README, 'w') as fh:
        fh.write(new)
    sys.stderr.write('README.md: permission lists regenerated\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
