# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The mailbox side of the web client: the Mail Sync overview page (static/src/settings/) and
the owner's top-bar link (static/src/systray/), told when their mailbox becomes configured or
stops being so, so the link appears or disappears without a reload."""
from odoo import _, api, models

from .res_users import CONFIGURED_STATES

SYSTRAY_NOTIFICATION = "crm_mail_sync/systray"


class MailSyncMailbox(models.Model):
    _inherit = "mail.sync.mailbox"

    def _systray_keys(self):
        """``{mailbox id: (user id, company id, configured)}``, read as superuser."""
        return {
            mailbox.id: (mailbox.user_id.id, mailbox.company_id.id,
                         mailbox.active and mailbox.state in CONFIGURED_STATES)
            for mailbox in self.sudo().with_context(active_test=False)
        }

    @api.model
    def _systray_notify(self, user_ids):
        users = self.env["res.users"].sudo().browse(sorted(set(user_ids) - {False}))
        if users:
            users._bus_send(SYSTRAY_NOTIFICATION, {})

    @api.model_create_multi
    def create(self, vals_list):
        mailboxes = super().create(vals_list)
        self._systray_notify([key[0] for key in mailboxes._systray_keys().values() if key[2]])
        return mailboxes

    def write(self, vals):
        if not {"state", "active", "user_id", "company_id"} & set(vals):
            return super().write(vals)
        before = self._systray_keys()
        res = super().write(vals)
        after = self._systray_keys()
        # Only a change of "configured" (or of owner) matters: a sync writing "enabled" over
        # "enabled" every few minutes sends nothing.
        changed = {key for mailbox_id, key in before.items() if after.get(mailbox_id) != key}
        changed |= {key for mailbox_id, key in after.items() if before.get(mailbox_id) != key}
        self._systray_notify([user_id for user_id, _company, _configured in changed])
        return res

    def unlink(self):
        users = [key[0] for key in self._systray_keys().values() if key[2]]
        res = super().unlink()
        self._systray_notify(users)
        return res

    # ------------------------------------------------------------------ overview page
    @api.model
    def mail_sync_overview_info(self):
        """What the Mail Sync overview page shows besides its two lists: the current company's
        billable mailboxes, mailbox limit (0: none) and daily cap (0: unlimited), and the views
        of the two lists."""
        self.check_access("read")
        company = self.env.company

        def view_id(xmlid):
            view = self.env.ref(xmlid, raise_if_not_found=False)
            return view.id if view else False

        return {
            "company": {
                "billable": company.mail_sync_billable_count,
                "limit": company.mail_sync_mailbox_limit,
                "daily_cap": company.mail_sync_daily_cap,
            },
            "views": {
                "mailboxes": {
                    "model": "mail.sync.mailbox",
                    "list_id": view_id("crm_mail_sync.mail_sync_mailbox_view_list_overview"),
                    "search_id": view_id("crm_mail_sync.mail_sync_mailbox_view_search"),
                    "form_id": view_id("crm_mail_sync.mail_sync_mailbox_view_form"),
                    "context": {},
                    "help": "<p>%s</p>" % _("No mailbox is connected yet: each user "
                                             "connects their own from My Profile ▸ Mail Sync."),
                },
                "logs": {
                    "model": "mail.sync.log",
                    "list_id": view_id("crm_mail_sync.mail_sync_log_view_list_overview"),
                    "search_id": view_id("crm_mail_sync.mail_sync_log_view_search"),
                    "form_id": view_id("crm_mail_sync.mail_sync_log_view_form"),
                    "context": {},
                    "help": "<p>%s</p>" % _("No Mail Sync error."),
                },
            },
        }
