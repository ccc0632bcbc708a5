"""OAuth 2.0 for mailboxes: Google and Microsoft 365 (Odoo-free).

- :func:`authorization_url` builds the consent URL with ``google_auth_oauthlib``'s ``Flow``
  (offline access, ``prompt=consent``, PKCE S256) and returns the ``code_verifier`` the caller
  must keep (server side) until the callback.
- :func:`exchange_code` trades the callback's code for a :class:`TokenSet` and reads the
  mailbox address from the identity answer (Google: userinfo; Microsoft: the ``id_token``).
- :func:`refresh` renews the access token (Google: ``google.oauth2.credentials.Credentials``;
  Microsoft: a plain ``requests`` POST). A rotated refresh token comes back in the TokenSet.
- Every failure is a :class:`~.errors.SyncError`: ``invalid_grant`` → kind ``oauth_revoked``
  (not retryable: reconnect); network trouble and 5xx/429 answers → retryable kinds; a bad
  client id/secret or scope → ``config``.

Endpoints are overridable (``endpoints=`` mapping with any of ``auth_uri``, ``token_uri``,
``userinfo_uri``, ``revoke_uri``, ``tenant``, ``scopes``) so tests point them at the loopback
server of :mod:`.testing.oauth_server`. An ``http://`` endpoint is only accepted on a loopback
host; only then is oauthlib's ``OAUTHLIB_INSECURE_TRANSPORT`` set, for the duration of the call.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import json
import os
import threading
import urllib.parse
from dataclasses import dataclass, field, replace

from .errors import SyncError, classify, redact
from .netguard import is_loopback
from .types import SECURITY_SSL, SECURITY_STARTTLS, Endpoint

DEFAULT_TIMEOUT = 30.0
REFRESH_MARGIN = 300  # seconds before expiry at which a token is renewed


@dataclass(frozen=True)
class Provider:
    """An OAuth identity provider and the mail servers that accept its tokens."""

    name: str  # google | microsoft
    config_provider: str  # MailboxConfig.provider / errors provider: gmail | outlook
    label: str
    auth_uri: str
    token_uri: str
    userinfo_uri: str | None
    revoke_uri: str | None
    scopes: tuple[str, ...]
    imap: Endpoint
    smtp: Endpoint
    email_source: str  # "userinfo" | "id_token" (the other one is the fallback)
    tenant: str | None = None
    extra_auth_params: tuple[tuple[str, str], ...] = ()

    def url(self, which: str) -> str | None:
        value = getattr(self, which)
        if value and "{tenant}" in value:
            value = value.replace("{tenant}", urllib.parse.quote(self.tenant or "common", safe=""))
        return value

    @property
    def mail_scopes(self) -> tuple[str, ...]:
        """The scopes without which the mailbox cannot be used."""
        return tuple(s for s in self.scopes if s.startswith("https://"))


GOOGLE = Provider(
    name="google",
    config_provider="gmail",
    label="Google",
    auth_uri="https://accounts.google.com/o/oauth2/v2/auth",
    token_uri="https://oauth2.googleapis.com/token",
    userinfo_uri="https://openidconnect.googleapis.com/v1/userinfo",
    revoke_uri="https://oauth2.googleapis.com/revoke",
    scopes=("https://mail.google.com/", "openid", "email"),
    imap=Endpoint("imap.gmail.com", 993, SECURITY_SSL),
    smtp=Endpoint("smtp.gmail.com", 465, SECURITY_SSL),
    email_source="userinfo",
    extra_auth_params=(("access_type", "offline"), ("prompt", "consent")),
)

MICROSOFT = Provider(
    name="microsoft",
    config_provider="outlook",
    label="Microsoft",
    auth_uri="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
    token_uri="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
    userinfo_uri="https://graph.microsoft.com/oidc/userinfo",
    revoke_uri=None,
    scopes=(
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
        "openid",
        "email",
    ),
    imap=Endpoint("outlook.office365.com", 993, SECURITY_SSL),
    smtp=Endpoint("smtp.office365.com", 587, SECURITY_STARTTLS),
    # A token for outlook.office.com cannot call Graph's userinfo: read the id_token.
    email_source="id_token",
    tenant="common",
    extra_auth_params=(("prompt", "consent"),),
)

PROVIDERS = {"google": GOOGLE, "microsoft": MICROSOFT}
_ALIASES = {
    "gmail": "google",
    "google": "google",
    "microsoft": "microsoft",
    "outlook": "microsoft",
    "microsoft365": "microsoft",
    "office365": "microsoft",
}
_OVERRIDABLE = ("auth_uri", "token_uri", "userinfo_uri", "revoke_uri", "tenant", "scopes")


@dataclass
class TokenSet:
    """What a token endpoint answered. ``email`` is None when the answer did not tell it
    (a refresh without id_token): keep the stored one."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: dt.datetime | None  # aware, UTC
    email: str | None
    scopes: tuple[str, ...] = ()

    def __repr__(self):
        return (
            f"TokenSet(email={self.email!r}, expires_at={self.expires_at!r}, "
            f"refresh_token={'set' if self.refresh_token else None})"
        )


# ------------------------------------------------------------------------------------ helpers


def get_provider(provider, endpoints=None) -> Provider:
    """``provider``: a :class:`Provider` or a name (google, gmail, microsoft, outlook);
    ``endpoints``: overrides (see module doc). Non-loopback ``http://`` endpoints are refused."""
    if isinstance(provider, Provider):
        base = provider
    else:
        key = _ALIASES.get(str(provider or "").lower())
        if key is None:
            raise SyncError("config", f"Unknown OAuth provider {provider!r}", retryable=False)
        base = PROVIDERS[key]
    overrides = {k: v for k, v in (endpoints or {}).items() if k in _OVERRIDABLE}
    if "scopes" in overrides:
        scopes = overrides["scopes"]
        overrides["scopes"] = tuple(scopes.split() if isinstance(scopes, str) else scopes)
    if "tenant" in overrides and not overrides["tenant"]:
        overrides.pop("tenant")
    prov = replace(base, **overrides) if overrides else base
    for which in ("auth_uri", "token_uri", "userinfo_uri", "revoke_uri"):
        _check_url(prov.url(which), which, prov)
    return prov


def _is_this_machine(host: str) -> bool:
    """``localhost`` or a loopback address, where a plain-http endpoint (the tests' OAuth server)
    is allowed: not any ``*.localhost`` name, which a resolver may send elsewhere."""
    if host.lower() == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return is_loopback(host)


def _check_url(url, which, prov):
    if not url:
        if which in ("auth_uri", "token_uri"):
            raise SyncError(
                "config",
                f"{prov.label} OAuth: no {which} configured",
                retryable=False,
                provider=prov.config_provider,
            )
        return
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and _is_this_machine(parts.hostname or ""):
        return
    raise SyncError(
        "config",
        f"{prov.label} OAuth: {which} must be an https:// URL "
        f"(http only to the local machine): {url}",
        retryable=False,
        provider=prov.config_provider,
    )


_env_lock = threading.RLock()


@contextlib.contextmanager
def _oauthlib_env(*urls):
    """Let oauthlib accept the (already validated, loopback-only) plain-http URLs, and accept a
    granted scope that differs in spelling from the requested one (Google widens ``email``).
    The variables are restored afterwards; they are never set for https endpoints only."""
    insecure = any(u and u.startswith("http://") for u in urls)
    with _env_lock:
        saved = {
            k: os.environ.get(k)
            for k in ("OAUTHLIB_INSECURE_TRANSPORT", "OAUTHLIB_RELAX_TOKEN_SCOPE")
        }
        if insecure:
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        os.environ["OAUTHLIB_RELAX_TOKEN_SCOPE"] = "1"
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _flow(prov, client_id, client_secret, redirect_uri, code_verifier=None, state=None):
    from google_auth_oauthlib.flow import Flow

    config = {
        "web": {
            "client_id": client_id,
            "client_secret": client_secret,
            "auth_uri": prov.url("auth_uri"),
            "token_uri": prov.url("token_uri"),
            "redirect_uris": [redirect_uri],
        }
    }
    kwargs = {"redirect_uri": redirect_uri}
    if state is not None:
        kwargs["state"] = state
    if code_verifier is not None:
        kwargs["code_verifier"] = code_verifier
    return Flow.from_client_config(config, scopes=list(prov.scopes), **kwargs)


def _host_port(url):
    parts = urllib.parse.urlsplit(url or "")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname, port


def _root_cause(exc):
    """The innermost exception of a requests/urllib3/google-auth chain."""
    seen = set()
    cur = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        nxt = cur.__cause__ or cur.__context__
        reason = getattr(cur, "reason", None)
        if nxt is None and isinstance(reason, BaseException):
            nxt = reason
        if nxt is None and cur.args and isinstance(cur.args[0], BaseException):
            nxt = cur.args[0]
        if nxt is None:
            return cur
        cur = nxt
    return cur


def _network_error(exc, url, prov, secrets=()):
    host, port = _host_port(url)
    root = _root_cause(exc)
    err = classify(root, host=host, port=port, provider=prov.config_provider, secrets=secrets)
    if err.kind in ("protocol", "unknown", "dropped", "refused", "dns", "timeout", "tls"):
        err.retryable = True
    if err.kind in ("auth", "oauth_revoked", "config"):  # words from a library, not the server
        err = SyncError(
            "unknown",
            err.detail,
            host=host,
            port=port,
            retryable=True,
            provider=prov.config_provider,
        )
    return err


def _answer_error(status, data, url, prov, secrets=()) -> SyncError:
    """A non-200 answer of a token/identity endpoint as a SyncError."""
    host, port = _host_port(url)
    if isinstance(data, dict):
        code = str(data.get("error") or "")
        desc = str(data.get("error_description") or "")
    else:
        code, desc = "", str(data or "")[:200]
    detail = redact(f"HTTP {status}: {code}{': ' if code and desc else ''}{desc}", secrets)
    kw = dict(host=host, port=port, provider=prov.config_provider)
    if code == "invalid_grant":
        return SyncError("oauth_revoked", detail, retryable=False, **kw)
    if status == 429 or code in ("slow_down", "temporarily_unavailable"):
        return SyncError("throttled", detail, retryable=True, **kw)
    if status >= 500 or code == "server_error":
        return SyncError("unknown", detail, retryable=True, **kw)
    if code in (
        "invalid_client",
        "unauthorized_client",
        "invalid_request",
        "invalid_scope",
        "unsupported_grant_type",
        "redirect_uri_mismatch",
    ) or status in (400, 401, 403):
        return SyncError("config", detail, retryable=False, **kw)
    return SyncError("protocol", detail, retryable=True, **kw)


def _expires_at(expires_in=None, expires_at=None, now=None):
    if expires_at is not None:
        if isinstance(expires_at, dt.datetime):
            return _aware(expires_at)
        return dt.datetime.fromtimestamp(float(expires_at), dt.timezone.utc)
    if expires_in is None:
        return None
    now = _aware(now) if now is not None else dt.datetime.now(dt.timezone.utc)
    return now + dt.timedelta(seconds=float(expires_in))


def _aware(value: dt.datetime) -> dt.datetime:
    """Naive datetimes are UTC (Odoo stores them so)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def id_token_claims(id_token: str | None) -> dict:
    """The claims of an id_token, unverified. Acceptable only for an id_token received straight
    from the token endpoint over TLS (OpenID Connect Core 3.1.3.7); never for one from a browser."""
    if not id_token or id_token.count(".") != 2:
        return {}
    payload = id_token.split(".")[1]
    try:
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        return {}


def _email_from_claims(claims) -> str | None:
    for key in ("email", "preferred_username", "upn"):
        value = claims.get(key)
        if isinstance(value, str) and "@" in value:
            return value.strip()
    return None


def _scopes(value) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    return tuple(value)


# ------------------------------------------------------------------------------------ API


def authorization_url(
    provider, client_id, client_secret, redirect_uri, state, endpoints=None, *, login_hint=None
):
    """The provider's consent URL for ``state``, and the PKCE ``code_verifier`` to keep until
    the callback (never send it to the browser). Returns ``(url, code_verifier)``."""
    prov = get_provider(provider, endpoints)
    if not client_id:
        raise SyncError(
            "config",
            f"{prov.label} OAuth client id is not configured",
            retryable=False,
            provider=prov.config_provider,
        )
    if not state:
        raise SyncError(
            "config", "OAuth state is required", retryable=False, provider=prov.config_provider
        )
    flow = _flow(prov, client_id, client_secret, redirect_uri)
    params = dict(prov.extra_auth_params)
    if prov.name != "google":
        # Flow adds Google's access_type=offline unless told otherwise; Microsoft uses the
        # offline_access scope instead (an empty value is left out of the URL by oauthlib).
        params.setdefault("access_type", None)
    if login_hint:
        params["login_hint"] = login_hint
    with _oauthlib_env(prov.url("auth_uri")):
        url, _state = flow.authorization_url(state=state, **params)
    return url, flow.code_verifier


def exchange_code(
    provider,
    client_id,
    client_secret,
    redirect_uri,
    code,
    code_verifier,
    endpoints=None,
    *,
    timeout=DEFAULT_TIMEOUT,
) -> TokenSet:
    """Trade the callback's ``code`` for tokens and read the account's email address."""
    prov = get_provider(provider, endpoints)
    if not code:
        raise SyncError(
            "config",
            "The provider's answer had no authorization code",
            retryable=False,
            provider=prov.config_provider,
        )
    token_uri = prov.url("token_uri")
    secrets = (client_secret, code, code_verifier)
    flow = _flow(prov, client_id, client_secret, redirect_uri, code_verifier=code_verifier)
    kwargs = {"code": code, "timeout": timeout}
    if prov.name == "microsoft":
        kwargs["include_client_id"] = True  # client_secret_post, as Microsoft documents it
    try:
        with _oauthlib_env(token_uri):
            token = flow.fetch_token(**kwargs)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a SyncError
        raise _token_call_error(exc, token_uri, prov, secrets) from exc
    access = token.get("access_token")
    if not access:
        raise SyncError(
            "protocol",
            "The token answer had no access_token",
            host=_host_port(token_uri)[0],
            port=_host_port(token_uri)[1],
            provider=prov.config_provider,
        )
    granted = _scopes(token.get("scope")) or prov.scopes
    _check_granted(prov, granted)
    tokens = TokenSet(
        access_token=access,
        refresh_token=token.get("refresh_token"),
        expires_at=_expires_at(token.get("expires_in"), token.get("expires_at")),
        email=None,
        scopes=granted,
    )
    tokens.email = _email_after_exchange(prov, token, access, timeout, secrets)
    if not tokens.refresh_token:
        raise SyncError(
            "config",
            f"{prov.label} did not grant offline access (no refresh token)",
            retryable=False,
            provider=prov.config_provider,
        )
    return tokens


def _token_call_error(exc, url, prov, secrets):
    """Map an exception raised by oauthlib/requests-oauthlib around a token request."""
    import requests
    from oauthlib.oauth2.rfc6749 import errors as oauth_errors

    if isinstance(exc, SyncError):
        return exc
    if isinstance(exc, oauth_errors.MissingTokenError):
        # requests-oauthlib does not look at the HTTP status: a 5xx page without JSON ends here
        host, port = _host_port(url)
        return SyncError(
            "protocol",
            "The token endpoint answered without an access token",
            host=host,
            port=port,
            retryable=True,
            provider=prov.config_provider,
        )
    if isinstance(exc, oauth_errors.OAuth2Error):
        # status_code is oauthlib's per-error default (invalid_grant 400, invalid_client 401,
        # server_error 500, temporarily_unavailable 503): the server's own status is not kept.
        data = {"error": exc.error, "error_description": exc.description}
        return _answer_error(exc.status_code or 400, data, url, prov, secrets)
    if isinstance(exc, requests.exceptions.RequestException):
        return _network_error(exc, url, prov, secrets)
    if isinstance(exc, (ValueError, Warning)):
        host, port = _host_port(url)
        return SyncError(
            "protocol",
            redact(f"{type(exc).__name__}: {exc}", secrets),
            host=host,
            port=port,
            retryable=True,
            provider=prov.config_provider,
        )
    return _network_error(exc, url, prov, secrets)


def _check_granted(prov, granted):
    expanded = set(granted)
    missing = [s for s in prov.mail_scopes if s not in expanded]
    if missing:
        raise SyncError(
            "auth",
            "The mailbox permission was not granted on the consent screen: " + " ".join(missing),
            retryable=False,
            provider=prov.config_provider,
        )


def _email_after_exchange(prov, token, access, timeout, secrets):
    from_id = _email_from_claims(id_token_claims(token.get("id_token")))
    if prov.email_source == "id_token" and from_id:
        return from_id
    if prov.url("userinfo_uri"):
        try:
            return userinfo_email(prov, access, timeout=timeout)
        except SyncError:
            if from_id:
                return from_id
            raise
    if from_id:
        return from_id
    raise SyncError(
        "protocol",
        "The provider did not tell the account's email address",
        retryable=False,
        provider=prov.config_provider,
    )


def userinfo_email(provider, access_token, endpoints=None, *, timeout=DEFAULT_TIMEOUT) -> str:
    """The verified email address of the account an access token belongs to (OIDC userinfo)."""
    import requests

    prov = get_provider(provider, endpoints)
    url = prov.url("userinfo_uri")
    if not url:
        raise SyncError(
            "config",
            f"{prov.label}: no userinfo endpoint configured",
            retryable=False,
            provider=prov.config_provider,
        )
    try:
        resp = requests.get(
            url,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            timeout=timeout,
        )
    except requests.exceptions.RequestException as exc:
        raise _network_error(exc, url, prov, (access_token,)) from exc
    data = _json_or_text(resp)
    if resp.status_code != 200:
        if resp.status_code == 401:
            host, port = _host_port(url)
            raise SyncError(
                "oauth_revoked",
                f"HTTP 401 from userinfo: {str(data)[:200]}",
                host=host,
                port=port,
                retryable=False,
                provider=prov.config_provider,
            )
        raise _answer_error(resp.status_code, data, url, prov, (access_token,))
    email = _email_from_claims(data) if isinstance(data, dict) else None
    if not email:
        raise SyncError(
            "protocol",
            "The userinfo answer had no email address",
            retryable=False,
            provider=prov.config_provider,
        )
    if data.get("email_verified") in (False, "false"):
        raise SyncError(
            "auth",
            f"The email address {email} is not verified",
            retryable=False,
            provider=prov.config_provider,
        )
    return email


def _json_or_text(resp):
    try:
        return resp.json()
    except ValueError:
        return resp.text[:500]


def refresh(
    provider, client_id, client_secret, refresh_token, endpoints=None, *, timeout=DEFAULT_TIMEOUT
) -> TokenSet:
    """A new access token for ``refresh_token``. ``TokenSet.refresh_token`` is the token to store
    from now on (the provider's new one when it rotated, else the same one)."""
    prov = get_provider(provider, endpoints)
    if not refresh_token:
        raise SyncError(
            "oauth_revoked",
            "No refresh token stored",
            retryable=False,
            provider=prov.config_provider,
        )
    if prov.name == "google":
        return _refresh_google(prov, client_id, client_secret, refresh_token, timeout)
    return _refresh_requests(prov, client_id, client_secret, refresh_token, timeout)


def _refresh_google(prov, client_id, client_secret, refresh_token, timeout):
    import google.auth.exceptions
    from google.auth.transport.requests import Request
    from google.oauth2.credentials import Credentials

    class _Request(Request):  # google-auth's default timeout is 120 s
        def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
            return super().__call__(
                url,
                method=method,
                body=body,
                headers=headers,
                timeout=timeout or _timeout,
                **kwargs,
            )

    _timeout = timeout
    token_uri = prov.url("token_uri")
    secrets = (client_secret, refresh_token)
    creds = Credentials(
        token=None,
        refresh_token=refresh_token,
        token_uri=token_uri,
        client_id=client_id,
        client_secret=client_secret,
    )
    try:
        creds.refresh(_Request())
    except google.auth.exceptions.RefreshError as exc:
        data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else None
        if data is None:
            data = {"error": "", "error_description": str(exc.args[0] if exc.args else exc)}
        status = 503 if getattr(exc, "retryable", False) else 400
        if data.get("error") == "invalid_client":
            status = 401
        raise _answer_error(status, data, token_uri, prov, secrets) from exc
    except google.auth.exceptions.TransportError as exc:
        raise _network_error(exc, token_uri, prov, secrets) from exc
    except Exception as exc:  # noqa: BLE001
        raise _network_error(exc, token_uri, prov, secrets) from exc
    return TokenSet(
        access_token=creds.token,
        refresh_token=creds.refresh_token or refresh_token,
        expires_at=_aware(creds.expiry) if creds.expiry else None,
        email=_email_from_claims(id_token_claims(getattr(creds, "id_token", None))),
        scopes=_scopes(creds.granted_scopes) if getattr(creds, "granted_scopes", None) else (),
    )


def _refresh_requests(prov, client_id, client_secret, refresh_token, timeout):
    import requests

    token_uri = prov.url("token_uri")
    secrets = (client_secret, refresh_token)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client_id,
        "client_secret": client_secret,
        "scope": " ".join(prov.scopes),
    }
    try:
        resp = requests.post(
            token_uri, data=form, timeout=timeout, headers={"Accept": "application/json"}
        )
    except requests.exceptions.RequestException as exc:
        raise _network_error(exc, token_uri, prov, secrets) from exc
    data = _json_or_text(resp)
    if resp.status_code != 200 or not isinstance(data, dict) or not data.get("access_token"):
        status = resp.status_code if resp.status_code != 200 else 502
        raise _answer_error(status, data, token_uri, prov, secrets)
    return TokenSet(
        access_token=data["access_token"],
        refresh_token=data.get("refresh_token") or refresh_token,
        expires_at=_expires_at(data.get("expires_in")),
        email=_email_from_claims(id_token_claims(data.get("id_token"))),
        scopes=_scopes(data.get("scope")),
    )


def revoke(provider, token, endpoints=None, *, timeout=DEFAULT_TIMEOUT) -> bool:
    """Ask the provider to revoke a token (Google). False when the provider has no revocation
    endpoint (Microsoft) or said the token was already invalid; network trouble raises."""
    import requests

    prov = get_provider(provider, endpoints)
    url = prov.url("revoke_uri")
    if not url or not token:
        return False
    try:
        resp = requests.post(url, data={"token": token}, timeout=timeout)
    except requests.exceptions.RequestException as exc:
        raise _network_error(exc, url, prov, (token,)) from exc
    return resp.status_code == 200


def needs_refresh(expires_at, now=None, margin=REFRESH_MARGIN) -> bool:
    """True when the access token is unknown-aged or expires within ``margin`` seconds.
    Naive datetimes are taken as UTC (as Odoo stores them)."""
    if expires_at is None:
        return True
    now = _aware(now) if now is not None else dt.datetime.now(dt.timezone.utc)
    return now >= _aware(expires_at) - dt.timedelta(seconds=margin)


def xoauth2_string(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (not base64-encoded)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def xoauth2_b64(user: str, token: str) -> str:
    """:func:`xoauth2_string`, base64-encoded (for ``AUTH XOAUTH2 <b64>``)."""
    return base64.b64encode(xoauth2_string(user, token).encode("utf-8")).decode("ascii")


def parse_callback_error(params) -> SyncError | None:
    """The error a provider put on the redirect (``error=access_denied`` …) as a SyncError,
    or None when the callback carries a code."""
    get = params.get
    error = get("error")
    if isinstance(error, (list, tuple)):
        error = error[-1] if error else None
    if not error:
        return None
    desc = get("error_description") or ""
    if isinstance(desc, (list, tuple)):
        desc = desc[-1] if desc else ""
    detail = f"{error}: {desc}" if desc else str(error)
    if error == "access_denied":
        return SyncError("auth", "Consent was refused: " + detail, retryable=False)
    if error in ("temporarily_unavailable", "server_error"):
        return SyncError("throttled", detail, retryable=True)
    return SyncError("config", detail, retryable=False)
