# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""My Profile ▸ Mail Sync: "Connect with Google / Microsoft" straight from the user's tab."""
from odoo import _, models
from odoo.exceptions import AccessError


class ResUsers(models.Model):
    _inherit = "res.users"

    def action_mail_sync_connect_google(self):
        return self._mail_sync_connect("google")

    def action_mail_sync_connect_microsoft(self):
        return self._mail_sync_connect("microsoft")

    def _mail_sync_connect(self, provider):
        """The user's own mailbox in this company (created when there is none yet), sent to
        the provider's consent screen."""
        self.ensure_one()
        if self != self.env.user:
            raise AccessError(_("Only %s can connect their own mailbox.", self.name))
        Mailbox = self.env["mail.sync.mailbox"]
        mailbox = Mailbox.search(
            [("user_id", "=", self.id), ("company_id", "=", self.env.company.id)], limit=1)
        if not mailbox:
            mailbox = Mailbox.create({
                "user_id": self.id,
                "company_id": self.env.company.id,
                "email": self.email or self.login,  # replaced by the provider's answer
                "provider": "gmail" if provider == "google" else "outlook",
            })
        return getattr(mailbox, f"action_connect_{provider}")()
