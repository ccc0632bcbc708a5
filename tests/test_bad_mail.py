# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""One bad email never stops a mailbox: the hostile corpus in a real Dovecot mailbox, the
recorder's isolation of messages it cannot record (by halving), the skipped messages and their
retry, and the same isolation in late linking, Smart Mail and new-lead creation.

A message "the recorder cannot record" is made real with a database trigger created inside the
test's transaction (rolled back with it): it refuses the rows of one message the way a
constraint of another addon, or a database limit, would. Nothing of the addon is patched."""

import logging
import contextlib
import datetime
import math
import secrets

from odoo.tests import HttpCase, tagged
from odoo.tools import mute_logger

from ..mailsync.parse import body_of, parse_headers
from ..mailsync.testing import hostile_mail
from ..mailsync.types import HeaderInfo, ParsedMessage
from ..models.mail_sync_matcher import Match
from .mailbox_case import DovecotUserCase
from .common import MailSyncCase

_logger = logging.getLogger(__name__)

UTC = datetime.timezone.utc
MB = 1 << 20
MUTE = (
    "odoo.addons.crm_mail_sync.models.mail_sync_message",
    "odoo.addons.crm_mail_sync.models.mail_sync_matcher",
    "odoo.addons.crm_mail_sync.models.mail_sync_mailbox",
)


@contextlib.contextmanager
def refused_rows(cr, table, column, marker):
    """While active, ``table`` refuses to insert a row whose ``column`` contains ``marker``
    (a BEFORE INSERT trigger raising, like another addon's constraint would): a message that
    cannot be recorded. Created and dropped inside the test's transaction."""
    name = f"mail_sync_test_refuse_{secrets.token_hex(4)}"
    assert marker.isalnum()  # a literal of the test's own, not user input
    cr.execute(f"""
        CREATE FUNCTION {name}() RETURNS trigger AS $$
        BEGIN
            IF NEW.{column}::text LIKE '%{marker}%' THEN
                RAISE EXCEPTION 'refused by a test constraint';
            END IF;
            RETURN NEW;
        END $$ LANGUAGE plpgsql
    """)
    cr.execute(
        f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()"
    )
    try:
        yield
    finally:
        cr.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        cr.execute(f"DROP FUNCTION IF EXISTS {name}()")


def message_id_of(raw):
    """The Message-ID the sync gives ``raw`` (made up from the headers and the body's beginning
    when it has none, as the header fetch does)."""
    head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    return parse_headers(head, folder="INBOX", uid=1, body=body_of(raw)).message_id


@tagged("post_install", "-at_install")
class TestBadMail(MailSyncCase):
    """The acceptance corpus: good and hostile mail interleaved in INBOX and Sent."""

    LEAD = "lead.hostile@client.example"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.lead = cls.env["crm.lead"].create(
            {
                "name": "Hostile correspondent",
                "type": "opportunity",
                "email_from": cls.LEAD,
                "user_id": cls.user_sales.id,
            }
        )

    def _load(self, login, messages, when):
        places = {}
        for message in messages:
            places[message.name] = (
                message.folder,
                self.dovecot.append(login, message.folder, message.raw, flags=(), when=when),
            )
        return places

    def _on_lead(self, mailbox):
        return (
            self.env["mail.message"]
            .sudo()
            .search(
                [
                    ("model", "=", "crm.lead"),
                    ("res_id", "=", self.lead.id),
                    ("mail_sync_mailbox_id", "=", mailbox.id),
                ]
            )
        )

    def test_hostile_corpus_one_cron_run(self):
        login, password = self._dovecot_user()
        now = datetime.datetime.now(UTC).replace(microsecond=0)
        when = now - datetime.timedelta(days=1)
        good = hostile_mail.good_messages(login, self.LEAD, 12, date=now)
        hostile = hostile_mail.hostile_corpus(login, self.LEAD, date=now)
        interleaved = [m for pair in zip(good, hostile) for m in pair]
        interleaved += good[len(hostile) :] + hostile[len(good) :]
        places = self._load(login, interleaved, when)
        flags = {folder: self.dovecot.flags(login, folder) for folder in ("INBOX", "Sent")}
        mailbox = self._enabled_mailbox(self.user_sales, login, password)
        Mailbox = self.env["mail.sync.mailbox"].sudo()

        with self.assertNoLogs("odoo.addons.crm_mail_sync", level="ERROR"):
            Mailbox._cron_sync()
        mailbox.invalidate_recordset()
        self.assertEqual(mailbox.state, "enabled")
        self.assertEqual(mailbox.error_count, 0)
        on_lead = self._on_lead(mailbox)
        by_id = {}
        for message in on_lead:
            by_id.setdefault(message.message_id, []).append(message)
        self.assertTrue(all(len(found) == 1 for found in by_id.values()), "recorded twice")

        for message in good:
            [found] = by_id[message.message_id]
            self.assertEqual(found.subject, message.checks["subject"])
            self.assertIn(message.checks["body_contains"][0], found.body)

        Skipped = self.env["mail.sync.skipped"].sudo()
        Log = self.env["mail.sync.log"].sudo()
        outcome = {}  # name -> what happened, listed at the end
        for message in hostile:
            checks, name = message.checks, message.name
            folder, uid = places[name]
            skipped = Skipped.search(
                [("mailbox_id", "=", mailbox.id), ("uid", "=", uid), ("folder", "=", folder)]
            )
            if message.expect == "skipped":
                self.assertEqual(skipped.kind, checks["skip_kind"], name)
                self.assertEqual(skipped.message_id, message.message_id)
                self.assertTrue(
                    Log.search_count(
                        [("mailbox_id", "=", mailbox.id), ("kind", "=", checks["skip_kind"])]
                    )
                )
                self.assertNotIn(message.message_id, by_id)
                outcome[name] = f"skipped ({skipped.kind}: {skipped.reason})"
                continue
            self.assertFalse(skipped, (name, skipped.reason))
            if "duplicate_of" in checks:
                [first] = by_id[message.message_id]
                self.assertEqual(first.subject, "Same id, first", name)
                outcome[name] = "deduplicated (same Message-ID as same_id_a: recorded once)"
                continue
            [found] = by_id[message_id_of(message.raw)]
            notes = []
            if "subject" in checks:
                self.assertEqual(found.subject, checks["subject"], name)
            if "subject_prefix" in checks:
                self.assertTrue(found.subject.startswith(checks["subject_prefix"]))
                self.assertLessEqual(len(found.subject), checks["subject_max_len"])
                self.assertTrue(found.subject.endswith(checks["subject_ends_with"]))
                notes.append(f"subject cut to {len(found.subject)} characters")
            for piece in checks.get("subject_contains", ()):
                self.assertIn(piece, found.subject, name)
            if "from_name_without" in checks:
                self.assertNotIn(checks["from_name_without"], found.email_from, name)
                self.assertIn(self.LEAD, found.email_from)
            if "author" in checks:
                self.assertFalse(found.author_id, name)
            for piece in checks.get("body_contains", ()):
                self.assertIn(piece, found.body, name)
            for piece in checks.get("body_without", ()):
                self.assertNotIn(piece, found.body, name)
            if "attachment_names" in checks:
                self.assertEqual(
                    sorted(found.attachment_ids.mapped("name")),
                    sorted(checks["attachment_names"]),
                    name,
                )
            for filename, data in checks.get("attachment_bytes", {}).items():
                [attachment] = found.attachment_ids.filtered(lambda a, f=filename: a.name == f)
                self.assertEqual(attachment.raw, data, name)
                notes.append(f"{filename} stored byte-exact as {attachment.mimetype}")
            for filename, mimetype in checks.get("attachment_mimetype", {}).items():
                [attachment] = found.attachment_ids.filtered(lambda a, f=filename: a.name == f)
                self.assertEqual(attachment.mimetype, mimetype, name)
            for omitted in checks.get("omitted", ()):
                if omitted["reason"] == "attachment_limit":
                    note = f"{omitted['filename']} (30 MB) was not synced: over the 25 MB limit."
                else:
                    note = (
                        f"{omitted['filename']} (45 MB) was not synced: the email is over "
                        f"the 50 MB limit."
                    )
                self.assertIn(note, found.body, name)
                notes.append(note)
            if checks.get("date") == "internaldate":
                self.assertEqual(found.date, when.replace(tzinfo=None), name)
                notes.append("dated by INTERNALDATE")
            if "message_id_max_len" in checks:
                self.assertLessEqual(len(found.message_id), checks["message_id_max_len"])
                notes.append(f"Message-ID cut to {len(found.message_id)} characters")
            outcome[name] = "recorded" + (f" ({'; '.join(notes)})" if notes else "")

        # The cursors went past everything; the mailbox was not modified.
        for folder in ("INBOX", "Sent"):
            cursor = mailbox.folder_ids.filtered(lambda f, n=folder: f.name == n)
            self.assertEqual(cursor.last_uid, max(flags[folder]), folder)
            self.assertEqual(self.dovecot.flags(login, folder), flags[folder])
        self.assertEqual(mailbox.skipped_count, 1)
        self.assertFalse(mailbox.sync_inflight)
        _logger.info(
            "bad mail, each case:\n%s",
            "\n".join(f"[bad mail] {name}: {what}" for name, what in outcome.items()),
        )

        # A second run records nothing and logs nothing new.
        logs = [(log.id, log.count) for log in Log.search([("mailbox_id", "=", mailbox.id)])]
        mailbox.sudo().write({"next_sync": False})
        Mailbox._cron_sync()
        self.assertEqual(self._on_lead(mailbox), on_lead)
        self.assertEqual(
            [(log.id, log.count) for log in Log.search([("mailbox_id", "=", mailbox.id)])], logs
        )
        self.assertEqual(Skipped.search([("mailbox_id", "=", mailbox.id)]).attempts, 1)

    def test_retry_skipped_after_raising_the_limit(self):
        """The 5,000-part email is skipped under the limit of 500 parts; once an administrator
        raises the limit, Retry skipped messages records it and clears the count."""
        login, password = self._dovecot_user()
        now = datetime.datetime.now(UTC)
        [many] = [
            m
            for m in hostile_mail.hostile_corpus(login, self.LEAD, big=False, date=now)
            if m.name == "many_parts"
        ]
        good = hostile_mail.good_messages(login, self.LEAD, 2, date=now)
        self._load(login, [good[0], many, good[1]], now - datetime.timedelta(hours=2))
        mailbox = self._enabled_mailbox(self.user_sales, login, password)
        self._sync(mailbox)
        self.assertEqual(mailbox.skipped_count, 1)
        self.assertEqual(len(self._on_lead(mailbox)), 2)
        [log] = self.env["mail.sync.log"].sudo().search([("mailbox_id", "=", mailbox.id)])
        self.assertEqual(log.kind, "too_many_parts")
        self.assertIn("UID", log.message)
        self.assertIn("Settings", log.fix)

        # The owner retries before anything changed: still skipped, one more attempt.
        result = mailbox.with_user(self.user_sales).action_retry_skipped()
        self.assertEqual(result["params"]["type"], "warning")
        self.assertEqual(mailbox.skipped_ids.attempts, 2)

        self.company.sudo().mail_sync_max_parts = 10000
        result = mailbox.with_user(self.user_sales).action_retry_skipped()
        self.assertEqual(result["params"]["type"], "success")
        mailbox.invalidate_recordset()
        self.assertEqual(mailbox.skipped_count, 0)
        [recorded] = self._on_lead(mailbox).filtered(lambda m: m.message_id == many.message_id)
        self.assertEqual(len(recorded.attachment_ids), 4999)
        # The registry knows it now: a sync records nothing more.
        count = mailbox.synced_count
        mailbox.sudo().write({"next_sync": False})
        self._sync(mailbox)
        self.assertEqual(mailbox.synced_count, count)

    def test_only_owner_or_manager_retries(self):
        login, password = self._dovecot_user()
        mailbox = self._enabled_mailbox(self.user_sales, login, password)
        from odoo.exceptions import AccessError

        with self.assertRaises(AccessError), mute_logger("odoo.addons.base.models.ir_rule"):
            mailbox.with_user(self.user_jr).action_retry_skipped()


@tagged("post_install", "-at_install")
class TestIsolation(DovecotUserCase):
    """The recorder isolates what it cannot record; every path that records mail does."""

    def _items(self, mailbox, count, poison_at=()):
        lead = self.lead_dmitri
        items = []
        base = datetime.datetime(2026, 11, 1, tzinfo=UTC)
        for index in range(count):
            subject = f"Batch message {index}" + (" POISON" if index in poison_at else "")
            mid = f"<batch-{index}-{secrets.token_hex(4)}@client.example>"
            date = base + datetime.timedelta(minutes=index)
            header = HeaderInfo(
                folder="INBOX",
                uid=index + 1,
                message_id=mid,
                subject=subject,
                date=date,
                from_addrs=("dmitri@ru.example",),
                to_addrs=(self.login,),
                cc_addrs=(),
            )
            parsed = ParsedMessage(
                message_id=mid,
                subject=subject,
                date=date,
                from_display="Dmitri <dmitri@ru.example>",
                from_addr="dmitri@ru.example",
                to_addrs=(self.login,),
                cc_addrs=(),
                in_reply_to=None,
                references=(),
                body_html=None,
                body_text=f"Body {index}",
            )
            items.append(
                (
                    header,
                    parsed,
                    Match(lead_ids=(lead.id,), record_names={("crm.lead", lead.id): lead.name}),
                )
            )
        return items

    def test_halving_isolates_three_poisons_in_two_hundred(self):
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        folder = (
            self.env["mail.sync.folder"]
            .sudo()
            .create({"mailbox_id": mailbox.id, "name": "INBOX", "role": "inbox", "uidvalidity": 7})
        )
        poison = {17, 101, 188}
        items = self._items(mailbox, 200, poison)
        Registry = self.env["mail.sync.message"].sudo()
        with (
            refused_rows(self.env.cr, "mail_message", "subject", "POISON"),
            mute_logger(*MUTE, "odoo.sql_db"),
        ):
            recorded, failures, savepoints = Registry._record_isolated(
                mailbox, folder, items, {self.login}
            )
        self.assertEqual(recorded, (197, 197))  # emails, chatter entries
        self.assertEqual(sorted(f.uid for f in failures), sorted(i + 1 for i in poison))
        self.assertTrue(all(f.kind == "record" and "test constraint" in f.detail for f in failures))
        # O(log n) per poison: at most 1 + 2 savepoints per level for each poison.
        bound = 1 + 2 * len(poison) * math.ceil(math.log2(200))
        self.assertLessEqual(savepoints, bound)
        self.assertGreater(savepoints, 2 * math.ceil(math.log2(200)))
        _logger.info(
            "[bad mail] halving: 200 messages, 3 poisons: %s savepoints (bound %s)",
            savepoints,
            bound,
        )
        # Registry and chatter agree: the 197 others, each once.
        rows = Registry.search([("mailbox_id", "=", mailbox.id)])
        self.assertEqual(len(rows), 197)
        on_lead = self.on(self.lead_dmitri)
        self.assertEqual(on_lead, set(rows.mapped("message_id")))
        self.assertFalse(on_lead & {items[i][0].message_id for i in poison})

    def test_sync_skips_what_it_cannot_record_and_stays_enabled(self):
        ok = self.received("Dmitri <dmitri@ru.example>", "Hello before")
        bad = self.received("Dmitri <dmitri@ru.example>", "The POISON one")
        after = self.received("Dmitri <dmitri@ru.example>", "Hello after")
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        with (
            refused_rows(self.env.cr, "mail_message", "subject", "POISON"),
            mute_logger(*MUTE, "odoo.sql_db"),
        ):
            report = self._sync(mailbox)
        self.assertTrue(report)
        self.assertEqual(mailbox.state, "enabled")
        self.assertEqual(self.on(self.lead_dmitri), {ok, after})
        [skipped] = mailbox.skipped_ids
        self.assertEqual(
            (skipped.kind, skipped.message_id, skipped.subject), ("record", bad, "The POISON one")
        )
        self.assertEqual(skipped.sender, "dmitri@ru.example")
        [log] = mailbox.log_ids
        self.assertEqual(log.kind, "record")
        self.assertIn("UID", log.message)
        self.assertIn("The POISON one", log.message)
        self.assertIn("Retry skipped messages", log.fix)
        inbox = mailbox.folder_ids.filtered(lambda f: f.name == "INBOX")
        self.assertEqual(inbox.last_uid, max(self.dovecot.flags(self.login, "INBOX")))
        # Once the cause is gone, the retry records it.
        mailbox.with_user(self.user_sales).action_retry_skipped()
        self.assertIn(bad, self.on(self.lead_dmitri))
        self.assertFalse(mailbox.skipped_ids)

    def test_late_linking_meets_a_poison_and_carries_on(self):
        first = self.received("Nina <nina@later.example>", "First question")
        bad = self.received("Nina <nina@later.example>", "POISON question")
        last = self.received("Nina <nina@later.example>", "Last question")
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        self._sync(mailbox)
        lead = self.env["crm.lead"].create(
            {"name": "Nina", "email_from": "nina@later.example", "user_id": self.user_sales.id}
        )
        with (
            refused_rows(self.env.cr, "mail_message", "subject", "POISON"),
            mute_logger(*MUTE, "odoo.sql_db"),
        ):
            self.env["mail.sync.header.index"]._cron_late_link()
        self.assertEqual(self.on(lead), {first, last})
        [skipped] = mailbox.skipped_ids
        self.assertEqual((skipped.kind, skipped.message_id), ("record", bad))
        self.assertFalse(
            self.env["mail.sync.header.index"]
            .sudo()
            .search([("mailbox_id", "=", mailbox.id), ("message_id", "in", [first, bad, last])])
        )
        self.assertEqual(mailbox.state, "enabled")

    def test_new_lead_creation_meets_a_poison_and_carries_on(self):
        good = self.received("Omar <omar@new.example>", "Interested in a demo")
        bad = self.received("Pia <pia@new.example>", "POISON request")
        mailbox = self._enabled_mailbox(
            self.user_sales, self.login, self.password, mail_sync_create_leads=True
        )
        with (
            refused_rows(self.env.cr, "crm_lead", "name", "POISON"),
            mute_logger(*MUTE, "odoo.sql_db"),
        ):
            self._sync(mailbox)
        omar = self.env["crm.lead"].search([("email_from", "=", "omar@new.example")])
        self.assertEqual(self.on(omar), {good})
        self.assertFalse(self.env["crm.lead"].search([("email_from", "=", "pia@new.example")]))
        [skipped] = mailbox.skipped_ids
        self.assertEqual((skipped.kind, skipped.message_id), ("record", bad))
        self.assertIn("lead could not be created", skipped.reason)
        # Retry (the cause gone) creates the lead and records the mail.
        mailbox.with_user(self.user_sales).action_retry_skipped()
        pia = self.env["crm.lead"].search([("email_from", "=", "pia@new.example")])
        self.assertEqual(self.on(pia), {bad})

    def test_crash_recovery_reads_suspects_alone_then_skips(self):
        """A sync that died with messages in flight leaves its mark: the next sync counts one
        death for each, a message in flight at two deaths is skipped ("crashed"), the rest is
        synced and the mailbox stays Enabled."""
        mids = [self.received("Dmitri <dmitri@ru.example>", f"Message {i}") for i in range(6)]
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        uids = sorted(self.dovecot.flags(self.login, "INBOX"))
        validity = self.dovecot.uidvalidity(self.login, "INBOX")
        # The first sync died reading UIDs 2-4 (the mark its commit left behind)...
        self.env["mail.sync.folder"].sudo().create(
            {
                "mailbox_id": mailbox.id,
                "name": "INBOX",
                "role": "inbox",
                "uidvalidity": validity,
                "last_uid": uids[0],
            }
        )
        self.env["mail.sync.folder"].sudo().create(
            {"mailbox_id": mailbox.id, "name": "Sent", "role": "sent"}
        )
        mailbox.sudo().write(
            {"sync_inflight": {"folder": "INBOX", "uidvalidity": validity, "uids": uids[1:4]}}
        )
        skip, alone = mailbox.sudo()._crash_recovery(mailbox.sudo()._folder_states())
        self.assertEqual((skip, alone), ({}, {"INBOX": set(uids[1:4])}))
        self.assertFalse(mailbox.sync_inflight)
        # ... and the second one died reading UID 3 alone.
        mailbox.sudo().write(
            {"sync_inflight": {"folder": "INBOX", "uidvalidity": validity, "uids": [uids[2]]}}
        )
        with mute_logger(*MUTE):
            self._sync(mailbox)
        self.assertEqual(mailbox.state, "enabled")
        self.assertEqual(self.on(self.lead_dmitri), set(mids[1:]) - {mids[2]})
        [skipped] = mailbox.skipped_ids
        self.assertEqual(
            (skipped.kind, skipped.uid, skipped.message_id), ("crashed", uids[2], mids[2])
        )
        self.assertIn("stopped twice", mailbox.log_ids.summary)
        self.assertFalse(mailbox.sync_inflight)
        self.assertFalse(mailbox.sync_suspects)  # the cursor went past them

    def test_a_mailbox_that_died_is_claimed_after_the_others(self):
        Mailbox = self.env["mail.sync.mailbox"].sudo()
        first = self._enabled_mailbox(self.user_sales, self.login, self.password)
        other_login, other_password = self._dovecot_user()
        second = self._enabled_mailbox(self.user_jr, other_login, other_password)
        (first | second).sudo().write({"last_sync": False, "next_sync": False})
        first.sudo().write({"last_sync": datetime.datetime(2026, 1, 1)})
        second.sudo().write({"last_sync": datetime.datetime(2026, 1, 2)})
        Mailbox.flush_model()
        self.assertEqual(Mailbox._claim(10, [])[:2], [first.id, second.id])
        Mailbox._release([first.id, second.id])
        first.sudo().write({"sync_inflight": {"folder": "INBOX", "uidvalidity": 1, "uids": [5]}})
        Mailbox.flush_model()
        self.assertEqual(Mailbox._claim(10, [])[:2], [second.id, first.id])
        Mailbox._release([first.id, second.id])

    def test_smart_mail_recording_meets_a_poison_and_carries_on(self):
        from unittest.mock import patch

        from odoo import modules

        from ..mailsync.testing.smtp_server import shared_smtp

        smtp = shared_smtp()
        smtp.add_user(self.login, self.password)
        mailbox = self._enabled_mailbox(
            self.user_sales,
            self.login,
            self.password,
            smtp_host=smtp.host,
            smtp_port=smtp.port,
            smtp_security="none",
        )
        lead = self.lead_dmitri.with_user(self.user_sales)
        partner_ids = [
            p.id for p in lead._mail_find_partner_from_emails([lead.email_from], force_create=True)
        ]
        with (
            patch.object(modules.module, "current_test", False),
            refused_rows(self.env.cr, "mail_sync_message", "subject", "POISON"),
            mute_logger(*MUTE, "odoo.sql_db"),
        ):
            bad = lead.message_post(
                body="<p>One</p>",
                subject="POISON offer",
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
                partner_ids=partner_ids,
            )
            good = lead.message_post(
                body="<p>Two</p>",
                subject="Clean offer",
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
                partner_ids=partner_ids,
            )
        Registry = self.env["mail.sync.message"].sudo()
        self.assertTrue(
            Registry.search([("mailbox_id", "=", mailbox.id), ("message_id", "=", good.message_id)])
        )
        self.assertFalse(
            Registry.search([("mailbox_id", "=", mailbox.id), ("message_id", "=", bad.message_id)])
        )
        sent = {m.message["Subject"] for m in smtp.messages if m.mail_from == self.login}
        self.assertLessEqual({"POISON offer", "Clean offer"}, sent)
        [log] = mailbox.log_ids
        self.assertEqual(log.kind, "record")
        self.assertIn("POISON offer", log.message)
        self.assertEqual(mailbox.state, "enabled")
        # The next sync meets the mail in the Sent folder: already on the lead, not twice.
        self._sync(mailbox)
        self.assertEqual(
            len(
                self.env["mail.message"]
                .sudo()
                .search([("message_id", "=", bad.message_id), ("model", "=", "crm.lead")])
            ),
            1,
        )


@tagged("post_install", "-at_install")
class TestActiveAttachments(DovecotUserCase, HttpCase):
    """An HTML or SVG attachment from a stranger is served as text by /web/content: nothing of
    it runs on Odoo's origin, whoever opens it."""

    def test_html_and_svg_are_served_as_text(self):
        corpus = {
            m.name: m
            for m in hostile_mail.hostile_corpus(
                self.login, "dmitri@ru.example", big=False, date=datetime.datetime.now(UTC)
            )
        }
        for name in ("html_attachment", "svg_attachment"):
            message = corpus[name]
            self.dovecot.append(self.login, message.folder, message.raw)
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        self._sync(mailbox)
        attachments = (
            self.env["ir.attachment"]
            .sudo()
            .search(
                [
                    ("res_model", "=", "crm.lead"),
                    ("res_id", "=", self.lead_dmitri.id),
                    ("name", "in", ["invoice.html", "logo.svg"]),
                ]
            )
        )
        self.assertEqual(sorted(attachments.mapped("name")), ["invoice.html", "logo.svg"])
        self.authenticate(self.user_sales.login, self.user_sales.login)
        for attachment in attachments:
            self.assertEqual(attachment.mimetype, "text/plain")
            for url in (
                f"/web/content/{attachment.id}",
                f"/web/content/{attachment.id}?download=false",
            ):
                response = self.url_open(url)
                self.assertEqual(response.status_code, 200)
                self.assertEqual(response.headers["Content-Type"].split(";")[0], "text/plain")
                self.assertEqual(response.headers.get("X-Content-Type-Options"), "nosniff")
                self.assertIn(b"<script>", response.content)  # the bytes, untouched
