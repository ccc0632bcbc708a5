"""Odd folder names (engine level): spaces, quotes, odd characters,
non-ASCII (modified UTF-7 on the wire), nested hierarchy, and a Sent folder under a non-English
name marked ``\\Sent`` — discovered and synced, cursors kept per folder."""

from __future__ import annotations

import email.utils
import time

import pytest

import mailsync.testing.dovecot as dovecot_mod
from conftest import new_mail_user
from mailsync.session import ImapSession
from mailsync.sync import sync_mailbox
from mailsync.testing.dovecot import DovecotServer
from mailsync.testing.registry import MemoryRegistry
from mailsync.types import ROLE_INBOX, ROLE_SENT, FolderState

LEAD = "lead@acme.test"
ODD_NAMES = [
    "My Folder",
    'Quote "this" one',
    "100% done [2024] {x} (y) ~#!$'",
    "A&B",
    "&-and-&AOk-literal",  # looks like modified UTF-7, must stay literal
    "Envoyés",
    "Отправленные",
    "送信済み",
    "Clients/ACME & Co/2024 Q1",
    "Clients/Müller GmbH",
    "Clients/Müller GmbH/Угода «2024»",
]


def _msg(tag, to=LEAD):
    return (
        f"From: Sam <sam@crm.test>\r\nTo: {to}\r\nSubject: in {tag}\r\n"
        f"Date: {email.utils.formatdate()}\r\nMessage-ID: <{abs(hash(tag))}.{time.time_ns()}"
        f"@crm.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
    ).encode()


def test_odd_folder_names_sync(dovecot):
    user = new_mail_user(dovecot, prefix="folders")
    for name in ODD_NAMES:
        dovecot.append(user.login, name, _msg(name))
        dovecot.append(user.login, name, _msg(name + " other", to="nobody@else.test"))
    cfg = user.config("none", timeout=10.0)
    with ImapSession(cfg) as s:
        listed = {name for _flags, name in s.list_folders()}
    assert set(ODD_NAMES) <= listed, set(ODD_NAMES) - listed

    reg = MemoryRegistry(leads={LEAD})
    folders = [
        FolderState(
            name, ROLE_SENT if "Envoy" in name or "Отправ" in name or "送信" in name else ROLE_INBOX
        )
        for name in ODD_NAMES
    ]
    folders, report = sync_mailbox(
        cfg, folders, matcher=reg.matcher, recorder=reg.recorder, batch_size=1
    )
    assert not report.errors, [str(e) for e in report.errors]
    assert report.folders == len(ODD_NAMES)
    assert len(reg.counts) == len(ODD_NAMES) and not reg.duplicates()
    assert set(reg.cursors) == set(ODD_NAMES)
    assert all(last == 2 and uidv for _role, uidv, last in reg.cursors.values())

    # Incremental: the per-folder cursors hold, new mail in each folder is found.
    for name in ODD_NAMES:
        dovecot.append(user.login, name, _msg(name + " second"))
    _, report = sync_mailbox(cfg, reg.folders(), matcher=reg.matcher, recorder=reg.recorder)
    assert report.recorded == len(ODD_NAMES) and report.headers_seen == len(ODD_NAMES)
    assert len(reg.counts) == 2 * len(ODD_NAMES) and not reg.duplicates()


class _SentElsewhere(DovecotServer):
    """A private Dovecot whose \\Sent folder is called 'Éléments envoyés' (as in French
    Outlook), with no folder called 'Sent' at all."""

    SPECIAL_USE = (
        ("Éléments envoyés", r"\Sent"),
        ("Brouillons", r"\Drafts"),
        ("Éléments supprimés", r"\Trash"),
    )

    def _write_config(self):
        saved = dovecot_mod.SPECIAL_USE
        dovecot_mod.SPECIAL_USE = tuple((f'"{n}"', use) for n, use in self.SPECIAL_USE)
        try:
            super()._write_config()
        finally:
            dovecot_mod.SPECIAL_USE = saved


@pytest.fixture(scope="module")
def french_dovecot():
    with _SentElsewhere() as server:
        yield server


def test_non_english_sent_folder_discovered_and_synced(french_dovecot):
    user = new_mail_user(french_dovecot, prefix="envoyes")
    sent = "Éléments envoyés"
    french_dovecot.append(user.login, "INBOX", _msg("inbox"))
    french_dovecot.append(user.login, sent, _msg("sent 1"))
    french_dovecot.append(user.login, sent, _msg("sent 2"))
    cfg = user.config("none", timeout=10.0)
    with ImapSession(cfg) as s:
        rows = s.list_folders()
        assert any(name == sent and "\\Sent" in flags for flags, name in rows), rows
        assert not any(name.lower() == "sent" for _f, name in rows)
        discovered = s.discover_folders()
    assert [(f.name, f.role) for f in discovered] == [("INBOX", ROLE_INBOX), (sent, ROLE_SENT)]

    reg = MemoryRegistry(leads={LEAD})
    folders, report = sync_mailbox(cfg, None, matcher=reg.matcher, recorder=reg.recorder)
    assert not report.errors
    assert report.recorded == 3 and len(reg.counts) == 3
    assert reg.cursors[sent][0] == ROLE_SENT and reg.cursors[sent][2] == 2
