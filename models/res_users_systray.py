# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The top-bar link "Your Mail Sync is not configured" (static/src/systray/): its state."""
from odoo import api, models

# A user with a mailbox in one of these states has Mail Sync configured: no top-bar link.
CONFIGURED_STATES = ("enabled", "error", "pending")


class ResUsers(models.Model):
    _inherit = "res.users"

    @api.model
    def mail_sync_systray_info(self):
        """For the current user in the current company: ``{"show": bool}``, whether the top
        bar shows the link to set up Mail Sync (internal Mail Sync users without an Enabled,
        Error or Pending mailbox)."""
        user = self.env.user
        if user.share or not user.has_group("crm_mail_sync.group_mail_sync_user"):
            return {"show": False}
        configured = self.env["mail.sync.mailbox"].sudo().search_count([
            ("user_id", "=", user.id),
            ("company_id", "=", self.env.company.id),
            ("state", "in", CONFIGURED_STATES),
        ], limit=1)
        return {"show": not configured}
