# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Scale-out : several ``odoo-bin`` servers with cron workers share the mailboxes.

200 mailboxes on a private Dovecot (Maildir files, loaded in seconds), one database prepared once
(users, leads, enabled mailboxes, ``crm_mail_sync.cron_workers = 2`` so that two scheduled
actions exist, Odoo's other scheduled actions switched off so that only the sync runs) and then
copied for each run:

- **1 server**: one ``odoo-bin --workers=0 --max-cron-threads=1``;
- **2 servers**: two of them on the same database, different HTTP ports.

Each run triggers the sync actions (``ir.cron._trigger()``: PostgreSQL ``NOTIFY`` wakes the cron
threads) and measures the wall time until every mailbox has been synced. Then it checks:

- every mailbox holds exactly the expected (Message-ID, lead) pairs (from the corpus alone), once;
- no mailbox was synced by two workers at the same time: every server writes each mailbox's sync
  start and end with its pid and thread to a trace file (``CRM_MAIL_SYNC_TRACE``,
  ``mailsync/crashpoint.py``) and the intervals of one mailbox never overlap;
- with two servers, both did part of the work, and the backfill was faster than with one.
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict

from common import (
    DOMAIN,
    ODOO_HOME,
    BenchDovecot,
    bench,
    clone_db,
    correspondent_pool,
    drop_db,
    expected_pairs,
    gate,
    load_dovecot,
    log,
    make_corpus,
    recorded_state,
    setup_records,
)
from imapserver import free_port  # bench/imapserver.py, on the path through common

ODOO_BIN = os.path.join(ODOO_HOME, "src", "odoo-bin")


# -- database side -----------------------------------------------------------------------------
def prepare(env, logins, leads, host, port, workers, batch):
    mailbox_ids, lead_ids = setup_records(
        env,
        logins,
        leads,
        host,
        port,
        {
            "cron_workers": workers,
            "cron_batch_size": batch,
            "min_interval": 3600,
            "fetch_batch_size": 200,
        },
    )
    crons = env["mail.sync.mailbox"]._cron_workers()
    # Only the sync runs in these servers; it waits for the trigger of the measured run.
    env.cr.execute("UPDATE ir_cron SET active = false WHERE id != ALL(%s)", [crons.ids])
    later = dt.datetime.now() + dt.timedelta(days=1)
    crons.write({"nextcall": later})
    return mailbox_ids, lead_ids, crons.ids


def trigger(env, cron_ids):
    crons = env["ir.cron"].browse(cron_ids)
    crons.write({"nextcall": dt.datetime.now()})
    for cron in crons:
        cron._trigger()


def not_synced(env):
    """Mailboxes not tried yet (a failed sync counts as tried: it is reported, not waited for)."""
    env.cr.execute("SELECT count(*) FROM mail_sync_mailbox WHERE last_sync IS NULL")
    return env.cr.fetchone()[0]


def errors(env):
    env.cr.execute("SELECT id, last_error FROM mail_sync_mailbox WHERE state != 'enabled'")
    return env.cr.fetchall()


def warm_up(dove, logins):
    for login in logins:
        client = dove.client(login)
        try:
            for folder in ("INBOX", "Sent"):
                client.select_folder(folder, readonly=True)
                client.fetch("1:*", ["BODY.PEEK[]"])
        finally:
            client.logout()


class LatencyRelay(bench.CountingProxy):
    """A TCP relay in front of Dovecot that delays each direction by half of ``rtt`` seconds:
    the mailboxes then behave like a remote IMAP server (Gmail, Microsoft 365: tens of
    milliseconds away) instead of a loopback one, without touching the machine's network
    settings. Throughput is kept (chunks are queued, not sent one after the other's delay).
    The listening and accepting are the benchmark's byte-counting relay's (no counting here)."""

    def __init__(self, host, port, rtt):
        self.delay = rtt / 2  # before the accepting thread starts
        super().__init__(host, port)

    def _pump(self, src, dst, _way):
        chunks = queue.Queue()

        def writer():
            while True:
                due, data = chunks.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    if data is None:
                        dst.shutdown(socket.SHUT_WR)
                        return
                    dst.sendall(data)
                except OSError:
                    return

        threading.Thread(target=writer, daemon=True).start()
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            chunks.put((time.monotonic() + self.delay, data or None))
            if not data:
                return

    def close(self):
        self.sock.close()


# -- servers -----------------------------------------------------------------------------------
class Server:
    def __init__(self, db, addons_path, tmp, name, trace):
        self.name = name
        self.port = free_port()
        self.log_path = os.path.join(tmp, f"{name}.log")
        env = dict(os.environ, CRM_MAIL_SYNC_TRACE=trace)
        env.pop("CRM_MAIL_SYNC_CRASH_AT", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                ODOO_BIN,
                "-d",
                db,
                "--db-filter",
                f"^{db}$",
                "--addons-path",
                addons_path,
                "--http-port",
                str(self.port),
                "--http-interface",
                "127.0.0.1",
                "--gevent-port",
                str(free_port()),
                "--workers",
                "0",
                "--max-cron-threads",
                "1",
                "--without-demo",
                "all",
                "--log-level",
                "info",
                "--logfile",
                self.log_path,
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path + ".err", "wb"),
        )

    def wait_ready(self, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"FAILED: server {self.name} exited: {self.tail()}")
            text = (
                open(self.log_path, errors="replace").read()
                if os.path.exists(self.log_path)
                else ""
            )
            if "Registry loaded" in text or "Modules loaded" in text:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return
                except OSError:
                    pass
            time.sleep(0.2)
        raise SystemExit(f"FAILED: server {self.name} not ready: {self.tail()}")

    def tail(self):
        out = ""
        for path in (self.log_path, self.log_path + ".err"):
            if os.path.exists(path):
                out += open(path, errors="replace").read()[-2000:]
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def problems(self):
        """ERROR/CRITICAL lines and tracebacks in the server log."""
        text = open(self.log_path, errors="replace").read() if os.path.exists(self.log_path) else ""
        return [
            line
            for line in text.splitlines()
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")
        ]


def read_trace(path):
    """{mailbox id: [(start, end, worker)]} from the trace file, plus unmatched starts."""
    open_ = {}
    intervals = defaultdict(list)
    if not os.path.exists(path):
        return intervals, []
    for line in open(path):
        parts = line.split()
        if len(parts) != 5 or parts[3] not in ("sync_start", "sync_end"):
            continue
        stamp, pid, tid, step, mailbox = float(parts[0]), parts[1], parts[2], parts[3], parts[4]
        worker = f"{pid}/{tid}"
        if step == "sync_start":
            open_[(worker, mailbox)] = stamp
        else:
            start = open_.pop((worker, mailbox), None)
            if start is not None:
                intervals[int(mailbox)].append((start, stamp, worker))
    return intervals, list(open_)


def overlaps(intervals):
    bad = []
    for mailbox, spans in intervals.items():
        spans = sorted(spans)
        for (_s1, e1, w1), (s2, _e2, w2) in zip(spans, spans[1:]):
            if s2 < e1:
                bad.append((mailbox, w1, w2))
    return bad


def measured_run(
    odoo_factory,
    setup_db,
    addons_path,
    tmp,
    servers,
    cron_ids,
    expected_by_id,
    timeout,
    kill_at=None,
):
    """One backfill of every mailbox by ``servers`` odoo-bin servers. ``kill_at`` (a fraction):
    SIGKILL the first server once that share of the mailboxes is synced; the others must finish
    the job (the killed server's locks die with its database sessions)."""
    name = f"{servers}srv" + ("-kill" if kill_at else "")
    db = f"{setup_db}_{name.replace('-', '_')}"
    clone_db(setup_db, db)
    trace = os.path.join(tmp, f"trace-{name}.txt")
    running = []
    result = {
        "servers": servers,
        "label": f"{servers} server(s)"
        + (f", the first SIGKILLed at {kill_at:.0%} of the backfill" if kill_at else ""),
    }
    killed_pid = None
    try:
        running = [
            Server(db, addons_path, tmp, f"odoo{name}-{i + 1}", trace) for i in range(servers)
        ]
        for server in running:
            server.wait_ready()
        odoo = odoo_factory(db)
        total = odoo.run(not_synced)
        t0 = time.monotonic()
        t0_wall = time.time()
        odoo.run(trigger, cron_ids)
        left = total
        while left and time.monotonic() - t0 < timeout:
            time.sleep(0.25)
            left = odoo.run(not_synced)
            if kill_at and killed_pid is None and total - left >= kill_at * total:
                killed_pid = running[0].proc.pid
                os.kill(killed_pid, signal.SIGKILL)
                running[0].proc.wait()
                result["killed_after_s"] = time.monotonic() - t0
        wall = time.monotonic() - t0
        result.update({"wall_s": wall, "mailboxes": total, "not_synced": left})
        problems = []
        if left:
            problems.append(f"{left} mailbox(es) not synced after {timeout}s")
        failed = odoo.run(errors)
        if failed:
            problems.append(f"{len(failed)} mailbox(es) not Enabled, e.g. {failed[:2]}")
        ids = list(expected_by_id)
        entries, registry, _folders = odoo.run(lambda env: recorded_state(env, ids))
        lost = duplicated = unexpected = 0
        for mailbox_id, expected in expected_by_id.items():
            verdict = gate(expected, entries[mailbox_id], registry[mailbox_id])
            lost += verdict["lost"] + verdict["registry_lost"]
            duplicated += verdict["duplicated"] + verdict["registry_duplicated"]
            unexpected += verdict["unexpected"]
        result.update(
            lost=lost,
            duplicated=duplicated,
            unexpected=unexpected,
            recorded=sum(sum(c.values()) for c in entries.values()),
            expected=sum(len(e) for e in expected_by_id.values()),
        )
        if lost or duplicated or unexpected:
            problems.append(f"lost {lost}, duplicated {duplicated}, unexpected {unexpected}")
        odoo.close_connections()
        for server in running:
            server.stop()
        intervals, unfinished = read_trace(trace)
        bad = overlaps(intervals)
        per_worker = defaultdict(int)
        per_pid = defaultdict(int)
        for spans in intervals.values():
            for _s, _e, worker in spans:
                per_worker[worker] += 1
                per_pid[worker.split("/")[0]] += 1
        starts = [span[0] for spans in intervals.values() for span in spans]
        busy = defaultdict(float)
        for spans in intervals.values():
            for start, end, worker in spans:
                busy[worker.split("/")[0]] += end - start
        result.update(
            first_sync_after_s=(min(starts) - t0_wall) if starts else None,
            busy_s=sorted((round(v, 1) for v in busy.values()), reverse=True),
        )
        result.update(
            overlaps=len(bad),
            syncs=sum(len(s) for s in intervals.values()),
            per_server=sorted(per_pid.values(), reverse=True),
            unfinished=len(unfinished),
        )
        if bad:
            problems.append(f"{len(bad)} mailbox(es) synced by two workers at once: {bad[:3]}")
        # The killed server's sync under way never ended: expected, and only that one.
        unfinished = [(w, m) for w, m in unfinished if w.split("/")[0] != str(killed_pid)]
        result["unfinished"] = len(unfinished)
        if unfinished:
            problems.append(f"{len(unfinished)} sync(s) started and never ended")
        if len(intervals) != total:
            problems.append(f"trace shows {len(intervals)} mailboxes synced, not {total}")
        if servers > 1 and len(per_pid) < servers:
            problems.append(f"only {len(per_pid)} of {servers} servers synced anything")
        for server in running:
            lines = server.problems()
            if lines:
                problems.append(f"{server.name} logged errors: {lines[:3]}")
        result["problems"] = problems
        return result
    finally:
        for server in running:
            server.stop()
        drop_db(db)


def run(
    odoo_factory,
    template_db,
    addons_path,
    long=False,
    seed=11,
    mailboxes=200,
    messages=None,
    rtt_ms=20,
):
    messages = messages or (30 if long else 8)
    tmp = tempfile.mkdtemp(prefix="crm_mail_sync-scale-")
    os.chmod(tmp, 0o755)
    setup_db = f"{template_db}_scale"
    dove = BenchDovecot(workdir=os.path.join(tmp, "dovecot"))
    relay = None
    try:
        t = time.monotonic()
        pool = correspondent_pool(seed, 300)
        leads = sorted(random.Random(seed).sample(pool, 120))
        logins = [f"rep{i:03d}@{DOMAIN}" for i in range(mailboxes)]
        corpora = {
            login: make_corpus(seed * 1000 + i, login, pool, messages)
            for i, login in enumerate(logins)
        }
        load_dovecot(dove, corpora)
        dove.start()
        warm_up(dove, logins)  # Dovecot indexes a Maildir at its first access: not in run 1 only
        host, port = dove.host, dove.port
        if rtt_ms:
            relay = LatencyRelay(dove.host, dove.port, rtt_ms / 1000)
            host, port = relay.host, relay.port
        clone_db(template_db, setup_db)
        odoo = odoo_factory(setup_db)
        mailbox_ids, lead_ids, cron_ids = odoo.run(
            lambda env: prepare(env, logins, leads, host, port, 2, 10)
        )
        odoo.close_connections()
        expected_by_id = {
            mailbox_ids[login]: expected_pairs(corpora[login], login, lead_ids) for login in logins
        }
        log(
            f"scale-out: {mailboxes} mailboxes x {messages} messages, "
            f"{sum(len(e) for e in expected_by_id.values())} expected (Message-ID, lead) pairs, "
            f"{len(cron_ids)} sync actions, IMAP round trip {rtt_ms} ms "
            f"(prepared in {time.monotonic() - t:.0f}s)"
        )
        results = []
        for servers, kill_at in ((1, None), (2, None), (2, 0.4)):
            res = measured_run(
                odoo_factory,
                setup_db,
                addons_path,
                tmp,
                servers,
                cron_ids,
                expected_by_id,
                timeout=600 if long else 300,
                kill_at=kill_at,
            )
            log(
                f"  {res['label']}: {res.get('wall_s', 0):.1f}s for {res.get('mailboxes')} "
                f"mailboxes, per server {res.get('per_server')}, overlaps {res.get('overlaps')}, "
                f"lost {res.get('lost')}, duplicated {res.get('duplicated')}"
                + (f"; PROBLEMS: {res['problems']}" if res["problems"] else "")
            )
            results.append(res)
        one, two = results[:2]
        faster = not one["problems"] and not two["problems"] and two["wall_s"] < one["wall_s"]
        return {
            "runs": results,
            "faster": bool(faster),
            "speedup": (one["wall_s"] / two["wall_s"]) if faster or two.get("wall_s") else None,
            "messages": messages,
            "mailboxes": mailboxes,
            "rtt_ms": rtt_ms,
        }
    finally:
        if relay:
            relay.close()
        dove.stop()
        drop_db(setup_db)
        shutil.rmtree(tmp, ignore_errors=True)
