# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import _, api, fields, models


class MailSyncedRecordMixin(models.AbstractModel):
    """How many synced emails a record's chatter holds, and a button to list them."""

    _name = "mail.sync.record.mixin"
    _description = "Mail Sync: synced email counter"

    mail_sync_count = fields.Integer(
        "Synced emails", compute="_compute_mail_sync_count", groups="base.group_user",
        help="Emails recorded on this record by Mail Sync.")

    @api.depends_context("uid")
    def _compute_mail_sync_count(self):
        counts = {}
        if self.ids:
            # The record is readable, so are its synced messages (mail_sync_access) except the
            # private ones of other users (mail_sync_message_privacy): one query.
            Message = self.env["mail.message"]
            domain = [("model", "=", self._name), ("res_id", "in", self.ids),
                      ("mail_sync_mailbox_id", "!=", False)]
            if not Message._mail_sync_sees_private():
                domain += ["|", ("mail_sync_visibility", "!=", "private"),
                           ("mail_sync_private_user_id", "=", self.env.uid)]
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
            "domain": [("model", "=", self._name), ("res_id", "=", self.id),
                       ("mail_sync_mailbox_id", "!=", False)],
            "context": {"create": False},
        }


class CrmLead(models.Model):
    _name = "crm.lead"
    _inherit = ["crm.lead", "mail.sync.record.mixin"]

    # Late linking (``mail.sync.header.index``): a lead created with an address, or given a new
    # one (its own or its contact's), asks for the mail already exchanged with that address.
    @api.model_create_multi
    def create(self, vals_list):
        leads = super().create(vals_list)
        leads._mail_sync_late_link()
        return leads

    def write(self, vals):
        res = super().write(vals)
        if "email_from" in vals or "partner_id" in vals:
            self._mail_sync_late_link()
        return res

    def _mail_sync_late_link(self):
        values = set()
        for lead in self:
            if lead.active:
                values.update(v for v in (lead.email_normalized,
                                          lead.partner_id.email_normalized) if v)
        if values:
            self.env["mail.sync.header.index"].sudo()._mark_pending(values)
