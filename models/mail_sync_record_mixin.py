# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""What leads and contacts share: the count of their synced emails, the smart button that
lists them, and late linking when one is created (each model says which addresses it holds in
``_mail_sync_late_link``)."""

from odoo import _, api, fields, models


class MailSyncedRecordMixin(models.AbstractModel):
    """How many synced emails a record's chatter holds, and a button to list them."""

    _name = "mail.sync.record.mixin"
    _description = "Mail Sync: synced email counter"

    mail_sync_count = fields.Integer(
        "Synced emails",
        compute="_compute_mail_sync_count",
        groups="base.group_user",
        help="Emails recorded on this record by Mail Sync.",
    )

    # Late linking (``mail.sync.header.index``): a record created with an address asks for the
    # mail already exchanged with that address (a new address by write: each model's write).
    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        records._mail_sync_late_link()
        return records

    @api.depends_context("uid")
    def _compute_mail_sync_count(self):
        counts = {}
        if self.ids:
            # The record is readable, so are its synced messages (mail.message access) except
            # the private ones of other users: one query.
            Message = self.env["mail.message"]
            domain = [
                ("model", "=", self._name),
                ("res_id", "in", self.ids),
                ("mail_sync_mailbox_id", "!=", False),
            ]
            if not Message._mail_sync_sees_private():
                domain += [
                    "|",
                    ("mail_sync_visibility", "!=", "private"),
                    ("mail_sync_private_user_id", "=", self.env.uid),
                ]
            groups = Message.sudo()._read_group(domain, ["res_id"], ["__count"])
            counts = dict(groups)
        for record in self:
            record.mail_sync_count = counts.get(record._origin.id or record.id, 0)

    def action_view_mail_sync_messages(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": _("Synced emails"),
            "res_model": "mail.message",
            "view_mode": "list,form",
            "domain": [
                ("model", "=", self._name),
                ("res_id", "=", self.id),
                ("mail_sync_mailbox_id", "!=", False),
            ],
            "context": {"create": False},
        }
