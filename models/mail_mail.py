# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Smart Mail routing: mail written by a user with an enabled mailbox goes out through that
user's own SMTP server.

Routing happens in ``mail.mail.send`` — the one door of every outgoing mail (chatter messages,
the composer, mass mail, the mail queue cron, retries): mail that the owner of an enabled
mailbox wrote themselves (they created it — posted, scheduled, sent the template or the mass
mailing; whoever's queue or cron sends it later — and they are its author, writing from one of
their own addresses) is grouped per mailbox and handed to Odoo's own
``_send`` with an SMTP session that ``ir.mail_server.connect`` opened on the user's server; the
rest goes through Odoo's usual outgoing server, untouched. Each routed mail is sent alone so
that its outcome is known at once: the daily limit, the Sent-folder copy, the synced-message row
and the failure handling are per mail.

Failures never pass silently: the mail keeps a readable reason (also on the record's failed
notification); a failure of the mailbox (connection, login, quota) also gets an error-log entry
with the fix and puts the mailbox in Error, as a failed sync does, while a refusal of this one
mail (its recipients, its size, its content) leaves the mailbox alone. The server's reply code
decides first: 4xx answers are temporary (the mail stays queued and Odoo's mail queue retries
it later, a few times, then it is marked failed), 5xx answers mark the mail failed at once; it
is sent again with Odoo's Retry. Without a code, network trouble is temporary, the rest is not.
"""

import logging
import smtplib
from collections import defaultdict
from datetime import timedelta

from odoo import _, fields, models
from odoo.addons.base.models.ir_mail_server import MailDeliveryException
from odoo.tools.mail import email_normalize_all, email_split

from ..mailsync import errors

_logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# Without an SMTP reply code (connection trouble): the kinds worth trying again.
TEMPORARY_KINDS = {"dns", "refused", "timeout", "dropped", "throttled", "too_many_connections"}
# Refusals of one mail (its recipients, its size, its content), not of the mailbox.
MESSAGE_KINDS = {"rejected", "message_too_large"}


def smtp_code(exc):
    """The SMTP reply code of an smtplib exception (the highest of the refused recipients'),
    or 0."""
    code = getattr(exc, "smtp_code", 0) or 0
    if not code and isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        code = max(int(answer[0] or 0) for answer in exc.recipients.values())
    return int(code or 0)


def message_level(exc, sync_error):
    """True when the server refused this one mail in a session it otherwise accepted: every
    recipient refused, the message too large, its content refused. The mailbox is fine: the
    mail fails with the server's reason, the mailbox does not go to Error."""
    if sync_error.kind not in MESSAGE_KINDS:
        return False
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return sync_error.kind == "message_too_large"  # else the mailbox's own address
    return isinstance(exc, (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError))


class MailMail(models.Model):
    _inherit = "mail.mail"

    mail_sync_attempts = fields.Integer(
        "Smart Mail attempts",
        readonly=True,
        copy=False,
        help="Failed attempts to send this mail through the author's own mailbox.",
    )

    # ------------------------------------------------------------------ routing
    def _mail_sync_routes(self):
        """``({mailbox: mails}, other mails)``: which mail goes through which user mailbox."""
        if self.env.context.get("mail_sync_no_route"):
            return {}, self
        Mailbox = self.env["mail.sync.mailbox"].sudo()
        if not Mailbox.search_count([("state", "!=", "draft")], limit=1):
            return {}, self
        routes = defaultdict(lambda: self.browse())
        others = self.browse()
        found = {}
        for mail, mail_su in zip(self, self.sudo()):
            key = (mail_su.create_uid.id, mail_su.author_id.id, mail_su.email_from)
            if key not in found:
                found[key] = Mailbox._smart_mail_for(
                    mail_su.author_id,
                    mail_su.email_from,
                    company=self.env.company,
                    sender=mail_su.create_uid,
                )
            mailbox = found[key]
            if mailbox:
                routes[mailbox] |= mail
            else:
                others |= mail
        return dict(routes), others

    def send(self, auto_commit=False, raise_exception=False, post_send_callback=None):
        routes, others = self._mail_sync_routes()
        if others:
            super(MailMail, others).send(
                auto_commit=auto_commit,
                raise_exception=raise_exception,
                post_send_callback=post_send_callback,
            )
        for mailbox, mails in routes.items():
            mails._mail_sync_send(
                mailbox,
                auto_commit=auto_commit,
                raise_exception=raise_exception,
                post_send_callback=post_send_callback,
            )
        return True

    def mark_outgoing(self):
        # A retry asked for by the user starts a new series of attempts.
        self.mail_sync_attempts = 0
        return super().mark_outgoing()

    def _prepare_outgoing_list(self, mail_server=False, recipients_follower_status=None):
        emails = super()._prepare_outgoing_list(
            mail_server=mail_server, recipients_follower_status=recipients_follower_status
        )
        mailbox_id = self.env.context.get("mail_sync_mailbox_id")
        if not mailbox_id:
            return emails
        mailbox = self.env["mail.sync.mailbox"].sudo().browse(mailbox_id)
        sender = mailbox._smart_mail_sender()
        alias_domains = {
            name.lower() for name in self.env["mail.alias.domain"].sudo().search([]).mapped("name")
        }
        own = {addr.lower() for addr in mailbox._own_addresses()}
        for email in emails:
            # Bounces go to the user's mailbox, not to the company's bounce alias.
            email["headers"] = dict(email["headers"], **{"Return-Path": mailbox.email})
            email["email_from"] = sender
            # Replies come back to the user's inbox (then synced onto the record): Odoo's
            # default Reply-To (an alias: catchall, the record's alias; or the author's own
            # address) becomes the mailbox; an explicit other address is kept.
            reply_addrs = {addr.lower() for addr in email_split(email.get("reply_to") or "")}
            if (
                not reply_addrs
                or reply_addrs <= own
                or any(addr.rpartition("@")[2] in alias_domains for addr in reply_addrs)
            ):
                email["reply_to"] = sender
        return emails

    # ------------------------------------------------------------------ sending
    def _mail_sync_send(
        self, mailbox, auto_commit=False, raise_exception=False, post_send_callback=None
    ):
        """Send these mails (all written by ``mailbox``'s owner) through ``mailbox``."""
        try:
            session = mailbox._smart_mail_connect()
        except errors.SyncError as sync_error:
            mailbox._smart_mail_failed(sync_error)
            mails = self.filtered(lambda m: m.state == "outgoing")
            if mailbox._smart_mail_fallback():
                _logger.info(
                    "Mail Sync: mailbox %s failed, %s mail(s) sent through the "
                    "company's outgoing server",
                    mailbox.id,
                    len(mails),
                )
                # Odoo's own send for these mails (no route through a mailbox).
                super(MailMail, mails).send(  # pylint: disable=super-method-mismatch
                    auto_commit=auto_commit,
                    raise_exception=raise_exception,
                    post_send_callback=post_send_callback,
                )
                return
            mails._mail_sync_failed(mailbox, sync_error, code=smtp_code(sync_error.__cause__))
            if auto_commit is True:
                self.env.cr.commit()  # pylint: disable=invalid-commit
            if raise_exception:
                raise MailDeliveryException(
                    _("Unable to connect to SMTP Server"), mailbox._smart_mail_reason(sync_error)
                ) from None
            return
        try:
            for mail in self:
                if not mail._mail_sync_send_one(
                    mailbox,
                    session,
                    raise_exception=raise_exception,
                    post_send_callback=post_send_callback,
                ):
                    break  # the session is gone: the rest stays queued
                if auto_commit is True:
                    self.env.cr.commit()  # pylint: disable=invalid-commit
        finally:
            if session is not None:
                try:
                    session.quit()
                except smtplib.SMTPException:
                    pass
                except OSError:
                    pass

    def _mail_sync_recipient_count(self):
        self.ensure_one()
        addresses = set(email_normalize_all(self.email_to or ""))
        addresses |= set(email_normalize_all(self.email_cc or ""))
        addresses |= {p.email_normalized or p.email for p in self.recipient_ids}
        return max(len(addresses - {False, None, ""}), 1)

    def _mail_sync_send_one(self, mailbox, session, raise_exception=False, post_send_callback=None):
        """Send this one mail on ``session``; False when the session broke down."""
        self.ensure_one()
        mail = self
        if mail.state != "outgoing":
            return True
        count = mail._mail_sync_recipient_count()
        if not mailbox._smart_mail_reserve(count):
            if mailbox.smtp_daily_limit and count > mailbox.smtp_daily_limit:
                mail._mail_sync_failed(
                    mailbox,
                    errors.SyncError(
                        "over_quota",
                        f"{count} recipients, more than the daily limit of "
                        f"{mailbox.smtp_daily_limit}",
                        retryable=False,
                        provider=mailbox.provider,
                    ),
                )
            else:
                _logger.info(
                    "Mail Sync: mailbox %s reached its daily sending limit; mail %s "
                    "waits for the next day",
                    mailbox.id,
                    mail.id,
                )
                mail.write({"scheduled_date": mailbox._smart_mail_next_day()})
            return True
        mail_su = mail.sudo()
        mail_message, subject = mail_su.mail_message_id, mail_su.subject
        if session is not None:
            session.mail_sync_sent, session.mail_sync_error = [], None
        error, raised = None, False
        try:
            mail.with_context(mail_sync_mailbox_id=mailbox.id)._send(
                raise_exception=raise_exception,
                smtp_session=session,
                post_send_callback=post_send_callback,
            )
        except smtplib.SMTPServerDisconnected as exc:
            error = exc
        except Exception:
            # raise_exception: Odoo raises after marking the mail failed
            if session is None or session.mail_sync_error is None:
                raise
            raised = True
        sent = session.mail_sync_sent if session is not None else []
        error = error or (session.mail_sync_error if session is not None else None)
        if isinstance(error, AssertionError):
            error = None  # Odoo's own verdict on the addresses (invalid / missing recipient)
        if sent:
            mailbox._smart_mail_record_sent(sent, mail_message, subject)
        else:
            mailbox._smart_mail_release(count)
        if error is not None:
            sync_error = errors.classify(
                error,
                host=mailbox.smtp_host,
                port=mailbox.smtp_port,
                provider=mailbox.provider,
                secrets=mailbox._secrets(),
            )
            if message_level(error, sync_error):
                _logger.info(
                    "Mail Sync: the server of mailbox %s refused mail %s: %s",
                    mailbox.id,
                    mail.id,
                    errors.redact(sync_error.detail, mailbox._secrets()),
                )
            else:
                if sync_error.kind == "over_quota":
                    mailbox._smart_mail_exhaust()
                mailbox._smart_mail_failed(sync_error)
            if mail.exists():
                mail._mail_sync_failed(mailbox, sync_error, code=smtp_code(error))
            if raised or (raise_exception and error is not None):
                raise MailDeliveryException(
                    _("Mail Delivery Failed"), mailbox._smart_mail_reason(sync_error)
                ) from None
        return not isinstance(error, smtplib.SMTPServerDisconnected)

    def _mail_sync_failed(self, mailbox, sync_error, code=0):
        """Keep these mails queued, marked failed with the reason (on the mail and on the
        record's notifications). Temporary trouble is retried by the mail queue: the server's
        reply code decides (4xx temporary, 5xx permanent), else the kind of error."""
        reason = mailbox._smart_mail_reason(sync_error)
        temporary = 400 <= code < 500 if code else sync_error.kind in TEMPORARY_KINDS
        now = fields.Datetime.now()
        for mail in self:
            attempts = mail.mail_sync_attempts + 1
            vals = {
                "failure_reason": reason,
                "failure_type": "mail_smtp",
                "mail_sync_attempts": attempts,
            }
            if temporary and attempts < MAX_ATTEMPTS:
                vals.update(
                    state="outgoing",
                    scheduled_date=now + timedelta(minutes=5 * 3 ** (attempts - 1)),
                )
            else:
                vals.update(state="exception")
            mail.write(vals)
            mail._postprocess_sent_message(
                success_pids=[], failure_reason=reason, failure_type="mail_smtp"
            )
