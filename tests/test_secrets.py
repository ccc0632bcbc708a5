# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Secrets at rest and in flight: Fernet ciphertext in the database (a ``pg_dump`` shows none of
them), a clear error for a wrong or missing key (no clear-text fallback, no crash loop), key
rotation, and no secret in Odoo's log of a sync run with failures."""

import io
import logging
import secrets as pysecrets
import subprocess
from contextlib import ExitStack
from datetime import timedelta
from unittest.mock import patch

import psycopg2
from cryptography.fernet import Fernet
from psycopg2 import sql as psql_sql

from odoo import fields, sql_db
from odoo.exceptions import AccessError, UserError
from odoo.tools import config, mute_logger
from odoo.tools.misc import exec_pg_environ, find_pg_tool

from odoo.addons.mail.tests.common import mail_new_test_user

from ..mailsync import errors, secrets
from ..mailsync.testing.oauth_server import OAuthServer
from ..models.mail_sync_credential import MailSyncKeyError
from ..models.mail_sync_oauth_mixin import param_key
from .common import MailSyncCase, new_login

from odoo.tests import tagged

CLIENT_ID = "crm-mail-sync-secrets.apps.googleusercontent.com"
KEY_OPTION = secrets.CONFIG_PARAM
MAILBOX_LOGGER = "odoo.addons.crm_mail_sync.models.mail_sync_mailbox"
MIXIN_LOGGER = "odoo.addons.crm_mail_sync.models.mail_sync_oauth_mixin"


def leaked(text, values):
    """The secrets of ``values`` that ``text`` holds: clear, base64 (both alphabets, with or
    without padding) or inside a base64 blob (SASL strings)."""
    return [value for value in values if errors.redact(text, [value]) != text]


@tagged("post_install", "-at_install")
class TestSecrets(MailSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Every secret of this class is encrypted with a key of this class's own.
        cls.key1 = Fernet.generate_key().decode()
        cls.startClassPatcher(patch.dict(config.options, {KEY_OPTION: cls.key1}))
        cls.oauth = OAuthServer(
            client_id=CLIENT_ID, client_secret="cs-" + pysecrets.token_urlsafe(16)
        ).start()
        cls.addClassCleanup(cls.oauth.stop)
        cls.admin = mail_new_test_user(
            cls.env, login="sec_admin", name="Ada Admin", groups="base.group_user,base.group_system"
        )

    # ------------------------------------------------------------------ helpers
    def _configure_google(self):
        ICP = self.env["ir.config_parameter"].sudo()
        ICP.set_param(param_key("google", "client_id"), CLIENT_ID)
        ICP.set_param(
            param_key("google", "client_secret"),
            self.env["mail.sync.credential"]._encrypt(self.oauth.client_secret),
        )
        for name, value in self.oauth.endpoints("google").items():
            if name in ("auth_uri", "token_uri", "userinfo_uri"):
                ICP.set_param(param_key("google", name), value)

    def _oauth_mailbox(self, user):
        login = new_login("oauth")
        tokens = self.oauth.issue_tokens(login)
        mailbox = self.env["mail.sync.mailbox"].create(
            {
                "user_id": user.id,
                "email": login,
                "provider": "gmail",
                "auth_method": "oauth",
                "imap_host": self.dovecot.host,
                "imap_port": self.dovecot.port,
                "imap_security": "none",
                "imap_login": login,
            }
        )
        mailbox._set_secret("refresh_token", tokens["refresh_token"])
        mailbox._set_secret(
            "access_token",
            tokens["access_token"],
            expires_at=fields.Datetime.now() + timedelta(hours=1),
        )
        return mailbox, tokens

    def _tokens(self):
        env = self.env
        env.flush_all()
        env.cr.execute("SELECT kind, token FROM mail_sync_credential ORDER BY id")
        rows = env.cr.fetchall()
        env.cr.execute(
            "SELECT value FROM ir_config_parameter WHERE key LIKE %s",
            ["crm_mail_sync.%client_secret"],
        )
        return rows + [("client_secret", value) for (value,) in env.cr.fetchall()]

    def _config_keys(self, value):
        return patch.dict(config.options, {KEY_OPTION: value})

    # ------------------------------------------------------------------ at rest
    def test_secrets_are_fernet_ciphertext(self):
        self._configure_google()
        login, password = self._dovecot_user()
        mailbox = self._mailbox(self.user_sales, login, password)
        oauth_mailbox, tokens = self._oauth_mailbox(self.user_jr)
        oauth_mailbox.with_user(self.user_jr).action_connect_google()  # nonce + PKCE verifier
        state = oauth_mailbox.sudo()._get_secret("oauth_state")
        self.assertIn("verifier", state)
        clear = [
            password,
            tokens["refresh_token"],
            tokens["access_token"],
            self.oauth.client_secret,
            state,
        ]
        rows = self._tokens()
        self.assertEqual(
            {kind for kind, _token in rows},
            {"password", "refresh_token", "access_token", "oauth_state", "client_secret"},
        )
        box = secrets.SecretBox(self.key1)
        for kind, token in rows:
            with self.subTest(kind=kind):
                self.assertTrue(token.startswith("gAAAAA"), kind)  # Fernet, version 0x80
                self.assertIn(box.decrypt(token), clear)
                self.assertFalse(leaked(token, clear))
        self.assertEqual(mailbox._get_secret("password"), password)
        self.assertEqual(mailbox.read(["password"])[0]["password"], False)

    def test_pg_dump_shows_no_secret(self):
        """A database holding every kind of secret, dumped with pg_dump: no secret, in clear or
        in base64, and no key.

        pg_dump sees committed data only, and this test's transaction is never committed.
        Committing the secrets to the test database (even briefly) would show them to
        concurrent tests and leave them behind when the run is killed before the clean-up, so
        nothing is committed there: the test transaction's whole content (every table, as this
        transaction sees it, with its schema) is copied into a throwaway database created from
        ``template0`` (``<test db>_dump_<hex>``), and that database is dumped and dropped.
        A killed run leaves at most that throwaway database; the next run of this test drops
        it before it starts."""
        login, password = self._dovecot_user()
        self._configure_google()
        mailbox = self._mailbox(self.user_sales, login, password)
        oauth_mailbox, tokens = self._oauth_mailbox(self.user_jr)
        oauth_mailbox.with_user(self.user_jr).action_connect_google()
        state = oauth_mailbox.sudo()._get_secret("oauth_state")
        self.assertEqual(mailbox.imap_login, login)
        self.assertEqual(len(self._tokens()), 5)
        clear = {
            "password": password,
            "refresh": tokens["refresh_token"],
            "access": tokens["access_token"],
            "client": self.oauth.client_secret,
            "oauth_state": state,
            "key": self.key1,
        }
        dump = self._pg_dump_of_this_transaction()
        self.assertIn("gAAAAA", dump)  # the ciphertext is there
        self.assertIn(login, dump)
        for name, value in clear.items():
            with self.subTest(secret=name):
                self.assertNotIn(value, dump)
                for variant in errors._b64_variants(value):
                    self.assertNotIn(variant, dump)
        # The base64 runs of the dump do not decode to a secret either.
        self.assertFalse(leaked(dump, list(clear.values())))

    def _pg_dump_of_this_transaction(self):
        """``pg_dump`` (plain SQL) of a throwaway copy of the test transaction's database."""
        pg_dump, psql = find_pg_tool("pg_dump"), find_pg_tool("psql")
        dbname = self.env.cr.dbname
        prefix = f"{dbname[:40]}_dump_"
        scratch = prefix + pysecrets.token_hex(4)
        admin = psycopg2.connect(**sql_db.connection_info_for("postgres")[1])
        admin.autocommit = True
        self.addCleanup(admin.close)

        def drop(name):
            with admin.cursor() as cur:
                cur.execute(
                    psql_sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        psql_sql.Identifier(name)
                    )
                )

        with admin.cursor() as cur:  # left over by a killed run of this test
            cur.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [prefix])
            for (leftover,) in cur.fetchall():
                drop(leftover)
            cur.execute(
                psql_sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
                    psql_sql.Identifier(scratch)
                )
            )
        self.addCleanup(drop, scratch)
        pg_env = exec_pg_environ()
        # The schema (committed; the test does not change it), without indexes and constraints.
        schema = subprocess.run(
            [pg_dump, "--section=pre-data", "--no-owner", "--no-privileges", dbname],
            env=pg_env,
            capture_output=True,
            check=True,
            timeout=300,
        ).stdout
        subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", scratch],
            input=schema,
            env=pg_env,
            capture_output=True,
            check=True,
            timeout=300,
        )
        # The data: every table as this transaction sees it (its own uncommitted rows too).
        self.env.flush_all()
        cr = self.env.cr
        cr.execute("""SELECT c.relname FROM pg_class c
                      JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')""")
        tables = [name for (name,) in cr.fetchall()]
        target = psycopg2.connect(**sql_db.connection_info_for(scratch)[1])
        try:
            with target.cursor() as out:
                for table in tables:
                    buffer = io.BytesIO()
                    cr._obj.copy_expert(f'COPY "{table}" TO STDOUT', buffer)
                    buffer.seek(0)
                    out.copy_expert(f'COPY "{table}" FROM STDIN', buffer)
            target.commit()
        finally:
            target.close()
        return subprocess.run(
            [pg_dump, "--no-owner", scratch],
            env=pg_env,
            capture_output=True,
            check=True,
            timeout=300,
        ).stdout.decode("utf-8", "replace")

    # ------------------------------------------------------------------ wrong or missing key
    def test_wrong_key_is_a_clear_error_not_a_crash_loop(self):
        login, password = self._dovecot_user()
        mailbox = self._enabled_mailbox(self.user_sales, login, password)
        cipher = dict(self._tokens())["password"]
        with self._config_keys(Fernet.generate_key().decode()):
            # The button: a UserError naming the fix.
            with self.assertRaises(UserError) as caught, mute_logger(MAILBOX_LOGGER):
                mailbox.with_user(self.user_sales).action_sync_now()
            self.assertIn(KEY_OPTION, str(caught.exception))
            self.assertIn(secrets.ENV_VAR, str(caught.exception))
            with self.assertRaises(UserError) as caught, mute_logger(MAILBOX_LOGGER):
                mailbox.with_user(self.user_sales).action_test_connection()
            self.assertIn(KEY_OPTION, str(caught.exception))
            # The cron: Error status and one error-log entry with the fix, run after run.
            mailbox.invalidate_recordset()
            now = fields.Datetime.now()
            with mute_logger(MAILBOX_LOGGER):
                for minutes in (0, 5, 10):
                    with patch.object(
                        fields.Datetime, "now", return_value=now + timedelta(minutes=minutes)
                    ):
                        mailbox.write({"next_sync": False})
                        self.env["mail.sync.mailbox"]._cron_sync()
            self.assertEqual(mailbox.state, "error")
            log = mailbox.log_ids.filtered(lambda entry: entry.kind == "key")
            self.assertEqual(len(log), 1)
            self.assertGreaterEqual(log.count, 3)
            self.assertIn(KEY_OPTION, log.fix)
            self.assertIn("decrypted", mailbox.last_error)
        # A malformed key: nothing is stored, and certainly not in clear.
        with self._config_keys("not-a-fernet-key"):
            with self.assertRaises(UserError) as caught:
                mailbox.write({"password": "NewPass-never-stored"})
            self.assertIn(KEY_OPTION, str(caught.exception))
            self.assertNotIn("NewPass-never-stored", str(caught.exception))
        self.assertEqual(dict(self._tokens())["password"], cipher)
        # The right key again: the same secret works.
        self.assertEqual(mailbox._get_secret("password"), password)
        mailbox.invalidate_recordset()
        self._sync(mailbox)
        self.assertEqual(mailbox.state, "enabled", mailbox.last_error)

    def test_key_error_is_both_user_error_and_sync_error(self):
        exc = MailSyncKeyError("detail")
        self.assertIsInstance(exc, UserError)
        self.assertIsInstance(exc, errors.SyncError)
        self.assertEqual(exc.kind, "key")
        self.assertFalse(exc.retryable)
        self.assertIn(KEY_OPTION, exc.args[0])

    # ------------------------------------------------------------------ rotation
    def test_key_rotation(self):
        self._configure_google()
        login, password = self._dovecot_user()
        mailbox = self._enabled_mailbox(self.user_sales, login, password)
        oauth_mailbox, tokens = self._oauth_mailbox(self.user_jr)
        before = self._tokens()
        key2 = Fernet.generate_key().decode()
        with self._config_keys(f"{key2},{self.key1}"):
            # A new key in front: every secret still works (the old key still decrypts).
            self.assertEqual(mailbox._get_secret("password"), password)
            self.assertEqual(oauth_mailbox._get_secret("refresh_token"), tokens["refresh_token"])
            self.assertEqual(oauth_mailbox._oauth_app("google")[1], self.oauth.client_secret)
            self._sync(mailbox)
            self.assertEqual(mailbox.state, "enabled", mailbox.last_error)
            # Only administrators rotate; through the action of the mailboxes list.
            with self.assertRaises(AccessError):
                self.env["mail.sync.credential"].with_user(self.user_manager)._rotate_keys()
            action = self.env.ref("crm_mail_sync.action_mail_sync_rotate_keys")
            self.assertEqual(action.groups_id, self.env.ref("base.group_system"))
            result = (
                action.with_user(self.admin)
                .with_context(active_model="mail.sync.mailbox")
                .sudo(False)
                .run()
            )
            self.assertEqual(result["tag"], "display_notification")
            after = self._tokens()
            self.assertEqual(len(after), len(before))
            new_only = secrets.SecretBox(key2)
            old_only = secrets.SecretBox(self.key1)
            for (kind, old), (kind2, new) in zip(before, after):
                with self.subTest(kind=kind):
                    self.assertEqual(kind, kind2)
                    self.assertNotEqual(old, new)
                    self.assertEqual(new_only.decrypt(new), old_only.decrypt(old))
                    self.assertFalse(old_only.is_encrypted(new))
        # The old key removed: everything still works with the new one alone.
        with self._config_keys(key2):
            self.assertEqual(mailbox._get_secret("password"), password)
            self.assertEqual(oauth_mailbox._get_secret("access_token"), tokens["access_token"])
            self.assertEqual(oauth_mailbox._oauth_app("google")[1], self.oauth.client_secret)
            mailbox.write({"next_sync": False})
            self._sync(mailbox)
            self.assertEqual(mailbox.state, "enabled", mailbox.last_error)
        # A key that decrypts nothing: the rotation refuses, and changes nothing.
        with self._config_keys(Fernet.generate_key().decode()):
            with self.assertRaises(MailSyncKeyError) as caught:
                self.env["mail.sync.credential"]._rotate_keys()
            self.assertIn(KEY_OPTION, str(caught.exception))
        self.assertEqual(self._tokens(), after)

    # ------------------------------------------------------------------ never in the log
    def test_sync_run_with_failures_logs_no_secret(self):
        self._configure_google()
        login, _password = self._dovecot_user()
        wrong = "Wrong-" + pysecrets.token_urlsafe(16)
        bad = self._enabled_mailbox(self.user_sales, login, wrong)
        oauth_mailbox, tokens = self._oauth_mailbox(self.user_jr)
        oauth_mailbox._enable()
        self.oauth.revoke(tokens["refresh_token"])  # revoked at Google: access token too
        self.oauth.expire_all_access_tokens()
        # An expired access token in the database: the sync must refresh, and is refused.
        oauth_mailbox._set_secret(
            "access_token",
            tokens["access_token"],
            expires_at=fields.Datetime.now() - timedelta(hours=1),
        )
        clear = [
            wrong,
            tokens["refresh_token"],
            tokens["access_token"],
            self.oauth.client_secret,
            self.key1,
        ]

        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        names = [
            "",
            "odoo",
            "odoo.addons.crm_mail_sync",
            "odoo.sql_db",
            "imapclient",
            "imaplib",
            "urllib3",
            "requests",
            "requests_oauthlib",
            "oauthlib",
            "google_auth_oauthlib",
            MAILBOX_LOGGER,
            MIXIN_LOGGER,
        ]
        with ExitStack() as stack:
            for name in names:
                logger = logging.getLogger(name)
                stack.callback(logger.setLevel, logger.level)
                logger.setLevel(logging.DEBUG)
            root = logging.getLogger()
            root.addHandler(handler)
            stack.callback(root.removeHandler, handler)
            self.env["mail.sync.mailbox"]._cron_sync()
            shown = []
            for mailbox in (bad, oauth_mailbox):
                mailbox.write({"next_sync": False})
                for action in ("action_sync_now", "action_test_connection"):
                    try:
                        getattr(mailbox.with_user(mailbox.user_id), action)()
                    except UserError as exc:
                        shown.append(str(exc))
        text = stream.getvalue()
        self.assertIn("Mail Sync", text)  # the run did log
        self.env.invalidate_all()
        self.assertEqual((bad.state, oauth_mailbox.state), ("error", "error"))
        self.assertEqual(len(shown), 4)
        self.assertIn("Authentication failed. Please try again.", shown[0])
        self.assertFalse(leaked(text, clear), "a secret is in Odoo's log")
        self.assertFalse(leaked("\n".join(shown), clear), "a secret is shown to the user")
        logs = (bad | oauth_mailbox).log_ids
        self.assertEqual(set(logs.mapped("kind")), {"auth", "oauth_revoked"})
        stored = "\n".join(
            str(v) for entry in logs.read(["summary", "message", "fix"]) for v in entry.values()
        )
        stored += "\n".join(str(m.last_error) for m in bad | oauth_mailbox)
        self.assertFalse(leaked(stored, clear), "a secret is in the error log")
        # Exports and chatter of the mailboxes hold none either.
        exported = bad.export_data(["email", "password", "last_error", "log_ids/message"])
        self.assertFalse(leaked(str(exported), clear))
        chatter = (
            self.env["mail.message"]
            .sudo()
            .search(
                [("model", "=", "mail.sync.mailbox"), ("res_id", "in", (bad | oauth_mailbox).ids)]
            )
        )
        self.assertFalse(leaked(str(chatter.mapped("body")), clear))
