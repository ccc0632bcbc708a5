#!/usr/bin/env python3
"""crm_mail_sync benchmark: backfill, baseline, ceiling, idle poll, bandwidth, memory,
arrival-to-chatter latency (a real Odoo server's cron path, median and p95).

    /opt/odoo/venv/bin/python bench/run.py            # 10 mailboxes x 2,000 messages, 1,000 idle
    /opt/odoo/venv/bin/python bench/run.py --quick    # 2 x 150, 20 idle: smoke / correctness run

The orchestrator (this process, no Odoo import) generates the corpus, loads a private Dovecot,
creates a fresh database and then runs every measurement in its own subprocess
(``run.py --phase NAME``) so that peak-RSS figures never mix and Odoo starts from a cold cache.
Exit status: 0 when every mailbox holds exactly the expected (Message-ID, lead) set, 2 when a
message was lost, duplicated or recorded where it should not be, 1 on any other failure.
Timing targets never change the exit status; they are reported as pass/miss.
"""

from __future__ import annotations

import argparse
import datetime as dt
import email
import email.policy
import email.utils
import json
import math
import os
import platform
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ADDON = os.path.dirname(HERE)
ODOO_HOME = os.environ.get("ODOO_HOME", "/opt/odoo")
ODOO_BIN = os.path.join(ODOO_HOME, "src", "odoo-bin")
PYTHON = sys.executable
ADDON_NAME = "crm_mail_sync"
PASSWORD = "bench-pw"
DOMAIN = "bench.test"

sys.path.insert(0, HERE)

from imapserver import free_port  # noqa: E402

TARGETS = {
    "backfill_vs_baseline": 10.0,  # x
    "backfill_vs_ceiling": 0.40,
    "queries_per_recorded": 5.0,
    "idle_median_ms": 10.0,
    "idle_pass_s_per_1000": 30.0,
    "unmatched_bytes": 4096,
    "rss_growth_x_largest": 3.0,
    "rss_growth_x_allowed": 2.0,  # the largest message the default limits record whole
    "arrival_median_s": 60.0,
}


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ============================================================================================
# Corpus
# ============================================================================================
def norm_addr(addr: str | None) -> str | None:
    """Independent of mailsync.addresses on purpose: lower-case, IDNA domain."""
    if not addr or "@" not in addr:
        return None
    local, _, domain = addr.strip().strip("<>").rpartition("@")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    return f"{local}@{domain}".lower()


def header_addrs(raw: bytes) -> tuple[str | None, set[str]]:
    """(Message-ID, normalised From/To/Cc addresses) read from the raw header with compat32."""
    head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw[:200000] else raw.split(b"\n\n", 1)[0]
    msg = email.message_from_bytes(head + b"\r\n\r\n", policy=email.policy.compat32)
    values = []
    for h in ("From", "To", "Cc"):
        for v in msg.get_all(h, []):
            values.append(str(v))
    addrs = {a for a in (norm_addr(x) for _, x in email.utils.getaddresses(values)) if a}
    mid = msg.get("Message-ID")
    return (mid.strip() if mid else None), addrs


def build_corpus(args):
    """Mailboxes of the run, their messages and the lead addresses (deterministic from --seed)."""
    from mailsync.testing import corpus as corpus_mod

    rnd = random.Random(args.seed)
    # A shared pool of outside correspondents; ~30 % of them are leads.
    pool = [
        f"{first}.{i}@{org}.example"
        for i, (first, org) in enumerate(
            (
                rnd.choice(
                    ["ann", "bob", "carla", "dmitri", "eve", "farid", "gita", "hugo", "ines", "jon"]
                ),
                rnd.choice(
                    ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell"]
                ),
            )
            for _ in range(args.correspondents * max(1, args.mailboxes // 2))
        )
    ]
    leads = sorted(rnd.sample(pool, round(len(pool) * args.lead_share)))
    mailboxes = []
    for i in range(args.mailboxes):
        user = f"rep{i:02d}@{DOMAIN}"
        corr = rnd.sample(pool, min(args.correspondents, len(pool)))
        msgs = corpus_mod.generate(args.seed * 1000 + i, user, corr, args.messages)
        mailboxes.append({"login": user, "email": user, "messages": msgs})
    return pool, leads, mailboxes


def expected_pairs(messages, own: str, lead_ids: dict[str, int]):
    """{(Message-ID, lead id)} a mailbox must end with, from the corpus alone."""
    own = norm_addr(own)
    exp = set()
    for m in messages:
        mid, addrs = header_addrs(m.raw)
        mid = mid or getattr(m, "message_id", None)
        for a in addrs - {own}:
            if a in lead_ids:
                exp.add((mid, lead_ids[a]))
    return exp


def big_message(sender: str, to: str, size: int, parts: int = 1, tag: str = "25mb") -> bytes:
    """One message of about ``size`` bytes (``parts`` base64 attachments), deterministic."""
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = "Signed contract and scans"
    msg["Date"] = "Mon, 03 Mar 2025 10:00:00 +0000"
    msg["Message-ID"] = f"<big-{tag}@bench.test>"
    msg.set_content("Please find the scans attached.\n")
    rnd = random.Random(25)
    for index in range(parts):  # base64: 4/3, 76 characters a line
        payload = rnd.randbytes(int(size / parts * 3 / 4 * 76 / 78) - 512)
        msg.add_attachment(
            payload,
            maintype="application",
            subtype="octet-stream",
            filename=f"scans-{index + 1}.bin",
        )
    return msg.as_bytes(policy=email.policy.SMTP)


# ============================================================================================
# Orchestrator helpers
# ============================================================================================
def machine_info():
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor(),
        "ram_gb": round(ram / 2**30, 1),
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "dovecot": subprocess.run(
            ["dovecot", "--version"], capture_output=True, text=True
        ).stdout.strip(),
        "commit": subprocess.run(
            ["git", "-C", ADDON, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
    }


def addons_path(tmp):
    os.makedirs(os.path.join(tmp, "addons"), exist_ok=True)
    link = os.path.join(tmp, "addons", ADDON_NAME)
    if not os.path.exists(link):
        os.symlink(ADDON, link)
    paths = [
        os.path.join(ODOO_HOME, "src", "odoo", "addons"),
        os.path.join(ODOO_HOME, "src", "addons"),
        os.path.join(tmp, "addons"),
    ]
    return ",".join(p for p in paths if os.path.isdir(p))


def odoo_args(state):
    return [
        "-d",
        state["db"],
        "--addons-path",
        state["addons_path"],
        "--log-level",
        "warn",
        "--without-demo",
        "all",
    ]


def create_db(db, ap, modules=ADDON_NAME):
    subprocess.run(["dropdb", "--if-exists", db], check=False, capture_output=True)
    cmd = [
        PYTHON,
        ODOO_BIN,
        "-d",
        db,
        "-i",
        modules,
        "--stop-after-init",
        "--without-demo",
        "all",
        "--addons-path",
        ap,
        "--log-level",
        "warn",
        "--max-cron-threads",
        "0",
        "--http-port",
        "0",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or " ERROR " in r.stderr or "CRITICAL" in r.stderr:
        sys.stderr.write(r.stderr[-6000:])
        raise SystemExit(f"FAILED: could not install {modules} in {db}")


def run_phase(name, state_path, timeout=7200):
    out = state_path + f".{name}.json"
    if os.path.exists(out):
        os.unlink(out)
    cmd = [
        PYTHON,
        os.path.abspath(__file__),
        "--phase",
        name,
        "--state",
        state_path,
        "--phase-out",
        out,
    ]
    t = time.monotonic()
    r = subprocess.run(cmd, timeout=timeout)
    if r.returncode != 0 or not os.path.exists(out):
        raise SystemExit(f"FAILED: phase {name} exited with {r.returncode}")
    res = json.load(open(out))
    log(f"phase {name} done in {time.monotonic() - t:.1f}s")
    return res


# ============================================================================================
# Phases (each in its own process)
# ============================================================================================
class Peak:
    """Peak RSS of this process over a block: resets VmHWM (clear_refs 5) then reads it back."""

    def __enter__(self):
        import psutil

        self.proc = psutil.Process()
        self.exact = True
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            self.exact = False
        self.start = self.proc.memory_info().rss
        self._samples = [self.start]
        self._stop = threading.Event()
        if not self.exact:
            threading.Thread(target=self._sample, daemon=True).start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self._samples.append(self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self.end = self.proc.memory_info().rss
        if self.exact:
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    self.peak = int(line.split()[1]) * 1024
        else:
            self.peak = max(self._samples + [self.end])
        self.growth = self.peak - self.start

    def as_dict(self):
        return {
            "rss_start": self.start,
            "rss_peak": self.peak,
            "rss_end": self.end,
            "rss_growth": self.growth,
            "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "peak_method": "VmHWM after clear_refs" if self.exact else "psutil sampling 5 ms",
        }


def odoo_env(state):
    sys.path.insert(0, os.path.join(ODOO_HOME, "src"))
    import odoo

    odoo.tools.config.parse_config(odoo_args(state), setup_logging=True)
    registry = odoo.modules.registry.Registry(state["db"])
    return odoo, registry


def sql_count():
    import odoo.sql_db

    return odoo.sql_db.sql_counter


def mailbox_model(env):
    return env["mail.sync.mailbox"]


def recorded_rows(env, mailbox_ids):
    """{mailbox id: Counter((message_id, lead id))} of what the addon recorded."""
    env.flush_all()
    env.cr.execute(
        """SELECT mail_sync_mailbox_id, message_id, res_id FROM mail_message
            WHERE mail_sync_mailbox_id = ANY(%s) AND model = 'crm.lead'""",
        [list(mailbox_ids)],
    )
    out = defaultdict(Counter)
    for mb, mid, res_id in env.cr.fetchall():
        out[mb][((mid or "").strip(), res_id)] += 1
    return out


def sync_until_done(mb, cr, max_runs=50):
    """Run the cron's unit of work (``_sync`` with per-batch commits) on one mailbox until it is
    up to date; a run cut by the time budget is followed at once by the next one.

    Returns (runs, summed report counters). A failed run (``_sync`` returns None: the mailbox
    went to Error) aborts the benchmark with the mailbox's error.
    """
    totals = Counter()
    runs = 0
    while runs < max_runs:
        runs += 1
        report = mb._sync(auto_commit=True)
        cr.commit()
        if report is None:
            raise SystemExit(f"FAILED: sync of {mb.email} failed: {mb.last_error}")
        for k in (
            "folders",
            "headers_seen",
            "matched",
            "recorded",
            "bodies_bytes",
            "headers_bytes",
            "deferred",
        ):
            totals[k] += getattr(report, k, 0) or 0
        totals["errors"] += len(report.errors or [])
        if not report.stopped_early:
            break
    return runs, dict(totals)


def phase_setup(state):
    odoo, registry = odoo_env(state)
    with registry.cursor() as cr:
        env = odoo.api.Environment(
            cr,
            odoo.SUPERUSER_ID,
            {
                "tracking_disable": True,
                "mail_create_nolog": True,
                "no_reset_password": True,
                "mail_notrack": True,
            },
        )
        Users = env["res.users"]
        sales_group = env.ref("sales_team.group_sale_salesman_all_leads")
        logins = (
            [mb["login"] for mb in state["mailboxes"]]
            + state["extra_logins"]
            + state["idle_logins"]
        )
        users = {}
        for chunk in range(0, len(logins), 200):
            vals = [
                {
                    "name": lg.split("@")[0],
                    "login": lg,
                    "email": lg,
                    "groups_id": [(6, 0, [env.ref("base.group_user").id, sales_group.id])],
                }
                for lg in logins[chunk : chunk + 200]
            ]
            for u in Users.create(vals):
                users[u.login] = u.id
            cr.commit()
        owner_ids = [users[mb["login"]] for mb in state["mailboxes"]]
        lead_vals = [
            {
                "name": f"Lead {a}",
                "email_from": a,
                "type": "opportunity",
                "user_id": owner_ids[i % len(owner_ids)],
            }
            for i, a in enumerate(state["leads"])
        ]
        leads = env["crm.lead"].create(lead_vals)
        lead_ids = {norm_addr(lead.email_from): lead.id for lead in leads}
        cr.commit()
        mb_ids = {}
        # The bench's Dovecot listens on loopback: allowed by the network rule.
        env["ir.config_parameter"].sudo().set_param(
            "crm_mail_sync.allowed_networks", state["dovecot_host"]
        )
        for lg in logins if "mail.sync.mailbox" in env else ():  # absent only in --modules dev runs
            Mailbox = mailbox_model(env)
            port = state["dovecot_port"]
            vals = _mailbox_vals(
                env, users[lg], lg, state["dovecot_host"], port, state["sync_days"]
            )
            mailbox = Mailbox.with_user(users[lg]).sudo().create(vals)
            mailbox._enable()
            mb_ids[lg] = mailbox.id
        cr.commit()
        # the baseline: Odoo's own incoming mail server on a copy of mailbox 0
        fs = env["fetchmail.server"].create(
            {
                "name": "bench baseline",
                "server_type": "imap",
                "server": state["dovecot_host"],
                "port": state["dovecot_port"],
                "is_ssl": False,
                "user": state["baseline_login"],
                "password": PASSWORD,
                "object_id": env["ir.model"]._get_id("crm.lead"),
                "state": "done",
            }
        )
        cr.commit()
    return {"users": users, "lead_ids": lead_ids, "mailbox_ids": mb_ids, "fetchmail_id": fs.id}


def _mailbox_vals(env, user_id, login, host, port, sync_days):
    Mailbox = env["mail.sync.mailbox"]
    vals = {
        "user_id": user_id,
        "email": login,
        "imap_host": host,
        "imap_port": port,
        "imap_security": "none",
        "imap_login": login,
        "password": PASSWORD,
    }
    if "sync_days" in Mailbox._fields:
        vals["sync_days"] = sync_days
    if "smtp_host" in Mailbox._fields:
        vals.update({"smtp_host": host, "smtp_port": 25})
        if "smtp_security" in Mailbox._fields:
            vals["smtp_security"] = "none"
    return {k: v for k, v in vals.items() if k in Mailbox._fields}


def phase_ceiling(state):
    """Bare imapclient + stdlib email over the backfill mailboxes: the best a Python client can
    do."""
    from imapclient import IMAPClient

    n = nbytes = defects = 0
    with Peak() as pk:
        t0 = time.perf_counter()
        for mb in state["mailboxes"]:
            c = IMAPClient(state["dovecot_host"], state["dovecot_port"], ssl=False, timeout=60)
            c.login(mb["login"], PASSWORD)
            for folder in ("INBOX", "Sent"):
                c.select_folder(folder, readonly=True)
                uids = c.search("ALL")
                for i in range(0, len(uids), state["batch"]):
                    for _uid, data in c.fetch(
                        uids[i : i + state["batch"]], ["BODY.PEEK[]"]
                    ).items():
                        raw = data[b"BODY[]"]
                        nbytes += len(raw)
                        msg = email.message_from_bytes(raw, policy=email.policy.default)
                        try:  # the corpus breaks a few messages on purpose
                            body = msg.get_body(("html", "plain"))
                            if body is not None:
                                body.get_content()
                            for att in msg.iter_attachments():
                                att.get_content()
                        except Exception:  # noqa: BLE001
                            defects += 1
                        n += 1
            c.logout()
        wall = time.perf_counter() - t0
    # The cheapest no-change poll the protocol allows: log in, EXAMINE both folders (UIDNEXT and
    # UIDVALIDITY say whether anything is new), log out.
    times = []
    t1 = time.perf_counter()
    for lg in state["idle_logins"]:
        t = time.perf_counter()
        c = IMAPClient(state["dovecot_host"], state["dovecot_port"], ssl=False, timeout=60)
        c.login(lg, PASSWORD)
        for folder in ("INBOX", "Sent"):
            c.select_folder(folder, readonly=True)
        c.logout()
        times.append(time.perf_counter() - t)
    idle_wall = time.perf_counter() - t1
    idle = {}
    if times:
        idle = {
            "idle_median_ms": statistics.median(times) * 1e3,
            "idle_p95_ms": p95(times) * 1e3,
            "idle_wall_s": idle_wall,
        }
    return {
        "messages": n,
        "bytes": nbytes,
        "defects": defects,
        "wall_s": wall,
        "msgs_per_s": n / wall,
        **idle,
        **pk.as_dict(),
    }


def p95(values):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(0.95 * len(v))) - 1))]


def phase_backfill(state):
    odoo, registry = odoo_env(state)
    ids = [state["mailbox_ids"][mb["login"]] for mb in state["mailboxes"]]
    per_mailbox = []
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        mbs = mailbox_model(env).browse(ids)
        mbs.mapped("email")  # load the records before timing, as the cron's search would
        with Peak() as pk:
            q0 = sql_count()
            t0 = time.perf_counter()
            totals = Counter()
            for mb in mbs:
                t = time.perf_counter()
                runs, tot = sync_until_done(mb, cr)
                totals.update(tot)
                per_mailbox.append(
                    {
                        "id": mb.id,
                        "runs": runs,
                        "wall_s": time.perf_counter() - t,
                        "rss_after": pk.proc.memory_info().rss,
                        **tot,
                    }
                )
            wall = time.perf_counter() - t0
            queries = sql_count() - q0
        if state.get("inject"):
            inject_fault(env, ids, state["inject"])
        rows = recorded_rows(env, ids)
        env.cr.execute("SELECT count(*) FROM mail_sync_message WHERE mailbox_id = ANY(%s)", [ids])
        recorded = env.cr.fetchone()[0]  # messages recorded (each on one or more leads/contacts)
        states = {mb.id: mb.state for mb in mbs}
    entries = sum(sum(c.values()) for c in rows.values())
    return {
        "messages": state["backfill_messages"],
        "recorded": recorded,
        "lead_entries": entries,
        "wall_s": wall,
        "msgs_per_s": state["backfill_messages"] / wall,
        "recorded_per_s": recorded / wall,
        "queries": queries,
        "queries_per_recorded": queries / recorded if recorded else None,
        "per_mailbox": per_mailbox,
        "states": states,
        "report": dict(totals),
        "rows": {str(k): [[mid, lead, n] for (mid, lead), n in v.items()] for k, v in rows.items()},
        **pk.as_dict(),
    }


def inject_fault(env, mailbox_ids, kind):
    """--inject: spoil the result on purpose, to prove that the gate catches it."""
    env.cr.execute(
        "SELECT min(id) FROM mail_message WHERE mail_sync_mailbox_id = ANY(%s) "
        "AND model = 'crm.lead'",
        [list(mailbox_ids)],
    )
    victim = env["mail.message"].browse(env.cr.fetchone()[0])
    if kind == "lose":
        victim.unlink()
    elif kind == "duplicate":
        victim.copy(
            {
                "mail_sync_mailbox_id": victim.mail_sync_mailbox_id.id,
                "message_id": victim.message_id,
            }
        )
    env.cr.commit()
    log(f"injected fault: {kind} mail.message {victim.id}")


def phase_baseline(state):
    odoo, registry = odoo_env(state)
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        fs = env["fetchmail.server"].browse(state["fetchmail_id"])
        env.cr.execute(
            "SELECT count(*) FROM mail_message WHERE model = 'crm.lead' AND message_type = 'email'"
        )
        before = env.cr.fetchone()[0]
        with Peak() as pk:
            q0 = sql_count()
            t0 = time.perf_counter()
            fs.fetch_mail()
            wall = time.perf_counter() - t0
            queries = sql_count() - q0
        env.cr.execute(
            "SELECT count(*) FROM mail_message WHERE model = 'crm.lead' AND message_type = 'email'"
        )
        made = env.cr.fetchone()[0] - before
    n = state["baseline_messages"]
    return {
        "messages": n,
        "recorded": made,
        "wall_s": wall,
        "msgs_per_s": n / wall,
        "queries": queries,
        "queries_per_message": queries / n,
        **pk.as_dict(),
    }


class CountingProxy:
    """TCP relay counting the bytes the IMAP server sends to the client (``down``) and the
    client sends (``up``). ``tests/scale``'s LatencyRelay is this relay with another ``_pump``."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.down = self.up = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.host, self.port = self.sock.getsockname()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                cli, _ = self.sock.accept()
            except OSError:
                return
            try:
                srv = socket.create_connection(self.target)
            except OSError:
                cli.close()
                continue
            threading.Thread(target=self._pump, args=(srv, cli, "down"), daemon=True).start()
            threading.Thread(target=self._pump, args=(cli, srv, "up"), daemon=True).start()

    def _pump(self, src, dst, way):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    setattr(self, way, getattr(self, way) + len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def phase_bandwidth(state):
    """A mailbox holding only mail that matches no lead, synced through a byte-counting relay."""
    odoo, registry = odoo_env(state)
    proxy = CountingProxy(state["dovecot_host"], state["dovecot_port"])
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        mb = mailbox_model(env).browse(state["mailbox_ids"][state["unmatched_login"]])
        # A changed server drops the stored password: it goes with the port.
        mb.write({"imap_port": proxy.port, "password": PASSWORD})
        cr.commit()
        _runs, tot = sync_until_done(mb, cr)
        time.sleep(0.2)
        env.cr.execute("SELECT count(*) FROM mail_message WHERE mail_sync_mailbox_id = %s", [mb.id])
        recorded = env.cr.fetchone()[0]
        mb.write({"imap_port": state["dovecot_port"], "password": PASSWORD})
        cr.commit()
    n = state["unmatched_messages"]
    engine = (tot.get("headers_bytes", 0) + tot.get("bodies_bytes", 0)) / n
    return {
        "messages": n,
        "bytes_down": proxy.down,
        "bytes_up": proxy.up,
        "bytes_per_message": proxy.down / n,
        "engine_bytes_per_message": engine,
        "raw_bytes_per_message": state["unmatched_raw_bytes"] / n,
        "recorded": recorded,
        "report": tot,
    }


def phase_big(state):
    """One big message recorded (RSS growth during the sync): the ``--big-mb`` one (a single
    attachment), then the largest the default limits record whole (``--largest-mb``: the
    message limit, in attachments under the attachment limit)."""
    odoo, registry = odoo_env(state)
    out = {}
    for key, login, size in (
        ("big", state["big_login"], state["big_bytes"]),
        ("largest", state["largest_login"], state["largest_bytes"]),
    ):
        with registry.cursor() as cr:
            env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
            mb = mailbox_model(env).browse(state["mailbox_ids"][login])
            mb.mapped("email")
            with Peak() as pk:
                t0 = time.perf_counter()
                _runs, tot = sync_until_done(mb, cr)
                wall = time.perf_counter() - t0
            env.cr.execute(
                """SELECT count(DISTINCT m.id), count(a.id), sum(a.file_size)
                                FROM mail_message m
                           LEFT JOIN message_attachment_rel r ON r.message_id = m.id
                           LEFT JOIN ir_attachment a ON a.id = r.attachment_id
                               WHERE m.mail_sync_mailbox_id = %s""",
                [mb.id],
            )
            recorded, attachments, attachment_bytes = env.cr.fetchone()
        if recorded != 1:
            raise SystemExit(
                f"FAILED: the {size} byte message was recorded {recorded} times, not once"
            )
        out[key] = {
            "message_bytes": size,
            "recorded": recorded,
            "attachments": attachments,
            "attachment_bytes": attachment_bytes or 0,
            "wall_s": wall,
            "report": tot,
            **pk.as_dict(),
        }
    return {**out["big"], "largest": out["largest"]}


def phase_idle(state):
    odoo, registry = odoo_env(state)
    ids = [state["mailbox_ids"][lg] for lg in state["idle_logins"]]
    with registry.cursor() as cr:  # first sync: not timed
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        t0 = time.perf_counter()
        for mb in mailbox_model(env).browse(ids):
            sync_until_done(mb, cr)
        first = time.perf_counter() - t0
    times = []
    with registry.cursor() as cr:  # fresh cursor and cache: the pass a cron tick would make
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        q0 = sql_count()
        t0 = time.perf_counter()
        failed = 0
        for mb in mailbox_model(env).browse(ids):
            t = time.perf_counter()
            report = mb._sync(auto_commit=True)
            cr.commit()
            times.append(time.perf_counter() - t)
            failed += report is None
        wall = time.perf_counter() - t0
        queries = sql_count() - q0
        env.cr.execute(
            "SELECT count(*) FROM mail_message WHERE mail_sync_mailbox_id = ANY(%s)", [ids]
        )
        recorded = env.cr.fetchone()[0]
    if failed:
        raise SystemExit(f"FAILED: {failed} idle mailbox sync(s) failed")
    times.sort()
    return {
        "mailboxes": len(ids),
        "first_sync_s": first,
        "wall_s": wall,
        "median_ms": statistics.median(times) * 1e3,
        "p95_ms": p95(times) * 1e3,
        "max_ms": times[-1] * 1e3,
        "queries_per_mailbox": queries / len(ids),
        "recorded": recorded,
    }


def phase_arrival(state):
    """Arrival-to-chatter latency through what production runs: a real Odoo server with one cron
    thread (the every-minute "new mail" action and the regular sync), mail APPENDed over IMAP at
    random moments, and the time until its chatter entry is committed (polled every 0.2 s)."""
    import psycopg2
    from imapclient import IMAPClient

    odoo, registry = odoo_env(state)
    mailboxes = [mb["login"] for mb in state["mailboxes"]]
    leads = state["leads"]
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        env["fetchmail.server"].search([]).write({"active": False})  # the baseline is done
        Mailbox = mailbox_model(env)
        if not hasattr(Mailbox, "_cron_fast_arrival"):
            return {"skipped": "no fast-arrival cron in this addon"}
        for _ in range(3):  # settle: every mailbox up to date before timing
            Mailbox._cron_fast_arrival(time_budget=600)
            cr.commit()
        cron = env.ref("crm_mail_sync.ir_cron_mail_sync_fast")
        cron.write({"nextcall": odoo.fields.Datetime.now()})
        cron_id = cron.id
        cr.commit()
        _db, params = odoo.sql_db.connection_info_for(state["db"])
    conn = psycopg2.connect(**params)
    conn.autocommit = True
    pg = conn.cursor()
    pg.execute("SELECT lastcall FROM ir_cron WHERE id = %s", [cron_id])
    lastcall0 = pg.fetchone()[0]
    port = free_port()
    logpath = os.path.join(os.path.dirname(state["addons_path"].split(",")[-1]), "arrival-odoo.log")
    server = subprocess.Popen(
        [
            PYTHON,
            ODOO_BIN,
            "-d",
            state["db"],
            "--addons-path",
            state["addons_path"],
            "--db-filter",
            f"^{state['db']}$",
            "--max-cron-threads",
            "1",
            "--http-port",
            str(port),
            "--http-interface",
            "127.0.0.1",
            "--log-level",
            "warn",
            "--logfile",
            logpath,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    latencies, missing = [], []
    try:
        t_start = time.monotonic()
        while time.monotonic() - t_start < 300:  # the server's first cron pass (all due jobs)
            pg.execute("SELECT lastcall FROM ir_cron WHERE id = %s", [cron_id])
            if pg.fetchone()[0] != lastcall0:
                break
            if server.poll() is not None:
                raise SystemExit(f"FAILED: the Odoo server stopped (see {logpath})")
            time.sleep(0.5)
        rnd = random.Random(state.get("seed", 6) + 99)
        n, window = state["arrivals"], state["arrival_window"]
        offsets = sorted(rnd.uniform(0, window) for _ in range(n))
        pending = {}  # Message-ID -> monotonic arrival time
        found = {}
        done_at = None
        t0 = time.monotonic()
        i = 0
        while True:
            now = time.monotonic()
            while i < n and now - t0 >= offsets[i]:
                login = mailboxes[i % len(mailboxes)]
                sender = leads[(i * 7) % len(leads)]
                mid = f"<arrival-{i}-{os.getpid()}@bench.test>"
                raw = (
                    f"From: {sender}\r\nTo: {login}\r\nSubject: Arrival {i}\r\n"
                    f"Date: {email.utils.formatdate()}\r\nMessage-ID: {mid}\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\n\r\nJust arrived.\r\n"
                ).encode()
                c = IMAPClient(state["dovecot_host"], state["dovecot_port"], ssl=False, timeout=30)
                c.login(login, PASSWORD)
                c.append("INBOX", raw)
                pending[mid] = time.monotonic()
                c.logout()
                i += 1
            if pending:
                pg.execute(
                    "SELECT DISTINCT message_id FROM mail_message WHERE message_id = ANY(%s) "
                    "AND mail_sync_mailbox_id IS NOT NULL",
                    [list(pending)],
                )
                seen = time.monotonic()
                for (mid,) in pg.fetchall():
                    found[mid] = seen - pending.pop(mid)
            if i >= n and not pending:
                break
            if i >= n and done_at is None:
                done_at = time.monotonic()
            if done_at is not None and time.monotonic() - done_at > 240:
                missing = sorted(pending)
                break
            if server.poll() is not None:
                raise SystemExit(f"FAILED: the Odoo server stopped (see {logpath})")
            time.sleep(0.2)
        latencies = sorted(found.values())
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        conn.close()
    if not latencies:
        raise SystemExit("FAILED: no arrival reached the chatter")
    return {
        "arrivals": state["arrivals"],
        "window_s": state["arrival_window"],
        "recorded": len(latencies),
        "missing": missing,
        "median_s": statistics.median(latencies),
        "p95_s": p95(latencies),
        "max_s": latencies[-1],
        "min_s": latencies[0],
        "latencies_s": latencies,
    }


PHASES = {
    "setup": phase_setup,
    "ceiling": phase_ceiling,
    "backfill": phase_backfill,
    "baseline": phase_baseline,
    "bandwidth": phase_bandwidth,
    "big": phase_big,
    "idle": phase_idle,
    "arrival": phase_arrival,
}


# ============================================================================================
# Report
# ============================================================================================
def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def verdict(ok):
    return "-" if ok is None else ("pass" if ok else "MISS")


def build_table(r, args):
    bf, bl, ce = r.get("backfill"), r.get("baseline"), r.get("ceiling")
    idle, bw, big = r.get("idle"), r.get("bandwidth"), r.get("big")
    g = lambda d, k: d[k] if d else None  # noqa: E731
    mb = lambda d, k: d[k] / 2**20 if d else None  # noqa: E731
    rows = []
    vb = bf["msgs_per_s"] / bl["msgs_per_s"] if bf and bl else None
    vc = bf["msgs_per_s"] / ce["msgs_per_s"] if bf and ce else None
    rows.append(
        (
            "backfill msgs/s (all mail synced)",
            g(bf, "msgs_per_s"),
            g(bl, "msgs_per_s"),
            g(ce, "msgs_per_s"),
            "",
            "",
            None,
        )
    )
    rows.append(
        (
            "  ratio addon / baseline",
            None,
            None,
            None,
            vb and f"{vb:.1f}x",
            f">= {TARGETS['backfill_vs_baseline']:.0f}x",
            vb and vb >= TARGETS["backfill_vs_baseline"],
        )
    )
    rows.append(
        (
            "  ratio addon / ceiling",
            None,
            None,
            None,
            vc and f"{vc * 100:.0f}%",
            f">= {TARGETS['backfill_vs_ceiling'] * 100:.0f}%",
            vc and vc >= TARGETS["backfill_vs_ceiling"],
        )
    )
    rows.append(
        (
            "recorded msgs/s",
            g(bf, "recorded_per_s"),
            bl and bl["recorded"] / bl["wall_s"],
            None,
            "",
            "",
            None,
        )
    )
    q = g(bf, "queries_per_recorded")
    rows.append(
        (
            "SQL queries / recorded msg",
            q,
            g(bl, "queries_per_message"),
            None,
            "",
            f"<= {TARGETS['queries_per_recorded']:.0f}",
            None if q is None else q <= TARGETS["queries_per_recorded"],
        )
    )
    if idle:
        rows.append(
            (
                f"idle poll median ms ({idle['mailboxes']} mb)",
                idle["median_ms"],
                None,
                g(ce, "idle_median_ms"),
                "",
                f"< {TARGETS['idle_median_ms']:.0f}",
                idle["median_ms"] < TARGETS["idle_median_ms"],
            )
        )
        rows.append(("idle poll p95 ms", idle["p95_ms"], None, g(ce, "idle_p95_ms"), "", "", None))
        limit = TARGETS["idle_pass_s_per_1000"] * idle["mailboxes"] / 1000
        rows.append(
            (
                f"idle pass wall s ({idle['mailboxes']} mb)",
                idle["wall_s"],
                None,
                g(ce, "idle_wall_s"),
                "",
                f"< {limit:g}",
                idle["wall_s"] < limit,
            )
        )
        rows.append(
            (
                "idle poll SQL queries / mailbox",
                idle["queries_per_mailbox"],
                None,
                None,
                "",
                "",
                None,
            )
        )
    if bw:
        rows.append(
            (
                "bytes down / unmatched msg",
                bw["bytes_per_message"],
                None,
                bw["raw_bytes_per_message"],
                "",
                f"< {TARGETS['unmatched_bytes']}",
                bw["bytes_per_message"] < TARGETS["unmatched_bytes"],
            )
        )
    arr = r.get("arrival")
    if arr and "median_s" in arr:
        rows.append(
            (
                f"arrival-to-chatter median s ({arr['recorded']}/{arr['arrivals']})",
                arr["median_s"],
                None,
                None,
                "",
                f"< {TARGETS['arrival_median_s']:.0f}",
                arr["median_s"] < TARGETS["arrival_median_s"] and not arr["missing"],
            )
        )
        rows.append(("arrival-to-chatter p95 s", arr["p95_s"], None, None, "", "", None))
        rows.append(("arrival-to-chatter max s", arr["max_s"], None, None, "", "", None))
    lim = TARGETS["rss_growth_x_largest"] * r["largest_message"]
    rows.append(
        (
            "backfill RSS growth MB",
            mb(bf, "rss_growth"),
            mb(bl, "rss_growth"),
            mb(ce, "rss_growth"),
            "",
            f"< {lim / 2**20:.1f}",
            bf and bf["rss_growth"] < lim,
        )
    )
    rows.append(
        (
            "backfill peak RSS MB",
            mb(bf, "rss_peak"),
            mb(bl, "rss_peak"),
            mb(ce, "rss_peak"),
            "",
            "",
            None,
        )
    )
    if bf and len(bf["per_mailbox"]) > 1:
        after = [p["rss_after"] for p in bf["per_mailbox"]]
        rows.append(
            (
                "RSS growth after 1st mailbox MB",
                (max(after[1:]) - after[0]) / 2**20,
                None,
                None,
                "",
                "",
                None,
            )
        )
    if big:
        lim = TARGETS["rss_growth_x_largest"] * big["message_bytes"]
        rows.append(
            (
                f"RSS growth MB, one {big['message_bytes'] / 2**20:.0f} MB msg",
                big["rss_growth"] / 2**20,
                None,
                None,
                f"{big['rss_growth'] / big['message_bytes']:.2f}x the message",
                f"< {lim / 2**20:.0f}",
                big["rss_growth"] < lim,
            )
        )
        largest = big.get("largest")
        if largest:
            lim = TARGETS["rss_growth_x_allowed"] * largest["message_bytes"]
            rows.append(
                (
                    "RSS growth MB, largest allowed msg "
                    f"({largest['message_bytes'] / 2**20:.0f} MB, "
                    f"{largest['attachments']} attachments)",
                    largest["rss_growth"] / 2**20,
                    None,
                    None,
                    f"{largest['rss_growth'] / largest['message_bytes']:.2f}x the message",
                    f"< {lim / 2**20:.0f}",
                    largest["rss_growth"] < lim,
                )
            )
    return rows


def print_table(rows, out=sys.stdout):
    head = ("metric", "addon", "baseline", "ceiling", "ratio", "target", "result")
    cells = [head] + [
        (m, fmt(a), fmt(b), fmt(c), r or "", t, verdict(ok)) for m, a, b, c, r, t, ok in rows
    ]
    w = [max(len(str(row[i])) for row in cells) for i in range(len(head))]
    for j, row in enumerate(cells):
        print(
            "  ".join(
                str(v).ljust(w[i]) if i == 0 else str(v).rjust(w[i]) for i, v in enumerate(row)
            ),
            file=out,
        )
        if j == 0:
            print("  ".join("-" * x for x in w), file=out)


# ============================================================================================
# Main
# ============================================================================================
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="2 mailboxes x 150 messages, 20 idle mailboxes"
    )
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--mailboxes", type=int)
    p.add_argument("--messages", type=int, help="messages per mailbox")
    p.add_argument("--idle", type=int, help="idle mailboxes (default 1,000; --quick 20)")
    p.add_argument("--baseline-messages", type=int, default=1000, help="cap of the fetchmail copy")
    p.add_argument("--correspondents", type=int, default=40, help="correspondents per mailbox")
    p.add_argument("--lead-share", type=float, default=0.30)
    p.add_argument("--big-mb", type=float, default=25.0)
    p.add_argument(
        "--largest-mb",
        type=float,
        default=50.0,
        help="the largest message the default limits record whole (the message "
        "limit), in attachments under the 25 MB attachment limit",
    )
    p.add_argument("--batch", type=int, default=200, help="ceiling fetch batch")
    p.add_argument(
        "--skip",
        default="",
        help="comma list of phases to skip: baseline,ceiling,idle,bandwidth,big,arrival",
    )
    p.add_argument(
        "--arrivals", type=int, default=20, help="arrival-latency messages (phase arrival)"
    )
    p.add_argument(
        "--arrival-window",
        type=float,
        default=150.0,
        help="seconds over which the arrivals are spread at random (phase arrival)",
    )
    p.add_argument("--json", default=os.path.join(HERE, "out", "latest.json"))
    p.add_argument(
        "--db", help="database name (default bench_<seed>_<pid>); it is dropped and re-created"
    )
    p.add_argument("--keep", action="store_true", help="keep the database and the Dovecot work dir")
    p.add_argument(
        "--modules", default=ADDON_NAME, help=argparse.SUPPRESS
    )  # dev: e.g. crm + --skip backfill
    p.add_argument(
        "--inject", choices=("lose", "duplicate"), help=argparse.SUPPRESS
    )  # gate self-test
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--state", help=argparse.SUPPRESS)
    p.add_argument("--phase-out", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.mailboxes = a.mailboxes or (2 if a.quick else 10)
    a.messages = a.messages or (150 if a.quick else 2000)
    a.idle = a.idle if a.idle is not None else (20 if a.quick else 1000)
    a.skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    return a


def main(argv=None):
    args = parse_args(argv)
    if args.phase:
        state = json.load(open(args.state))
        res = PHASES[args.phase](state)
        with open(args.phase_out, "w") as f:
            json.dump(res, f)
        return 0

    sys.path.insert(0, ADDON)
    signal.signal(
        signal.SIGTERM, lambda *_: sys.exit(143)
    )  # still stop Dovecot and drop the database
    started = time.time()
    machine = machine_info()
    log(
        f"machine: {machine['nproc']} cpu ({machine['cpu']}), {machine['ram_gb']} GB RAM, "
        f"load {machine['loadavg_at_start'][0]:.2f}"
    )
    tmp = tempfile.mkdtemp(prefix="mailsync-bench-")
    os.chmod(tmp, 0o755)  # Dovecot's mail user must reach the Maildirs inside
    db = args.db or f"bench_{args.seed}_{os.getpid()}"
    dove = None
    try:
        # -- corpus ---------------------------------------------------------------------------
        t = time.monotonic()
        pool, leads, mailboxes = build_corpus(args)
        lead_set = set(leads)
        log(
            f"corpus: {len(mailboxes)} x {args.messages} messages, {len(pool)} correspondents, "
            f"{len(leads)} leads ({time.monotonic() - t:.1f}s)"
        )

        # -- Dovecot ----------------------------------------------------------------------------
        from imapserver import BenchDovecot

        t = time.monotonic()
        dove = BenchDovecot(workdir=os.path.join(tmp, "dovecot"))
        backfill_n = 0
        largest = 0
        for mb in mailboxes:
            dove.add_user(mb["login"], PASSWORD)
            for m in mb["messages"]:
                dove.put(
                    mb["login"],
                    m.folder,
                    m.raw,
                    when=m.date.timestamp(),
                    flags="S" if m.folder != "INBOX" or zlib.crc32(m.raw[:400]) % 3 else "",
                )
                backfill_n += 1
                largest = max(largest, len(m.raw))
        # baseline: Odoo's fetchmail reads UNSEEN mail of INBOX only and flags it \Seen, so it
        # gets its own copy of mailbox 0 (INBOX and Sent together, all unseen).
        base_login = f"baseline@{DOMAIN}"
        dove.add_user(base_login, PASSWORD)
        base_msgs = mailboxes[0]["messages"][: args.baseline_messages]
        for m in base_msgs:
            dove.put(base_login, "INBOX", m.raw, when=m.date.timestamp())
        # bandwidth: only the mail of mailbox 0 that matches no lead
        unm_login = f"unmatched@{DOMAIN}"
        dove.add_user(unm_login, PASSWORD)
        unm = [m for m in mailboxes[0]["messages"] if not (header_addrs(m.raw)[1] & lead_set)]
        for m in unm:
            dove.put(unm_login, m.folder, m.raw, flags="S", when=m.date.timestamp())
        # memory: one big message from a lead
        big_login = f"big@{DOMAIN}"
        dove.add_user(big_login, PASSWORD)
        big_raw = big_message(leads[0], big_login, int(args.big_mb * 2**20))
        dove.put(big_login, "INBOX", big_raw)
        largest_login = f"largest@{DOMAIN}"
        dove.add_user(largest_login, PASSWORD)
        largest_raw = big_message(
            leads[0],
            largest_login,
            int(args.largest_mb * 2**20) - 4096,
            parts=max(2, math.ceil(args.largest_mb / 24)),
            tag="largest",
        )
        dove.put(largest_login, "INBOX", largest_raw)
        # idle poll: many mailboxes with a few messages each
        from mailsync.testing import corpus as corpus_mod

        idle_logins = [f"idle{i:04d}@{DOMAIN}" for i in range(args.idle)]
        rnd = random.Random(args.seed + 1)
        for i, lg in enumerate(idle_logins):
            dove.add_user(lg, PASSWORD)
            for m in corpus_mod.generate(args.seed * 100000 + i, lg, rnd.sample(pool, 3), 3):
                dove.put(lg, m.folder, m.raw, flags="S", when=m.date.timestamp())
        dove.start()
        log(
            f"dovecot on {dove.host}:{dove.port}, {len(dove.users)} users loaded "
            f"({time.monotonic() - t:.1f}s)"
        )

        # -- Odoo database --------------------------------------------------------------------
        t = time.monotonic()
        ap = addons_path(tmp)
        create_db(db, ap, args.modules)
        log(f"database {db} created ({time.monotonic() - t:.1f}s)")
        oldest = min(
            (m.date for mb in mailboxes for m in mb["messages"] if getattr(m, "date", None)),
            default=None,
        )
        sync_days = 3650
        if oldest is not None:
            now = (
                dt.datetime.now(oldest.tzinfo or dt.timezone.utc)
                if oldest.tzinfo
                else dt.datetime.now()
            )
            sync_days = max(sync_days, (now - oldest).days + 30)
        state = {
            "db": db,
            "addons_path": ap,
            "dovecot_host": dove.host,
            "dovecot_port": dove.port,
            "mailboxes": [{"login": mb["login"]} for mb in mailboxes],
            "leads": leads,
            "extra_logins": [unm_login, big_login, largest_login],
            "idle_logins": idle_logins,
            "largest_login": largest_login,
            "largest_bytes": len(largest_raw),
            "baseline_login": base_login,
            "unmatched_login": unm_login,
            "big_login": big_login,
            "sync_days": sync_days,
            "inject": args.inject,
            "batch": args.batch,
            "backfill_messages": backfill_n,
            "baseline_messages": len(base_msgs),
            "unmatched_messages": len(unm),
            "unmatched_raw_bytes": sum(len(m.raw) for m in unm),
            "big_bytes": len(big_raw),
            "arrivals": args.arrivals,
            "arrival_window": args.arrival_window,
            "seed": args.seed,
        }
        state_path = os.path.join(tmp, "state.json")

        def save():
            with open(state_path, "w") as f:
                json.dump(state, f)

        save()
        t = time.monotonic()
        state.update(run_phase("setup", state_path))
        save()

        results = {"largest_message": largest}
        # baseline last: Odoo's gateway creates a lead per new sender, which would change what
        # the other phases match.
        # arrival after everything: it runs a real Odoo server with its cron thread.
        for name in ("ceiling", "backfill", "bandwidth", "big", "idle", "baseline", "arrival"):
            if name in args.skip:
                continue
            log(f"phase {name} ...")
            results[name] = run_phase(name, state_path)

        # -- correctness gate ------------------------------------------------------------------
        lead_ids = dict(state["lead_ids"])
        bf = results.get("backfill")
        gate = {"ok": bf is not None, "mailboxes": [], "ran": bf is not None}
        for mb in mailboxes if bf else ():
            mb_id = state["mailbox_ids"][mb["login"]]
            exp = expected_pairs(mb["messages"], mb["email"], lead_ids)
            got = Counter({(mid, lead): n for mid, lead, n in bf["rows"].get(str(mb_id), [])})
            lost = exp - set(got)
            dup = {k: n for k, n in got.items() if n > 1}
            unexpected = set(got) - exp
            ok = not (lost or dup or unexpected)
            gate["ok"] &= ok
            gate["mailboxes"].append(
                {
                    "login": mb["login"],
                    "expected": len(exp),
                    "recorded": sum(got.values()),
                    "lost": len(lost),
                    "duplicated": len(dup),
                    "unexpected": len(unexpected),
                    "examples": {
                        "lost": sorted(map(list, lost))[:5],
                        "duplicated": sorted(map(list, dup))[:5],
                        "unexpected": sorted(map(list, unexpected))[:5],
                    },
                }
            )
        results["gate"] = gate
        if bf:
            del bf["rows"]

        # -- report ----------------------------------------------------------------------------
        rows = build_table(results, args)
        print()
        print(
            f"crm_mail_sync benchmark  {'--quick ' if args.quick else ''}seed={args.seed}  "
            f"{args.mailboxes} mailboxes x {args.messages} msgs ({backfill_n} in all, "
            f"{bf['recorded'] if bf else '-'} recorded), idle {args.idle}"
        )
        print(
            f"machine: {machine['nproc']} cpu, {machine['cpu']}, {machine['ram_gb']} GB RAM, "
            f"{machine['dovecot'].split()[0] and 'Dovecot ' + machine['dovecot'].split()[0]}, "
            f"Python {machine['python']}, commit {machine['commit']}"
        )
        print()
        print_table(rows)
        print()
        for g in gate["mailboxes"]:
            print(
                f"gate {g['login']}: expected {g['expected']}, recorded {g['recorded']}, "
                f"lost {g['lost']}, "
                f"duplicated {g['duplicated']}, unexpected {g['unexpected']}"
            )
            for kind, ex in g["examples"].items():
                for mid, lead in ex:
                    print(
                        f"    {kind.upper()}: Message-ID {mid} on crm.lead {lead}", file=sys.stderr
                    )
        report = {
            "args": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()},
            "machine": machine,
            "started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
            "duration_s": time.time() - started,
            "results": results,
            "table": [
                dict(zip(("metric", "addon", "baseline", "ceiling", "ratio", "target", "pass"), r))
                for r in rows
            ],
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=str)
        print(f"\nJSON: {args.json}   ({time.time() - started:.0f}s in all)")
        if not gate["ran"]:
            print("\nCORRECTNESS GATE NOT RUN (backfill skipped)", file=sys.stderr)
            return 3
        if not gate["ok"]:
            print(
                "\nBENCHMARK FAILED: a mailbox lost, duplicated or mis-recorded messages "
                "(see gate lines above)",
                file=sys.stderr,
            )
            return 2
        return 0
    finally:
        if dove:
            dove.stop(remove=not args.keep)
        if not args.keep:
            subprocess.run(["dropdb", "--if-exists", db], capture_output=True)
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept: database {db}, work dir {tmp}")


if __name__ == "__main__":
    sys.exit(main())
