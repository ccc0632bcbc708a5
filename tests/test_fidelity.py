# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The chatter shows what the user's mail client shows: every text part, forwarded mail, the
right date, every recipient, no false duplicates, honest counts."""

import datetime
import html
import logging
import re
import secrets

from odoo.tests import tagged

from odoo.addons.mail.tools.discuss import Store

from ..mailsync.testing.fidelity_mail import fidelity_corpus, normalise, second_contact
from ..models.mail_sync_message import attachment_mimetype
from .mailbox_case import DovecotUserCase, raw_mail
from .common import MailSyncCase
from .test_bad_mail import message_id_of

UTC = datetime.timezone.utc
SYNC_LOGGER = "odoo.addons.crm_mail_sync.models.mail_sync_mailbox"


def without_id(frm, to, subject, body, date):
    raw, _mid = raw_mail(frm, to, subject, body=body, date=date)
    return b"\r\n".join(line for line in raw.split(b"\r\n") if not line.startswith(b"Message-ID:"))


@tagged("post_install", "-at_install")
class TestIdentity(DovecotUserCase):
    def test_no_message_id_same_headers_different_bodies_are_two_emails(self):
        date = datetime.datetime.now(UTC) - datetime.timedelta(hours=2)
        for body in ("Body A: the first question.\n", "Body B: another question.\n"):
            self.dovecot.append(
                self.login,
                "INBOX",
                without_id("Dmitri <dmitri@ru.example>", [self.login], "No id", body, date),
            )
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        self._sync(mailbox)
        recorded = (
            self.env["mail.message"]
            .sudo()
            .search(
                [
                    ("model", "=", "crm.lead"),
                    ("res_id", "=", self.lead_dmitri.id),
                    ("mail_sync_mailbox_id", "=", mailbox.id),
                ]
            )
        )
        self.assertEqual(len(recorded), 2)
        self.assertEqual(len(set(recorded.mapped("message_id"))), 2)
        self.assertTrue(any("Body A" in m.body for m in recorded))
        self.assertTrue(any("Body B" in m.body for m in recorded))
        # A replay adds nothing (the same ids from the header fetch).
        mailbox.sudo().write({"next_sync": False})
        for folder in mailbox.folder_ids:
            folder.sudo().last_uid = 0
        self._sync(mailbox)
        self.assertEqual(len(self.on(self.lead_dmitri)), 2)

    def test_the_same_message_in_inbox_and_sent_is_one(self):
        date = datetime.datetime.now(UTC) - datetime.timedelta(hours=2)
        raw = without_id(self.login, ["dmitri@ru.example"], "Copy", "Same text.\n", date)
        self.dovecot.append(self.login, "INBOX", raw)
        self.dovecot.append(self.login, "Sent", raw)
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        self._sync(mailbox)
        self.assertEqual(
            len(
                self.env["mail.message"]
                .sudo()
                .search(
                    [
                        ("res_id", "=", self.lead_dmitri.id),
                        ("model", "=", "crm.lead"),
                        ("mail_sync_mailbox_id", "=", mailbox.id),
                    ]
                )
            ),
            1,
        )


@tagged("post_install", "-at_install")
class TestMoreRecipients(DovecotUserCase):
    def test_a_copy_naming_one_more_lead_is_recorded_there_too(self):
        date = datetime.datetime.now(UTC) - datetime.timedelta(hours=3)
        mid = "<one-more@client.example>"
        # The first copy (INBOX) names Dmitri; the Bcc copy in Sent names Eva too.
        self.dovecot.append(
            self.login,
            "INBOX",
            raw_mail("Dmitri <dmitri@ru.example>", [self.login], "Plan", date=date, message_id=mid)[
                0
            ],
        )
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        self._sync(mailbox)
        self.assertEqual(self.on(self.lead_dmitri), {mid})
        self.assertFalse(self.on(self.lead_eva))
        self.dovecot.append(
            self.login,
            "Sent",
            raw_mail(
                "Dmitri <dmitri@ru.example>",
                [self.login],
                "Plan",
                cc=["eva@mueller.example"],
                date=date,
                message_id=mid,
            )[0],
        )
        mailbox.sudo().write({"next_sync": False})
        report = self._sync(mailbox)
        self.assertEqual((report.recorded, report.entries), (1, 1))
        self.assertEqual(self.on(self.lead_eva), {mid})
        on_dmitri = (
            self.env["mail.message"]
            .sudo()
            .search(
                [
                    ("model", "=", "crm.lead"),
                    ("res_id", "=", self.lead_dmitri.id),
                    ("message_id", "=", mid),
                ]
            )
        )
        self.assertEqual(len(on_dmitri), 1)  # nowhere twice
        row = (
            self.env["mail.sync.message"]
            .sudo()
            .search([("mailbox_id", "=", mailbox.id), ("message_id", "=", mid)])
        )
        self.assertEqual(len(row), 1)
        self.assertEqual(len(row.mail_message_ids), 2)
        # A third run: nothing more, no body fetched.
        mailbox.sudo().write({"next_sync": False})
        report = self._sync(mailbox)
        self.assertEqual((report.recorded, report.bodies_bytes), (0, 0))


@tagged("post_install", "-at_install")
class TestDatesAndCounts(DovecotUserCase):
    def test_dates_follow_the_rule(self):
        when = datetime.datetime.now(UTC).replace(microsecond=0) - datetime.timedelta(days=2)
        future = raw_mail(
            "Dmitri <dmitri@ru.example>",
            [self.login],
            "Future",
            date=datetime.datetime.now(UTC) + datetime.timedelta(days=900),
        )
        ancient = raw_mail(
            "Dmitri <dmitri@ru.example>",
            [self.login],
            "Ancient",
            date=datetime.datetime(1979, 1, 1, tzinfo=UTC),
        )
        good = raw_mail(
            "Dmitri <dmitri@ru.example>",
            [self.login],
            "Good",
            date=when - datetime.timedelta(hours=5),
        )
        for raw, _mid in (future, ancient, good):
            self.dovecot.append(self.login, "INBOX", raw, when=when)
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        self._sync(mailbox)
        by_id = {
            m.message_id: m
            for m in self.env["mail.message"]
            .sudo()
            .search([("mail_sync_mailbox_id", "=", mailbox.id), ("model", "=", "crm.lead")])
        }
        naive = when.replace(tzinfo=None)
        self.assertEqual(by_id[future[1]].date, naive)
        self.assertEqual(by_id[ancient[1]].date, naive)
        self.assertIn("1979", by_id[ancient[1]].mail_sync_date_header)
        self.assertEqual(
            by_id[good[1]].date, (when - datetime.timedelta(hours=5)).replace(tzinfo=None)
        )
        self.assertFalse(by_id[good[1]].mail_sync_date_header)
        # The chatter's date tooltip says what the header claimed (for the salesperson who
        # reads the lead, not only in the technical view).
        lead_messages = (
            self.env["mail.message"]
            .with_user(self.user_sales)
            .browse([by_id[ancient[1]].id, by_id[good[1]].id])
        )
        store = Store(lead_messages).get_result()
        notes = {row["id"]: row.get("mail_sync_date_note") for row in store["mail.message"]}
        self.assertIn("1979", notes[by_id[ancient[1]].id])
        self.assertIsNone(notes[by_id[good[1]].id])

    def test_the_log_line_counts_what_the_database_holds(self):
        mid = "<twice-in-a-batch@client.example>"
        raw = raw_mail("Ann <ann.smith@acme.example>", [self.login], "Twice", message_id=mid)[0]
        self.dovecot.append(self.login, "INBOX", raw)
        self.dovecot.append(self.login, "INBOX", raw)  # the same message twice in one batch
        self.received("Bob <bob@bobco.example>", "Once")
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        with self.assertLogs(SYNC_LOGGER, level=logging.INFO) as logs:
            report = self._sync(mailbox)
        entries = (
            self.env["mail.message"]
            .sudo()
            .search_count([("mail_sync_mailbox_id", "=", mailbox.id)])
        )
        emails = (
            self.env["mail.sync.message"].sudo().search_count([("mailbox_id", "=", mailbox.id)])
        )
        self.assertEqual((report.recorded, report.entries), (emails, entries))
        self.assertEqual(emails, 2)
        line = [r for r in logs.output if "synced:" in r][-1]
        self.assertIn(f"{emails} email(s) recorded ({entries} chatter entries)", line)
        self.assertEqual(mailbox.synced_count, emails)


def shown_text(body):
    """The text of a chatter body, as a reader sees it (block ends and line breaks become
    white space)."""
    body = re.sub(r"(?i)<br\b[^>]*>|</(p|div|blockquote|li|tr|h\d)>", "\n", str(body or ""))
    return html.unescape(re.sub(r"<[^>]+>", "", body))


@tagged("post_install", "-at_install")
class TestFidelity(MailSyncCase):
    """The fidelity corpus (real-world MIME structures, each with what a mail client shows, as
    the standard library reads it) through a real IMAP server and the sync: for every message,
    the chatter shows every text the client shows, every attachment byte for byte with its
    name and type, and the date by the rule."""

    CONTACT = "contact@client.example"

    def test_the_chatter_shows_what_the_client_shows(self):
        server = self.dovecot  # the class's IMAP server: Dovecot, or Cyrus below
        login = f"fid{secrets.token_hex(4)}@sales.example.test"  # no dot: Cyrus's logins
        password = secrets.token_urlsafe(12)
        server.add_user(login, password)
        now = datetime.datetime.now(UTC).replace(microsecond=0)
        when = now - datetime.timedelta(days=1)
        corpus = fidelity_corpus(login, self.CONTACT, date=now)
        lead = self.env["crm.lead"].create(
            {"name": "Fidelity", "email_from": self.CONTACT, "user_id": self.user_sales.id}
        )
        second = self.env["crm.lead"].create(
            {
                "name": "Second contact",
                "email_from": second_contact(self.CONTACT),
                "user_id": self.user_sales.id,
            }
        )
        # A bounce comes from the mailer daemon of the owner's own domain, as automatic mail:
        # a contact of its own, internal and automatic mail synced too, so that it is recorded.
        self.company.sudo().write(
            {"mail_sync_exclude_own_domain": False, "mail_sync_skip_auto": False}
        )
        bounce_from = f"MAILER-DAEMON@smtp.{login.split('@')[1]}"
        daemon = self.env["res.partner"].create(
            {"name": "Mail Delivery System", "email": bounce_from}
        )
        refused = []
        for message in corpus:
            try:
                server.append(login, message.folder, message.raw, when=when)
            except Exception as exc:  # noqa: BLE001 - the server's choice, listed below
                refused.append((message.name, type(exc).__name__))
        self.assertFalse(refused, "Cyrus refuses none of this corpus (checked when it was made)")
        mailbox = self._mailbox(
            self.user_sales, login, password, imap_host=server.host, imap_port=server.port
        )
        mailbox._enable()
        report = self._sync(mailbox)
        self.assertTrue(report, mailbox.last_error)
        self.assertFalse(mailbox.skipped_ids, mailbox.skipped_ids.mapped("reason"))
        Message = self.env["mail.message"].sudo()
        for message in corpus:
            with self.subTest(case=message.name):
                mid = message_id_of(message.raw)
                target = daemon if message.name == "bounce_dsn" else lead
                [entry] = Message.search(
                    [
                        ("message_id", "=", mid),
                        ("model", "=", target._name),
                        ("res_id", "=", target.id),
                    ]
                )
                text = normalise(shown_text(entry.body))
                for piece in message.texts:
                    self.assertIn(normalise(piece), text)
                if message.subject:
                    self.assertEqual(entry.subject, message.subject)
                got = {a.name: a for a in entry.attachment_ids}
                self.assertEqual(sorted(got), sorted(a["filename"] for a in message.attachments))
                for wanted in message.attachments:
                    attachment = got[wanted["filename"]]
                    self.assertEqual(attachment.raw, wanted["data"])
                    self.assertEqual(
                        attachment.mimetype, attachment_mimetype(wanted["content_type"])
                    )
                # Outlook's winmail.dat is kept, and the chatter says what it is.
                tnef = any(a["content_type"] == "application/ms-tnef" for a in message.attachments)
                self.assertEqual("Outlook's rich-text format (TNEF)" in text, tnef)
                # Date header, else INTERNALDATE (the Received date only when that is missing)
                expected_date = message.date if message.date_rule == "header" else when
                self.assertEqual(entry.date, expected_date.astimezone(UTC).replace(tzinfo=None))
        # The copy Cc'd to one more person is recorded on that person's lead too, once.
        [copy_b] = [m for m in corpus if m.name == "two_copies_more_recipients_b"]
        self.assertEqual(
            len(
                Message.search(
                    [("message_id", "=", message_id_of(copy_b.raw)), ("model", "=", "crm.lead")]
                )
            ),
            2,
        )
        self.assertIn(
            message_id_of(copy_b.raw),
            self.env["mail.message"]
            .sudo()
            .search([("model", "=", "crm.lead"), ("res_id", "=", second.id)])
            .mapped("message_id"),
        )


@tagged("post_install", "-at_install")
class TestFidelityCyrus(TestFidelity):
    """The same corpus through Cyrus IMAP."""

    IMAP = "cyrus"
    allow_inherited_tests_method = True  # Odoo's loader: the test is TestFidelity's
