# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Company-level Mail Sync settings: the mailbox limit (seats), the daily cap (plan), the
number of billable mailboxes, the limits of one email, sharing, the never-log rules and the
company's own domains. Administrators (Settings) only may change them: Odoo lets "Access Rights"
users write companies too."""

import re
from urllib.parse import urlparse

from odoo import _, api, fields, models, tools
from odoo.exceptions import AccessError
from odoo.tools import SQL

from ..mailsync import addresses
from ..mailsync.privacy import domain_of, is_shared_domain
from ..mailsync.types import Limits
from .own_domains import normalize_domain, own_domains_changed
from .states import BILLABLE_STATES, CONNECTED_STATES, SHARING

# PRODUCT.md: "Free plan: at most 100 synced emails per user per day".
FREE_PLAN_CAP = 100

MB = 1 << 20


def limits_from(attachment_mb, message_mb, parts):
    """The engine's ``Limits`` from a company's settings (0 or empty: no limit)."""
    return Limits(
        max_attachment_bytes=attachment_mb * MB if attachment_mb else None,
        max_message_bytes=message_mb * MB if message_mb else None,
        max_parts=parts or None,
    )


class ResCompany(models.Model):
    _inherit = "res.company"

    mail_sync_mailbox_limit = fields.Integer(
        "Mail Sync mailbox limit",
        default=0,
        help="How many mailboxes of this company may sync (0: no limit). Mailboxes connected "
        "beyond it are Pending and start syncing, first come first served, as soon as a "
        "seat frees.",
    )
    mail_sync_daily_cap = fields.Integer(
        "Mail Sync daily cap",
        default=0,
        help="Most emails synced per user per day, in the user's timezone (0: unlimited). "
        "Emails beyond it wait for the next day.",
    )
    mail_sync_plan = fields.Selection(
        [
            ("unlimited", "Unlimited"),
            ("free", "Free (100 emails per user per day)"),
            ("custom", "Custom daily cap"),
        ],
        string="Mail Sync plan",
        compute="_compute_mail_sync_plan",
        inverse="_inverse_mail_sync_plan",
    )
    mail_sync_max_attachment_mb = fields.Integer(
        "Mail Sync: largest attachment (MB)",
        default=25,
        help="Attachments larger than this are not synced; the email is, with a note naming "
        "them (0: no limit).",
    )
    mail_sync_max_message_mb = fields.Integer(
        "Mail Sync: largest email (MB)",
        default=50,
        help="Emails larger than this are synced from their header and text only, never "
        "downloaded whole; a note names what was left out (0: no limit).",
    )
    mail_sync_max_parts = fields.Integer(
        "Mail Sync: most parts per email",
        default=500,
        help="An email with more parts (attachments, inline pictures, nested messages) is "
        "skipped and listed with the skipped messages (0: no limit).",
    )
    mail_sync_sharing = fields.Selection(
        SHARING,
        string="Mail Sync: share synced emails with",
        default="everyone",
        required=True,
        help="The default for users who did not choose: who sees the emails their mailbox "
        "records on leads and contacts (the owner and Mail Sync managers always do).",
    )
    mail_sync_billable_count = fields.Integer(
        "Billable mailboxes",
        compute="_compute_mail_sync_billable_count",
        help="Mailboxes of this company that are Enabled or in Error (not Pending, not "
        "Connection).",
    )

    _sql_constraints = [
        (
            "mail_sync_mailbox_limit_positive",
            "CHECK(mail_sync_mailbox_limit >= 0)",
            "The Mail Sync mailbox limit cannot be negative.",
        ),
        (
            "mail_sync_daily_cap_positive",
            "CHECK(mail_sync_daily_cap >= 0)",
            "The Mail Sync daily cap cannot be negative.",
        ),
        (
            "mail_sync_max_attachment_mb_positive",
            "CHECK(mail_sync_max_attachment_mb >= 0)",
            "The Mail Sync attachment limit cannot be negative.",
        ),
        (
            "mail_sync_max_message_mb_positive",
            "CHECK(mail_sync_max_message_mb >= 0)",
            "The Mail Sync email size limit cannot be negative.",
        ),
        (
            "mail_sync_max_parts_positive",
            "CHECK(mail_sync_max_parts >= 0)",
            "The Mail Sync limit of parts per email cannot be negative.",
        ),
    ]

    @api.depends("mail_sync_daily_cap")
    def _compute_mail_sync_plan(self):
        for company in self:
            cap = company.mail_sync_daily_cap
            company.mail_sync_plan = (
                "unlimited" if not cap else "free" if cap == FREE_PLAN_CAP else "custom"
            )

    def _inverse_mail_sync_plan(self):
        for company in self:
            if company.mail_sync_plan == "unlimited":
                company.mail_sync_daily_cap = 0
            elif company.mail_sync_plan == "free":
                company.mail_sync_daily_cap = FREE_PLAN_CAP
            # custom: the number set in mail_sync_daily_cap

    def _compute_mail_sync_billable_count(self):
        counts = dict(
            self.env["mail.sync.mailbox"]
            .sudo()
            ._read_group(
                [
                    ("company_id", "in", self.ids),
                    ("state", "in", BILLABLE_STATES),
                    ("active", "=", True),
                ],
                ["company_id"],
                ["__count"],
            )
        )
        for company in self:
            company.mail_sync_billable_count = counts.get(company._origin, 0)

    def _mail_sync_limits(self):
        """The engine's ``Limits`` of this company's mailboxes."""
        self.ensure_one()
        return limits_from(
            self.mail_sync_max_attachment_mb,
            self.mail_sync_max_message_mb,
            self.mail_sync_max_parts,
        )

    mail_sync_exclude_own_domain = fields.Boolean(
        "Mail Sync: never log internal mail",
        default=True,
        help="Mail exchanged only with addresses of the company's own domains (its email and "
        "website, its users' addresses) is never synced.",
    )
    mail_sync_skip_auto = fields.Boolean(
        "Mail Sync: skip auto-replies and bulk mail",
        default=True,
        help="Out-of-office and other automatic replies, mailing lists and bulk mail "
        "(Auto-Submitted, Precedence, List-Id) are not synced.",
    )
    mail_sync_own_domains = fields.Char(
        "Mail Sync: own domains",
        compute="_compute_mail_sync_own_domains",
        help="The domains treated as internal (public providers such as gmail.com never are).",
    )

    def _compute_mail_sync_own_domains(self):
        for company in self:
            company.mail_sync_own_domains = ", ".join(company._mail_sync_own_domains())

    def _mail_sync_own_domains(self):
        """Sorted own domains of this company: its email's and website's, and those of its
        internal users and mailboxes, without public mail providers."""
        self.ensure_one()
        return list(self._mail_sync_own_domains_cached(self.id))

    @tools.ormcache("company_id")
    def _mail_sync_own_domains_cached(self, company_id):
        """Own domains are the ones nobody can claim alone: the company's email and website
        domains (set by administrators), the domains of the company's connected mailboxes (a
        connection test proved a login there), and the domains at least two internal users
        of the company have an address on (a user can change their own address: one alone
        never makes a domain internal). Never a public suffix (``co.uk``) or a free mail
        provider (``gmail.com``)."""
        company = self.browse(company_id).sudo()
        found = set()
        for value in (company.email, company.partner_id.email):
            domain = normalize_domain(domain_of(addresses.normalize(value or "") or ""))
            if domain:
                found.add(domain)
        if company.website:
            host = (
                urlparse(
                    company.website if "//" in company.website else "//" + company.website
                ).hostname
                or ""
            )
            host = re.sub(r"^www\.", "", host)
            domain = normalize_domain(host)
            if domain:
                found.add(domain)
        self.env["res.users"].flush_model(["partner_id", "share", "active", "company_ids"])
        self.env["res.partner"].flush_model(["email_normalized"])
        self.env["mail.sync.mailbox"].flush_model(["company_id", "email", "state", "active"])
        self.env.cr.execute(
            SQL(
                """
            SELECT lower(split_part(p.email_normalized, '@', 2))
              FROM res_users u
              JOIN res_partner p ON p.id = u.partner_id
              JOIN res_company_users_rel r ON r.user_id = u.id AND r.cid = %(company)s
             WHERE NOT u.share AND u.active AND strpos(p.email_normalized, '@') > 0
          GROUP BY 1 HAVING count(DISTINCT u.id) >= 2
             UNION
            SELECT DISTINCT lower(split_part(m.email, '@', 2))
              FROM mail_sync_mailbox m
             WHERE m.company_id = %(company)s AND m.active AND strpos(m.email, '@') > 0
               AND m.state IN %(connected)s
        """,
                company=company_id,
                connected=CONNECTED_STATES,
            )
        )
        for (domain,) in self.env.cr.fetchall():
            domain = normalize_domain(domain)
            if domain:
                found.add(domain)
        return tuple(sorted(d for d in found if not is_shared_domain(d)))

    def write(self, vals):
        if any(name.startswith("mail_sync_") for name in vals) and not (
            self.env.is_superuser() or self.env.user.has_group("base.group_system")
        ):
            raise AccessError(
                _(
                    "Only administrators can change the Mail Sync mailbox limit "
                    "and plan of a company."
                )
            )
        res = super().write(vals)
        if {"email", "website", "partner_id"} & set(vals):  # the flags are read per sync run
            own_domains_changed(self.env)
        if "mail_sync_sharing" in vals:
            self.env["mail.sync.mailbox"].sudo().search(
                [("company_id", "in", self.ids)]
            )._apply_sharing()
        if "mail_sync_mailbox_limit" in vals:
            # A raised limit (or none) frees seats: the cron promotes the Pending mailboxes.
            self.env["mail.sync.mailbox"]._trigger_promotion()
        return res
