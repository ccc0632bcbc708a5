#!/usr/bin/env python3
"""Start/stop the loopback mail servers that a test run or the demo shares.

    python tools/services.py start --state-dir DIR [--workdir W] [ports...]   # prints `export …`
    python tools/services.py stop  --state-dir DIR
    python tools/services.py run   --state-dir DIR ...                         # foreground

``start`` runs ``run`` in the background (its own session), waits until Dovecot and the SMTP
server listen, and prints shell ``export`` lines for ``MAILSYNC_DOVECOT`` and ``MAILSYNC_SMTP``
(JSON that ``mailsync.testing.*.shared_*()`` attach to). The servers stay up until ``stop``
(SIGTERM to the recorded pid). Files in DIR: ``services.pid``, ``env.json``, ``services.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def _paths(state_dir):
    return (
        os.path.join(state_dir, "services.pid"),
        os.path.join(state_dir, "env.json"),
        os.path.join(state_dir, "services.log"),
    )


def run(args):
    from mailsync.testing.dovecot import DovecotServer
    from mailsync.testing.smtp_server import SmtpServer

    pid_file, env_file, _log = _paths(args.state_dir)
    workdir = args.workdir or args.state_dir
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    from mailsync.testing.cyrus import CyrusServer, CyrusUnavailable

    dovecot = DovecotServer(
        workdir=os.path.join(workdir, "dovecot"),
        port=args.imap_port,
        ssl_port=args.imaps_port,
        oauth_introspection_url=args.oauth_introspection_url,
    )
    smtp = SmtpServer(
        workdir=os.path.join(workdir, "smtp"),
        port=args.smtp_port,
        ssl_port=args.smtps_port,
        token_validator=args.oauth_introspection_url,
    )
    # A second IMAP server for the tests about IMAP behaviour (not needed by the demo).
    cyrus = CyrusServer(workdir=os.path.join(workdir, "cyrus")) if args.cyrus else None
    try:
        dovecot.start()
        smtp.start()
        env = {
            "MAILSYNC_DOVECOT": json.dumps(dovecot.describe()),
            "MAILSYNC_SMTP": json.dumps(smtp.describe()),
        }
        if cyrus is not None:
            try:
                cyrus.start()
                env["MAILSYNC_CYRUS"] = json.dumps(cyrus.describe())
            except CyrusUnavailable as exc:
                print(f"services: no Cyrus ({exc}); the Cyrus tests will say so", flush=True)
                cyrus = None
        tmp = env_file + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(env, fh)
        os.replace(tmp, env_file)
        print(
            f"services: Dovecot imap://{dovecot.host}:{dovecot.port} imaps:{dovecot.ssl_port}; "
            f"SMTP {smtp.host}:{smtp.port} smtps:{smtp.ssl_port} (pid {os.getpid()})",
            flush=True,
        )
        while not stop.wait(1.0):
            if dovecot._proc is not None and dovecot._proc.poll() is not None:
                print("services: Dovecot exited:\n" + dovecot.log_text()[-3000:], flush=True)
                return 1
        return 0
    finally:
        if cyrus is not None:
            cyrus.stop()
        smtp.stop()
        dovecot.stop()
        for path in (env_file, pid_file):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def start(args):
    pid_file, env_file, log_file = _paths(args.state_dir)
    os.makedirs(args.state_dir, exist_ok=True)
    if os.path.exists(env_file) and _alive(pid_file):
        return _print_env(env_file)
    for path in (env_file, pid_file):
        if os.path.exists(path):
            os.unlink(path)
    command = [sys.executable, os.path.abspath(__file__), "run", *args.passthrough]
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd=ROOT,
        )
    with open(pid_file, "w") as fh:
        fh.write(str(proc.pid))
    deadline = time.monotonic() + args.timeout
    while not os.path.exists(env_file):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.terminate()
            with open(log_file, errors="replace") as fh:
                sys.stderr.write(
                    "services: could not start the mail servers:\n" + fh.read()[-4000:]
                )
            return 1
        time.sleep(0.05)
    return _print_env(env_file)


def _print_env(env_file):
    with open(env_file) as fh:
        env = json.load(fh)
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _alive(pid_file):
    try:
        with open(pid_file) as fh:
            pid = int(fh.read().strip())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


def stop(args):
    pid_file, _env, _log = _paths(args.state_dir)
    pid = _alive(pid_file)
    if not pid:
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return 0
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "run"])
    parser.add_argument(
        "--state-dir", required=True, help="pid/env/log files (and default workdir)"
    )
    parser.add_argument(
        "--workdir", help="where the servers keep mail and spool (persistent for the demo)"
    )
    parser.add_argument("--imap-port", type=int)
    parser.add_argument("--imaps-port", type=int)
    parser.add_argument("--smtp-port", type=int)
    parser.add_argument("--smtps-port", type=int)
    parser.add_argument("--oauth-introspection-url")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument(
        "--cyrus",
        action="store_true",
        help="also a Cyrus IMAP server (the test command's second IMAP server)",
    )
    args = parser.parse_args(argv)
    args.state_dir = os.path.abspath(args.state_dir)
    if args.workdir:
        args.workdir = os.path.abspath(args.workdir)
    args.passthrough = ["--state-dir", args.state_dir]
    for option in (
        "workdir",
        "imap_port",
        "imaps_port",
        "smtp_port",
        "smtps_port",
        "oauth_introspection_url",
    ):
        value = getattr(args, option)
        if value is not None:
            args.passthrough += ["--" + option.replace("_", "-"), str(value)]
    if args.cyrus:
        args.passthrough.append("--cyrus")
    return {"start": start, "stop": stop, "run": run}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
