# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Point 4: late linking — mail that matched nothing is found again on the server (by the UID
kept in the header index, no body kept) when a lead or contact gets its address."""

import datetime

import odoo.sql_db
from freezegun import freeze_time
from odoo.tests import tagged

from .mailbox_case import DovecotUserCase

CARLA = "Carla <carla@later.example>"


@tagged("post_install", "-at_install")
class TestLateLink(DovecotUserCase):
    def _index(self, mailbox):
        return self.env["mail.sync.header.index"].sudo().search([("mailbox_id", "=", mailbox.id)])

    def _addrs(self, row):
        self.env.cr.execute("SELECT addrs FROM mail_sync_header_index WHERE id = %s", (row.id,))
        return set(self.env.cr.fetchone()[0])

    def test_new_lead_gets_earlier_mail(self):
        received = self.received(CARLA, "Question about pricing")
        sent = self.put(
            self.login, ["carla@later.example"], "Re: Question about pricing", folder="Sent"
        )
        auto = self.received(CARLA, "Out of Office: until Monday")
        stranger = self.received("someone@else.example", "Unrelated")
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        self._sync(mailbox)
        rows = self._index(mailbox)
        # Unmatched mail is indexed (not the auto-reply), without subject or body.
        self.assertEqual(set(rows.mapped("message_id")), {received, sent, stranger})
        self.assertNotIn("subject", rows._fields)
        row = rows.filtered(lambda r: r.message_id == received)
        self.assertEqual(self._addrs(row), {"carla@later.example", self.login})
        self.assertTrue(row.uid and row.uidvalidity and row.date)
        self.assertFalse(rows.filtered("pending"))

        triggers = self.env["ir.cron.trigger"].sudo().search_count([])
        lead = self.env["crm.lead"].create(
            {"name": "Carla", "email_from": "carla@later.example", "user_id": self.user_sales.id}
        )
        self.assertEqual(set(rows.filtered("pending").mapped("message_id")), {received, sent})
        self.assertGreater(self.env["ir.cron.trigger"].sudo().search_count([]), triggers)
        self.assertFalse(self.on(lead))
        self.env["mail.sync.header.index"]._cron_late_link()
        self.assertEqual(self.on(lead), {received, sent})
        self.assertNotIn(auto, self.on(lead))
        directions = {m.message_id: m.mail_sync_direction for m in self._synced(mailbox)}
        self.assertEqual(directions[sent], "sent")
        self.assertEqual(directions[received], "received")
        self.assertEqual(set(self._index(mailbox).mapped("message_id")), {stranger})
        # The registry knows them: a resync does not record them twice.
        self._sync(mailbox)
        self.assertEqual(
            len(
                self.env["mail.message"]
                .sudo()
                .search([("model", "=", "crm.lead"), ("res_id", "=", lead.id)])
            ),
            2,
        )

    def test_contact_gets_new_address(self):
        mid = self.received(CARLA, "Hello")
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        self._sync(mailbox)
        partner = self.env["res.partner"].create({"name": "Carla"})
        self.assertFalse(self._index(mailbox).filtered("pending"))
        partner.email = "CARLA@later.example"
        self.env["mail.sync.header.index"]._cron_late_link()
        self.assertEqual(self.on(partner), {mid})

    def test_uidvalidity_change_invalidates_rows(self):
        mid = self.received(CARLA, "Hello")
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        self._sync(mailbox)
        old = self._index(mailbox)
        self.assertEqual(len(old), 1)
        old_validity = old.uidvalidity
        new_validity = self.dovecot.reset_uidvalidity(self.login, "INBOX")
        self._sync(mailbox)
        rows = self._index(mailbox)
        self.assertEqual(rows.mapped("uidvalidity"), [new_validity])
        self.assertNotEqual(old_validity, new_validity)
        # A row whose UIDVALIDITY the server no longer has is dropped, never fetched.
        rows.sudo().write({"uidvalidity": old_validity})
        self.env["crm.lead"].create({"name": "Carla", "email_from": "carla@later.example"})
        self.env["mail.sync.header.index"]._cron_late_link()
        self.assertFalse(self._index(mailbox))
        self.assertNotIn(mid, {m.message_id for m in self._synced(mailbox)})

    def test_index_insert_is_one_query_per_batch(self):
        """Sixty or ten new unmatched messages: the same number of queries."""
        from .mailbox_case import raw_mail

        self.received("nobody@unknown.example", "First")
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        self._sync(mailbox)  # first run: folder discovery, not compared
        counts = []
        start = datetime.datetime.now()
        for k, n in enumerate((10, 60, 10)):
            self.dovecot.append_many(
                self.login,
                "INBOX",
                [
                    raw_mail(f"other{i}@unknown{i}.example", [self.login], f"Hi {i}")[0]
                    for i in range(n)
                ],
            )
            self.env.flush_all()
            self.env.invalidate_all()
            # Runs minutes apart, as the cron's: the outcome's timestamps change every run (within
            # one second they are not written again, which would make the counts differ).
            with freeze_time(start + datetime.timedelta(minutes=5 * (k + 1))):
                before = odoo.sql_db.sql_counter
                self._sync(mailbox)
                self.env.flush_all()
                counts.append(odoo.sql_db.sql_counter - before)
        self.assertEqual(len(self._index(mailbox)), 81)
        # The first run after discovery warms caches; then 60 and 10 new messages cost the same.
        self.assertEqual(counts[1], counts[2], counts)
