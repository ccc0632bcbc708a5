# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Crash anywhere : SIGKILL the sync at every step of a batch, then resume.

One mailbox on a private Dovecot (the generated corpus: INBOX and Sent, replies, attachments,
six charsets, ~3 % malformed), leads for a share of its correspondents, fetch batches of
``BATCH`` messages so that a sync makes several batches. For each crash point the mailbox's
synced data is wiped, a child process (forked from this one, Odoo already loaded) runs the
cron's ``_cron_sync()`` with ``CRM_MAIL_SYNC_CRASH_AT=<step>:<n>`` and kills itself with SIGKILL
at the n-th time it reaches that step (``mailsync/crashpoint.py``); then:

- the mailbox's advisory lock must be free (the killed worker's session is gone),
- another child runs ``_cron_sync()`` to completion: it must claim the mailbox and sync it,
- the database must hold exactly the expected (Message-ID, lead) pairs, computed from the corpus
  alone, each once; the registry each expected Message-ID once; each folder cursor at the
  folder's last UID with Dovecot's UIDVALIDITY.

Then random kills: rounds of 1–3 children SIGKILLed by this process at a random moment of the
sync (uniform over 0–120 % of a clean sync's duration), each one resuming the previous one's
state, followed by a run to completion and the same checks.
"""

from __future__ import annotations

import os
import random
import tempfile
import time

from common import (
    DOMAIN,
    BenchDovecot,
    correspondent_pool,
    expected_pairs,
    gate,
    imap_tops,
    load_dovecot,
    log,
    make_corpus,
    recorded_state,
    setup_records,
    wait_child,
)

STEPS = [
    "claimed",
    "sync_start",
    "headers",
    "bodies",
    "parsed",
    "recorded_some",
    "recorded",
    "before_commit",
    "committed",
    "sync_end",
]
BATCH = 8
LOCK_KEY = 0x4D53594E


def crash_points(long):
    """(step, n) pairs: every step at its first occurrence, the batch steps again later on."""
    later = (2, 4, 7) if long else (3,)
    points = [(step, 1) for step in STEPS]
    for n in later:
        points += [
            (step, n)
            for step in (
                "headers",
                "parsed",
                "recorded_some",
                "recorded",
                "before_commit",
                "committed",
            )
        ]
    return points


# -- functions run in the children / in this process (env = superuser Environment) ---------------
def child_cron(env):
    """What the scheduled action does (auto-commit, claim, advisory lock, release)."""
    done = env["mail.sync.mailbox"]._cron_sync()
    return {"done": done}


def reset(env, mailbox_id):
    env.cr.execute("DELETE FROM mail_message WHERE mail_sync_mailbox_id = %s", [mailbox_id])
    env.cr.execute("DELETE FROM ir_attachment WHERE res_model = 'crm.lead'")
    env.cr.execute("DELETE FROM mail_sync_message WHERE mailbox_id = %s", [mailbox_id])
    env.cr.execute("DELETE FROM mail_sync_folder WHERE mailbox_id = %s", [mailbox_id])
    env.cr.execute("DELETE FROM mail_sync_log WHERE mailbox_id = %s", [mailbox_id])
    env.cr.execute("DELETE FROM mail_sync_skipped WHERE mailbox_id = %s", [mailbox_id])
    env.cr.execute(
        """UPDATE mail_sync_mailbox SET state = 'enabled', synced_count = 0,
                             next_sync = NULL, last_sync = NULL, last_success = NULL,
                             last_error = NULL, error_since = NULL, sync_inflight = NULL,
                             sync_suspects = NULL
                       WHERE id = %s""",
        [mailbox_id],
    )
    env.invalidate_all()


def make_due(env, mailbox_id):
    env.cr.execute("UPDATE mail_sync_mailbox SET next_sync = NULL WHERE id = %s", [mailbox_id])


def lock_free(env, mailbox_id):
    env.cr.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_KEY, mailbox_id])
    free = env.cr.fetchone()[0]
    if free:
        env.cr.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_KEY, mailbox_id])
    return free


def retry_skipped(env, mailbox_id):
    """What the owner's "Retry skipped messages" does: ``(recorded, still skipped)``."""
    return env["mail.sync.mailbox"].browse(mailbox_id)._retry_skipped()


def skipped(env, mailbox_id):
    env.cr.execute(
        "SELECT uid, kind FROM mail_sync_skipped WHERE mailbox_id = %s ORDER BY uid", [mailbox_id]
    )
    return [tuple(row) for row in env.cr.fetchall()]


def inflight(env, mailbox_id):
    env.cr.execute("SELECT sync_inflight FROM mail_sync_mailbox WHERE id = %s", [mailbox_id])
    return env.cr.fetchone()[0]


def mailbox_state(env, mailbox_id):
    env.cr.execute("SELECT state, last_error FROM mail_sync_mailbox WHERE id = %s", [mailbox_id])
    return env.cr.fetchone()


# -- the test -----------------------------------------------------------------------------------
class CrashTest:
    def __init__(self, odoo, dove, login, mailbox_id, expected, tmp):
        self.odoo, self.dove, self.login = odoo, dove, login
        self.mailbox_id, self.expected, self.tmp = mailbox_id, expected, tmp
        self.failures = []
        self.totals = {"lost": 0, "duplicated": 0, "unexpected": 0}
        self.retried = 0  # messages skipped after two kills with them in flight, then retried

    def _wait_lock_free(self):
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            if self.odoo.run(lock_free, self.mailbox_id):
                return time.monotonic() - t0
            time.sleep(0.02)
        return None

    def resume_and_check(self, label):
        """Run the cron to completion after a crash, then compare with the expectation."""
        problems = []
        waited = self._wait_lock_free()
        if waited is None:
            problems.append("advisory lock still held 10 s after the kill")
        self.odoo.run(make_due, self.mailbox_id)
        result = os.path.join(self.tmp, "resume.json")
        pid = self.odoo.fork(child_cron, result_path=result)
        code, _secs = wait_child(pid, 300)
        done = None
        if code == 0:
            import json

            done = json.load(open(result))["done"]
            if done != 1:
                problems.append(f"the resuming cron run synced {done} mailbox(es), not 1")
        else:
            problems.append(f"the resuming run exited with {code}")
        state, error = self.odoo.run(mailbox_state, self.mailbox_id)
        if state != "enabled":
            problems.append(f"mailbox {state}: {error}")
        left = self.odoo.run(skipped, self.mailbox_id)
        if left:
            # Two kills with the same message alone in flight: skipped ("crashed"), by design.
            # The owner's retry must then record it.
            if any(kind != "crashed" for _uid, kind in left):
                problems.append(f"skipped for another reason than two crashes: {left}")
            self.retried += len(left)
            recorded, still = self.odoo.run(retry_skipped, self.mailbox_id)
            if still:
                problems.append(f"{still} message(s) still skipped after the retry")
        entries, registry, folders = self.odoo.run(
            lambda env: recorded_state(env, [self.mailbox_id])
        )
        verdict = gate(self.expected, entries[self.mailbox_id], registry[self.mailbox_id])
        for key in self.totals:
            self.totals[key] += verdict[key]
        if (
            verdict["lost"]
            or verdict["duplicated"]
            or verdict["unexpected"]
            or verdict["registry_lost"]
            or verdict["registry_duplicated"]
        ):
            problems.append(f"gate {verdict}")
        tops = imap_tops(self.dove, self.login)
        for folder, (uidvalidity, top) in tops.items():
            cursor = folders[self.mailbox_id].get(folder)
            if cursor != (uidvalidity, top):
                problems.append(
                    f"cursor of {folder} is {cursor}, Dovecot says {(uidvalidity, top)}"
                )
        if problems:
            self.failures.append((label, problems))
            log(f"  FAIL {label}: {'; '.join(problems)}")
        return verdict, waited

    def crash_point(self, step, n):
        self.odoo.run(reset, self.mailbox_id)
        pid = self.odoo.fork(child_cron, env_vars={"CRM_MAIL_SYNC_CRASH_AT": f"{step}:{n}"})
        code, secs = wait_child(pid, 300)
        killed = code == -9
        verdict, waited = self.resume_and_check(f"{step}:{n}")
        if not killed:
            self.failures.append((f"{step}:{n}", [f"the child was not killed (exit {code})"]))
        log(
            f"  crash at {step}:{n}: {'killed' if killed else f'NOT killed ({code})'} after "
            f"{secs:.2f}s, lock free after "
            f"{waited if waited is None else f'{waited * 1000:.0f} ms'}"
            f", then {verdict['recorded']}/{verdict['expected']} recorded, lost {verdict['lost']},"
            f" duplicated {verdict['duplicated']}"
        )
        return killed

    def clean_run(self):
        self.odoo.run(reset, self.mailbox_id)
        t0 = time.monotonic()
        pid = self.odoo.fork(child_cron)
        code, _ = wait_child(pid, 300)
        secs = time.monotonic() - t0
        if code != 0:
            raise SystemExit(f"FAILED: the clean sync exited with {code}")
        entries, registry, _folders = self.odoo.run(
            lambda env: recorded_state(env, [self.mailbox_id])
        )
        verdict = gate(self.expected, entries[self.mailbox_id], registry[self.mailbox_id])
        if verdict["lost"] or verdict["duplicated"] or verdict["unexpected"]:
            self.failures.append(("clean run", [f"gate {verdict}"]))
        return secs

    def random_round(self, rnd, duration, index):
        """1-3 kills landed at random moments (each child resumes the previous one's state)."""
        self.odoo.run(reset, self.mailbox_id)
        landed = 0
        wanted = rnd.randint(1, 3)
        for _attempt in range(wanted + 4):
            self.odoo.run(make_due, self.mailbox_id)
            pid = self.odoo.fork(child_cron)
            time.sleep(rnd.uniform(0.0, duration * 0.9))
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
            code, _ = wait_child(pid, 300)
            landed += code == -9
            if code != -9 or landed >= wanted:
                break  # it finished before the kill: nothing left to interrupt
        verdict, _waited = self.resume_and_check(f"random round {index}")
        log(
            f"  random round {index}: {landed} kill(s) landed, then {verdict['recorded']}/"
            f"{verdict['expected']} recorded, lost {verdict['lost']}, duplicated "
            f"{verdict['duplicated']}"
        )
        return landed


def uid_of(dove, login, message_id):
    """The INBOX UID of ``message_id`` as Dovecot numbers it."""
    client = dove.client(login)
    try:
        client.select_folder("INBOX", readonly=True)
        [uid] = client.search(["HEADER", "Message-ID", message_id])
        return uid
    finally:
        client.logout()


def poison_in_flight(test, dove, login2, expected2, messages):
    """A message that kills the worker whenever it is read (SIGKILL while it is in flight):
    the first run dies with its group in flight, the second run syncs the other mailbox first
    (no starvation) and dies with the message alone in flight, the third skips it ("crashed")
    and syncs the rest; the owner's retry then records it. Returns the list of problems."""
    odoo, mailbox_id = test.odoo, test.mailbox_id
    problems = []
    odoo.run(reset, mailbox_id)
    other_id = odoo.run(
        lambda env: setup_records(env, [login2], [], dove.host, dove.port, {})[0][login2]
    )
    inbox = sorted(
        (
            m
            for m in messages
            if m.folder == "INBOX" and any(mid == m.message_id for mid, _lead in test.expected)
        ),
        key=lambda m: m.date,
    )
    poison = inbox[len(inbox) // 2]
    uid = uid_of(dove, test.login, poison.message_id)
    spec = {"CRM_MAIL_SYNC_CRASH_AT": f"bodies@{mailbox_id}/INBOX/{uid}"}
    runs = []
    for index in range(3):
        odoo.run(make_due, mailbox_id)
        pid = odoo.fork(child_cron, env_vars=spec)
        code, _secs = wait_child(pid, 300)
        mark = odoo.run(inflight, mailbox_id)
        other, other_registry, _f = odoo.run(lambda env: recorded_state(env, [other_id]))
        other_gate = gate(expected2, other[other_id], other_registry[other_id])
        runs.append((code, mark, other_gate["recorded"]))
        if index < 2 and (code != -9 or not mark or uid not in mark["uids"]):
            problems.append(
                f"run {index + 1}: exit {code}, mark {mark} (expected a kill with "
                f"UID {uid} in flight)"
            )
    (_c1, mark1, other1), (_c2, mark2, other2), (code3, mark3, _other3) = runs
    if other1 != 0:
        problems.append(
            f"the other mailbox was synced before the poisoned one in run 1 "
            f"({other1} recorded): the test shows nothing"
        )
    if other2 != len(expected2):
        problems.append(
            f"run 2 did not sync the other mailbox first ({other2}/{len(expected2)}): starvation"
        )
    if mark2 and mark2["uids"] != [uid]:
        problems.append(f"run 2 died with {mark2['uids']} in flight, not UID {uid} alone")
    if code3 != 0 or mark3:
        problems.append(f"run 3 exited {code3} with mark {mark3}")
    left = odoo.run(skipped, mailbox_id)
    if left != [(uid, "crashed")]:
        problems.append(f"skipped {left}, expected [({uid}, 'crashed')]")
    state, error = odoo.run(mailbox_state, mailbox_id)
    if state != "enabled":
        problems.append(f"mailbox {state}: {error}")
    entries, registry, folders = odoo.run(lambda env: recorded_state(env, [mailbox_id]))
    without = {pair for pair in test.expected if pair[0] != poison.message_id}
    verdict = gate(without, entries[mailbox_id], registry[mailbox_id])
    if verdict["lost"] or verdict["duplicated"] or verdict["unexpected"]:
        problems.append(f"after the skip: {verdict}")
    for folder, top in imap_tops(dove, test.login).items():
        if folders[mailbox_id].get(folder) != top:
            problems.append(
                f"cursor of {folder} is {folders[mailbox_id].get(folder)}, Dovecot says {top}"
            )
    recorded, still = odoo.run(retry_skipped, mailbox_id)
    entries, registry, _folders = odoo.run(lambda env: recorded_state(env, [mailbox_id]))
    verdict = gate(test.expected, entries[mailbox_id], registry[mailbox_id])
    if still or verdict["lost"] or verdict["duplicated"]:
        problems.append(f"after the retry: {still} still skipped, {verdict}")
    log(
        f"  poison in flight (UID {uid}): run 1 killed with {len(mark1['uids']) if mark1 else 0}"
        f" message(s) in flight, run 2 synced the other mailbox ({other2}/{len(expected2)}) "
        f"then was killed with UID {uid} alone, run 3 skipped it ({left}) and synced the rest; "
        f"the retry recorded {recorded}"
    )
    return problems


def run(odoo_factory, template_db, long=False, seed=7):
    """Returns a result dict (passed/failed counts and the figures for the report)."""
    from common import clone_db, drop_db

    tmp = tempfile.mkdtemp(prefix="crm_mail_sync-crash-")
    os.chmod(tmp, 0o755)
    db = f"{template_db}_crash"
    dove = BenchDovecot(workdir=os.path.join(tmp, "dovecot"))
    try:
        login, login2 = f"crash@{DOMAIN}", f"crash2@{DOMAIN}"
        pool = correspondent_pool(seed, 30)
        messages = make_corpus(seed, login, pool, 90 if long else 60)
        messages2 = make_corpus(seed + 1, login2, pool, 20)
        leads = sorted(random.Random(seed).sample(pool, 12))
        load_dovecot(dove, {login: messages, login2: messages2})
        dove.start()
        clone_db(template_db, db)
        odoo = odoo_factory(db)
        mailbox_ids, lead_ids = odoo.run(
            lambda env: setup_records(
                env,
                [login],
                leads,
                dove.host,
                dove.port,
                {"fetch_batch_size": BATCH, "cron_batch_size": 5},
            )
        )
        mailbox_id = mailbox_ids[login]
        expected = expected_pairs(messages, login, lead_ids)
        log(
            f"crash test: {len(messages)} messages, {len(expected)} expected (Message-ID, lead) "
            f"pairs, fetch batches of {BATCH}"
        )
        test = CrashTest(odoo, dove, login, mailbox_id, expected, tmp)
        duration = min(test.clean_run() for _run in range(2))
        log(f"  clean sync: {duration:.2f}s")
        points = crash_points(long)
        killed = sum(test.crash_point(step, n) for step, n in points)
        rnd = random.Random(seed)
        rounds = 20 if long else 6
        landed = sum(test.random_round(rnd, duration, i + 1) for i in range(rounds))
        poison = poison_in_flight(
            test, dove, login2, expected_pairs(messages2, login2, lead_ids), messages
        )
        if poison:
            log(f"  FAIL poison in flight: {'; '.join(poison)}")
        odoo.close_connections()
        return {
            "crash_points": len(points),
            "crash_points_killed": killed,
            "random_rounds": rounds,
            "random_kills": landed,
            "retried": test.retried,
            "poison": poison,
            "lost": test.totals["lost"],
            "duplicated": test.totals["duplicated"],
            "unexpected": test.totals["unexpected"],
            "failures": test.failures,
            "expected_pairs": len(expected),
            "checks": len(points) + rounds + 1,
        }
    finally:
        dove.stop()
        drop_db(db)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
