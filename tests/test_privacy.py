# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Points 1 and 2: never-log lists (company's own domain by default) and private / removed
messages, against Dovecot."""

from unittest.mock import patch

from odoo.exceptions import AccessError
from odoo.tests import tagged

from odoo.addons.mail.tests.common import mail_new_test_user

from .mailbox_case import DovecotUserCase


@tagged("post_install", "-at_install")
class TestPrivacy(DovecotUserCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user_sales2 = mail_new_test_user(
            cls.env,
            login="ms_sales2",
            name="Sid Seller",
            email="sid.seller@ourco.example",
            groups="base.group_user,sales_team.group_sale_salesman_all_leads",
        )
        # A lead whose address is in the company's own domain (an internal contact).
        cls.lead_internal = cls.env["crm.lead"].create(
            {"name": "Internal", "email_from": "ops@ourco.example", "user_id": cls.user_sales.id}
        )

    # ------------------------------------------------------------------ point 1
    def test_own_domain_excluded_by_default(self):
        self.assertTrue(self.company.mail_sync_exclude_own_domain)
        self.assertIn("ourco.example", self.company._mail_sync_own_domains())
        only_internal = self.received("Ops <ops@ourco.example>", "Internal only")
        mixed = self.put(
            "Ops <ops@ourco.example>", [self.login, "ann.smith@acme.example"], "Internal and Ann"
        )
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        self._sync(mailbox)
        self.assertNotIn(only_internal, self.on(self.lead_internal))
        registry = (
            self.env["mail.sync.message"]
            .sudo()
            .search([("mailbox_id", "=", mailbox.id)])
            .mapped("message_id")
        )
        self.assertNotIn(only_internal, registry)
        # Not every other party is excluded: recorded (on both, the lead matches too).
        self.assertIn(mixed, self.on(self.lead_ann))

        # The setting off: internal mail is synced like any other.
        self.company.mail_sync_exclude_own_domain = False
        login2, password2 = self._dovecot_user()
        self.dovecot.append(login2, "INBOX", self._raw_copy(only_internal, login2))
        mailbox2 = self._enabled_mailbox(self.user_manager, login2, password2)
        self._sync(mailbox2)
        self.assertIn(only_internal, self.on(self.lead_internal))

    def _raw_copy(self, message_id, to):
        from .mailbox_case import raw_mail

        return raw_mail("Ops <ops@ourco.example>", [to], "Internal only", message_id=message_id)[0]

    def test_company_and_user_exclusions(self):
        Exclusion = self.env["mail.sync.exclusion"]
        Exclusion.create({"value": "@ACME.example"})  # company-wide domain (normalised)
        Exclusion.with_user(self.user_sales).create(
            {"value": "Bob <bob@bobco.example>", "user_id": self.user_sales.id}
        )
        self.assertEqual(
            set(Exclusion.search([]).mapped("value")), {"acme.example", "bob@bobco.example"}
        )
        ann = self.received("ann.smith@acme.example", "From Ann")
        ann_sub = self.received(
            "x@eu.acme.example", "From a subdomain, cc Ann", cc=["ann.smith@acme.example"]
        )
        bob = self.received("bob@bobco.example", "From Bob")
        eva = self.received("eva@mueller.example", "From Eva")
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        self._sync(mailbox)
        synced = {m.message_id for m in self._synced(mailbox)}
        self.assertEqual(synced & {ann, ann_sub, bob, eva}, {eva})
        # Bob is excluded for Sam only: Julia's mailbox records him.
        login2, password2 = self._dovecot_user()
        self.dovecot.append(login2, "INBOX", self.dovecot_copy(bob, login2))
        mailbox_jr = self._enabled_mailbox(self.user_jr, login2, password2)
        self._sync(mailbox_jr)
        self.assertIn(bob, {m.message_id for m in self._synced(mailbox_jr)})
        # A user reads company entries, edits only their own.
        company_entry = Exclusion.search([("user_id", "=", False)])
        with self.assertRaises(AccessError):
            company_entry.with_user(self.user_jr).write({"note": "mine now"})
        self.assertFalse(Exclusion.with_user(self.user_jr).search([("user_id", "!=", False)]))

    def dovecot_copy(self, message_id, to):
        from .mailbox_case import raw_mail

        return raw_mail("bob@bobco.example", [to], "From Bob", message_id=message_id)[0]

    # ------------------------------------------------------------------ point 2
    def _synced_ann(self):
        mid = self.received("Ann <ann.smith@acme.example>", "Offer, confidential")
        mailbox = self._enabled_mailbox(self.user_sales, self.login, self.password)
        self._sync(mailbox)
        message = (
            self.env["mail.message"]
            .sudo()
            .search(
                [
                    ("message_id", "=", mid),
                    ("model", "=", "crm.lead"),
                    ("res_id", "=", self.lead_ann.id),
                ]
            )
        )
        self.assertEqual(len(message), 1)
        return mailbox, mid, message

    def test_private_message(self):
        _mailbox, _mid, message = self._synced_ann()
        Message = self.env["mail.message"]
        self.assertEqual(
            Message.with_user(self.user_sales2).search([("id", "=", message.id)]), message
        )
        # Only the owner of the mailbox (or a manager) may make it private.
        with self.assertRaises(AccessError):
            message.with_user(self.user_sales2).action_mail_sync_make_private()
        counted = self.lead_ann.with_user(self.user_sales2).mail_sync_count
        self.assertTrue(counted)
        message.with_user(self.user_sales).action_mail_sync_make_private()
        self.assertTrue(message.sudo().mail_sync_private)
        self.lead_ann.invalidate_recordset(["mail_sync_count"])
        # Not counted for whom it is hidden from; still for its owner.
        self.assertEqual(self.lead_ann.with_user(self.user_sales2).mail_sync_count, counted - 1)
        self.assertEqual(self.lead_ann.with_user(self.user_sales).mail_sync_count, counted)
        # Another salesperson who reads the lead no longer sees it, in search or read.
        self.assertFalse(Message.with_user(self.user_sales2).search([("id", "=", message.id)]))
        with self.assertRaises(AccessError):
            message.with_user(self.user_sales2).read(["body"])
        self.assertTrue(self.lead_ann.with_user(self.user_sales2).name)  # the lead still is
        # Its owner and managers do.
        for user in (self.user_sales, self.user_manager):
            self.assertEqual(Message.with_user(user).search([("id", "=", message.id)]), message)
            message.with_user(user).read(["body"])
        # Visible again.
        message.with_user(self.user_sales).action_mail_sync_make_public()
        self.assertEqual(
            Message.with_user(self.user_sales2).search([("id", "=", message.id)]), message
        )

    def test_removed_message_does_not_come_back(self):
        mailbox, mid, message = self._synced_ann()
        with self.assertRaises(AccessError):
            message.with_user(self.user_sales2).action_mail_sync_remove()
        message.with_user(self.user_sales).action_mail_sync_remove()
        self.assertNotIn(mid, self.on(self.lead_ann))
        self.assertIn(mid, self.on(self.partner_ann))  # removed from the lead only
        removal = self.env["mail.sync.message.removal"].sudo().search([("message_id", "=", mid)])
        self.assertEqual((removal.model, removal.res_id), ("crm.lead", self.lead_ann.id))
        # A full resync after a UIDVALIDITY change and a forgotten registry: not back.
        self.env["mail.sync.message"].sudo().search([("mailbox_id", "=", mailbox.id)]).unlink()
        self.dovecot.reset_uidvalidity(self.login, "INBOX")
        self._sync(mailbox)
        self.assertNotIn(mid, self.on(self.lead_ann))
        # A colleague's mailbox holding the same mail does not bring it back either.
        login2, password2 = self._dovecot_user()
        from .mailbox_case import raw_mail

        self.dovecot.append(
            login2,
            "INBOX",
            raw_mail(
                "Ann <ann.smith@acme.example>", [login2], "Offer, confidential", message_id=mid
            )[0],
        )
        mailbox2 = self._enabled_mailbox(self.user_manager, login2, password2)
        self._sync(mailbox2)
        self.assertNotIn(mid, self.on(self.lead_ann))
        self.assertIn(
            mid,
            self.env["mail.sync.message"]
            .sudo()
            .search([("mailbox_id", "=", mailbox2.id)])
            .mapped("message_id"),
        )
        self.assertIn(mid, self.on(self.partner_ann))

    def test_own_domains_follow_users_and_mailboxes(self):
        """A domain becomes the company's own at once, without a restart, when two colleagues
        have an address there or a mailbox there is connected; the never-log list and unrelated
        writes clear no cache (nothing of them is cached)."""
        Exclusion = self.env["mail.sync.exclusion"].sudo()
        self.assertNotIn("newbranch.example", self.company._mail_sync_own_domains())  # cached
        user = mail_new_test_user(
            self.env,
            login="ms_branch",
            name="Bea Branch",
            email="bea@newbranch.example",
            groups="base.group_user",
        )
        # One colleague alone never makes a domain internal (a user edits their own address).
        self.assertNotIn("newbranch.example", self.company._mail_sync_own_domains())
        mail_new_test_user(
            self.env,
            login="ms_branch2",
            name="Cy Branch",
            email="cy@newbranch.example",
            groups="base.group_user",
        )
        self.assertIn("newbranch.example", self.company._mail_sync_own_domains())
        user.email = "bea@otherbranch.example"
        domains = self.company._mail_sync_own_domains()
        self.assertNotIn("otherbranch.example", domains)
        self.assertNotIn("newbranch.example", domains)
        user.email = "bea@newbranch.example"
        self.assertIn("newbranch.example", self.company._mail_sync_own_domains())
        user.active = False
        self.assertNotIn("newbranch.example", self.company._mail_sync_own_domains())
        # A mailbox's domain counts once it is connected (a connection test proved the login).
        mailbox = self._mailbox(self.user_jr, self.login, self.password)
        mailbox.email = "julia@jrbranch.example"
        self.assertNotIn("jrbranch.example", Exclusion._policy_for(mailbox).domains)
        mailbox._enable()
        self.assertIn("jrbranch.example", Exclusion._policy_for(mailbox).domains)
        # Nothing to forget: exclusions, a customer's address, a mailbox address in the same
        # domain, the company's flags.
        login2, password2 = self._dovecot_user()
        draft = self._mailbox(self.user_sales, login2, password2)
        registry_class = type(self.env.registry)
        with patch.object(registry_class, "clear_cache", autospec=True) as clear_cache:
            entry = Exclusion.create({"value": "acme.example"})
            entry.note = "customer"
            self.partner_ann.email = "ann.smith@acme-group.example"
            draft.email = "sam@draftbranch.example"  # not connected: not an own domain
            self.company.mail_sync_skip_auto = False
            self.assertIn("acme.example", Exclusion._policy_for(mailbox).domains)
            entry.unlink()
        clear_cache.assert_not_called()
        self.assertNotIn("acme.example", Exclusion._policy_for(mailbox).domains)

    def test_exclusion_count_one_query(self):
        Exclusion = self.env["mail.sync.exclusion"].sudo()
        Exclusion.create(
            [
                {"value": "acme.example"},
                {"value": "bobco.example"},
                {"value": "x@eu.example", "user_id": self.user_jr.id},
                {"value": "y@eu.example", "user_id": self.user_sales.id},
            ]
        )
        login2, password2 = self._dovecot_user()
        mailboxes = self._mailbox(self.user_jr, self.login, self.password) | self._mailbox(
            self.user_sales, login2, password2
        )
        expected = [
            Exclusion.search_count(
                [
                    ("company_id", "=", mailbox.company_id.id),
                    "|",
                    ("user_id", "=", False),
                    ("user_id", "=", mailbox.user_id.id),
                ]
            )
            for mailbox in mailboxes
        ]
        self.assertEqual(mailboxes.mapped("exclusion_count"), expected)
        self.assertEqual(expected[0] - len(Exclusion.search([("user_id", "=", False)])), 1)
        mailboxes.invalidate_recordset(["exclusion_count"])
        with self.assertQueryCount(1):
            self.assertEqual(mailboxes.mapped("exclusion_count"), expected)
