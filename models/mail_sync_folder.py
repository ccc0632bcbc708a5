# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models
from odoo.tools import SQL


class MailSyncFolder(models.Model):
    """The sync cursor of one folder of a mailbox (UIDVALIDITY + last UID seen).

    Written in the same transaction as the messages recorded from it, so a crash replays the
    batch and the synced messages (unique per Message-ID) make the replay a no-op.
    """

    _name = "mail.sync.folder"
    _description = "Mail Sync folder cursor"
    _order = "mailbox_id, id"

    mailbox_id = fields.Many2one(
        "mail.sync.mailbox", required=True, index=True, ondelete="cascade", readonly=True
    )
    company_id = fields.Many2one(related="mailbox_id.company_id", store=True)
    name = fields.Char("Folder", required=True, readonly=True)
    role = fields.Selection(
        [("inbox", "Inbox"), ("sent", "Sent"), ("all", "All mail")], required=True, readonly=True
    )
    uidvalidity = fields.Integer("UIDVALIDITY", readonly=True)
    last_uid = fields.Integer("Last UID", readonly=True)

    _sql_constraints = [
        ("mailbox_name_unique", "unique(mailbox_id, name)", "A folder is synced once per mailbox."),
    ]

    def write(self, vals):
        """A new UIDVALIDITY makes the folder's late-linking rows (``mail.sync.header.index``)
        worthless: they go."""
        if "uidvalidity" in vals:
            stale = self.filtered(lambda f: f.uidvalidity != (vals["uidvalidity"] or 0))
            if stale:
                self.env.cr.execute(
                    SQL(
                        "DELETE FROM mail_sync_header_index WHERE folder_id = ANY(%s) "
                        "AND uidvalidity != %s",
                        stale.ids,
                        vals["uidvalidity"] or 0,
                    )
                )
        return super().write(vals)
