"""Hostile servers (engine level).

One ``HostileServer`` stands where the mailbox's IMAP server should be. For each misbehaviour:
a first sync through the server in ``proxy`` mode (pass-through to the real Dovecot) records part
of the mailbox; then the server turns hostile and ``sync_mailbox`` / ``test_imap`` must end within
the configured timeout with a ``SyncError`` of the right kind; then the server recovers (``proxy``
again: the *same* config reaches the real Dovecot) and the sync resumes from the committed cursor:
every matching message recorded exactly once, nothing lost.
"""

from __future__ import annotations

import email.utils
import time

import pytest

from conftest import new_mail_user
from mailsync.errors import SyncError
from mailsync.session import ImapSession, test_imap
from mailsync.sync import sync_mailbox
from mailsync.testing.hostile import HostileServer
from mailsync.testing.registry import MemoryRegistry
from mailsync.types import Endpoint

TIMEOUT = 2.0
# A single blocked read may take the whole timeout; connect + TLS + teardown add a little.
BOUND = TIMEOUT + 1.5
LEAD = "lead@acme.test"


def _msg(i, to=LEAD, tag="m"):
    return (
        f"From: Sam <sam@crm.test>\r\nTo: {to}\r\nSubject: {tag} {i}\r\n"
        f"Date: {email.utils.formatdate(1718000000 + i * 60)}\r\n"
        f"Message-ID: <{tag}.{i}.{time.time_ns()}@crm.test>\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nBody {i} " + "x" * 3000 + "\r\n"
    ).encode()


@pytest.fixture(scope="module")
def hostile(dovecot):
    fake = [_msg(i, tag="fake") for i in range(1, 4)]
    with HostileServer("proxy", upstream=(dovecot.host, dovecot.port), messages=fake) as server:
        yield server


# mode, variant, security, kind, retryable, fails_in_test_imap
CASES = [
    ("blackhole", None, "none", "timeout", True, True),
    ("blackhole", None, "ssl", "timeout", True, True),  # TLS handshake never answered
    ("greeting_then_silence", None, "none", "timeout", True, True),
    ("half_fetch", None, "none", "dropped", True, False),
    ("proxy_cut", None, "none", "dropped", True, False),  # real Dovecot, cut mid-literal
    ("garbage", None, "none", "protocol", True, True),
    ("bad_cert", None, "ssl", "certificate", False, True),
    ("wrong_host", None, "ssl", "certificate", False, True),
    ("too_many_connections", None, "none", "too_many_connections", True, True),
    ("too_many_connections", "gmail", "none", "too_many_connections", True, True),
    ("over_quota", None, "none", "over_quota", True, False),
    ("over_quota", "gmail", "none", "over_quota", True, True),
    ("throttled", None, "none", "throttled", True, False),
    ("throttled", "unavailable", "none", "throttled", True, True),
]
MODES_TRIED = {_ for _ in map(lambda c: c[:3], CASES)}


def _ids(case):
    mode, variant, security = case[:3]
    return "-".join(x for x in (mode, variant, security if security != "none" else None) if x)


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_hostile_server_then_recovery(case, hostile, dovecot, monkeypatch):
    mode, variant, security, kind, retryable, fails_in_test_imap = case
    user = new_mail_user(dovecot, prefix="hostile")
    matching = [_msg(i) for i in range(1, 5)]
    others = [_msg(i, to="nobody@else.test", tag="other") for i in range(1, 3)]
    user.server.append_many(
        user.login,
        "INBOX",
        [matching[0], others[0], matching[1], matching[2], others[1], matching[3]],
    )
    port = hostile.port
    upstream = (dovecot.host, dovecot.ssl_port if security == "ssl" else dovecot.port)
    cfg = user.config("none", imap=Endpoint(hostile.host, port, security), timeout=TIMEOUT)
    monkeypatch.setenv("MAILSYNC_CAFILE", dovecot.cafile)
    reg = MemoryRegistry(leads={LEAD})

    # 1. healthy: part of the mailbox (quota 2), cursor committed
    hostile.mode, hostile.variant, hostile.upstream, hostile.cut_after = (
        "proxy",
        None,
        upstream,
        None,
    )
    folders, report = sync_mailbox(
        cfg, None, matcher=reg.matcher, recorder=reg.recorder, quota=2, batch_size=2
    )
    assert report.recorded == 2 and report.deferred >= 1
    before = dict(reg.counts)
    user.server.append_many(user.login, "INBOX", [_msg(5), _msg(3, to="x@y.test", tag="o")])

    # 2. hostile
    if mode == "proxy_cut":
        hostile.mode, hostile.cut_after, hostile.cut_on = "proxy", 700, 1
    else:
        hostile.mode, hostile.variant = mode, variant
    if mode == "wrong_host":
        monkeypatch.setenv("MAILSYNC_CAFILE", hostile.cafile)  # trusted, but not for this name
    t0 = time.monotonic()
    with pytest.raises(SyncError) as ei:
        sync_mailbox(cfg, reg.folders(), matcher=reg.matcher, recorder=reg.recorder, batch_size=2)
    elapsed = time.monotonic() - t0
    err = ei.value
    assert elapsed < BOUND, f"{mode}: took {elapsed:.1f}s (timeout {TIMEOUT}s)"
    assert err.kind == kind, (err.kind, err.detail)
    assert err.retryable is retryable
    assert err.fix.strip() and str(err).strip()
    assert err.host == hostile.host and err.port == port
    assert user.password not in err.detail and user.password not in str(err)
    assert reg.counts == before  # nothing half-recorded

    if fails_in_test_imap:
        t0 = time.monotonic()
        with pytest.raises(SyncError) as ei:
            test_imap(cfg)
        assert time.monotonic() - t0 < BOUND
        assert ei.value.kind == kind, (ei.value.kind, ei.value.detail)
    else:
        test_imap(cfg)  # connecting and examining works; only fetching fails

    # 3. recovery: the same config, the server healthy again; resume from the committed cursor
    monkeypatch.setenv("MAILSYNC_CAFILE", dovecot.cafile)
    hostile.mode, hostile.cut_after = "proxy", None
    folders, report = sync_mailbox(
        cfg, reg.folders(), matcher=reg.matcher, recorder=reg.recorder, batch_size=2
    )
    assert not report.errors, report.errors
    expected = _matching_ids(dovecot, user)
    assert len(expected) == 5
    assert reg.recorded() == expected, "lost messages"
    assert not reg.duplicates(), "duplicated messages"
    # Nothing new: a second run records nothing.
    _, again = sync_mailbox(cfg, reg.folders(), matcher=reg.matcher, recorder=reg.recorder)
    assert again.recorded == 0 and not reg.duplicates()


def _matching_ids(dovecot, user):
    from mailsync.parse import parse_headers

    client = dovecot.client(user.login, user.password)
    try:
        out = set()
        for folder in ("INBOX", "Sent"):
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            for uid, row in (client.fetch(uids, ["BODY.PEEK[HEADER]"]) if uids else {}).items():
                h = parse_headers(row[b"BODY[HEADER]"], folder=folder, uid=uid)
                if LEAD in h.all_addrs:
                    out.add(h.message_id)
        return out
    finally:
        client.logout()


def test_half_fetch_session_level(hostile, dovecot):
    """ImapSession on the scripted server: headers come, the body fetch drops the line."""
    user = new_mail_user(dovecot, prefix="hostile")
    hostile.mode = "half_fetch"
    cfg = user.config("none", imap=Endpoint(hostile.host, hostile.port, "none"), timeout=TIMEOUT)
    try:
        with ImapSession(cfg) as s:
            names = [f.name for f in s.discover_folders()]
            assert names == ["INBOX"]
            assert s.examine("INBOX")[0] == 4242
            uids = s.uids_after(0)
            assert uids == [1, 2, 3]
            headers = s.fetch_headers(uids)
            assert [h.uid for h in headers] == [1, 2, 3]
            assert all(h.message_id.startswith("<fake.") for h in headers)
            t0 = time.monotonic()
            with pytest.raises(SyncError) as ei:
                s.fetch_raw([1])
            assert time.monotonic() - t0 < BOUND
            assert ei.value.kind == "dropped" and ei.value.retryable
    finally:
        hostile.mode = "proxy"


def test_no_thread_or_socket_left_behind(hostile):
    """The hostile server itself never blocks a test: stop() returns at once with clients
    still hanging on it."""
    import socket

    with HostileServer("blackhole") as server:
        socks = [socket.create_connection((server.host, server.port)) for _ in range(3)]
        deadline = time.monotonic() + 3
        while server.connections < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.connections == 3
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 4
    for s in socks:
        s.close()
