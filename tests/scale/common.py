# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Shared by the crash and scale-out tests: a private Dovecot loaded through Maildir files, a
throw-away database, Odoo in this process (``Registry``), forked children that sync with real
commits, and the expected (Message-ID, lead) set computed from the corpus alone.

The Maildir loader (``BenchDovecot``), the database creation and the corpus-side expectations are
the benchmark's (``bench/imapserver.py``, ``bench/run.py``): imported, not copied.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ADDON = os.path.dirname(os.path.dirname(HERE))
BENCH = os.path.join(ADDON, "bench")
ODOO_HOME = os.environ.get("ODOO_HOME", "/opt/odoo")
DOMAIN = "scale.test"
PASSWORD = "scale-pw"

for path in (ADDON, BENCH, os.path.join(ODOO_HOME, "src")):
    if path not in sys.path:
        sys.path.insert(0, path)


def _load_bench():
    spec = importlib.util.spec_from_file_location(
        "crm_mail_sync_bench_run", os.path.join(BENCH, "run.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()
from imapserver import BenchDovecot  # noqa: E402, F401  (bench/imapserver.py, for the parts)

log = bench.log
norm_addr = bench.norm_addr
expected_pairs = bench.expected_pairs  # {(Message-ID, lead id)} from the corpus alone


# ---------------------------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------------------------
def drop_db(db):
    subprocess.run(["dropdb", "--if-exists", "--force", db], capture_output=True)


def clone_db(template, db):
    """A copy of ``template`` (``createdb -T``: seconds, instead of a minute-long install)."""
    drop_db(db)
    deadline = time.monotonic() + 30
    while True:
        r = subprocess.run(["createdb", "-T", template, db], capture_output=True, text=True)
        if r.returncode == 0:
            return
        if "being accessed by other users" not in r.stderr or time.monotonic() > deadline:
            raise SystemExit(f"FAILED: createdb -T {template} {db}: {r.stderr.strip()}")
        time.sleep(0.5)


def install_template(db, tmp):
    """Install crm_mail_sync (no demo data) into a new database ``db``; returns the addons path."""
    ap = bench.addons_path(tmp)
    t = time.monotonic()
    bench.create_db(db, ap)
    log(f"database {db}: crm_mail_sync installed ({time.monotonic() - t:.0f}s)")
    return ap


class Odoo:
    """Odoo loaded in this process on ``db``; ``fork()`` runs a function in a child process that
    opens its own database connections (the parent closes its own before forking)."""

    def __init__(self, db, addons_path):
        import odoo

        self.odoo = odoo
        self.db = db
        if not getattr(Odoo, "_configured", False):
            odoo.tools.config.parse_config(
                [
                    "-d",
                    db,
                    "--addons-path",
                    addons_path,
                    "--log-level",
                    "warn",
                    "--without-demo",
                    "all",
                    "--max-cron-threads",
                    "0",
                ],
                setup_logging=True,
            )
            Odoo._configured = True
        odoo.tools.config["db_name"] = db
        self.registry = odoo.modules.registry.Registry(db)

    def env(self, cr, context=None):
        return self.odoo.api.Environment(cr, self.odoo.SUPERUSER_ID, context or {})

    def run(self, fn, *args):
        """``fn(env, *args)`` in a fresh cursor of this process, committed."""
        with self.registry.cursor() as cr:
            result = fn(self.env(cr), *args)
            cr.commit()
        return result

    def close_connections(self):
        self.odoo.sql_db.close_all()

    def fork(self, fn, *args, env_vars=None, result_path=None):
        """Run ``fn(env, *args)`` in a child process; returns its pid. The child commits as the
        cron does (``fn`` decides), writes ``fn``'s JSON result to ``result_path`` and exits."""
        self.close_connections()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            return pid
        code = 0
        try:
            for key, value in (env_vars or {}).items():
                os.environ[key] = value
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            with self.registry.cursor() as cr:
                result = fn(self.env(cr), *args)
                cr.commit()
            if result_path:
                with open(result_path, "w") as fh:
                    json.dump(result, fh)
        except BaseException:  # noqa: BLE001 - report and leave with an error code
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)


def wait_child(pid, timeout):
    """(returncode, seconds) of a forked child: -9 when SIGKILLed; kills it after ``timeout``."""
    t0 = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - t0
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def make_corpus(seed, login, pool, n):
    """Messages of one mailbox (``mailsync.testing.corpus``: both folders, replies, attachments,
    several charsets, ~3 % malformed)."""
    from mailsync.testing import corpus

    rnd = random.Random(seed)
    return corpus.generate(seed, login, rnd.sample(pool, min(len(pool), 12)), n)


def correspondent_pool(seed, size):
    rnd = random.Random(seed)
    firsts = ["ann", "bob", "carla", "dmitri", "eve", "farid", "gita", "hugo", "ines", "jon"]
    orgs = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell"]
    return [f"{rnd.choice(firsts)}.{i}@{rnd.choice(orgs)}.example" for i in range(size)]


def load_dovecot(dove, mailboxes):
    """Write every message of ``mailboxes`` ({login: [CorpusMessage]}) as Maildir files."""
    for login, messages in mailboxes.items():
        dove.add_user(login, PASSWORD)
        for index, message in enumerate(messages):
            dove.put(
                login,
                message.folder,
                message.raw,
                when=message.date.timestamp(),
                flags="S" if index % 3 else "",
            )


def setup_records(env, logins, leads, host, port, params):
    """Internal users (salespeople) with an enabled mailbox each, one lead per lead address,
    parameters; returns ({login: mailbox id}, {address: lead id})."""
    ctx = {
        "tracking_disable": True,
        "mail_create_nolog": True,
        "no_reset_password": True,
        "mail_notrack": True,
    }
    env = env(context=dict(env.context, **ctx))
    groups = [env.ref("base.group_user").id, env.ref("sales_team.group_sale_salesman_all_leads").id]
    users = {}
    for chunk in range(0, len(logins), 100):
        for user in env["res.users"].create(
            [
                {
                    "name": login.split("@")[0],
                    "login": login,
                    "email": login,
                    "groups_id": [(6, 0, groups)],
                }
                for login in logins[chunk : chunk + 100]
            ]
        ):
            users[user.login] = user
    owners = list(users.values())
    lead_ids = {}
    records = env["crm.lead"].create(
        [
            {
                "name": f"Lead {address}",
                "email_from": address,
                "type": "opportunity",
                "user_id": owners[i % len(owners)].id,
            }
            for i, address in enumerate(leads)
        ]
    )
    for lead in records:
        lead_ids[norm_addr(lead.email_from)] = lead.id
    Mailbox = env["mail.sync.mailbox"]
    mailbox_ids = {}
    for login in logins:
        mailbox = (
            Mailbox.with_user(users[login])
            .sudo()
            .create(
                {
                    "user_id": users[login].id,
                    "email": login,
                    "imap_host": host,
                    "imap_port": port,
                    "imap_security": "none",
                    "imap_login": login,
                    "password": PASSWORD,
                    "smtp_host": False,
                    "sync_days": 0,
                }
            )
        )
        mailbox._enable()
        mailbox_ids[login] = mailbox.id
    Param = env["ir.config_parameter"].sudo()
    Param.set_param("crm_mail_sync.allowed_networks", host)  # the test Dovecot's address
    for key, value in params.items():
        Param.set_param(f"crm_mail_sync.{key}", str(value))
    return mailbox_ids, lead_ids


def recorded_state(env, mailbox_ids):
    """What the database holds for ``mailbox_ids``: chatter entries per (Message-ID, lead),
    registry Message-IDs, folder cursors."""
    env.cr.execute(
        """
        SELECT mail_sync_mailbox_id, message_id, res_id, count(*) FROM mail_message
         WHERE mail_sync_mailbox_id = ANY(%s) AND model = 'crm.lead'
      GROUP BY 1, 2, 3""",
        [list(mailbox_ids)],
    )
    entries = {mid: Counter() for mid in mailbox_ids}
    for mailbox_id, message_id, res_id, count in env.cr.fetchall():
        entries[mailbox_id][((message_id or "").strip(), res_id)] += count
    env.cr.execute(
        "SELECT mailbox_id, message_id FROM mail_sync_message WHERE mailbox_id = ANY(%s)",
        [list(mailbox_ids)],
    )
    registry = {mid: Counter() for mid in mailbox_ids}
    for mailbox_id, message_id in env.cr.fetchall():
        registry[mailbox_id][message_id] += 1
    env.cr.execute(
        """SELECT mailbox_id, name, uidvalidity, last_uid FROM mail_sync_folder
                       WHERE mailbox_id = ANY(%s)""",
        [list(mailbox_ids)],
    )
    folders = {mid: {} for mid in mailbox_ids}
    for mailbox_id, name, uidvalidity, last_uid in env.cr.fetchall():
        folders[mailbox_id][name] = (uidvalidity, last_uid)
    return entries, registry, folders


def gate(expected, entries, registry):
    """Compare one mailbox: returns a dict of lost / duplicated / unexpected counts (+ examples)."""
    got = entries
    lost = expected - set(got)
    duplicated = {k: n for k, n in got.items() if n > 1}
    unexpected = set(got) - expected
    expected_mids = {mid for mid, _lead in expected}
    registry_dup = {k: n for k, n in registry.items() if n > 1}
    registry_lost = expected_mids - set(registry)
    return {
        "expected": len(expected),
        "recorded": sum(got.values()),
        "lost": len(lost),
        "duplicated": sum(n - 1 for n in duplicated.values()),
        "unexpected": len(unexpected),
        "registry_lost": len(registry_lost),
        "registry_duplicated": len(registry_dup),
        "examples": sorted(map(str, list(lost)[:3] + list(duplicated)[:3] + list(unexpected)[:3])),
    }


def imap_tops(dove, login):
    """{folder: (UIDVALIDITY, UIDNEXT - 1)} as Dovecot sees them (for the cursor check)."""
    client = dove.client(login)
    try:
        tops = {}
        for folder in ("INBOX", "Sent"):
            status = client.folder_status(folder, [b"UIDVALIDITY", b"UIDNEXT"])
            tops[folder] = (status[b"UIDVALIDITY"], status[b"UIDNEXT"] - 1)
        return tops
    finally:
        client.logout()
