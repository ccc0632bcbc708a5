"""The engine's one read loop (sync, late linking, dry run) and its one "which folders changed?"
against a real Dovecot."""

import pytest

from mailsync import arrival, sync
from mailsync.errors import SyncError
from mailsync.session import ImapSession
from mailsync.testing import corpus
from mailsync.types import FolderState

ANN = "ann@client.org"


def _inbox(mail_user, n, seed=31):
    """``n`` messages with Ann in INBOX (small, well formed): their UIDs, ascending."""
    msgs = corpus.generate(
        seed,
        mail_user.email,
        [ANN],
        n,
        malformed_ratio=0,
        sent_ratio=0,
        big_every=0,
        attachment_ratio=0,
    )
    return [mail_user.append("INBOX", m.raw) for m in msgs]


def _poisoned(session, poison):
    """Make every FETCH of a body that includes ``poison`` fail, as a server does with a
    message it cannot serve; returns the list of the UID lists fetched."""
    fetched, fetch_raw = [], session.fetch_raw

    def failing(uids):
        fetched.append(sorted(uids))
        if poison in uids:
            raise SyncError("protocol", "FETCH failed: cannot read the message")
        return fetch_raw(uids)

    session.fetch_raw = failing
    return fetched


def _want_all(headers):
    return {h.uid: ANN for h in headers}


@pytest.mark.parametrize("caller", ["sync", "read_uids"])
def test_a_poison_message_is_read_alone_and_the_others_recorded(mail_user, caller):
    """One group FETCH fails: each of its messages is fetched alone; the poison becomes a
    message-level error handed with the next recorder call, the others are recorded. The same
    for the sync (the cursor moves over the poison) and for a read of given UIDs."""
    uids = _inbox(mail_user, 5)
    poison = uids[2]
    calls, errors = [], []

    def recorder(fs, items, last):
        calls.append(([h.uid for h, _parsed, _match in items], last))

    with ImapSession(mail_user.config()) as session:
        fetched = _poisoned(session, poison)
        if caller == "sync":
            [folder], report = sync.sync_mailbox(
                mail_user.config(),
                [FolderState("INBOX", "inbox")],
                matcher=_want_all,
                recorder=recorder,
                session=session,
                on_errors=lambda fs, errs: errors.extend(errs),
            )
            assert folder.last_uid == uids[-1]
        else:
            session.examine("INBOX")
            seen, matched, report = sync.read_uids(
                session,
                FolderState("INBOX", "inbox"),
                uids,
                matcher=_want_all,
                recorder=recorder,
                on_errors=lambda fs, errs: errors.extend(errs),
            )
            assert seen == matched == set(uids)
    assert fetched == [uids] + [[uid] for uid in uids]
    [error] = report.errors
    assert errors == [error]
    assert (error.uid, error.folder, error.header.uid) == (poison, "INBOX", poison)
    assert sorted(uid for items, _last in calls for uid in items) == [
        uid for uid in uids if uid != poison
    ]
    assert report.recorded == 4 and report.matched == 5
    assert all(last == (uids[-1] if caller == "sync" else None) for _items, last in calls)


def test_headers_only_asks_the_matcher_and_reads_no_body(mail_user):
    """``bodies=False`` (the dry run): headers and matcher, no body fetched, no recorder."""
    uids = _inbox(mail_user, 6)
    asked = []

    def matcher(headers):
        asked.extend(h.uid for h in headers)
        return {h.uid: ANN for h in headers if h.uid % 2}

    with ImapSession(mail_user.config()) as session:
        session.examine("INBOX")
        fetched = _poisoned(session, None)
        seen, matched, report = sync.read_uids(
            session,
            FolderState("INBOX", "inbox"),
            uids + [max(uids) + 50],
            matcher=matcher,
            batch_size=4,
            bodies=False,
        )
        assert session.bodies_bytes == 0 and fetched == []
    assert asked == uids and seen == set(uids)
    assert matched == {uid for uid in uids if uid % 2}
    assert (report.headers_seen, report.matched, report.recorded) == (6, 3, 0)


def test_changed_folders_one_answer_for_the_sync_and_fast_arrival(mail_user):
    """New mail, a new UIDVALIDITY, a folder never synced and one whose STATUS fails count as
    changed; a synced folder with nothing above its cursor does not. Fast arrival asks the
    sync's own function."""
    assert arrival.changed_folders is sync.changed_folders
    _inbox(mail_user, 3)
    [inbox], _report = sync.sync_mailbox(
        mail_user.config(),
        [FolderState("INBOX", "inbox")],
        matcher=lambda headers: {},
        recorder=lambda *a: None,
    )
    never = FolderState("Never", "sent")
    gone = FolderState("Gone", "sent", uidvalidity=5, last_uid=9)
    reset = FolderState(
        "INBOX", "inbox", uidvalidity=inbox.uidvalidity + 1, last_uid=inbox.last_uid
    )
    with ImapSession(mail_user.config()) as session:
        assert sync.changed_folders(session, [inbox]) == []
        assert sync.changed_folders(session, [inbox, never, gone]) == [never, gone]
        assert sync.changed_folders(session, [reset]) == [reset]
        # Fast arrival: a folder gone from the server is the regular sync's to report, not a
        # reason to sync every minute; a folder never synced still counts.
        assert sync.changed_folders(session, [inbox, never, gone], unanswered_changed=False) == [
            never
        ]
        session.noop()  # a failed STATUS leaves the connection usable
    _inbox(mail_user, 1, seed=32)
    with ImapSession(mail_user.config()) as session:
        assert arrival.changed_folders(session, [inbox]) == [inbox]
