# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Smart Mail on the mailbox: sending through the user's own SMTP.

What the mailbox knows about sending: whether mail of its owner is routed through it, the SMTP
connection (Odoo's ``ir.mail_server.connect``, password or XOAUTH2), the daily sending limit and
today's count, the copy into the Sent folder over IMAP, the registry entry that keeps the later
sync from recording the sent mail twice, and what a failure does to the mailbox (error state and
an error-log entry, as for sync errors).
"""
import copy
import datetime
import logging
from email.utils import formataddr, getaddresses

from odoo import _, api, fields, models, modules
from odoo.tools import email_normalize

from ..mailsync import addresses, errors
from ..mailsync.parse import normalize_message_id
from ..mailsync.session import smtp_connection
from .mail_sync_mailbox import SYNCING_STATES
from .mail_sync_message import NOT_POISON, address_lines

_logger = logging.getLogger(__name__)

# Recipients per day (Gmail: "Gmail sending limits in Google Workspace", Microsoft 365:
# "Exchange Online limits", recipient rate limit). 0 = no limit.
DAILY_LIMIT_GMAIL = 500
DAILY_LIMIT_WORKSPACE = 2000
DAILY_LIMIT_OUTLOOK = 10000
GMAIL_PERSONAL_DOMAINS = {"gmail.com", "googlemail.com"}

# Providers that file SMTP-sent mail into the Sent folder by themselves.
PROVIDERS_KEEPING_SENT = ("gmail", "outlook")

FALLBACK_PARAM = "crm_mail_sync.smart_mail_fallback"


class MailSyncMailbox(models.Model):
    _inherit = "mail.sync.mailbox"

    smtp_daily_limit = fields.Integer(
        "Daily sending limit", compute="_compute_smtp_daily_limit", store=True, readonly=False,
        help="Most recipients this mailbox sends to per day (UTC) through Smart Mail; mail "
             "beyond it stays queued for the next day. 0: no limit. Defaults: Gmail 500, "
             "Google Workspace 2,000, Microsoft 365 10,000.")
    smtp_sent_date = fields.Date("Sending day", readonly=True, copy=False)
    smtp_sent_count = fields.Integer(
        "Recipients sent today", readonly=True, copy=False,
        help="Recipients of the mail sent through this mailbox on the sending day.")

    @api.depends("provider", "email")
    def _compute_smtp_daily_limit(self):
        for mailbox in self:
            domain = (mailbox.email or "").rpartition("@")[2].strip().lower()
            if mailbox.provider == "gmail":
                mailbox.smtp_daily_limit = (DAILY_LIMIT_GMAIL if domain in GMAIL_PERSONAL_DOMAINS
                                            else DAILY_LIMIT_WORKSPACE)
            elif mailbox.provider == "outlook":
                mailbox.smtp_daily_limit = DAILY_LIMIT_OUTLOOK
            else:
                mailbox.smtp_daily_limit = 0

    # ------------------------------------------------------------------ routing
    @api.model
    def _smart_mail_for(self, author, email_from, company=None, sender=None):
        """The mailbox that sends mail written by ``author`` (res.partner) from ``email_from``
        and created by the user ``sender`` (``mail.mail.create_uid``), or an empty recordset
        (Odoo's usual outgoing server).

        Mail goes out through a user's mailbox only when that user sends it: ``sender`` is the
        mailbox owner (an internal user), the author is the owner's own partner, the mailbox is
        enabled (or in error: it still syncs and a failure must show) with an SMTP server, and
        the From address is one of the owner's own addresses. A colleague posting with the
        owner as author (``message_post(author_id=…)`` accepts any partner), automated actions
        running as another user, mail from a shared address: Odoo's usual server.
        """
        if not sender or sender.share or author != sender.partner_id:
            return self.browse()
        sender_address = email_normalize(email_from or "")
        if not sender_address:
            return self.browse()
        mailboxes = self.sudo().search([
            ("user_id", "=", sender.id), ("state", "in", SYNCING_STATES),
            ("smtp_host", "!=", False), ("active", "=", True),
        ], order="id")
        if company:
            mailboxes = mailboxes.sorted(lambda m: m.company_id != company)
        for mailbox in mailboxes:
            if sender_address in mailbox._own_addresses():
                return mailbox
        return self.browse()

    def _smart_mail_sender(self):
        """The From of mail sent through this mailbox: the owner's name and the mailbox."""
        self.ensure_one()
        return formataddr((self.user_id.name or "", (self.email or "").strip()))

    # ------------------------------------------------------------------ connection
    def _smart_mail_connect(self):
        """A logged-in SMTP session on this mailbox's server (None in Odoo's test mode, like
        every ``ir.mail_server.connect``).

        Opened by the engine (``mailsync.session.smtp_connection``), like Test connection and
        the sync: the certificate is verified (Odoo's own ``connect`` does not verify it), the
        server must pass the network rule, XOAUTH2 (a fresh access token from ``_mail_config``)
        or the password, every reply checked. The session then carries what Odoo's
        ``send_email`` reads: From and envelope sender are the mailbox address. Raises
        SyncError.
        """
        self.ensure_one()
        if modules.module.current_test:
            return None  # Odoo sends nothing while a test runs: no token refresh either
        config = self._mail_config()
        if config.smtp is None:
            raise errors.SyncError("config", "No SMTP server is set for this mailbox.",
                                   provider=self.provider)
        connection = smtp_connection(config).__enter__()  # the caller quits it
        # What Odoo's _prepare_email_message reads: From header and envelope sender become the
        # mailbox address (never the company bounce or notification address).
        connection.from_filter = config.email
        connection.smtp_from = self._smart_mail_sender()
        connection.mail_sync_mailbox_id = self.id
        connection.mail_sync_sent = []
        connection.mail_sync_error = None
        return connection

    # ------------------------------------------------------------------ failures
    def _smart_mail_failed(self, sync_error):
        """An SMTP failure of the mailbox: what a failed sync does (``_sync_failed``: error-log
        entry with the fix, Error with its back-off and error count, Connection after two days)."""
        self.ensure_one()
        _logger.warning("Mail Sync: sending through mailbox %s failed: %s (%s)", self.id,
                        sync_error, errors.redact(sync_error.detail, self._secrets()))
        self.sudo().with_context(mail_sync_sending=True)._sync_failed(sync_error)

    def _smart_mail_reason(self, sync_error):
        """The failure reason shown on the mail and on the lead's failed notification."""
        self.ensure_one()
        detail = errors.redact(sync_error.detail or "", self._secrets())
        lines = [
            _("Could not send through your mailbox %(email)s (SMTP %(host)s:%(port)s).",
              email=self.email, host=self.smtp_host, port=self.smtp_port),
            self._user_error(sync_error),
        ]
        if detail:
            lines.append(_("Server answer: %s", detail))
        return "\n".join(lines)

    @api.model
    def _smart_mail_fallback(self):
        return self.env["ir.config_parameter"].sudo().get_param(FALLBACK_PARAM) in (
            "True", "true", "1")

    # ------------------------------------------------------------------ daily limit
    def _smart_mail_reserve(self, count):
        """Count ``count`` recipients against today's limit; False when they do not fit (the
        mail waits for the next day). The row is locked until the end of the transaction so
        that two workers never overshoot together."""
        self.ensure_one()
        today = fields.Datetime.now().date()
        self.flush_recordset(["smtp_sent_date", "smtp_sent_count", "smtp_daily_limit"])
        self.env.cr.execute("""
            SELECT smtp_daily_limit,
                   CASE WHEN smtp_sent_date = %s THEN COALESCE(smtp_sent_count, 0) ELSE 0 END
              FROM mail_sync_mailbox WHERE id = %s FOR UPDATE
        """, (today, self.id))
        limit, sent = self.env.cr.fetchone()
        if limit and sent + count > limit:
            return False
        self.env.cr.execute(
            "UPDATE mail_sync_mailbox SET smtp_sent_date = %s, smtp_sent_count = %s WHERE id = %s",
            (today, sent + count, self.id))
        self.invalidate_recordset(["smtp_sent_date", "smtp_sent_count"])
        return True

    def _smart_mail_release(self, count):
        """Give back recipients reserved for a mail that was not sent."""
        self.ensure_one()
        today = fields.Datetime.now().date()
        self.env.cr.execute("""
            UPDATE mail_sync_mailbox SET smtp_sent_count = GREATEST(smtp_sent_count - %s, 0)
             WHERE id = %s AND smtp_sent_date = %s
        """, (count, self.id, today))
        self.invalidate_recordset(["smtp_sent_count"])

    def _smart_mail_exhaust(self):
        """The provider said the daily quota is used up: nothing more is sent today."""
        self.ensure_one()
        if not self.smtp_daily_limit:
            return
        today = fields.Datetime.now().date()
        self.env.cr.execute(
            "UPDATE mail_sync_mailbox SET smtp_sent_date = %s, smtp_sent_count = %s WHERE id = %s",
            (today, self.smtp_daily_limit, self.id))
        self.invalidate_recordset(["smtp_sent_date", "smtp_sent_count"])

    @api.model
    def _smart_mail_next_day(self):
        """Start of the next sending day (UTC, naive like Odoo's datetimes)."""
        now = fields.Datetime.now()
        return datetime.datetime.combine(now.date() + datetime.timedelta(days=1),
                                         datetime.time.min)

    # ------------------------------------------------------------------ after a send
    def _smart_mail_record_sent(self, messages, mail_message, subject):
        """The mail went out: register its Message-ID (the sync then skips it in the Sent
        folder) and, for providers that do not file SMTP-sent mail themselves, APPEND a copy
        to the Sent folder marked \\Seen. A failing copy is logged, never fails the mail."""
        self.ensure_one()
        first = messages[0]
        message_id = normalize_message_id(first["Message-Id"])
        if not message_id:
            return
        Registry = self.env["mail.sync.message"].sudo()
        # Every recipient of this mail.mail: the copy in Sent names no one new (the message
        # is on the record already, and is recorded nowhere else).
        named = set(addresses.extract(
            value for message in messages for name in ("From", "To", "Cc", "Bcc")
            for value in message.get_all(name, []))) - set(self._own_addresses())
        row = Registry.search([("mailbox_id", "=", self.id), ("message_id", "=", message_id)],
                              limit=1)
        if row:
            # Another mail.mail of the same message (other recipients): one copy, and its
            # recipients are named too.
            if row.addresses and not named <= set(row.addresses.split()):
                row.addresses = address_lines(named | set(row.addresses.split()))
            return
        try:
            with self.env.cr.savepoint():
                Registry.create({
                    "mailbox_id": self.id,
                    "message_id": message_id,
                    "direction": "sent",
                    "date": fields.Datetime.now(),
                    "subject": (subject or "")[:500],
                    "mail_message_ids": [(6, 0, mail_message.ids)],
                    "addresses": address_lines(named),
                })
        except NOT_POISON:
            raise
        except Exception as exc:  # noqa: BLE001 - the mail is sent: never fail it afterwards
            # Without its registry row the sync may meet the mail in the Sent folder; it is
            # on the record already (same Message-ID) and is not recorded twice there.
            _logger.warning("Mail Sync: the mail %s sent through mailbox %s could not be "
                            "recorded: %s", message_id, self.id, exc)
            self.env["mail.sync.log"].sudo()._log(self, errors.SyncError(
                "record", f"sent mail {message_id} ({subject or ''}): "
                          f"{type(exc).__name__}: {exc}", provider=self.provider))
        if self.provider in PROVIDERS_KEEPING_SENT:
            return
        raw = self._smart_mail_copy(messages)
        try:
            self._smart_mail_append_sent(raw)
        except Exception as exc:  # noqa: BLE001 - the mail is sent; the copy is a courtesy
            secrets = self._secrets()
            sync_error = errors.classify(exc, host=self.imap_host, port=self.imap_port,
                                         provider=self.provider, secrets=secrets)
            _logger.warning("Mail Sync: Sent copy in mailbox %s failed: %s", self.id, sync_error)
            self.env["mail.sync.log"].sudo()._log(self, sync_error, secrets=secrets)

    @api.model
    def _smart_mail_copy(self, messages):
        """One message for the Sent folder: Odoo sends one message per recipient; the copy is
        the first with every recipient in To, like a mail client's."""
        message = copy.deepcopy(messages[0])
        recipients = []
        for sent in messages:
            for name, addr in getaddresses([str(value) for value in sent.get_all("To", [])]):
                if addr and addr.lower() not in {a.lower() for _n, a in recipients}:
                    recipients.append((name, addr))
        if len(messages) > 1 and recipients:
            del message["To"]
            message["To"] = ", ".join(formataddr(pair) for pair in recipients)
        del message["Return-Path"]
        return message.as_bytes()

    def _smart_mail_append_sent(self, raw):
        from ..mailsync.session import ImapSession

        self.ensure_one()
        folder = self.folder_ids.filtered(lambda f: f.role == "sent")[:1].name
        with ImapSession(self._mail_config()) as session:
            if not folder:
                found = [f for f in session.discover_folders() if f.role == "sent"]
                folder = found[0].name if found else "Sent"
                if not found:
                    session.client.create_folder(folder)
            session.append(folder, raw, flags=(b"\\Seen",))
