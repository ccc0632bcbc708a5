"""mailsync.oauth against the loopback OAuth server: real HTTP exchanges, nothing patched."""

import base64
import datetime as dt
import os
import urllib.parse

import pytest
import requests

from mailsync import oauth
from mailsync.errors import SyncError
from mailsync.testing import free_port
from mailsync.testing.oauth_server import OAuthServer, s256

UTC = dt.timezone.utc
ALICE = "alice@example.test"
BOB = "bob@example.test"


@pytest.fixture
def server():
    with OAuthServer(account=ALICE) as srv:
        yield srv


@pytest.fixture(params=["google", "microsoft"])
def provider(request):
    return request.param


def _endpoints(server, provider):
    return server.endpoints(provider, tenant="contoso.onmicrosoft.com")


def consent(server, provider="google", state="s-123", redirect_uri=None):
    """Start the flow, let requests follow the consent redirect to the callback, return
    (callback query, code_verifier, auth url)."""
    redirect_uri = redirect_uri or server.callback_url
    url, verifier = oauth.authorization_url(
        provider,
        server.client_id,
        server.client_secret,
        redirect_uri,
        state,
        _endpoints(server, provider),
    )
    resp = requests.get(url, timeout=10)  # follows the 302 to the callback
    assert resp.status_code == 200, resp.text
    assert resp.history and resp.history[0].status_code == 302
    return resp.json(), verifier, url


def connect(server, provider="google"):
    answer, verifier, _url = consent(server, provider)
    return oauth.exchange_code(
        provider,
        server.client_id,
        server.client_secret,
        server.callback_url,
        answer["code"],
        verifier,
        _endpoints(server, provider),
    )


def do_refresh(server, provider, refresh_token, **kw):
    return oauth.refresh(
        provider,
        server.client_id,
        server.client_secret,
        refresh_token,
        _endpoints(server, provider),
        **kw,
    )


# ---------------------------------------------------------------- providers and helpers


def test_provider_descriptions():
    g, m = oauth.get_provider("google"), oauth.get_provider("outlook")
    assert g is oauth.GOOGLE and m is oauth.MICROSOFT
    assert oauth.get_provider("gmail") is oauth.GOOGLE
    assert set(g.scopes) == {"https://mail.google.com/", "openid", "email"}
    assert (g.imap.host, g.imap.port, g.imap.security) == ("imap.gmail.com", 993, "ssl")
    assert (g.smtp.host, g.smtp.port, g.smtp.security) == ("smtp.gmail.com", 465, "ssl")
    assert g.config_provider == "gmail" and m.config_provider == "outlook"
    assert set(m.scopes) == {
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
        "openid",
        "email",
    }
    assert (m.imap.host, m.imap.port, m.imap.security) == ("outlook.office365.com", 993, "ssl")
    assert (m.smtp.host, m.smtp.port, m.smtp.security) == ("smtp.office365.com", 587, "starttls")
    assert m.url("token_uri") == "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    t = oauth.get_provider("microsoft", {"tenant": "contoso.onmicrosoft.com"})
    assert t.url("auth_uri") == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize"
    )


def test_plain_http_only_to_loopback():
    for url in (
        "http://oauth.example.com/token",
        "ftp://127.0.0.1/token",
        "token",
        # a name under .localhost is resolved by the resolver, which may send it elsewhere
        "http://evil.localhost/token",
        "http://localhost.localdomain/token",
    ):
        with pytest.raises(SyncError) as info:
            oauth.get_provider("google", {"token_uri": url})
        assert info.value.kind == "config" and not info.value.retryable
    for url in (
        "http://127.0.0.1:8069/t",
        "http://localhost/t",
        "http://[::1]:80/t",
        "https://oauth.example.com/t",
    ):
        assert oauth.get_provider("google", {"token_uri": url}).token_uri == url


def test_insecure_transport_flag_is_not_left_set(server, provider):
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ
    connect(server, provider)
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ
    assert "OAUTHLIB_RELAX_TOKEN_SCOPE" not in os.environ
    # https endpoints never get it: oauthlib refuses nothing there, and a plain-http
    # non-loopback endpoint is refused before oauthlib is reached.
    url, _ = oauth.authorization_url("google", "cid", "secret", "https://crm.example.com/cb", "st")
    assert url.startswith("https://accounts.google.com/")
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ


def test_xoauth2_string():
    s = oauth.xoauth2_string("alice@example.test", "ya29.tok")
    assert s == "user=alice@example.test\x01auth=Bearer ya29.tok\x01\x01"
    assert base64.b64decode(oauth.xoauth2_b64("alice@example.test", "ya29.tok")).decode() == s


def test_needs_refresh_with_time():
    now = dt.datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert oauth.needs_refresh(None, now=now)
    assert not oauth.needs_refresh(now + dt.timedelta(hours=1), now=now)
    assert not oauth.needs_refresh(now + dt.timedelta(seconds=301), now=now)
    assert oauth.needs_refresh(now + dt.timedelta(seconds=300), now=now)
    assert oauth.needs_refresh(now + dt.timedelta(seconds=299), now=now)
    assert oauth.needs_refresh(now - dt.timedelta(seconds=1), now=now)
    assert not oauth.needs_refresh(now + dt.timedelta(seconds=30), now=now, margin=10)
    # naive values are UTC, as Odoo stores them
    naive = (now + dt.timedelta(minutes=10)).replace(tzinfo=None)
    assert not oauth.needs_refresh(naive, now=now)
    assert oauth.needs_refresh(naive, now=now.replace(tzinfo=None) + dt.timedelta(minutes=6))
    # other zones compare by instant
    paris = dt.timezone(dt.timedelta(hours=1))
    assert oauth.needs_refresh(dt.datetime(2025, 3, 1, 13, 4, tzinfo=paris), now=now)


def test_needs_refresh_follows_frozen_time(server):
    freezegun = pytest.importorskip("freezegun")
    tokens = connect(server)
    assert not oauth.needs_refresh(tokens.expires_at)
    with freezegun.freeze_time(dt.datetime.now(UTC) + dt.timedelta(seconds=4000)):
        assert oauth.needs_refresh(tokens.expires_at)
        # the server keeps its own wall clock: the (client-side expired) token is still good
        # there, so only the client's decision moved ...
        assert server.validate(tokens.access_token) == ALICE
        renewed = do_refresh(server, "google", tokens.refresh_token)
        # ... and the new expiry is computed from the client's (frozen) now
        assert not oauth.needs_refresh(renewed.expires_at)
    assert server.validate(renewed.access_token) == ALICE


def test_callback_error_parsing():
    assert oauth.parse_callback_error({"code": "x", "state": "s"}) is None
    err = oauth.parse_callback_error({"error": ["access_denied"], "state": ["s"]})
    assert err.kind == "auth" and not err.retryable
    assert oauth.parse_callback_error({"error": "temporarily_unavailable"}).retryable


# ---------------------------------------------------------------- authorization code flow


def test_authorization_url_google(server):
    url, verifier = oauth.authorization_url(
        "google",
        server.client_id,
        server.client_secret,
        server.callback_url,
        "st-1",
        server.endpoints(),
    )
    parts = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(parts.query))
    assert url.startswith(server.base_url + "/authorize?")
    assert q["response_type"] == "code" and q["client_id"] == server.client_id
    assert q["redirect_uri"] == server.callback_url and q["state"] == "st-1"
    assert q["scope"].split() == ["https://mail.google.com/", "openid", "email"]
    assert q["access_type"] == "offline" and q["prompt"] == "consent"
    assert q["code_challenge_method"] == "S256" and q["code_challenge"] == s256(verifier)
    assert 43 <= len(verifier) <= 128 and verifier not in url
    _, verifier2 = oauth.authorization_url(
        "google",
        server.client_id,
        server.client_secret,
        server.callback_url,
        "st-1",
        server.endpoints(),
    )
    assert verifier2 != verifier


def test_authorization_url_microsoft(server):
    url, verifier = oauth.authorization_url(
        "microsoft",
        server.client_id,
        server.client_secret,
        server.callback_url,
        "st-2",
        server.endpoints("microsoft", tenant="contoso"),
    )
    parts = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(parts.query))
    assert parts.path == "/contoso/oauth2/v2.0/authorize"
    assert "offline_access" in q["scope"].split() and "access_type" not in q
    assert q["prompt"] == "consent" and q["code_challenge"] == s256(verifier)


def test_full_code_flow_google(server):
    answer, verifier, _ = consent(server, "google", state="opaque-signed-state")
    assert answer["state"] == "opaque-signed-state" and answer["code"]
    before = dt.datetime.now(UTC)
    tokens = oauth.exchange_code(
        "google",
        server.client_id,
        server.client_secret,
        server.callback_url,
        answer["code"],
        verifier,
        server.endpoints(),
    )
    assert tokens.email == ALICE
    assert tokens.access_token and tokens.refresh_token
    assert tokens.expires_at.tzinfo is not None
    assert before + dt.timedelta(seconds=3590) <= tokens.expires_at
    assert tokens.expires_at <= dt.datetime.now(UTC) + dt.timedelta(seconds=3601)
    assert "https://mail.google.com/" in tokens.scopes
    assert server.validate(tokens.access_token) == ALICE
    assert server.calls["userinfo"] == 1 and server.calls["token.authorization_code"] == 1
    assert tokens.access_token not in repr(tokens) and tokens.refresh_token not in repr(tokens)


def test_full_code_flow_microsoft(server):
    server.set_account(BOB)
    tokens = connect(server, "microsoft")
    assert tokens.email == BOB and tokens.refresh_token
    assert server.calls["userinfo"] == 0  # read from the id_token
    assert server.requests[-1][1] == "/contoso.onmicrosoft.com/oauth2/v2.0/token"
    assert server.validate(tokens.access_token) == BOB


def test_userinfo_email(server):
    tokens = connect(server)
    assert oauth.userinfo_email("google", tokens.access_token, server.endpoints()) == ALICE
    with pytest.raises(SyncError) as info:
        oauth.userinfo_email("google", "ya29.forged", server.endpoints())
    assert info.value.kind == "oauth_revoked"
    server.set_account(BOB)
    assert connect(server).email == BOB


def test_reconsent_still_returns_a_refresh_token(server):
    # Google sends a refresh token again only with prompt=consent: the URL asks for it
    first, second = connect(server), connect(server)
    assert first.refresh_token and second.refresh_token
    assert first.refresh_token != second.refresh_token


def test_bad_code_is_refused(server, provider):
    _answer, verifier, _ = consent(server, provider)
    with pytest.raises(SyncError) as info:
        oauth.exchange_code(
            provider,
            server.client_id,
            server.client_secret,
            server.callback_url,
            "4/0-not-a-code",
            verifier,
            _endpoints(server, provider),
        )
    assert info.value.kind == "oauth_revoked" and not info.value.retryable
    assert "invalid_grant" in info.value.detail


def test_replayed_code_is_refused(server, provider):
    answer, verifier, _ = consent(server, provider)
    args = (
        provider,
        server.client_id,
        server.client_secret,
        server.callback_url,
        answer["code"],
        verifier,
        _endpoints(server, provider),
    )
    assert oauth.exchange_code(*args).access_token
    with pytest.raises(SyncError) as info:
        oauth.exchange_code(*args)
    assert info.value.kind == "oauth_revoked"
    assert "already been used" in info.value.detail


def test_wrong_code_verifier_is_refused(server):
    answer, _verifier, _ = consent(server)
    _, other_verifier = oauth.authorization_url(
        "google",
        server.client_id,
        server.client_secret,
        server.callback_url,
        "x",
        server.endpoints(),
    )
    with pytest.raises(SyncError) as info:
        oauth.exchange_code(
            "google",
            server.client_id,
            server.client_secret,
            server.callback_url,
            answer["code"],
            other_verifier,
            server.endpoints(),
        )
    assert info.value.kind == "oauth_revoked" and "verifier" in info.value.detail


def test_expired_code_is_refused(server):
    answer, verifier, _ = consent(server)
    server.expire_codes()
    with pytest.raises(SyncError) as info:
        oauth.exchange_code(
            "google",
            server.client_id,
            server.client_secret,
            server.callback_url,
            answer["code"],
            verifier,
            server.endpoints(),
        )
    assert info.value.kind == "oauth_revoked" and "expired" in info.value.detail


def test_redirect_uri_must_match(server):
    answer, verifier, _ = consent(server)
    with pytest.raises(SyncError) as info:
        oauth.exchange_code(
            "google",
            server.client_id,
            server.client_secret,
            server.callback_url + "/other",
            answer["code"],
            verifier,
            server.endpoints(),
        )
    assert info.value.kind == "config"


def test_wrong_client_secret(server, provider):
    answer, verifier, _ = consent(server, provider)
    with pytest.raises(SyncError) as info:
        oauth.exchange_code(
            provider,
            server.client_id,
            "wrong-secret",
            server.callback_url,
            answer["code"],
            verifier,
            _endpoints(server, provider),
        )
    assert info.value.kind == "config" and not info.value.retryable
    assert "wrong-secret" not in info.value.detail


def test_unregistered_redirect_uri_gets_no_code(server):
    server.add_client("strict-client", "s3cret", redirect_uris=["http://127.0.0.1:1/cb"])
    url, _ = oauth.authorization_url(
        "google", "strict-client", "s3cret", server.callback_url, "st", server.endpoints()
    )
    resp = requests.get(url, allow_redirects=False, timeout=10)
    assert resp.status_code == 400 and "redirect_uri_mismatch" in resp.text


def test_consent_denied(server):
    server.deny_next()
    answer, _verifier, _ = consent(server, state="st-denied")
    assert answer == {"error": "access_denied", "state": "st-denied"}
    assert oauth.parse_callback_error(answer).kind == "auth"
    answer, _verifier, _ = consent(server)  # only the next one was denied
    assert "code" in answer


def test_mail_scope_unticked_on_consent_screen(server):
    server.deny_scopes("https://mail.google.com/")
    with pytest.raises(SyncError) as info:
        connect(server)
    assert info.value.kind == "auth" and "https://mail.google.com/" in info.value.detail


def test_authorize_validates_pkce_and_state(server):
    base = {
        "response_type": "code",
        "client_id": server.client_id,
        "redirect_uri": server.callback_url,
        "scope": "https://mail.google.com/",
        "state": "s",
        "code_challenge": s256("v" * 43),
        "code_challenge_method": "S256",
    }

    def ask(**changes):
        params = {k: v for k, v in dict(base, **changes).items() if v is not None}
        r = requests.get(server.base_url + "/authorize", params=params, timeout=10)
        return r.json()

    assert "code" in ask()
    assert ask(code_challenge=None, code_challenge_method=None)["error"] == "invalid_request"
    assert ask(code_challenge_method="plain")["error"] == "invalid_request"
    assert ask(state=None)["error"] == "invalid_request"
    assert ask(response_type="token")["error"] == "unsupported_response_type"
    assert ask(scope="https://mail.google.com/ admin")["error"] == "invalid_scope"
    r = requests.get(
        server.base_url + "/authorize",
        params=dict(base, client_id="nobody"),
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 400


# ---------------------------------------------------------------- refresh, rotation, revocation


def test_refresh(server, provider):
    tokens = connect(server, provider)
    server.expire_all_access_tokens()
    assert server.validate(tokens.access_token) is None
    renewed = do_refresh(server, provider, tokens.refresh_token)
    assert renewed.access_token != tokens.access_token
    assert renewed.refresh_token == tokens.refresh_token  # no rotation configured
    assert server.validate(renewed.access_token) == ALICE
    assert renewed.expires_at > dt.datetime.now(UTC) + dt.timedelta(minutes=55)
    assert server.calls["token.refresh_token"] == 1


def test_access_token_lifetime(server):
    server.access_token_lifetime = 120
    tokens = connect(server)
    assert tokens.expires_at <= dt.datetime.now(UTC) + dt.timedelta(seconds=121)
    assert oauth.needs_refresh(tokens.expires_at)  # inside the 5-minute margin
    assert not oauth.needs_refresh(tokens.expires_at, margin=60)
    server.access_token_lifetime = 0
    expired = server.issue_tokens(ALICE)
    assert server.validate(expired["access_token"]) is None


def test_rotated_refresh_token(server, provider):
    server.rotate_refresh_tokens = True
    tokens = connect(server, provider)
    renewed = do_refresh(server, provider, tokens.refresh_token)
    assert renewed.refresh_token and renewed.refresh_token != tokens.refresh_token
    assert server.refresh_token_active(renewed.refresh_token)
    assert not server.refresh_token_active(tokens.refresh_token)
    # the old one is dead ...
    with pytest.raises(SyncError) as info:
        do_refresh(server, provider, tokens.refresh_token)
    assert info.value.kind == "oauth_revoked" and not info.value.retryable
    # ... the new one works and rotates again
    third = do_refresh(server, provider, renewed.refresh_token)
    assert third.refresh_token not in (tokens.refresh_token, renewed.refresh_token)
    assert server.validate(third.access_token) == ALICE


def test_revoked_refresh_token(server, provider):
    tokens = connect(server, provider)
    assert server.revoke(tokens.refresh_token) >= 2  # the grant and its access token
    assert server.validate(tokens.access_token) is None
    server.reset_counters()
    with pytest.raises(SyncError) as info:
        do_refresh(server, provider, tokens.refresh_token)
    err = info.value
    assert err.kind == "oauth_revoked" and not err.retryable
    assert err.provider == ("gmail" if provider == "google" else "outlook")
    assert tokens.refresh_token not in err.detail and server.client_secret not in err.detail
    assert "Connect" in err.fix or "connect" in err.fix
    assert server.calls["token"] == 1  # one request, no retry


def test_revoke_by_email(server):
    alice = connect(server)
    server.set_account(BOB)
    bob = connect(server)
    server.revoke(ALICE)
    with pytest.raises(SyncError):
        do_refresh(server, "google", alice.refresh_token)
    assert do_refresh(server, "google", bob.refresh_token).access_token


def test_revoke_endpoint(server):
    tokens = connect(server)
    assert oauth.revoke("google", tokens.refresh_token, server.endpoints()) is True
    assert server.validate(tokens.access_token) is None
    assert oauth.revoke("google", tokens.refresh_token, server.endpoints()) is True
    assert oauth.revoke("microsoft", "anything", server.endpoints("microsoft")) is False


def test_network_failure_is_retryable(server, provider):
    tokens = connect(server, provider)
    dead = f"http://127.0.0.1:{free_port()}"
    endpoints = dict(_endpoints(server, provider), token_uri=dead + "/token")
    with pytest.raises(SyncError) as info:
        oauth.refresh(
            provider,
            server.client_id,
            server.client_secret,
            tokens.refresh_token,
            endpoints,
            timeout=5,
        )
    assert info.value.retryable and info.value.kind == "refused"
    assert tokens.refresh_token not in info.value.detail


def test_unavailable_token_endpoint_is_retryable_and_bounded(server, provider):
    tokens = connect(server, provider)
    server.reset_counters()
    server.fail_next("token", status=503, error="temporarily_unavailable", count=5)
    with pytest.raises(SyncError) as info:
        do_refresh(server, provider, tokens.refresh_token)
    assert info.value.retryable and info.value.kind == "throttled"
    # google-auth retries a 503 itself (at most 3 attempts); Microsoft's path does not
    assert 1 <= server.calls["token"] <= 3


def test_exchange_network_failure_is_retryable(server):
    answer, verifier, _ = consent(server)
    endpoints = dict(server.endpoints(), token_uri=f"http://127.0.0.1:{free_port()}/token")
    with pytest.raises(SyncError) as info:
        oauth.exchange_code(
            "google",
            server.client_id,
            server.client_secret,
            server.callback_url,
            answer["code"],
            verifier,
            endpoints,
            timeout=5,
        )
    assert info.value.retryable


# ---------------------------------------------------------------- resource-server endpoints


def test_introspection_and_tokeninfo(server):
    tokens = connect(server)
    r = requests.post(server.introspection_url, data={"token": tokens.access_token}, timeout=5)
    assert r.json()["active"] is True and r.json()["email"] == ALICE
    r = requests.get(server.tokeninfo_url + tokens.access_token, timeout=5)
    assert r.status_code == 200 and r.json()["email"] == ALICE
    server.expire_all_access_tokens()
    r = requests.post(server.introspection_url, data={"token": tokens.access_token}, timeout=5)
    assert r.json() == {"active": False}
    assert requests.get(server.tokeninfo_url + tokens.access_token, timeout=5).status_code == 400
    assert server.calls["introspect"] == 2 and server.calls["tokeninfo"] == 2


def test_nobody_signed_in_gets_a_page_not_a_code(server):
    server.set_account(None)
    url, _ = oauth.authorization_url(
        "google",
        server.client_id,
        server.client_secret,
        server.callback_url,
        "st",
        server.endpoints(),
    )
    resp = requests.get(url, allow_redirects=False, timeout=10)
    assert resp.status_code == 200 and "No account is signed in" in resp.text


def test_shared_oauth_is_one_started_server():
    from mailsync.testing.oauth_server import shared_oauth

    first, second = shared_oauth(), shared_oauth()
    assert first is second
    assert requests.post(first.introspection_url, data={"token": "x"}, timeout=5).json() == {
        "active": False
    }
