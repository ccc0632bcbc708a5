# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Leads: synced mail on the lead (smart button) and late linking when a lead gets an address."""

from odoo import models

from . import mail_sync_record_mixin  # noqa: F401 - the mixin this model inherits, defined first


class CrmLead(models.Model):
    _name = "crm.lead"
    _inherit = ["crm.lead", "mail.sync.record.mixin"]

    # Late linking (``mail.sync.header.index``): a lead given a new address (its own or its
    # contact's) asks for the mail already exchanged with that address (creation: the mixin).
    def write(self, vals):
        res = super().write(vals)
        if "email_from" in vals or "partner_id" in vals:
            self._mail_sync_late_link()
        return res

    def _mail_sync_late_link(self):
        values = set()
        for lead in self:
            if lead.active:
                values.update(
                    v for v in (lead.email_normalized, lead.partner_id.email_normalized) if v
                )
        if values:
            self.env["mail.sync.header.index"].sudo()._mark_pending(values)
