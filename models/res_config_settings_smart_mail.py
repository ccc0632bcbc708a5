# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models

from .mail_sync_mailbox_smart_mail import FALLBACK_PARAM


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    mail_sync_smart_mail_fallback = fields.Boolean(
        "Fall back to the company's outgoing server",
        config_parameter=FALLBACK_PARAM,
        help="When sending through a user's own mailbox fails (authentication, connection, "
             "daily quota), send the mail through the company's outgoing mail server instead "
             "of leaving it failed in the queue. Off by default.")
