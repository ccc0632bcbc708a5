# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Connect with Google / Microsoft 365, for real: a loopback OAuth server plays the provider's
authorization, token and identity endpoints (nothing patched), a private Dovecot checks the
bearer tokens against it (XOAUTH2 over IMAP), the loopback SMTP server does the same for SMTP.
"""

import datetime
import json
import urllib.parse
from datetime import timedelta
from unittest.mock import patch

import requests
from freezegun import freeze_time

from odoo.exceptions import AccessError, RedirectWarning, UserError
from odoo.tests import HttpCase, tagged
from odoo.tools import mute_logger

from ..mailsync import errors
from ..mailsync.testing.dovecot import DovecotServer
from ..mailsync.testing.hostile import HostileServer
from ..mailsync.testing.oauth_server import OAuthServer
from ..mailsync.testing.smtp_server import SmtpServer
from ..models.mail_sync_oauth_mixin import CALLBACK_PATH, param_key
from .common import MailSyncCase, new_login

CLIENT_ID = "crm-mail-sync-test.apps.googleusercontent.com"
CLIENT_SECRET = "crm-mail-sync-test-secret"
TENANT = "contoso.onmicrosoft.com"
MIXIN_LOGGER = "odoo.addons.crm_mail_sync.models.mail_sync_oauth_mixin"
MAILBOX_LOGGER = "odoo.addons.crm_mail_sync.models.mail_sync_mailbox"
CONTROLLER_LOGGER = "odoo.addons.crm_mail_sync.controllers.main"
GMAIL_WEB_LOGIN = (
    b"NO [ALERT] Application-specific password required: "
    b"https://support.google.com/accounts/answer/185833 (Failure)"
)


class GmailAppPasswordServer(HostileServer):
    """Answers LOGIN as Gmail does for an account that needs an app password or OAuth
    (the ``throttled`` mode slot is reused for it)."""

    def _mode_throttled(self, conn):
        self._imap(conn, "app_password", fail_at="LOGIN", reply=GMAIL_WEB_LOGIN)


class _Rollback(Exception):
    pass


@tagged("post_install", "-at_install")
class TestOAuth(MailSyncCase, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.oauth = OAuthServer(client_id=CLIENT_ID, client_secret=CLIENT_SECRET).start()
        cls.addClassCleanup(cls.oauth.stop)
        cls.dovecot = DovecotServer(oauth_introspection_url=cls.oauth.introspection_url).start()
        cls.addClassCleanup(cls.dovecot.stop)
        cls.smtp = SmtpServer(token_validator=cls.oauth.validate).start()
        cls.addClassCleanup(cls.smtp.stop)
        ICP = cls.env["ir.config_parameter"].sudo()
        Credential = cls.env["mail.sync.credential"]
        for provider in ("google", "microsoft"):
            ICP.set_param(param_key(provider, "client_id"), CLIENT_ID)
            ICP.set_param(param_key(provider, "client_secret"), Credential._encrypt(CLIENT_SECRET))
            for name, value in cls.oauth.endpoints(provider, tenant=TENANT).items():
                if name in ("auth_uri", "token_uri", "userinfo_uri", "tenant"):
                    ICP.set_param(param_key(provider, name), value)
            ICP.set_param(
                param_key(provider, "imap_server"), f"{cls.dovecot.host}:{cls.dovecot.port}:none"
            )
            ICP.set_param(
                param_key(provider, "smtp_server"), f"{cls.smtp.host}:{cls.smtp.port}:none"
            )

    def setUp(self):
        super().setUp()
        self.oauth.rotate_refresh_tokens = False
        self.oauth.access_token_lifetime = 3600
        self.login, self.password = self._dovecot_user(new_login("oauth"))
        self.smtp.add_user(self.login, self.password)
        self.oauth.set_account(self.login)
        self.oauth.reset_counters()

    # ------------------------------------------------------------------ helpers
    def _draft_mailbox(self, user=None, **values):
        vals = {
            "email": "typo@example.test",
            "imap_login": "typo@example.test",
            "provider": "gmail",
        }
        vals.update(values)
        return self._mailbox(
            user or self.user_sales, vals.pop("email"), vals.pop("password", False), **vals
        )

    def _credentials(self, mailbox):
        """Every credential row of the mailbox: ``{kind: (ciphertext, expires_at)}``."""
        rows = self.env["mail.sync.credential"].sudo().search([("mailbox_id", "=", mailbox.id)])
        return {row.kind: (row.token, row.expires_at) for row in rows}

    def _consent(self, mailbox, user=None, provider="google"):
        """Click the button, let the provider's consent screen answer: the callback URL."""
        user = user or mailbox.user_id
        action = getattr(mailbox.with_user(user), f"action_connect_{provider}")()
        self.assertEqual(action["type"], "ir.actions.act_url")
        self.assertEqual(action["target"], "self")
        answer = requests.get(action["url"], allow_redirects=False, timeout=10)
        self.assertEqual(answer.status_code, 302, answer.text)
        callback = answer.headers["Location"]
        self.assertTrue(callback.startswith(self.base_url() + CALLBACK_PATH + "?"), callback)
        return callback

    def _callback(self, url, user):
        self.authenticate(user.login, user.login)
        return self.url_open(url, allow_redirects=False)

    def _connect(self, mailbox, provider="google"):
        response = self._callback(self._consent(mailbox, provider=provider), mailbox.user_id)
        self.assertEqual(response.status_code, 303, response.text[:500])
        self.assertTrue(
            response.headers["Location"].endswith(f"/odoo/mail.sync.mailbox/{mailbox.id}"),
            response.headers["Location"],
        )
        self.env.invalidate_all()
        return response

    def _assert_refused(self, response, words):
        self.assertEqual(response.status_code, 403)
        self.assertIn("The mailbox was not connected", response.text)
        self.assertIn(words, response.text)

    @staticmethod
    def _with_state(url, state):
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        query["state"] = state
        return parts._replace(query=urllib.parse.urlencode(query)).geturl()

    def _recorded(self, mailbox):
        return {(m.message_id, m.model, m.res_id) for m in self._synced(mailbox)}

    def _refresh_token(self, mailbox):
        return mailbox.sudo()._get_secret("refresh_token")

    # ------------------------------------------------------------------ the browser
    def test_tour_connect_with_google(self):
        mailbox = self._draft_mailbox()
        self.assertEqual(mailbox.state, "draft")
        self.start_tour(
            f"/odoo/mail.sync.mailbox/{mailbox.id}",
            "crm_mail_sync_connect_google",
            login=self.user_sales.login,
        )
        self.env.invalidate_all()
        self.assertEqual(mailbox.state, "enabled")
        self.assertEqual(mailbox.auth_method, "oauth")
        self.assertEqual(mailbox.email, self.login)  # from the identity answer
        self.assertEqual(mailbox.imap_login, self.login)
        self.assertEqual(
            (mailbox.imap_host, mailbox.imap_port), (self.dovecot.host, self.dovecot.port)
        )
        creds = self._credentials(mailbox)
        self.assertEqual(set(creds), {"refresh_token", "access_token"})
        self.assertTrue(creds["access_token"][1])  # expiry kept
        self.assertEqual(self.oauth.calls["token.authorization_code"], 1)
        refresh = self._refresh_token(mailbox)
        self.assertTrue(self.oauth.refresh_token_active(refresh))
        self.assertNotIn(refresh, creds["refresh_token"][0])  # encrypted at rest

    # ------------------------------------------------------------------ the state
    def test_forged_state_refused_and_nothing_stored(self):
        mailbox = self._draft_mailbox()
        callback = self._consent(mailbox)
        before = self._credentials(mailbox)
        self.assertEqual(set(before), {"oauth_state"})
        state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))["state"]
        payload, signature = state.split(".")
        forged = [
            "",  # none
            "not-a-state",  # garbage
            f"{payload}.{'0' * len(signature)}",  # wrong signature
            f"{payload[:-2]}xy.{signature}",  # payload changed, old signature
        ]
        with mute_logger(MIXIN_LOGGER):
            for value in forged:
                response = self._callback(self._with_state(callback, value), self.user_sales)
                self._assert_refused(response, "")
        self.env.invalidate_all()
        self.assertEqual(self._credentials(mailbox), before)
        self.assertEqual(mailbox.state, "draft")
        self.assertEqual(mailbox.auth_method, "password")
        self.assertEqual(self.oauth.calls["token"], 0)  # the code was never used

        # Someone else's browser (another signed-in user) cannot use it either.
        with mute_logger(MIXIN_LOGGER):
            response = self._callback(callback, self.user_jr)
        self._assert_refused(response, "another user")
        self.env.invalidate_all()
        self.assertEqual(self._credentials(mailbox), before)
        # The genuine answer, for the genuine user, still works afterwards.
        self._callback(callback, self.user_sales)
        self.env.invalidate_all()
        self.assertEqual(mailbox.state, "enabled")

    def test_replayed_state_refused(self):
        mailbox = self._draft_mailbox()
        callback = self._consent(mailbox)
        self._connect_with(callback, mailbox)
        stored = self._credentials(mailbox)
        self.assertNotIn("oauth_state", stored)  # burnt at the first use
        calls = self.oauth.calls["token"]
        with mute_logger(MIXIN_LOGGER):
            response = self._callback(callback, self.user_sales)
        self._assert_refused(response, "already used")
        self.env.invalidate_all()
        self.assertEqual(self._credentials(mailbox), stored)
        self.assertEqual(self.oauth.calls["token"], calls)

    def _connect_with(self, callback, mailbox):
        response = self._callback(callback, mailbox.user_id)
        self.assertEqual(response.status_code, 303, response.text[:500])
        self.env.invalidate_all()
        self.assertEqual(mailbox.state, "enabled")

    def test_superseded_and_expired_state_refused(self):
        mailbox = self._draft_mailbox()
        first = self._consent(mailbox)
        second = self._consent(mailbox)  # a second click: only the newest answer counts
        with mute_logger(MIXIN_LOGGER):
            self._assert_refused(self._callback(first, self.user_sales), "newer sign-in")
        stored = self._credentials(mailbox)
        with freeze_time(datetime.datetime.now() + timedelta(minutes=11)):
            response = self._callback(second, self.user_sales)
        self._assert_refused(response, "expired")
        self.env.invalidate_all()
        self.assertEqual(self._credentials(mailbox), stored)
        self.assertEqual(mailbox.state, "draft")

    def test_consent_refused_by_user(self):
        mailbox = self._draft_mailbox()
        self.oauth.deny_next()
        with mute_logger(CONTROLLER_LOGGER):
            response = self._callback(self._consent(mailbox), self.user_sales)
        self._assert_refused(response, "access_denied")
        self.env.invalidate_all()
        self.assertEqual(set(self._credentials(mailbox)), set())
        self.assertEqual(mailbox.state, "draft")

    def test_only_the_owner_connects(self):
        mailbox = self._draft_mailbox(user=self.user_jr)
        with self.assertRaises(AccessError):
            mailbox.with_user(self.user_manager).action_connect_google()
        self.assertFalse(self._credentials(mailbox))

    def test_not_configured(self):
        mailbox = self._draft_mailbox()
        self.env["ir.config_parameter"].sudo().set_param(param_key("google", "client_id"), "")
        with self.assertRaisesRegex(UserError, "Settings"):
            mailbox.with_user(self.user_sales).action_connect_google()

    def test_connect_from_my_profile(self):
        """My Profile ▸ Mail Sync ▸ Connect with Google: the mailbox is created and connected."""
        Mailbox = self.env["mail.sync.mailbox"]
        self.assertFalse(Mailbox.search([("user_id", "=", self.user_jr.id)]))
        with self.assertRaises(AccessError):
            self.user_jr.with_user(self.user_sales).action_mail_sync_connect_google()
        action = self.user_jr.with_user(self.user_jr).action_mail_sync_connect_google()
        mailbox = Mailbox.search([("user_id", "=", self.user_jr.id)])
        self.assertEqual(len(mailbox), 1)
        answer = requests.get(action["url"], allow_redirects=False, timeout=10)
        self._connect_with(answer.headers["Location"], mailbox)
        self.assertEqual((mailbox.email, mailbox.provider), (self.login, "gmail"))
        self.assertEqual(self.user_jr.mail_sync_state, "enabled")

    # ------------------------------------------------------------------ tokens over time
    def test_expired_access_token_refreshed_by_next_sync(self):
        mailbox = self._draft_mailbox()
        self._load(self.login, self._corpus(self.login, 6))
        self._connect(mailbox)
        old = self._credentials(mailbox)["access_token"]
        self.oauth.expire_all_access_tokens()  # the provider's side of "one hour later"
        refreshes = self.oauth.calls["token.refresh_token"]
        with freeze_time(datetime.datetime.now() + timedelta(hours=2)):
            self.env["mail.sync.mailbox"]._cron_sync()
            self.env.invalidate_all()
            self.assertEqual(mailbox.state, "enabled", mailbox.last_error)
            self.assertEqual(self.oauth.calls["token.refresh_token"], refreshes + 1)
            new = self._credentials(mailbox)["access_token"]
            self.assertNotEqual(new, old)
            self.assertGreater(new[1], datetime.datetime.now() + timedelta(minutes=50))
            self.assertTrue(self._synced(mailbox))
            # Fresh token: the next sync uses it as it is.
            mailbox.next_sync = False
            self.env["mail.sync.mailbox"]._cron_sync()
        self.assertEqual(self.oauth.calls["token.refresh_token"], refreshes + 1)

    def test_rotated_refresh_token_replaces_the_old_one(self):
        mailbox = self._draft_mailbox()
        self._connect(mailbox)
        first = self._refresh_token(mailbox)
        self.oauth.rotate_refresh_tokens = True
        self.oauth.expire_all_access_tokens()
        with freeze_time(datetime.datetime.now() + timedelta(hours=2)):
            mailbox._sync()
        self.env.invalidate_all()
        self.assertEqual(mailbox.state, "enabled", mailbox.last_error)
        second = self._refresh_token(mailbox)
        self.assertNotEqual(second, first)
        self.assertFalse(self.oauth.refresh_token_active(first))
        self.assertTrue(self.oauth.refresh_token_active(second))
        # and the rotated one works for the next renewal
        self.oauth.expire_all_access_tokens()
        with freeze_time(datetime.datetime.now() + timedelta(hours=4)):
            mailbox._sync()
        self.env.invalidate_all()
        self.assertEqual(mailbox.state, "enabled", mailbox.last_error)
        self.assertNotIn(self._refresh_token(mailbox), (first, second))

    def test_concurrent_refreshes_ask_the_provider_once(self):
        """The cron and the mail queue find the access token expired together: the refreshes
        are serialized per mailbox; the second finds the token the first one stored (the
        rotated refresh token included) and neither asks the provider again nor, meeting
        ``invalid_grant`` with the old refresh token, deletes the new one."""
        mailbox = self._draft_mailbox()
        self._connect(mailbox)
        first = self._refresh_token(mailbox)
        self.oauth.rotate_refresh_tokens = True
        self.oauth.expire_all_access_tokens()
        refreshes = self.oauth.calls["token.refresh_token"]
        registry_cursor = type(self.registry).cursor
        opened = []

        def cursor(registry, *args, **kwargs):
            opened.append(registry)
            return registry_cursor(registry, *args, **kwargs)

        with (
            freeze_time(datetime.datetime.now() + timedelta(hours=2)),
            patch.object(type(self.registry), "cursor", cursor),
        ):
            # Both workers saw the expired token before either refreshed: both reach the
            # refresh, one after the other (the second waited for the first one's lock).
            worker_a = mailbox.sudo()._oauth_refresh("google")
            self.assertEqual(len(opened), 1, "the refresh is stored through its own cursor")
            worker_b = mailbox.sudo()._oauth_refresh("google")
            self.assertEqual(worker_b, worker_a)
            self.assertEqual(self.oauth.calls["token.refresh_token"], refreshes + 1)
            second = self._refresh_token(mailbox)
            self.assertNotEqual(second, first)
            self.assertTrue(self.oauth.refresh_token_active(second))
            self.assertFalse(self.oauth.refresh_token_active(first))
            # The public path uses the stored token as it is.
            self.assertEqual(mailbox.sudo()._access_token(), worker_a)
            self.assertEqual(self.oauth.calls["token.refresh_token"], refreshes + 1)
            self.assertEqual(self.oauth.validate(worker_a), self.login)
            self.assertIn(worker_a, mailbox.sudo()._secrets())
            self.assertIn(second, mailbox.sudo()._secrets())
        self.assertEqual(mailbox.state, "enabled", mailbox.last_error)

        # The stored refresh token refused (invalid_grant): the dead grant is deleted.
        self.oauth.expire_all_access_tokens()
        self.oauth.revoke(second)
        refused = None
        # (not assertRaises: its savepoint would undo what the refresh's own cursor committed)
        with freeze_time(datetime.datetime.now() + timedelta(hours=4)), mute_logger(MIXIN_LOGGER):
            try:
                mailbox.sudo()._oauth_refresh("google")
            except errors.SyncError as exc:
                refused = exc
        self.assertEqual(refused and refused.kind, "oauth_revoked")
        self.assertNotIn("refresh_token", self._credentials(mailbox))
        self.assertNotIn("access_token", self._credentials(mailbox))

    def test_invalid_grant_ends_in_error_without_retry_storm(self):
        mailbox = self._draft_mailbox()
        self._connect(mailbox)
        self.oauth.revoke(self._refresh_token(mailbox))  # the user revoked access at Google
        self.oauth.expire_all_access_tokens()
        refreshes = self.oauth.calls["token.refresh_token"]
        now = datetime.datetime.now()
        with mute_logger(MIXIN_LOGGER, MAILBOX_LOGGER):
            for hour in range(2, 6):  # four cron runs, each one due again
                with freeze_time(now + timedelta(hours=hour)):
                    self.env["mail.sync.mailbox"]._cron_sync()
                    self.env.invalidate_all()
                    self.assertEqual(mailbox.state, "error")
        self.assertEqual(self.oauth.calls["token.refresh_token"], refreshes + 1)
        self.assertNotIn("refresh_token", self._credentials(mailbox))
        logs = mailbox.log_ids
        self.assertEqual(set(logs.mapped("kind")), {"oauth_revoked"})
        self.assertIn("Connect with Google", logs[0].fix)
        self.assertEqual(logs[0].fix, errors.fix_for("oauth_revoked", "gmail"))
        self.assertIn("revoked", mailbox.last_error)
        # Connecting again is the fix.
        self._connect(mailbox)
        self.assertEqual(mailbox.state, "enabled")
        self.assertTrue(self.oauth.refresh_token_active(self._refresh_token(mailbox)))

    # ------------------------------------------------------------------ XOAUTH2 = password
    def test_xoauth2_sync_records_what_password_sync_records(self):
        messages = self._corpus(self.login, 40, malformed_ratio=0)
        self._load(self.login, messages)
        mailbox = self._mailbox(
            self.user_sales,
            self.login,
            self.password,
            provider="gmail",
            imap_host=self.dovecot.host,
            imap_port=self.dovecot.port,
            imap_security="none",
        )
        mailbox._enable()
        try:
            with self.env.cr.savepoint():
                report = mailbox._sync()
                self.assertTrue(report and report.recorded, mailbox.last_error)
                by_password = self._recorded(mailbox)
                recorded_by_password = report.recorded
                raise _Rollback
        except _Rollback:
            pass
        self.env.invalidate_all()
        self.assertFalse(self._synced(mailbox))
        introspections = self.oauth.calls["introspect"]
        self._connect(mailbox)
        self.assertEqual(mailbox.auth_method, "oauth")
        self.assertFalse(mailbox.has_password)  # the server changed: the password is gone
        config = mailbox._mail_config()
        self.assertIsNone(config.password)
        self.assertTrue(config.access_token)
        report = mailbox._sync()
        self.assertTrue(report, mailbox.last_error)
        self.assertEqual(self._recorded(mailbox), by_password)
        self.assertEqual(report.recorded, recorded_by_password)
        self.assertGreater(self.oauth.calls["introspect"], introspections)  # Dovecot asked

    def test_connection_test_over_xoauth2_checks_smtp(self):
        mailbox = self._draft_mailbox()
        self._connect(mailbox)
        self.assertEqual((mailbox.smtp_host, mailbox.smtp_port), (self.smtp.host, self.smtp.port))
        # The SMTP server refuses a token it does not know: the test says so.
        self.smtp.set_token_validator(lambda token: None)
        try:
            with self.assertRaises(UserError), mute_logger(MAILBOX_LOGGER):
                mailbox.action_test_connection()
        finally:
            self.smtp.set_token_validator(self.oauth.validate)
        mailbox.action_test_connection()
        self.assertEqual(mailbox.state, "enabled")

    # ------------------------------------------------------------------ Microsoft 365
    def test_microsoft_code_flow(self):
        mailbox = self._draft_mailbox(provider="outlook")
        callback = self._consent(mailbox, provider="microsoft")
        self.assertIn(f"/{TENANT}/oauth2/v2.0/authorize", self.oauth.requests[-1][1])
        self._connect_with(callback, mailbox)
        self.assertEqual(mailbox.provider, "outlook")
        self.assertEqual(mailbox.email, self.login)  # from the id_token
        self.assertEqual(self.oauth.calls["token.authorization_code"], 1)
        refresh = self._refresh_token(mailbox)
        self.assertTrue(refresh.startswith("M.R3_"))
        self.oauth.expire_all_access_tokens()
        with freeze_time(datetime.datetime.now() + timedelta(hours=2)):
            report = mailbox._sync()
        self.assertTrue(report is not None, mailbox.last_error)
        self.assertEqual(self.oauth.calls["token.refresh_token"], 1)
        self.assertEqual(mailbox.state, "enabled")

    # ------------------------------------------------------------------ settings, fallback
    def test_settings_keep_client_secret_encrypted(self):
        ICP = self.env["ir.config_parameter"].sudo()
        settings = self.env["res.config.settings"].create(
            {
                "mail_sync_google_client_id": "other-id",
                "mail_sync_google_client_secret": "new-google-secret",
            }
        )
        settings.execute()
        stored = ICP.get_param(param_key("google", "client_secret"))
        self.assertNotIn("new-google-secret", stored)
        self.assertEqual(self.env["mail.sync.credential"]._decrypt(stored), "new-google-secret")
        self.assertEqual(ICP.get_param(param_key("google", "client_id")), "other-id")
        again = self.env["res.config.settings"].create({})
        self.assertFalse(again.mail_sync_google_client_secret)  # never shown back
        self.assertTrue(again.mail_sync_google_secret_set)
        again.execute()  # empty: the stored secret stays
        self.assertEqual(ICP.get_param(param_key("google", "client_secret")), stored)
        self.assertNotIn("new-google-secret", json.dumps(again.read()[0], default=str))
        with self.assertRaises(UserError):
            self.env["res.config.settings"].create(
                {"mail_sync_google_token_uri": "http://accounts.example.com/token"}
            ).execute()

    def test_gmail_password_refused_offers_connect_with_google(self):
        server = GmailAppPasswordServer("throttled").start()
        self.addCleanup(server.stop)
        mailbox = self._mailbox(
            self.user_sales,
            self.login,
            "the-normal-password",
            provider="gmail",
            imap_host="127.0.0.1",
            imap_port=server.port,
            imap_security="none",
            smtp_host=False,
        )
        with self.assertRaises(RedirectWarning) as caught, mute_logger(MAILBOX_LOGGER):
            mailbox.with_user(self.user_sales).action_test_connection()
        message, action_id, button, context = caught.exception.args
        self.assertIn("app password", message)
        self.assertEqual(button, "Connect with Google")
        action = self.env["ir.actions.server"].browse(action_id)
        self.assertEqual(action, self.env.ref("crm_mail_sync.action_mail_sync_connect_google"))
        result = action.with_user(self.user_sales).with_context(**context).run()
        self.assertEqual(result["type"], "ir.actions.act_url")
        self.assertTrue(result["url"].startswith(self.oauth.base_url + "/authorize?"))
