# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Odoo's outgoing-mail machinery, as used by Smart Mail.

Smart Mail opens its SMTP sessions with ``ir.mail_server.connect`` (see
``mail.sync.mailbox._smart_mail_connect``); this extension adds the two things Odoo lacks:

- XOAUTH2 login that checks the server's reply (Odoo's ``google_gmail`` sends the AUTH command
  and ignores the answer, so a bad token only surfaces as a 501 on MAIL FROM);
- on a Smart Mail session, ``send_email`` keeps what was sent (for the Sent-folder copy) and the
  original exception of a failure (to classify it: authentication, quota, 4xx, 5xx ...).
"""
import base64
import smtplib

from odoo import api, models


class IrMailServer(models.Model):
    _inherit = "ir.mail_server"

    def _smtp_login(self, connection, smtp_user, smtp_password):
        if not self.env.context.get("mail_sync_xoauth2"):
            return super()._smtp_login(connection, smtp_user, smtp_password)
        # SASL XOAUTH2 (https://developers.google.com/gmail/imap/xoauth2-protocol); the
        # "password" is the access token the mailbox just refreshed.
        auth_string = f"user={smtp_user}\1auth=Bearer {smtp_password}\1\1"
        connection.ehlo_or_helo_if_needed()
        code, reply = connection.docmd(
            "AUTH", "XOAUTH2 " + base64.b64encode(auth_string.encode()).decode())
        if code == 334:
            # The server's JSON error challenge: answer with an empty line to get the final
            # (failure) reply.
            code, reply = connection.docmd("")
        if code != 235:
            raise smtplib.SMTPAuthenticationError(code, reply)
        return None

    @api.model
    def send_email(self, message, mail_server_id=None, smtp_server=None, smtp_port=None,
                   smtp_user=None, smtp_password=None, smtp_encryption=None,
                   smtp_ssl_certificate=None, smtp_ssl_private_key=None,
                   smtp_debug=False, smtp_session=None):
        if getattr(smtp_session, "mail_sync_mailbox_id", None) is None:
            return super().send_email(
                message, mail_server_id=mail_server_id, smtp_server=smtp_server,
                smtp_port=smtp_port, smtp_user=smtp_user, smtp_password=smtp_password,
                smtp_encryption=smtp_encryption, smtp_ssl_certificate=smtp_ssl_certificate,
                smtp_ssl_private_key=smtp_ssl_private_key, smtp_debug=smtp_debug,
                smtp_session=smtp_session)
        try:
            result = super().send_email(message, smtp_session=smtp_session)
        except Exception as exc:
            # Odoo wraps the SMTP error into MailDeliveryException: keep the original.
            smtp_session.mail_sync_error = exc.__context__ or exc
            raise
        smtp_session.mail_sync_sent.append(message)
        return result
