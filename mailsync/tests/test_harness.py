"""The test servers themselves work: Dovecot (passwords, XOAUTH2, TLS, UIDVALIDITY) and SMTP."""

from __future__ import annotations

import base64
import datetime as dt
import json
import smtplib
import ssl
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from mailsync.testing.dovecot import DovecotServer
from mailsync.testing.smtp_server import SmtpServer, parse_xoauth2


def _message(subject, sender="ann@customer.test", to="me@example.test", msgid=None):
    msgid = msgid or f"<{subject.replace(' ', '.')}@customer.test>"
    return (
        f"From: Ann <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: {msgid}\r\nDate: Mon, 03 Mar 2025 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Body of {subject}\r\n"
    ).encode()


class _Introspection:
    """A minimal RFC 7662 endpoint: tokens -> emails."""

    def __init__(self, tokens):
        self.tokens = dict(tokens)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                email = owner.tokens.get((form.get("token") or [""])[0])
                body = json.dumps({"active": True, "email": email} if email else {"active": False})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/introspect"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- Dovecot -----------------------------------------------------------------------------------
def test_login_capabilities_and_special_use(mail_user):
    client = mail_user.client()
    try:
        caps = set(client.capabilities())
        assert {b"IDLE", b"UIDPLUS", b"SPECIAL-USE", b"MOVE"} <= caps
        uses = {name: set(flags) for flags, _sep, name in client.list_folders()}
        assert b"\\Sent" in uses["Sent"] and b"\\Drafts" in uses["Drafts"]
        assert b"\\Trash" in uses["Trash"] and b"\\Junk" in uses["Junk"]
        assert b"\\Archive" in uses["Archive"] and "INBOX" in uses
    finally:
        client.logout()


def test_plain_port_offers_starttls_and_ssl_port_verifies(dovecot, mail_user):
    context = ssl.create_default_context(cafile=dovecot.cafile)
    plain = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=10)
    try:
        assert b"STARTTLS" in plain.capabilities()
        plain.starttls(context)
        plain.login(mail_user.login, mail_user.password)
    finally:
        plain.logout()
    secure = IMAPClient(dovecot.host, dovecot.ssl_port, ssl=True, ssl_context=context, timeout=10)
    try:
        secure.login(mail_user.login, mail_user.password)
    finally:
        secure.logout()
    # Without the test CA the certificate is refused.
    with pytest.raises(ssl.SSLError):
        IMAPClient(
            dovecot.host,
            dovecot.ssl_port,
            ssl=True,
            ssl_context=ssl.create_default_context(),
            timeout=10,
        )


def test_append_returns_uids_keeps_flags_and_dates(dovecot, mail_user):
    when = dt.datetime(2025, 3, 3, 10, 0, tzinfo=dt.timezone.utc)
    first = dovecot.append(mail_user.login, "INBOX", _message("one"), flags=[b"\\Seen"], when=when)
    second = dovecot.append(
        mail_user.login, "INBOX", _message("two"), flags=["\\Flagged", "$Label1"]
    )
    assert second > first
    assert dovecot.flags(mail_user.login, "INBOX") == {
        first: ("\\Seen",),
        second: ("\\Flagged", "$Label1"),
    }
    client = mail_user.client()
    try:
        client.select_folder("INBOX", readonly=True)
        data = client.fetch([first], ["INTERNALDATE", "BODY.PEEK[]"])[first]
        assert data[b"INTERNALDATE"].astimezone(dt.timezone.utc) == when
        assert data[b"BODY[]"] == _message("one")
    finally:
        client.logout()


def test_append_creates_missing_folder(dovecot, mail_user):
    uid = dovecot.append(mail_user.login, "Clients/ACME", _message("nested"))
    assert uid == 1
    assert dovecot.create_folder(mail_user.login, "Clients/ACME") == "Clients/ACME"  # idempotent
    assert dovecot.flags(mail_user.login, "Clients/ACME") == {1: ()}


def test_reset_uidvalidity_keeps_messages_with_new_uids(dovecot, mail_user):
    for folder in ("INBOX", "Sent"):
        uids = [
            dovecot.append(
                mail_user.login, folder, _message(f"{folder} {i}"), flags=["\\Seen"] if i else ()
            )
            for i in range(3)
        ]
        before = dovecot.uidvalidity(mail_user.login, folder)
        after = dovecot.reset_uidvalidity(mail_user.login, folder)
        assert after != before and dovecot.uidvalidity(mail_user.login, folder) == after
        flags = dovecot.flags(mail_user.login, folder)
        assert len(flags) == 3 and not set(flags) & set(uids)
        assert sorted(flags.values()) == [(), ("\\Seen",), ("\\Seen",)]
        client = mail_user.client()
        try:
            client.select_folder(folder, readonly=True)
            bodies = client.fetch(sorted(flags), ["BODY.PEEK[]"])
            assert sorted(v[b"BODY[]"] for v in bodies.values()) == sorted(
                _message(f"{folder} {i}") for i in range(3)
            )
        finally:
            client.logout()


def _logged_in_folders(dovecot, login, password=None):
    client = dovecot.client(login, password)
    try:
        return [name for _flags, _sep, name in client.list_folders()]
    finally:
        client.logout()


def test_add_user_at_runtime_and_wrong_password(dovecot):
    login = dovecot.add_user("late.joiner@example.test", "first-pw")
    assert login == "late.joiner@example.test"
    assert "INBOX" in _logged_in_folders(dovecot, login)
    dovecot.add_user(login, "second-pw")  # re-password, effective at once
    with pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
        dovecot.client(login, "first-pw")
    assert "INBOX" in _logged_in_folders(dovecot, login, "second-pw")
    with pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
        dovecot.client("nobody.here@example.test", "x")
    with pytest.raises(ValueError):
        dovecot.add_user("colon@example.test", "a:b")


def test_attached_handle_adds_users_in_another_process(dovecot):
    """What tools/test.sh relies on: a second process attaches via the describe() JSON."""
    info = json.dumps(dovecot.describe())
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[2]);"
        "from mailsync.testing.dovecot import DovecotServer;"
        "d = DovecotServer.attach(json.loads(sys.argv[1]));"
        "d.add_user('attached@example.test', 'pw-attached');"
        "print(d.append('attached@example.test', 'INBOX', b'Subject: x\\r\\n\\r\\ny\\r\\n'))"
    )
    import mailsync

    root = mailsync.__path__[0].rsplit("/", 1)[0]
    out = subprocess.run(
        [sys.executable, "-c", code, info, root], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 1
    assert dovecot.password("attached@example.test") == "pw-attached"
    assert dovecot.flags("attached@example.test", "INBOX")


def test_idle_notices_new_mail(dovecot, mail_user):
    client = mail_user.client()
    try:
        client.select_folder("INBOX")
        client.idle()
        dovecot.append(mail_user.login, "INBOX", _message("while idling"))
        responses = client.idle_check(timeout=15)
        client.idle_done()
        assert any(b"EXISTS" in r for r in responses)
    finally:
        client.logout()


def test_private_dovecot_with_xoauth2():
    introspection = _Introspection({"good-token": "oauth.user@example.test"})
    try:
        with DovecotServer(oauth_introspection_url=introspection.url) as server:
            server.add_user("oauth.user@example.test", "pw-oauth")
            assert b"AUTH=XOAUTH2" in IMAPClient(server.host, server.port, ssl=False).capabilities()
            client = IMAPClient(server.host, server.port, ssl=False, timeout=10)
            client.oauth2_login("oauth.user@example.test", "good-token")
            client.logout()
            for user, token in (
                ("oauth.user@example.test", "bad-token"),
                ("other@example.test", "good-token"),
            ):
                client = IMAPClient(server.host, server.port, ssl=False, timeout=10)
                with pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
                    client.oauth2_login(user, token)
            server.client("oauth.user@example.test").logout()  # passwords still work
            assert "Introspection failed" in server.log_text()
    finally:
        introspection.close()


# ---- SMTP ----------------------------------------------------------------------------------------
def test_smtp_auth_plain_and_login_store_messages(smtp, mail_user):
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as conn:
        conn.login(mail_user.login, mail_user.password)
        conn.sendmail(
            mail_user.login,
            ["lead@customer.test", "cc@customer.test"],
            _message("via smtp", sender=mail_user.login),
        )
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as conn:
        conn.ehlo()
        conn.esmtp_features["auth"] = "LOGIN"
        conn.login(mail_user.login, mail_user.password)
        conn.sendmail(
            mail_user.login, ["lead@customer.test"], _message("login", sender=mail_user.login)
        )
    mine = [m for m in smtp.messages if m.mail_from == mail_user.login]
    assert [m.auth_mechanism for m in mine] == ["PLAIN", "LOGIN"]
    assert mine[0].rcpt_tos == ["lead@customer.test", "cc@customer.test"]
    assert mine[0].auth_user == mail_user.login
    assert mine[0].message["Subject"] == "via smtp"


def test_smtp_wrong_password_is_535(smtp, mail_user):
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as conn:
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            conn.login(mail_user.login, "wrong")
    assert err.value.smtp_code == 535


def test_smtp_tls_port_and_starttls(smtp, mail_user):
    context = ssl.create_default_context(cafile=smtp.cafile)
    with smtplib.SMTP_SSL(smtp.host, smtp.ssl_port, context=context, timeout=10) as conn:
        assert conn.login(mail_user.login, mail_user.password)[0] == 235
        assert conn.sock.getpeercert()  # verified against the test CA
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as conn:
        conn.ehlo()
        assert conn.has_extn("starttls") and not isinstance(conn.sock, ssl.SSLSocket)
        assert conn.starttls(context=context)[0] == 220
        assert isinstance(conn.sock, ssl.SSLSocket)
        assert conn.login(mail_user.login, mail_user.password)[0] == 235


def test_smtp_xoauth2_accept_and_reject():
    tokens = {"tok-ok": "rep@example.test"}
    with SmtpServer(token_validator=tokens.get) as server:
        with smtplib.SMTP(server.host, server.port, timeout=10) as conn:
            conn.ehlo()
            assert "XOAUTH2" in conn.esmtp_features["auth"]
            blob = base64.b64encode(b"user=rep@example.test\x01auth=Bearer tok-ok\x01\x01").decode()
            assert conn.docmd("AUTH", "XOAUTH2 " + blob)[0] == 235
            conn.sendmail("rep@example.test", ["x@customer.test"], _message("oauth"))
        [received] = server.messages
        assert (received.auth_user, received.auth_mechanism) == ("rep@example.test", "XOAUTH2")
        for user, token in (("rep@example.test", "tok-bad"), ("other@example.test", "tok-ok")):
            with smtplib.SMTP(server.host, server.port, timeout=10) as conn:
                conn.ehlo()
                code, challenge = conn.docmd(
                    "AUTH",
                    "XOAUTH2 "
                    + base64.b64encode(
                        f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
                    ).decode(),
                )
                assert code == 334 and json.loads(base64.b64decode(challenge))["status"] == "401"
                assert conn.docmd("")[0] == 535
        with smtplib.SMTP(server.host, server.port, timeout=10) as conn:
            conn.ehlo()
            with pytest.raises(smtplib.SMTPAuthenticationError):
                conn.auth(
                    "XOAUTH2",
                    lambda challenge=None: (
                        "" if challenge else "user=rep@example.test\x01auth=Bearer nope\x01\x01"
                    ),
                )


def test_smtp_spool_is_shared_with_attached_handles():
    with SmtpServer(users={"a@example.test": "pw"}) as server:
        other = SmtpServer.attach(server.describe())
        other.add_user("b@example.test", "pw-b")
        with smtplib.SMTP(server.host, server.port, timeout=10) as conn:
            conn.login("b@example.test", "pw-b")
            conn.sendmail("b@example.test", ["c@customer.test"], _message("spooled"))
        assert [m.message["Subject"] for m in other.messages] == ["spooled"]
        other.clear()
        assert server.messages == []
        other.stop()  # an attached handle never stops the real server
        with smtplib.SMTP(server.host, server.port, timeout=10) as conn:
            conn.noop()


def test_parse_xoauth2():
    assert parse_xoauth2(b"user=a@b\x01auth=Bearer T\x01\x01") == ("a@b", "T")
    assert parse_xoauth2(b"garbage") == (None, None)


# ---- tools/odoo_log_check.py (the Odoo layer's verdict) ---------------------------------------
def _log_check():
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "odoo_log_check.py")
    spec = importlib.util.spec_from_file_location("odoo_log_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _odoo_line(level, logger, msg, db="crm_mail_sync_test_1_2"):
    return f"2025-05-06 10:00:00,000 123 {level} {db} {logger}: {msg}"


def test_odoo_log_check_counts_results_errors_and_loading_warnings():
    check = _log_check().check
    ok = "\n".join(
        [
            "Running as user 'root' is a security risk.",
            _odoo_line("INFO", "odoo.modules.loading", "Loading module crm_mail_sync (80/80)"),
            _odoo_line("INFO", "odoo.modules.loading", "Module crm_mail_sync loaded in 1.00s"),
            _odoo_line(
                "WARNING",
                "odoo.addons.crm_mail_sync.models.mail_sync_mailbox",
                "sync of x failed: refused",
            ),  # the addon's own runtime warning: fine
            _odoo_line(
                "INFO",
                "odoo.tests.result",
                "0 failed, 0 error(s) of 12 tests when loading database 'crm_mail_sync_test_1_2'",
            ),
        ]
    )
    assert check(ok, 0)[:2] == (12, 0)
    assert check(ok, 1)[:2] == (12, 1)  # a non-zero exit code alone fails

    loading = ok.replace(
        _odoo_line("INFO", "odoo.modules.loading", "Module crm_mail_sync loaded in 1.00s"),
        _odoo_line(
            "WARNING",
            "odoo.addons.base.models.ir_model",
            "The models ['mail.sync.x'] have no access rules",
        )
        + "\n"
        + _odoo_line("INFO", "odoo.modules.loading", "Module crm_mail_sync loaded in 1.00s"),
    )
    asset = (
        ok
        + "\n"
        + _odoo_line(
            "WARNING",
            "odoo.addons.base.models.ir_asset",
            'IrAsset: the path "crm_mail_sync/static/src/**/*" did not resolve',
        )
    )
    for text in (loading, asset, asset + "\n" + asset.splitlines()[-1]):
        passed, failed, problems = check(text, 0)
        assert (passed, failed) == (12, 1), problems

    failing = (
        ok.replace("0 failed, 0 error(s) of 12", "2 failed, 1 error(s) of 12")
        + "\n"
        + _odoo_line("ERROR", "odoo.addons.crm_mail_sync.tests.test_x", "FAIL: TestX.test_y")
    )
    assert check(failing, 1)[:2] == (9, 3)
    stray_error = ok + "\n" + _odoo_line("ERROR", "odoo.sql_db", "bad query")
    assert check(stray_error, 0)[:2] == (12, 1)
    assert check(ok.rsplit("\n", 1)[0], 0)[1] == 1  # no result line
