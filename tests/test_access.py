# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo.exceptions import AccessError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import MailSyncCase


@tagged("post_install", "-at_install")
class TestSyncedMailAccess(MailSyncCase):
    """Synced mail is visible exactly where the record it is attached to is visible."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.login, cls.password = cls._dovecot_user()
        cls._load(cls.login, cls._corpus(cls.login, 40, seed="access", malformed_ratio=0,
                                         attachment_ratio=0.5))

    def test_jr_salesperson_sees_only_own_leads_mail(self):
        # The Jr. salesperson's own mailbox syncs mail onto everyone's leads.
        mailbox = self._enabled_mailbox(self.user_jr, self.login, self.password)
        mailbox.sudo()._sync()
        synced = self._synced(mailbox)
        on_ann = synced.filtered(lambda m: (m.model, m.res_id) == ("crm.lead", self.lead_ann.id))
        on_bob = synced.filtered(lambda m: (m.model, m.res_id) == ("crm.lead", self.lead_bob.id))
        self.assertTrue(on_ann and on_bob)

        # Mail the Jr. received on another salesperson's opportunity is hidden from them, and so
        # is what they sent there themselves: synced mail follows its record only, although
        # they are its author (models/mail_sync_access.py).
        received_on_ann = on_ann.filtered(lambda m: m.mail_sync_direction == "received")
        self.assertTrue(received_on_ann)
        sent_on_ann = on_ann.filtered(lambda m: m.mail_sync_direction == "sent")
        self.assertEqual(sent_on_ann.author_id, self.user_jr.partner_id if sent_on_ann
                         else self.env["res.partner"])
        Message = self.env["mail.message"].with_user(self.user_jr)
        visible = Message.search([("id", "in", synced.ids)])
        self.assertFalse(visible & received_on_ann)  # another salesperson's opportunity
        self.assertFalse(visible & sent_on_ann)
        self.assertEqual(visible & on_bob, on_bob)   # their own lead
        with self.assertRaises(AccessError), mute_logger("odoo.addons.base.models.ir_rule",
                                                          "odoo.models"):
            received_on_ann[:1].with_user(self.user_jr).read(["body"])
        self.assertFalse(Message.search([("model", "=", "crm.lead"),
                                         ("res_id", "=", self.lead_ann.id),
                                         ("mail_sync_direction", "=", "received")]))
        on_bob[:1].with_user(self.user_jr).read(["body", "mail_sync_direction"])
        # Attachments follow their record.
        attachments = received_on_ann.attachment_ids
        if attachments:
            with self.assertRaises(AccessError), mute_logger("odoo.addons.base.models.ir_rule",
                                                              "odoo.models"):
                attachments[:1].with_user(self.user_jr).read(["datas"])
        # The lead's counter, as seen by whoever may read the lead.
        self.assertEqual(self.lead_bob.with_user(self.user_jr).mail_sync_count, len(on_bob))

        # A salesperson with all documents sees both, but not the Jr's registry.
        Message = self.env["mail.message"].with_user(self.user_sales)
        self.assertEqual(Message.search([("id", "in", (on_ann | on_bob).ids)]), on_ann | on_bob)
        self.assertFalse(self.env["mail.sync.message"].with_user(self.user_sales).search(
            [("mailbox_id", "=", mailbox.id)]))
        self.assertTrue(self.env["mail.sync.message"].with_user(self.user_jr).search(
            [("mailbox_id", "=", mailbox.id)]))
        # Nor a manager: the registry holds mail subjects, visible only with their record.
        self.assertFalse(self.env["mail.sync.message"].with_user(self.user_manager).search(
            [("mailbox_id", "=", mailbox.id)]))
