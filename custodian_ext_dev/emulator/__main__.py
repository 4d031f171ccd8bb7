"""``python -m custodian_ext_dev.emulator``: serve moto, with the pack's extensions, on loopback."""
import argparse
import os
import sys
import threading
import time


def _watch_parent(pid):
    # Exit with the parent: an interrupted demo or test run leaves no server.
    while True:
        time.sleep(0.5)
        if os.getppid() != pid:
            os._exit(0)


def _serve_tls(folder):
    """moto's threaded server makes its werkzeug server with an SSL context (this process
    only)."""
    import functools
    from moto.moto_server import threaded_moto_server

    from custodian_ext_dev.emulator import tls
    tls.make(folder)
    threaded_moto_server.make_server = functools.partial(
        threaded_moto_server.make_server, ssl_context=tls.server_context(folder))


def main():
    parser = argparse.ArgumentParser(prog='python -m custodian_ext_dev.emulator')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--parent', type=int, default=None)
    parser.add_argument('--tls', metavar='DIR', default=None,
                        help='serve HTTPS; certificate, key and clients\' CA bundle in DIR')
    args = parser.parse_args()

    from custodian_ext_dev.emulator import assert_loopback
    assert_loopback(f'http://{args.host}:1')
    from custodian_ext_dev.emulator import AMIS_FILE
    os.environ.setdefault('MOTO_IAM_LOAD_MANAGED_POLICIES', 'true')
    os.environ.setdefault('MOTO_AMIS_PATH', AMIS_FILE)  # before moto is imported

    from custodian_ext_dev.emulator import extensions
    extensions.apply()

    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    if args.tls:
        _serve_tls(args.tls)
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    scheme = 'https' if args.tls else 'http'
    server.start()
    host, port = server.get_host_and_port()
    sys.stdout.write(f'READY {scheme}://{host}:{port}\n')
    sys.stdout.flush()
    if args.parent:
        threading.Thread(target=_watch_parent, args=(args.parent,), daemon=True).start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == '__main__':
    main()
