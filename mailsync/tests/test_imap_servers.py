"""The engine's sync behaviours that depend on the IMAP server, on Dovecot and on Cyrus.

Every test runs once per server (fixture ``imap_server`` in conftest: ``dovecot``, ``cyrus``)
with a fresh user, the real :func:`mailsync.sync.sync_mailbox` and an in-memory caller (a
matcher by known addresses, a recorder that refuses a Message-ID it already has). Where the
two servers differ, the test says so:

- Cyrus's Sent folder is ``INBOX.Sent`` (separator ``.``) and LIST gives its special-use flag
  in lower case (``\\sent``); Dovecot's is ``Sent`` with ``\\Sent``.
- Cyrus refuses on APPEND some messages Dovecot stores (``AppendRefused``): they are left out
  of the mailbox and named in the summary line each server prints.
- Cyrus logs what each session sent (telemetry): the tests check there that a sync sends only
  read-only commands; on Dovecot the session's own counters and calls are checked.
"""

from __future__ import annotations

import base64
import random
import re
import time

from mailsync import structure
from mailsync.parse import parse_message
from mailsync.session import ImapSession
from mailsync.sync import sync_mailbox
from mailsync.testing import corpus
from mailsync.testing.cyrus import AppendRefused, CyrusServer
from mailsync.types import OMITTED_MESSAGE_LIMIT, ROLE_INBOX, ROLE_SENT, FolderState, Limits

CRM = ["ann@client.org", "bob@client.org"]  # addresses known to the CRM
OTHERS = ["zed@stranger.net", "yan@elsewhere.org"]
# What a sync may send: nothing that changes the mailbox or a flag (BODY.PEEK only).
READ_ONLY = {
    "CAPABILITY",
    "LIST",
    "EXAMINE",
    "STATUS",
    "UID SEARCH",
    "UID FETCH",
    "NOOP",
    "LOGOUT",
    "ID",
    "NAMESPACE",
    "ENABLE",
}
WRITES = {
    "SELECT",
    "STORE",
    "UID STORE",
    "EXPUNGE",
    "UID EXPUNGE",
    "COPY",
    "UID COPY",
    "MOVE",
    "UID MOVE",
    "APPEND",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "CLOSE",
}
# What an idle poll (nothing new anywhere) may send after LOGIN.
IDLE_POLL = {"CAPABILITY", "STATUS", "NOOP", "LOGOUT"}


class Caller:
    """The Odoo side in memory: known addresses, a Message-ID registry, persisted cursors."""

    def __init__(self, known=CRM):
        self.known = set(known)
        self.registry = {}  # message_id -> (folder, uid)
        self.cursors = {}  # folder -> (uidvalidity, last_uid)
        self.items = []  # (HeaderInfo, ParsedMessage) as handed to the recorder
        self.seen = []  # HeaderInfo of every matcher call
        self.matcher_calls = 0

    def matcher(self, headers):
        self.matcher_calls += 1
        self.seen.extend(headers)
        return {
            h.uid: sorted(self.known & set(h.all_addrs))
            for h in headers
            if self.known & set(h.all_addrs) and h.message_id not in self.registry
        }

    def recorder(self, fs, items, new_last_uid):
        for h, parsed, match in items:
            assert parsed.message_id == h.message_id and match
            assert h.message_id not in self.registry, f"duplicate {h.message_id} recorded"
            self.registry[h.message_id] = (fs.name, h.uid)
            self.items.append((h, parsed))
        self.cursors[fs.name] = (fs.uidvalidity, new_last_uid)


class Spy:
    """Wraps some methods of an ImapSession to count what the engine called."""

    def __init__(self, session, *names):
        self.calls = []
        for name in names:
            original = getattr(session, name)

            def wrapper(*args, _original=original, _name=name, **kwargs):
                self.calls.append((_name, args))
                return _original(*args, **kwargs)

            setattr(session, name, wrapper)

    def named(self, name):
        return [args for called, args in self.calls if called == name]


def _is_cyrus(server):
    return isinstance(server, CyrusServer)


class Telemetry:
    """What the user's sessions sent from now on, by verb: Cyrus's protocol log; None on a
    server without one (Dovecot)."""

    def __init__(self, server, login):
        self.server, self.login = server, login
        if _is_cyrus(server):
            server.enable_telemetry(login)
            server.clear_telemetry(login)

    def commands(self):
        if not _is_cyrus(self.server):
            return None
        return self.server.client_commands(self.login)

    def verbs(self):
        commands = self.commands()
        if commands is None:
            return None
        return [
            " ".join(c.split()[: 2 if c.upper().startswith("UID ") else 1]).upper()
            for c in commands
        ]


def _say(capsys, line):
    with capsys.disabled():
        print(f"\n{line}", flush=True)


def _load(server, user, msgs):
    """APPEND the corpus (flags: a third unseen, every 7th flagged), folder by folder; returns
    ``(stored, refused)``: the messages the server kept and ``[(index, message, reason)]`` of
    those it refused (Cyrus's AppendRefused)."""
    stored, refused = [], []
    for i, m in enumerate(msgs):
        flags = (r"\Seen",) if i % 3 else ()
        if i % 7 == 0:
            flags += (r"\Flagged",)
        try:
            server.append(user.login, m.folder, m.raw, flags=flags)
        except AppendRefused as e:
            refused.append((i, m, e.reason))
            continue
        stored.append(m)
    return stored, refused


def _nul_body_message(user_email):
    """A message from a CRM contact with a NUL byte in its body: Dovecot stores it, Cyrus
    refuses it ("Message contains NUL characters"), so the refusal path runs on every Cyrus
    run (the corpus itself holds nothing Cyrus refuses)."""
    raw = (
        f"From: Ann <ann@client.org>\r\nTo: {user_email}\r\nSubject: Price list\r\n"
        "Message-ID: <nul.body@client.org>\r\nDate: Tue, 09 Jan 2024 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "The prices\x00are attached.\r\n"
    ).encode()
    return corpus.CorpusMessage(
        raw=raw,
        folder="INBOX",
        message_id="<nul.body@client.org>",
        direction="received",
        addrs=("ann@client.org", user_email),
        subject="Price list",
        malformed="nul_body",
    )


def _expected(msgs, known=CRM):
    return {m.message_id for m in msgs if set(known) & set(m.addrs)}


def _folders_flags(server, user):
    return {folder: server.flags(user.login, folder) for folder in ("INBOX", "Sent")}


# ---- folder discovery ----------------------------------------------------------------------------
def test_discovery_finds_inbox_and_the_sent_folder(imap_server, imap_user):
    with ImapSession(imap_user.config()) as session:
        rows = session.list_folders()
        folders = session.discover_folders()
    assert [(f.name, f.role) for f in folders] == [
        ("INBOX", ROLE_INBOX),
        (imap_server.sent_folder, ROLE_SENT),
    ]
    flags = {name: set(flags) for flags, name in rows}
    assert imap_server.sent_folder == ("INBOX.Sent" if _is_cyrus(imap_server) else "Sent")
    # Cyrus says \sent, Dovecot \Sent: the engine compares without case.
    expected_flag = "\\sent" if _is_cyrus(imap_server) else "\\Sent"
    assert expected_flag in flags[imap_server.sent_folder], rows


# ---- first sync, idle poll, new mail -------------------------------------------------------------
def test_first_sync_records_the_matching_set_then_an_idle_poll_fetches_nothing(
    imap_server, imap_user, capsys
):
    server, user = imap_server, imap_user
    # 56 messages: 8 malformed ones, every malformed kind at least once.
    msgs = corpus.generate(
        42, user.email, CRM + OTHERS, 56, big_every=0, attachment_ratio=0.15, malformed_ratio=1 / 7
    )
    assert {m.malformed for m in msgs} >= set(corpus.MALFORMED_KINDS)
    msgs.insert(len(msgs) // 2, _nul_body_message(user.email))
    stored, refused = _load(server, user, msgs)
    before = _folders_flags(server, user)
    assert sum(len(f) for f in before.values()) == len(stored)

    caller = Caller()
    folders, report = sync_mailbox(
        user.config(), None, matcher=caller.matcher, recorder=caller.recorder, batch_size=20
    )
    refused_names = [
        f"#{i} {m.malformed or 'well-formed'} {m.message_id} ({reason})" for i, m, reason in refused
    ]
    _say(
        capsys,
        f"[{server.name}] {len(msgs)} messages (corpus + 1 with a NUL byte): "
        f"{len(stored)} appended, {len(refused)} refused"
        f"{': ' if refused else ''}{'; '.join(refused_names)}; "
        f"{report.recorded} recorded of {len(_expected(stored))} matching",
    )
    assert not report.errors, [str(e) for e in report.errors]
    assert set(caller.registry) == _expected(stored)
    assert report.recorded == report.matched == len(_expected(stored))
    assert report.headers_seen == len(stored) and report.folders == 2
    assert [(f.name, f.last_uid) for f in folders] == [
        ("INBOX", max(before["INBOX"])),
        (server.sent_folder, max(before["Sent"])),
    ]
    assert caller.cursors == {f.name: (f.uidvalidity, f.last_uid) for f in folders}

    # The idle poll: STATUS says nothing is new, no folder is opened, nothing is read.
    telemetry = Telemetry(server, user.login)
    calls = caller.matcher_calls
    with ImapSession(user.config()) as session:
        spy = Spy(session, "examine", "uids_after", "fetch_headers", "fetch_raw")
        folders2, report2 = sync_mailbox(
            user.config(),
            folders,
            matcher=caller.matcher,
            recorder=caller.recorder,
            session=session,
        )
    assert (
        report2.headers_seen,
        report2.matched,
        report2.recorded,
        report2.bodies_bytes,
        report2.headers_bytes,
        len(report2.errors),
    ) == (0, 0, 0, 0, 0, 0)
    assert report2.folders == 2 and caller.matcher_calls == calls and not spy.calls
    verbs = telemetry.verbs()
    if verbs is not None:  # Cyrus: what the session really sent after LOGIN
        assert "STATUS" in verbs and verbs[-1] == "LOGOUT", telemetry.commands()
        assert set(verbs) <= IDLE_POLL, telemetry.commands()

    if _is_cyrus(server):
        assert "nul_body" in [m.malformed for _i, m, _reason in refused]
    else:
        assert not refused
    assert _folders_flags(server, user) == before


def test_new_mail_appears_in_the_next_run(imap_server, imap_user):
    server, user = imap_server, imap_user
    msgs = corpus.generate(
        7, user.email, CRM + OTHERS, 8, malformed_ratio=0, big_every=0, attachment_ratio=0
    )
    stored, refused = _load(server, user, msgs)
    assert not refused
    caller = Caller()
    folders, _ = sync_mailbox(user.config(), None, matcher=caller.matcher, recorder=caller.recorder)
    assert set(caller.registry) == _expected(stored)

    new_in, new_sent = corpus.generate(
        43, user.email, ["ann@client.org"], 2, malformed_ratio=0, sent_ratio=0
    )
    uid_in = user.append("INBOX", new_in.raw)
    uid_sent = user.append("Sent", new_sent.raw)  # Cyrus: INBOX.Sent
    folders, report = sync_mailbox(
        user.config(), folders, matcher=caller.matcher, recorder=caller.recorder
    )
    assert report.headers_seen == 2 and report.recorded == 2 and not report.errors
    assert caller.registry[new_in.message_id] == ("INBOX", uid_in)
    assert caller.registry[new_sent.message_id] == (server.sent_folder, uid_sent)
    assert [(f.name, f.last_uid) for f in folders] == [
        ("INBOX", uid_in),
        (server.sent_folder, uid_sent),
    ]


# ---- UIDVALIDITY ---------------------------------------------------------------------------------
def test_uidvalidity_change_rereads_from_uid_1_without_duplicates(imap_server, imap_user):
    server, user = imap_server, imap_user
    msgs = corpus.generate(
        11, user.email, CRM + OTHERS, 16, malformed_ratio=0, big_every=0, attachment_ratio=0.2
    )
    stored, refused = _load(server, user, msgs)
    assert not refused
    caller = Caller()
    folders, _ = sync_mailbox(user.config(), None, matcher=caller.matcher, recorder=caller.recorder)
    recorded = dict(caller.registry)
    old_validity, old_last = folders[0].uidvalidity, folders[0].last_uid

    new_validity = server.reset_uidvalidity(user.login, "INBOX")
    assert new_validity != old_validity
    assert server.uidvalidity(user.login, "INBOX") == new_validity
    inbox_uids = sorted(server.flags(user.login, "INBOX"))
    caller.seen.clear()
    folders, report = sync_mailbox(
        user.config(), folders, matcher=caller.matcher, recorder=caller.recorder
    )
    inbox = [m for m in stored if m.folder == "INBOX"]
    assert folders[0].uidvalidity == new_validity
    assert report.headers_seen == len(inbox)  # re-read from UID 1, Sent untouched
    assert sorted(h.uid for h in caller.seen) == inbox_uids
    assert {h.message_id for h in caller.seen} == {m.message_id for m in inbox}
    assert report.recorded == 0 and caller.registry == recorded and not report.errors
    assert caller.cursors["INBOX"] == (new_validity, max(inbox_uids))
    assert folders[0].last_uid == max(inbox_uids)
    # Both harnesses re-append the messages: the new UIDs go on above the old ones, so a cursor
    # kept across the change would skip them all.
    assert min(inbox_uids) > old_last


# ---- flags and read-only commands ----------------------------------------------------------------
def test_a_sync_leaves_every_flag_as_it_was_and_sends_only_read_only_commands(
    imap_server, imap_user
):
    server, user = imap_server, imap_user
    msgs = corpus.generate(
        5, user.email, CRM + OTHERS, 24, malformed_ratio=0.1, big_every=0, attachment_ratio=0.3
    )
    stored, _refused = _load(server, user, msgs)
    before = _folders_flags(server, user)
    assert any(r"\Seen" not in fl for fl in before["INBOX"].values())
    assert any(r"\Flagged" in fl for fls in before.values() for fl in fls.values())
    telemetry = Telemetry(server, user.login)
    caller = Caller()
    _, report = sync_mailbox(
        user.config(), None, matcher=caller.matcher, recorder=caller.recorder, batch_size=10
    )
    assert report.recorded == len(_expected(stored)) > 0 and report.bodies_bytes > 0
    commands = telemetry.commands()  # before flags() below adds its own EXAMINE
    assert _folders_flags(server, user) == before
    if commands is not None:
        verbs = set(telemetry.verbs())
        assert {"EXAMINE", "UID SEARCH", "UID FETCH"} <= verbs <= READ_ONLY, commands
        assert not verbs & WRITES, commands
        fetches = [c for c in commands if c.upper().startswith("UID FETCH")]
        assert any("BODY.PEEK[]" in c.upper() for c in fetches), fetches
        for c in fetches:  # only BODY.PEEK, never BODY[…] or RFC822(.TEXT), which set \Seen
            assert not re.search(r"BODY\[|\bRFC822(?!\.SIZE)\b", c, re.I), c


# ---- the large-message path ----------------------------------------------------------------------
ATTACHMENT_BYTES = 7_600_000  # base64: ~10.3 MB, so the message is over LARGE_MESSAGE_BYTES


def _large_message(sender, to):
    data = random.Random("mailsync-large").randbytes(ATTACHMENT_BYTES)
    text = "Hello,\r\n\r\nthe signed contract is attached (10 MB).\r\n\r\nAnn\r\n"
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    raw = (
        (
            f"From: Ann <{sender}>\r\nTo: {to}\r\nSubject: Signed contract\r\n"
            "Message-ID: <large.contract@client.org>\r\nDate: Mon, 03 Mar 2025 10:00:00 +0000\r\n"
            'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b-large"\r\n\r\n'
            "--b-large\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            + text
            + '\r\n--b-large\r\nContent-Type: application/pdf; name="contract.pdf"\r\n'
            "Content-Transfer-Encoding: base64\r\n"
            'Content-Disposition: attachment; filename="contract.pdf"\r\n\r\n'
        ).encode()
        + encoded
        + b"--b-large--\r\n"
    )
    return raw, data


def _sync_large(user, limits):
    caller = Caller()
    with ImapSession(user.config()) as session:
        spy = Spy(session, "fetch_raw", "fetch_message_items")
        _, report = sync_mailbox(
            user.config(),
            [FolderState("INBOX", ROLE_INBOX)],
            matcher=caller.matcher,
            recorder=caller.recorder,
            session=session,
            limits=limits,
        )
        bodies_bytes = session.bodies_bytes
    assert not report.errors, [str(e) for e in report.errors]
    [(header, parsed)] = caller.items
    items = [str(item) for args in spy.named("fetch_message_items") for item in args[1]]
    return header, parsed, spy, items, bodies_bytes


def test_a_large_message_is_read_part_by_part_and_one_over_the_limit_from_its_text(
    imap_server, imap_user, capsys
):
    server, user = imap_server, imap_user
    raw, data = _large_message("ann@client.org", user.email)
    assert len(raw) > structure.LARGE_MESSAGE_BYTES
    uid = user.append("INBOX", raw)
    reference = parse_message(raw)
    assert [a.data for a in reference.attachments] == [data]

    telemetry = Telemetry(server, user.login)
    started = time.monotonic()
    header, parsed, spy, items, bodies_bytes = _sync_large(user, Limits())
    whole = time.monotonic() - started
    assert header.uid == uid and header.size == len(raw)
    assert not spy.named("fetch_raw")  # never fetched whole
    assert "BODYSTRUCTURE" in items and any(
        re.fullmatch(r"BODY\.PEEK\[2\](<\d+\.\d+>)?", i) for i in items
    ), items
    assert [(a.filename, a.content_type, a.data) for a in parsed.attachments] == [
        (a.filename, a.content_type, a.data) for a in reference.attachments
    ]
    assert parsed.body_text == reference.body_text and parsed.body_html == reference.body_html
    assert (parsed.subject, parsed.from_addr, parsed.message_id) == (
        reference.subject,
        reference.from_addr,
        reference.message_id,
    )
    assert not parsed.omitted
    assert len(data) < bodies_bytes < 1.2 * len(raw)
    commands = telemetry.commands()
    if commands is not None:  # Cyrus: the parts were asked for, never the whole message
        fetches = [c.upper() for c in commands if c.upper().startswith("UID FETCH")]
        assert any("BODYSTRUCTURE" in c for c in fetches), fetches
        assert any("BODY.PEEK[2]" in c for c in fetches), fetches
        assert not any("BODY.PEEK[]" in c for c in fetches), fetches

    # Over the caller's message limit: header and text only, the attachment never downloaded.
    limit = 1 << 20
    header, parsed, spy, items, bodies_bytes = _sync_large(user, Limits(max_message_bytes=limit))
    assert not spy.named("fetch_raw")
    assert not any(i.startswith("BODY.PEEK[2]") for i in items), items
    assert parsed.body_text == reference.body_text and not parsed.attachments
    assert [(o.filename, o.content_type, o.reason) for o in parsed.omitted] == [
        ("contract.pdf", "application/pdf", OMITTED_MESSAGE_LIMIT)
    ]
    assert parsed.omitted[0].size > 0.9 * len(data)
    assert bodies_bytes < 64 * 1024, bodies_bytes  # far below the message's 10 MB
    _say(
        capsys,
        f"[{server.name}] large message {len(raw) / 1e6:.1f} MB: read by part in "
        f"{whole:.2f} s; over a {limit >> 20} MB limit: {bodies_bytes} body bytes read",
    )
