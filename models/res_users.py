# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Users: their Mail Sync mailbox (My Profile ▸ Mail Sync, Connect with Google / Microsoft, the
top-bar link), their sharing choice, and the company's own domains when a user comes or goes."""

from odoo import SUPERUSER_ID, _, api, fields, models
from odoo.exceptions import AccessError

from .own_domains import email_domain, own_domains_changed
from .states import CONFIGURED_STATES, SHARING


class ResUsers(models.Model):
    _inherit = "res.users"

    mail_sync_sharing = fields.Selection(
        SHARING,
        string="Share my synced emails",
        help="Who sees the emails your mailbox records on leads and contacts. Empty: your "
        "company's default.\n"
        "Everyone who can see the record: the whole email.\n"
        "Subject and participants only: others see that an email was exchanged (date, "
        "direction, participants, subject), not its content or attachments.\n"
        "Private: only you and the Mail Sync managers.\n"
        "A change applies to the emails already synced too.",
    )

    mail_sync_mailbox_id = fields.Many2one(
        "mail.sync.mailbox",
        string="Mail Sync mailbox",
        compute="_compute_mail_sync_mailbox",
        search="_search_mail_sync_mailbox",
        help="This user's Mail Sync mailbox in the current company.",
    )
    mail_sync_state = fields.Selection(
        related="mail_sync_mailbox_id.state", string="Mail Sync status"
    )
    mail_sync_state_description = fields.Char(
        related="mail_sync_mailbox_id.state_description", string="Mail Sync status meaning"
    )

    @property
    def SELF_READABLE_FIELDS(self):
        return super().SELF_READABLE_FIELDS + [
            "mail_sync_mailbox_id",
            "mail_sync_state",
            "mail_sync_state_description",
            "mail_sync_sharing",
        ]

    @property
    def SELF_WRITEABLE_FIELDS(self):
        return super().SELF_WRITEABLE_FIELDS + ["mail_sync_sharing"]

    # A user with an address on a domain counts toward the company's own domains
    # (res.company._mail_sync_own_domains_cached): their arrival, change or departure may change
    # them.
    @api.model_create_multi
    def create(self, vals_list):
        users = super().create(vals_list)
        # (Not user.email: its cache is not filled in yet when the create is done.)
        if any(not user.share and email_domain(user.partner_id.email) for user in users):
            own_domains_changed(self.env)
        return users

    def unlink(self):
        internal = any(not user.share and email_domain(user.partner_id.email) for user in self)
        # Their mailboxes go with them (ondelete cascade, in the database): their hidden mail
        # content first (mail.sync.mailbox.unlink does not run for a cascade).
        self.env["mail.sync.mailbox"].sudo().with_context(active_test=False).search(
            [("user_id", "in", self.ids)]
        )._drop_hidden_content()
        res = super().unlink()
        if internal:
            own_domains_changed(self.env)
        return res

    def write(self, vals):
        res = super().write(vals)
        if "mail_sync_sharing" in vals:
            self.env["mail.sync.mailbox"].sudo().search(
                [("user_id", "in", self.ids)]
            )._apply_sharing()
        # The address itself is the partner's (res.partner.write).
        if {"active", "share", "groups_id", "company_ids", "partner_id"} & set(vals) and any(
            email_domain(user.partner_id.email) for user in self
        ):
            own_domains_changed(self.env)
        return res

    @api.depends_context("company", "uid")
    def _compute_mail_sync_mailbox(self):
        mailboxes = (
            self.env["mail.sync.mailbox"]
            .sudo()
            .search_fetch(
                [("user_id", "in", self.ids), ("company_id", "=", self.env.company.id)],
                ["user_id", "state", "state_description"],
            )
        )
        by_user = {mailbox.user_id.id: mailbox for mailbox in mailboxes}
        # Another user's mailbox and status: Mail Sync managers only (security, README "Roles
        # and access"); the related status fields are read as superuser, so check the user.
        sees_all = self.env.uid == SUPERUSER_ID or self.env.user.has_group(
            "crm_mail_sync.group_mail_sync_manager"
        )
        for user in self:
            uid = user._origin.id or user.id
            user.mail_sync_mailbox_id = (
                by_user.get(uid, False) if (sees_all or uid == self.env.uid) else False
            )

    def _search_mail_sync_mailbox(self, operator, value):
        """Who has a mailbox: Mail Sync managers may ask about anyone; a user only about
        themselves (nobody learns by a search which colleagues connected a mailbox)."""
        Mailbox = self.env["mail.sync.mailbox"].sudo()
        in_company = [("company_id", "=", self.env.company.id)]
        if not (self.env.su or self.env.user.has_group("crm_mail_sync.group_mail_sync_manager")):
            in_company.append(("user_id", "=", self.env.uid))
        if value is False and operator in ("=", "!="):
            users = Mailbox._search(in_company).subselect("user_id")
            if operator == "=" and len(in_company) > 1:  # "no mailbox": only oneself is known
                return [("id", "=", self.env.uid), ("id", "not in", users)]
            return [("id", "not in" if operator == "=" else "in", users)]
        users = Mailbox._search(in_company + [("id", operator, value)]).subselect("user_id")
        return [("id", "in", users)]

    def action_open_mail_sync(self):
        """Open this user's mailbox form (a new one, prefilled, when there is none yet)."""
        self.ensure_one()
        Mailbox = self.env["mail.sync.mailbox"]
        Mailbox._check_can_manage(self)
        mailbox = Mailbox.search(
            [("user_id", "=", self.id), ("company_id", "=", self.env.company.id)], limit=1
        )
        action = {
            "type": "ir.actions.act_window",
            "name": _("Mail Sync"),
            "res_model": "mail.sync.mailbox",
            "view_mode": "form",
            "views": [(self.env.ref("crm_mail_sync.mail_sync_mailbox_view_form").id, "form")],
            "target": "current",
        }
        if mailbox:
            action["res_id"] = mailbox.id
        else:
            action["context"] = {
                "default_user_id": self.id,
                "default_email": self.email or False,
                "default_imap_login": self.email or False,
                "default_company_id": self.env.company.id,
            }
        return action

    # ------------------------------------------------------------------ connect with a provider
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
            [("user_id", "=", self.id), ("company_id", "=", self.env.company.id)], limit=1
        )
        if not mailbox:
            mailbox = Mailbox.create(
                {
                    "user_id": self.id,
                    "company_id": self.env.company.id,
                    "email": self.email or self.login,  # replaced by the provider's answer
                    "provider": "gmail" if provider == "google" else "outlook",
                }
            )
        return getattr(mailbox, f"action_connect_{provider}")()

    # ------------------------------------------------------------------ the top-bar link
    @api.model
    def mail_sync_systray_info(self):
        """For the current user in the current company: ``{"show": bool}``, whether the top
        bar shows the link to set up Mail Sync (internal Mail Sync users without an Enabled,
        Error or Pending mailbox)."""
        user = self.env.user
        if user.share or not user.has_group("crm_mail_sync.group_mail_sync_user"):
            return {"show": False}
        configured = (
            self.env["mail.sync.mailbox"]
            .sudo()
            .search_count(
                [
                    ("user_id", "=", user.id),
                    ("company_id", "=", self.env.company.id),
                    ("state", "in", CONFIGURED_STATES),
                ],
                limit=1,
            )
        )
        return {"show": not configured}
