"""Property test (engine level): random mailbox histories against real Dovecot.

A hypothesis ``RuleBasedStateMachine`` plays a user's mailbox (a fresh Dovecot user per example)
and the CRM: append (corpus messages, some matching a lead, some not, in INBOX and Sent), expunge
and flag changes by the mailbox owner, UIDVALIDITY resets, new leads, a message matching two
leads, syncs, and crashes (the recorder raises after recording k items of its n-th batch, before
the commit: the in-memory registry rolls that batch back, as the database would). Every example
ends with such a crash, then a complete sync.

The invariant, precisely. Each appended copy of a message is *must* if it matched an existing lead
when the first sync after its append started (crashed or not: a crashed sync may have committed
a cursor past it), else *may* (late linking is out of scope: a lead created after the mail was
synced does not pull it in, unless a UIDVALIDITY reset re-reads it). Then:

- after every step: no Message-ID is recorded twice; everything recorded matches a lead, and is
  linked only to leads among its own addresses (a message matching two leads to both);
- after every completed sync: every *must* copy still in the mailbox is recorded.
"""

from __future__ import annotations

import email.utils
import itertools
import time
from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conftest import new_mail_user
from mailsync.sync import sync_mailbox
from mailsync.testing import corpus
from mailsync.testing.dovecot import shared_dovecot
from mailsync.testing.registry import Crash, MemoryRegistry
from mailsync.types import ROLE_INBOX, ROLE_SENT, FolderState

ME = "me@crm.test"
CORRESPONDENTS = [f"c{i}@corr{i % 3}.test" for i in range(6)]
POOL = corpus.generate(
    "property",
    ME,
    CORRESPONDENTS,
    40,
    malformed_ratio=0.05,
    big_every=0,
    attachment_ratio=0.1,
    bulk_ratio=0.1,
)
FOLDERS = ("INBOX", "Sent")
DEFAULT_FOLDERS = [FolderState("INBOX", ROLE_INBOX), FolderState("Sent", ROLE_SENT)]
SETTINGS = settings(
    max_examples=40,
    stateful_step_count=15,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)

STATS = {
    "examples": 0,
    "steps": 0,
    "syncs": 0,
    "crashes": 0,
    "resets": 0,
    "expunges": 0,
    "appends": 0,
    "max_recorded": 0,
    "lost": 0,
    "duplicated": 0,
}
_serial = itertools.count(1)


@dataclass
class Copy:
    uid: int
    mid: str
    status: str = "new"  # new | must | may


class MailboxMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        STATS["examples"] += 1
        self.dovecot = shared_dovecot()
        self.user = new_mail_user(self.dovecot, prefix="prop")
        self.cfg = self.user.config("none", timeout=10.0)
        self.reg = MemoryRegistry(leads=CORRESPONDENTS[:3])
        self.leads = self.reg.leads  # the same set: a new lead is seen by the matcher
        self.mailbox: dict[str, list[Copy]] = {f: [] for f in FOLDERS}
        self.info: dict[str, frozenset] = {}  # Message-ID → its addresses
        self.two_leads: dict[str, frozenset] = {}  # Message-ID → both leads it must link to
        self.pool_seen: list = []  # corpus messages appended so far
        self.next_in_pool = 0

    # -- helpers --
    def _client(self, folder=None):
        client = self.dovecot.client(self.user.login, self.user.password)
        if folder:
            client.select_folder(folder)
        return client

    def _append(self, folder, raw, mid, addrs):
        uid = self.dovecot.append(self.user.login, folder, raw)
        self.mailbox[folder].append(Copy(uid, mid))
        self.info[mid] = frozenset(addrs)
        STATS["appends"] += 1

    def _sync_started(self):
        for copies in self.mailbox.values():
            for c in copies:
                if c.status == "new":
                    c.status = "must" if self.info[c.mid] & self.leads else "may"

    def _sync(self, batch_size, crash=None):
        self._sync_started()
        STATS["syncs"] += 1
        try:
            sync_mailbox(
                self.cfg,
                self.reg.folders(default=DEFAULT_FOLDERS),
                matcher=self.reg.matcher,
                recorder=self.reg.recorder_with(crash),
                batch_size=batch_size,
            )
        except Crash:
            STATS["crashes"] += 1
            return False
        return True

    def _check_complete(self):
        present_must = {
            c.mid for copies in self.mailbox.values() for c in copies if c.status == "must"
        }
        lost = present_must - self.reg.recorded()
        STATS["lost"] += len(lost)
        assert not lost, f"lost: {sorted(lost)}"
        STATS["max_recorded"] = max(STATS["max_recorded"], len(self.reg.counts))

    # -- rules --
    @initialize(start=st.integers(0, len(POOL) - 1))
    def start_in_pool(self, start):
        self.next_in_pool = start

    @rule(n=st.integers(1, 4))
    def append(self, n):
        """The next n messages of the corpus (new mail: about half matches a lead)."""
        for _ in range(n):
            m = POOL[self.next_in_pool % len(POOL)]
            self.next_in_pool += 1
            if m.message_id not in self.info:
                self._append(m.folder, m.raw, m.message_id, m.addrs)
                self.pool_seen.append(m)

    @precondition(lambda self: self.pool_seen)
    @rule(data=st.data())
    def append_again(self, data):
        """A message already seen, once more (a copy in the other folder, or the same)."""
        m = data.draw(st.sampled_from(self.pool_seen))
        self._append(data.draw(st.sampled_from(FOLDERS)), m.raw, m.message_id, m.addrs)

    @precondition(lambda self: len(self.leads) >= 2)
    @rule(data=st.data())
    def append_matching_two_leads(self, data):
        a, b = data.draw(
            st.lists(st.sampled_from(sorted(self.leads)), min_size=2, max_size=2, unique=True)
        )
        mid = f"<two.{next(_serial)}.{time.time_ns()}@corr.test>"
        raw = (
            f"From: {a}\r\nTo: {ME}\r\nCc: Someone <{b}>\r\nSubject: for both\r\n"
            f"Date: {email.utils.formatdate()}\r\nMessage-ID: {mid}\r\n\r\nhi both\r\n"
        ).encode()
        self._append("INBOX", raw, mid, {a, ME, b})
        self.two_leads[mid] = frozenset({a, b})

    @precondition(lambda self: any(self.mailbox.values()))
    @rule(data=st.data())
    def expunge(self, data):
        folder = data.draw(st.sampled_from([f for f in FOLDERS if self.mailbox[f]]))
        copy = data.draw(st.sampled_from(self.mailbox[folder]))
        client = self._client(folder)
        try:
            client.delete_messages([copy.uid])
            client.expunge()
        finally:
            client.logout()
        self.mailbox[folder].remove(copy)
        STATS["expunges"] += 1

    @precondition(lambda self: any(self.mailbox.values()))
    @rule(
        data=st.data(),
        flag=st.sampled_from([b"\\Seen", b"\\Flagged", b"\\Answered", b"$Label1"]),
        add=st.booleans(),
    )
    def flag_change(self, data, flag, add):
        folder = data.draw(st.sampled_from([f for f in FOLDERS if self.mailbox[f]]))
        copy = data.draw(st.sampled_from(self.mailbox[folder]))
        client = self._client(folder)
        try:
            (client.add_flags if add else client.remove_flags)([copy.uid], [flag])
        finally:
            client.logout()

    @precondition(lambda self: any(self.mailbox.values()))
    @rule(data=st.data())
    def reset_uidvalidity(self, data):
        folder = data.draw(st.sampled_from([f for f in FOLDERS if self.mailbox[f]]))
        self.dovecot.reset_uidvalidity(self.user.login, folder)
        client = self._client()
        try:
            client.select_folder(folder, readonly=True)
            uids = sorted(client.search(["ALL"]))
        finally:
            client.logout()
        copies = self.mailbox[folder]
        assert len(uids) == len(copies)
        for c, uid in zip(copies, uids):  # re-appended in the old UID order
            c.uid = uid
        STATS["resets"] += 1

    @precondition(lambda self: len(self.leads) < len(CORRESPONDENTS))
    @rule(data=st.data())
    def new_lead(self, data):
        self.leads.add(data.draw(st.sampled_from(sorted(set(CORRESPONDENTS) - self.leads))))

    @rule(
        batch_size=st.sampled_from([1, 2, 3, 200]),
        crash=st.one_of(st.none(), st.tuples(st.integers(0, 1), st.integers(0, 3))),
    )
    def sync(self, batch_size, crash):
        """A sync; with ``crash=(n, k)`` the recorder dies in the n-th batch that has items after
        recording k of them (k >= the batch's size: after all, before the commit)."""
        if self._sync(batch_size, crash=crash):
            self._check_complete()  # (a crash point that was never reached: a complete sync)

    def teardown(self):
        # Every history ends with a crash in the first batch that has items (if any: after k
        # items, k varying), then a complete sync: everything that must be there is.
        self._sync(2, crash=(0, sum(map(len, self.mailbox.values())) % 4))
        self.nothing_twice_nothing_foreign()
        assert self._sync(200)
        self._check_complete()
        self.nothing_twice_nothing_foreign()

    # -- after every step --
    @invariant()
    def nothing_twice_nothing_foreign(self):
        STATS["steps"] += 1
        dups = self.reg.duplicates()
        STATS["duplicated"] += len(dups)
        assert not dups, f"recorded twice: {dups}"
        for mid in self.reg.counts:
            assert mid in self.info, f"recorded a Message-ID never appended: {mid}"
            linked = self.reg.links[mid]
            assert linked and linked <= self.info[mid] & self.leads, (mid, linked)
            if mid in self.two_leads:
                assert linked >= self.two_leads[mid], (mid, linked)


def test_mailbox_histories_never_lose_or_duplicate(capsys):
    before = dict(STATS)
    run_state_machine_as_test(MailboxMachine, settings=SETTINGS)
    run = {
        k: STATS[k] - before[k]
        for k in (
            "examples",
            "steps",
            "syncs",
            "crashes",
            "resets",
            "expunges",
            "appends",
            "lost",
            "duplicated",
        )
    }
    assert run["examples"] >= 10 and run["syncs"] > 0 and run["crashes"] > 0
    assert run["lost"] == 0 and run["duplicated"] == 0
    with capsys.disabled():
        print(
            f"\n[property] hypothesis examples run: {run['examples']} ({run['steps']} steps, "
            f"{run['syncs']} syncs of which {run['crashes']} crashed, {run['resets']} "
            f"UIDVALIDITY resets, {run['expunges']} expunges, {run['appends']} appends); "
            f"lost: {run['lost']}, duplicated: {run['duplicated']}"
        )
