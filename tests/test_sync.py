# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import datetime
import logging
from collections import defaultdict

from odoo.tests import tagged

from ..mailsync.types import DIRECTION_SENT
from .common import MailSyncCase

_logger = logging.getLogger(__name__)


@tagged("post_install", "-at_install")
class TestSyncCorpus(MailSyncCase):
    """A 230-message mailbox (sent and received, replies, attachments, six charsets, a few
    malformed) loaded once into Dovecot; each test syncs it from scratch (the database is
    rolled back between tests, the mailbox is never modified)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.login, cls.password = cls._dovecot_user()
        cls.messages = cls._corpus(cls.login, 230, seed="corpus-230", malformed_ratio=0.04)
        # Two messages older than the 30-day history: never synced.
        old_start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=60)
        cls.old_messages = cls._corpus(
            cls.login, 2, seed=cls.login + "-old", start=old_start, malformed_ratio=0
        )
        stored = cls._load(cls.login, cls.old_messages + cls.messages)
        cls.messages = [m for m in cls.messages if m in stored]

    def setUp(self):
        super().setUp()
        self.mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        self.own = {self.login, "sam.seller@ourco.example"}

    def _pairs(self, mail_messages):
        return {(m.message_id, m.model, m.res_id) for m in mail_messages}

    def test_corpus_shape(self):
        """The generated mailbox exercises what the acceptance asks for."""
        self.assertGreaterEqual(len(self.messages), 200)
        self.assertTrue(any(m.direction == DIRECTION_SENT for m in self.messages))
        self.assertTrue(any(m.in_reply_to for m in self.messages))
        self.assertTrue(any(m.attachments for m in self.messages))
        self.assertTrue(any(m.malformed for m in self.messages))
        self.assertGreaterEqual(len({m.charset for m in self.messages}), 4)

    def test_sync_records_exactly_the_matching_set(self):
        notifications = self.env["mail.notification"].sudo().search_count([])
        mails = self.env["mail.mail"].sudo().search_count([])
        flags_before = {
            folder: self.dovecot.flags(self.login, folder) for folder in ("INBOX", "Sent")
        }

        report = self._sync(self.mailbox)
        self.assertTrue(report)
        self.assertEqual(self.mailbox.state, "enabled", self.mailbox.last_error)
        self.assertTrue(self.mailbox.last_success)
        self.assertEqual({f.role for f in self.mailbox.folder_ids}, {"inbox", "sent"})

        expected = self._expected_targets(self.messages, self.own)
        expected_pairs = {
            (mid, model, res_id) for mid, targets in expected.items() for model, res_id in targets
        }
        synced = self._synced(self.mailbox)
        self.assertEqual(self._pairs(synced), expected_pairs)
        self.assertGreater(len(expected), 100)
        # Every lead / contact kind got mail; the others none.
        on = {(m.model, m.res_id) for m in synced}
        for record in (
            self.lead_ann,
            self.lead_bob,
            self.lead_dmitri,
            self.lead_eva,
            self.partner_ann,
            self.partner_dup,
            self.partner_bob,
            self.partner_chloe,
        ):
            self.assertIn((record._name, record.id), on, record.display_name)
        for record in (self.lead_lost, self.partner_archived, self.user_employee.partner_id):
            self.assertNotIn((record._name, record.id), on, record.display_name)
        # Old mail (before the 30-day history) is not synced.
        old_ids = {m.message_id for m in self.old_messages}
        self.assertFalse(old_ids & {m.message_id for m in synced})

        # Registry: one row per recorded Message-ID, with the right direction.
        registry = (
            self.env["mail.sync.message"].sudo().search([("mailbox_id", "=", self.mailbox.id)])
        )
        self.assertEqual(set(registry.mapped("message_id")), set(expected))
        self.assertEqual(len(registry), len(expected))
        by_mid = {m.message_id: m for m in self.messages}
        for row in registry:
            self.assertEqual(row.direction, by_mid[row.message_id].direction, row.message_id)
        self.assertEqual(self.mailbox.synced_count, len(expected))
        self.assertEqual(
            self.lead_ann.mail_sync_count,
            len([1 for m in synced if (m.model, m.res_id) == ("crm.lead", self.lead_ann.id)]),
        )

        # Chatter entries: emails, original dates, subjects, direction, authors, no notification.
        for message in synced:
            source = by_mid[message.message_id]
            self.assertEqual(message.message_type, "email")
            self.assertEqual(message.subtype_id, self.env.ref("mail.mt_comment"))
            self.assertEqual(message.mail_sync_direction, source.direction)
            self.assertFalse(message.notification_ids)
            self.assertFalse(message.partner_ids)
            if not source.malformed:
                self.assertEqual(
                    message.date,
                    source.date.astimezone(datetime.timezone.utc).replace(
                        tzinfo=None, microsecond=0
                    ),
                )
                self.assertEqual(message.subject, source.subject)
                self.assertTrue(message.body, message.message_id)
            sender = self._from_addr(source.raw)
            if source.direction == DIRECTION_SENT:
                self.assertEqual(message.author_id, self.user_sales.partner_id)
            else:
                partners = self.env["res.partner"].search(
                    [("email_normalized", "=", sender)], order="id", limit=1
                )
                self.assertEqual(message.author_id, partners, message.message_id)
                self.assertIn(sender, (message.email_from or "").lower())
        self.assertEqual(self.env["mail.notification"].sudo().search_count([]), notifications)
        self.assertEqual(self.env["mail.mail"].sudo().search_count([]), mails)

        # Attachments: on the message and on its record.
        with_attachments = [
            m
            for m in synced
            if by_mid[m.message_id].attachments and not by_mid[m.message_id].malformed
        ]
        self.assertTrue(with_attachments)
        for message in with_attachments:
            self.assertEqual(len(message.attachment_ids), by_mid[message.message_id].attachments)
            for attachment in message.attachment_ids:
                self.assertEqual(
                    (attachment.res_model, attachment.res_id), (message.model, message.res_id)
                )
                self.assertGreater(attachment.file_size, 1000)

        # Threading: a reply hangs under the message it answers (In-Reply-To), on the same
        # record, even when that message was recorded later (other folder); failing that, under
        # one of its References held by the record.
        by_record = defaultdict(dict)
        for message in synced:
            by_record[(message.model, message.res_id)][message.message_id] = message
        threaded = 0
        for message in synced:
            source = by_mid[message.message_id]
            on_record = by_record[(message.model, message.res_id)]
            if source.in_reply_to in on_record:
                threaded += 1
                self.assertEqual(
                    message.parent_id, on_record[source.in_reply_to], message.message_id
                )
            elif message.parent_id:
                self.assertIn(message.parent_id.message_id, source.references)
                self.assertIn(message.parent_id.message_id, on_record)
            elif not any(reference in on_record for reference in source.references):
                self.assertFalse(message.parent_id, message.message_id)
        self.assertGreater(threaded, 20)

        # The mailbox is untouched.
        self.assertEqual(
            {folder: self.dovecot.flags(self.login, folder) for folder in ("INBOX", "Sent")},
            flags_before,
        )

        # A second run adds nothing.
        count = len(synced)
        registry_count = len(registry)
        report = self._sync(self.mailbox)
        self.assertEqual(report.recorded, 0)
        self.assertEqual(len(self._synced(self.mailbox)), count)
        self.assertEqual(
            self.env["mail.sync.message"]
            .sudo()
            .search_count([("mailbox_id", "=", self.mailbox.id)]),
            registry_count,
        )

    def test_query_count_per_recorded_message(self):
        """Recording stays batched: a handful of queries per recorded message at most."""
        self.env.flush_all()
        self.env.invalidate_all()
        start = self.env.cr.sql_log_count
        report = self._sync(self.mailbox)
        self.env.flush_all()
        queries = self.env.cr.sql_log_count - start
        recorded = len(self._synced(self.mailbox))
        self.assertTrue(report.recorded)
        _logger.info(
            "Mail Sync: %s queries for %s chatter entries (%s messages)",
            queries,
            recorded,
            report.recorded,
        )
        self.assertLessEqual(queries / recorded, 5, f"{queries} queries for {recorded} messages")


@tagged("post_install", "-at_install")
class TestSyncChanges(MailSyncCase):
    """What happens when the mailbox changes between runs (each test has its own mailbox)."""

    def _fresh(self, n=30, **kwargs):
        login, password = self._dovecot_user()
        messages = self._corpus(
            login, n, seed=f"changes-{self._testMethodName}", malformed_ratio=0, **kwargs
        )
        messages = self._load(login, messages)
        mailbox = self._enabled_mailbox(self.user_sales, login, password)
        return login, messages, mailbox

    def test_new_message_appears_next_run(self):
        login, messages, mailbox = self._fresh()
        self._sync(mailbox)
        before = len(self._synced(mailbox))
        self.assertTrue(before)
        raw = (
            "From: Ann Smith <ann.smith@acme.example>\r\n"
            f"To: Sam Seller <{login}>\r\n"
            "Subject: One more thing\r\n"
            f"Date: {datetime.datetime.now(datetime.timezone.utc):%a, %d %b %Y %H:%M:%S +0000}\r\n"
            "Message-ID: <one.more.thing@acme.example>\r\n"
            f"In-Reply-To: {messages[-1].message_id}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "Did you get the contract?\r\n"
        ).encode()
        self.dovecot.append(login, "INBOX", raw)
        self._sync(mailbox)
        new = self._synced(mailbox).filtered(
            lambda m: m.message_id == "<one.more.thing@acme.example>"
        )
        # On the Acme opportunity and both contacts with Ann's address.
        self.assertEqual(
            {(m.model, m.res_id) for m in new},
            {
                ("crm.lead", self.lead_ann.id),
                ("res.partner", self.partner_ann.id),
                ("res.partner", self.partner_dup.id),
            },
        )
        self.assertEqual(len(self._synced(mailbox)), before + 3)
        for message in new:
            self.assertIn("contract", message.body)
            self.assertEqual(message.author_id, self.partner_ann)

    def test_uidvalidity_change_no_duplicate(self):
        login, messages, mailbox = self._fresh()
        self._sync(mailbox)
        synced = self._synced(mailbox)
        registry_count = (
            self.env["mail.sync.message"].sudo().search_count([("mailbox_id", "=", mailbox.id)])
        )
        inbox = mailbox.folder_ids.filtered(lambda f: f.role == "inbox")
        old_validity = inbox.uidvalidity
        new_validity = self.dovecot.reset_uidvalidity(login, "INBOX")
        self.assertNotEqual(old_validity, new_validity)
        report = self._sync(mailbox)
        self.assertEqual(report.recorded, 0)
        self.assertEqual(self._synced(mailbox), synced)
        self.assertEqual(
            self.env["mail.sync.message"].sudo().search_count([("mailbox_id", "=", mailbox.id)]),
            registry_count,
        )
        self.assertEqual(inbox.uidvalidity, new_validity)
        self.assertTrue(inbox.last_uid)

    def test_message_already_in_odoo_not_recorded_twice(self):
        login, password = self._dovecot_user()
        messages = self._corpus(login, 20, seed="known-message-id", malformed_ratio=0)
        target = next(m for m in messages if "ann.smith@acme.example" in m.addrs)
        # The same mail was sent from Odoo's chatter on the Acme opportunity.
        existing = (
            self.env["mail.message"]
            .sudo()
            .create(
                {
                    "model": "crm.lead",
                    "res_id": self.lead_ann.id,
                    "message_type": "email",
                    "body": "<p>Sent from Odoo</p>",
                    "message_id": target.message_id,
                    "subtype_id": self.env.ref("mail.mt_comment").id,
                }
            )
        )
        self._load(login, messages)
        mailbox = self._enabled_mailbox(self.user_sales, login, password)
        self._sync(mailbox)
        on_lead = (
            self.env["mail.message"]
            .sudo()
            .search(
                [
                    ("model", "=", "crm.lead"),
                    ("res_id", "=", self.lead_ann.id),
                    ("message_id", "=", target.message_id),
                ]
            )
        )
        self.assertEqual(on_lead, existing)
        # It is still recorded on the contacts, which did not have it.
        on_partner = self._synced(mailbox).filtered(
            lambda m: m.message_id == target.message_id and m.model == "res.partner"
        )
        self.assertEqual(
            set(on_partner.mapped("res_id")), {self.partner_ann.id, self.partner_dup.id}
        )

    def test_old_mail_appended_later_is_not_synced(self):
        login, password = self._dovecot_user()
        recent = self._corpus(login, 10, seed="recent-10", malformed_ratio=0)
        old_start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=90)
        old = self._corpus(login, 10, seed=login + "-old", start=old_start, malformed_ratio=0)
        self._load(login, recent + old)  # old mail gets the highest UIDs
        mailbox = self._enabled_mailbox(self.user_sales, login, password)
        self._sync(mailbox)
        self._sync(mailbox)
        synced_ids = set(self._synced(mailbox).mapped("message_id"))
        self.assertTrue(synced_ids)
        self.assertFalse(synced_ids & {m.message_id for m in old})

    def test_html_is_sanitized(self):
        login, password = self._dovecot_user()
        raw = (
            "From: Bob <bob@bobco.example>\r\n"
            f"To: {login}\r\n"
            "Subject: Hello\r\n"
            f"Date: {datetime.datetime.now(datetime.timezone.utc):%a, %d %b %Y %H:%M:%S +0000}\r\n"
            "Message-ID: <xss@bobco.example>\r\n"
            "Content-Type: text/html; charset=utf-8\r\n\r\n"
            "<p>Hi<script>alert(1)</script><img src=x onerror=alert(2)></p>\r\n"
        ).encode()
        self.dovecot.append(login, "INBOX", raw)
        mailbox = self._enabled_mailbox(self.user_sales, login, password)
        self._sync(mailbox)
        synced = self._synced(mailbox)
        self.assertTrue(synced)
        for message in synced:
            self.assertNotIn("<script", message.body)
            self.assertNotIn("onerror", message.body)


@tagged("post_install", "-at_install")
class TestSyncCorpusCyrus(TestSyncCorpus):
    """The same corpus and expectations on Cyrus IMAP (other folder names, other flags case,
    other refusals)."""

    IMAP = "cyrus"
    allow_inherited_tests_method = True


@tagged("post_install", "-at_install")
class TestSyncChangesCyrus(TestSyncChanges):
    """New mail, a UIDVALIDITY change, old mail appended later, on Cyrus IMAP."""

    IMAP = "cyrus"
    allow_inherited_tests_method = True
