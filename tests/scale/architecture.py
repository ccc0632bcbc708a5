# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The acceptance of "one file per model": the addon must not depend on the order in which
``models/__init__.py`` imports its files, and a database of the last release before the
restructuring must upgrade in place.

- ``shuffle``: a copy of the working tree (``git ls-files``, tracked and untracked files as they
  are on disk) whose ``from . import X`` lines of ``models/__init__.py`` are shuffled (seeded;
  the seed is printed, ``run.py --seed`` replays it), installed into a fresh database by
  ``odoo-bin -i crm_mail_sync --test-tags … --stop-after-init``; the chosen Odoo test classes
  (``SHUFFLE_TAGS``) must all run and pass, with no ERROR line and no loading warning
  (``tools/odoo_log_check.py``, the verdict of the Odoo layer).
- ``upgrade``: commit ``UPGRADE_FROM`` (the last commit before the restructuring) checked out
  with ``git worktree add`` into a temp directory, installed into a database; two salespeople
  connect their mailboxes on this layer's own Dovecot (each with its own password, stored as
  a secret; the owner's Test connection and Sync now buttons) and sync them; then
  ``odoo-bin -u crm_mail_sync --stop-after-init`` with a copy of the current working tree on
  the same database and the same ``--data-dir`` (the key file of the secrets lives there).
  Afterwards every mailbox, secret (same ciphertext, and it decrypts to the same password with
  the new code), folder cursor, registry row (``mail.sync.message``), chatter entry
  (``mail.message``) and their links are still there, unchanged; one new email delivered over
  IMAP is recorded exactly once by the next Sync now, nothing else is recorded, nothing twice,
  and the (Message-ID, lead) pairs are exactly those expected from the mail alone.

Everything runs in ``odoo-bin`` subprocesses (two versions of the addon cannot share one
Python process); the database state is read with SQL from this process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types

from common import (
    ADDON,
    DOMAIN,
    ODOO_HOME,
    BenchDovecot,
    correspondent_pool,
    drop_db,
    expected_pairs,
    gate,
    imap_tops,
    log,
    make_corpus,
    norm_addr,
)
from imapserver import free_port  # bench/imapserver.py, on the path through common

ODOO_BIN = os.path.join(ODOO_HOME, "src", "odoo-bin")
ADDON_NAME = "crm_mail_sync"
UPGRADE_FROM = "bc905fc"  # the last commit before the restructuring (one file per model)
KEY_FILE_NAME = "crm_mail_sync.key"  # in Odoo's data directory (models/mail_sync_credential.py)
# Fast Odoo test classes through the methods that were spread over several files before the
# restructuring (the sync, the cron, health, privacy, access rules, secrets, the matcher): about
# 60 s of tests.
SHUFFLE_TAGS = (
    "TestInstall",
    "TestSyncCorpus",
    "TestSyncChanges",
    "TestCron",
    "TestHealth",
    "TestPrivacy",
    "TestSyncedMailAccess",
    "TestSecrets",
    "TestMatcher",
    "TestLateLink",
    "TestFilters",
)
IMPORT_LINE = re.compile(r"^from \. import \w+\s*$")
RESULT_MARK = "SCALE-RESULT "


# ---------------------------------------------------------------------------------------------
# Shared
# ---------------------------------------------------------------------------------------------
def copy_working_tree(dest):
    """Copy the addon as it is on disk (tracked files that still exist, and untracked files
    that are not ignored: a new file not yet added is part of the working tree) to ``dest``."""
    out = subprocess.run(
        ["git", "-C", ADDON, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    count = 0
    for rel in sorted(set(filter(None, out.decode().split("\0")))):
        src = os.path.join(ADDON, rel)
        if not os.path.isfile(src):
            continue  # deleted in the working tree
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(src, target)
        count += 1
    return count


def addons_path(holder):
    """Odoo's own addons and ``holder`` (the directory holding a ``crm_mail_sync``)."""
    paths = [
        os.path.join(ODOO_HOME, "src", "odoo", "addons"),
        os.path.join(ODOO_HOME, "src", "addons"),
        holder,
    ]
    return ",".join(p for p in paths if os.path.isdir(p))


def odoo_cmd(db, ap, data_dir, *extra, command=None):
    """``odoo-bin [command] -d db …`` on ``ap`` with ``data_dir`` (the key file's home), no cron
    thread, a free loopback HTTP port; ``extra`` appended."""
    return [
        sys.executable,
        ODOO_BIN,
        *([command] if command else []),
        "-d",
        db,
        "--addons-path",
        ap,
        "--data-dir",
        data_dir,
        "--max-cron-threads",
        "0",
        "--workers",
        "0",
        "--http-interface",
        "127.0.0.1",
        "--http-port",
        str(free_port()),
        *extra,
    ]


def odoo_env():
    """The environment of the odoo-bin subprocesses: the secrets' keys come from the key file of
    the data directory, not from the caller's environment."""
    env = dict(os.environ)
    env.pop("CRM_MAIL_SYNC_KEYS", None)
    env.pop("CRM_MAIL_SYNC_CRASH_AT", None)
    return env


def run_odoo(cmd, log_path, timeout=900):
    with open(log_path, "ab") as out:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=odoo_env(),
            timeout=timeout,
        )
    return proc.returncode


def error_lines(log_path):
    text = open(log_path, errors="replace").read() if os.path.exists(log_path) else ""
    return [
        line
        for line in text.splitlines()
        if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")
    ]


def keep_log(log_path, name):
    """Copy a log of a failed part to ``.run/`` of the repository (ignored by git)."""
    run_dir = os.path.join(ADDON, ".run")
    os.makedirs(run_dir, exist_ok=True)
    target = os.path.join(run_dir, name)
    shutil.copy(log_path, target)
    return os.path.relpath(target, ADDON)


def _load_log_check():
    spec = importlib.util.spec_from_file_location(
        "crm_mail_sync_odoo_log_check", os.path.join(ADDON, "tools", "odoo_log_check.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# Shuffle
# ---------------------------------------------------------------------------------------------
def shuffle_imports(init_path, seed):
    """Shuffle the ``from . import X`` lines of ``init_path`` among their own places (other
    lines stay); a different order than the original one when there is more than one line.
    Returns (original order, new order)."""
    lines = open(init_path).read().splitlines(keepends=True)
    places = [i for i, line in enumerate(lines) if IMPORT_LINE.match(line)]
    original = [lines[i] for i in places]
    order = list(original)
    rnd = random.Random(seed)
    for _attempt in range(100):
        rnd.shuffle(order)
        if order != original or len(set(original)) < 2:
            break
    for i, line in zip(places, order):
        lines[i] = line if line.endswith("\n") else line + "\n"
    with open(init_path, "w") as fh:
        fh.writelines(lines)
    name = lambda line: line.split()[-1]  # noqa: E731
    return [name(line) for line in original], [name(line) for line in order]


def run_shuffle(seed=None, tags=SHUFFLE_TAGS):
    """Returns a result dict: seed, order, test counts, problems (empty: passed)."""
    if seed is None:
        seed = random.SystemRandom().randrange(1, 10**6)
    tmp = tempfile.mkdtemp(prefix="crm_mail_sync-shuffle-")
    os.chmod(tmp, 0o755)
    db = f"crm_mail_sync_shuffle_{os.getpid()}"
    result = {"seed": seed, "problems": []}
    try:
        holder = os.path.join(tmp, "addons")
        addon = os.path.join(holder, ADDON_NAME)
        files = copy_working_tree(addon)
        init_path = os.path.join(addon, "models", "__init__.py")
        original_text = open(init_path).read()
        original, order = shuffle_imports(init_path, seed)
        result.update(files=files, original=original, order=order)
        log(
            f"shuffle: seed {seed}, {files} files copied; models/__init__.py imports in this "
            f"order: {', '.join(order)}"
        )
        t0 = time.monotonic()
        verdict = _install_and_test(db, holder, tmp, "odoo.log", tags)
        result["seconds"] = round(time.monotonic() - t0, 1)
        result.update({k: verdict[k] for k in ("passed", "failed", "exit_code", "problems")})
        if verdict["problems"]:
            result["log"] = keep_log(verdict["log_path"], "scale-shuffle-odoo.log")
        log(
            f"shuffle: install + tests {result['seconds']:.0f}s, exit {verdict['exit_code']}, "
            f"{verdict['passed']} passed, {verdict['failed']} failed"
        )
        if verdict["problems"]:
            # Not part of the verdict (both orders must pass): whether the failing classes (or,
            # when nothing ran, the install) fail because of the order or fail anyway.
            with open(os.path.join(addon, "models", "__init__.py"), "w") as fh:
                fh.write(original_text)
            classes = verdict["failing"] or ["TestInstall"]
            again = _install_and_test(db, holder, tmp, "odoo-unshuffled.log", classes)
            result["unshuffled"] = {
                "classes": classes,
                "passed": again["passed"],
                "failed": again["failed"],
            }
            log(
                f"shuffle: {', '.join(classes)} in the original order: {again['passed']} "
                f"passed, {again['failed']} failed ("
                + (
                    "they pass there: the order matters, or they are flaky"
                    if not again["problems"]
                    else "they fail in the original order too"
                )
                + ")"
            )
        return result
    finally:
        drop_db(db)
        shutil.rmtree(tmp, ignore_errors=True)


def _install_and_test(db, holder, tmp, log_name, tags):
    """``odoo-bin -i crm_mail_sync --test-tags <tags>`` on a new database ``db`` (dropped first);
    the verdict of ``tools/odoo_log_check.py`` plus the test classes that did not run and the
    ones that failed."""
    tag_spec = ",".join(f"/{ADDON_NAME}:{name}" for name in tags)
    log_path = os.path.join(tmp, log_name)
    drop_db(db)
    rc = run_odoo(
        odoo_cmd(
            db,
            addons_path(holder),
            os.path.join(tmp, "data"),
            "-i",
            ADDON_NAME,
            "--test-tags",
            tag_spec,
            "--stop-after-init",
            "--log-level",
            "test",
        ),
        log_path,
        timeout=1500,
    )
    text = open(log_path, errors="replace").read()
    passed, failed, problems = _load_log_check().check(text, rc, ADDON_NAME)
    problems = [p for p in problems if p.strip()]
    not_run = [name for name in tags if not re.search(rf" Starting {name}\.", text)]
    if not_run:
        problems.append(f"no test of {', '.join(not_run)} ran (renamed? not importable?)")
    if failed and not problems:
        problems.append(f"{failed} failed")
    raised = []  # a failure's exceptions (the verdict shows only the head of tracebacks)
    for line in text.splitlines() if problems else ():
        if re.match(r"^[A-Za-z_.]*(Error|Exception)\b[^ ]*: ", line) and line not in raised:
            raised.append(line)
    if raised:
        problems.append("raised: " + " | ".join(line[:300] for line in raised[:5]))
    failing = sorted(
        {
            m.group(1)
            for m in re.finditer(
                rf"odoo\.addons\.{ADDON_NAME}\.tests\.\w+: (?:FAIL|ERROR): (\w+)\.\w+", text
            )
            if m.group(1) in tags
        }
    )
    return {
        "passed": passed,
        "failed": failed,
        "exit_code": rc,
        "problems": problems,
        "failing": failing,
        "log_path": log_path,
    }


# ---------------------------------------------------------------------------------------------
# Upgrade in place
# ---------------------------------------------------------------------------------------------
# Run by ``odoo-bin shell`` (``env``: superuser environment; ``P``: the parameters), with the
# OLD addon: leads, two salespeople who connect their own mailbox (password stored as a secret)
# with the Test connection button, then Sync now until the cursors reach the server's tops.
SETUP_SCRIPT = r"""
ctx = dict(env.context, tracking_disable=True, mail_create_nolog=True,
           no_reset_password=True, mail_notrack=True)
env = env(context=ctx)
env["ir.config_parameter"].sudo().set_param("crm_mail_sync.allowed_networks", P["host"])
leads = {}
for address in P["leads"]:
    leads[address] = env["crm.lead"].create({
        "name": "Lead " + address, "email_from": address, "type": "opportunity"}).id
groups = [env.ref("base.group_user").id,
          env.ref("sales_team.group_sale_salesman_all_leads").id]
mailboxes = {}
runs = {}
for box in P["mailboxes"]:
    user = env["res.users"].create({"name": box["login"].split("@")[0], "login": box["login"],
                                    "email": box["login"], "groups_id": [(6, 0, groups)]})
    mailbox = env["mail.sync.mailbox"].with_user(user).create({
        "user_id": user.id, "email": box["login"], "imap_host": P["host"],
        "imap_port": P["port"], "imap_security": "none", "imap_login": box["login"],
        "password": box["password"], "smtp_host": False, "sync_days": 0})
    env.cr.commit()
    mailbox.action_test_connection()
    env.cr.commit()
    tops = {folder: tuple(top) for folder, top in box["tops"].items()}
    for run in range(1, 6):
        mailbox.action_sync_now()
        env.cr.commit()
        env.invalidate_all()
        cursors = {f.name: (f.uidvalidity, f.last_uid)
                   for f in env["mail.sync.folder"].search([("mailbox_id", "=", mailbox.id)])}
        if all(cursors.get(folder) == top for folder, top in tops.items()):
            break
    mailboxes[box["login"]] = mailbox.id
    runs[box["login"]] = run
print(RESULT_MARK + json.dumps({"leads": leads, "mailboxes": mailboxes, "runs": runs,
                                "files": addon_files()}))
"""

# With the NEW addon after the upgrade: each secret decrypts to its password (only whether it
# does is printed), the mailboxes are still enabled; then each owner presses Sync now.
AFTER_SCRIPT = r"""
out = {"secrets": {}, "states": {}, "synced": {}}
Mailbox = env["mail.sync.mailbox"]
for login, mailbox_id in P["mailboxes"].items():
    mailbox = Mailbox.browse(mailbox_id)
    out["secrets"][login] = mailbox._get_secret("password") == P["passwords"][login]
    out["states"][login] = mailbox.state
if P["sync"]:
    for login, mailbox_id in P["mailboxes"].items():
        mailbox = Mailbox.browse(mailbox_id)
        action = mailbox.with_user(mailbox.user_id).action_sync_now()
        env.cr.commit()
        out["synced"][login] = (action or {}).get("params", {}).get("type")
out["files"] = addon_files()
print(RESULT_MARK + json.dumps(out))
"""


# Which files the shell's Odoo loaded crm_mail_sync's mailbox model from (the old or new tree).
ADDON_FILES = r"""
def addon_files():
    import inspect
    return sorted({inspect.getsourcefile(k) for k in type(env["mail.sync.mailbox"]).__mro__
                   if vars(k).get("_module") == "crm_mail_sync"})
"""


def ran_from(label, reply, holder, problems):
    """A problem when the shell's Odoo loaded the addon from somewhere else than ``holder``."""
    elsewhere = [
        path
        for path in reply.get("files", ())
        if not os.path.realpath(path).startswith(os.path.realpath(holder) + os.sep)
    ]
    if elsewhere or not reply.get("files"):
        problems.append(
            f"{label}: the addon was loaded from {elsewhere or 'nowhere'}, not from {holder}"
        )


def run_shell(db, ap, data_dir, script, params, log_path):
    """Run ``script`` in ``odoo-bin shell`` (its own transaction: the script commits); returns
    the JSON the script printed."""
    prologue = (
        f"import json\nRESULT_MARK = {RESULT_MARK!r}\n"
        f"P = json.loads({json.dumps(params)!r})\n" + ADDON_FILES
    )
    cmd = odoo_cmd(db, ap, data_dir, "--log-level", "warn", "--no-http", command="shell")
    start = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    with open(log_path, "ab") as err:
        proc = subprocess.run(
            cmd,
            input=(prologue + script).encode(),
            stdout=subprocess.PIPE,
            stderr=err,
            env=odoo_env(),
            timeout=600,
        )
    for line in proc.stdout.decode(errors="replace").splitlines():
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    with open(log_path, errors="replace") as fh:
        fh.seek(start)
        raised = [
            line
            for line in fh.read().splitlines()
            if re.match(r"^[A-Za-z_.]*(Error|Exception)\b[^ ]*: ", line)
        ]
    raise SystemExit(
        f"FAILED: odoo-bin shell exited with {proc.returncode} without a result: "
        f"{raised[-1][:300] if raised else 'no exception in the log'} "
        f"(log {keep_log(log_path, 'scale-upgrade-odoo.log')})"
    )


def snapshot(db, mailbox_ids):
    """What the database holds for the mailboxes: rows as tuples, per table."""
    import psycopg2

    ids = list(mailbox_ids)
    queries = {
        "mailboxes": (
            "SELECT id, user_id, company_id, email, imap_login, imap_host, imap_port, "
            "imap_security, state FROM mail_sync_mailbox WHERE id = ANY(%s)"
        ),
        "secrets": (
            "SELECT id, mailbox_id, kind, token FROM mail_sync_credential "
            "WHERE mailbox_id = ANY(%s)"
        ),
        "cursors": (
            "SELECT id, mailbox_id, name, role, uidvalidity, last_uid "
            "FROM mail_sync_folder WHERE mailbox_id = ANY(%s)"
        ),
        "registry": (
            "SELECT id, mailbox_id, message_id, folder_id, uid, direction "
            "FROM mail_sync_message WHERE mailbox_id = ANY(%s)"
        ),
        "links": (
            "SELECT r.sync_message_id, r.mail_message_id "
            "FROM mail_sync_message_mail_message_rel r "
            "JOIN mail_sync_message s ON s.id = r.sync_message_id "
            "WHERE s.mailbox_id = ANY(%s)"
        ),
        "chatter": (
            "SELECT id, mail_sync_mailbox_id, message_id, model, res_id, "
            "md5(coalesce(body, '')), coalesce(subject, '') FROM mail_message "
            "WHERE mail_sync_mailbox_id = ANY(%s)"
        ),
        "attachments": (
            "SELECT a.id, a.res_model, a.res_id, a.checksum FROM ir_attachment a "
            "JOIN message_attachment_rel r ON r.attachment_id = a.id "
            "JOIN mail_message m ON m.id = r.message_id "
            "WHERE m.mail_sync_mailbox_id = ANY(%s)"
        ),
    }
    conn = psycopg2.connect(dbname=db)
    try:
        with conn.cursor() as cr:
            state = {}
            for name, query in queries.items():
                cr.execute(query, [ids])
                state[name] = set(map(tuple, cr.fetchall()))
            return state
    finally:
        conn.close()


def pairs_by_mailbox(db, mailbox_ids):
    """(chatter entries per (Message-ID, lead), registry Message-IDs) per mailbox: the scale
    layer's recorded_state, read here with SQL."""
    import psycopg2
    from collections import Counter

    conn = psycopg2.connect(dbname=db)
    try:
        with conn.cursor() as cr:
            cr.execute(
                """SELECT mail_sync_mailbox_id, message_id, res_id, count(*)
                            FROM mail_message WHERE mail_sync_mailbox_id = ANY(%s)
                             AND model = 'crm.lead' GROUP BY 1, 2, 3""",
                [list(mailbox_ids)],
            )
            entries = {mid: Counter() for mid in mailbox_ids}
            for mailbox_id, message_id, res_id, count in cr.fetchall():
                entries[mailbox_id][((message_id or "").strip(), res_id)] += count
            cr.execute(
                "SELECT mailbox_id, message_id FROM mail_sync_message WHERE mailbox_id = ANY(%s)",
                [list(mailbox_ids)],
            )
            registry = {mid: Counter() for mid in mailbox_ids}
            for mailbox_id, message_id in cr.fetchall():
                registry[mailbox_id][message_id] += 1
            return entries, registry
    finally:
        conn.close()


def check_gate(label, db, mailbox_ids, expected, problems):
    entries, registry = pairs_by_mailbox(db, mailbox_ids.values())
    for login, mailbox_id in mailbox_ids.items():
        verdict = gate(expected[login], entries[mailbox_id], registry[mailbox_id])
        if (
            any(
                verdict[k]
                for k in (
                    "lost",
                    "duplicated",
                    "unexpected",
                    "registry_lost",
                    "registry_duplicated",
                )
            )
            or not verdict["expected"]
        ):
            problems.append(f"{label}, {login}: {verdict}")


def compare(before, after, label, problems, grown=(), ids_only=()):
    """Every row of ``before`` still in ``after``, unchanged (for the tables of ``ids_only``:
    still there, by id); no new row except in the tables of ``grown``."""
    for table, rows in before.items():
        if table in ids_only:
            rows = {row[:1] for row in rows}
            after = dict(after, **{table: {row[:1] for row in after[table]}})
        missing = rows - after[table]
        added = after[table] - rows
        if missing:
            problems.append(
                f"{label}: {len(missing)} {table} row(s) gone or changed, e.g. "
                f"{sorted(map(str, missing))[:2]}"
            )
        if added and table not in grown:
            problems.append(
                f"{label}: {len(added)} new {table} row(s), e.g. {sorted(map(str, added))[:2]}"
            )


def new_mail(sender, to, message_id):
    import email.utils

    return (
        f"From: Lead Person <{sender}>\r\nTo: {to}\r\nSubject: After the upgrade\r\n"
        f"Date: {email.utils.formatdate(localtime=True)}\r\nMessage-ID: {message_id}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Written after the upgrade: recorded once.\r\n"
    ).encode()


def run_upgrade(seed=11, commit=UPGRADE_FROM):
    """Returns a result dict: figures and problems (empty: passed)."""
    tmp = tempfile.mkdtemp(prefix="crm_mail_sync-upgrade-")
    os.chmod(tmp, 0o755)
    db = f"crm_mail_sync_upgrade_{os.getpid()}"
    old_holder = os.path.join(tmp, "old")
    old_addon = os.path.join(old_holder, ADDON_NAME)
    new_holder = os.path.join(tmp, "new")
    data_dir = os.path.join(tmp, "data")
    log_path = os.path.join(tmp, "odoo.log")
    dove = BenchDovecot(workdir=os.path.join(tmp, "dovecot"))
    problems = []
    result = {"from": commit, "problems": problems}
    worktree = False
    try:
        # -- the old release, checked out read-only next to the repository -----------------
        r = subprocess.run(
            ["git", "-C", ADDON, "worktree", "add", "--detach", old_addon, commit],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            raise SystemExit(f"FAILED: git worktree add {commit}: {r.stderr.strip()}")
        worktree = True
        result["from"] = subprocess.run(
            ["git", "-C", old_addon, "log", "-1", "--format=%h %s"], capture_output=True, text=True
        ).stdout.strip()[:80]
        result["files"] = copy_working_tree(os.path.join(new_holder, ADDON_NAME))
        old_ap, new_ap = addons_path(old_holder), addons_path(new_holder)

        # -- mail on this layer's own Dovecot: two salespeople, their own passwords ------------
        pool = correspondent_pool(seed, 20)
        leads = sorted(random.Random(seed).sample(pool, 8))
        boxes = []
        for index, count in enumerate((24, 16)):
            login = f"upgrade{index + 1}@{DOMAIN}"
            password = f"pw-{index + 1}-{random.Random(seed + index).getrandbits(48):x}"
            messages = make_corpus(seed + index, login, pool, count)
            dove.add_user(login, password)
            for i, message in enumerate(messages):
                dove.put(
                    login,
                    message.folder,
                    message.raw,
                    when=message.date.timestamp(),
                    flags="S" if i % 3 else "",
                )
            boxes.append({"login": login, "password": password, "messages": messages})
        dove.start()
        for box in boxes:
            box["tops"] = imap_tops(dove, box["login"])

        # -- install the old release and sync with it ---------------------------------------
        drop_db(db)
        t0 = time.monotonic()
        rc = run_odoo(
            odoo_cmd(
                db,
                old_ap,
                data_dir,
                "-i",
                ADDON_NAME,
                "--stop-after-init",
                "--without-demo",
                "all",
                "--log-level",
                "warn",
            ),
            log_path,
        )
        if rc != 0 or error_lines(log_path):
            raise SystemExit(
                f"FAILED: install of {commit} (exit {rc}): {error_lines(log_path)[:3]}"
            )
        result["install_s"] = round(time.monotonic() - t0, 1)
        setup = run_shell(
            db,
            old_ap,
            data_dir,
            SETUP_SCRIPT,
            {
                "host": dove.host,
                "port": dove.port,
                "leads": leads,
                "mailboxes": [{k: box[k] for k in ("login", "password", "tops")} for box in boxes],
            },
            log_path,
        )
        ran_from(f"sync by {commit}", setup, old_holder, problems)
        mailbox_ids = setup["mailboxes"]
        lead_ids = {norm_addr(address): lead_id for address, lead_id in setup["leads"].items()}
        expected = {
            box["login"]: expected_pairs(box["messages"], box["login"], lead_ids) for box in boxes
        }
        check_gate(f"synced by {commit}", db, mailbox_ids, expected, problems)
        before = snapshot(db, mailbox_ids.values())
        for box in boxes:
            cursors = {
                name: (uidvalidity, last_uid)
                for _id, mailbox_id, name, _role, uidvalidity, last_uid in before["cursors"]
                if mailbox_id == mailbox_ids[box["login"]]
            }
            if cursors != box["tops"]:
                problems.append(
                    f"synced by {commit}, {box['login']}: cursors {cursors}, "
                    f"Dovecot says {box['tops']}"
                )
        key_file = os.path.join(data_dir, KEY_FILE_NAME)
        if not os.path.isfile(key_file):
            problems.append(
                f"no key file {KEY_FILE_NAME} in the data directory after {commit} "
                f"stored the passwords"
            )
            key_before = None
        else:
            key_before = hashlib.sha256(open(key_file, "rb").read()).hexdigest()
        result["before"] = {table: len(rows) for table, rows in before.items()}
        log(
            f"upgrade: {commit} installed ({result['install_s']:.0f}s), "
            + ", ".join(f"{n} {table}" for table, n in result["before"].items())
        )

        # -- upgrade in place with the current working tree -------------------------------------
        t0 = time.monotonic()
        upgrade_log = os.path.join(tmp, "odoo-upgrade.log")
        rc = run_odoo(
            odoo_cmd(
                db,
                new_ap,
                data_dir,
                "-u",
                ADDON_NAME,
                "--stop-after-init",
                "--without-demo",
                "all",
                "--log-level",
                "info",
            ),
            upgrade_log,
        )
        result["upgrade_s"] = round(time.monotonic() - t0, 1)
        with open(log_path, "ab") as out, open(upgrade_log, "rb") as upgrade:
            out.write(upgrade.read())
        errors = error_lines(upgrade_log)
        if rc != 0 or errors:
            problems.append(f"odoo-bin -u {ADDON_NAME} exited with {rc}: {errors[:3]}")
        text = open(upgrade_log, errors="replace").read()
        if not re.search(rf"odoo\.modules\.loading: loading {ADDON_NAME}/", text):
            problems.append(
                f"odoo-bin -u {ADDON_NAME} loaded none of the addon's data files: not upgraded"
            )
        result["upgrade_warnings"] = [
            line.split(": ", 1)[-1][:200]
            for line in text.splitlines()
            if " WARNING " in line and ADDON_NAME in line
        ]
        after = snapshot(db, mailbox_ids.values())
        compare(before, after, "after the upgrade", problems)
        key_after = (
            hashlib.sha256(open(key_file, "rb").read()).hexdigest()
            if os.path.isfile(key_file)
            else None
        )
        if key_before and key_after != key_before:
            problems.append("the key file of the secrets changed or vanished in the upgrade")
        passwords = {box["login"]: box["password"] for box in boxes}
        checked = run_shell(
            db,
            new_ap,
            data_dir,
            AFTER_SCRIPT,
            {"mailboxes": mailbox_ids, "passwords": passwords, "sync": False},
            log_path,
        )
        ran_from("after the upgrade", checked, new_holder, problems)
        for login, same in checked["secrets"].items():
            if not same:
                problems.append(
                    f"after the upgrade, the password of {login} does not decrypt to the one stored"
                )
        for login, state in checked["states"].items():
            if state != "enabled":
                problems.append(f"after the upgrade, mailbox {login} is {state}")
        log(
            f"upgrade: -u with the working tree ({result['upgrade_s']:.0f}s): every row still "
            f"there: {not problems}, secrets decrypt: {checked['secrets']}"
        )

        # -- one new email, Sync now: recorded once, nothing else ----------------------------------
        first = boxes[0]
        message_id = f"<after-upgrade-{os.getpid()}-{seed}@{DOMAIN}>"
        client = dove.client(first["login"])
        try:
            client.append("INBOX", new_mail(leads[0], first["login"], message_id))
        finally:
            client.logout()
        first["messages"].append(
            types.SimpleNamespace(
                raw=new_mail(leads[0], first["login"], message_id), message_id=message_id
            )
        )
        expected[first["login"]] = expected_pairs(first["messages"], first["login"], lead_ids)
        tops = {box["login"]: imap_tops(dove, box["login"]) for box in boxes}
        synced = run_shell(
            db,
            new_ap,
            data_dir,
            AFTER_SCRIPT,
            {"mailboxes": mailbox_ids, "passwords": passwords, "sync": True},
            log_path,
        )
        ran_from("sync after the upgrade", synced, new_holder, problems)
        for login, kind in synced["synced"].items():
            if kind != "success":
                problems.append(f"Sync now of {login} after the upgrade: {kind}")
        final = snapshot(db, mailbox_ids.values())
        # The cursors moved on (checked against Dovecot below); every other row is unchanged.
        compare(
            before,
            final,
            "after the new email",
            problems,
            grown=("registry", "links", "chatter", "attachments"),
            ids_only=("cursors",),
        )
        new_registry = final["registry"] - before["registry"]
        if [(row[1], row[2]) for row in new_registry] != [
            (mailbox_ids[first["login"]], message_id)
        ]:
            problems.append(
                f"new registry rows: {sorted(map(str, new_registry))} (expected "
                f"exactly {message_id} of {first['login']})"
            )
        new_chatter = final["chatter"] - before["chatter"]
        if not new_chatter or {row[2] for row in new_chatter} != {message_id}:
            problems.append(f"new chatter entries: {sorted(map(str, new_chatter))}")
        result["new_chatter_entries"] = len(new_chatter)
        check_gate("after the new email", db, mailbox_ids, expected, problems)
        for box in boxes:
            cursors = {
                name: (uidvalidity, last_uid)
                for _id, mailbox_id, name, _role, uidvalidity, last_uid in final["cursors"]
                if mailbox_id == mailbox_ids[box["login"]]
            }
            if cursors != tops[box["login"]]:
                problems.append(
                    f"after the new email, {box['login']}: cursors {cursors}, "
                    f"Dovecot says {tops[box['login']]}"
                )
        log(
            f"upgrade: new email {message_id}: {len(new_registry)} registry row, "
            f"{len(new_chatter)} chatter entr{'y' if len(new_chatter) == 1 else 'ies'}"
        )
    except SystemExit as exc:
        problems.append(str(exc))
    finally:
        if problems and os.path.exists(log_path):
            result["log"] = keep_log(log_path, "scale-upgrade-odoo.log")
        dove.stop()
        drop_db(db)
        if worktree:
            subprocess.run(
                ["git", "-C", ADDON, "worktree", "remove", "--force", old_addon],
                capture_output=True,
            )
        subprocess.run(["git", "-C", ADDON, "worktree", "prune"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return result
