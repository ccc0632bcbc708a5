"""XOAUTH2 for real: tokens from the loopback OAuth server, checked by a private Dovecot
(oauth2 passdb, RFC 7662 introspection) and by the loopback SMTP server."""

import smtplib

import pytest
import requests
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from mailsync import oauth
from mailsync.errors import classify
from mailsync.testing.dovecot import DovecotServer
from mailsync.testing.oauth_server import OAuthServer

ALICE = "alice@oauth.test"
BOB = "bob@oauth.test"


@pytest.fixture(scope="module")
def oauth_server():
    with OAuthServer(account=ALICE) as srv:
        yield srv


@pytest.fixture(scope="module")
def dovecot(oauth_server):
    with DovecotServer(oauth_introspection_url=oauth_server.introspection_url) as dc:
        # the oauth2 passdb authenticates; the userdb must still know the user
        dc.add_user(ALICE, "alice-password")
        dc.add_user(BOB, "bob-password")
        dc.append(
            ALICE,
            "INBOX",
            b"From: carol@example.test\r\nTo: alice@oauth.test\r\n"
            b"Subject: hello over oauth\r\nMessage-ID: <x1@example.test>\r\n"
            b"\r\nbody\r\n",
        )
        yield dc


@pytest.fixture
def server(oauth_server):
    oauth_server.set_account(ALICE)
    oauth_server.rotate_refresh_tokens = False
    oauth_server.access_token_lifetime = 3600
    yield oauth_server


def connect_via_consent(server, account):
    """The full code flow, as the addon runs it: consent URL, redirect, code exchange."""
    server.set_account(account)
    url, verifier = oauth.authorization_url(
        "google",
        server.client_id,
        server.client_secret,
        server.callback_url,
        "st",
        server.endpoints(),
    )
    answer = requests.get(url, timeout=10).json()
    return oauth.exchange_code(
        "google",
        server.client_id,
        server.client_secret,
        server.callback_url,
        answer["code"],
        verifier,
        server.endpoints(),
    )


def imap_oauth_login(dovecot, user, token):
    client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=15)
    try:
        client.oauth2_login(user, token)
    except Exception:
        client.shutdown()
        raise
    return client


def assert_auth_failed(dovecot, user, token):
    with pytest.raises(LoginError) as info:
        imap_oauth_login(dovecot, user, token)
    assert "AUTHENTICATIONFAILED" in str(info.value)
    assert classify(info.value, host=dovecot.host, port=dovecot.port).kind == "auth"


def test_valid_token_logs_in_and_reads(server, dovecot):
    tokens = connect_via_consent(server, ALICE)
    assert tokens.email == ALICE
    before = server.calls["introspect"]
    client = imap_oauth_login(dovecot, tokens.email, tokens.access_token)
    try:
        info = client.select_folder("INBOX", readonly=True)
        assert info[b"EXISTS"] == 1
        uids = client.search(["ALL"])
        data = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
        assert b"hello over oauth" in next(iter(data.values()))[b"BODY[HEADER.FIELDS (SUBJECT)]"]
    finally:
        client.logout()
    assert server.calls["introspect"] == before + 1  # Dovecot asked the OAuth server


def test_oauthbearer_capability_and_passwords_still_work(server, dovecot):
    client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=15)
    try:
        caps = client.capabilities()
        assert b"AUTH=XOAUTH2" in caps and b"AUTH=OAUTHBEARER" in caps
        client.login(BOB, "bob-password")
    finally:
        client.logout()


def test_refreshed_token_logs_in_and_old_expired_one_fails(server, dovecot):
    tokens = connect_via_consent(server, ALICE)
    server.expire_all_access_tokens()
    assert_auth_failed(dovecot, ALICE, tokens.access_token)
    renewed = oauth.refresh(
        "google", server.client_id, server.client_secret, tokens.refresh_token, server.endpoints()
    )
    imap_oauth_login(dovecot, ALICE, renewed.access_token).logout()


def test_rotated_refresh_token_chain_logs_in(server, dovecot):
    server.rotate_refresh_tokens = True
    tokens = connect_via_consent(server, ALICE)
    renewed = oauth.refresh(
        "google", server.client_id, server.client_secret, tokens.refresh_token, server.endpoints()
    )
    assert renewed.refresh_token != tokens.refresh_token
    imap_oauth_login(dovecot, ALICE, renewed.access_token).logout()


def test_token_with_short_lifetime_expires(server, dovecot):
    server.access_token_lifetime = 0
    issued = server.issue_tokens(ALICE)
    assert_auth_failed(dovecot, ALICE, issued["access_token"])


def test_revoked_token_fails_at_next_login(server, dovecot):
    tokens = connect_via_consent(server, ALICE)
    imap_oauth_login(dovecot, ALICE, tokens.access_token).logout()
    server.revoke(tokens.refresh_token)
    assert_auth_failed(dovecot, ALICE, tokens.access_token)  # no auth cache in Dovecot


def test_other_users_token_fails(server, dovecot):
    bob = connect_via_consent(server, BOB)
    imap_oauth_login(dovecot, BOB, bob.access_token).logout()
    assert_auth_failed(dovecot, ALICE, bob.access_token)


def test_forged_token_fails(server, dovecot):
    assert_auth_failed(dovecot, ALICE, "ya29.forged-token")


def test_smtp_xoauth2_against_the_same_tokens(server):
    smtp_mod = pytest.importorskip("mailsync.testing.smtp_server")
    with smtp_mod.SmtpServer(token_validator=server.validate) as smtp:
        tokens = connect_via_consent(server, ALICE)
        with smtplib.SMTP(smtp.host, smtp.port, timeout=15) as conn:
            conn.ehlo()
            code, _ = conn.docmd("AUTH", "XOAUTH2 " + oauth.xoauth2_b64(ALICE, tokens.access_token))
            assert code == 235
        server.expire_all_access_tokens()
        with smtplib.SMTP(smtp.host, smtp.port, timeout=15) as conn:
            conn.ehlo()
            code, _ = conn.docmd("AUTH", "XOAUTH2 " + oauth.xoauth2_b64(ALICE, tokens.access_token))
            if code == 334:  # the JSON error challenge; the client answers with an empty line
                code, _ = conn.docmd("")
            assert code == 535
