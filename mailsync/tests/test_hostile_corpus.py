"""The hostile mail corpus through the engine against the real Dovecot: every message is read
(cleaned, within the limits, the big ones part by part) or refused with a message-level error;
the good mail around it is read whole; the mailbox is never modified; a 60 MB message is never
downloaded; a large message is read with bounded memory."""

import datetime as dt
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, new_mail_user
from mailsync.session import ImapSession
from mailsync.sync import sync_mailbox
from mailsync.testing import hostile_mail
from mailsync.types import Limits

MB = 1 << 20
LIMITS = Limits(max_attachment_bytes=25 * MB, max_message_bytes=50 * MB, max_parts=500)
DATE = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


class Collect:
    """Matches every message concerning ``lead``; keeps what the recorder is handed."""

    def __init__(self, lead):
        self.lead = lead
        self.items = {}  # (folder, uid) -> (header, parsed)
        self.cursors = {}

    def matcher(self, headers):
        return {h.uid: True for h in headers if self.lead in h.all_addrs}

    def recorder(self, fs, items, new_last):
        for header, parsed, _match in items:
            assert (fs.name, header.uid) not in self.items
            self.items[(fs.name, header.uid)] = (header, parsed)
        if new_last is not None:
            self.cursors[fs.name] = new_last


@pytest.fixture(scope="module")
def loaded(dovecot):
    user = new_mail_user(dovecot, prefix="hostile")
    lead = "lead.hostile@client.example"
    good = hostile_mail.good_messages(user.login, lead, 12, date=DATE)
    hostile = hostile_mail.hostile_corpus(user.login, lead, date=DATE)
    order = []
    for index, message in enumerate(hostile):  # interleaved: good, hostile, good, …
        order.append(good[index % len(good)] if index < len(good) else None)
        order.append(message)
    order += good[len(hostile) :]
    places = {}
    for message in filter(None, order):
        when = DATE - dt.timedelta(days=1)
        places[message.name] = (
            message.folder,
            user.append(message.folder, message.raw, flags=(), when=when),
        )
    flags = {folder: dovecot.flags(user.login, folder) for folder in ("INBOX", "Sent")}
    sizes = {m.name: m.size for m in good + hostile}
    return user, lead, good, hostile, places, flags, sizes


@pytest.fixture(scope="module")
def synced(loaded, dovecot):
    user, lead, *_ = loaded
    collect = Collect(lead)
    folders, report = sync_mailbox(
        user.config(),
        None,
        matcher=collect.matcher,
        recorder=collect.recorder,
        limits=LIMITS,
        batch_size=10,
    )
    return collect, report


def _parsed(loaded, synced, name):
    _user, _lead, _good, _hostile, places, *_ = loaded
    collect, _report = synced
    return collect.items.get(places[name])


def test_every_message_read_or_refused(loaded, synced):
    user, lead, good, hostile, places, flags, sizes = loaded
    collect, report = synced
    for message in good:
        header, parsed = collect.items[places[message.name]]
        assert message.checks["body_contains"][0] in (parsed.body or "")
        assert parsed.subject == message.checks["subject"]
    refused = {(e.folder, e.uid): e for e in report.errors}
    for message in hostile:
        place = places[message.name]
        if message.expect == "skipped":
            assert place not in collect.items, message.name
            assert refused[place].kind == message.checks["skip_kind"], message.name
            assert refused[place].header.message_id == message.message_id
        else:
            assert place in collect.items, (message.name, refused.get(place))
    assert set(refused) == {places[m.name] for m in hostile if m.expect == "skipped"}
    # the cursors went past everything, the refused message included
    for folder in ("INBOX", "Sent"):
        assert collect.cursors[folder] == max(uid for f, uid in places.values() if f == folder)
    for folder, before in flags.items():
        assert user.server.flags(user.login, folder) == before  # nothing modified


def test_checks_of_each_hostile_message(loaded, synced):
    _user, lead, _good, hostile, places, *_ = loaded
    for message in hostile:
        if message.expect != "recorded":
            continue
        header, parsed = _parsed(loaded, synced, message.name)
        checks, name = message.checks, message.name
        text = parsed.body or ""
        if "subject" in checks:
            assert parsed.subject == header.subject == checks["subject"], name
        if "subject_prefix" in checks:
            assert parsed.subject.startswith(checks["subject_prefix"]), name
            assert len(parsed.subject) <= checks["subject_max_len"], name
            assert parsed.subject.endswith(checks["subject_ends_with"]), name
            assert header.subject == parsed.subject
        for piece in checks.get("subject_contains", ()):
            assert piece in parsed.subject, name
        if "from_name_without" in checks:
            assert checks["from_name_without"] not in parsed.from_display, name
            assert parsed.from_addr == lead
        for piece in checks.get("body_contains", ()):
            assert piece in text, (name, text[:200])
        for piece in checks.get("body_without", ()):
            assert piece not in text, name
        if "attachment_names" in checks:
            assert [a.filename for a in parsed.attachments] == checks["attachment_names"], name
        for filename, data in checks.get("attachment_bytes", {}).items():
            [att] = [a for a in parsed.attachments if a.filename == filename]
            assert att.data == data, name
        if "omitted" in checks:
            assert [(o.filename, o.reason) for o in parsed.omitted] == [
                (o["filename"], o["reason"]) for o in checks["omitted"]
            ], name
            for expected, omitted in zip(checks["omitted"], parsed.omitted):
                if "size" in expected:  # estimated from the encoded size: within 0.1 %
                    assert abs(omitted.size - expected["size"]) < expected["size"] / 1000
        if checks.get("date") == "internaldate":
            assert parsed.date is None and header.date is None, name
            assert header.internal_date is not None
        if "message_id_max_len" in checks:
            assert len(header.message_id) <= checks["message_id_max_len"]
            assert header.message_id == parsed.message_id
        if "depth" in checks:
            assert not any("nesting" in d for d in parsed.defects), parsed.defects[:3]


def test_the_huge_message_is_never_downloaded(loaded, synced):
    _user, _lead, good, hostile, _places, _flags, sizes = loaded
    _collect, report = synced
    small = sum(
        size for name, size in sizes.items() if name not in ("big_attachment", "huge_message")
    )
    # Only the text parts and MIME headers of the two big ones: a few KB, not 100 MB.
    assert report.bodies_bytes < small + 256 * 1024, (report.bodies_bytes, small)


def test_limits_raised_read_everything(loaded, dovecot):
    """With no limits, the 30 MB attachment is read (part by part, byte-exact) and the 5,000
    parts message is read too."""
    user, lead, _good, hostile, places, *_ = loaded
    by_name = {m.name: m for m in hostile}
    with ImapSession(user.config()) as session:
        for name in ("many_parts", "big_attachment"):
            folder, uid = places[name]
            session.examine(folder)
            collect = Collect(lead)
            from mailsync.sync import read_uids

            seen, matched, report = read_uids(
                session,
                type("F", (), {"name": folder})(),
                [uid],
                matcher=collect.matcher,
                recorder=collect.recorder,
                limits=Limits(max_parts=10000),
            )
            assert seen == matched == {uid} and not report.errors
            [(_header, parsed)] = collect.items.values()
            if name == "many_parts":
                assert len(parsed.attachments) == 4999
            else:
                [att] = parsed.attachments
                raw = by_name[name].raw
                assert att.filename == "big.bin" and len(att.data) == 30 * MB
                # the same bytes the stdlib finds in the raw message
                from mailsync.parse import parse_message

                assert att.data == parse_message(raw).attachments[0].data


def test_large_message_memory(loaded, tmp_path):
    """A 45 MB attachment (60 MB message) read part by part under a 100 MB message limit: peak
    RSS growth at most twice the message size, measured in a fresh process."""
    user, lead, _good, hostile, places, *_ = loaded
    folder, uid = places["huge_message"]
    size = [m.size for m in hostile if m.name == "huge_message"][0]
    script = textwrap.dedent(f"""
        import sys, json

        def hwm():  # VmHWM: this process's peak RSS (ru_maxrss survives exec: the parent's)
            with open("/proc/self/status") as fh:
                return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM"))

        sys.path.insert(0, {ROOT!r})
        from mailsync.session import ImapSession
        from mailsync.sync import read_bodies
        from mailsync.types import Endpoint, Limits, MailboxConfig, SyncReport
        config = MailboxConfig(email={user.login!r}, login={user.login!r},
                               password={user.password!r},
                               imap=Endpoint({user.server.host!r}, {user.server.port}, "none"),
                               allowed_networks="127.0.0.1")
        with ImapSession(config) as session:
            session.examine({folder!r})
            [header] = session.fetch_headers([{uid}])
            base = hwm()
            report = SyncReport()
            [(h, parsed, m)] = read_bodies(session, type("F", (), {{"name": {folder!r}}})(),
                                           [header], {{header.uid: 1}}, report,
                                           Limits(max_message_bytes=100 << 20))
            peak = hwm()
        print(json.dumps([(peak - base) * 1024, [len(a.data) for a in parsed.attachments],
                          session.bodies_bytes]))
    """)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    growth, attachments, downloaded = json.loads(out.stdout)
    assert attachments == [45 * MB]
    assert downloaded >= 0.95 * size
    assert growth <= 2 * size, f"RSS grew {growth / size:.2f}x the message size"
    print(
        f"\n[large message] {size / MB:.1f} MB message read part by part: RSS +"
        f"{growth / MB:.1f} MB ({growth / size:.2f}x)"
    )
