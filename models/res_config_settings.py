# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Settings ▸ CRM ▸ Mail Sync: the company's mailbox limit, plan, daily cap and billable count,
the limits per email, sharing, own domains and automatic mail (all on ``res.company``), the
allowed networks, Smart Mail's fallback, and the Google and Microsoft OAuth apps of
"Connect with …".

Client ids, the Microsoft tenant and the endpoint URLs are plain ``ir.config_parameter`` values
(``crm_mail_sync.<provider>_<name>``); empty endpoints mean the provider's public ones. The
client secrets are encrypted with the addon's key (``mail.sync.credential``) before they reach
the parameter, are never read back into the form, and are not kept in this transient model's
table either (non-stored fields whose inverse encrypts).
"""

from odoo import api, fields, models
from odoo.exceptions import UserError

from ..mailsync import errors, netguard
from .mail_sync_mailbox import ALLOWED_NETWORKS_PARAM, FALLBACK_PARAM
from .mail_sync_oauth_mixin import CALLBACK_PATH, param_key


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    mail_sync_mailbox_limit = fields.Integer(
        related="company_id.mail_sync_mailbox_limit", readonly=False
    )
    mail_sync_plan = fields.Selection(related="company_id.mail_sync_plan", readonly=False)
    mail_sync_daily_cap = fields.Integer(related="company_id.mail_sync_daily_cap", readonly=False)
    mail_sync_billable_count = fields.Integer(related="company_id.mail_sync_billable_count")
    mail_sync_max_attachment_mb = fields.Integer(
        related="company_id.mail_sync_max_attachment_mb", readonly=False
    )
    mail_sync_max_message_mb = fields.Integer(
        related="company_id.mail_sync_max_message_mb", readonly=False
    )
    mail_sync_max_parts = fields.Integer(related="company_id.mail_sync_max_parts", readonly=False)
    mail_sync_sharing = fields.Selection(related="company_id.mail_sync_sharing", readonly=False)
    mail_sync_allowed_networks = fields.Char(
        "Allowed networks",
        config_parameter=ALLOWED_NETWORKS_PARAM,
        help="Mail Sync connects only to public mail servers on the usual mail ports. List "
        "here the servers of your own network it may reach as well: host names, IP "
        "addresses or networks (CIDR), separated by commas — e.g. mail.intranet.example, "
        "10.1.2.0/24. Empty: none.",
    )
    mail_sync_exclude_own_domain = fields.Boolean(
        related="company_id.mail_sync_exclude_own_domain", readonly=False
    )
    mail_sync_skip_auto = fields.Boolean(related="company_id.mail_sync_skip_auto", readonly=False)
    mail_sync_own_domains = fields.Char(related="company_id.mail_sync_own_domains")
    mail_sync_smart_mail_fallback = fields.Boolean(
        "Fall back to the company's outgoing server",
        config_parameter=FALLBACK_PARAM,
        help="When sending through a user's own mailbox fails (authentication, connection, "
        "daily quota), send the mail through the company's outgoing mail server instead "
        "of leaving it failed in the queue. Off by default.",
    )

    mail_sync_google_client_id = fields.Char(
        "Google client ID", config_parameter="crm_mail_sync.google_client_id"
    )
    mail_sync_google_client_secret = fields.Char(
        "Google client secret",
        compute="_compute_mail_sync_secrets",
        inverse="_inverse_mail_sync_google_client_secret",
        store=False,
        help="Stored encrypted; never shown again. Leave empty to keep the stored one.",
    )
    mail_sync_google_secret_set = fields.Boolean(compute="_compute_mail_sync_secrets")
    mail_sync_google_auth_uri = fields.Char(
        "Google authorization endpoint", config_parameter="crm_mail_sync.google_auth_uri"
    )
    mail_sync_google_token_uri = fields.Char(
        "Google token endpoint", config_parameter="crm_mail_sync.google_token_uri"
    )
    mail_sync_google_userinfo_uri = fields.Char(
        "Google userinfo endpoint", config_parameter="crm_mail_sync.google_userinfo_uri"
    )

    mail_sync_microsoft_client_id = fields.Char(
        "Microsoft client ID", config_parameter="crm_mail_sync.microsoft_client_id"
    )
    mail_sync_microsoft_client_secret = fields.Char(
        "Microsoft client secret",
        compute="_compute_mail_sync_secrets",
        inverse="_inverse_mail_sync_microsoft_client_secret",
        store=False,
        help="Stored encrypted; never shown again. Leave empty to keep the stored one.",
    )
    mail_sync_microsoft_secret_set = fields.Boolean(compute="_compute_mail_sync_secrets")
    mail_sync_microsoft_tenant = fields.Char(
        "Microsoft tenant",
        config_parameter="crm_mail_sync.microsoft_tenant",
        help="Directory (tenant) ID or domain; empty: common (any work or school account).",
    )
    mail_sync_microsoft_auth_uri = fields.Char(
        "Microsoft authorization endpoint", config_parameter="crm_mail_sync.microsoft_auth_uri"
    )
    mail_sync_microsoft_token_uri = fields.Char(
        "Microsoft token endpoint", config_parameter="crm_mail_sync.microsoft_token_uri"
    )
    mail_sync_microsoft_userinfo_uri = fields.Char(
        "Microsoft userinfo endpoint", config_parameter="crm_mail_sync.microsoft_userinfo_uri"
    )

    mail_sync_redirect_uri = fields.Char(
        "Redirect URI",
        compute="_compute_mail_sync_redirect_uri",
        help="Register this URI in the Google and Microsoft apps.",
    )

    @api.depends_context("uid")
    def _compute_mail_sync_secrets(self):
        ICP = self.env["ir.config_parameter"].sudo()
        google = bool(ICP.get_param(param_key("google", "client_secret")))
        microsoft = bool(ICP.get_param(param_key("microsoft", "client_secret")))
        for settings in self:
            settings.mail_sync_google_client_secret = False
            settings.mail_sync_microsoft_client_secret = False
            settings.mail_sync_google_secret_set = google
            settings.mail_sync_microsoft_secret_set = microsoft

    def _compute_mail_sync_redirect_uri(self):
        uri = self.env["mail.sync.mailbox"].get_base_url().rstrip("/") + CALLBACK_PATH
        for settings in self:
            settings.mail_sync_redirect_uri = uri

    def _set_mail_sync_secret(self, provider, value):
        if not value:
            return  # empty: keep the stored secret
        cipher = self.env["mail.sync.credential"].sudo()._encrypt(value.strip())
        self.env["ir.config_parameter"].sudo().set_param(
            param_key(provider, "client_secret"), cipher
        )

    def _inverse_mail_sync_google_client_secret(self):
        for settings in self:
            settings._set_mail_sync_secret("google", settings.mail_sync_google_client_secret)

    def _inverse_mail_sync_microsoft_client_secret(self):
        for settings in self:
            settings._set_mail_sync_secret("microsoft", settings.mail_sync_microsoft_client_secret)

    def set_values(self):
        # Normalise what an administrator typed (one space-free, comma-separated list).
        for settings in self:
            allowed = netguard.Allowed(settings.mail_sync_allowed_networks)
            settings.mail_sync_allowed_networks = (
                ", ".join(sorted(allowed.hosts) + [str(net) for net in allowed.networks]) or False
            )
        res = super().set_values()
        # A plain-http (non-loopback) or missing endpoint is refused now, not at the first click.
        Mailbox = self.env["mail.sync.mailbox"]
        for provider in ("google", "microsoft"):
            try:
                Mailbox._oauth_provider(provider)
            except errors.SyncError as exc:
                raise UserError(self.env["mail.sync.log"]._translated(str(exc))) from None
        return res
