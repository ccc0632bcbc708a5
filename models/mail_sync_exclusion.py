# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Never-log lists, the auto-reply / bulk filter, and new leads from new contacts (opt-in).

- ``mail.sync.exclusion``: addresses and domains whose mail is never synced, for a whole company
  (no user) or one user. The company's own domains (its email and website, its users' and
  mailboxes' addresses; public providers such as gmail.com never count) are excluded too unless
  the company turns that off. A message is private — never synced — when every party other than
  the mailbox owner is excluded.
- Auto-replies and bulk mail (``Auto-Submitted``, ``Precedence: bulk/list/junk``, ``List-Id``,
  out-of-office subjects, junk flags) are not synced unless the company turns the filter off.
- A mailbox may opt in to ``mail_sync_create_leads``: received mail from an address that is no
  lead, contact or colleague creates a lead — after the filters above.

All of it is applied in the matcher, before any body is downloaded. The policy is built lazily
(first batch with new headers), so the idle poll of a mailbox with nothing new costs no query.
"""

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import SQL

from ..mailsync import addresses
from ..mailsync.privacy import Policy
from .own_domains import normalize_domain


class MailSyncExclusion(models.Model):
    _name = "mail.sync.exclusion"
    _description = "Mail Sync: never-log address or domain"
    _order = "company_id, user_id, value"
    _rec_name = "value"
    company_id = fields.Many2one(
        "res.company",
        required=True,
        index=True,
        default=lambda self: self.env.company,
        ondelete="cascade",
    )
    user_id = fields.Many2one(
        "res.users",
        string="Only for",
        index=True,
        ondelete="cascade",
        domain="[('share', '=', False)]",
        help="Empty: for everyone in the company. Otherwise only this user's mailbox.",
    )
    value = fields.Char(
        "Address or domain",
        required=True,
        help="e.g. jane@partner.example, or partner.example (its subdomains too)",
    )
    kind = fields.Selection(
        [("address", "Address"), ("domain", "Domain")], compute="_compute_kind", store=True
    )
    note = fields.Char()
    _sql_constraints = [
        (
            "value_unique",
            "unique(company_id, user_id, value)",
            "This address or domain is already excluded.",
        ),
    ]

    @api.depends("value")
    def _compute_kind(self):
        for rec in self:
            rec.kind = "address" if rec.value and "@" in rec.value else "domain"

    @api.model
    def _normalize_value(self, value):
        if value and "@" in value.strip().lstrip("@"):
            normalized = addresses.normalize(value)
        else:
            normalized = normalize_domain(value)
        if not normalized:
            raise ValidationError(_("“%s” is neither an email address nor a domain.", value))
        return normalized

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if "value" in vals:
                vals["value"] = self._normalize_value(vals["value"])
        return super().create(vals_list)  # read per sync run (_policy_for): nothing cached

    def write(self, vals):
        if "value" in vals:
            vals["value"] = self._normalize_value(vals["value"])
        return super().write(vals)

    # ------------------------------------------------------------------ policy
    @api.model
    def _policy_for(self, mailbox):
        """The :class:`Policy` of ``mailbox``: company-wide and its user's exclusions, plus the
        company's own domains when enabled. Two queries at most."""
        company = mailbox.company_id
        self.flush_model(["company_id", "user_id", "value"])
        self.env.cr.execute(
            SQL(
                "SELECT value FROM mail_sync_exclusion WHERE company_id = %s "
                "AND (user_id IS NULL OR user_id = %s)",
                company.id,
                mailbox.user_id.id,
            )
        )
        values = [row[0] for row in self.env.cr.fetchall()]
        addrs = frozenset(v for v in values if "@" in v)
        domains = {v for v in values if "@" not in v}
        if company.mail_sync_exclude_own_domain:
            domains |= set(company._mail_sync_own_domains())
        return Policy(
            addresses=addrs, domains=frozenset(domains), skip_auto=company.mail_sync_skip_auto
        )
