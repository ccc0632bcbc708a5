# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Point 3 (auto-replies and bulk mail are not synced by default) and point 7 (opt-in: received
mail from an unknown address creates a lead, after the filters), against Dovecot."""

from odoo.tests import tagged

from ..mailsync.privacy import OUT_OF_OFFICE_RE
from .mailbox_case import DovecotUserCase

ANN = "Ann <ann.smith@acme.example>"


@tagged("post_install", "-at_install")
class TestFilters(DovecotUserCase):
    def _put_auto(self):
        return {
            "auto_submitted": self.received(
                ANN, "Your request", headers={"Auto-Submitted": "auto-replied"}
            ),
            "precedence_bulk": self.received(ANN, "Newsletter", headers={"Precedence": "bulk"}),
            "precedence_list": self.received(ANN, "List mail", headers={"Precedence": "list"}),
            "list_id": self.received(ANN, "Digest", headers={"List-Id": "<news.acme.example>"}),
            "ooo_en": self.received(ANN, "Out of Office: back on Monday"),
            "auto_reply": self.received(ANN, "Automatic reply: Proposal"),
            "ooo_de": self.received(ANN, "Abwesenheitsnotiz: Angebot"),
            "ooo_fr": self.received(ANN, "Réponse automatique : Devis"),
        }

    def test_patterns(self):
        for subject in (
            "Out of Office: x",
            "RE: Automatic reply: x",
            "AW: Abwesenheitsnotiz",
            "Réponse automatique : absent",
            "Autoreply",
            "[EXT] Out of office",
        ):
            self.assertTrue(OUT_OF_OFFICE_RE.match(subject), subject)
        for subject in ("Office move next week", "Proposal", "Re: your reply", "Automation"):
            self.assertFalse(OUT_OF_OFFICE_RE.match(subject), subject)

    def test_auto_replies_and_bulk_not_synced_by_default(self):
        self.assertTrue(self.company.mail_sync_skip_auto)
        auto = self._put_auto()
        human = self.received(ANN, "Re: Proposal")
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        self._sync(mailbox)
        on_lead = self.on(self.lead_ann)
        self.assertIn(human, on_lead)
        for kind, mid in auto.items():
            self.assertNotIn(mid, on_lead, kind)

    def test_setting_off_syncs_them(self):
        self.company.mail_sync_skip_auto = False
        auto = self._put_auto()
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        self._sync(mailbox)
        self.assertLessEqual(set(auto.values()), self.on(self.lead_ann))

    # ------------------------------------------------------------------ point 7
    def _leads(self, address):
        return (
            self.env["crm.lead"]
            .with_context(active_test=False)
            .search([("email_normalized", "=", address)])
        )

    def test_new_leads_off_by_default(self):
        self.received("Nina <nina@newco.example>", "Quote please")
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        self.assertFalse(mailbox.mail_sync_create_leads)
        self._sync(mailbox)
        self.assertFalse(self._leads("nina@newco.example"))

    def test_new_leads_opt_in(self):
        first = self.received("Nina <nina@newco.example>", "Quote please")
        second = self.received("nina@newco.example", "Re: Quote please")
        auto = self.received("otto@autoco.example", "Out of Office: until May")
        bulk = self.received("news@listco.example", "Weekly news", headers={"List-Id": "x"})
        junk_raw_mid = self.put(
            "spam@spamco.example", [self.login], "You won", flags=("$Junk",)
        )  # flagged by a spam filter
        internal = self.received("Ops <ops@ourco.example>", "Lunch?")  # own domain: excluded
        sent = self.put(self.login, ["pat@prospect.example"], "Intro", folder="Sent")
        known = self.received(ANN, "From a known contact")
        mailbox = self._enabled_mailbox(
            self.user_sales, self.login, self.password, mail_sync_create_leads=True
        )
        leads_before = self.env["crm.lead"].search_count([])
        self._sync(mailbox)
        nina = self._leads("nina@newco.example")
        self.assertEqual(len(nina), 1)
        self.assertEqual(nina.user_id, self.user_sales)
        self.assertEqual(nina.name, "Quote please")
        self.assertEqual(self.on(nina), {first, second})
        for address in (
            "otto@autoco.example",
            "news@listco.example",
            "spam@spamco.example",
            "ops@ourco.example",
            "pat@prospect.example",
        ):
            self.assertFalse(self._leads(address), address)
        self.assertEqual(self.env["crm.lead"].search_count([]), leads_before + 1)
        self.assertIn(known, self.on(self.lead_ann))
        synced = {m.message_id for m in self._synced(mailbox)}
        self.assertFalse({auto, bulk, junk_raw_mid, internal, sent} & synced)
        # Later mail from Nina goes to her lead, no second lead.
        third = self.received("nina@newco.example", "Order")
        self._sync(mailbox)
        self.assertEqual(len(self._leads("nina@newco.example")), 1)
        self.assertIn(third, self.on(nina))
