# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Settings ▸ CRM ▸ Mail Sync: the company's mailbox limit, plan / daily cap and billable
count (all on ``res.company``)."""
from odoo import fields, models


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
