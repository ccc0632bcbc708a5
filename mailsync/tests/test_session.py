"""ImapSession / test_imap / test_smtp against the private Dovecot and SMTP servers."""

import socket
import ssl
import threading
import time

import pytest

from mailsync import session as imap
from mailsync.errors import AUTH_FAILED_TEXT, SyncError
from mailsync.session import ImapSession, pick_folders
from mailsync.types import Endpoint
from mailsync.testing import closed_port, corpus


def _kind(fn):
    with pytest.raises(SyncError) as info:
        fn()
    return info.value


@pytest.fixture
def silent_port():
    """A socket that accepts connections (kernel backlog) but never says a word."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    yield srv.getsockname()[1]
    srv.close()


@pytest.fixture
def dead_port():
    return closed_port()


@pytest.mark.parametrize("security", ["none", "starttls", "ssl"])
def test_connect_every_security(mail_user, dovecot, security):
    cfg = mail_user.config(security)
    imap.test_imap(cfg, cafile=dovecot.cafile)
    with ImapSession(cfg, cafile=dovecot.cafile) as s:
        assert "IMAP4REV1" in s.capabilities and not s.is_gmail
        assert [(f.name, f.role) for f in s.discover_folders()] == [
            ("INBOX", "inbox"),
            ("Sent", "sent"),
        ]


def test_cafile_from_environment(mail_user, dovecot, monkeypatch):
    monkeypatch.delenv("MAILSYNC_CAFILE", raising=False)
    assert _kind(lambda: imap.test_imap(mail_user.config("ssl"))).kind == "certificate"
    monkeypatch.setenv("MAILSYNC_CAFILE", dovecot.cafile)
    imap.test_imap(mail_user.config("ssl"))  # the environment's CA is trusted
    with ImapSession(mail_user.config("ssl")) as s:
        assert isinstance(s.client.socket(), ssl.SSLSocket)
        assert "IMAP4REV1" in s.capabilities


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_untrusted_certificate_is_refused(mail_user, security):
    err = _kind(lambda: imap.test_imap(mail_user.config(security)))
    assert err.kind == "certificate" and not err.retryable
    assert str(err.port) in str(err)


def test_plain_imap_only_to_loopback(mail_user):
    cfg = mail_user.config("none", imap=Endpoint("imap.example.com", 143, "none"))
    err = _kind(lambda: imap.test_imap(cfg))
    assert err.kind == "config"
    assert imap.is_loopback("127.0.0.1") and imap.is_loopback("::1")
    assert imap.is_loopback("localhost") and not imap.is_loopback("10.0.0.1")


def test_wrong_password_is_auth_with_product_text(mail_user):
    cfg = mail_user.config("none", password="wrong-password-xyz", provider="gmail")
    err = _kind(lambda: imap.test_imap(cfg))
    assert err.kind == "auth" and str(err) == AUTH_FAILED_TEXT
    assert "app password" in err.fix
    assert "wrong-password-xyz" not in err.detail + repr(err) + str(err)


def test_dead_port_is_refused_quickly(mail_user, dead_port):
    cfg = mail_user.config("none", imap=Endpoint("127.0.0.1", dead_port, "none"), timeout=2)
    t = time.monotonic()
    err = _kind(lambda: imap.test_imap(cfg))
    assert err.kind == "refused" and time.monotonic() - t < 2
    assert f"127.0.0.1:{dead_port}" in str(err)


@pytest.mark.parametrize("security", ["none", "ssl", "starttls"])
def test_silent_server_times_out_within_timeout(mail_user, silent_port, security):
    cfg = mail_user.config(security, imap=Endpoint("127.0.0.1", silent_port, security), timeout=1.0)
    t = time.monotonic()
    err = _kind(lambda: imap.test_imap(cfg))
    assert err.kind == "timeout" and err.retryable
    assert time.monotonic() - t < 3.0
    assert f"127.0.0.1:{silent_port}" in str(err)


def test_unknown_host_is_dns(mail_user):
    cfg = mail_user.config("ssl", imap=Endpoint("no-such-host.invalid", 993, "ssl"), timeout=5)
    assert _kind(lambda: imap.test_imap(cfg)).kind == "dns"


def test_garbage_server_is_protocol(mail_user):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def answer():
        conn, _ = srv.accept()
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        time.sleep(0.5)
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    cfg = mail_user.config(
        "none", imap=Endpoint("127.0.0.1", srv.getsockname()[1], "none"), timeout=3
    )
    try:
        assert _kind(lambda: imap.test_imap(cfg)).kind == "protocol"
    finally:
        srv.close()


def test_pick_folders_special_use_fallbacks_and_gmail():
    rows = [((r"\HasNoChildren",), "INBOX"), ((r"\HasNoChildren",), "Sent Items")]
    assert [f.name for f in pick_folders(rows)] == ["INBOX", "Sent Items"]
    rows = [((), "INBOX"), ((), "INBOX.Sent"), ((r"\Noselect",), "[Gmail]")]
    assert [f.name for f in pick_folders(rows)] == ["INBOX", "INBOX.Sent"]
    rows = [((), "INBOX"), ((r"\Sent",), "Gesendete Objekte"), ((), "Sent")]
    assert [(f.name, f.role) for f in pick_folders(rows)] == [
        ("INBOX", "inbox"),
        ("Gesendete Objekte", "sent"),
    ]
    gmail = [
        ((), "INBOX"),
        ((r"\Noselect",), "[Gmail]"),
        ((r"\All",), "[Gmail]/All Mail"),
        ((r"\Sent",), "[Gmail]/Sent Mail"),
    ]
    assert [(f.name, f.role) for f in pick_folders(gmail, gmail=True)] == [
        ("[Gmail]/All Mail", "all")
    ]
    assert [f.name for f in pick_folders(gmail)] == ["INBOX", "[Gmail]/Sent Mail"]
    assert [f.name for f in pick_folders([((), "INBOX")])] == ["INBOX"]


def test_examine_missing_folder(mail_user):
    with ImapSession(mail_user.config()) as s:
        err = _kind(lambda: s.examine("Does Not Exist"))
    assert err.kind == "folder_missing" and err.folder == "Does Not Exist"


def test_headers_are_cheap_and_bodies_exact_and_flags_untouched(mail_user, dovecot):
    msgs = corpus.generate(21, mail_user.email, ["ann@client.org"], 12, big_every=4)
    uids = [
        mail_user.append("INBOX", m.raw, flags=(r"\Seen",) if i % 2 else ())
        for i, m in enumerate(msgs)
    ]
    before = dovecot.flags(mail_user.login, "INBOX")
    with ImapSession(mail_user.config()) as s:
        validity, uidnext = s.examine("INBOX")
        assert validity == dovecot.uidvalidity(mail_user.login, "INBOX")
        assert uidnext == max(uids) + 1
        assert s.uids_after(0) == uids and s.uids_after(uids[5]) == uids[6:]
        assert s.uids_after(max(uids)) == []  # "n:*" quirk: never the last UID again
        headers = s.fetch_headers(uids)
        assert s.bodies_bytes == 0
        assert s.headers_bytes / len(uids) < 4096
        assert [h.uid for h in headers] == uids
        for h, m in zip(headers, msgs):
            assert h.message_id == m.message_id and h.size == len(m.raw)
            assert set(h.all_addrs) == set(m.addrs) and h.subject == m.subject
        assert (r"\Seen" in headers[1].flags) and (r"\Seen" not in headers[0].flags)
        raws = s.fetch_raw(uids)
        assert [raws[u] for u in uids] == [m.raw for m in msgs]
        assert s.bodies_bytes >= sum(len(m.raw) for m in msgs)
    assert dovecot.flags(mail_user.login, "INBOX") == before


def test_uids_since(mail_user):
    import datetime as dt

    old = mail_user.append(
        "INBOX",
        corpus.generate(1, mail_user.email, ["a@b.org"], 1)[0].raw,
        when=dt.datetime(2020, 1, 1, 12, tzinfo=dt.timezone.utc),
    )
    new = mail_user.append("INBOX", corpus.generate(2, mail_user.email, ["a@b.org"], 1)[0].raw)
    with ImapSession(mail_user.config()) as s:
        s.examine("INBOX")
        assert s.uids_since(dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc)) == [new]
        assert s.uids_since(dt.date(2019, 1, 1)) == [old, new]


def test_session_errors_after_the_connection_dies(mail_user):
    s = ImapSession(mail_user.config())
    s.connect()
    s.examine("INBOX")
    s.client.socket().shutdown(socket.SHUT_RDWR)
    err = _kind(lambda: s.uids_after(0))
    assert err.kind in ("dropped", "protocol") and err.retryable
    s.close()
    assert _kind(lambda: s.uids_after(0)).kind == "config"


@pytest.mark.parametrize("security", ["none", "starttls", "ssl"])
def test_smtp_login(mail_user, smtp, security):
    cfg = mail_user.config(security)
    imap.test_smtp(cfg, cafile=smtp.cafile)
    with imap.smtp_connection(cfg, cafile=smtp.cafile) as conn:
        assert isinstance(conn.sock, ssl.SSLSocket) == (security != "none")
        assert conn.noop()[0] == 250  # logged in: the session is usable


def test_smtp_wrong_password_and_dead_port(mail_user, smtp, dead_port):
    err = _kind(lambda: imap.test_smtp(mail_user.config("none", password="nope-nope")))
    assert err.kind == "auth" and str(err) == AUTH_FAILED_TEXT and "nope-nope" not in err.detail
    cfg = mail_user.config("none", smtp=Endpoint("127.0.0.1", dead_port, "none"))
    assert _kind(lambda: imap.test_smtp(cfg)).kind == "refused"
    err = _kind(lambda: imap.test_smtp(mail_user.config("ssl")))
    assert err.kind == "certificate"
    assert _kind(lambda: imap.test_smtp(mail_user.config("none", smtp=None))).kind == "config"


def test_smtp_silent_server_times_out(mail_user, silent_port):
    cfg = mail_user.config("none", smtp=Endpoint("127.0.0.1", silent_port, "none"), timeout=1)
    t = time.monotonic()
    assert _kind(lambda: imap.test_smtp(cfg)).kind == "timeout"
    assert time.monotonic() - t < 3


def test_smtp_xoauth2_checks_the_reply(mail_user):
    from mailsync.testing.smtp_server import SmtpServer

    tokens = {"good-token": mail_user.login}
    with SmtpServer(token_validator=tokens.get) as srv:

        def cfg(token):
            return mail_user.config(
                "none", password=None, access_token=token, smtp=Endpoint(srv.host, srv.port, "none")
            )

        imap.test_smtp(cfg("good-token"))
        err = _kind(lambda: imap.test_smtp(cfg("revoked-token")))
        assert err.kind == "auth" and "revoked-token" not in err.detail + repr(err)
        imap.test_smtp(
            mail_user.config(
                "starttls",
                password=None,
                access_token="good-token",
                smtp=Endpoint(srv.host, srv.port, "starttls"),
            ),
            cafile=srv.cafile,
        )


def test_imap_xoauth2_session_and_sync():
    """ImapSession logs in with config.access_token (XOAUTH2) against Dovecot's oauth2 passdb."""
    from mailsync.sync import sync_mailbox
    from mailsync.testing.dovecot import DovecotServer
    from mailsync.testing.oauth_server import OAuthServer
    from mailsync.types import MailboxConfig

    who = "olga@oauth.test"
    with (
        OAuthServer(account=who) as oauth,
        DovecotServer(oauth_introspection_url=oauth.introspection_url) as dc,
    ):
        dc.add_user(who, "unused-password")
        msg = corpus.generate(1, who, ["ann@client.org"], 1, malformed_ratio=0)[0]
        dc.append(who, "INBOX", msg.raw)
        token = oauth.issue_tokens(who)["access_token"]
        cfg = MailboxConfig(
            email=who,
            imap=Endpoint(dc.host, dc.port, "none"),
            login=who,
            access_token=token,
            provider="gmail",
            timeout=10,
            allowed_networks="127.0.0.1",
        )
        imap.test_imap(cfg)
        got = []
        sync_mailbox(
            cfg,
            None,
            matcher=lambda hs: {h.uid: 1 for h in hs},
            recorder=lambda fs, items, last: got.extend(items),
        )
        assert [p.message_id for _, p, _ in got] == [msg.message_id]
        oauth.revoke(who)
        err = _kind(lambda: imap.test_imap(cfg))
        assert err.kind == "auth" and token not in err.detail + repr(err)
        assert "Connect with Google" in err.fix
