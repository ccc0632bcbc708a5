# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Shared setup of the Odoo tests: sales users of each level, leads and contacts with addresses,
and mailboxes on the shared loopback Dovecot (``mailsync.testing``)."""

import contextlib
import datetime
import email
import email.policy
import itertools
import json
import secrets
import socket
import unittest
from collections import defaultdict
from datetime import timedelta

from odoo.tests.common import TransactionCase
from odoo.tools import mute_logger

from odoo.addons.mail.tests.common import mail_new_test_user

from ..mailsync import addresses
from ..mailsync.testing.corpus import generate
from ..mailsync.testing.cyrus import CyrusUnavailable, shared_cyrus
from ..mailsync.testing.dovecot import shared_dovecot
from ..mailsync.testing.smtp_server import shared_smtp
from ..models.mail_sync_mailbox import ALLOWED_NETWORKS_PARAM


def new_login(prefix="sam"):
    """A mailbox login that no other test (or earlier run on a kept server) used (no dot in
    the local part: Cyrus, the second test server, uses "." as its folder separator)."""
    return f"{prefix}-{secrets.token_hex(4)}@sales.example.test"


@contextlib.contextmanager
def silent_server():
    """A loopback port that accepts TCP connections but never says a word (a hung server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def json_call_kw(case, model, method, *args, loggers=(), **kwargs):
    """``model.method(*args, **kwargs)`` through ``/web/dataset/call_kw`` in ``case``'s HTTP
    session (an ``HttpCase``), ``loggers`` muted; the decoded JSON-RPC reply (result or error)."""
    payload = {
        "jsonrpc": "2.0",
        "method": "call",
        "id": 1,
        "params": {"model": model, "method": method, "args": list(args), "kwargs": kwargs},
    }
    with mute_logger(*loggers):
        response = case.url_open(
            f"/web/dataset/call_kw/{model}/{method}",
            data=json.dumps(payload),
            headers={"Content-Type": "application/json"},
        )
    case.assertEqual(response.status_code, 200, response.text[:300])
    return response.json()


class MailSyncCase(TransactionCase):
    """Users: ``user_jr`` (Sales: own documents), ``user_sales`` (all documents),
    ``user_manager`` (Sales: administrator), ``user_employee`` (no sales rights).
    Leads and contacts: see ``_setup_crm``; ``cls.correspondents`` lists the addresses
    the generated mail is exchanged with (matching and non-matching ones).

    ``cls.dovecot`` is the IMAP server of the test: the shared Dovecot, or the shared Cyrus for
    a class with ``IMAP = "cyrus"`` (the tests about IMAP behaviour run on both)."""

    IMAP = "dovecot"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(
            context=dict(cls.env.context, tracking_disable=True, mail_create_nolog=True)
        )
        cls.dovecot = cls._imap_server()
        cls.company = cls.env.company
        # The test servers listen on 127.0.0.1: allowed, as an administrator would allow a
        # company server (the network rule refuses private addresses otherwise).
        cls.env["ir.config_parameter"].sudo().set_param(ALLOWED_NETWORKS_PARAM, "127.0.0.1")
        cls.user_jr = mail_new_test_user(
            cls.env,
            login="ms_jr",
            name="Julia Junior",
            email="julia.junior@ourco.example",
            groups="base.group_user,sales_team.group_sale_salesman",
        )
        cls.user_sales = mail_new_test_user(
            cls.env,
            login="ms_sales",
            name="Sam Seller",
            email="sam.seller@ourco.example",
            groups="base.group_user,sales_team.group_sale_salesman_all_leads",
        )
        cls.user_manager = mail_new_test_user(
            cls.env,
            login="ms_manager",
            name="Mia Manager",
            email="mia.manager@ourco.example",
            groups="base.group_user,sales_team.group_sale_manager",
        )
        cls.user_employee = mail_new_test_user(
            cls.env,
            login="ms_employee",
            name="Eve Employee",
            email="eve@ourco.example",
            groups="base.group_user",
        )
        cls._setup_crm()

    @classmethod
    def _setup_crm(cls):
        Partner = cls.env["res.partner"]
        Lead = cls.env["crm.lead"]
        # Contacts with leads through their partner, contacts alone, leads with only an address.
        cls.partner_ann = Partner.create({"name": "Ann Smith", "email": "Ann.Smith@Acme.example"})
        cls.partner_bob = Partner.create({"name": "Bob Martin", "email": "bob@bobco.example"})
        cls.partner_chloe = Partner.create(
            {"name": "Chloé Dubois", "email": "chloe.dubois@exemple.example"}
        )
        cls.partner_dup = Partner.create(
            {"name": "Ann Smith (duplicate)", "email": "ann.smith@acme.example"}
        )
        cls.partner_archived = Partner.create(
            {"name": "Old Contact", "email": "old@gone.example", "active": False}
        )
        cls.lead_ann = Lead.create(
            {
                "name": "Acme deal",
                "type": "opportunity",
                "partner_id": cls.partner_ann.id,
                "user_id": cls.user_sales.id,
            }
        )
        cls.lead_bob = Lead.create(
            {
                "name": "Bob's shop",
                "type": "lead",
                "partner_id": cls.partner_bob.id,
                "email_from": "bob@bobco.example",
                "user_id": cls.user_jr.id,
            }
        )
        cls.lead_dmitri = Lead.create(
            {
                "name": "Dmitri inquiry",
                "type": "lead",
                "email_from": "Dmitri <DMITRI@ru.example>",
                "user_id": cls.user_sales.id,
            }
        )
        cls.lead_eva = Lead.create(
            {
                "name": "Eva follow-up",
                "type": "opportunity",
                "email_from": "eva@mueller.example",
                "user_id": False,
            }
        )
        cls.lead_lost = Lead.create(
            {
                "name": "Lost one",
                "type": "opportunity",
                "email_from": "lost@lost.example",
                "user_id": cls.user_sales.id,
            }
        )
        cls.lead_lost.action_set_lost()
        # Somebody unknown to the CRM, and a colleague (internal user: never a "contact").
        cls.correspondents = [
            "ann.smith@acme.example",
            "bob@bobco.example",
            "chloe.dubois@exemple.example",
            "dmitri@ru.example",
            "eva@mueller.example",
            "lost@lost.example",
            "old@gone.example",
            "stranger@nowhere.example",
            "eve@ourco.example",
        ]

    @classmethod
    def _imap_server(cls):
        if cls.IMAP == "cyrus":
            try:
                return shared_cyrus()
            except CyrusUnavailable as exc:
                raise unittest.SkipTest(f"CYRUS NOT AVAILABLE: {exc}") from None
        return shared_dovecot()

    @classmethod
    def _company_smtp(cls):
        """The loopback SMTP server as the company's only outgoing server (another account
        than any mailbox's): ``cls.smtp``, ``cls.company_login``, the ``ir.mail_server``."""
        cls.smtp = shared_smtp()
        cls.company_login = "company-server@ourco.example"
        cls.smtp.add_user(cls.company_login, "company-secret")
        cls.env["ir.mail_server"].search([]).active = False
        return cls.env["ir.mail_server"].create(
            {
                "name": "Company SMTP",
                "smtp_host": cls.smtp.host,
                "smtp_port": cls.smtp.port,
                "smtp_encryption": "none",
                "smtp_authentication": "login",
                "smtp_user": cls.company_login,
                "smtp_pass": "company-secret",
            }
        )

    # ------------------------------------------------------------------ mailboxes
    @classmethod
    def _dovecot_user(cls, login=None, password=None):
        login = login or new_login()
        password = password or secrets.token_urlsafe(12)
        cls.dovecot.add_user(login, password)
        return login, password

    def _mailbox(self, user, login, password, **values):
        vals = {
            "user_id": user.id,
            "email": login,
            "imap_host": self.dovecot.host,
            "imap_port": self.dovecot.port,
            "imap_security": "none",
            "imap_login": login,
            "smtp_host": False,
            "password": password,
            "sync_days": 30,
        }
        vals.update(values)
        return self.env["mail.sync.mailbox"].create(vals)

    def _enabled_mailbox(self, user, login, password, **values):
        mailbox = self._mailbox(user, login, password, **values)
        mailbox._enable()
        return mailbox

    _corpus_serial = itertools.count(1)

    @classmethod
    def _corpus(cls, login, n, seed=None, start=None, **kwargs):
        """``n`` generated messages for ``login``; the default seed is deterministic for a given
        run order (the login is random), so a failure replays the same mail."""
        seed = seed or f"{cls.__name__}-{n}-{next(MailSyncCase._corpus_serial)}"
        start = start or datetime.datetime.now(datetime.timezone.utc) - timedelta(days=25)
        return generate(
            seed, login, cls.correspondents, n, start=start, user_name="Sam Seller", **kwargs
        )

    @classmethod
    def _load(cls, login, messages, flag_every=3):
        """APPEND the corpus to the IMAP server, one session per folder; some get flags.
        Returns the messages the server stored (Cyrus refuses a few kinds of broken mail that
        Dovecot keeps, e.g. a NUL byte in a body): the expectations are about those."""
        by_folder = defaultdict(list)
        for index, message in enumerate(messages):
            flags = (b"\\Seen",) if index % flag_every == 0 else ()
            if index % 7 == 0:
                flags += (b"\\Flagged",)
            by_folder[message.folder].append((message, (message.raw, flags, message.date)))
        stored = set()
        for folder, pairs in by_folder.items():
            uids = cls.dovecot.append_many(
                login, folder, [item for _m, item in pairs], skip_refused=True
            )
            stored.update(id(message) for (message, _i), uid in zip(pairs, uids) if uid is not None)
        return [message for message in messages if id(message) in stored]

    def _sync(self, mailbox):
        """One cron-like run of one mailbox (no commit)."""
        return mailbox.sudo()._sync()

    # ------------------------------------------------------------------ expectations
    def _expected_targets(self, messages, own):
        """``{message_id: {(model, res_id)}}`` computed from the corpus addresses alone (plain
        ORM searches, independent of the matcher)."""
        Lead = self.env["crm.lead"]
        Partner = self.env["res.partner"]
        expected = {}
        for message in messages:
            involved = {a for a in message.addrs if a and a not in own}
            if not involved:
                continue
            leads = Lead.search(
                [
                    "|",
                    ("email_normalized", "in", list(involved)),
                    ("partner_id.email_normalized", "in", list(involved)),
                ]
            )
            partners = Partner.search(
                [("email_normalized", "in", list(involved)), ("user_ids", "=", False)]
            )
            targets = {("crm.lead", i) for i in leads.ids} | {
                ("res.partner", i) for i in partners.ids
            }
            if targets:
                expected[message.message_id] = targets
        return expected

    def _synced(self, mailbox):
        return self.env["mail.message"].sudo().search([("mail_sync_mailbox_id", "=", mailbox.id)])

    @staticmethod
    def _from_addr(raw):
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        return addresses.normalize(str(msg.get("From", "")))
