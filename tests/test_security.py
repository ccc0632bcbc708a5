# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Attacks of a hostile colleague, one test each, refused or contained — through the ORM as the
attacker's user and through JSON-RPC over HTTP where the attacker would use it — and the
legitimate use next to each one still working.

The attacker is a Jr. Salesperson (Sales: Own Documents Only); "the boss" is a salesperson with
an Enabled mailbox on the loopback Dovecot and SMTP server."""

import datetime
import os
import time
from unittest.mock import patch

from freezegun import freeze_time

from odoo import Command, fields, modules
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import HttpCase, tagged
from odoo.tools import mute_logger

from odoo.addons.mail.tests.common import mail_new_test_user

from ..models.mail_sync_mailbox import ALLOWED_NETWORKS_PARAM
from .mailbox_case import DovecotUserCase, raw_mail
from .common import json_call_kw

ACCESS_LOGGERS = (
    "odoo.addons.base.models.ir_rule",
    "odoo.models",
    "odoo.http",
    "odoo.addons.base.models.ir_model",
)
MUTE = (
    "odoo.addons.crm_mail_sync.models.mail_mail",
    "odoo.addons.crm_mail_sync.models.mail_sync_mailbox",
)


class SecurityCase(DovecotUserCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._company_smtp()

    def setUp(self):
        super().setUp()
        patcher = patch.object(modules.module, "current_test", False)  # Odoo sends for real
        patcher.start()
        self.addCleanup(patcher.stop)
        self.started = time.time()
        self.smtp.add_user(self.login, self.password)
        self.boss = self.user_sales
        self.attacker = self.user_jr
        self.boss_mailbox = self._enabled_mailbox(
            self.boss,
            self.login,
            self.password,
            smtp_host=self.smtp.host,
            smtp_port=self.smtp.port,
            smtp_security="none",
        )

    def _spooled(self, **match):
        return [
            m
            for m in self.smtp.messages
            if m.received_at >= self.started - 1
            and all(getattr(m, key) == value for key, value in match.items())
        ]

    def _forbidden(self, func, *args, exception=AccessError, **kwargs):
        with self.assertRaises(exception), mute_logger(*ACCESS_LOGGERS):
            return func(*args, **kwargs)


@tagged("post_install", "-at_install")
class TestNobodySendsAsYou(SecurityCase, HttpCase):
    def _customer(self, lead):
        return [
            p.id for p in lead._mail_find_partner_from_emails([lead.email_from], force_create=True)
        ]

    def test_jr_posting_as_the_boss_goes_through_the_company_server(self):
        lead = self.lead_bob.with_user(self.attacker)  # the Jr's own lead
        with mute_logger(*MUTE):
            lead.message_post(
                body="<p>Wire the money today.</p>",
                subject="Urgent",
                author_id=self.boss.partner_id.id,
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
                partner_ids=self._customer(lead),
            )
        self.assertFalse(self._spooled(mail_from=self.login), "sent through the boss's SMTP")
        self.assertTrue(self._spooled(auth_user=self.company_login))
        self.assertFalse(
            self.env["mail.sync.message"]
            .sudo()
            .search_count([("mailbox_id", "=", self.boss_mailbox.id)]),
            "recorded as the boss's sent mail",
        )

    def test_jr_posting_as_the_boss_over_json_rpc(self):
        partner_ids = self._customer(self.lead_bob.with_user(self.attacker))
        self.authenticate(self.attacker.login, self.attacker.login)
        reply = json_call_kw(
            self,
            "crm.lead",
            "message_post",
            [self.lead_bob.id],
            body="Through the API",
            subject="API",
            author_id=self.boss.partner_id.id,
            partner_ids=partner_ids,
            message_type="comment",
            subtype_xmlid="mail.mt_comment",
            loggers=MUTE,
        )
        self.assertIn("result", reply, reply.get("error"))
        self.assertFalse(self._spooled(mail_from=self.login))
        self.assertTrue(self._spooled(auth_user=self.company_login))

    def test_the_boss_own_mail_still_goes_through_the_mailbox(self):
        lead = self.lead_ann.with_user(self.boss)
        with mute_logger(*MUTE):
            lead.message_post(
                body="<p>Our offer</p>",
                subject="Offer",
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
                partner_ids=self._customer(lead),
            )
        [sent] = self._spooled(mail_from=self.login)
        self.assertEqual(sent.auth_user, self.login)

    def test_queued_and_scheduled_mail_of_the_boss_go_through_the_mailbox(self):
        """Mail the boss wrote but that a cron sends later (queued mail, scheduled messages):
        the creator decides, not the user the cron runs as."""
        lead = self.lead_ann.with_user(self.boss)
        with mute_logger(*MUTE):
            lead.with_context(mail_notify_force_send=False).message_post(
                body="<p>Queued</p>",
                subject="Queued offer",
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
                partner_ids=self._customer(lead),
            )
            self.assertFalse(self._spooled(mail_from=self.login))
            self.env["mail.mail"].sudo().process_email_queue()
        self.assertEqual(len(self._spooled(mail_from=self.login)), 1)
        scheduled = (
            self.env["mail.scheduled.message"]
            .with_user(self.boss)
            .create(
                {
                    "model": "crm.lead",
                    "res_id": self.lead_ann.id,
                    "body": "<p>Scheduled offer</p>",
                    "author_id": self.boss.partner_id.id,
                    "partner_ids": [Command.set(self._customer(lead))],
                    "scheduled_date": fields.Datetime.now() + datetime.timedelta(hours=1),
                }
            )
        )
        with freeze_time(fields.Datetime.now() + datetime.timedelta(hours=2)), mute_logger(*MUTE):
            scheduled.sudo()._post_messages_cron()
            self.env["mail.mail"].sudo().process_email_queue()
        bodies = [
            m.message.get_body(("html", "plain")).get_content()
            for m in self._spooled(mail_from=self.login)
        ]
        self.assertTrue(any("Scheduled offer" in body for body in bodies), bodies)

    def test_automated_mail_as_another_user_uses_the_company_server(self):
        """An automated action (running as the superuser) writing as the boss is not the boss
        sending: Odoo's usual server."""
        lead = self.lead_ann.sudo()
        with mute_logger(*MUTE):
            lead.message_post(
                body="<p>Automated</p>",
                subject="Automated",
                author_id=self.boss.partner_id.id,
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
                partner_ids=self._customer(self.lead_ann),
            )
        self.assertFalse(self._spooled(mail_from=self.login))
        self.assertTrue(self._spooled(auth_user=self.company_login))


@tagged("post_install", "-at_install")
class TestSmartMailTls(SecurityCase):
    def test_bad_certificate_fails_the_send_with_its_fix(self):
        """Smart Mail verifies the certificate, like the sync and Test connection."""
        self.boss_mailbox.sudo().write(
            {"smtp_port": self.smtp.ssl_port, "smtp_security": "ssl", "password": self.password}
        )
        self.boss_mailbox.sudo()._enable()
        lead = self.lead_ann.with_user(self.boss)
        partner_ids = [
            p.id for p in lead._mail_find_partner_from_emails([lead.email_from], force_create=True)
        ]
        with mute_logger(*MUTE, "odoo.addons.mail.models.mail_mail"):
            message = lead.message_post(
                body="<p>TLS</p>",
                subject="Untrusted",
                partner_ids=partner_ids,
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
            )
        self.assertFalse(self._spooled(mail_from=self.login))
        mail = self.env["mail.mail"].sudo().search([("mail_message_id", "=", message.id)])
        self.assertIn("certificate could not be verified", mail.failure_reason)
        self.assertEqual(self.boss_mailbox.log_ids[:1].kind, "certificate")
        # Trusted (the CA of the test server), it goes out.
        with patch.dict(os.environ, {"MAILSYNC_CAFILE": self.smtp.cafile}), mute_logger(*MUTE):
            self.boss_mailbox.sudo()._enable()
            mail.mark_outgoing()
            mail.send()
        self.assertEqual(
            [m.message["Subject"] for m in self._spooled(mail_from=self.login)], ["Untrusted"]
        )


@tagged("post_install", "-at_install")
class TestMailboxBelongsToItsOwner(SecurityCase, HttpCase):
    def _attacker_mailbox(self):
        return (
            self.env["mail.sync.mailbox"]
            .with_user(self.attacker)
            .create(
                {
                    "email": "julia.junior@ourco.example",
                    "imap_host": "127.0.0.1",
                    "imap_port": 1143,
                    "imap_security": "none",
                    "smtp_host": "127.0.0.1",
                    "smtp_port": 1025,
                    "smtp_security": "none",
                    "password": "attacker-knows",
                }
            )
        )

    def test_takeover_refused_over_the_orm(self):
        victim = self.user_manager  # no mailbox yet
        mailbox = self._attacker_mailbox()
        self._forbidden(mailbox.write, {"user_id": victim.id})
        self._forbidden(
            self.env["mail.sync.mailbox"].with_user(self.attacker).create,
            {
                "user_id": victim.id,
                "email": "mia@ourco.example",
                "imap_host": "127.0.0.1",
                "imap_security": "none",
            },
        )
        other = self.env["res.company"].create({"name": "Elsewhere"})
        self.attacker.sudo().company_ids = [Command.link(other.id)]
        self._forbidden(mailbox.write, {"company_id": other.id})
        # Nor a manager on another's mailbox: only the owner changes it.
        self._forbidden(
            self.boss_mailbox.with_user(self.user_manager).write, {"smtp_host": "attacker.example"}
        )
        self.assertEqual(self.boss_mailbox.user_id, self.boss)

    def test_takeover_refused_over_json_rpc(self):
        mailbox = self._attacker_mailbox()
        self.authenticate(self.attacker.login, self.attacker.login)
        reply = json_call_kw(
            self,
            "mail.sync.mailbox",
            "write",
            [mailbox.id],
            {"user_id": self.user_manager.id},
            loggers=ACCESS_LOGGERS,
        )
        self.assertEqual(reply["error"]["data"]["name"], "odoo.exceptions.AccessError")
        reply = json_call_kw(
            self,
            "mail.sync.mailbox",
            "create",
            {
                "user_id": self.user_manager.id,
                "email": "mia@ourco.example",
                "imap_host": "127.0.0.1",
                "imap_security": "none",
            },
            loggers=ACCESS_LOGGERS,
        )
        self.assertEqual(reply["error"]["data"]["name"], "odoo.exceptions.AccessError")
        self.assertEqual(mailbox.user_id, self.attacker)

    def test_an_administrator_hands_a_mailbox_over_without_its_secrets(self):
        admin = mail_new_test_user(
            self.env, login="ms_admin", name="Ada Admin", groups="base.group_user,base.group_system"
        )
        mailbox = self.boss_mailbox.with_user(admin)
        mailbox.write({"user_id": self.user_manager.id})
        self.assertEqual(mailbox.user_id, self.user_manager)
        self.assertEqual(mailbox.state, "draft")
        self.assertFalse(mailbox.has_password)  # the new owner connects it again
        other = self.env["res.company"].create({"name": "Not hers"})
        with self.assertRaises(ValidationError):
            mailbox.write({"company_id": other.id})  # a company the owner is not in

    def test_changed_server_never_gets_the_stored_password(self):
        """Whoever changes the server (the owner by mistake, or a handed-over mailbox) must
        enter the password again: the stored one is never sent to another server."""
        mailbox = self.boss_mailbox.with_user(self.boss)
        self.assertTrue(mailbox.has_password)
        mailbox.write({"imap_host": "127.0.0.1", "sync_days": 10})  # the same host: kept
        self.assertTrue(mailbox.has_password)
        mailbox.write({"imap_host": "localhost"})
        self.assertFalse(mailbox.has_password)
        with self.assertRaises(UserError):
            mailbox.action_test_connection()
        mailbox.write({"imap_host": "127.0.0.1", "password": self.password})
        mailbox.action_test_connection()
        self.assertEqual(mailbox.state, "enabled")

    def test_only_the_owner_tests_the_connection(self):
        self._forbidden(self.boss_mailbox.with_user(self.user_manager).action_test_connection)


@tagged("post_install", "-at_install")
class TestOwnDomains(SecurityCase):
    def test_a_draft_mailbox_on_a_public_suffix_excludes_nothing(self):
        client = self.env["crm.lead"].create(
            {"name": "Big client", "email_from": "client@bigclient.co.uk", "user_id": self.boss.id}
        )
        self.env["mail.sync.mailbox"].with_user(self.attacker).create(
            {
                "email": "x@co.uk",
                "imap_host": "127.0.0.1",
                "imap_security": "none",
                "imap_port": 1143,
            }
        )
        poisoner = mail_new_test_user(
            self.env,
            login="ms_poison",
            name="Pete Poison",
            email="pete@bigclient.co.uk",
            groups="base.group_user",
        )  # one user alone
        domains = self.company._mail_sync_own_domains()
        for domain in ("co.uk", "bigclient.co.uk", "gmail.com"):
            self.assertNotIn(domain, domains)
        mid = self.received("Client <client@bigclient.co.uk>", "Order")
        self._sync(self.boss_mailbox)
        self.assertIn(mid, self.on(client))
        self.assertTrue(poisoner)

    def test_public_suffixes_and_free_mail_never_count(self):
        self.company.sudo().write({"email": "info@co.uk", "website": "https://github.io"})
        mailbox = (
            self.env["mail.sync.mailbox"]
            .with_user(self.attacker)
            .create(
                {
                    "email": "x@gmail.com",
                    "imap_host": "127.0.0.1",
                    "imap_security": "none",
                    "imap_port": 1143,
                }
            )
        )
        mailbox.sudo()._enable()
        domains = self.company._mail_sync_own_domains()
        for domain in ("co.uk", "github.io", "gmail.com"):
            self.assertNotIn(domain, domains)


@tagged("post_install", "-at_install")
class TestWizards(SecurityCase, HttpCase):
    def test_dry_run_of_another_mailbox_refused(self):
        DryRun = self.env["mail.sync.dry.run"].with_user(self.attacker)
        self._forbidden(DryRun.create, {"mailbox_id": self.boss_mailbox.id})
        self._forbidden(
            self.env["mail.sync.dry.run"].with_user(self.user_manager).create,
            {"mailbox_id": self.boss_mailbox.id},
        )

    def test_dry_run_names_only_readable_records(self):
        """The Jr. sees a lead they may read by name, the others counted on one line."""
        login, password = self._dovecot_user()
        self.dovecot.append(
            login, "INBOX", raw_mail("Ann <ann.smith@acme.example>", [login], "Secret deal ACME")[0]
        )
        self.dovecot.append(login, "INBOX", raw_mail("Bob <bob@bobco.example>", [login], "Shop")[0])
        mailbox = self._mailbox(self.attacker, login, password)
        mailbox = mailbox.with_user(self.attacker)
        wizard = (
            self.env["mail.sync.dry.run"]
            .with_user(self.attacker)
            .create({"mailbox_id": mailbox.id})
        )
        wizard.action_run()
        names = [(line.lead_id.id, line.name) for line in wizard.line_ids]
        self.assertIn((self.lead_bob.id, False), names)
        self.assertNotIn(self.lead_ann.id, [lead_id for lead_id, _name in names])
        hidden = [line for line in wizard.line_ids if line.name]
        self.assertTrue(hidden and "you cannot see" in hidden[0].name)
        self.assertNotIn("Acme deal", str(wizard.line_ids.read(["lead_id", "partner_id", "name"])))

    def test_disconnect_wizard_of_another_company_refused_over_json_rpc(self):
        other = self.env["res.company"].create({"name": "Other Co"})
        stranger = mail_new_test_user(
            self.env,
            login="ms_stranger",
            name="Stan Stranger",
            email="stan@other.example",
            groups="base.group_user",
            company_id=other.id,
            company_ids=[Command.set(other.ids)],
        )
        theirs = (
            self.env["mail.sync.mailbox"]
            .sudo()
            .create(
                {
                    "user_id": stranger.id,
                    "company_id": other.id,
                    "email": "stan@other.example",
                    "imap_host": "127.0.0.1",
                    "imap_security": "none",
                    "imap_port": 1143,
                }
            )
        )
        self.authenticate(self.user_manager.login, self.user_manager.login)
        reply = json_call_kw(
            self,
            "mail.sync.disconnect.wizard",
            "create",
            {"mailbox_id": theirs.id},
            loggers=ACCESS_LOGGERS,
        )
        self.assertIn("error", reply)
        self.assertNotIn("stan@other.example", str(reply))
        self.authenticate(self.attacker.login, self.attacker.login)
        reply = json_call_kw(
            self,
            "mail.sync.disconnect.wizard",
            "create",
            {"mailbox_id": self.boss_mailbox.id},
            loggers=ACCESS_LOGGERS,
        )
        self.assertEqual(reply["error"]["data"]["name"], "odoo.exceptions.AccessError")


@tagged("post_install", "-at_install")
class TestServerNetwork(SecurityCase, HttpCase):
    """Test connection never probes the Odoo server's own network."""

    def test_private_targets_answer_alike_and_at_once(self):
        self.env["ir.config_parameter"].sudo().set_param(ALLOWED_NETWORKS_PARAM, "")
        mailbox = (
            self.env["mail.sync.mailbox"]
            .with_user(self.attacker)
            .create(
                {
                    "email": "julia.junior@ourco.example",
                    "imap_host": "127.0.0.1",
                    "imap_port": 5432,
                    "imap_security": "none",
                    "password": "x",
                }
            )
        )
        answers = set()
        for host, port, security in (
            ("127.0.0.1", 5432, "none"),
            ("127.0.0.1", 22, "none"),
            ("10.0.0.5", 993, "ssl"),
            ("169.254.169.254", 80, "ssl"),
            ("192.168.1.1", 993, "ssl"),
            ("localhost", 6379, "none"),
        ):
            mailbox.write(
                {"imap_host": host, "imap_port": port, "imap_security": security, "password": "x"}
            )
            started = time.monotonic()
            with self.assertRaises(UserError) as caught, mute_logger(*MUTE):
                mailbox.action_test_connection()
            self.assertLess(time.monotonic() - started, 2)
            answers.add(str(caught.exception).replace(f"{host}:{port}", "HOST"))
        self.assertEqual(len(answers), 1, answers)
        self.assertIn("not a public mail server", answers.pop())

    def test_over_json_rpc_too(self):
        self.env["ir.config_parameter"].sudo().set_param(ALLOWED_NETWORKS_PARAM, "")
        mailbox = (
            self.env["mail.sync.mailbox"]
            .with_user(self.attacker)
            .create(
                {
                    "email": "julia.junior@ourco.example",
                    "imap_host": "169.254.169.254",
                    "imap_port": 80,
                    "imap_security": "ssl",
                    "password": "x",
                }
            )
        )
        self.authenticate(self.attacker.login, self.attacker.login)
        reply = json_call_kw(
            self,
            "mail.sync.mailbox",
            "action_test_connection",
            [mailbox.id],
            loggers=ACCESS_LOGGERS + MUTE,
        )
        self.assertIn("not a public mail server", reply["error"]["data"]["message"])

    def test_allowed_address_works_and_a_neighbour_stays_refused(self):
        self.env["ir.config_parameter"].sudo().set_param(ALLOWED_NETWORKS_PARAM, "127.0.0.1")
        mailbox = self.boss_mailbox.with_user(self.boss)
        mailbox.action_test_connection()
        self.assertEqual(mailbox.state, "enabled")
        mailbox.write({"imap_host": "127.0.0.3", "password": self.password})
        with self.assertRaises(UserError) as caught, mute_logger(*MUTE):
            mailbox.action_test_connection()
        self.assertIn("not a public mail server", str(caught.exception))


@tagged("post_install", "-at_install")
class TestSmallerHoles(SecurityCase):
    def test_nobody_learns_who_has_a_mailbox_by_searching_users(self):
        Users = self.env["res.users"].with_user(self.attacker)
        self.assertNotIn(self.boss, Users.search([("mail_sync_mailbox_id", "!=", False)]))
        self.assertIn(
            self.boss,
            Users.with_user(self.user_manager).search([("mail_sync_mailbox_id", "!=", False)]),
        )
        self.assertNotIn(self.boss, Users.search([("mail_sync_mailbox_id", "=", False)]))

    def test_no_lead_created_for_mail_beyond_the_daily_cap(self):
        self.company.sudo().mail_sync_daily_cap = 2
        for index in range(5):
            self.received(f"New {index} <new{index}@prospects.example>", f"Hello {index}")
        self.boss_mailbox.sudo().write({"mail_sync_create_leads": True})
        self._sync(self.boss_mailbox)
        created = self.env["crm.lead"].search([("email_from", "like", "@prospects.example")])
        self.assertEqual(len(created), 2)
        self.assertEqual(self.boss_mailbox.synced_today, 2)

    def test_removals_of_another_company_are_not_listed(self):
        Removal = self.env["mail.sync.message.removal"].sudo()
        other = self.env["res.company"].create({"name": "Removal Co"})
        removal = Removal.create(
            {
                "message_id": "<x@y>",
                "model": "crm.lead",
                "res_id": self.lead_ann.id,
                "company_id": other.id,
                "subject": "Their secret",
            }
        )
        self.assertNotIn(
            removal, self.env["mail.sync.message.removal"].with_user(self.user_manager).search([])
        )


@tagged("post_install", "-at_install")
class TestHarvesting(SecurityCase, HttpCase):
    """The boss's mailbox holds mail from an investor; a Jr. creates a lead with that address:
    late linking records the boss's mail on the Jr's lead — as the boss shares it."""

    def _investor_mail(self):
        mid = self.received(
            "Ivy Investor <investor@vc.example>",
            "Term sheet - confidential",
            body="The valuation is 40M.\n",
        )
        self._sync(self.boss_mailbox)  # matches nothing yet: indexed for late linking
        lead = (
            self.env["crm.lead"]
            .with_user(self.attacker)
            .create(
                {
                    "name": "My new investor lead",
                    "email_from": "investor@vc.example",
                    "user_id": self.attacker.id,
                }
            )
        )
        self.env["mail.sync.header.index"]._cron_late_link()
        [message] = (
            self.env["mail.message"]
            .sudo()
            .search([("message_id", "=", mid), ("res_id", "=", lead.id)])
        )
        return lead, message

    def test_private_mail_stays_private_on_the_jr_lead(self):
        self.boss.with_user(self.boss).write({"mail_sync_sharing": "private"})
        lead, message = self._investor_mail()
        Message = self.env["mail.message"].with_user(self.attacker)
        self.assertFalse(
            Message.search(
                [
                    ("model", "=", "crm.lead"),
                    ("res_id", "=", lead.id),
                    ("mail_sync_mailbox_id", "!=", False),
                ]
            )
        )
        self._forbidden(message.with_user(self.attacker).read, ["body"])
        self.authenticate(self.attacker.login, self.attacker.login)
        reply = json_call_kw(
            self, "mail.message", "read", [message.id], ["body", "subject"], loggers=ACCESS_LOGGERS
        )
        self.assertEqual(reply["error"]["data"]["name"], "odoo.exceptions.AccessError")
        rows = json_call_kw(
            self,
            "mail.message",
            "search_read",
            [("res_id", "=", lead.id), ("model", "=", "crm.lead")],
            ["body", "subject"],
        )["result"]
        self.assertNotIn("Term sheet", str(rows))
        chatter = self.make_jsonrpc_request(
            "/mail/thread/messages", {"thread_model": "crm.lead", "thread_id": lead.id}
        )
        self.assertNotIn("Term sheet", str(chatter))
        # The boss reads it whole.
        self.assertIn("valuation", message.with_user(self.boss).read(["body"])[0]["body"])

    def test_subject_only_mail_shows_no_content_on_the_jr_lead(self):
        self.boss.with_user(self.boss).write({"mail_sync_sharing": "metadata"})
        lead, message = self._investor_mail()
        seen = message.with_user(self.attacker).read(["body", "subject"])[0]
        self.assertEqual(seen["subject"], "Term sheet - confidential")
        self.assertNotIn("valuation", str(seen["body"]))
        self.assertIn("investor@vc.example", str(seen["body"]))
        self.authenticate(self.attacker.login, self.attacker.login)
        exported = json_call_kw(
            self,
            "mail.message",
            "export_data",
            [message.id],
            ["body", "subject"],
            loggers=ACCESS_LOGGERS,
        )
        self.assertNotIn("valuation", str(exported))
        found = json_call_kw(
            self, "mail.message", "search_read", [("body", "ilike", "valuation")], ["id"]
        )["result"]
        self.assertNotIn(message.id, [row["id"] for row in found])

    def test_everyone_is_the_boss_own_choice(self):
        lead, message = self._investor_mail()  # the default: everyone who can see the record
        self.assertIn("valuation", message.with_user(self.attacker).read(["body"])[0]["body"])
