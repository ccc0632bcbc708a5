# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Company-level Mail Sync settings: the mailbox limit (seats), the daily cap (plan) and the
number of billable mailboxes."""
from odoo import api, fields, models

from ..mailsync.types import Limits

# PRODUCT.md: "Free plan: at most 100 synced emails per user per day".
FREE_PLAN_CAP = 100

# Mailboxes that hold a seat of the company limit. Connection keeps its seat until the mailbox
# is disconnected; Pending waits for one; Not connected (draft) holds none.
SEAT_STATES = ("enabled", "error", "connection")
# Mailboxes the company pays for: not Pending, not Connection (and active: the one definition,
# used by mail.sync.mailbox.is_billable and res.company.mail_sync_billable_count).
BILLABLE_STATES = ("enabled", "error")

MB = 1 << 20

# Who sees the mail a mailbox records (res.users.mail_sync_sharing, company default).
SHARING = [
    ("everyone", "Everyone who can see the record"),
    ("metadata", "Subject and participants only"),
    ("private", "Private"),
]


def limits_from(attachment_mb, message_mb, parts):
    """The engine's ``Limits`` from a company's settings (0 or empty: no limit)."""
    return Limits(max_attachment_bytes=attachment_mb * MB if attachment_mb else None,
                  max_message_bytes=message_mb * MB if message_mb else None,
                  max_parts=parts or None)


class ResCompany(models.Model):
    _inherit = "res.company"

    mail_sync_mailbox_limit = fields.Integer(
        "Mail Sync mailbox limit", default=0,
        help="How many mailboxes of this company may sync (0: no limit). Mailboxes connected "
             "beyond it are Pending and start syncing, first come first served, as soon as a "
             "seat frees.")
    mail_sync_daily_cap = fields.Integer(
        "Mail Sync daily cap", default=0,
        help="Most emails synced per user per day, in the user's timezone (0: unlimited). "
             "Emails beyond it wait for the next day.")
    mail_sync_plan = fields.Selection(
        [("unlimited", "Unlimited"), ("free", "Free (100 emails per user per day)"),
         ("custom", "Custom daily cap")],
        string="Mail Sync plan", compute="_compute_mail_sync_plan",
        inverse="_inverse_mail_sync_plan")
    mail_sync_max_attachment_mb = fields.Integer(
        "Mail Sync: largest attachment (MB)", default=25,
        help="Attachments larger than this are not synced; the email is, with a note naming "
             "them (0: no limit).")
    mail_sync_max_message_mb = fields.Integer(
        "Mail Sync: largest email (MB)", default=50,
        help="Emails larger than this are synced from their header and text only, never "
             "downloaded whole; a note names what was left out (0: no limit).")
    mail_sync_max_parts = fields.Integer(
        "Mail Sync: most parts per email", default=500,
        help="An email with more parts (attachments, inline pictures, nested messages) is "
             "skipped and listed with the skipped messages (0: no limit).")
    mail_sync_sharing = fields.Selection(
        SHARING, string="Mail Sync: share synced emails with", default="everyone",
        required=True,
        help="The default for users who did not choose: who sees the emails their mailbox "
             "records on leads and contacts (the owner and Mail Sync managers always do).")
    mail_sync_billable_count = fields.Integer(
        "Billable mailboxes", compute="_compute_mail_sync_billable_count",
        help="Mailboxes of this company that are Enabled or in Error (not Pending, not "
             "Connection).")

    _sql_constraints = [
        ("mail_sync_mailbox_limit_positive", "CHECK(mail_sync_mailbox_limit >= 0)",
         "The Mail Sync mailbox limit cannot be negative."),
        ("mail_sync_daily_cap_positive", "CHECK(mail_sync_daily_cap >= 0)",
         "The Mail Sync daily cap cannot be negative."),
        ("mail_sync_max_attachment_mb_positive", "CHECK(mail_sync_max_attachment_mb >= 0)",
         "The Mail Sync attachment limit cannot be negative."),
        ("mail_sync_max_message_mb_positive", "CHECK(mail_sync_max_message_mb >= 0)",
         "The Mail Sync email size limit cannot be negative."),
        ("mail_sync_max_parts_positive", "CHECK(mail_sync_max_parts >= 0)",
         "The Mail Sync limit of parts per email cannot be negative."),
    ]

    @api.depends("mail_sync_daily_cap")
    def _compute_mail_sync_plan(self):
        for company in self:
            cap = company.mail_sync_daily_cap
            company.mail_sync_plan = ("unlimited" if not cap else
                                      "free" if cap == FREE_PLAN_CAP else "custom")

    def _inverse_mail_sync_plan(self):
        for company in self:
            if company.mail_sync_plan == "unlimited":
                company.mail_sync_daily_cap = 0
            elif company.mail_sync_plan == "free":
                company.mail_sync_daily_cap = FREE_PLAN_CAP
            # custom: the number set in mail_sync_daily_cap

    def _compute_mail_sync_billable_count(self):
        counts = dict(self.env["mail.sync.mailbox"].sudo()._read_group(
            [("company_id", "in", self.ids), ("state", "in", BILLABLE_STATES),
             ("active", "=", True)],
            ["company_id"], ["__count"]))
        for company in self:
            company.mail_sync_billable_count = counts.get(company._origin, 0)

    def _mail_sync_limits(self):
        """The engine's ``Limits`` of this company's mailboxes."""
        self.ensure_one()
        return limits_from(self.mail_sync_max_attachment_mb, self.mail_sync_max_message_mb,
                           self.mail_sync_max_parts)

    def write(self, vals):
        res = super().write(vals)
        if "mail_sync_sharing" in vals:
            self.env["mail.sync.mailbox"].sudo().search(
                [("company_id", "in", self.ids)])._apply_sharing()
        if "mail_sync_mailbox_limit" in vals:
            # A raised limit (or none) frees seats: the cron promotes the Pending mailboxes.
            self.env["mail.sync.mailbox"]._trigger_promotion()
        return res
