# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Messages a sync skipped, one row each, until a retry records them.

A message that cannot be read, is refused by the limits, cannot be recorded (after the recorder
isolated it from its batch), or was being read twice when a sync died, is skipped: the cursor
moves past it in the same transaction as this row, the mailbox stays Enabled, the error log
gets a line (one per kind, counted), and the mailbox's "Retry skipped messages" fetches exactly
these UIDs again (``mail.sync.mailbox.action_retry_skipped``).
"""

from odoo import api, fields, models

from ..mailsync import errors
from ..mailsync.text import clean_line
from .sync_run import naive_utc


class MailSyncSkipped(models.Model):
    _name = "mail.sync.skipped"
    _description = "Mail Sync: skipped message"
    _order = "last_seen desc, id desc"
    _rec_name = "subject"

    mailbox_id = fields.Many2one(
        "mail.sync.mailbox", required=True, index=True, ondelete="cascade", readonly=True
    )
    user_id = fields.Many2one(related="mailbox_id.user_id", store=True, string="User")
    company_id = fields.Many2one(related="mailbox_id.company_id", store=True)
    folder_id = fields.Many2one(
        "mail.sync.folder", string="Folder cursor", required=True, ondelete="cascade", readonly=True
    )
    folder = fields.Char(related="folder_id.name", string="Folder")
    uidvalidity = fields.Integer("UIDVALIDITY", readonly=True)
    uid = fields.Integer("UID", readonly=True)
    message_id = fields.Char("Message-ID", readonly=True)
    date = fields.Datetime("Email date", readonly=True)
    sender = fields.Char(readonly=True)
    subject = fields.Char(readonly=True)
    kind = fields.Selection(
        [(kind, kind.replace("_", " ").capitalize()) for kind in errors.KINDS],
        required=True,
        readonly=True,
    )
    reason = fields.Text("What went wrong", readonly=True)
    fix = fields.Text("How to fix it", readonly=True)
    first_seen = fields.Datetime(readonly=True, default=fields.Datetime.now)
    last_seen = fields.Datetime(readonly=True, default=fields.Datetime.now)
    attempts = fields.Integer(readonly=True, default=1)

    _sql_constraints = [
        (
            "place_unique",
            "unique(folder_id, uidvalidity, uid)",
            "A message is skipped once per folder place.",
        ),
    ]

    def read(self, fields=None, load="_classic_read"):
        """What went wrong and how to fix it in the reader's language (stored in English)."""
        return self.env["mail.sync.log"]._translate_read(
            super().read(fields, load), ("reason", "fix")
        )

    @api.model
    def _remember(self, mailbox, folder, sync_error):
        """Store (or count again) the skipped message of ``sync_error`` (its ``uid``, folder
        ``folder`` record at its current UIDVALIDITY, ``header`` when known). Returns the
        row."""
        header = getattr(sync_error, "header", None)
        now = fields.Datetime.now()
        key = [
            ("folder_id", "=", folder.id),
            ("uidvalidity", "=", folder.uidvalidity or 0),
            ("uid", "=", sync_error.uid),
        ]
        vals = {
            "kind": sync_error.kind,
            "reason": clean_line(
                " ".join(filter(None, [sync_error.summary, sync_error.detail])), 1000
            ),
            "fix": sync_error.fix,
            "last_seen": now,
        }
        if header is not None:
            vals.update(
                {
                    "message_id": header.message_id,
                    "date": naive_utc(header.date or header.internal_date) or False,
                    "sender": ", ".join(header.from_addrs)[:256] or False,
                    "subject": header.subject[:256] or False,
                }
            )
        row = self.sudo().search(key, limit=1)
        if row:
            row.write(dict(vals, attempts=row.attempts + 1))
            return row
        return self.sudo().create(
            dict(
                vals,
                mailbox_id=mailbox.id,
                folder_id=folder.id,
                uidvalidity=folder.uidvalidity or 0,
                uid=sync_error.uid,
                first_seen=now,
            )
        )

    def _where(self):
        """How the error log names this message: folder, UID, date, sender, subject."""
        self.ensure_one()
        parts = [f"{self.folder_id.name}, UID {self.uid}"]
        if self.date:
            parts.append(fields.Datetime.to_string(self.date))
        if self.sender:
            parts.append(self.sender)
        if self.subject:
            parts.append(f"“{self.subject}”")
        return " · ".join(parts)
