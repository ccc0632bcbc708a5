# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Late linking (``mail_sync_header_index``): a lead created with an address, or given a new
one (its own or its contact's), asks for the mail already exchanged with that address."""
from odoo import api, models


class CrmLead(models.Model):
    _inherit = "crm.lead"

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
