# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Attachments of synced mail: readable where their message is (``mail.message`` access), and
the content a mailbox does not share whole out of reach. (Active types — HTML, SVG, XML,
scripts — are stored as text by the recorder, ``mail.sync.message._record_attachments``.)"""

from odoo import _, api, models
from odoo.exceptions import AccessError
from odoo.tools import SQL


class IrAttachment(models.Model):
    _inherit = "ir.attachment"

    def check(self, mode, values=None):
        """The attachments of synced mail that is not shared whole live on their mailbox
        (``mail.message._mail_sync_set_visibility``): readable only by who may read a message
        holding them and see its content (its owner, Mail Sync managers — where they may read
        the record). Odoo lets anyone read an attachment whose record is gone: not these."""
        res = super().check(mode, values=values)
        if self and not self.env.is_superuser():
            self.flush_model(["res_model", "res_id"])
            rows = self.env.execute_query(
                SQL(
                    """
                SELECT a.id, r.message_id
                  FROM ir_attachment a
             LEFT JOIN mail_sync_message_hidden_attachment_rel r ON r.attachment_id = a.id
                 WHERE a.id = ANY(%s) AND a.res_model = 'mail.sync.mailbox'
            """,
                    list(self.ids),
                )
            )
            if rows:
                messages = self.env["mail.message"].browse(
                    {message_id for _id, message_id in rows if message_id}
                )
                if (
                    any(not message_id for _id, message_id in rows)
                    or messages._filtered_access("read") != messages
                    or messages._mail_sync_sees_content() != messages.sudo()
                ):
                    raise AccessError(_("Sorry, you are not allowed to access this document."))
        return res

    @api.model
    def _search(self, domain, offset=0, limit=None, order=None):
        """Reads (fields, downloads, lists) of those attachments: the same rule as ``check``,
        as a condition of the query (Odoo reads an attachment through its search)."""
        query = super()._search(domain, offset, limit, order)
        if self.env.is_superuser():
            return query
        Message = self.env["mail.message"]
        readable = Message._search(
            []
            if Message._mail_sync_sees_private()
            else [("mail_sync_private_user_id", "=", self.env.uid)]
        )
        self.env["mail.message"].flush_model(["mail_sync_private_user_id", "mail_sync_visibility"])
        self.flush_model(["res_model"])
        query.add_where(
            SQL(
                "(%(model)s IS DISTINCT FROM 'mail.sync.mailbox' OR %(id)s IN ("
                "SELECT attachment_id FROM mail_sync_message_hidden_attachment_rel "
                "WHERE message_id IN %(readable)s))",
                model=SQL.identifier(self._table, "res_model"),
                id=SQL.identifier(self._table, "id"),
                readable=readable.subselect(),
            )
        )
        return query
