# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Disconnect a mailbox: keep or remove everything its sync recorded."""

from odoo import _, api, fields, models


class MailSyncDisconnectWizard(models.TransientModel):
    _name = "mail.sync.disconnect.wizard"
    _description = "Mail Sync: disconnect a mailbox"

    mailbox_id = fields.Many2one("mail.sync.mailbox", required=True, ondelete="cascade")
    user_id = fields.Many2one(related="mailbox_id.user_id")
    mode = fields.Selection(
        [("keep", "Keep the synced emails"), ("remove", "Remove the synced emails")],
        string="Synced emails",
        required=True,
        default="keep",
        help="Keep: the emails already recorded stay on the leads, opportunities and "
        "contacts. Remove: every chatter entry this mailbox's sync created is deleted, "
        "on every record; mail sent from Odoo and other users' synced mail stay.",
    )
    synced_entry_count = fields.Integer(
        "Synced chatter entries", compute="_compute_synced_entry_count"
    )

    @api.model_create_multi
    def create(self, vals_list):
        """Only for a mailbox the caller may disconnect (its owner, a Mail Sync manager of its
        company): else the wizard would tell its address, owner and count."""
        for vals in vals_list:
            self.env["mail.sync.mailbox"].browse(
                vals.get("mailbox_id") or self.env.context.get("default_mailbox_id")
            )._check_disconnect_access()
        return super().create(vals_list)

    @api.depends("mailbox_id")
    def _compute_synced_entry_count(self):
        counts = dict(
            self.env["mail.message"]
            .sudo()
            ._read_group(
                [("mail_sync_mailbox_id", "in", self.mailbox_id.ids)],
                ["mail_sync_mailbox_id"],
                ["__count"],
            )
        )
        for wizard in self:
            wizard.synced_entry_count = counts.get(wizard.mailbox_id, 0)

    def action_confirm(self):
        """Disconnect (the owner or a Mail Sync manager: write access to the mailbox)."""
        self.ensure_one()
        mailbox = self.mailbox_id
        mailbox._check_disconnect_access()
        mailbox.sudo()._disconnect(remove=self.mode == "remove")
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "title": _("Mail Sync disconnected"),
                "message": (
                    _("%s is disconnected; its synced emails were removed.", mailbox.email)
                    if self.mode == "remove"
                    else _("%s is disconnected; its synced emails were kept.", mailbox.email)
                ),
                "sticky": False,
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }
