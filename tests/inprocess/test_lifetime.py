"""custodian_ext.lifetime: the collector settled for a sweep, and the console script's exit."""
import gc
import subprocess
import sys

import pytest

from custodian_ext import lifetime


def test_settle_is_for_the_console_scripts_only():
    """A test process, or any program importing c7n, keeps Python's collector as it is."""
    before = gc.get_threshold()
    assert not lifetime.console()
    lifetime.settle()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


@pytest.mark.parametrize('code,status', [(None, 0), (0, 0), (2, 2), ('bad run', 1)])
def test_quick_exit_keeps_sys_exit_status_and_runs_exit_callbacks(tmp_path, code, status):
    """Exit callbacks (log handlers flushed and closed) run, streams are flushed, and the
    status is the one sys.exit would give."""
    marker = tmp_path / 'callback-ran'
    script = (
        'import atexit, logging, sys\n'
        'from custodian_ext import lifetime\n'
        f'atexit.register(lambda: open({str(marker)!r}, "w").write("yes"))\n'
        f'logging.basicConfig(filename={str(tmp_path / "log")!r}, level=logging.INFO)\n'
        'logging.getLogger("x").info("last line")\n'
        'sys.stdout.write("buffered")\n'
        'assert lifetime.can_exit_quickly()\n'
        f'lifetime.quick_exit({code!r})\n'
        'raise SystemExit(99)\n')
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True)
    assert done.returncode == status, done.stderr
    assert done.stdout == 'buffered'
    assert marker.read_text() == 'yes'
    assert 'last line' in (tmp_path / 'log').read_text()
    if isinstance(code, str):
        assert code in done.stderr


def test_no_quick_exit_while_a_thread_that_is_not_a_daemon_runs(monkeypatch):
    import threading
    # threads that earlier tests of this process left running are not this test's
    earlier = set(threading.enumerate()) - {threading.main_thread()}
    everyone = threading.enumerate
    monkeypatch.setattr(threading, 'enumerate',
                        lambda: [t for t in everyone() if t not in earlier])
    release = threading.Event()
    t = threading.Thread(target=release.wait)
    t.start()
    try:
        assert not lifetime.can_exit_quickly()
    finally:
        release.set()
        t.join()
    assert lifetime.can_exit_quickly()
