# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Odoo's outgoing-mail machinery, as used by Smart Mail.

Smart Mail opens its SMTP sessions itself (``mail.sync.mailbox._smart_mail_connect``: a verified
certificate, the network rule, XOAUTH2 whose reply is checked — Odoo's ``connect`` verifies no
certificate and ``google_gmail`` ignores the AUTH reply) and hands them to Odoo's ``send_email``.
On such a session ``send_email`` keeps what was sent (for the Sent-folder copy) and the original
exception of a failure (to classify it: authentication, quota, 4xx, 5xx ...).
"""

from odoo import api, models


class IrMailServer(models.Model):
    _inherit = "ir.mail_server"

    @api.model
    def send_email(
        self,
        message,
        mail_server_id=None,
        smtp_server=None,
        smtp_port=None,
        smtp_user=None,
        smtp_password=None,
        smtp_encryption=None,
        smtp_ssl_certificate=None,
        smtp_ssl_private_key=None,
        smtp_debug=False,
        smtp_session=None,
    ):
        if getattr(smtp_session, "mail_sync_mailbox_id", None) is None:
            return super().send_email(
                message,
                mail_server_id=mail_server_id,
                smtp_server=smtp_server,
                smtp_port=smtp_port,
                smtp_user=smtp_user,
                smtp_password=smtp_password,
                smtp_encryption=smtp_encryption,
                smtp_ssl_certificate=smtp_ssl_certificate,
                smtp_ssl_private_key=smtp_ssl_private_key,
                smtp_debug=smtp_debug,
                smtp_session=smtp_session,
            )
        try:
            result = super().send_email(message, smtp_session=smtp_session)
        except Exception as exc:
            # Odoo wraps the SMTP error into MailDeliveryException: keep the original.
            smtp_session.mail_sync_error = exc.__context__ or exc
            raise
        smtp_session.mail_sync_sent.append(message)
        return result
