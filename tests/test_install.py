# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from unittest.mock import patch

from psycopg2 import IntegrityError

from odoo.exceptions import AccessError, ValidationError
from odoo.tests import tagged
from odoo.tools import mute_logger
from odoo.tools.translate import code_translations

from .common import MailSyncCase


@tagged("post_install", "-at_install")
class TestInstall(MailSyncCase):
    def test_groups_implied_by_sales(self):
        self.assertTrue(self.user_jr.has_group("crm_mail_sync.group_mail_sync_user"))
        self.assertFalse(self.user_jr.has_group("crm_mail_sync.group_mail_sync_manager"))
        self.assertTrue(self.user_sales.has_group("crm_mail_sync.group_mail_sync_user"))
        self.assertTrue(self.user_manager.has_group("crm_mail_sync.group_mail_sync_manager"))
        self.assertFalse(self.user_employee.has_group("crm_mail_sync.group_mail_sync_user"))

    def test_cron_and_parameters(self):
        cron = self.env.ref("crm_mail_sync.ir_cron_mail_sync")
        self.assertEqual(cron.model_id.model, "mail.sync.mailbox")
        self.assertEqual((cron.interval_number, cron.interval_type), (5, "minutes"))
        self.assertEqual(cron.code.strip(), "model._cron_sync()")
        params = self.env["ir.config_parameter"].sudo()
        self.assertEqual(params.get_param("crm_mail_sync.connect_timeout"), "30")
        self.assertEqual(params.get_param("crm_mail_sync.cron_batch_size"), "20")

    def test_every_model_has_access_rules(self):
        models = self.env["ir.model"].search(
            [("model", "=like", "mail.sync.%"), ("transient", "=", False)]
        )
        concrete = models.filtered(lambda m: not self.env[m.model]._abstract)
        for model in concrete:
            self.assertTrue(
                self.env["ir.model.access"].search_count([("model_id", "=", model.id)]), model.model
            )

    def test_state_description_in_the_readers_language(self):
        """The status meaning is translated (a code term: ``_lt`` in mail_sync_mailbox)."""
        login, password = self._dovecot_user()
        mailbox = self._mailbox(self.user_sales, login, password)
        english = "Mail Sync is not configured for this user account yet."
        self.assertEqual(mailbox.state_description, english)
        self.env["res.lang"]._activate_lang("fr_FR")
        french = "Mail Sync n'est pas encore configuré pour ce compte utilisateur."
        with patch.dict(
            code_translations.python_translations, {("crm_mail_sync", "fr_FR"): {english: french}}
        ):
            self.assertEqual(mailbox.with_context(lang="fr_FR").state_description, french)

    def test_defaults_and_password_never_read_back(self):
        login, password = self._dovecot_user()
        mailbox = self._mailbox(self.user_sales, login, password)
        self.assertEqual(mailbox.state, "draft")
        self.assertEqual(mailbox.imap_login, login)
        self.assertFalse(mailbox.password)
        self.assertTrue(mailbox.has_password)
        self.assertEqual(mailbox._get_secret("password"), password)
        # Stored encrypted, not in clear.
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT token FROM mail_sync_credential WHERE mailbox_id = %s", [mailbox.id]
        )
        token = self.env.cr.fetchone()[0]
        self.assertNotIn(password, token)
        # Reading as the owner or an administrator gives nothing.
        self.assertFalse(mailbox.with_user(self.user_sales).read(["password"])[0]["password"])
        self.assertFalse(mailbox.with_user(self.env.ref("base.user_admin")).password)
        # Nobody reads the credential model, administrators included.
        for user in (self.user_sales, self.user_manager, self.env.ref("base.user_admin")):
            with self.assertRaises(AccessError), mute_logger("odoo.addons.base.models.ir_model"):
                self.env["mail.sync.credential"].with_user(user).search([])

    def test_copy_does_not_copy_secrets(self):
        login, password = self._dovecot_user()
        mailbox = self._mailbox(self.user_sales, login, password)
        other_company = self.env["res.company"].create({"name": "Other Co"})
        self.user_sales.company_ids = [(4, other_company.id)]
        copy = mailbox.copy({"company_id": other_company.id})
        self.assertFalse(copy.has_password)
        self.assertEqual(copy.state, "draft")

    def test_one_mailbox_per_user_and_company(self):
        login, password = self._dovecot_user()
        self._mailbox(self.user_sales, login, password)
        with self.assertRaises(IntegrityError), mute_logger("odoo.sql_db"):
            with self.env.cr.savepoint():
                self._mailbox(self.user_sales, login, password)

    def test_unencrypted_only_to_loopback(self):
        login, password = self._dovecot_user()
        with self.assertRaises(ValidationError):
            self._mailbox(
                self.user_sales, login, password, imap_host="imap.example.com", imap_security="none"
            )
        for host in ("127.0.0.1", "localhost", "::1"):
            mailbox = self._mailbox(
                self.user_sales, login, password, imap_host=host, imap_security="none"
            )
            mailbox.unlink()
        mailbox = self._mailbox(
            self.user_sales, login, password, imap_host="imap.example.com", imap_security="ssl"
        )
        with self.assertRaises(ValidationError):
            mailbox.write({"smtp_host": "smtp.example.com", "smtp_security": "none"})

    def test_changing_connection_needs_new_test(self):
        login, password = self._dovecot_user()
        mailbox = self._enabled_mailbox(self.user_sales, login, password)
        self.assertEqual(mailbox.state, "enabled")
        mailbox.sync_days = 10
        self.assertEqual(mailbox.state, "enabled")
        mailbox.imap_port = 1143
        self.assertEqual(mailbox.state, "draft")

    def test_users_own_mailbox_only(self):
        login, password = self._dovecot_user()
        mine = self._mailbox(self.user_jr, login, password)
        other = self._mailbox(self.user_sales, *self._dovecot_user())
        Mailbox = self.env["mail.sync.mailbox"]
        self.assertEqual(Mailbox.with_user(self.user_jr).search([]), mine)
        with self.assertRaises(AccessError):
            other.with_user(self.user_jr).read(["email"])
        with self.assertRaises(AccessError):
            other.with_user(self.user_jr).write({"sync_days": 3})
        # A user creates their own, not someone else's.
        with self.assertRaises(AccessError):
            Mailbox.with_user(self.user_jr).create(
                {
                    "user_id": self.user_manager.id,
                    "email": "x@sales.example.test",
                    "imap_host": "127.0.0.1",
                    "imap_security": "none",
                }
            )
        # Managers see every mailbox of their companies but cannot delete others'.
        self.assertEqual(
            Mailbox.with_user(self.user_manager).search([]) & (mine | other), mine | other
        )
        with self.assertRaises(AccessError):
            other.with_user(self.user_manager).unlink()
        # Employees without sales rights: nothing.
        with self.assertRaises(AccessError):
            Mailbox.with_user(self.user_employee).search([])

    def test_open_from_profile(self):
        user = self.user_jr.with_user(self.user_jr)
        action = user.action_open_mail_sync()
        self.assertEqual(action["res_model"], "mail.sync.mailbox")
        self.assertFalse(action.get("res_id"))
        self.assertEqual(action["context"]["default_user_id"], self.user_jr.id)
        mailbox = (
            self.env["mail.sync.mailbox"]
            .with_user(self.user_jr)
            .with_context(**action["context"])
            .create(
                {
                    "imap_host": "127.0.0.1",
                    "imap_security": "none",
                    "email": "julia@sales.example.test",
                }
            )
        )
        self.assertEqual(mailbox.user_id, self.user_jr)
        self.assertEqual(self.user_jr.mail_sync_mailbox_id, mailbox)
        self.assertEqual(user.action_open_mail_sync()["res_id"], mailbox.id)
        with self.assertRaises(AccessError):
            self.user_sales.with_user(self.user_jr).action_open_mail_sync()
        # The preferences form (My Profile) renders for the user.
        self.user_jr.with_user(self.user_jr).get_views(
            [(self.env.ref("base.view_users_form_simple_modif").id, "form")]
        )
        self.assertEqual(
            self.user_jr.with_user(self.user_jr).read(["mail_sync_state"])[0]["mail_sync_state"],
            "draft",
        )

    def test_views_render_for_each_role(self):
        for user in (self.user_jr, self.user_sales, self.user_manager):
            self.env["crm.lead"].with_user(user).get_views([(False, "form")])
            self.env["res.partner"].with_user(user).get_views([(False, "form")])
            self.env["mail.sync.mailbox"].with_user(user).get_views(
                [(False, "form"), (False, "list"), (False, "search")]
            )
        admin = self.env.ref("base.user_admin")
        self.env["res.users"].with_user(admin).get_views([(False, "form"), (False, "list")])
        self.env["mail.sync.log"].with_user(self.user_manager).get_views(
            [(False, "list"), (False, "form")]
        )
        form = self.env["crm.lead"].with_user(self.user_jr).get_views([(False, "form")])
        self.assertIn("action_view_mail_sync_messages", form["views"]["form"]["arch"])
        action = self.lead_bob.with_user(self.user_jr).action_view_mail_sync_messages()
        self.assertEqual(action["res_model"], "mail.message")
