# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import SUPERUSER_ID, _, api, fields, models


class ResUsers(models.Model):
    _inherit = "res.users"

    mail_sync_mailbox_id = fields.Many2one(
        "mail.sync.mailbox", string="Mail Sync mailbox", compute="_compute_mail_sync_mailbox",
        search="_search_mail_sync_mailbox",
        help="This user's Mail Sync mailbox in the current company.")
    mail_sync_state = fields.Selection(
        related="mail_sync_mailbox_id.state", string="Mail Sync status")
    mail_sync_state_description = fields.Char(
        related="mail_sync_mailbox_id.state_description", string="Mail Sync status meaning")

    @property
    def SELF_READABLE_FIELDS(self):
        return super().SELF_READABLE_FIELDS + [
            "mail_sync_mailbox_id", "mail_sync_state", "mail_sync_state_description"]

    @api.depends_context("company", "uid")
    def _compute_mail_sync_mailbox(self):
        mailboxes = self.env["mail.sync.mailbox"].sudo().search_fetch(
            [("user_id", "in", self.ids), ("company_id", "=", self.env.company.id)],
            ["user_id", "state", "state_description"])
        by_user = {mailbox.user_id.id: mailbox for mailbox in mailboxes}
        # Another user's mailbox and status: Mail Sync managers only (security, README "Roles
        # and access"); the related status fields are read as superuser, so check the user.
        sees_all = self.env.uid == SUPERUSER_ID or self.env.user.has_group(
            "crm_mail_sync.group_mail_sync_manager")
        for user in self:
            uid = user._origin.id or user.id
            user.mail_sync_mailbox_id = by_user.get(uid, False) if (
                sees_all or uid == self.env.uid) else False

    def _search_mail_sync_mailbox(self, operator, value):
        Mailbox = self.env["mail.sync.mailbox"].sudo()
        in_company = [("company_id", "=", self.env.company.id)]
        if value is False and operator in ("=", "!="):
            users = Mailbox._search(in_company).subselect("user_id")
            return [("id", "not in" if operator == "=" else "in", users)]
        users = Mailbox._search(in_company + [("id", operator, value)]).subselect("user_id")
        return [("id", "in", users)]

    def action_open_mail_sync(self):
        """Open this user's mailbox form (a new one, prefilled, when there is none yet)."""
        self.ensure_one()
        Mailbox = self.env["mail.sync.mailbox"]
        Mailbox._check_can_manage(self)
        mailbox = Mailbox.search(
            [("user_id", "=", self.id), ("company_id", "=", self.env.company.id)], limit=1)
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
