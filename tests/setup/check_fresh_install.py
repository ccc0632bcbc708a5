#!/usr/bin/env python3
# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""What an administrator gets on a fresh machine (the "setup" layer of tools/test.sh):

    /opt/odoo/venv/bin/python tests/setup/check_fresh_install.py [--json PATH] [--keep]

1. archive  Odoo installed from a source archive: a .tar.gz of the installed Odoo source
            ($ODOO_HOME/src, default /opt/odoo/src; no __pycache__, no *.pyc) laid out as Odoo's
            official nightly archive is (one top folder odoo-<version>/, the launcher only as
            setup/odoo, no odoo-bin), built in a temporary directory; then
            ``ODOO_HOME=<empty dir> ODOO_SOURCE=<archive> bash tools/setup.sh --need-odoo``
            exits 0 and leaves src/odoo-bin (made from setup/odoo) and venv/bin/python, and
            ``odoo-bin --version`` says 18.0.
2. offline  ``ODOO_HOME=<another empty dir> ODOO_SOURCE=https://odoo-source.invalid/…
            bash tools/demo.sh`` fails within 30 s, exit code not 0, and prints nothing but its
            own progress lines (``[setup.sh] …``, ``[demo.sh] …``) and ONE line on stderr,
            ``NO ODOO: …``, saying how to provide Odoo; the directory stays empty. The same with
            the default URL (nightly.odoo.com) is run and reported only when that host does not
            resolve (then it must fail the same way); it never decides the verdict.
3. demo     ``bash tools/demo.sh --reset`` on the Odoo of step 1, in the background, with its own
            XDG_STATE_HOME, database and free ports; once Odoo answers, JSON-RPC as admin/admin
            polls until mail.message rows with mail_sync_mailbox_id set and model crm.lead exist
            (on at least one of the crm demo leads); then SIGINT to demo.sh's process group (a
            Ctrl-C): demo.sh ends, nothing of it keeps running, its mail servers are stopped.

The database and every temporary directory (step 1's Odoo too) are removed at the end (kept with
--keep). Prints "ok NAME (Ns): …" or "FAIL NAME: why" per step, then "setup: N passed, N
failed"; exits 1 when a step failed. Needs root, PostgreSQL, Dovecot and PyPI as tools/setup.sh
does; takes about 5 minutes here. Without Odoo at $ODOO_HOME it prints "SETUP CHECK NOT RUN: …"
and exits 0.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ODOO_HOME = os.path.abspath(os.environ.get("ODOO_HOME", "/opt/odoo"))
OFFLINE_SOURCE = "https://odoo-source.invalid/odoo_18.0.latest.tar.gz"
OFFICIAL_HOST = "nightly.odoo.com"
OFFLINE_LIMIT = 30  # seconds: "without network … says so in one line within seconds"
SETUP_TIMEOUT = 1200  # step 1's setup.sh (a cold pip cache: several minutes)
DEMO_START_TIMEOUT = 900  # demo.sh until Odoo answers (database created with demo data)
SYNC_TIMEOUT = 240  # Odoo answers until synced mail is on the leads
STOP_TIMEOUT = 60
PROGRESS = re.compile(r"^\[(setup|demo)\.sh\] ")


class CheckFailed(Exception):
    pass


def tail(path, lines=30):
    try:
        with open(path, errors="replace") as fh:
            return "\n".join(fh.read().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def odoo_version(src):
    """The version in the source's PKG-INFO (the nightly archive's), else 18.0.post<today>."""
    try:
        with open(os.path.join(src, "PKG-INFO"), encoding="utf-8") as fh:
            found = re.search(r"^Version: (\S+)$", fh.read(), re.M)
        if found:
            return found.group(1)
    except OSError:
        pass
    return "18.0.post" + time.strftime("%Y%m%d")


def free_ports(count):
    """``count`` distinct free loopback ports (held together while picked)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def resolves(host, timeout=15):
    """Whether ``host`` resolves here (no answer within ``timeout`` s: it does not)."""
    try:
        return (
            subprocess.run(
                ["getent", "ahosts", host],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout,
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def pids_running_with(db):
    """The pids of the processes run with ``-d db`` (the run's own database name: Odoo runs in a
    session of its own, outside demo.sh's process group)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if any(a == b"-d" and b == db.encode() for a, b in zip(argv, argv[1:])):
            found.append(int(entry))
    return found


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def kill_group(proc, sig=signal.SIGTERM, grace=20):
    """``sig`` to proc's process group, SIGKILL after ``grace`` s if anything of it is left."""
    if not group_alive(proc.pid):
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and group_alive(proc.pid):
        time.sleep(0.2)
    if group_alive(proc.pid):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def base_env(tmp, **extra):
    # No ODOO_SOURCE from outside; no MAILSYNC_* of tools/test.sh (the demo runs its own servers).
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "ODOO_SOURCE" and not key.startswith("MAILSYNC_")
    }
    env.update(TMPDIR=os.path.join(tmp, "tmp"), XDG_STATE_HOME=os.path.join(tmp, "state"))
    env.update(extra)
    return env


# ---- 1. Odoo from an archive ------------------------------------------------------------------
def build_archive(tmp, facts):
    src = os.path.join(ODOO_HOME, "src")
    version = odoo_version(src)
    top = f"odoo-{version}"
    archive = os.path.join(tmp, "archive", "odoo_18.0.latest.tar.gz")
    os.makedirs(os.path.dirname(archive))
    t0 = time.monotonic()
    # As the official nightly archive: one top folder, the launcher only as setup/odoo.
    cmd = [
        "tar",
        "-C",
        ODOO_HOME,
        "--exclude=__pycache__",
        "--exclude=*.pyc",
        "--anchored",
        "--exclude=src/odoo-bin",
        "--no-anchored",
        f"--transform=s,^src,{top},",
        "--use-compress-program=gzip -1",
        "-cf",
        archive,
        "src",
    ]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise CheckFailed(f"tar exited {proc.returncode}: {proc.stdout[-2000:]}")
    facts.update(
        archive_top=top,
        archive_mb=round(os.path.getsize(archive) / 2**20, 1),
        archive_seconds=round(time.monotonic() - t0, 1),
    )
    return archive


def check_archive_install(tmp, facts):
    archive = build_archive(tmp, facts)
    home = os.path.join(tmp, "odoo-from-archive")
    os.makedirs(home)
    log = os.path.join(tmp, "logs", "setup-archive.log")
    env = base_env(tmp, ODOO_HOME=home, ODOO_SOURCE=archive)
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["bash", os.path.join(REPO, "tools", "setup.sh"), "--need-odoo"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        proc.wait(SETUP_TIMEOUT)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise CheckFailed(f"setup.sh still running after {SETUP_TIMEOUT}s:\n{tail(log)}") from None
    finally:
        if group_alive(proc.pid):  # interrupted (Ctrl-C, SIGTERM): nothing of it keeps running
            kill_group(proc)
    seconds = time.monotonic() - t0
    facts["setup_seconds"] = round(seconds, 1)
    if proc.returncode != 0:
        raise CheckFailed(f"setup.sh --need-odoo exited {proc.returncode}:\n{tail(log)}")
    bin_, py = os.path.join(home, "src", "odoo-bin"), os.path.join(home, "venv", "bin", "python")
    problems = []
    if not os.path.isfile(bin_):
        problems.append(f"no {bin_}")
    if not os.access(py, os.X_OK):
        problems.append(f"no {py}")
    if problems:
        raise CheckFailed("; ".join(problems) + f"\n{tail(log)}")
    with open(bin_, "rb") as a, open(os.path.join(home, "src", "setup", "odoo"), "rb") as b:
        from_launcher = a.read() == b.read()
    if not from_launcher:
        raise CheckFailed("src/odoo-bin is not the archive's setup/odoo")
    said = subprocess.run(
        [py, bin_, "--version"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    ).stdout
    version = next((line.strip() for line in said.splitlines() if "Odoo" in line), said.strip())
    if not re.search(r"\b18\.0\b", version):
        raise CheckFailed(f"odoo-bin --version says {said!r}, not 18.0")
    facts["odoo_version"] = version
    facts["odoo_home"] = home
    return (
        f"{facts['archive_top']}/ ({facts['archive_mb']} MB, no odoo-bin, built in "
        f"{facts['archive_seconds']:.0f}s) installed by setup.sh --need-odoo in "
        f"{seconds:.0f}s: src/odoo-bin (from setup/odoo), venv/bin/python; "
        f"odoo-bin --version: {version}"
    )


# ---- 2. offline, no source --------------------------------------------------------------------
def run_offline_demo(tmp, name, source):
    """demo.sh with an empty ODOO_HOME and ``source`` (None: the default URL). Returns
    (rc, seconds, stdout lines, stderr lines, ODOO_HOME's entries)."""
    home = os.path.join(tmp, name)
    os.makedirs(home)
    extra = {"ODOO_HOME": home, "DEMO_DB": f"crm_mail_sync_setupcheck_never_{os.getpid()}"}
    if source:
        extra["ODOO_SOURCE"] = source
    env = base_env(tmp, **extra)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        ["bash", os.path.join(REPO, "tools", "demo.sh")],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=OFFLINE_LIMIT)
    except subprocess.TimeoutExpired:
        kill_group(proc, grace=5)
        out, err = proc.communicate()
        raise CheckFailed(
            f"demo.sh still running after {OFFLINE_LIMIT}s; stderr:\n{err[-2000:]}"
        ) from None
    return (
        proc.returncode,
        time.monotonic() - t0,
        out.splitlines(),
        err.splitlines(),
        sorted(os.listdir(home)),
    )


def judge_offline(rc, seconds, out, err, left):
    """The problems of one offline run (empty: as it should be)."""
    problems = []
    if rc == 0:
        problems.append("exit code 0")
    if seconds >= OFFLINE_LIMIT:
        problems.append(f"took {seconds:.0f}s")
    other_out = [line for line in out if not PROGRESS.match(line)]
    other_err = [line for line in err if not PROGRESS.match(line)]
    if other_out:
        problems.append(f"{len(other_out)} line(s) on stdout: {other_out[:3]}")
    if len(other_err) != 1:
        problems.append(
            f"{len(other_err)} lines on stderr besides the progress lines, not 1: {other_err[:5]}"
        )
    elif not other_err[0].startswith("NO ODOO: ") or "ODOO_SOURCE" not in other_err[0]:
        problems.append(
            f"the line does not start with 'NO ODOO: ' and name ODOO_SOURCE: {other_err[0]!r}"
        )
    elif err[-1] != other_err[0]:
        problems.append("the NO ODOO line is not the last one")
    if left:
        problems.append(f"ODOO_HOME is no longer empty: {left}")
    return problems, (other_err[0] if len(other_err) == 1 else None)


def check_offline(tmp, facts):
    rc, seconds, out, err, left = run_offline_demo(tmp, "odoo-offline", OFFLINE_SOURCE)
    problems, line = judge_offline(rc, seconds, out, err, left)
    facts["offline"] = {"exit": rc, "seconds": round(seconds, 1), "stdout": out, "stderr": err}
    if problems:
        raise CheckFailed("; ".join(problems) + "\nstderr:\n" + "\n".join(err[-10:]))
    progress = sum(1 for line_ in out + err if PROGRESS.match(line_))
    notes = [f"  stderr: {line_}" for line_ in err]
    # The default URL: reported, never decides (it would download Odoo where the host resolves).
    if resolves(OFFICIAL_HOST):
        notes.append(
            f"  default URL: {OFFICIAL_HOST} resolves here: not run (it would download "
            f"and install Odoo)"
        )
        facts["default_url"] = "resolves: not run"
    else:
        try:
            d_rc, d_seconds, d_out, d_err, d_left = run_offline_demo(tmp, "odoo-default", None)
            d_problems, d_line = judge_offline(d_rc, d_seconds, d_out, d_err, d_left)
            verdict = (
                "fails the same way"
                if not d_problems
                else "NOT as it should: " + "; ".join(d_problems)
            )
            notes.append(
                f"  default URL ({OFFICIAL_HOST} does not resolve here): exit {d_rc} in "
                f"{d_seconds:.1f}s, {verdict}: {d_line or d_err[-1:]}"
            )
            facts["default_url"] = {
                "exit": d_rc,
                "seconds": round(d_seconds, 1),
                "stderr": d_err,
                "as_expected": not d_problems,
            }
        except CheckFailed as exc:
            notes.append(f"  default URL ({OFFICIAL_HOST} does not resolve here): {exc}")
            facts["default_url"] = str(exc)
    return (
        f"demo.sh exit {rc} in {seconds:.1f}s, {progress} progress line(s) and one NO ODOO "
        f"line on stderr, nothing on stdout, ODOO_HOME left empty\n" + "\n".join(notes)
    )


# ---- 3. the demo on the freshly installed Odoo -------------------------------------------------
class JsonRpc:
    def __init__(self, port):
        self.url = f"http://127.0.0.1:{port}"
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def call(self, path, params, timeout=30):
        body = json.dumps({"jsonrpc": "2.0", "method": "call", "id": 1, "params": params}).encode()
        request = urllib.request.Request(
            self.url + path, body, {"Content-Type": "application/json"}
        )
        with self.opener.open(request, timeout=timeout) as response:
            answer = json.load(response)
        if answer.get("error"):
            error = answer["error"]
            raise CheckFailed(f"{path}: {error.get('data', {}).get('message') or error}")
        return answer["result"]

    def call_kw(self, model, method, args, kwargs=None):
        return self.call(
            f"/web/dataset/call_kw/{model}/{method}",
            {"model": model, "method": method, "args": args, "kwargs": kwargs or {}},
        )


def check_demo(tmp, facts):
    home = facts.get("odoo_home")
    if not home:
        raise CheckFailed("not run: step 1 installed no Odoo")
    http_port, imap, imaps, smtp, smtps = free_ports(5)
    db = f"crm_mail_sync_setupcheck_{time.strftime('%Y%m%d%H%M%S')}_{os.getpid()}"
    facts["demo_db"] = db
    state = os.path.join(tmp, "demo-state")
    env = base_env(
        tmp,
        ODOO_HOME=home,
        XDG_STATE_HOME=state,
        DEMO_DB=db,
        DEMO_HTTP_PORT=str(http_port),
        DEMO_IMAP_PORT=str(imap),
        DEMO_IMAPS_PORT=str(imaps),
        DEMO_SMTP_PORT=str(smtp),
        DEMO_SMTPS_PORT=str(smtps),
    )
    log = os.path.join(tmp, "logs", "demo.log")
    facts["demo_log"] = log
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["bash", os.path.join(REPO, "tools", "demo.sh"), "--reset"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    facts["_demo_proc"] = proc
    facts["_demo_state"] = os.path.join(state, "crm_mail_sync", "demo")
    rpc = JsonRpc(http_port)
    deadline = t0 + DEMO_START_TIMEOUT
    version = None
    while version is None:
        if proc.poll() is not None:
            raise CheckFailed(
                f"demo.sh exited {proc.returncode} before Odoo answered:\n{tail(log)}"
            )
        if time.monotonic() > deadline:
            raise CheckFailed(
                f"Odoo did not answer on port {http_port} within "
                f"{DEMO_START_TIMEOUT}s:\n{tail(log)}"
            )
        try:
            version = rpc.call("/web/webclient/version_info", {}, timeout=10)
        except (OSError, urllib.error.URLError, ValueError):
            time.sleep(2)
    started = time.monotonic() - t0
    facts["demo_start_seconds"] = round(started, 1)
    session = rpc.call(
        "/web/session/authenticate", {"db": db, "login": "admin", "password": "admin"}
    )
    if not session.get("uid"):
        raise CheckFailed(f"admin/admin could not log in: {session}")
    domain = [["mail_sync_mailbox_id", "!=", False], ["model", "=", "crm.lead"]]
    deadline = time.monotonic() + SYNC_TIMEOUT
    while True:
        messages = rpc.call_kw(
            "mail.message", "search_read", [domain], {"fields": ["res_id"], "order": "id"}
        )
        if messages or time.monotonic() > deadline or proc.poll() is not None:
            break
        time.sleep(5)
    synced_after = time.monotonic() - t0
    mailboxes = rpc.call_kw(
        "mail.sync.mailbox",
        "search_read",
        [[]],
        {"fields": ["email", "state", "synced_count", "last_error"]},
    )
    if not messages:
        raise CheckFailed(
            f"no synced mail on a lead {SYNC_TIMEOUT}s after Odoo answered (demo.sh "
            f"{'exited ' + str(proc.returncode) if proc.poll() is not None else 'running'}); "
            f"mailboxes: {mailboxes}\n{tail(log)}"
        )
    counts = {}
    for message in messages:
        counts[message["res_id"]] = counts.get(message["res_id"], 0) + 1
    leads = rpc.call_kw("crm.lead", "read", [sorted(counts)], {"fields": ["name"]})
    names = {lead["id"]: lead["name"] for lead in leads}
    demo_ids = {
        row["res_id"]
        for row in rpc.call_kw(
            "ir.model.data",
            "search_read",
            [
                [
                    ["model", "=", "crm.lead"],
                    ["module", "=", "crm"],
                    ["res_id", "in", sorted(counts)],
                ]
            ],
            {"fields": ["res_id"]},
        )
    }
    if not demo_ids:
        raise CheckFailed(f"synced mail only on leads that are not crm demo leads: {names}")
    on_leads = sorted(counts.items(), key=lambda kv: (-kv[1], names.get(kv[0], "")))
    facts["synced"] = {
        "messages": len(messages),
        "leads": len(counts),
        "demo_leads": len(demo_ids),
        "mailboxes": mailboxes,
        "per_lead": {names.get(i, str(i)): n for i, n in on_leads},
    }

    # Stop as Ctrl-C does: SIGINT to the process group.
    t_stop = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        rc = proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise CheckFailed(
            f"demo.sh still running {STOP_TIMEOUT}s after SIGINT:\n{tail(log)}"
        ) from None
    stop_seconds = time.monotonic() - t_stop
    time.sleep(1)
    problems = []
    if group_alive(proc.pid):
        problems.append("processes of demo.sh's group still run after it ended")
    busy = [p for p in (http_port, imap, imaps, smtp, smtps) if port_open(p)]
    if busy:
        problems.append(f"ports still listening after the stop: {busy}")
    if os.path.exists(os.path.join(facts["_demo_state"], "run", "services.pid")):
        problems.append("the mail servers' services.pid is still there")
    left = pids_running_with(db)
    if left:
        problems.append(f"processes with -d {db} still run: {left}")
    connections = subprocess.run(
        [
            "psql",
            "-X",
            "-tA",
            "-d",
            "postgres",
            "-c",
            f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    ).stdout.strip()
    if connections != "0":
        problems.append(f"connections to {db} left: {connections}")
    with open(log, errors="replace") as fh:
        log_text = fh.read()
    forced = "Forced shutdown" in log_text
    if forced:
        problems.append("Odoo forced its shutdown (it got a second signal)")
    facts.update(stop_seconds=round(stop_seconds, 1), stop_exit=rc, forced_shutdown=forced)
    if problems:
        raise CheckFailed("; ".join(problems) + f"\n{tail(log)}")
    lines = "\n".join(
        f"  {n} on {names.get(i, i)!r}{' (crm demo)' if i in demo_ids else ''}" for i, n in on_leads
    )
    boxes = ", ".join(f"{m['email']}: {m['state']}, {m['synced_count']} synced" for m in mailboxes)
    return (
        f"Odoo {version.get('server_version')} answered {started:.0f}s after demo.sh "
        f"--reset; synced mail on the leads {synced_after:.0f}s after the start: "
        f"{len(messages)} mail.message on {len(counts)} leads ({len(demo_ids)} crm demo "
        f"leads); mailbox {boxes}; SIGINT to its process group: demo.sh exit {rc} in "
        f"{stop_seconds:.1f}s, Odoo shut down without forcing, no process, port or database "
        f"connection of the demo left, mail servers stopped\n{lines}"
    )


def cleanup_demo(facts):
    proc = facts.pop("_demo_proc", None)
    if proc is not None and group_alive(proc.pid):
        kill_group(proc, signal.SIGTERM)
    db = facts.get("demo_db")
    for pid in pids_running_with(db) if db else ():  # an Odoo demo.sh left behind
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    state = facts.pop("_demo_state", None)
    if state and os.path.isdir(os.path.join(state, "run")):
        subprocess.run(
            [
                sys.executable,
                os.path.join(REPO, "tools", "services.py"),
                "stop",
                "--state-dir",
                os.path.join(state, "run"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
    if db:
        subprocess.run(
            [
                "psql",
                "-X",
                "-q",
                "-d",
                "postgres",
                "-c",
                f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)',
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the figures and outputs there")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary directory (logs, archive, step 1's Odoo)",
    )
    args = parser.parse_args(argv)
    if not (
        os.path.isfile(os.path.join(ODOO_HOME, "src", "odoo-bin"))
        and os.access(os.path.join(ODOO_HOME, "venv", "bin", "python"), os.X_OK)
    ):
        print(f"SETUP CHECK NOT RUN: no Odoo at {ODOO_HOME} to build the archive from", flush=True)
        return 0
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="crm_mail_sync-setup-check.")
    os.chmod(tmp, 0o755)  # Dovecot's unprivileged processes read the demo's Maildirs below it
    if os.path.realpath(tmp).startswith(os.path.realpath(REPO) + os.sep):
        print(f"FAIL setup: the temporary directory {tmp} is inside the repository", flush=True)
        return 1
    for sub in ("tmp", "logs", "state"):
        os.makedirs(os.path.join(tmp, sub))
    facts = {"steps": {}}
    passed = failed = 0

    def step(name, func):
        nonlocal passed, failed
        t0 = time.monotonic()
        try:
            detail = func(tmp, facts)
        except Exception as exc:  # noqa: BLE001 — a step that breaks is a failed step
            if not isinstance(exc, CheckFailed):
                exc = f"{type(exc).__name__}: {exc}"
            failed += 1
            facts["steps"][name] = {
                "ok": False,
                "seconds": round(time.monotonic() - t0, 1),
                "detail": str(exc),
            }
            print(f"FAIL {name}: {exc}", flush=True)
            return
        passed += 1
        facts["steps"][name] = {
            "ok": True,
            "seconds": round(time.monotonic() - t0, 1),
            "detail": detail,
        }
        print(f"ok {name} ({time.monotonic() - t0:.0f}s): {detail}", flush=True)

    try:
        step("archive", check_archive_install)
        step("offline", check_offline)
        try:
            step("demo", check_demo)
        finally:
            cleanup_demo(facts)
    finally:
        if args.keep:
            print(f"kept: {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    facts["total_seconds"] = round(time.monotonic() - started, 1)
    facts.update(passed=passed, failed=failed)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(facts, fh, indent=1, default=str)
    print(f"total {facts['total_seconds']:.0f}s", flush=True)
    print(f"setup: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
