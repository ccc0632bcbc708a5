# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Smart Mail: mail composed in Odoo goes out through the author's own SMTP, against the real
loopback SMTP server (aiosmtpd, spooling envelope, auth user and mechanism) and Dovecot.

Odoo does not send mail while a test runs (``odoo.modules.module.current_test``: ``connect``
returns None and ``send_email`` skips the SMTP dialogue). Like Odoo's own SMTP tests
(``base/tests/test_ir_mail_server_smtpd.py``, ``setUp``: "reactivate sending emails during this
test suite"), ``setUp`` patches ``current_test`` to False so that the real SMTP path runs; every
mail then goes to a loopback server (the users' mailboxes, or the company server created here).
"""

import datetime
import email
import email.policy
import time
from unittest.mock import patch

from freezegun import freeze_time

from odoo import fields, modules
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..mailsync import errors
from ..mailsync.testing.smtp_server import SmtpServer
from .common import MailSyncCase

AUTH_FAILED = "Authentication failed. Please try again."
MUTE = (
    "odoo.addons.crm_mail_sync.models.mail_sync_mailbox",
    "odoo.addons.crm_mail_sync.models.mail_mail",
)


@tagged("post_install", "-at_install")
class TestSmartMail(MailSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The company's outgoing server: the same loopback SMTP, another account.
        cls.company_server = cls._company_smtp()
        cls.template = cls.env["mail.template"].create(
            {
                "name": "Offer",
                "model_id": cls.env["ir.model"]._get_id("crm.lead"),
                "subject": "Offer for {{ object.name }}",
                "body_html": '<p>Hello <t t-out="object.partner_id.name or object.contact_name '
                'or \'\'"/>, here is our offer for <t t-out="object.name"/>.</p>',
                "email_from": "{{ user.email_formatted }}",
                "use_default_to": True,
                "auto_delete": True,
            }
        )

    def setUp(self):
        super().setUp()
        patcher = patch.object(modules.module, "current_test", False)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.started = time.time()

    # ------------------------------------------------------------------ helpers
    def _smart_mailbox(self, user=None, smtp=None, smtp_password=None, **values):
        """An Enabled mailbox on Dovecot + the SMTP server, same login and password."""
        smtp = smtp or self.smtp
        login, password = self._dovecot_user()
        smtp.add_user(login, smtp_password or password)
        vals = {"smtp_host": smtp.host, "smtp_port": smtp.port, "smtp_security": "none"}
        vals.update(values)
        mailbox = self._enabled_mailbox(user or self.user_sales, login, password, **vals)
        return mailbox, login, password

    def _spooled(self, smtp=None, **match):
        """Messages received since the test started, filtered on ReceivedMessage fields."""
        return [
            m
            for m in (smtp or self.smtp).messages
            if m.received_at >= self.started - 1
            and all(getattr(m, key) == value for key, value in match.items())
        ]

    def _post(self, lead, user=None, body="<p>Our proposal is attached.</p>", **kwargs):
        """The chatter's "Send message": message_post of a comment to the lead's contact."""
        lead = lead.with_user(user or self.user_sales)
        partner_ids = (
            kwargs.pop("partner_ids", None)
            or lead.partner_id.ids
            or [
                partner.id
                for partner in lead._mail_find_partner_from_emails(
                    [lead.email_from], force_create=True
                )
            ]
        )
        return lead.message_post(
            body=body,
            subject=kwargs.pop("subject", "Proposal"),
            message_type="comment",
            subtype_xmlid="mail.mt_comment",
            partner_ids=partner_ids,
            **kwargs,
        )

    def _imap_sent(self, login, message_id):
        """``[(uid, flags)]`` of the messages with ``message_id`` in the Sent folder."""
        client = self.dovecot.client(login)
        try:
            client.select_folder("Sent", readonly=True)
            uids = client.search(["HEADER", "Message-ID", message_id])
            flags = client.get_flags(uids) if uids else {}
            return [(uid, tuple(f.decode() for f in flags[uid])) for uid in uids]
        finally:
            client.logout()

    @staticmethod
    def _parsed(received):
        return email.message_from_bytes(received.data, policy=email.policy.default)

    # ------------------------------------------------------------------ routing
    def test_chatter_message_goes_through_user_smtp(self):
        mailbox, login, _password = self._smart_mailbox()
        message = self._post(self.lead_ann, body="<p>Our proposal for Acme is attached.</p>")

        spooled = self._spooled(mail_from=login)
        self.assertEqual(len(spooled), 1, "one message through the user's own SMTP")
        received = spooled[0]
        self.assertEqual(received.rcpt_tos, ["ann.smith@acme.example"])
        self.assertEqual((received.auth_user, received.auth_mechanism), (login, "PLAIN"))
        parsed = self._parsed(received)
        self.assertEqual(parsed["From"].addresses[0].addr_spec, login)
        self.assertEqual(parsed["From"].addresses[0].display_name, "Sam Seller")
        self.assertEqual(
            parsed["Reply-To"].addresses[0].addr_spec,
            login,
            "replies come back to the user's inbox",
        )
        self.assertEqual(parsed["Message-Id"].strip(), message.message_id)
        self.assertIn(
            "Our proposal for Acme is attached.", parsed.get_body(("html",)).get_content()
        )
        self.assertFalse(self._spooled(auth_user=self.company_login))
        # Recorded on the lead as Odoo does, notification sent.
        self.assertEqual(message.notification_ids.mapped("notification_status"), ["sent"])
        registry = self.env["mail.sync.message"].search([("mailbox_id", "=", mailbox.id)])
        self.assertEqual(registry.message_id, message.message_id)
        self.assertEqual(registry.direction, "sent")
        self.assertEqual(registry.mail_message_ids, message)
        self.assertEqual(mailbox.smtp_sent_count, 1)

        # A copy in the mailbox's Sent folder, read.
        sent = self._imap_sent(login, message.message_id)
        self.assertEqual(len(sent), 1)
        self.assertIn("\\Seen", sent[0][1])

        # The following sync meets it in Sent and records nothing again.
        report = self._sync(mailbox)
        self.assertTrue(report)
        self.assertEqual(mailbox.state, "enabled")
        sent_folder = mailbox.folder_ids.filtered(lambda f: f.role == "sent")
        self.assertGreaterEqual(sent_folder.last_uid, sent[0][0], "the sync read Sent")
        self.assertEqual(report.recorded, 0)
        copies = self.env["mail.message"].sudo().search([("message_id", "=", message.message_id)])
        self.assertEqual(copies, message, "no duplicate on the lead or on the contact")
        self.assertEqual(
            self.env["mail.sync.message"].search_count([("mailbox_id", "=", mailbox.id)]), 1
        )

    def test_xoauth2(self):
        token = "ya29.smart-mail-token"
        with SmtpServer() as oauth_smtp:
            mailbox, login, _password = self._smart_mailbox(smtp=oauth_smtp, provider="gmail")
            oauth_smtp.set_token_validator(lambda value: login if value == token else None)
            mailbox.auth_method = "oauth"
            mailbox._enable()
            Mailbox = type(mailbox)
            with patch.object(Mailbox, "_access_token", lambda self: token):
                message = self._post(self.lead_dmitri, subject="XOAUTH2")
            received = self._spooled(smtp=oauth_smtp, mail_from=login)
            self.assertEqual(len(received), 1)
            self.assertEqual(
                (received[0].auth_user, received[0].auth_mechanism), (login, "XOAUTH2")
            )
            self.assertEqual(received[0].rcpt_tos, ["dmitri@ru.example"])
            self.assertEqual(self._parsed(received[0])["Message-Id"].strip(), message.message_id)
            # Gmail keeps its own Sent copy: none is appended.
            self.assertFalse(self._imap_sent(login, message.message_id))

            # A token the server refuses is an authentication failure (reply code checked).
            with (
                patch.object(Mailbox, "_access_token", lambda self: "revoked-token"),
                mute_logger(*MUTE),
            ):
                message = self._post(self.lead_dmitri, subject="Refused token")
            self.assertEqual(len(self._spooled(smtp=oauth_smtp, mail_from=login)), 1)
            mail = self.env["mail.mail"].sudo().search([("mail_message_id", "=", message.id)])
            self.assertEqual(mail.state, "exception")
            self.assertIn(AUTH_FAILED, mail.failure_reason)
            self.assertNotIn("revoked-token", mail.failure_reason)
            self.assertEqual(mailbox.state, "error")
            self.assertEqual(mailbox.log_ids[:1].kind, "auth")

    def test_template_in_composer(self):
        _mailbox, login, _password = self._smart_mailbox()
        composer = (
            self.env["mail.compose.message"]
            .with_user(self.user_sales)
            .with_context(
                default_model="crm.lead",
                default_res_ids=self.lead_ann.ids,
                default_composition_mode="comment",
                default_template_id=self.template.id,
            )
            .create({})
        )
        self.assertEqual(composer.subject, "Offer for Acme deal")
        composer.action_send_mail()
        spooled = self._spooled(mail_from=login)
        self.assertEqual(len(spooled), 1)
        parsed = self._parsed(spooled[0])
        self.assertEqual(parsed["Subject"], "Offer for Acme deal")
        self.assertEqual(parsed["From"].addresses[0].addr_spec, login)
        self.assertIn("here is our offer for Acme deal", parsed.get_body(("html",)).get_content())
        self.assertEqual(spooled[0].rcpt_tos, ["ann.smith@acme.example"])
        message = self.lead_ann.message_ids.filtered(
            lambda m: m.message_id == parsed["Message-Id"].strip()
        )
        self.assertEqual(len(message), 1, "recorded on the lead")

    def test_mass_mail_from_list_view(self):
        _mailbox, login, _password = self._smart_mailbox()
        leads = self.env["crm.lead"].create(
            [
                {
                    "name": f"Mass lead {index}",
                    "email_from": f"mass.{index}@prospects.example",
                    "contact_name": f"Prospect {index}",
                    "user_id": self.user_sales.id,
                }
                for index in range(50)
            ]
        )
        # The list view's "Send email" action: the composer in mass mode on the selection.
        composer = (
            self.env["mail.compose.message"]
            .with_user(self.user_sales)
            .with_context(
                default_model="crm.lead",
                default_res_ids=leads.ids,
                default_composition_mode="mass_mail",
                default_template_id=self.template.id,
                active_model="crm.lead",
                active_ids=leads.ids,
            )
            .create({})
        )
        self.assertTrue(composer.force_send)
        composer.action_send_mail()

        spooled = self._spooled(mail_from=login)
        self.assertEqual(len(spooled), 50, "one message per lead through the user's SMTP")
        self.assertTrue(all(m.auth_user == login for m in spooled))
        by_rcpt = {m.rcpt_tos[0]: self._parsed(m) for m in spooled}
        self.assertEqual(set(by_rcpt), {lead.email_from for lead in leads})
        for lead in leads:
            parsed = by_rcpt[lead.email_from]
            self.assertEqual(parsed["Subject"], f"Offer for {lead.name}")
            self.assertEqual(parsed["From"].addresses[0].addr_spec, login)
            recorded = self.env["mail.message"].search(
                [
                    ("model", "=", "crm.lead"),
                    ("res_id", "=", lead.id),
                    ("message_id", "=", parsed["Message-Id"].strip()),
                ]
            )
            self.assertEqual(len(recorded), 1, f"recorded on {lead.name}")
        self.assertFalse(
            self.env["mail.mail"]
            .sudo()
            .search(
                [
                    ("model", "=", "crm.lead"),
                    ("res_id", "in", leads.ids),
                    ("state", "in", ("outgoing", "exception")),
                ]
            )
        )

    def test_user_without_mailbox_keeps_company_server(self):
        self._smart_mailbox()  # somebody else's mailbox does not matter
        message = self._post(self.lead_ann, user=self.user_manager, subject="From Mia")
        spooled = [
            m
            for m in self._spooled(auth_user=self.company_login)
            if self._parsed(m)["Message-Id"].strip() == message.message_id
            and m.rcpt_tos == ["ann.smith@acme.example"]
        ]
        self.assertEqual(len(spooled), 1, "sent through Odoo's usual outgoing server")
        self.assertIn("mia.manager@ourco.example", str(self._parsed(spooled[0])["From"]))
        self.assertFalse(
            self.env["mail.sync.message"].search([("message_id", "=", message.message_id)])
        )

    def test_other_from_address_keeps_company_server(self):
        mailbox, login, _password = self._smart_mailbox()
        message = self._post(
            self.lead_ann, subject="Shared address", email_from="Sales Team <sales@ourco.example>"
        )
        self.assertFalse(self._spooled(mail_from=login))
        self.assertEqual(
            len(
                [
                    m
                    for m in self._spooled(auth_user=self.company_login)
                    if self._parsed(m)["Message-Id"].strip() == message.message_id
                ]
            ),
            1,
        )
        self.assertEqual(mailbox.smtp_sent_count, 0)

    # ------------------------------------------------------------------ failures
    def test_wrong_password_fails_visibly_then_retry_sends(self):
        mailbox, login, password = self._smart_mailbox(smtp_password="the-real-password")
        last_sync = mailbox.last_sync
        with mute_logger(*MUTE):
            message = self._post(
                self.lead_ann, subject="Wrong password", body="<p>Nothing may be lost.</p>"
            )
        self.assertFalse(self._spooled(mail_from=login))
        mail = self.env["mail.mail"].sudo().search([("mail_message_id", "=", message.id)])
        self.assertEqual(len(mail), 1, "the mail stays in the queue")
        self.assertEqual(mail.state, "exception")
        self.assertIn(AUTH_FAILED, mail.failure_reason)
        self.assertIn(errors.fix_for("auth", "generic"), mail.failure_reason)
        self.assertNotIn(password, mail.failure_reason)
        # Visible on the lead: the message's notification is failed, with the reason.
        notification = message.notification_ids
        self.assertEqual(notification.notification_status, "exception")
        self.assertEqual(notification.failure_type, "mail_smtp")
        self.assertIn(AUTH_FAILED, notification.failure_reason)
        self.assertTrue(message.with_user(self.user_sales).has_error)
        # Error log with the fix, mailbox in Error.
        log = self.env["mail.sync.log"].search([("mailbox_id", "=", mailbox.id)])
        self.assertEqual(log.kind, "auth")
        self.assertEqual(log.fix, errors.fix_for("auth", "generic"))
        self.assertEqual(mailbox.state, "error")
        self.assertEqual(mailbox.smtp_sent_count, 0)
        # The same way as a failed sync: error count and back-off (no sync was attempted).
        self.assertEqual(mailbox.error_count, 1)
        self.assertGreater(mailbox.next_sync, fields.Datetime.now())
        self.assertEqual(mailbox.last_sync, last_sync)
        self.assertTrue(mailbox.error_since)

        # The user fixes the password (a new connection test enables the mailbox again) and
        # retries: the same mail goes out.
        self.smtp.add_user(login, "the-real-password")
        self.dovecot.add_user(login, "the-real-password")
        mailbox.password = "the-real-password"
        mailbox.action_test_connection()
        self.assertEqual(mailbox.state, "enabled")
        mail.action_retry()
        self.env["mail.mail"].process_email_queue(ids=mail.ids)
        spooled = self._spooled(mail_from=login)
        self.assertEqual(len(spooled), 1)
        parsed = self._parsed(spooled[0])
        self.assertEqual(parsed["Message-Id"].strip(), message.message_id)
        self.assertIn("Nothing may be lost.", parsed.get_body(("html",)).get_content())
        self.assertEqual(notification.notification_status, "sent")
        self.assertFalse(mail.exists(), "sent, then deleted as Odoo does (auto-delete)")

    def test_fallback_to_company_server(self):
        self.env["ir.config_parameter"].sudo().set_param("crm_mail_sync.smart_mail_fallback", True)
        mailbox, login, _password = self._smart_mailbox(smtp_password="another-password")
        with mute_logger(*MUTE):
            message = self._post(self.lead_ann, subject="Fallback")
        self.assertFalse(self._spooled(mail_from=login))
        spooled = [
            m
            for m in self._spooled(auth_user=self.company_login)
            if self._parsed(m)["Message-Id"].strip() == message.message_id
            and m.rcpt_tos == ["ann.smith@acme.example"]
        ]
        self.assertEqual(len(spooled), 1, "sent through the company's server")
        self.assertEqual(message.notification_ids.notification_status, "sent")
        self.assertEqual(mailbox.state, "error", "the mailbox failure is still shown")
        self.assertEqual(mailbox.log_ids.kind, "auth")

    def test_fallback_is_off_by_default(self):
        self.assertFalse(self.env["res.config.settings"].create({}).mail_sync_smart_mail_fallback)

    def test_daily_limit_defers_to_next_day(self):
        mailbox, login, _password = self._smart_mailbox()
        mailbox.smtp_daily_limit = 2
        today = datetime.datetime(2030, 3, 4, 15, 0)
        ignore = ["asyncio", "aiosmtpd", "imapclient"]
        with freeze_time(today, tick=True, ignore=ignore):
            messages = [
                self._post(lead, subject=f"Limit {index}")
                for index, lead in enumerate((self.lead_ann, self.lead_dmitri, self.lead_eva))
            ]
            self.assertEqual(len(self._spooled(mail_from=login)), 2)
            deferred = (
                self.env["mail.mail"].sudo().search([("mail_message_id", "=", messages[2].id)])
            )
            self.assertEqual(deferred.state, "outgoing", "still queued, not failed")
            self.assertEqual(deferred.scheduled_date, datetime.datetime(2030, 3, 5))
            self.assertEqual(messages[2].notification_ids.notification_status, "ready")
            self.env["mail.mail"].process_email_queue()
            self.assertEqual(len(self._spooled(mail_from=login)), 2, "not today")
        with freeze_time(today + datetime.timedelta(days=1), tick=True, ignore=ignore):
            self.env["mail.mail"].process_email_queue()
            spooled = self._spooled(mail_from=login)
            self.assertEqual(len(spooled), 3)
            self.assertEqual(spooled[-1].rcpt_tos, ["eva@mueller.example"])
            self.assertEqual(messages[2].notification_ids.notification_status, "sent")
            mailbox.invalidate_recordset()
            self.assertEqual(mailbox.smtp_sent_count, 1)
            self.assertEqual(mailbox.smtp_sent_date, datetime.date(2030, 3, 5))

    def test_provider_quota_exceeded(self):
        """The provider refuses the mail (Gmail's 550 5.4.5): failed with the reason, logged,
        mailbox in Error; nothing more is tried today, the rest waits for the next day."""
        with SmtpServer() as quota_smtp:

            async def refuse(server, session, envelope):
                return "550 5.4.5 Daily user sending quota exceeded."

            for controller in quota_smtp._controllers:
                controller.handler.handle_DATA = refuse
            mailbox, login, _password = self._smart_mailbox(smtp=quota_smtp, provider="gmail")
            with mute_logger(
                *MUTE, "odoo.addons.mail.models.mail_mail", "odoo.addons.base.models.ir_mail_server"
            ):
                first = self._post(self.lead_ann, subject="Over quota")
                second = self._post(self.lead_dmitri, subject="Waits")
        mail = self.env["mail.mail"].sudo().search([("mail_message_id", "=", first.id)])
        self.assertEqual(mail.state, "exception")
        self.assertIn("daily limit", mail.failure_reason)
        self.assertIn("5.4.5 Daily user sending quota exceeded", mail.failure_reason)
        self.assertEqual(first.notification_ids.notification_status, "exception")
        self.assertEqual(mailbox.log_ids.kind, "over_quota")
        self.assertEqual(mailbox.log_ids.fix, errors.fix_for("over_quota", "gmail"))
        self.assertEqual(mailbox.state, "error")
        waiting = self.env["mail.mail"].sudo().search([("mail_message_id", "=", second.id)])
        self.assertEqual(waiting.state, "outgoing")
        self.assertEqual(
            waiting.scheduled_date.date(), fields.Datetime.now().date() + datetime.timedelta(days=1)
        )

    def test_refused_recipient_fails_the_mail_not_the_mailbox(self):
        """A recipient the server refuses (550 5.1.1): that mail fails at once with the
        server's reason; the mailbox stays Enabled, with no error-log entry, and sends on."""
        with SmtpServer() as strict_smtp:

            async def rcpt(server, session, envelope, address, rcpt_options):
                if address == "nobody@acme.example":
                    return (
                        "550 5.1.1 <nobody@acme.example>: Recipient address rejected: "
                        "User unknown in virtual mailbox table"
                    )
                envelope.rcpt_tos.append(address)
                return "250 OK"

            for controller in strict_smtp._controllers:
                controller.handler.handle_RCPT = rcpt
            mailbox, login, _password = self._smart_mailbox(smtp=strict_smtp)
            nobody = self.env["res.partner"].create(
                {"name": "Nobody", "email": "nobody@acme.example"}
            )
            with mute_logger(
                *MUTE, "odoo.addons.mail.models.mail_mail", "odoo.addons.base.models.ir_mail_server"
            ):
                refused = self._post(
                    self.lead_ann, subject="Unknown recipient", partner_ids=nobody.ids
                )
            mail = self.env["mail.mail"].sudo().search([("mail_message_id", "=", refused.id)])
            self.assertEqual(mail.state, "exception", "a 5xx is not retried")
            self.assertEqual(mail.mail_sync_attempts, 1)
            self.assertIn("did not accept this email or its recipients", mail.failure_reason)
            self.assertIn("5.1.1", mail.failure_reason)
            self.assertIn("nobody@acme.example", mail.failure_reason)
            self.assertEqual(refused.notification_ids.notification_status, "exception")
            self.assertEqual(mailbox.state, "enabled")
            self.assertFalse(mailbox.log_ids)
            self.assertFalse(mailbox.error_count)
            self.assertEqual(mailbox.smtp_sent_count, 0, "nothing sent, nothing counted")
            sent = self._post(self.lead_ann, subject="Known recipient")
            self.assertEqual(
                [m.rcpt_tos for m in self._spooled(smtp=strict_smtp)], [["ann.smith@acme.example"]]
            )
            self.assertEqual(sent.notification_ids.notification_status, "sent")

    def test_smtp_reply_code_decides_temporary_or_permanent(self):
        """The message refused at DATA: 554 fails it at once, 451 keeps it queued for a later
        attempt; neither is the mailbox's fault."""
        with SmtpServer() as picky_smtp:
            answer = {}

            async def data(server, session, envelope):
                return answer["reply"]

            for controller in picky_smtp._controllers:
                controller.handler.handle_DATA = data
            mailbox, _login, _password = self._smart_mailbox(smtp=picky_smtp)
            mute = mute_logger(
                *MUTE, "odoo.addons.mail.models.mail_mail", "odoo.addons.base.models.ir_mail_server"
            )
            answer["reply"] = "554 5.7.1 Message rejected: content policy"
            with mute:
                rejected = self._post(self.lead_ann, subject="Rejected")
            mail = self.env["mail.mail"].sudo().search([("mail_message_id", "=", rejected.id)])
            self.assertEqual((mail.state, mail.mail_sync_attempts), ("exception", 1))
            self.assertIn("5.7.1 Message rejected: content policy", mail.failure_reason)

            answer["reply"] = "451 4.3.0 Local error in processing"
            with mute:
                delayed = self._post(self.lead_dmitri, subject="Delayed")
            mail = self.env["mail.mail"].sudo().search([("mail_message_id", "=", delayed.id)])
            self.assertEqual((mail.state, mail.mail_sync_attempts), ("outgoing", 1))
            self.assertGreater(mail.scheduled_date, fields.Datetime.now())
            self.assertIn("4.3.0 Local error in processing", mail.failure_reason)
            self.assertEqual(mailbox.state, "enabled")
            self.assertFalse(mailbox.log_ids)
            self.assertFalse(self._spooled(smtp=picky_smtp))

    def test_default_limits_by_provider(self):
        Mailbox = self.env["mail.sync.mailbox"]
        cases = [
            ("gmail", "someone@gmail.com", 500),
            ("gmail", "sales@acme-workspace.example", 2000),
            ("outlook", "sales@contoso.example", 10000),
            ("generic", "me@own.example", 0),
        ]
        for provider, address, limit in cases:
            mailbox = Mailbox.new({"provider": provider, "email": address})
            self.assertEqual(mailbox.smtp_daily_limit, limit, provider)
