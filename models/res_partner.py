# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, models


class ResPartner(models.Model):
    _name = "res.partner"
    _inherit = ["res.partner", "mail.sync.record.mixin"]

    # Late linking (``mail.sync.header.index``): a contact created with an address, or given a
    # new one, asks for the mail already exchanged with that address.
    @api.model_create_multi
    def create(self, vals_list):
        partners = super().create(vals_list)
        if any(vals.get("email") for vals in vals_list):
            partners._mail_sync_late_link()
        return partners

    def write(self, vals):
        res = super().write(vals)
        if vals.get("email"):
            self._mail_sync_late_link()
        return res

    def _mail_sync_late_link(self):
        values = {p.email_normalized for p in self if p.active and p.email_normalized}
        if values:
            self.env["mail.sync.header.index"].sudo()._mark_pending(values)
