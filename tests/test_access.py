# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from unittest.mock import patch

from odoo.exceptions import AccessError
from odoo.tests import tagged
from odoo.tools import mute_logger

from odoo.addons.mail.tests.common import mail_new_test_user

from ..mailsync import errors
from .common import MailSyncCase


@tagged("post_install", "-at_install")
class TestSyncedMailAccess(MailSyncCase):
    """Synced mail is visible exactly where the record it is attached to is visible."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.login, cls.password = cls._dovecot_user()
        cls._load(
            cls.login,
            cls._corpus(cls.login, 40, seed="access", malformed_ratio=0, attachment_ratio=0.5),
        )

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
        # they are its author (models/mail_message.py).
        received_on_ann = on_ann.filtered(lambda m: m.mail_sync_direction == "received")
        self.assertTrue(received_on_ann)
        sent_on_ann = on_ann.filtered(lambda m: m.mail_sync_direction == "sent")
        self.assertEqual(
            sent_on_ann.author_id,
            self.user_jr.partner_id if sent_on_ann else self.env["res.partner"],
        )
        Message = self.env["mail.message"].with_user(self.user_jr)
        visible = Message.search([("id", "in", synced.ids)])
        self.assertFalse(visible & received_on_ann)  # another salesperson's opportunity
        self.assertFalse(visible & sent_on_ann)
        self.assertEqual(visible & on_bob, on_bob)  # their own lead
        with (
            self.assertRaises(AccessError),
            mute_logger("odoo.addons.base.models.ir_rule", "odoo.models"),
        ):
            received_on_ann[:1].with_user(self.user_jr).read(["body"])
        self.assertFalse(
            Message.search(
                [
                    ("model", "=", "crm.lead"),
                    ("res_id", "=", self.lead_ann.id),
                    ("mail_sync_direction", "=", "received"),
                ]
            )
        )
        on_bob[:1].with_user(self.user_jr).read(["body", "mail_sync_direction"])
        # Attachments follow their record.
        attachments = received_on_ann.attachment_ids
        if attachments:
            with (
                self.assertRaises(AccessError),
                mute_logger("odoo.addons.base.models.ir_rule", "odoo.models"),
            ):
                attachments[:1].with_user(self.user_jr).read(["datas"])
        # The lead's counter, as seen by whoever may read the lead.
        self.assertEqual(self.lead_bob.with_user(self.user_jr).mail_sync_count, len(on_bob))

        # A salesperson with all documents sees both, but not the Jr's registry.
        Message = self.env["mail.message"].with_user(self.user_sales)
        self.assertEqual(Message.search([("id", "in", (on_ann | on_bob).ids)]), on_ann | on_bob)
        self.assertFalse(
            self.env["mail.sync.message"]
            .with_user(self.user_sales)
            .search([("mailbox_id", "=", mailbox.id)])
        )
        self.assertTrue(
            self.env["mail.sync.message"]
            .with_user(self.user_jr)
            .search([("mailbox_id", "=", mailbox.id)])
        )
        # Nor a manager: the registry holds mail subjects, visible only with their record.
        self.assertFalse(
            self.env["mail.sync.message"]
            .with_user(self.user_manager)
            .search([("mailbox_id", "=", mailbox.id)])
        )

    def _make_synced(self, mailbox, record, count, direction, **values):
        return (
            self.env["mail.message"]
            .sudo()
            .create(
                [
                    dict(
                        {
                            "model": record._name,
                            "res_id": record.id,
                            "message_type": "email",
                            "is_internal": True,
                            "subtype_id": self.env.ref("mail.mt_comment").id,
                            "body": f"<p>Synced {direction} {i}</p>",
                            "author_id": mailbox.user_id.partner_id.id
                            if direction == "sent"
                            else False,
                            "mail_sync_mailbox_id": mailbox.id,
                            "mail_sync_direction": direction,
                        },
                        **values,
                    )
                    for i in range(count)
                ]
            )
        )

    def test_search_pages_stay_full(self):
        """Hidden synced mail is left out by the search query itself, not after its LIMIT: a
        page of N is N rows while N visible messages exist, and it costs no extra query."""
        mailbox = self._mailbox(self.user_jr, self.login, self.password)
        visible = self._make_synced(mailbox, self.lead_bob, 4, "received")
        # Newer, so first in an "id desc" page: on another salesperson's opportunity (sent by
        # the Jr. too: their authorship does not matter), and private to another user.
        hidden = (
            self._make_synced(mailbox, self.lead_ann, 3, "sent")
            | self._make_synced(mailbox, self.lead_ann, 3, "received")
            | self._make_synced(
                mailbox,
                self.lead_bob,
                3,
                "received",
                mail_sync_private=True,
                mail_sync_private_user_id=self.user_sales.id,
            )
        )
        Message = self.env["mail.message"].with_user(self.user_jr)
        domain = [("id", "in", (visible | hidden).ids)]
        newest_first = sorted(visible.ids, reverse=True)
        self.assertEqual(Message.search(domain, limit=4, order="id desc").ids, newest_first)
        self.assertEqual(Message.search(domain, limit=2, order="id desc").ids, newest_first[:2])
        self.assertEqual(
            Message.search(domain, offset=2, limit=2, order="id desc").ids, newest_first[2:]
        )
        self.assertEqual(Message.search_count(domain), 4)
        # The chatter's pages ("load older") on the Jr's own lead.
        page = Message._message_fetch(
            [
                ("model", "=", "crm.lead"),
                ("res_id", "=", self.lead_bob.id),
                ("mail_sync_mailbox_id", "!=", False),
            ],
            limit=2,
        )
        self.assertEqual(page["messages"].ids, newest_first[:2])
        # Sam reads every lead and the private ones are his: a full page.
        self.assertEqual(
            len(self.env["mail.message"].with_user(self.user_sales).search(domain, limit=10)), 10
        )

    def test_portal_user_never_lists_hidden_synced_mail(self):
        """A customer with portal access is the author of the mail they sent: a synced copy on
        their own contact that is private, or one on a lead, stays hidden from them."""
        portal = mail_new_test_user(
            self.env,
            login="ms_portal_access",
            name="Ann Portal",
            email="ann.portal@acme.example",
            groups="base.group_portal",
        )
        mailbox = self._mailbox(self.user_sales, self.login, self.password)
        public = self._make_synced(
            mailbox,
            portal.partner_id,
            1,
            "received",
            is_internal=False,
            author_id=portal.partner_id.id,
        )
        private = self._make_synced(
            mailbox,
            portal.partner_id,
            1,
            "received",
            is_internal=False,
            author_id=portal.partner_id.id,
            mail_sync_private=True,
            mail_sync_private_user_id=self.user_sales.id,
        )
        on_lead = self._make_synced(
            mailbox, self.lead_ann, 1, "received", is_internal=False, author_id=portal.partner_id.id
        )
        Message = self.env["mail.message"].with_user(portal)
        self.assertEqual(Message.search([("id", "in", (public | private | on_lead).ids)]), public)
        for message in private | on_lead:
            with (
                self.assertRaises(AccessError),
                mute_logger("odoo.addons.base.models.ir_rule", "odoo.models"),
            ):
                message.with_user(portal).read(["body"])

    def test_log_decrypts_secrets_only_for_server_words(self):
        """The error log removes the mailbox's secrets from what a server or library said; our
        own sentence holds none: nothing decrypted for it, nor when the caller has them."""
        mailbox = self._mailbox(self.user_jr, self.login, self.password)
        Log = self.env["mail.sync.log"].sudo()
        with patch.object(
            type(mailbox), "_secrets", autospec=True, return_value=[self.password]
        ) as secrets:
            Log._log(mailbox, errors.SyncError("timeout"))
            Log._log(
                mailbox, errors.SyncError("auth", f"NO {self.password}"), secrets=[self.password]
            )
            self.assertEqual(secrets.call_count, 0)
            entry = Log._log(
                mailbox, errors.SyncError("auth", f"LOGIN {self.login} {self.password} refused")
            )
            self.assertEqual(secrets.call_count, 1)
        self.assertNotIn(self.password, entry.message)
        self.assertIn("[redacted]", entry.message)
        self.assertEqual(
            Log.search([("mailbox_id", "=", mailbox.id), ("kind", "=", "auth")], order="id").mapped(
                "count"
            ),
            [1, 1],
        )
