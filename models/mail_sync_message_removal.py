# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""A synced email removed from a record stays removed: no later sync, replay, late link or
colleague's mailbox brings it back onto that record (``mail.message.action_mail_sync_remove``)."""

from odoo import api, fields, models
from odoo.tools import SQL


class MailSyncMessageRemoval(models.Model):
    _name = "mail.sync.message.removal"
    _description = "Mail Sync: message removed from a record"
    _order = "id desc"
    _rec_name = "message_id"

    message_id = fields.Char("Message-ID", required=True, index=True, readonly=True)
    model = fields.Char(required=True, readonly=True)
    res_id = fields.Many2oneReference(model_field="model", required=True, readonly=True)
    user_id = fields.Many2one("res.users", string="Removed by", readonly=True, ondelete="set null")
    company_id = fields.Many2one(
        "res.company",
        readonly=True,
        index=True,
        ondelete="cascade",
        help="The company of the mailbox that synced the removed email (managers see the "
        "removals of their companies only).",
    )
    subject = fields.Char(readonly=True)
    _sql_constraints = [
        ("removal_unique", "unique(message_id, model, res_id)", "Already removed."),
    ]

    @api.model
    def _removed(self, message_ids):
        """{(message_id, model, res_id)} removed among ``message_ids``. One query."""
        if not message_ids:
            return set()
        self.flush_model(["message_id", "model", "res_id"])
        self.env.cr.execute(
            SQL(
                "SELECT message_id, model, res_id FROM mail_sync_message_removal "
                "WHERE message_id = ANY(%s)",
                list(message_ids),
            )
        )
        return set(self.env.cr.fetchall())
