"""A loopback OAuth 2.0 authorization server that plays Google's and Microsoft's endpoints.

It speaks the real protocol over HTTP (authorization code with PKCE, refresh, rotated refresh
tokens, ``invalid_grant``) so the client code under test runs unpatched. One server serves both
flavours:

Google flavour (paths at the root)::

    GET  /authorize        consent: auto-approved for the "signed-in" account (set_account)
    POST /token            grant_type=authorization_code | refresh_token
    GET  /userinfo         Bearer token -> {"sub", "email", "email_verified": true}
    GET  /tokeninfo?access_token=...   Google's token info (for Dovecot's tokeninfo_url)
    POST /introspect       token=...  -> {"active": true/false, "email": ...} (RFC 7662; Dovecot's
                           oauth2 passdb with introspection_mode = post)
    POST /revoke           token=...  (Google's revocation endpoint)

Microsoft flavour::

    GET  /{tenant}/oauth2/v2.0/authorize
    POST /{tenant}/oauth2/v2.0/token
    GET  /oidc/userinfo

Differences that mimic the real providers: the Google flavour returns a refresh token only for
``access_type=offline`` and, for an account that already consented, only with
``prompt=consent``; it widens ``email``/``profile`` to their ``userinfo.*`` URLs in the granted
``scope``. The Microsoft flavour returns a refresh token only with ``offline_access``, leaves the
OpenID scopes out of the granted ``scope`` and always sends a refresh token back on refresh.
Both add an ``id_token`` (HS256, signed with the client secret) when ``openid`` was granted.

Time is the server's own wall clock (``time.clock_gettime(CLOCK_REALTIME)``, which freezegun
does not patch), so freezing time in a test moves only the client's idea of "now";
:meth:`OAuthServer.expire_all_access_tokens` ends the server's side of it.

Nothing here imports ``odoo``; only relative imports inside the package.
"""

from __future__ import annotations

import atexit
import base64
import collections
import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import LOOPBACK

DEFAULT_CLIENT_ID = "mailsync-test-client.apps.googleusercontent.com"
DEFAULT_CLIENT_SECRET = "mailsync-test-client-secret"
DEFAULT_ACCOUNT = "oauth.user@example.com"

GOOGLE_SCOPE_ALIASES = {
    "email": "https://www.googleapis.com/auth/userinfo.email",
    "profile": "https://www.googleapis.com/auth/userinfo.profile",
}
KNOWN_SCOPES = frozenset(
    {
        "openid",
        "email",
        "profile",
        "offline_access",
        "https://mail.google.com/",
        "https://www.googleapis.com/auth/userinfo.email",
        "https://www.googleapis.com/auth/userinfo.profile",
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "https://outlook.office.com/POP.AccessAsUser.All",
    }
)
OIDC_SCOPES = frozenset({"openid", "email", "profile", "offline_access"})

_MS_PATH = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/(?P<endpoint>authorize|token)$")
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def _wall_clock():
    # Not time.time(): freezegun patches that, and the server must keep real time.
    return time.clock_gettime(time.CLOCK_REALTIME)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def s256(code_verifier: str) -> str:
    """The PKCE S256 code challenge of ``code_verifier``."""
    return _b64url(hashlib.sha256(code_verifier.encode("ascii")).digest())


class OAuthServer:
    """The authorization server. Thread-safe; start with :meth:`start` or ``with``.

    Options (all plain attributes, settable at any time):

    - ``access_token_lifetime`` (s, default 3600), ``code_lifetime`` (s, default 600)
    - ``rotate_refresh_tokens`` (default False): a refresh issues a new refresh token and the old
      one becomes invalid (``invalid_grant`` afterwards)
    - ``require_pkce`` (default True): /authorize demands an S256 ``code_challenge``
    - ``require_state`` (default True): /authorize demands a non-empty ``state``
    """

    def __init__(
        self,
        *,
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        redirect_uris=None,
        account=DEFAULT_ACCOUNT,
        access_token_lifetime=3600,
        code_lifetime=600,
        rotate_refresh_tokens=False,
        require_pkce=True,
        require_state=True,
        host=LOOPBACK,
        port=0,
        clock=None,
    ):
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_token_lifetime = access_token_lifetime
        self.code_lifetime = code_lifetime
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.require_pkce = require_pkce
        self.require_state = require_state
        self.clock = clock or _wall_clock
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._clients = {}  # client_id -> {"secret", "redirect_uris"}
        self._account = account
        self._deny = 0
        self._denied_scopes = set()
        self._fail_next = collections.defaultdict(list)  # endpoint -> [(status, error)]
        self._codes = {}
        self._access = {}  # token -> grant dict
        self._refresh = {}  # token -> grant dict
        self._consented = set()  # (client_id, email)
        self.calls = collections.Counter()
        self.requests = []  # (method, path without query, status)
        self._httpd = None
        self._thread = None
        self.add_client(client_id, client_secret, redirect_uris)

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        if self._httpd is not None:
            return self
        handler = type("Handler", (_Handler,), {"oauth": self})
        self._httpd = ThreadingHTTPServer((self._host, self._port), handler)
        self._httpd.daemon_threads = True
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"oauth-server:{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self):
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            self._thread.join(5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def host(self):
        return self._host

    @property
    def port(self):
        return self._port

    @property
    def base_url(self):
        return f"http://{self._host}:{self._port}"

    @property
    def introspection_url(self):
        return self.base_url + "/introspect"

    @property
    def tokeninfo_url(self):
        """For Dovecot's ``tokeninfo_url`` (the token is appended to it)."""
        return self.base_url + "/tokeninfo?access_token="

    @property
    def callback_url(self):
        """A redirect URI on this server that answers the query it receives as JSON."""
        return self.base_url + "/_callback"

    def endpoints(self, provider="google", tenant="common"):
        """Endpoint overrides for :mod:`mailsync.oauth` pointing at this server."""
        if provider in ("microsoft", "outlook", "microsoft365"):
            base = f"{self.base_url}/{{tenant}}/oauth2/v2.0"
            return {
                "auth_uri": base + "/authorize",
                "token_uri": base + "/token",
                "userinfo_uri": self.base_url + "/oidc/userinfo",
                "revoke_uri": None,
                "tenant": tenant,
            }
        return {
            "auth_uri": self.base_url + "/authorize",
            "token_uri": self.base_url + "/token",
            "userinfo_uri": self.base_url + "/userinfo",
            "revoke_uri": self.base_url + "/revoke",
        }

    # ------------------------------------------------------------------ test controls
    def add_client(self, client_id, client_secret, redirect_uris=None):
        """Register a client. ``redirect_uris=None`` accepts any loopback or https URI."""
        with self._lock:
            self._clients[client_id] = {
                "secret": client_secret,
                "redirect_uris": None if redirect_uris is None else list(redirect_uris),
            }

    def set_account(self, email):
        """The account "signed in" at the consent screen (None: nobody, /authorize says so)."""
        with self._lock:
            self._account = email

    def deny_next(self, count=1):
        """The next ``count`` consents are refused: redirect with ``error=access_denied``."""
        with self._lock:
            self._deny += count

    def deny_scopes(self, *scopes):
        """The user unticks these scopes on the consent screen (granular consent)."""
        with self._lock:
            self._denied_scopes = set(scopes)

    def fail_next(self, endpoint="token", status=503, error="temporarily_unavailable", count=1):
        """The next ``count`` calls of ``endpoint`` answer ``status`` with ``{"error": error}``."""
        with self._lock:
            self._fail_next[endpoint].extend([(status, error)] * count)

    def reset_counters(self):
        with self._lock:
            self.calls.clear()
            self.requests.clear()

    def issue_tokens(
        self, email, scope="https://mail.google.com/ openid email", client_id=None, lifetime=None
    ):
        """Mint a grant directly (no consent round trip): ``{"access_token", "refresh_token",
        ...}``."""
        client_id = client_id or self.client_id
        with self._lock:
            grant = {
                "email": email,
                "client_id": client_id,
                "scope": scope.split(),
                "flavour": "google",
                "tenant": None,
            }
            rt = self._new_refresh_token(grant)
            at, exp = self._new_access_token(grant, rt, lifetime)
            return {
                "access_token": at,
                "refresh_token": rt,
                "expires_in": int(exp - self.clock()),
                "expires_at": exp,
                "scope": scope,
                "token_type": "Bearer",
            }

    def validate(self, token):
        """The email an access token belongs to, or None if unknown, expired or revoked."""
        with self._lock:
            info = self._access.get(token)
            if not info or not info["active"] or info["expires"] <= self.clock():
                return None
            return info["email"]

    def expire_all_access_tokens(self):
        with self._lock:
            past = self.clock() - 1
            for info in self._access.values():
                info["expires"] = min(info["expires"], past)

    def expire_codes(self):
        with self._lock:
            for info in self._codes.values():
                info["expires"] = self.clock() - 1

    def revoke(self, token_or_email):
        """Revoke a refresh token (with the access tokens it issued), an access token, or every
        grant of an email. Returns how many tokens were revoked."""
        with self._lock:
            n = 0
            if "@" in token_or_email:
                email = token_or_email.lower()
                for table in (self._refresh, self._access):
                    for info in table.values():
                        if info["email"].lower() == email and info["active"]:
                            info["active"] = False
                            n += 1
                self._consented = {c for c in self._consented if c[1].lower() != email}
                return n
            if token_or_email in self._refresh:
                rts = {token_or_email}
                # the whole chain of rotated refresh tokens is one grant
                chain = self._refresh[token_or_email]["chain"]
                rts |= {t for t, i in self._refresh.items() if i["chain"] == chain}
                for t in rts:
                    if self._refresh[t]["active"]:
                        self._refresh[t]["active"] = False
                        n += 1
                for info in self._access.values():
                    if info["refresh_token"] in rts and info["active"]:
                        info["active"] = False
                        n += 1
                return n
            info = self._access.get(token_or_email)
            if info and info["active"]:
                info["active"] = False
                n += 1
            return n

    def refresh_token_active(self, token):
        with self._lock:
            info = self._refresh.get(token)
            return bool(info and info["active"])

    # ------------------------------------------------------------------ internals
    def _new_refresh_token(self, grant, chain=None):
        token = ("1//" if grant["flavour"] == "google" else "M.R3_") + secrets.token_urlsafe(32)
        self._refresh[token] = dict(grant, active=True, chain=chain or token, issued=self.clock())
        return token

    def _new_access_token(self, grant, refresh_token, lifetime=None):
        token = ("ya29." if grant["flavour"] == "google" else "EwB") + secrets.token_urlsafe(40)
        lifetime = self.access_token_lifetime if lifetime is None else lifetime
        expires = self.clock() + lifetime
        self._access[token] = {
            "email": grant["email"],
            "client_id": grant["client_id"],
            "scope": list(grant["scope"]),
            "active": True,
            "expires": expires,
            "refresh_token": refresh_token,
        }
        return token, expires

    def _id_token(self, grant, client_secret):
        now = int(self.clock())
        claims = {
            "iss": self.base_url,
            "aud": grant["client_id"],
            "sub": _subject(grant["email"]),
            "email": grant["email"],
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
        }
        if grant["flavour"] == "microsoft":
            claims.update(
                iss=f"{self.base_url}/{grant['tenant']}/v2.0",
                preferred_username=grant["email"],
                tid=grant["tenant"],
            )
            del claims["email_verified"]
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64url(json.dumps(claims).encode())
        signing_input = f"{header}.{payload}".encode()
        sig = hmac.new(client_secret.encode(), signing_input, hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64url(sig)}"

    def _granted_scope_string(self, grant):
        scopes = grant["scope"]
        if grant["flavour"] == "google":
            out = sorted({GOOGLE_SCOPE_ALIASES.get(s, s) for s in scopes})
        else:
            out = [s for s in scopes if s not in OIDC_SCOPES]
        return " ".join(out)

    def _token_response(self, grant, refresh_token, client_secret, *, send_refresh):
        at, exp = self._new_access_token(grant, refresh_token)
        body = {
            "access_token": at,
            "expires_in": int(round(exp - self.clock())),
            "token_type": "Bearer",
            "scope": self._granted_scope_string(grant),
        }
        if send_refresh and refresh_token:
            body["refresh_token"] = refresh_token
        if "openid" in grant["scope"]:
            body["id_token"] = self._id_token(grant, client_secret)
        if grant["flavour"] == "microsoft":
            body["ext_expires_in"] = body["expires_in"]
        return body

    def _redirect_uri_ok(self, client, redirect_uri):
        if client["redirect_uris"] is not None:
            return redirect_uri in client["redirect_uris"]
        try:
            parts = urllib.parse.urlsplit(redirect_uri)
        except ValueError:
            return False
        if parts.fragment or not parts.netloc:
            return False
        if parts.scheme == "https":
            return True
        return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")

    # --- /authorize
    def handle_authorize(self, params, flavour, tenant):
        """Returns ``(status, headers, body)``."""
        p = {k: v[-1] for k, v in params.items()}
        client = self._clients.get(p.get("client_id", ""))
        if client is None:
            return _page(400, "Error 401: invalid_client", "The OAuth client was not found.")
        redirect_uri = p.get("redirect_uri", "")
        if not self._redirect_uri_ok(client, redirect_uri):
            return _page(
                400,
                "Error 400: redirect_uri_mismatch",
                "The redirect URI in the request does not match the ones authorized "
                "for the OAuth client.",
            )
        state = p.get("state")

        def back(**answer):
            if state is not None:
                answer["state"] = state
            sep = "&" if urllib.parse.urlsplit(redirect_uri).query else "?"
            return 302, {"Location": redirect_uri + sep + urllib.parse.urlencode(answer)}, b""

        if p.get("response_type") != "code":
            return back(error="unsupported_response_type")
        if self.require_state and not state:
            return back(error="invalid_request", error_description="Missing state")
        scopes = p.get("scope", "").split()
        if not scopes:
            return back(
                error="invalid_request", error_description="Missing required parameter: scope"
            )
        unknown = [s for s in scopes if s not in KNOWN_SCOPES]
        if unknown:
            return back(
                error="invalid_scope",
                error_description="Some requested scopes were invalid: " + " ".join(unknown),
            )
        challenge = p.get("code_challenge")
        method = p.get("code_challenge_method", "plain" if challenge else None)
        if challenge:
            if method != "S256":
                return back(
                    error="invalid_request",
                    error_description="Only code_challenge_method=S256 is allowed",
                )
            if not re.fullmatch(r"[A-Za-z0-9\-_]{43}", challenge):
                return back(error="invalid_request", error_description="Invalid code_challenge")
        elif self.require_pkce:
            return back(error="invalid_request", error_description="Missing code_challenge")
        if self._deny:
            self._deny -= 1
            return back(error="access_denied")
        if not self._account:
            return _page(
                200,
                "Sign in",
                "No account is signed in at the test consent screen (OAuthServer.set_account).",
            )
        email = self._account
        granted = [s for s in scopes if s not in self._denied_scopes]
        if flavour == "google":
            offline = p.get("access_type") == "offline"
            prompt_consent = "consent" in p.get("prompt", "").split()
            key = (p["client_id"], email.lower())
            send_refresh = offline and (prompt_consent or key not in self._consented)
            if offline:
                self._consented.add(key)
        else:
            send_refresh = "offline_access" in granted
        code = ("4/0" if flavour == "google" else "M.C5_") + secrets.token_urlsafe(32)
        self._codes[code] = {
            "client_id": p["client_id"],
            "redirect_uri": redirect_uri,
            "email": email,
            "scope": granted,
            "challenge": challenge,
            "expires": self.clock() + self.code_lifetime,
            "used": False,
            "flavour": flavour,
            "tenant": tenant,
            "send_refresh": send_refresh,
        }
        answer = {"code": code}
        if flavour == "google":
            answer["scope"] = self._granted_scope_string({"scope": granted, "flavour": flavour})
        return back(**answer)

    # --- /token
    def handle_token(self, form, auth_header, flavour, tenant):
        f = {k: v[-1] for k, v in form.items()}
        client_id, secret = f.get("client_id"), f.get("client_secret")
        if auth_header and auth_header.lower().startswith("basic "):
            try:
                raw = base64.b64decode(auth_header[6:].strip()).decode()
                b_id, _, b_secret = raw.partition(":")
                b_id, b_secret = (
                    urllib.parse.unquote_plus(b_id),
                    urllib.parse.unquote_plus(b_secret),
                )
            except Exception:  # noqa: BLE001 - any garbage is an invalid client
                return _json(401, {"error": "invalid_client"})
            if client_id and client_id != b_id:
                return _json(
                    400, {"error": "invalid_request", "error_description": "client_id mismatch"}
                )
            client_id, secret = b_id, b_secret
        client = self._clients.get(client_id or "")
        if client is None or not secret or not hmac.compare_digest(client["secret"], secret):
            return _json(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "The OAuth client was not found."
                    if client is None
                    else "Unauthorized",
                },
            )
        grant_type = f.get("grant_type")
        if grant_type == "authorization_code":
            return self._token_from_code(f, client_id, client["secret"], flavour, tenant)
        if grant_type == "refresh_token":
            return self._token_from_refresh(f, client_id, client["secret"], flavour)
        return _json(
            400,
            {
                "error": "unsupported_grant_type",
                "error_description": f"Invalid grant_type: {grant_type}",
            },
        )

    def _token_from_code(self, f, client_id, client_secret, flavour, tenant):
        code = f.get("code", "")
        info = self._codes.get(code)
        bad = {"error": "invalid_grant", "error_description": "Malformed auth code."}
        if info is None:
            return _json(400, bad)
        if info["used"]:
            return _json(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "Authorization code has already been used.",
                },
            )
        info["used"] = True  # a failed attempt burns the code too
        if info["expires"] <= self.clock():
            return _json(
                400,
                {"error": "invalid_grant", "error_description": "Authorization code has expired."},
            )
        if info["client_id"] != client_id or info["flavour"] != flavour or info["tenant"] != tenant:
            return _json(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "Code was issued to another client.",
                },
            )
        if f.get("redirect_uri") != info["redirect_uri"]:
            return _json(
                400, {"error": "redirect_uri_mismatch", "error_description": "Bad Request"}
            )
        if info["challenge"]:
            verifier = f.get("code_verifier", "")
            if not verifier:
                return _json(
                    400, {"error": "invalid_grant", "error_description": "Missing code verifier."}
                )
            if not _VERIFIER.match(verifier) or not hmac.compare_digest(
                s256(verifier), info["challenge"]
            ):
                return _json(
                    400, {"error": "invalid_grant", "error_description": "Invalid code verifier."}
                )
        grant = {
            "email": info["email"],
            "client_id": client_id,
            "scope": info["scope"],
            "flavour": flavour,
            "tenant": tenant,
        }
        rt = self._new_refresh_token(grant) if info["send_refresh"] else None
        return _json(200, self._token_response(grant, rt, client_secret, send_refresh=True))

    def _token_from_refresh(self, f, client_id, client_secret, flavour):
        rt = f.get("refresh_token", "")
        info = self._refresh.get(rt)
        if info is None or not info["active"] or info["client_id"] != client_id:
            return _json(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "Token has been expired or revoked.",
                },
            )
        grant = {k: info[k] for k in ("email", "client_id", "scope", "flavour", "tenant")}
        if f.get("scope"):
            asked = f["scope"].split()
            have = set(info["scope"]) | {GOOGLE_SCOPE_ALIASES.get(s, s) for s in info["scope"]}
            if not set(asked) <= have:
                return _json(
                    400,
                    {
                        "error": "invalid_scope",
                        "error_description": "Scope not granted to this token.",
                    },
                )
        send_refresh = flavour == "microsoft"
        if self.rotate_refresh_tokens:
            info["active"] = False
            rt = self._new_refresh_token(grant, chain=info["chain"])
            send_refresh = True
        return _json(200, self._token_response(grant, rt, client_secret, send_refresh=send_refresh))

    # --- resource-server side
    def _bearer(self, headers):
        auth = headers.get("Authorization", "")
        return auth[7:].strip() if auth[:7].lower() == "bearer " else None

    def handle_userinfo(self, headers, query):
        token = self._bearer(headers) or query.get("access_token", [None])[-1]
        email = self.validate(token) if token else None
        if email is None:
            return (
                401,
                {
                    "WWW-Authenticate": 'Bearer error="invalid_token"',
                    "Content-Type": "application/json",
                },
                json.dumps(
                    {"error": "invalid_request", "error_description": "Invalid Credentials"}
                ).encode(),
            )
        return _json(200, {"sub": _subject(email), "email": email, "email_verified": True})

    def handle_tokeninfo(self, query):
        token = query.get("access_token", [""])[-1]
        email = self.validate(token)
        if email is None:
            return _json(400, {"error": "invalid_token", "error_description": "Invalid Value"})
        info = self._access[token]
        return _json(
            200,
            {
                "azp": info["client_id"],
                "aud": info["client_id"],
                "sub": _subject(email),
                "scope": " ".join(info["scope"]),
                "exp": str(int(info["expires"])),
                "expires_in": str(max(0, int(info["expires"] - self.clock()))),
                "email": email,
                "email_verified": "true",
                "access_type": "offline",
            },
        )

    def handle_introspect(self, form):
        token = form.get("token", [""])[-1]
        email = self.validate(token)
        if email is None:
            return _json(200, {"active": False})
        info = self._access[token]
        return _json(
            200,
            {
                "active": True,
                "email": email,
                "username": email,
                "sub": _subject(email),
                "client_id": info["client_id"],
                "scope": " ".join(info["scope"]),
                "token_type": "Bearer",
                "exp": int(info["expires"]),
            },
        )

    def handle_revoke(self, form, query):
        token = (form.get("token") or query.get("token") or [""])[-1]
        if not token or not (token in self._refresh or token in self._access):
            return _json(
                400, {"error": "invalid_token", "error_description": "Token expired or revoked"}
            )
        self.revoke(token)
        return _json(200, {})

    def dispatch(self, method, path, query, form, headers):
        m = _MS_PATH.match(path)
        if m:
            flavour, tenant, name = "microsoft", m.group("tenant"), m.group("endpoint")
        else:
            flavour, tenant = "google", None
            name = {
                "/authorize": "authorize",
                "/token": "token",
                "/userinfo": "userinfo",
                "/oidc/userinfo": "userinfo",
                "/tokeninfo": "tokeninfo",
                "/introspect": "introspect",
                "/revoke": "revoke",
                "/_callback": "callback",
            }.get(path)
        if name is None:
            return _json(404, {"error": "not_found"})
        with self._lock:
            self.calls[name] += 1
            if name == "token":
                self.calls["token." + form.get("grant_type", ["?"])[-1]] += 1
            if self._fail_next.get(name):
                status, error = self._fail_next[name].pop(0)
                return _json(status, {"error": error})
            if name == "authorize" and method == "GET":
                return self.handle_authorize(query, flavour, tenant)
            if name == "token" and method == "POST":
                return self.handle_token(form, headers.get("Authorization"), flavour, tenant)
            if name == "userinfo":
                return self.handle_userinfo(headers, query)
            if name == "tokeninfo":
                return self.handle_tokeninfo(query if method == "GET" else form)
            if name == "introspect" and method == "POST":
                return self.handle_introspect(form)
            if name == "revoke" and method == "POST":
                return self.handle_revoke(form, query)
            if name == "callback":
                return _json(200, {k: v[-1] for k, v in query.items()})
        return _json(405, {"error": "method_not_allowed"})


def _subject(email):
    return str(int(hashlib.sha256(email.lower().encode()).hexdigest()[:15], 16))


def _json(status, data):
    return (
        status,
        {
            "Content-Type": "application/json; charset=utf-8",
            "Cache-Control": "no-store",
            "Pragma": "no-cache",
        },
        json.dumps(data).encode(),
    )


def _page(status, title, text):
    body = (
        f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )
    return status, {"Content-Type": "text/html; charset=utf-8"}, body.encode()


class _Handler(BaseHTTPRequestHandler):
    oauth: OAuthServer = None
    protocol_version = "HTTP/1.1"
    timeout = 30
    server_version = "mailsync-oauth-test/1.0"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def _handle(self, method):
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        form = {}
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            raw = self.rfile.read(length)
            ctype = self.headers.get("Content-Type", "")
            if ctype.startswith("application/json"):
                try:
                    form = {k: [str(v)] for k, v in json.loads(raw or b"{}").items()}
                except (ValueError, AttributeError):
                    form = {}
            else:
                form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        try:
            status, headers, body = self.oauth.dispatch(
                method, parts.path, query, form, self.headers
            )
        except Exception as exc:  # noqa: BLE001 - report, never kill the server thread
            status, headers, body = _json(
                500, {"error": "server_error", "error_description": repr(exc)}
            )
        with self.oauth._lock:
            self.oauth.requests.append((method, parts.path, status))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")


_shared = None
_shared_lock = threading.Lock()


def shared_oauth():
    """One started :class:`OAuthServer` per process (stopped at exit).

    Tests that change its options should restore them; :func:`reset` helps. (A runner-started
    instance via env ``MAILSYNC_OAUTH`` is not supported: the test controls need the object.)
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = OAuthServer().start()
            atexit.register(_shared.stop)
        return _shared
