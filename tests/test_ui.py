# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The web client: the top-bar link "Your Mail Sync is not configured" (model side and browser
tours against the test Dovecot and SMTP server), the status badges, the overview page."""

import json

from odoo.tests import HttpCase, tagged
from odoo.tools import mute_logger

from odoo.addons.mail.tests.common import mail_new_test_user

from ..mailsync.testing.smtp_server import shared_smtp
from ..models.mail_sync_mailbox import SYSTRAY_NOTIFICATION
from .common import MailSyncCase, new_login

TOUR_VALUES_KEY = "crm_mail_sync_tour_values"
MAILBOX_LOGGER = "odoo.addons.crm_mail_sync.models.mail_sync_mailbox"


@tagged("post_install", "-at_install")
class TestUi(MailSyncCase, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.smtp = shared_smtp()

    def setUp(self):
        super().setUp()
        self.login, self.password = self._dovecot_user(new_login("tour"))
        self.smtp.add_user(self.login, self.password)
        # A salesperson whose address is that mailbox (the setup form is prefilled with it).
        self.rep = mail_new_test_user(
            self.env,
            login=f"ms_rep_{self.login.split('@')[0]}",
            name="Rita Rep",
            email=self.login,
            groups="base.group_user,sales_team.group_sale_salesman",
        )

    # ------------------------------------------------------------------ helpers
    def _info(self, user):
        return self.env["res.users"].with_user(user).mail_sync_systray_info()

    def _systray_notifications(self, user):
        """The systray notifications queued for ``user`` in this transaction."""
        channel = json.dumps(
            [self.env.cr.dbname, "res.partner", user.partner_id.id], separators=(",", ":")
        )
        return [
            values
            for values in self.env.cr.precommit.data.get("bus.bus.values", [])
            if values["channel"] == channel
            and json.loads(values["message"])["type"] == SYSTRAY_NOTIFICATION
        ]

    def _tour(self, tour, user, start="/odoo", **values):
        values = dict(login=self.login, **values)
        code = (
            f"sessionStorage.setItem({TOUR_VALUES_KEY!r}, {json.dumps(json.dumps(values))});"
            f" odoo.startTour({tour!r}, {{stepDelay: 0, startUrl: {start!r}}})"
        )
        self.start_tour(start, tour, login=user.login, code=code)

    def _disconnect(self, mailbox, user, keep=True):
        """Disconnect through the backend's wizard, as ``user`` would."""
        action = mailbox.with_user(user).action_disconnect()
        wizard = (
            self.env[action["res_model"]]
            .with_user(user)
            .with_context(**action.get("context", {}))
            .create({"mode": "keep" if keep else "remove"})
        )
        return wizard.action_confirm()

    # ------------------------------------------------------------------ model side
    def test_systray_info_follows_the_status(self):
        self.assertEqual(self._info(self.rep), {"show": True}, "no mailbox yet")
        mailbox = self._mailbox(self.rep, self.login, self.password)
        self.assertTrue(self._info(self.rep)["show"], "a draft mailbox is not configured")
        for state, show in (
            ("enabled", False),
            ("error", False),
            ("pending", False),
            ("connection", True),
            ("draft", True),
            ("enabled", False),
        ):
            mailbox.sudo().with_context(mail_sync_keep_state=True).write({"state": state})
            self.assertEqual(self._info(self.rep)["show"], show, state)
        mailbox.sudo().active = False
        self.assertTrue(self._info(self.rep)["show"], "an archived mailbox does not count")

    def test_systray_info_per_company(self):
        self._enabled_mailbox(self.rep, self.login, self.password)
        other = self.env["res.company"].create({"name": "Other company"})
        self.rep.write({"company_ids": [(4, other.id)]})
        self.assertFalse(self._info(self.rep)["show"])
        Users = (
            self.env["res.users"].with_user(self.rep).with_context(allowed_company_ids=[other.id])
        )
        self.assertTrue(Users.mail_sync_systray_info()["show"], "no mailbox in the other company")

    def test_systray_info_only_for_mail_sync_users(self):
        self.assertFalse(self._info(self.user_employee)["show"], "no Mail Sync rights")
        portal = mail_new_test_user(self.env, login="ms_portal", groups="base.group_portal")
        self.assertFalse(self._info(portal)["show"])
        for user in (self.user_jr, self.user_sales, self.user_manager):
            self.assertTrue(self._info(user)["show"], user.login)

    def test_clients_told_only_when_configured_changes(self):
        mailbox = self._mailbox(self.rep, self.login, self.password)
        self.assertEqual(len(self._systray_notifications(self.rep)), 0, "draft: no change")
        mailbox._enable()
        self.assertEqual(len(self._systray_notifications(self.rep)), 1)
        mailbox.sudo().write({"state": "enabled", "last_error": False})
        mailbox.sudo().write({"state": "error"})  # still configured
        self.assertEqual(len(self._systray_notifications(self.rep)), 1)
        mailbox.sudo().write({"state": "connection"})
        self.assertEqual(len(self._systray_notifications(self.rep)), 2)
        mailbox.sudo().write({"state": "enabled"})
        mailbox.sudo().unlink()
        self.assertEqual(len(self._systray_notifications(self.rep)), 4)

    def test_overview_page(self):
        Mailbox = self.env["mail.sync.mailbox"].with_user(self.user_manager)
        info = Mailbox.mail_sync_overview_info()
        self.assertEqual(set(info["company"]), {"billable", "limit", "daily_cap"})
        for which, model in (("mailboxes", "mail.sync.mailbox"), ("logs", "mail.sync.log")):
            view = info["views"][which]
            self.assertEqual(view["model"], model)
            self.assertTrue(view["list_id"] and view["search_id"] and view["form_id"])
            # The manager can load the list as the page does.
            self.env[model].with_user(self.user_manager).get_views(
                [(view["list_id"], "list"), (view["search_id"], "search")]
            )
        arch = Mailbox.get_views([(info["views"]["mailboxes"]["list_id"], "list")])["views"][
            "list"
        ]["arch"]
        for name in (
            "state",
            "last_success",
            "synced_today",
            "last_error",
            "action_retry_now",
            "action_disconnect",
        ):
            self.assertIn(f'name="{name}"', arch)
        self.assertIn('widget="mail_sync_state_badge"', arch)

    def test_badges_have_their_meaning_as_tooltip(self):
        for model, view, _fname in (
            ("res.users", "base.view_users_tree", "mail_sync_state"),
            ("res.users", "base.view_users_form", "mail_sync_state"),
            ("res.users", "base.view_users_form_simple_modif", "mail_sync_state"),
            ("mail.sync.mailbox", "crm_mail_sync.mail_sync_mailbox_view_list", "state"),
            ("mail.sync.mailbox", "crm_mail_sync.mail_sync_mailbox_view_form", "state"),
        ):
            arch = self.env[model].get_views(
                [(self.env.ref(view).id, "list" if "tree" in view or "list" in view else "form")]
            )
            arch = next(iter(arch["views"].values()))["arch"]
            self.assertIn("mail_sync_state_badge", arch, view)
            self.assertIn("description_field", arch, view)

    # ------------------------------------------------------------------ the browser
    def test_tour_date_note_in_the_chatter(self):
        lead = self.env["crm.lead"].create(
            {"name": "Dated", "email_from": "x@dated.example", "user_id": self.rep.id}
        )
        Message = self.env["mail.message"].sudo()
        Message.create(
            {
                "model": "crm.lead",
                "res_id": lead.id,
                "message_type": "email",
                "body": "<p>Sent in 1979</p>",
                "subtype_id": self.env.ref("mail.mt_comment").id,
                "mail_sync_date_header": "Mon, 1 Jan 1979 09:00:00 +0000",
            }
        )
        lead.message_post(body="An ordinary note", message_type="comment")
        self._tour("crm_mail_sync_date_note_tour", self.rep, start=f"/odoo/crm.lead/{lead.id}")

    def test_tour_setup_from_the_top_bar(self):
        self._tour(
            "crm_mail_sync_setup_tour",
            self.rep,
            password=self.password,
            imap_host=self.dovecot.host,
            imap_port=self.dovecot.port,
            smtp_host=self.smtp.host,
            smtp_port=self.smtp.port,
        )
        mailbox = self.env["mail.sync.mailbox"].search([("user_id", "=", self.rep.id)])
        self.assertEqual(len(mailbox), 1)
        self.assertEqual(mailbox.state, "enabled")
        self.assertEqual((mailbox.email, mailbox.imap_login), (self.login, self.login))
        self.assertEqual(
            (mailbox.imap_host, mailbox.imap_port, mailbox.imap_security),
            (self.dovecot.host, self.dovecot.port, "none"),
        )
        self.assertEqual(
            (mailbox.smtp_host, mailbox.smtp_port, mailbox.smtp_security),
            (self.smtp.host, self.smtp.port, "none"),
        )
        self.assertTrue(mailbox.has_password)
        self.assertFalse(self._info(self.rep)["show"])

    def test_tour_link_hidden_when_configured_and_back_after_disconnect(self):
        mailbox = self._enabled_mailbox(self.rep, self.login, self.password)
        self._tour("crm_mail_sync_systray_hidden_tour", self.rep)
        self._disconnect(mailbox, self.rep)
        self.assertTrue(self._info(self.rep)["show"])
        self._tour("crm_mail_sync_systray_shown_tour", self.rep)

    def test_tour_overview_retry_and_disconnect(self):
        mailbox = self._enabled_mailbox(self.rep, self.login, "not-the-password")
        with mute_logger(MAILBOX_LOGGER):
            self._sync(mailbox)
        self.assertEqual(mailbox.state, "error")
        self.assertEqual(len(mailbox.log_ids), 1)
        with mute_logger(MAILBOX_LOGGER):
            self._tour(
                "crm_mail_sync_overview_tour",
                self.user_manager,
                start="/odoo/action-crm_mail_sync.mail_sync_settings_action",
            )
        self.env.invalidate_all()
        self.assertEqual(mailbox.state, "draft")
        self.assertEqual(mailbox.log_ids.count, 2, "the retry failed again: counted once more")
        self.assertTrue(self._info(self.rep)["show"])

    def test_tour_link_opens_the_prefilled_setup(self):
        self._tour("crm_mail_sync_systray_shown_tour", self.rep)
        self.assertFalse(
            self.env["mail.sync.mailbox"].search([("user_id", "=", self.rep.id)]),
            "opening the setup creates nothing",
        )
