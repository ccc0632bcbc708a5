# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Point 5: the dry run counts, from headers only, what the sync would record — and records,
downloads and creates nothing — then enables."""

import datetime

from odoo.tests import tagged

from .mailbox_case import DovecotUserCase


@tagged("post_install", "-at_install")
class TestDryRun(DovecotUserCase):
    def test_dry_run_then_enable(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        ann = {self.received("Ann <ann.smith@acme.example>", f"Offer {i}") for i in range(3)}
        dmitri = self.put(self.login, ["dmitri@ru.example"], "Hello Dmitri", folder="Sent")
        self.received("stranger@nowhere.example", "Unknown")
        self.received("bob@bobco.example", "Out of Office: back soon")
        old = self.received("bob@bobco.example", "Long ago", date=now - datetime.timedelta(days=45))
        # INTERNALDATE follows the Date header only when given: append the old one dated.
        mailbox = self._mailbox(self.user_sales, self.login, self.password)
        self.assertEqual(mailbox.state, "draft")

        wizard = (
            self.env["mail.sync.dry.run"]
            .with_user(self.user_sales)
            .with_context(active_id=mailbox.id)
            .create({"days": 30})
        )
        self.assertEqual(wizard.mailbox_id, mailbox)
        self.env.flush_all()
        messages_before = self.env["mail.message"].sudo().search_count([])
        wizard.action_run()
        self.assertEqual(wizard.email_count, 4)
        self.assertEqual(wizard.skipped_auto_count, 1)
        self.assertEqual(
            wizard.summary,
            "4 emails from the last 30 days would be recorded on these 4 leads and contacts.",
        )
        per_record = {(line.lead_id or line.partner_id): line.count for line in wizard.line_ids}
        self.assertEqual(
            per_record,
            {self.lead_ann: 3, self.partner_ann: 3, self.partner_dup: 3, self.lead_dmitri: 1},
        )
        # Nothing recorded, downloaded into the registry, indexed or moved.
        self.assertEqual(self.env["mail.message"].sudo().search_count([]), messages_before)
        for model in ("mail.sync.message", "mail.sync.header.index", "mail.sync.folder"):
            self.assertFalse(
                self.env[model].sudo().search([("mailbox_id", "=", mailbox.id)]), model
            )
        self.assertEqual(mailbox.state, "draft")
        self.assertTrue(ann and dmitri and old)

        wizard.write({"days": 60})
        wizard.action_run()
        self.assertEqual(wizard.email_count, 5)

        wizard.action_enable()
        self.assertEqual(mailbox.state, "enabled")
        self._sync(mailbox)
        synced = {m.message_id for m in self._synced(mailbox)}
        self.assertEqual(synced, ann | {dmitri})  # the 30-day window of the mailbox

    def test_other_users_mailbox_refused(self):
        mailbox = self._mailbox(self.user_sales, self.login, self.password)
        from odoo.exceptions import AccessError

        with self.assertRaises(AccessError):
            self.env["mail.sync.dry.run"].with_user(self.user_jr).create(
                {"mailbox_id": mailbox.id, "days": 30}
            ).action_run()
