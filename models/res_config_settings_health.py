# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Settings ▸ CRM ▸ Mail Sync: the company's mailbox limit, plan / daily cap and billable
count (all on ``res.company``)."""
from odoo import fields, models

from ..mailsync import netguard
from .mail_sync_mailbox import ALLOWED_NETWORKS_PARAM


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    mail_sync_mailbox_limit = fields.Integer(
        related="company_id.mail_sync_mailbox_limit", readonly=False)
    mail_sync_plan = fields.Selection(
        related="company_id.mail_sync_plan", readonly=False)
    mail_sync_daily_cap = fields.Integer(
        related="company_id.mail_sync_daily_cap", readonly=False)
    mail_sync_billable_count = fields.Integer(
        related="company_id.mail_sync_billable_count")
    mail_sync_max_attachment_mb = fields.Integer(
        related="company_id.mail_sync_max_attachment_mb", readonly=False)
    mail_sync_max_message_mb = fields.Integer(
        related="company_id.mail_sync_max_message_mb", readonly=False)
    mail_sync_max_parts = fields.Integer(related="company_id.mail_sync_max_parts",
                                         readonly=False)
    mail_sync_sharing = fields.Selection(related="company_id.mail_sync_sharing", readonly=False)
    mail_sync_allowed_networks = fields.Char(
        "Allowed networks", config_parameter=ALLOWED_NETWORKS_PARAM,
        help="Mail Sync connects only to public mail servers on the usual mail ports. List "
             "here the servers of your own network it may reach as well: host names, IP "
             "addresses or networks (CIDR), separated by commas — e.g. mail.intranet.example, "
             "10.1.2.0/24. Empty: none.")

    def set_values(self):
        # Normalise what an administrator typed (one space-free, comma-separated list).
        for settings in self:
            allowed = netguard.Allowed(settings.mail_sync_allowed_networks)
            settings.mail_sync_allowed_networks = ", ".join(
                sorted(allowed.hosts) + [str(net) for net in allowed.networks]) or False
        return super().set_values()
