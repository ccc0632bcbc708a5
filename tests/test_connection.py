# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import time

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..mailsync import errors
from ..mailsync.testing import closed_port
from ..mailsync.testing.smtp_server import shared_smtp
from .common import MailSyncCase, silent_server

AUTH_FAILED = "Authentication failed. Please try again."


@tagged("post_install", "-at_install")
class TestConnection(MailSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.login, cls.password = cls._dovecot_user()
        cls.smtp = shared_smtp()
        cls.smtp.add_user(cls.login, cls.password)

    def _smtp_values(self):
        return {"smtp_host": self.smtp.host, "smtp_port": self.smtp.port, "smtp_security": "none"}

    def test_connection_ok(self):
        mailbox = self._mailbox(self.user_sales, self.login, self.password, **self._smtp_values())
        action = mailbox.with_user(self.user_sales).action_test_connection()
        self.assertEqual(action["tag"], "display_notification")
        self.assertEqual(action["params"]["type"], "success")
        self.assertEqual(mailbox.state, "enabled")
        self.assertFalse(mailbox.last_error)

    def test_wrong_password(self):
        mailbox = self._mailbox(self.user_sales, self.login, "not-the-password")
        with (
            self.assertRaises(UserError) as caught,
            mute_logger("odoo.addons.crm_mail_sync.models.mail_sync_mailbox"),
        ):
            mailbox.with_user(self.user_sales).action_test_connection()
        message = str(caught.exception)
        self.assertTrue(message.startswith(AUTH_FAILED), message)
        self.assertIn(errors.fix_for("auth", "generic"), message)
        self.assertNotIn("not-the-password", message)
        self.assertEqual(mailbox.state, "draft")

    def test_wrong_password_gmail_fix(self):
        mailbox = self._mailbox(
            self.user_sales,
            self.login,
            "not-the-password",
            provider="gmail",
            imap_host=self.dovecot.host,
            imap_port=self.dovecot.port,
            imap_security="none",
        )
        with (
            self.assertRaises(UserError) as caught,
            mute_logger("odoo.addons.crm_mail_sync.models.mail_sync_mailbox"),
        ):
            mailbox.action_test_connection()
        message = str(caught.exception)
        self.assertTrue(message.startswith(AUTH_FAILED), message)
        self.assertIn(errors.fix_for("auth", "gmail"), message)
        self.assertIn("app password", message)

    def test_wrong_smtp_password(self):
        self.smtp.add_user("smtp-only@sales.example.test", "smtp-secret")
        mailbox = self._mailbox(
            self.user_sales,
            self.login,
            self.password,
            smtp_login="smtp-only@sales.example.test",
            **self._smtp_values(),
        )
        # The SMTP login uses the same stored password, which the SMTP server does not accept.
        with (
            self.assertRaises(UserError) as caught,
            mute_logger("odoo.addons.crm_mail_sync.models.mail_sync_mailbox"),
        ):
            mailbox.action_test_connection()
        self.assertTrue(str(caught.exception).startswith(AUTH_FAILED), str(caught.exception))
        self.assertEqual(mailbox.state, "draft")

    def test_refused_port(self):
        port = closed_port()
        mailbox = self._mailbox(self.user_sales, self.login, self.password, imap_port=port)
        with (
            self.assertRaises(UserError) as caught,
            mute_logger("odoo.addons.crm_mail_sync.models.mail_sync_mailbox"),
        ):
            mailbox.action_test_connection()
        message = str(caught.exception)
        self.assertIn(f"127.0.0.1:{port}", message)
        self.assertIn(errors.fix_for("refused"), message)
        self.assertFalse(message.startswith(AUTH_FAILED))

    def test_silent_server_times_out(self):
        self.env["ir.config_parameter"].sudo().set_param("crm_mail_sync.connect_timeout", "1")
        with silent_server() as port:
            mailbox = self._mailbox(self.user_sales, self.login, self.password, imap_port=port)
            start = time.monotonic()
            with (
                self.assertRaises(UserError) as caught,
                mute_logger("odoo.addons.crm_mail_sync.models.mail_sync_mailbox"),
            ):
                mailbox.action_test_connection()
            elapsed = time.monotonic() - start
        self.assertLess(elapsed, 10)
        self.assertIn(f"127.0.0.1:{port}", str(caught.exception))
        self.assertIn("did not answer in time", str(caught.exception))

    def test_no_password(self):
        mailbox = self._mailbox(self.user_sales, self.login, False)
        with (
            self.assertRaises(UserError),
            mute_logger("odoo.addons.crm_mail_sync.models.mail_sync_mailbox"),
        ):
            mailbox.action_test_connection()

    def test_other_users_mailbox(self):
        mailbox = self._mailbox(self.user_sales, self.login, self.password)
        with self.assertRaises(AccessError):
            mailbox.with_user(self.user_jr).action_test_connection()
