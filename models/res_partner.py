# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Contacts: synced mail on the contact (smart button), late linking when a contact gets an
address, and the company's own domains when an internal user's or a company's address moves."""

from odoo import models

from . import mail_sync_record_mixin  # noqa: F401 - the mixin this model inherits, defined first
from .own_domains import email_domain, own_domains_changed


class ResPartner(models.Model):
    _name = "res.partner"
    _inherit = ["res.partner", "mail.sync.record.mixin"]

    # Late linking (``mail.sync.header.index``): a contact given a new address asks for the
    # mail already exchanged with that address (creation: the mixin).
    def write(self, vals):
        if "email" not in vals:
            return super().write(vals)
        before = {partner.id: email_domain(partner.email) for partner in self}
        res = super().write(vals)
        if vals.get("email"):
            self._mail_sync_late_link()
        moved = self.filtered(lambda p: email_domain(p.email) != before.get(p.id))
        if moved and (
            self.env["res.users"]
            .sudo()
            .search_count([("partner_id", "in", moved.ids), ("share", "=", False)], limit=1)
            or self.env["res.company"]
            .sudo()
            .search_count([("partner_id", "in", moved.ids)], limit=1)
        ):
            own_domains_changed(self.env)  # an internal user's or a company's address
        return res

    def _mail_sync_late_link(self):
        values = {p.email_normalized for p in self if p.active and p.email_normalized}
        if values:
            self.env["mail.sync.header.index"].sudo()._mark_pending(values)
