# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Point 6: new mail reaches the lead through the every-minute scheduled action, which syncs only
mailboxes whose UIDNEXT moved (one STATUS per folder, no database write otherwise)."""

import time
from datetime import timedelta

import odoo.sql_db
from odoo import fields
from odoo.tests import tagged

from .mailbox_case import DovecotUserCase


@tagged("post_install", "-at_install")
class TestFastArrival(DovecotUserCase):
    def test_cron_every_minute(self):
        cron = self.env.ref("crm_mail_sync.ir_cron_mail_sync_fast")
        self.assertTrue(cron.active)
        self.assertEqual((cron.interval_number, cron.interval_type), (1, "minutes"))
        self.assertEqual(cron.code.strip(), "model._cron_fast_arrival()")

    def test_new_mail_on_the_lead_within_a_minute(self):
        Mailbox = self.env["mail.sync.mailbox"]
        first = self.received("Ann <ann.smith@acme.example>", "First")
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        Mailbox._cron_fast_arrival()  # never synced: synced at once
        self.assertIn(first, self.on(self.lead_ann))
        self.assertEqual(mailbox.state, "enabled")
        last_sync = mailbox.last_sync
        # Nothing new: checked (STATUS), not synced, no write to the mailbox.
        self.env.flush_all()
        before = odoo.sql_db.sql_counter
        self.assertEqual(Mailbox._cron_fast_arrival(), 0)
        self.assertLess(odoo.sql_db.sql_counter - before, 10)
        mailbox.invalidate_recordset()
        self.assertEqual(mailbox.last_sync, last_sync)
        self.assertTrue(mailbox.fast_checked_at)
        # New mail, although the regular throttle (next_sync) has not passed yet.
        self.assertGreater(mailbox.next_sync, fields.Datetime.now())
        t0 = time.monotonic()
        second = self.received("Ann <ann.smith@acme.example>", "Second")
        self.assertEqual(Mailbox._cron_fast_arrival(), 1)
        self.assertIn(second, self.on(self.lead_ann))
        self.assertLess(time.monotonic() - t0, 60)

    def test_long_waits_respected(self):
        """A mailbox told to wait (daily cap, back-off) is not checked; nor one in error."""
        Mailbox = self.env["mail.sync.mailbox"]
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        Mailbox._cron_fast_arrival()
        mid = self.received("Ann <ann.smith@acme.example>", "Later")
        mailbox.write({"next_sync": fields.Datetime.now() + timedelta(hours=5)})
        self.assertEqual(Mailbox._cron_fast_arrival(), 0)
        self.assertNotIn(mid, self.on(self.lead_ann))
        mailbox.write({"next_sync": False})
        mailbox.sudo().with_context(mail_sync_keep_state=True).write({"state": "error"})
        self.assertNotIn(mailbox.id, Mailbox._fast_candidates())
