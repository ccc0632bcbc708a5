# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class MailMessage(models.Model):
    _inherit = "mail.message"

    # Marks exactly what a mailbox's sync created (to remove it on disconnect).
    mail_sync_mailbox_id = fields.Many2one(
        "mail.sync.mailbox", string="Synced from mailbox", index="btree_not_null",
        ondelete="set null", readonly=True, copy=False, groups="base.group_user")
    mail_sync_direction = fields.Selection(
        [("sent", "Sent"), ("received", "Received")], string="Synced direction",
        readonly=True, copy=False, groups="base.group_user")
    mail_sync_date_header = fields.Char(
        "Date header (Mail Sync)", readonly=True, copy=False, groups="base.group_user",
        help="The email's own Date header, when it was not believed (missing, in the future or "
             "before 1990) and the server's reception date was shown instead.")
