"""sync_mailbox against a real Dovecot: cursors, read-only, replay, quota, deadline, failures."""

import datetime as dt
import socket
import time

import pytest

from mailsync.errors import SyncError
from mailsync.session import ImapSession
from mailsync.sync import sync_mailbox
from mailsync.testing import corpus
from mailsync.types import FolderState

CRM = ["ann@client.org", "bob@client.org"]  # addresses known to the CRM
OTHERS = ["zed@stranger.net", "yan@elsewhere.org"]


class Caller:
    """What the Odoo side does: an address index, a Message-ID registry, persisted cursors."""

    def __init__(self, known=CRM):
        self.known = set(known)
        self.registry = {}  # message_id -> (folder, uid)
        self.cursors = {}  # folder -> (uidvalidity, last_uid)
        self.calls = []
        self.matcher_calls = 0

    def matcher(self, headers):
        self.matcher_calls += 1
        return {
            h.uid: sorted(self.known & set(h.all_addrs))
            for h in headers
            if self.known & set(h.all_addrs) and h.message_id not in self.registry
        }

    def recorder(self, fs, items, new_last_uid):
        for h, parsed, match in items:
            assert parsed.message_id == h.message_id and match
            assert h.message_id not in self.registry, "duplicate handed to the recorder"
            self.registry[h.message_id] = (fs.name, h.uid)
        self.cursors[fs.name] = (fs.uidvalidity, new_last_uid)
        self.calls.append((fs.name, [h.uid for h, _, _ in items], new_last_uid))

    def folders(self):
        return [
            FolderState(name=n, role="inbox" if n == "INBOX" else "sent", uidvalidity=v, last_uid=u)
            for n, (v, u) in sorted(self.cursors.items())
        ]


def load(mail_user, msgs):
    uids = {}
    for i, m in enumerate(msgs):
        flags = (r"\Seen",) if i % 3 else ()
        if i % 7 == 0:
            flags += (r"\Flagged",)
        uids[m.message_id] = (m.folder, mail_user.append(m.folder, m.raw, flags=flags))
    return uids


def expected(msgs, known=CRM):
    return {m.message_id for m in msgs if set(known) & set(m.addrs)}


@pytest.fixture
def mailbox(mail_user):
    msgs = corpus.generate(
        42,
        mail_user.email,
        CRM + OTHERS,
        80,
        big_every=0,
        attachment_ratio=0.15,
        malformed_ratio=0.1,
    )
    load(mail_user, msgs)
    return mail_user, msgs


def test_full_sync_records_exactly_the_matching_set_and_leaves_the_mailbox_unchanged(
    mailbox, dovecot
):
    user, msgs = mailbox
    before = {f: dovecot.flags(user.login, f) for f in ("INBOX", "Sent")}
    caller = Caller()
    folders, report = sync_mailbox(
        user.config(), None, matcher=caller.matcher, recorder=caller.recorder, batch_size=25
    )
    assert {f: dovecot.flags(user.login, f) for f in ("INBOX", "Sent")} == before
    assert any(r"\Seen" not in fl for fl in before["INBOX"].values())
    assert set(caller.registry) == expected(msgs)
    assert report.recorded == report.matched == len(expected(msgs))
    assert report.headers_seen == len(msgs) and report.folders == 2 and not report.errors
    assert [(f.name, f.last_uid) for f in folders] == [
        ("INBOX", max(before["INBOX"])),
        ("Sent", max(before["Sent"])),
    ]
    # batches in ascending order, the cursor after each one
    inbox_calls = [c for c in caller.calls if c[0] == "INBOX"]
    assert [c[2] for c in inbox_calls] == sorted(c[2] for c in inbox_calls)
    assert len(inbox_calls) == -(-len(before["INBOX"]) // 25)

    # second run: nothing fetched at all
    folders2, report2 = sync_mailbox(
        user.config(), folders, matcher=caller.matcher, recorder=caller.recorder
    )
    assert (
        report2.headers_seen,
        report2.recorded,
        report2.bodies_bytes,
        report2.headers_bytes,
    ) == (0, 0, 0, 0)
    assert caller.matcher_calls == len(caller.calls)  # the matcher was not called again

    # a new message shows up in the next run
    new = corpus.generate(43, user.email, ["ann@client.org"], 1, malformed_ratio=0)[0]
    uid = user.append("INBOX", new.raw)
    _, report3 = sync_mailbox(
        user.config(), folders2, matcher=caller.matcher, recorder=caller.recorder
    )
    assert report3.recorded == 1 and caller.registry[new.message_id] == ("INBOX", uid)
    assert folders2[0].last_uid == uid
    assert {f: dovecot.flags(user.login, f) for f in ("INBOX", "Sent")}["Sent"] == before["Sent"]


def test_uidvalidity_reset_rereads_without_new_message_ids(mailbox, dovecot):
    user, msgs = mailbox
    caller = Caller()
    folders, _ = sync_mailbox(user.config(), None, matcher=caller.matcher, recorder=caller.recorder)
    recorded = dict(caller.registry)
    old_validity = folders[0].uidvalidity
    new_validity = dovecot.reset_uidvalidity(user.login, "INBOX")
    assert new_validity != old_validity
    headers = []

    def matcher(hs):
        headers.extend(hs)
        return caller.matcher(hs)

    folders, report = sync_mailbox(
        user.config(), folders, matcher=matcher, recorder=caller.recorder
    )
    assert folders[0].uidvalidity == new_validity
    inbox = [m for m in msgs if m.folder == "INBOX"]
    assert report.headers_seen == len(inbox)  # re-read from UID 1
    assert report.recorded == 0 and caller.registry == recorded
    assert {h.message_id for h in headers} == {m.message_id for m in inbox}
    assert caller.cursors["INBOX"] == (new_validity, max(h.uid for h in headers))


def test_unmatched_mail_costs_headers_only(mail_user):
    msgs = corpus.generate(
        5, mail_user.email, OTHERS, 12, big_every=3, attachment_ratio=1, malformed_ratio=0
    )
    load(mail_user, msgs)
    assert sum(len(m.raw) for m in msgs) > 1_000_000
    caller = Caller()
    _, report = sync_mailbox(
        mail_user.config(), None, matcher=caller.matcher, recorder=caller.recorder
    )
    assert report.headers_seen == 12 and report.recorded == 0
    assert report.bodies_bytes == 0
    assert report.headers_bytes / 12 < 4096
    assert caller.cursors["INBOX"][1] > 0  # the cursor moved over unmatched mail


def test_quota_cuts_before_the_first_item_over_it_and_resumes(mail_user):
    msgs = corpus.generate(
        9,
        mail_user.email,
        ["ann@client.org", "zed@stranger.net"],
        30,
        sent_ratio=0,
        malformed_ratio=0,
        big_every=0,
        attachment_ratio=0,
    )
    uids = load(mail_user, msgs)
    wanted = [uids[m.message_id][1] for m in msgs if "ann@client.org" in m.addrs]
    assert len(wanted) > 6
    caller = Caller()
    folders = [FolderState("INBOX", "inbox")]
    folders, report = sync_mailbox(
        mail_user.config(),
        folders,
        matcher=caller.matcher,
        recorder=caller.recorder,
        quota=4,
        batch_size=100,
    )
    assert report.recorded == 4 and report.deferred == len(wanted) - 4
    assert sorted(u for _, u in caller.registry.values()) == wanted[:4]
    assert folders[0].last_uid == wanted[4] - 1  # just below the first deferred one
    folders, report = sync_mailbox(
        mail_user.config(), folders, matcher=caller.matcher, recorder=caller.recorder, quota=None
    )
    assert sorted(u for _, u in caller.registry.values()) == wanted
    assert report.deferred == 0 and folders[0].last_uid == max(uids.values())[1]


def test_quota_zero_records_nothing_but_moves_over_unmatched(mail_user):
    msgs = corpus.generate(9, mail_user.email, ["zed@stranger.net"], 5, malformed_ratio=0)
    msgs += corpus.generate(10, mail_user.email, ["ann@client.org"], 3, malformed_ratio=0)
    for m in msgs:
        mail_user.append("INBOX", m.raw)
    caller = Caller()
    folders, report = sync_mailbox(
        mail_user.config(),
        [FolderState("INBOX", "inbox")],
        matcher=caller.matcher,
        recorder=caller.recorder,
        quota=0,
    )
    assert report.recorded == 0 and report.deferred == 3 and folders[0].last_uid == 5


def test_deadline_stops_between_batches(mailbox):
    user, msgs = mailbox
    caller = Caller()
    _, report = sync_mailbox(
        user.config(),
        None,
        matcher=caller.matcher,
        recorder=caller.recorder,
        deadline=time.monotonic() - 1,
    )
    assert report.stopped_early and report.headers_seen == 0 and not caller.calls

    def slow_matcher(hs):
        time.sleep(0.6)
        return caller.matcher(hs)

    folders, report = sync_mailbox(
        user.config(),
        None,
        matcher=slow_matcher,
        recorder=caller.recorder,
        batch_size=10,
        deadline=time.monotonic() + 0.3,
    )
    assert report.stopped_early and report.headers_seen == 10 and len(caller.calls) == 1
    assert folders[0].last_uid == caller.calls[0][2] == 10
    # the next run continues where it stopped, and the whole set ends up recorded
    sync_mailbox(user.config(), folders, matcher=caller.matcher, recorder=caller.recorder)
    assert set(caller.registry) == expected(msgs)


def test_since_limits_the_first_run(mail_user):
    old, new = corpus.generate(3, mail_user.email, ["ann@client.org"], 2, malformed_ratio=0)
    mail_user.append("INBOX", old.raw, when=dt.datetime(2019, 5, 1, tzinfo=dt.timezone.utc))
    uid_new = mail_user.append("INBOX", new.raw)
    caller = Caller()
    folders, report = sync_mailbox(
        mail_user.config(),
        [FolderState("INBOX", "inbox")],
        matcher=caller.matcher,
        recorder=caller.recorder,
        since=dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc),
    )
    assert set(caller.registry) == {new.message_id} and folders[0].last_uid == uid_new


def test_missing_folder_is_reported_and_others_synced(mailbox):
    user, msgs = mailbox
    caller = Caller()
    folders = [
        FolderState("Gone", "sent", uidvalidity=5, last_uid=9),
        FolderState("INBOX", "inbox"),
    ]
    _, report = sync_mailbox(
        user.config(), folders, matcher=caller.matcher, recorder=caller.recorder
    )
    [err] = report.errors
    assert err.kind == "folder_missing" and err.folder == "Gone"
    assert set(caller.registry) == {m.message_id for m in msgs if m.folder == "INBOX"} & expected(
        msgs
    )


def test_a_message_whose_body_cannot_be_fetched_is_reported_not_fatal(mail_user):
    msgs = corpus.generate(
        4, mail_user.email, ["ann@client.org"], 6, malformed_ratio=0, sent_ratio=0
    )
    load(mail_user, msgs)
    caller = Caller()

    def matcher(hs):
        wanted = caller.matcher(hs)
        with mail_user.client() as c:  # another client expunges one wanted message
            c.select_folder("INBOX")
            c.delete_messages([3])
            c.expunge()
        return wanted

    folders, report = sync_mailbox(
        mail_user.config(),
        [FolderState("INBOX", "inbox")],
        matcher=matcher,
        recorder=caller.recorder,
    )
    [err] = report.errors
    assert err.uid == 3 and err.folder == "INBOX"
    assert report.recorded == 5 and folders[0].last_uid == 6
    assert sorted(u for _, u in caller.registry.values()) == [1, 2, 4, 5, 6]


def test_malformed_messages_are_recorded_with_defects(mail_user):
    msgs = corpus.generate(
        6,
        mail_user.email,
        ["ann@client.org"],
        70,
        malformed_ratio=0.2,
        sent_ratio=0,
        big_every=0,
        attachment_ratio=0,
    )
    load(mail_user, msgs)
    got = []
    caller = Caller()

    def recorder(fs, items, last):
        got.extend(items)
        caller.recorder(fs, items, last)

    _, report = sync_mailbox(
        mail_user.config(),
        [FolderState("INBOX", "inbox")],
        matcher=caller.matcher,
        recorder=recorder,
    )
    assert report.recorded == 70 and not report.errors
    kinds = {m.message_id: m.malformed for m in msgs}
    assert {kinds[h.message_id] for h, _, _ in got} >= set(corpus.MALFORMED_KINDS)


def test_connection_failure_raises_after_persisting_completed_batches(mailbox):
    user, msgs = mailbox
    caller = Caller()
    session = ImapSession(user.config())
    session.connect()

    def matcher(hs):
        if caller.matcher_calls == 1:  # second batch: the connection dies
            session.client.socket().shutdown(socket.SHUT_RDWR)
        return caller.matcher(hs)

    with pytest.raises(SyncError) as info:
        sync_mailbox(
            user.config(),
            None,
            matcher=matcher,
            recorder=caller.recorder,
            batch_size=10,
            session=session,
        )
    assert info.value.kind in ("dropped", "protocol") and info.value.retryable
    session.close()
    assert caller.cursors["INBOX"][1] == 10  # the first batch was persisted
    folders = caller.folders()
    sync_mailbox(
        user.config(),
        folders + [FolderState("Sent", "sent")],
        matcher=caller.matcher,
        recorder=caller.recorder,
    )
    assert set(caller.registry) == expected(msgs)


def test_auth_failure_raises(mail_user):
    with pytest.raises(SyncError) as info:
        sync_mailbox(mail_user.config(password="bad"), None, matcher=dict, recorder=print)
    assert info.value.kind == "auth"


def test_suspects_are_read_alone_and_skipped_uids_never(mailbox, dovecot):
    """A message that was being read when an earlier sync died (a suspect) is read alone, in a
    group of its own, after ``before_bodies`` named it alone; a UID to skip is never fetched;
    the cursor still covers everything, each group's cursor just below the next group."""
    user, msgs = mailbox
    caller = Caller()
    inbox = sorted(dovecot.flags(user.login, "INBOX"))
    wanted_inbox = [
        uid
        for uid in inbox
        if any(
            m.folder == "INBOX" and set(CRM) & set(m.addrs) and m.message_id == mid
            for m in msgs
            for mid in [_mid_of(user, uid)]
        )
    ]
    suspect, skipped = wanted_inbox[3], wanted_inbox[5]
    announced, errors = [], []
    folders, report = sync_mailbox(
        user.config(),
        None,
        matcher=caller.matcher,
        recorder=caller.recorder,
        batch_size=200,
        suspects={"INBOX": {suspect}},
        skip_uids={"INBOX": {skipped: ("crashed", "the sync stopped twice")}},
        before_bodies=lambda fs, uids: announced.append((fs.name, list(uids))),
        on_errors=lambda fs, errs: errors.extend((fs.name, e) for e in errs),
    )
    assert ("INBOX", [suspect]) in announced
    [(folder, error)] = errors
    assert (folder, error.kind, error.uid, error.header.message_id) == (
        "INBOX",
        "crashed",
        skipped,
        _mid_of(user, skipped),
    )
    assert report.errors == [error]
    fetched = {uid for folder, uids in announced if folder == "INBOX" for uid in uids}
    assert skipped not in fetched and suspect in fetched
    calls = [c for c in caller.calls if c[0] == "INBOX"]
    assert [suspect] in [c[1] for c in calls]
    assert all(c[2] >= max(c[1], default=0) for c in calls)
    assert [c[2] for c in calls] == sorted(c[2] for c in calls)
    assert calls[-1][2] == max(inbox)
    assert _mid_of(user, skipped) not in caller.registry
    assert set(caller.registry) == expected(msgs) - {_mid_of(user, skipped)}


_MID_CACHE = {}


def _mid_of(user, uid, _cache=_MID_CACHE):
    key = (user.login, uid)
    if key not in _cache:
        with ImapSession(user.config()) as session:
            session.examine("INBOX")
            [h] = session.fetch_headers([uid])
            _cache[key] = h.message_id
    return _cache[key]
