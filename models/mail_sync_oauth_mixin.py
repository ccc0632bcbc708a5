# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Connect with Google / Microsoft 365: the OAuth consent flow and the XOAUTH2 access token.

Modelled on Odoo's ``google_gmail`` / ``microsoft_outlook`` mixins, with three differences:

- the endpoints, and the app credentials, are configurable (``res.config.settings``); the client
  secrets and every token are encrypted at rest (``mail.sync.credential``), never in a field;
- the ``state`` is HMAC-signed (key: ``database.secret``) over the mailbox, the user, an expiry
  and a nonce; the nonce and the PKCE ``code_verifier`` are kept encrypted server side and
  deleted at the first callback, so a state is single-use and short-lived;
- a refresh that the provider answers with ``invalid_grant`` deletes the dead grant: the
  mailbox goes to Error ("connect again") and no further refresh is attempted until the user
  reconnects (no retry storm).

The Odoo-free protocol work is ``..mailsync.oauth``.
"""

import base64
import binascii
import json
import logging
import secrets
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone

import psycopg2.errors

from odoo import _, api, fields, models, tools
from odoo.exceptions import AccessError, RedirectWarning, UserError
from odoo.tools import SQL

from ..mailsync import errors, oauth
from ..mailsync.types import Endpoint
from .sync_run import naive_utc

_logger = logging.getLogger(__name__)

CALLBACK_PATH = "/crm_mail_sync/oauth/callback"
STATE_LIFETIME = 600  # seconds between the click and the callback
STATE_SCOPE = "crm_mail_sync_oauth_state"
STATE_KIND = "oauth_state"

# mailbox.provider <-> OAuth provider
OAUTH_PROVIDER = {"gmail": "google", "outlook": "microsoft"}
MAILBOX_PROVIDER = {"google": "gmail", "microsoft": "outlook"}
SECURITIES = ("ssl", "starttls", "none")
# cr.cache key: {mailbox id: (access token, expiry, refresh token)} refreshed through a cursor of
# its own, which this (older) transaction cannot see: used as the token and redacted from errors.
TOKEN_CACHE = "crm_mail_sync_oauth_tokens"


class OAuthRefused(Exception):
    """A callback that must not be accepted; ``str()`` is the reason shown to the user."""


def param_key(provider, name):
    """The ``ir.config_parameter`` key of one OAuth setting (``google_client_id`` …)."""
    return f"crm_mail_sync.{provider}_{name}"


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class MailSyncOAuthMixin(models.AbstractModel):
    _name = "mail.sync.oauth.mixin"
    _description = "Mail Sync OAuth (Connect with Google / Microsoft 365)"

    has_oauth_token = fields.Boolean(
        "Connected with OAuth",
        compute="_compute_has_oauth_token",
        help="A refresh token from Google or Microsoft is stored (encrypted).",
    )

    def _compute_has_oauth_token(self):
        creds = (
            self.env["mail.sync.credential"]
            .sudo()
            .search_fetch(
                [("mailbox_id", "in", self.ids), ("kind", "=", "refresh_token")], ["mailbox_id"]
            )
        )
        connected = set(creds.mailbox_id.ids)
        for record in self:
            record.has_oauth_token = record.id in connected

    # ------------------------------------------------------------------ app configuration
    @api.model
    def _oauth_app(self, provider):
        """``(client_id, client_secret, endpoints)`` of the configured app of ``provider``
        (google | microsoft). Empty settings fall back to the provider's public endpoints."""
        ICP = self.env["ir.config_parameter"].sudo()
        client_id = (ICP.get_param(param_key(provider, "client_id")) or "").strip()
        cipher = ICP.get_param(param_key(provider, "client_secret")) or ""
        client_secret = self.env["mail.sync.credential"]._decrypt(cipher) if cipher else ""
        endpoints = {}
        for name in ("auth_uri", "token_uri", "userinfo_uri"):
            value = (ICP.get_param(param_key(provider, name)) or "").strip()
            if value:
                endpoints[name] = value
        if provider == "microsoft":
            endpoints["tenant"] = (ICP.get_param(param_key(provider, "tenant")) or "").strip()
        return client_id, client_secret, endpoints

    @api.model
    def _oauth_provider(self, provider):
        """The :class:`mailsync.oauth.Provider` with the configured endpoints."""
        return oauth.get_provider(provider, self._oauth_app(provider)[2])

    @api.model
    def _oauth_server(self, provider, which):
        """The IMAP or SMTP ``Endpoint`` for ``provider``: the provider's own, unless the
        ``crm_mail_sync.<provider>_<which>_server`` parameter says ``host:port:security``
        (a proxy or a test server)."""
        override = (
            self.env["ir.config_parameter"].sudo().get_param(param_key(provider, f"{which}_server"))
        )
        if override:
            host, _sep, rest = override.strip().rpartition(":")
            host, _sep, port = host.rpartition(":") if rest in SECURITIES else (host, "", rest)
            security = rest if rest in SECURITIES else "ssl"
            if host and port.isdigit():
                return Endpoint(host, int(port), security)
            _logger.warning(
                "Mail Sync: ignoring malformed parameter %s=%r",
                param_key(provider, f"{which}_server"),
                override,
            )
        return getattr(self._oauth_provider(provider), which)

    def _oauth_redirect_uri(self):
        return self.get_base_url().rstrip("/") + CALLBACK_PATH

    # ------------------------------------------------------------------ state
    @api.model
    def _oauth_signature(self, payload):
        return tools.misc.hmac(self.env(su=True), STATE_SCOPE, payload)

    def _oauth_new_state(self, provider):
        """A signed state ``<payload>.<hmac>`` bound to this mailbox, the current user, an
        expiry and a fresh nonce; returns ``(state, nonce, expires_at)``."""
        self.ensure_one()
        nonce = secrets.token_urlsafe(24)
        expires = int(time.time()) + STATE_LIFETIME
        fields_ = [self.id, self.env.uid, provider, expires, nonce]
        payload = _b64e(json.dumps(fields_, separators=(",", ":")).encode())
        state = f"{payload}.{self._oauth_signature(payload)}"
        return state, nonce, datetime.fromtimestamp(expires, timezone.utc)

    @api.model
    def _oauth_consume_state(self, state):
        """Check a callback's ``state`` for the current user and burn it (single use).

        Returns ``(mailbox, provider, code_verifier)``; raises :class:`OAuthRefused` without
        changing anything when the state is forged, for another user or mailbox, expired,
        already used or superseded by a newer click."""
        if not state or not isinstance(state, str) or state.count(".") != 1:
            raise OAuthRefused(_("The answer carries no valid sign-in request."))
        payload, signature = state.split(".")
        if not tools.consteq(signature, self._oauth_signature(payload)):
            _logger.warning("Mail Sync: OAuth callback with a forged state (user %s)", self.env.uid)
            raise OAuthRefused(_("The answer's signature is not valid: it was not started here."))
        try:
            mailbox_id, uid, provider, expires, nonce = json.loads(_b64d(payload))
        except (ValueError, TypeError, binascii.Error):
            raise OAuthRefused(_("The answer carries no valid sign-in request.")) from None
        if uid != self.env.uid:
            _logger.warning(
                "Mail Sync: OAuth callback of user %s reached user %s", uid, self.env.uid
            )
            raise OAuthRefused(
                _(
                    "This sign-in was started by another user. Sign in to Odoo "
                    "as that user, or start again from your own mailbox."
                )
            )
        if expires < time.time():
            raise OAuthRefused(
                _(
                    "This sign-in request has expired (after %s minutes). "
                    "Start again from your mailbox.",
                    STATE_LIFETIME // 60,
                )
            )
        mailbox = self.env["mail.sync.mailbox"].sudo().browse(mailbox_id).exists()
        if not mailbox or mailbox.user_id.id != self.env.uid:
            raise OAuthRefused(_("This mailbox is not yours."))
        Credential = self.env["mail.sync.credential"].sudo()
        cred = Credential.search(
            [("mailbox_id", "=", mailbox.id), ("kind", "=", STATE_KIND)], limit=1
        )
        stored = {}
        if cred.token:
            try:
                stored = json.loads(Credential._decrypt(cred.token))
            except (ValueError, UserError):
                stored = {}
        if (
            not stored.get("nonce")
            or not tools.consteq(stored["nonce"], nonce)
            or stored.get("provider") != provider
        ):
            _logger.warning(
                "Mail Sync: OAuth callback with a used or superseded state (mailbox %s)", mailbox.id
            )
            raise OAuthRefused(
                _(
                    "This sign-in answer was already used, or a newer sign-in "
                    "was started. Start again from your mailbox."
                )
            )
        cred.unlink()
        return mailbox.with_env(self.env), provider, stored.get("verifier")

    # ------------------------------------------------------------------ consent
    def action_connect_google(self):
        return self._oauth_start("google")

    def action_connect_microsoft(self):
        return self._oauth_start("microsoft")

    def _oauth_start(self, provider):
        """Button: send the owner of this mailbox to the provider's consent screen."""
        self.ensure_one()
        self.check_access("write")
        if self.user_id != self.env.user:
            raise AccessError(
                _(
                    "Only %s can connect this mailbox: the consent is given by "
                    "the mailbox owner, signed in as themselves.",
                    self.user_id.name,
                )
            )
        client_id, client_secret, endpoints = self._oauth_app(provider)
        label = oauth.get_provider(provider, endpoints).label
        if not client_id or not client_secret:
            raise UserError(
                _(
                    "Connect with %s is not configured yet: an administrator enters "
                    "the app's client id and secret in Settings ▸ CRM ▸ Mail Sync.",
                    label,
                )
            )
        state, nonce, expires = self._oauth_new_state(provider)
        login_hint = (self.email or "").strip() if "@" in (self.email or "") else None
        try:
            url, verifier = oauth.authorization_url(
                provider,
                client_id,
                client_secret,
                self._oauth_redirect_uri(),
                state,
                endpoints,
                login_hint=login_hint,
            )
        except errors.SyncError as exc:
            raise UserError(self.env["mail.sync.log"]._translated(str(exc))) from None
        secret = json.dumps({"nonce": nonce, "verifier": verifier, "provider": provider})
        self.sudo()._set_secret(STATE_KIND, secret, expires_at=naive_utc(expires))
        return {"type": "ir.actions.act_url", "url": url, "target": "self"}

    def _oauth_finish(self, provider, code, code_verifier):
        """Callback, state accepted: exchange the code, store the grant, fill in the servers,
        test the connection and enable sync. Returns the connection-test error text, if any
        (the mailbox then stays Not connected). Raises ``SyncError`` when the exchange fails
        (nothing is stored then)."""
        self.ensure_one()
        client_id, client_secret, endpoints = self._oauth_app(provider)
        tokens = oauth.exchange_code(
            provider,
            client_id,
            client_secret,
            self._oauth_redirect_uri(),
            code,
            code_verifier,
            endpoints,
        )
        prov = oauth.get_provider(provider, endpoints)
        if not tokens.refresh_token:
            raise errors.SyncError(
                "config",
                f"{prov.label} gave no refresh token (offline access): the mailbox "
                f"could not be synced in the background.",
                retryable=False,
                provider=prov.config_provider,
            )
        imap = self._oauth_server(provider, "imap")
        smtp = self._oauth_server(provider, "smtp")
        mailbox = self.sudo()
        mailbox.write(
            {
                "email": tokens.email or mailbox.email,
                "provider": MAILBOX_PROVIDER[provider],
                "auth_method": "oauth",
                "imap_host": imap.host,
                "imap_port": imap.port,
                "imap_security": imap.security,
                "imap_login": tokens.email or mailbox.email,
                "smtp_host": smtp.host,
                "smtp_port": smtp.port,
                "smtp_security": smtp.security,
                "smtp_login": False,
            }
        )
        mailbox._oauth_store(tokens, previous_refresh=None)
        _logger.info("Mail Sync: mailbox %s connected with %s", mailbox.id, prov.label)
        try:
            # In English: the stored error is translated when read, in each reader's language.
            self.with_context(lang="en_US").action_test_connection()
        except UserError as exc:
            mailbox.with_context(mail_sync_keep_state=True).write({"last_error": str(exc)})
            return self.env["mail.sync.log"]._translated(str(exc))
        return None

    # ------------------------------------------------------------------ fallback
    def _connection_user_error(self, exc):
        """The exception the connection test raises for a failed ``exc`` (SyncError): a
        UserError, except that a Gmail password refused because Google wants an app password
        or its own sign-in offers "Connect with Google"."""
        if (
            exc.kind == "app_password"
            and self.provider == "gmail"
            and self.auth_method == "password"
        ):
            action = self.env.ref(
                "crm_mail_sync.action_mail_sync_connect_google", raise_if_not_found=False
            )
            if action:
                return RedirectWarning(
                    _(
                        "Google refused the password: this account needs an app password or "
                        "Google's own sign-in.\n%s",
                        self.env["mail.sync.log"]._translated(
                            errors.fix_for(exc.kind, self.provider)
                        ),
                    ),
                    action.id,
                    _("Connect with Google"),
                    {"active_id": self.id, "active_ids": [self.id], "active_model": self._name},
                )
        return UserError(self._user_error(exc))

    # ------------------------------------------------------------------ tokens
    def _oauth_store(self, tokens, previous_refresh):
        """Save a TokenSet: the access token with its expiry, and the refresh token when it is
        new (first grant or rotated). A refresh stores them through a cursor of its own
        (``_oauth_refresh``): a rotated refresh token survives whatever happens after it."""
        self.ensure_one()
        if tokens.refresh_token and tokens.refresh_token != previous_refresh:
            self._set_secret("refresh_token", tokens.refresh_token)
        self._set_secret(
            "access_token", tokens.access_token, expires_at=naive_utc(tokens.expires_at)
        )

    def _oauth_access_token(self):
        """A valid access token, refreshed when it expires within five minutes."""
        self.ensure_one()
        provider = OAUTH_PROVIDER.get(self.provider)
        if not provider:
            raise errors.SyncError(
                "config",
                "OAuth is only available for Gmail and Microsoft 365 mailboxes.",
                retryable=False,
            )
        Credential = self.env["mail.sync.credential"].sudo()
        cred = Credential.search(
            [("mailbox_id", "=", self.id), ("kind", "=", "access_token")], limit=1
        )
        if cred.token and not oauth.needs_refresh(cred.expires_at):
            return Credential._decrypt(cred.token)
        known = self.env.cr.cache.get(TOKEN_CACHE, {}).get(self.id)
        if known and not oauth.needs_refresh(known[1]):
            return known[0]
        return self._oauth_refresh(provider)

    @contextmanager
    def _oauth_token_env(self):
        """The environment of a token refresh: a cursor of its own, committed at once, so that
        a rotated refresh token survives whatever happens to the transaction that needed it (a
        failed send, a button's error, the sync after it). In READ COMMITTED: the row lock
        below waits for a concurrent refresh and then reads what it committed.

        Tests: in Odoo's test mode (HttpCase) the registry's cursor is a savepoint on the test
        cursor; a TransactionCase has no such mode and a second connection would not see its
        uncommitted data, so the refresh runs in the test's own transaction."""
        registry = self.env.registry
        if not registry.in_test_mode() and getattr(threading.current_thread(), "testing", False):
            yield self.env
            return
        with registry.cursor() as cr:
            if not registry.in_test_mode():
                cr.execute(SQL("SET TRANSACTION ISOLATION LEVEL READ COMMITTED"))
                timeout = int(self._get_param("connect_timeout", 30)) + 30
                cr.execute(SQL("SET LOCAL lock_timeout = %s", f"{timeout}s"))
            yield self.env(cr=cr)

    def _oauth_refresh(self, provider):
        """Refresh the access token, one worker at a time per mailbox (the cron and the mail
        queue may both need it): the refresh-token row is locked; whoever gets the lock second
        finds the token the first one stored and uses it without asking the provider again
        (with rotation, the provider would answer ``invalid_grant`` to the old refresh token
        and the grant would be deleted, new token included)."""
        self.ensure_one()
        timeout = float(self._get_param("connect_timeout", 30))
        tokens = self.env.cr.cache.setdefault(TOKEN_CACHE, {})
        tokens.pop(self.id, None)
        self.env["mail.sync.credential"].flush_model()
        try:
            with self._oauth_token_env() as env:
                access, expires_at, refresh_token = self.with_env(env)._oauth_refresh_locked(
                    provider, timeout, own=env.cr is not self.env.cr
                )
        except psycopg2.errors.LockNotAvailable:
            raise errors.SyncError(
                "timeout",
                "Another token refresh of this mailbox did not finish in time.",
                provider=self.provider,
            ) from None
        finally:
            self.env["mail.sync.credential"].invalidate_model(["token", "expires_at"])
        # This transaction may not see the stored tokens (older snapshot): keep them at hand.
        tokens[self.id] = (access, expires_at, refresh_token)
        return access

    def _oauth_refresh_locked(self, provider, timeout, own):
        """In the refresh's environment (``own``: a cursor of its own, committed here):
        ``(access token, expiry, refresh token)``."""
        cr = self.env.cr
        cr.execute(
            SQL(
                """
            SELECT id, token FROM mail_sync_credential
             WHERE mailbox_id = %s AND kind = 'refresh_token' FOR UPDATE
        """,
                self.id,
            )
        )
        row = cr.fetchone()
        Credential = self.env["mail.sync.credential"].sudo()
        Credential.invalidate_model(["token", "expires_at"])
        if not row or not row[1]:
            # The grant was revoked (or never given): only the user can fix that. No request.
            raise errors.SyncError(
                "oauth_revoked",
                "No valid grant is stored: connect the mailbox again.",
                retryable=False,
                provider=self.provider,
            )
        refresh_token = Credential._decrypt(row[1])
        cred = Credential.search(
            [("mailbox_id", "=", self.id), ("kind", "=", "access_token")], limit=1
        )
        if cred.token and not oauth.needs_refresh(cred.expires_at):
            # Another worker refreshed while this one waited for the lock.
            return Credential._decrypt(cred.token), cred.expires_at, refresh_token
        client_id, client_secret, endpoints = self._oauth_app(provider)
        try:
            tokens = oauth.refresh(
                provider, client_id, client_secret, refresh_token, endpoints, timeout=timeout
            )
        except errors.SyncError as exc:
            if exc.kind == "oauth_revoked":
                _logger.warning(
                    "Mail Sync: the OAuth grant of mailbox %s is revoked or expired; "
                    "waiting for the user to connect again",
                    self.id,
                )
                # Only the grant that was refused (still the stored one: the row is locked).
                cr.execute(
                    SQL(
                        "DELETE FROM mail_sync_credential WHERE id = %s AND token = %s",
                        row[0],
                        row[1],
                    )
                )
                if cr.rowcount:
                    self._set_secret("access_token", False)
                Credential.invalidate_model(["token", "expires_at"])
                if own:
                    cr.commit()  # pylint: disable=invalid-commit
            raise
        _logger.info(
            "Mail Sync: access token of mailbox %s refreshed%s",
            self.id,
            " (refresh token rotated)"
            if tokens.refresh_token and tokens.refresh_token != refresh_token
            else "",
        )
        self._oauth_store(tokens, previous_refresh=refresh_token)
        if own:
            cr.commit()  # pylint: disable=invalid-commit
        return (
            tokens.access_token,
            naive_utc(tokens.expires_at),
            tokens.refresh_token or refresh_token,
        )
