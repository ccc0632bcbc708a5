"""Error classification on real exceptions (sockets, TLS, imaplib, smtplib) and server words."""

import base64
import imaplib
import pickle
import smtplib
import socket
import ssl

import pytest
from imapclient.exceptions import LoginError

from mailsync import errors
from mailsync.errors import AUTH_FAILED_TEXT, KINDS, SyncError, classify, fix_for, redact
from mailsync.testing import closed_port


def _raised(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return e
    raise AssertionError("did not raise")


def test_dns_error_from_a_real_lookup():
    exc = _raised(lambda: socket.getaddrinfo("no-such-host.invalid", 993))
    err = classify(exc, host="no-such-host.invalid", port=993)
    assert err.kind == "dns" and err.retryable
    assert "no-such-host.invalid:993" in str(err)


def test_refused_from_a_real_closed_port():
    port = closed_port()
    exc = _raised(lambda: socket.create_connection(("127.0.0.1", port), timeout=2))
    err = classify(exc, host="127.0.0.1", port=port)
    assert err.kind == "refused"
    assert f"127.0.0.1:{port}" in str(err)


def test_timeout_from_a_silent_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    try:
        c = socket.create_connection(srv.getsockname(), timeout=0.2)
        exc = _raised(lambda: c.recv(10))
        c.close()
    finally:
        srv.close()
    assert classify(exc, host="h", port=1).kind == "timeout"


def test_certificate_and_tls_errors():
    cert = ssl.SSLCertVerificationError(1, "certificate verify failed: self signed certificate")
    assert classify(cert, host="mail.x", port=993).kind == "certificate"
    assert "mail.x:993" in str(classify(cert, host="mail.x", port=993))
    assert classify(ssl.SSLError(1, "wrong version number")).kind == "tls"
    assert classify(imaplib.IMAP4.abort("TLS not supported by server")).kind == "tls"


@pytest.mark.parametrize(
    "text,kind",
    [
        ("[AUTHENTICATIONFAILED] Authentication failed.", "auth"),
        (
            "[ALERT] Application-specific password required: https://support.google.com/accounts/"
            "answer/185833 (Failure)",
            "app_password",
        ),
        (
            "[ALERT] Please log in via your web browser: https://support.google.com/mail/accounts/"
            "answer/78754 (Failure)",
            "app_password",
        ),
        (
            "[ALERT] Your account is not enabled for IMAP use. "
            "Please visit your Gmail settings page "
            "and enable your account for IMAP access. (Failure)",
            "imap_disabled",
        ),
        ("LOGIN => AUTHENTICATE failed.", "auth"),
    ],
)
def test_login_errors(text, kind):
    err = classify(LoginError(text), provider="gmail")
    assert err.kind == kind
    assert not err.retryable


def test_auth_message_is_the_product_text_and_fixes_are_concrete():
    err = classify(LoginError("[AUTHENTICATIONFAILED] Authentication failed."), provider="gmail")
    assert str(err) == AUTH_FAILED_TEXT == "Authentication failed. Please try again."
    assert "app password" in err.fix and "Connect with Google" in err.fix
    assert "IMAP" in fix_for("auth", "gmail")
    assert "Outlook" in fix_for("auth", "outlook")
    assert fix_for("auth") != fix_for("auth", "gmail")
    for kind in KINDS:
        for provider in errors.PROVIDERS:
            assert fix_for(kind, provider)


@pytest.mark.parametrize(
    "text,kind",
    [
        ("select failed: [OVERQUOTA] Quota exceeded (mailbox for user is full)", "over_quota"),
        ("[LIMIT] Too many simultaneous connections.", "too_many_connections"),
        ("Too many simultaneous connections. (Failure)", "too_many_connections"),
        ("[THROTTLED] Account exceeded command or bandwidth limits.", "throttled"),
        ("[UNAVAILABLE] Temporary authentication failure.", "throttled"),
        ("Server busy, try again later", "throttled"),
        ("select failed: [NONEXISTENT] Mailbox doesn't exist: Sent", "folder_missing"),
        ("fetch failed: [TOOBIG] message too large", "message_too_large"),
        ("Unknown command FROB", "protocol"),
    ],
)
def test_imap_server_words(text, kind):
    assert classify(imaplib.IMAP4.error(text)).kind == kind


def test_dropped_and_garbage():
    assert classify(imaplib.IMAP4.abort("socket error: EOF")).kind == "dropped"
    assert classify(EOFError()).kind == "dropped"
    assert classify(ConnectionResetError(104, "reset")).kind == "dropped"
    assert classify(imaplib.IMAP4.abort("unexpected response: b'HTTP/1.1 400'")).kind == "protocol"
    assert classify(imaplib.IMAP4.abort("command: FETCH => timed out")).kind == "timeout"
    assert classify(imaplib.IMAP4.error("server not IMAP4 compliant")).kind == "protocol"
    assert classify(RuntimeError("weird")).kind == "unknown"


def test_smtp_errors():
    assert (
        classify(
            smtplib.SMTPAuthenticationError(535, b"5.7.8 Username and Password not accepted")
        ).kind
        == "auth"
    )
    assert (
        classify(
            smtplib.SMTPAuthenticationError(534, b"5.7.9 Application-specific password required")
        ).kind
        == "app_password"
    )
    assert (
        classify(smtplib.SMTPDataError(550, b"5.4.5 Daily user sending limit exceeded")).kind
        == "over_quota"
    )
    assert (
        classify(smtplib.SMTPServerDisconnected("Connection unexpectedly closed")).kind == "dropped"
    )
    assert (
        classify(smtplib.SMTPServerDisconnected("Connection unexpectedly closed: timed out")).kind
        == "timeout"
    )
    assert (
        classify(smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")).kind
        == "config"
    )
    assert (
        classify(smtplib.SMTPResponseException(421, b"4.7.0 Try again later")).kind == "throttled"
    )


def test_smtp_refusals_of_one_mail():
    """A refused recipient, a refused DATA and a 554 are about this mail, not a connection;
    a 554 when connecting is a refused connection."""
    refused = smtplib.SMTPRecipientsRefused(
        {
            "nobody@acme.example": (
                550,
                b"5.1.1 <nobody@acme.example>: Recipient address rejected: User unknown",
            )
        }
    )
    err = classify(refused, host="smtp.x", port=587)
    assert err.kind == "rejected" and not err.retryable
    assert "nobody@acme.example: 550 5.1.1" in err.detail
    assert (
        classify(
            smtplib.SMTPRecipientsRefused(
                {"a@b.c": (550, b"5.2.2 The email account that you tried to reach is over quota")}
            )
        ).kind
        == "rejected"
    )  # the recipient's mailbox is full, not the sender's quota
    assert (
        classify(
            smtplib.SMTPRecipientsRefused(
                {"a@b.c": (550, b"5.4.5 Daily user sending limit exceeded")}
            )
        ).kind
        == "over_quota"
    )
    assert (
        classify(smtplib.SMTPDataError(554, b"5.7.1 Message rejected as spam")).kind == "rejected"
    )
    assert (
        classify(smtplib.SMTPDataError(451, b"4.3.0 Local error in processing")).kind == "rejected"
    )
    assert (
        classify(
            smtplib.SMTPSenderRefused(552, b"5.3.4 Message size exceeds fixed limit", "me@x")
        ).kind
        == "message_too_large"
    )
    assert classify(smtplib.SMTPConnectError(554, b"No SMTP service here")).kind == "refused"
    assert (
        str(SyncError("rejected", host="smtp.x", port=587))
        == "The mail server did not accept this email or its recipients (smtp.x:587)."
    )


def test_oauth_revoked_by_name_and_words():
    class RefreshError(Exception):
        pass

    assert (
        classify(RefreshError("invalid_grant: Token has been expired or revoked.")).kind
        == "oauth_revoked"
    )


def test_classify_is_idempotent_and_fills_host():
    err = SyncError("timeout", "x")
    again = classify(err, host="h", port=5, provider="gmail")
    assert again is err and err.host == "h" and err.port == 5 and err.provider == "gmail"
    assert "h:5" in str(err)


def test_unknown_kind_becomes_unknown_and_pickles():
    err = SyncError("nonsense", "d", host="h", port=1, uid=7, folder="INBOX")
    assert err.kind == "unknown"
    back = pickle.loads(pickle.dumps(err))
    assert (back.kind, back.detail, back.host, back.port, back.uid) == ("unknown", "d", "h", 1, 7)


def test_messages_name_host_and_port():
    for kind in ("dns", "refused", "tls", "certificate", "timeout"):
        assert "imap.example.com:993" in str(SyncError(kind, host="imap.example.com", port=993))


def test_redact_plain_base64_and_sasl_blobs():
    pw, token = "s3cr3t-P@ss", "ya29.a0AfH6SMBxyz1234567890"
    sasl = base64.b64encode(f"user=a@b.c\1auth=Bearer {token}\1\1".encode()).decode()
    plain = base64.b64encode(f"\0a@b.c\0{pw}".encode()).decode()
    text = (
        f"LOGIN a@b.c {pw} then {base64.b64encode(pw.encode()).decode()} "
        f"AUTHENTICATE XOAUTH2 {sasl} PLAIN {plain} token={token}"
    )
    out = redact(text, [pw, token, None, ""])
    assert pw not in out and token not in out and sasl not in out and plain not in out
    assert base64.b64encode(pw.encode()).decode() not in out
    assert "LOGIN a@b.c" in out
    assert redact("nothing here", []) == "nothing here"


def test_classify_removes_secrets_from_detail():
    err = classify(imaplib.IMAP4.error("LOGIN a hunter22 failed"), secrets=["hunter22"])
    assert "hunter22" not in err.detail and "hunter22" not in repr(err)


def test_translate_a_catalogue_message_followed_by_the_servers_words():
    """A skipped message's reason is "<catalogue message> <detail>": the message is translated,
    the server's words stay as they are; a hostile text with braces or % is left alone."""
    message = "A message could not be read."
    assert message in errors._PLAIN_TEXTS

    def french(text):
        return {message: "Un message n'a pas pu être lu."}.get(text, text)

    assert (
        errors.translate(f"{message} ParseError: bad header {{0}} %s", french)
        == "Un message n'a pas pu être lu. ParseError: bad header {0} %s"
    )
    assert errors.translate("{where} %(x)s {0}", french) == "{where} %(x)s {0}"


def test_a_broken_translation_falls_back_to_english():
    """A .po entry with a placeholder the template does not have never breaks a read."""
    line = errors.translate(
        str(SyncError("folder_missing", folder="Archive")), lambda text: "{where.x} {nope}"
    )
    assert "Archive" in line
