# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import datetime

from odoo.tests import tagged

from ..mailsync import addresses
from ..mailsync.types import HeaderInfo
from .common import MailSyncCase


def header(uid, from_, to=(), cc=(), message_id=None):
    return HeaderInfo(
        folder="INBOX",
        uid=uid,
        message_id=message_id or f"<m{uid}@test.example>",
        subject=f"Message {uid}",
        date=datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc),
        from_addrs=tuple(addresses.normalize(a) for a in from_),
        to_addrs=tuple(addresses.normalize(a) for a in to),
        cc_addrs=tuple(addresses.normalize(a) for a in cc),
    )


@tagged("post_install", "-at_install")
class TestMatcher(MailSyncCase):
    """The matcher alone, on hand-made headers (no IMAP)."""

    def setUp(self):
        super().setUp()
        login, password = self._dovecot_user()
        self.mailbox = self._mailbox(self.user_sales, login, password)
        self.own = self.mailbox._own_addresses()
        self.matcher = self.env["mail.sync.matcher"]

    def _match(self, headers):
        return self.matcher._match(self.mailbox, headers, self.own)

    def test_match_leads_and_contacts(self):
        result = self._match(
            [
                header(1, ["Ann <ANN.SMITH@acme.example>"], [self.mailbox.email]),
                header(2, [self.mailbox.email], ["stranger@nowhere.example"]),
                header(
                    3, [self.mailbox.email], ["stranger@nowhere.example"], cc=["dmitri@ru.example"]
                ),
                header(4, ["eve@ourco.example"], [self.mailbox.email]),  # a colleague only
                header(5, ["lost@lost.example"], [self.mailbox.email]),  # lost (archived) lead
            ]
        )
        self.assertEqual(set(result), {1, 3})
        self.assertEqual(set(result[1].lead_ids), {self.lead_ann.id})
        self.assertEqual(set(result[1].partner_ids), {self.partner_ann.id, self.partner_dup.id})
        self.assertEqual(result[1].authors["ann.smith@acme.example"], self.partner_ann.id)
        self.assertEqual(set(result[3].lead_ids), {self.lead_dmitri.id})
        self.assertFalse(result[3].partner_ids)

    def test_own_addresses_never_match(self):
        # The user's own address is also a contact's address (e.g. their own partner record).
        self.env["res.partner"].create({"name": "Me as a contact", "email": self.mailbox.email})
        self.env["crm.lead"].create({"name": "Me as a lead", "email_from": self.mailbox.email})
        result = self._match([header(1, [self.mailbox.email], ["stranger@nowhere.example"])])
        self.assertEqual(result, {})

    def test_internationalised_domain(self):
        partner = self.env["res.partner"].create({"name": "Kunde", "email": "Kunde@Bücher.example"})
        result = self._match([header(1, ["kunde@xn--bcher-kva.example"], [self.mailbox.email])])
        self.assertEqual(result[1].partner_ids, (partner.id,))

    def test_other_company_records_ignored(self):
        other = self.env["res.company"].create({"name": "Other Co"})
        lead = self.env["crm.lead"].create(
            {"name": "Elsewhere", "email_from": "far@away.example", "company_id": other.id}
        )
        partner = self.env["res.partner"].create(
            {"name": "Far", "email": "far@away.example", "company_id": other.id}
        )
        result = self._match([header(1, ["far@away.example"], [self.mailbox.email])])
        self.assertEqual(result, {})
        lead.company_id = self.env.company
        result = self._match([header(1, ["far@away.example"], [self.mailbox.email])])
        self.assertEqual(result[1].lead_ids, (lead.id,))
        self.assertNotIn(partner.id, result[1].partner_ids)

    def test_known_message_ids_skipped(self):
        self.env["mail.sync.message"].sudo().create(
            {"mailbox_id": self.mailbox.id, "message_id": "<m1@test.example>"}
        )
        result = self._match(
            [
                header(1, ["ann.smith@acme.example"], [self.mailbox.email]),
                header(2, ["ann.smith@acme.example"], [self.mailbox.email]),
            ]
        )
        self.assertEqual(set(result), {2})

    def test_known_message_id_wanted_for_new_addresses_only(self):
        """A copy naming someone its earlier copies did not is wanted for that someone's
        records only, and not where the message is already; a copy naming no one new, or a
        message recorded before the registry kept addresses, is not wanted at all."""
        Registry = self.env["mail.sync.message"].sudo()
        Registry.create(
            {
                "mailbox_id": self.mailbox.id,
                "message_id": "<m1@test.example>",
                "addresses": "ann.smith@acme.example",
            }
        )
        Registry.create(
            {
                "mailbox_id": self.mailbox.id,
                "message_id": "<m2@test.example>",
                "addresses": "ann.smith@acme.example\nbob@bobco.example",
            }
        )
        # Dmitri's lead already holds the third one (recorded there by another copy).
        Registry.create(
            {
                "mailbox_id": self.mailbox.id,
                "message_id": "<m3@test.example>",
                "addresses": "ann.smith@acme.example",
            }
        )
        self.env["mail.message"].sudo().create(
            {
                "model": "crm.lead",
                "res_id": self.lead_dmitri.id,
                "message_type": "email",
                "message_id": "<m3@test.example>",
                "body": "<p>already here</p>",
            }
        )
        result = self._match(
            [
                header(
                    1, ["ann.smith@acme.example"], [self.mailbox.email], cc=["bob@bobco.example"]
                ),
                header(
                    2, ["ann.smith@acme.example"], [self.mailbox.email], cc=["bob@bobco.example"]
                ),
                header(
                    3, ["ann.smith@acme.example"], [self.mailbox.email], cc=["dmitri@ru.example"]
                ),
            ]
        )
        self.assertEqual(set(result), {1})
        self.assertEqual(result[1].lead_ids, (self.lead_bob.id,))
        self.assertEqual(result[1].partner_ids, (self.partner_bob.id,))
        self.assertEqual(set(result[1].addresses), {"ann.smith@acme.example", "bob@bobco.example"})

    def test_query_count_independent_of_batch_size(self):
        headers = [
            header(i, [addr], [self.mailbox.email])
            for i, addr in enumerate(self.correspondents * 20)
        ]
        self.env.flush_all()
        with self.assertQueryCount(3):
            self._match(headers)
