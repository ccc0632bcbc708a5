#!/usr/bin/env python3
# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The README's screenshots, taken for real so that they cannot silently break (the
"screenshots" layer).

    $ODOO_HOME/venv/bin/python tests/screenshots/run.py [--update-docs] [--keep]
                                                         [--timeout-demo SECONDS]

1. starts the demo in the background: ``bash tools/demo.sh --reset`` with its own
   ``XDG_STATE_HOME`` (a temporary directory), its own database ``DEMO_DB`` and free ports
   (``DEMO_HTTP_PORT``, ``DEMO_IMAP_PORT``, …), and waits (bounded) until Odoo answers;
2. ``tools/screenshots.py --no-prepare --only settings``: the overview as the demo starts, with
   an empty error log (its "No Mail Sync error." must sit below the header row, not over it);
3. ``tools/screenshots.py``: the preparation (the demo's salespeople through the addon's buttons,
   Settings and the demo's ``odoo-bin shell``) and every screenshot, into a temporary directory;
4. checks that every expected PNG is there and is a real image of a plausible size;
5. stops the demo (as Ctrl-C does), drops its database and removes its directory.

``--update-docs`` copies the screenshots of step 3 into ``docs/screenshots/`` when every check
passed. ``--keep`` keeps the temporary directory (logs, screenshots). Prints one ``ok``/``FAIL``
line per check, then ``screenshots: N passed, N failed``; exits 1 on any failure. Without Odoo
at ``$ODOO_HOME`` it says ``screenshots: NOT RUN (…)`` and exits 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ODOO_HOME = os.environ.get("ODOO_HOME", "/opt/odoo")
ODOO_PY = os.path.join(ODOO_HOME, "venv", "bin", "python")
EXPECTED = {  # name: (smallest width, smallest height) of a plausible screenshot
    "settings.png": (1000, 300),
    "user_mail_sync_tab.png": (1000, 500),
    "lead_synced_mail.png": (1200, 700),
    "topbar_not_configured.png": (1000, 100),
}
MIN_BYTES, MAX_BYTES = 4 * 1024, 300 * 1024


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path, lines=25):
    """The last ``lines`` lines of the log ``path`` but Odoo's request lines."""
    try:
        with open(path, errors="replace") as fh:
            kept = [line for line in fh if " INFO " not in line or " werkzeug: " not in line]
        return "".join(kept[-lines:])
    except OSError:
        return f"(no {path})"


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def __call__(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'ok' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
        return ok


def check_png(path, min_size):
    """'' when ``path`` is a real PNG of a plausible size, else what is wrong."""
    from PIL import Image

    if not os.path.exists(path):
        return "missing"
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        if fh.read(8) != b"\x89PNG\r\n\x1a\n":
            return "not a PNG file"
    if not MIN_BYTES <= size <= MAX_BYTES:
        return f"{size} bytes, not within {MIN_BYTES}..{MAX_BYTES}"
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            width, height = image.size
            colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    except Exception as exc:  # noqa: BLE001 - any decoding problem is the finding
        return f"not a readable image ({exc})"
    if width < min_size[0] or height < min_size[1]:
        return f"{width}x{height}, smaller than {min_size[0]}x{min_size[1]}"
    if colours is not None and len(colours) < 8:
        return f"{width}x{height} with {len(colours)} colours: a blank page"
    return ""


class DemoRun:
    """tools/demo.sh --reset in the background, in its own state directory and database."""

    def __init__(self, tmp, timeout):
        self.tmp, self.timeout = tmp, timeout
        self.db = f"crm_mail_sync_shots_{os.getpid()}"
        self.state_home = os.path.join(tmp, "state")
        self.state_dir = os.path.join(self.state_home, "crm_mail_sync", "demo")
        self.log = os.path.join(tmp, "demo.log")
        self.http_port = free_port()
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("MAILSYNC_")
        }  # the demo runs its own servers
        self.env.update(
            {
                "XDG_STATE_HOME": self.state_home,
                "DEMO_DB": self.db,
                "DEMO_HTTP_PORT": str(self.http_port),
                "DEMO_IMAP_PORT": str(free_port()),
                "DEMO_IMAPS_PORT": str(free_port()),
                "DEMO_SMTP_PORT": str(free_port()),
                "DEMO_SMTPS_PORT": str(free_port()),
                "ODOO_HOME": ODOO_HOME,
            }
        )
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.proc = None

    def start(self):
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["bash", os.path.join(ROOT, "tools", "demo.sh"), "--reset"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"tools/demo.sh exited ({self.proc.returncode}):\n{tail(self.log)}"
            try:
                if requests.get(f"{self.url}/web/login", timeout=5).status_code == 200:
                    return ""
            except requests.RequestException:
                pass
            time.sleep(3)
        return f"Odoo did not answer at {self.url} within {self.timeout} s:\n{tail(self.log)}"

    def stop(self):
        """SIGTERM to demo.sh: it passes it on to Odoo, which shuts down, then stops its mail
        servers (SIGINT, Ctrl-C's signal, may be ignored: background jobs of a non-interactive
        shell ignore it). Whatever is left of the demo's process group is killed after 60 s."""
        if self.proc is not None and self.proc.poll() is None:
            for sig, wait in ((None, 60), (signal.SIGTERM, 15), (signal.SIGKILL, 15)):
                with _suppress():
                    if sig is None:
                        self.proc.send_signal(signal.SIGTERM)
                    else:
                        os.killpg(self.proc.pid, sig)
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.proc is not None:
            with _suppress():  # nothing of the demo outlives it
                os.killpg(self.proc.pid, signal.SIGKILL)
        # The mail servers run in a session of their own: stopped by demo.sh, else here.
        if os.path.isdir(os.path.join(self.state_dir, "run")):
            subprocess.run(
                [
                    ODOO_PY,
                    os.path.join(ROOT, "tools", "services.py"),
                    "stop",
                    "--state-dir",
                    os.path.join(self.state_dir, "run"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
            )
        for _attempt in range(10):  # the last sessions may take a moment to close
            result = subprocess.run(
                ["dropdb", "--if-exists", self.db], capture_output=True, text=True, timeout=120
            )
            if result.returncode == 0:
                return ""
            time.sleep(2)
        return result.stderr.strip()

    def screenshots(self, out, *extra, timeout=900):
        """tools/screenshots.py against this demo; ('' or what went wrong, its output)."""
        os.makedirs(out, exist_ok=True)
        command = [
            ODOO_PY,
            os.path.join(ROOT, "tools", "screenshots.py"),
            "--url",
            self.url,
            "--db",
            self.db,
            "--state-dir",
            self.state_dir,
            "--out",
            out,
            *extra,
        ]
        try:
            result = subprocess.run(
                command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            output = "".join(
                part.decode(errors="replace") if isinstance(part, bytes) else part
                for part in (exc.stdout or "", exc.stderr or "")
            )
            return f"not done after {timeout} s", output
        output = result.stdout + result.stderr
        if result.returncode != 0:
            lines = [line for line in output.splitlines() if line.strip()]
            return f"exit {result.returncode}: " + " | ".join(lines[-4:]), output
        return "", output


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, (ProcessLookupError, PermissionError))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help="copy the screenshots into docs/screenshots/ when all checks pass",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--timeout-demo",
        type=float,
        default=1200,
        help="seconds for the demo to answer (database install included)",
    )
    args = parser.parse_args(argv)

    if not (
        os.path.isfile(os.path.join(ODOO_HOME, "src", "odoo-bin")) and os.access(ODOO_PY, os.X_OK)
    ):
        print(f"screenshots: NOT RUN (no Odoo at {ODOO_HOME})")
        return 0
    if sys.executable != ODOO_PY and not os.path.samefile(sys.executable, ODOO_PY):
        print(f"screenshots: note: run with {ODOO_PY} (Pillow, requests)", file=sys.stderr)

    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="crm_mail_sync-shots-run-")
    os.chmod(tmp, 0o755)  # Dovecot's mail user traverses it
    check = Checks()
    demo = DemoRun(tmp, args.timeout_demo)
    out = os.path.join(tmp, "screenshots")
    try:
        t0 = time.monotonic()
        print(
            f"screenshots: starting the demo (database {demo.db}, Odoo {demo.url}, log {demo.log})",
            flush=True,
        )
        problem = demo.start()
        if not check(f"demo started ({time.monotonic() - t0:.0f} s)", not problem, problem):
            return 1

        t0 = time.monotonic()
        problem, output = demo.screenshots(
            os.path.join(tmp, "empty-log"), "--no-prepare", "--only", "settings"
        )
        check(
            f"overview with an empty error log: message below the header "
            f"({time.monotonic() - t0:.0f} s)",
            not problem,
            problem,
        )
        detail = check_png(os.path.join(tmp, "empty-log", "settings.png"), EXPECTED["settings.png"])
        check("empty-log/settings.png is a real screenshot", not detail, detail)

        t0 = time.monotonic()
        problem, output = demo.screenshots(out)
        for line in output.splitlines():
            if line.startswith("screenshots: ") and "FAILED" not in line:
                print(f"  {line}")
        check(
            f"tools/screenshots.py: preparation and screenshots ({time.monotonic() - t0:.0f} s)",
            not problem,
            problem,
        )
        for name, min_size in EXPECTED.items():
            detail = check_png(os.path.join(out, name), min_size)
            check(name, not detail, detail)
    finally:
        t0 = time.monotonic()
        problem = demo.stop()
        check(
            f"demo stopped, database {demo.db} dropped ({time.monotonic() - t0:.0f} s)",
            not problem,
            problem,
        )
        if check.failed and os.path.exists(demo.log):
            print(f"--- the demo's log ({demo.log}), last lines:\n{tail(demo.log, 15)}")
        if args.update_docs and not check.failed:
            docs = os.path.join(ROOT, "docs", "screenshots")
            for name in EXPECTED:
                shutil.copy(os.path.join(out, name), os.path.join(docs, name))
            print(f"screenshots: copied {len(EXPECTED)} PNGs into docs/screenshots/")
        if args.keep or check.failed:
            print(f"screenshots: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"screenshots: total time {time.monotonic() - started:.0f} s")
        print(f"screenshots: {check.passed} passed, {check.failed} failed")
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
