# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Status, seat, daily-cap and counter fields of a mailbox are Mail Sync's: an owner writing them
(through the ORM as that user, or JSON-RPC) would skip the Pending queue, lift the daily cap or
change what is billed."""

from odoo.exceptions import AccessError
from odoo.tests import HttpCase, tagged

from ..models.mail_sync_mailbox import PROTECTED_FIELDS
from .common import MailSyncCase, json_call_kw

ACCESS_LOGGERS = ("odoo.http", "odoo.models")
# A value of each protected field that a client would like to set.
VALUES = {
    "state": "enabled",
    "holds_seat": True,
    "cap_base": -(10**9),
    "cap_day": "2099-01-01",
    "synced_count": 0,
    "error_count": 0,
    "next_sync": False,
    "pending_since": False,
    "error_since": False,
    "last_sync": "2024-01-01 00:00:00",
    "last_success": "2024-01-01 00:00:00",
    "last_error": False,
    "smtp_sent_count": 0,
    "smtp_sent_date": False,
    "fast_checked_at": False,
    "folder_ids": [(5, 0, 0)],
    "log_ids": [(5, 0, 0)],
    "skipped_ids": [(5, 0, 0)],
    "sync_inflight": False,
    "sync_suspects": {"1:INBOX": {"7": 5}},
    "sharing": "everyone",
}


@tagged("post_install", "-at_install")
class TestProtectedFields(MailSyncCase, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company.write({"mail_sync_mailbox_limit": 1})
        other = cls.env["mail.sync.mailbox"].create(
            {
                "user_id": cls.user_sales.id,
                "email": "seat@ourco.example",
                "imap_host": "127.0.0.1",
                "imap_port": 1143,
                "imap_security": "none",
                "password": "x",
            }
        )
        other._enable()  # holds the company's only seat
        cls.mailbox = cls.env["mail.sync.mailbox"].create(
            {
                "user_id": cls.user_jr.id,
                "email": "julia@ourco.example",
                "imap_host": "127.0.0.1",
                "imap_port": 1143,
                "imap_security": "none",
                "password": "x",
            }
        )
        cls.mailbox._enable()  # Pending: the limit is reached

    def test_every_protected_field_has_a_value(self):
        self.assertEqual(set(VALUES), set(PROTECTED_FIELDS))
        self.assertEqual(self.mailbox.state, "pending")

    def test_orm_write_and_create_refused(self):
        mailbox = self.mailbox.with_user(self.user_jr)
        for name, value in VALUES.items():
            with self.subTest(field=name), self.assertRaises(AccessError) as caught:
                mailbox.write({name: value})
            self.assertIn(name, str(caught.exception))
        self.assertEqual(self.mailbox.state, "pending")
        self.assertFalse(self.mailbox.holds_seat)
        self.mailbox.unlink()
        Mailbox = self.env["mail.sync.mailbox"].with_user(self.user_jr)
        for name, value in VALUES.items():
            with self.subTest(field=name), self.assertRaises(AccessError):
                Mailbox.create({"email": "julia@ourco.example", name: value})
        # A default in the context is dropped, not applied.
        created = Mailbox.with_context(
            default_state="enabled", default_holds_seat=True, default_cap_base=-(10**9)
        ).create({"email": "julia@ourco.example"})
        self.assertEqual(created.state, "draft")
        self.assertFalse(created.sudo().holds_seat)
        self.assertEqual(created.sudo().cap_base, 0)
        # The owner still edits their settings.
        created.write({"sync_days": 7, "imap_host": "127.0.0.1"})

    def test_keep_state_context_from_a_client_ignored(self):
        self.mailbox.write({"state": "enabled", "holds_seat": True})  # as superuser
        self.mailbox.with_user(self.user_jr).with_context(mail_sync_keep_state=True).write(
            {"imap_host": "localhost"}
        )
        self.assertEqual(self.mailbox.state, "draft")

    def _rpc(self, method, *args, **kwargs):
        return json_call_kw(
            self, "mail.sync.mailbox", method, *args, loggers=ACCESS_LOGGERS, **kwargs
        )

    def _denied(self, body):
        self.assertIn("error", body, body.get("result"))
        self.assertEqual(
            body["error"]["data"]["name"],
            "odoo.exceptions.AccessError",
            body["error"]["data"].get("message"),
        )

    def test_rpc_write_and_create_refused(self):
        self.authenticate(self.user_jr.login, self.user_jr.login)
        for name, value in VALUES.items():
            with self.subTest(field=name):
                self._denied(self._rpc("write", [self.mailbox.id], {name: value}))
        self.assertEqual(self.mailbox.state, "pending")
        self.assertFalse(self.mailbox.holds_seat)
        # Connection settings changed with the keep-state key: still back to Not connected.
        self.mailbox.write({"state": "enabled", "holds_seat": True})
        body = self._rpc(
            "write",
            [self.mailbox.id],
            {"imap_host": "localhost"},
            context={"mail_sync_keep_state": True},
        )
        self.assertNotIn("error", body)
        self.mailbox.invalidate_recordset()
        self.assertEqual(self.mailbox.state, "draft")
        self.mailbox.unlink()
        for name in ("state", "holds_seat", "cap_base"):
            with self.subTest(create=name):
                self._denied(
                    self._rpc("create", [{"email": "julia@ourco.example", name: VALUES[name]}])
                )
        self.assertFalse(self.env["mail.sync.mailbox"].search([("user_id", "=", self.user_jr.id)]))
