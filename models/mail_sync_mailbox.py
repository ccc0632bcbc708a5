# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""One user's mailbox: connection settings, status, and the sync of that mailbox.

The protocol work is the engine's (``..mailsync``); this model only builds the engine's
``MailboxConfig``, persists cursors, records what the engine hands over and keeps the status.
"""
import dataclasses
import ipaddress
import json
import logging
import threading
import time
from datetime import timedelta

import psycopg2

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL, mute_logger
from odoo.tools.translate import LazyTranslate

from ..mailsync import crashpoint, errors, sync
from ..mailsync.types import Endpoint, FolderState, MailboxConfig
from .mail_sync_message import Counts
from .res_company import SHARING

_logger = logging.getLogger(__name__)

SECURITY = [("ssl", "SSL/TLS"), ("starttls", "STARTTLS"), ("none", "None (local only)")]

# Translated where shown (state_description: env._); English when built into the field's help
# at import, where no language is known.
_lt = LazyTranslate(__name__, default_lang="en_US")

# PRODUCT.md, exact words.
STATE_HELP = {
    "draft": _lt("Mail Sync is not configured for this user account yet."),
    "enabled": _lt("Mail Sync was successfully enabled for this user account."),
    "error": _lt("An error occurred when attempting to sync the user account's email (for "
                 "example an invalid email address or a connectivity issue)."),
    "pending": _lt("The account waits for a raise in the company's mailbox sync limit, or for "
                   "someone else to disconnect so that the company is below the limit."),
    "connection": _lt("Unable to connect for two days due to errors. No longer trying to sync. "
                      "Not billed while this lasts."),
}

PROVIDER_DEFAULTS = {
    "gmail": {"imap_host": "imap.gmail.com", "imap_port": 993, "imap_security": "ssl",
              "smtp_host": "smtp.gmail.com", "smtp_port": 465, "smtp_security": "ssl"},
    "outlook": {"imap_host": "outlook.office365.com", "imap_port": 993, "imap_security": "ssl",
                "smtp_host": "smtp.office365.com", "smtp_port": 587,
                "smtp_security": "starttls"},
}
GMAIL_DOMAINS = {"gmail.com", "googlemail.com"}
OUTLOOK_DOMAINS = {"outlook.com", "hotmail.com", "live.com", "msn.com"}

# The network rule (mailsync.netguard): hosts, addresses and networks an administrator allowed.
ALLOWED_NETWORKS_PARAM = "crm_mail_sync.allowed_networks"
# Test connection never waits longer than this for one server (seconds).
TEST_TIMEOUT = 30.0

# The states the cron syncs.
SYNCING_STATES = ("enabled", "error")

# Session-level advisory lock namespace ("MSYN") held while a mailbox syncs: row locks end at
# the first commit, this one lasts until the sync of that mailbox is over (or the worker dies).
ADVISORY_LOCK_KEY = 0x4D53594E

# Status, seat, daily-cap and sync bookkeeping: billing and the Pending queue depend on them.
# Written only by Mail Sync itself (sync, connection test, seat queue, disconnect, Smart Mail:
# as superuser), never by a client: ``create``/``write`` refuse them unless ``env.su``.
PROTECTED_FIELDS = frozenset({
    "state", "last_sync", "last_success", "next_sync", "last_error", "error_since",
    "synced_count", "folder_ids", "log_ids", "skipped_ids", "sync_inflight", "sync_suspects",
    "sharing",
    # mail_sync_mailbox_health
    "pending_since", "holds_seat", "error_count", "cap_day", "cap_base",
    # mail_sync_mailbox_smart_mail, mail_sync_fast_arrival
    "smtp_sent_date", "smtp_sent_count", "fast_checked_at",
})


class SyncRun:
    """What one sync of one mailbox carries from stage to stage (plain values, no records but
    the mailbox): the cursor rows met, the owner's addresses, the secrets to redact, the
    message errors of the group being read, whether a batch is marked in flight."""

    def __init__(self, mailbox, *, auto_commit=False):
        self.auto_commit = auto_commit
        self.folders = {}  # folder name -> mail.sync.folder
        self.stored = {}  # folder name -> (uidvalidity, last_uid) as in the database
        self.own = mailbox._own_addresses()
        self.secrets = []
        self.pending_errors = []  # message-level errors of the group being recorded
        self.inflight = False
        self.suspects = {}  # crash safety: what _crash_recovery kept, pruned at the end
        self.skipped = 0
        self.failed = {}  # folder name -> UIDs skipped by this run
        self.recorded = Counts(0, 0)  # emails and chatter entries this run recorded

    def __repr__(self):  # never the secrets
        return f"SyncRun(folders={len(self.folders)}, skipped={self.skipped})"


def is_loopback(host):
    host = (host or "").strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MailSyncMailbox(models.Model):
    _name = "mail.sync.mailbox"
    _description = "Mail Sync mailbox"
    _order = "user_id, id"
    _check_company_auto = True
    _rec_name = "email"

    active = fields.Boolean(default=True)
    user_id = fields.Many2one(
        "res.users", string="User", required=True, index=True, ondelete="cascade",
        default=lambda self: self.env.user,
        domain="[('share', '=', False)]")
    company_id = fields.Many2one(
        "res.company", string="Company", required=True, index=True,
        default=lambda self: self.env.company)
    email = fields.Char("Email address", required=True)
    provider = fields.Selection(
        [("generic", "Other (IMAP)"), ("gmail", "Gmail / Google Workspace"),
         ("outlook", "Outlook / Microsoft 365")],
        required=True, default="generic")
    auth_method = fields.Selection(
        [("password", "Password / app password"), ("oauth", "OAuth")],
        string="Authentication", required=True, default="password")

    imap_host = fields.Char("IMAP server")
    imap_port = fields.Integer("IMAP port", default=993)
    imap_security = fields.Selection(SECURITY, string="IMAP security", default="ssl",
                                     required=True)
    imap_login = fields.Char("IMAP login", help="Usually the email address.")
    smtp_host = fields.Char("SMTP server")
    smtp_port = fields.Integer("SMTP port", default=465)
    smtp_security = fields.Selection(SECURITY, string="SMTP security", default="ssl",
                                     required=True)
    smtp_login = fields.Char("SMTP login", help="Leave empty to use the IMAP login.")
    sync_days = fields.Integer(
        "Sync history (days)", default=30,
        help="How far back to sync on first connection (0: the whole mailbox).")

    # Write-only: never read back (always empty), encrypted into mail.sync.credential.
    password = fields.Char(
        "Password", compute="_compute_password", inverse="_inverse_password", copy=False,
        help="Your mailbox password or app password. It is stored encrypted and never shown.")
    has_password = fields.Boolean(compute="_compute_has_password")

    state = fields.Selection(
        [("draft", "Not connected"), ("enabled", "Enabled"), ("error", "Error"),
         ("pending", "Pending"), ("connection", "Connection")],
        string="Status", default="draft", required=True, readonly=True, copy=False, index=True,
        help="\n".join(f"{label}: {STATE_HELP[key]}" for key, label in (
            ("enabled", "Enabled"), ("error", "Error"), ("pending", "Pending"),
            ("connection", "Connection"))))
    state_description = fields.Char("Status meaning", compute="_compute_state_description")
    last_sync = fields.Datetime("Last sync", readonly=True, copy=False)
    last_success = fields.Datetime("Last successful sync", readonly=True, copy=False)
    next_sync = fields.Datetime(
        "Next sync", readonly=True, copy=False,
        help="The mailbox is not synced before this time (empty: at the next run).")
    last_error = fields.Text("Last error", readonly=True, copy=False)
    error_since = fields.Datetime("In error since", readonly=True, copy=False)
    folder_ids = fields.One2many("mail.sync.folder", "mailbox_id", string="Folders",
                                 readonly=True, copy=False)
    synced_count = fields.Integer("Synced emails", readonly=True, copy=False)
    log_ids = fields.One2many("mail.sync.log", "mailbox_id", string="Errors", readonly=True,
                              copy=False)
    skipped_ids = fields.One2many("mail.sync.skipped", "mailbox_id", string="Skipped",
                                  readonly=True, copy=False)
    skipped_count = fields.Integer("Skipped messages", compute="_compute_skipped_count",
                                   help="Messages a sync skipped (unreadable, over a limit, "
                                        "could not be recorded). Retry skipped messages syncs "
                                        "them again.")
    sharing = fields.Selection(
        SHARING, string="Synced emails shared with", readonly=True, copy=False,
        help="Who sees the emails this mailbox records: the owner's choice (My Profile ▸ "
             "Mail Sync), else the company's default. The owner and Mail Sync managers always "
             "see them whole.")
    # Crash safety (see _crash_recovery): the UIDs being read, and how many syncs died with
    # each suspect in flight.
    sync_inflight = fields.Json("Messages in flight", readonly=True, copy=False)
    sync_suspects = fields.Json("Messages read alone", readonly=True, copy=False)

    _sql_constraints = [
        ("user_company_unique", "unique(user_id, company_id)",
         "A user has one Mail Sync mailbox per company."),
        ("imap_port_range", "CHECK(imap_port IS NULL OR (imap_port >= 0 AND imap_port <= 65535))",
         "The IMAP port must be between 1 and 65535."),
        ("smtp_port_range", "CHECK(smtp_port IS NULL OR (smtp_port >= 0 AND smtp_port <= 65535))",
         "The SMTP port must be between 1 and 65535."),
        ("sync_days_positive", "CHECK(sync_days IS NULL OR sync_days >= 0)",
         "The sync history cannot be negative."),
    ]

    # ------------------------------------------------------------------ computes
    def _compute_password(self):
        for mailbox in self:
            mailbox.password = False

    def _inverse_password(self):
        for mailbox in self:
            if mailbox.password:
                mailbox._set_secret("password", mailbox.password)

    def _compute_skipped_count(self):
        counts = dict(self.env["mail.sync.skipped"].sudo()._read_group(
            [("mailbox_id", "in", self.ids)], ["mailbox_id"], ["__count"]))
        for mailbox in self:
            mailbox.skipped_count = counts.get(mailbox._origin, 0)

    def _compute_has_password(self):
        creds = self.env["mail.sync.credential"].sudo().search_fetch(
            [("mailbox_id", "in", self.ids), ("kind", "=", "password")], ["mailbox_id"])
        with_password = set(creds.mailbox_id.ids)
        for mailbox in self:
            mailbox.has_password = mailbox.id in with_password

    @api.depends("state")
    @api.depends_context("lang")
    def _compute_state_description(self):
        for mailbox in self:
            help_text = STATE_HELP.get(mailbox.state)
            mailbox.state_description = self.env._(help_text) if help_text else ""

    @api.depends("email", "user_id")
    def _compute_display_name(self):
        for mailbox in self:
            mailbox.display_name = mailbox.email or mailbox.user_id.name or _("New mailbox")

    # ------------------------------------------------------------------ onchange / constraints
    @api.onchange("email")
    def _onchange_email(self):
        if not self.email or "@" not in self.email:
            return
        domain = self.email.rsplit("@", 1)[1].strip().lower()
        if domain in GMAIL_DOMAINS:
            self.provider = "gmail"
        elif domain in OUTLOOK_DOMAINS:
            self.provider = "outlook"
        if not self.imap_login:
            self.imap_login = self.email.strip()

    @api.onchange("provider")
    def _onchange_provider(self):
        for fname, value in PROVIDER_DEFAULTS.get(self.provider, {}).items():
            self[fname] = value

    @api.onchange("imap_security")
    def _onchange_imap_security(self):
        self.imap_port = {"ssl": 993, "starttls": 143, "none": 143}.get(self.imap_security, 993)

    @api.onchange("smtp_security")
    def _onchange_smtp_security(self):
        self.smtp_port = {"ssl": 465, "starttls": 587, "none": 25}.get(self.smtp_security, 465)

    @api.constrains("imap_security", "imap_host", "smtp_security", "smtp_host")
    def _check_security_loopback(self):
        for mailbox in self:
            if mailbox.imap_security == "none" and mailbox.imap_host and not is_loopback(
                    mailbox.imap_host):
                raise ValidationError(_(
                    "An unencrypted IMAP connection is only allowed to the local machine "
                    "(localhost); choose SSL/TLS or STARTTLS for %s.", mailbox.imap_host))
            if mailbox.smtp_security == "none" and mailbox.smtp_host and not is_loopback(
                    mailbox.smtp_host):
                raise ValidationError(_(
                    "An unencrypted SMTP connection is only allowed to the local machine "
                    "(localhost); choose SSL/TLS or STARTTLS for %s.", mailbox.smtp_host))

    @api.constrains("user_id", "company_id")
    def _check_user_internal(self):
        for mailbox in self:
            if mailbox.user_id.share:
                raise ValidationError(_("Only internal users can sync a mailbox."))
            if mailbox.company_id not in mailbox.user_id.company_ids:
                raise ValidationError(_(
                    "%(user)s does not work for %(company)s: a mailbox syncs in one of its "
                    "owner's companies.", user=mailbox.user_id.name,
                    company=mailbox.company_id.name))

    # ------------------------------------------------------------------ CRUD
    def _check_protected_fields(self, vals):
        """Refuse a client's value for a PROTECTED_FIELDS field (Mail Sync writes them as
        superuser)."""
        if self.env.su:
            return
        protected = sorted(PROTECTED_FIELDS.intersection(vals))
        if protected:
            raise AccessError(_(
                "The status, seat, daily cap and counters of a mailbox are kept by Mail Sync "
                "and cannot be set directly (%s). Use Test Connection, Sync now or "
                "Disconnect.", ", ".join(protected)))

    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.su:
            for vals in vals_list:
                self._check_protected_fields(vals)
            # Nor through defaults in the context (``default_state``: grouped views send it).
            context = self.env.context
            if any(key.startswith("default_") and key[8:] in PROTECTED_FIELDS
                   for key in context):
                self = self.with_context({  # noqa: PLW0642
                    key: value for key, value in context.items()
                    if not (key.startswith("default_") and key[8:] in PROTECTED_FIELDS)})
        if not (self.env.su or self.env.user.has_group("base.group_system")):
            for vals in vals_list:
                owner = vals.get("user_id") or self.env.context.get("default_user_id") \
                    or self.env.uid
                if owner != self.env.uid:
                    raise AccessError(_("Only an administrator can set up a mailbox for "
                                        "another user."))
        for vals in vals_list:
            if vals.get("email") and not vals.get("imap_login"):
                vals["imap_login"] = vals["email"].strip()
        mailboxes = super().create(vals_list)
        mailboxes.invalidate_recordset(["password"])  # never keep the clear value around
        mailboxes._apply_sharing()
        return mailboxes

    def _check_ownership_write(self, vals):
        """A mailbox belongs to one user and one company for life: only Settings
        administrators hand it to another user or company, and only its owner changes it
        (managers act on others' mailboxes through their buttons: retry, disconnect)."""
        if self.env.su or self.env.user.has_group("base.group_system"):
            return
        if {"user_id", "company_id"} & set(vals):
            raise AccessError(_("Only an administrator can give a mailbox to another user or "
                                "move it to another company."))
        others = self.filtered(lambda m: m.user_id != self.env.user)
        if others:
            raise AccessError(_("Only %s can change their mailbox's settings.",
                                others[0].user_id.name))

    # Where a stored secret goes, and whose it is: when one of them changes, the secrets go.
    SECRET_BINDING_FIELDS = ("imap_host", "imap_port", "imap_security", "imap_login",
                             "smtp_host", "smtp_port", "smtp_security", "smtp_login", "email",
                             "user_id", "company_id")

    def _secrets_to_forget(self, vals):
        """The mailboxes of ``self`` whose server, login or owner ``vals`` really changes."""
        names = [name for name in self.SECRET_BINDING_FIELDS if name in vals]
        if not names:
            return self.browse()
        changed = self.browse()
        for mailbox in self:
            for name in names:
                field = self._fields[name]
                new = field.convert_to_record(field.convert_to_cache(vals[name], mailbox),
                                              mailbox)
                old = mailbox[name]
                if isinstance(old, str) or isinstance(new, str):
                    old, new = (old or "").strip().lower(), (new or "").strip().lower()
                if old != new:
                    changed |= mailbox
                    break
        return changed

    def write(self, vals):
        connection_fields = {"email", "provider", "auth_method", "imap_host", "imap_port",
                             "imap_security", "imap_login", "smtp_host", "smtp_port",
                             "smtp_security", "smtp_login", "password", "user_id", "company_id"}
        self._check_protected_fields(vals)
        self._check_ownership_write(vals)
        moved = self._secrets_to_forget(vals)
        res = super().write(vals)
        if moved:
            # A stored password or token is never sent to a server, or used by a user, other
            # than the ones it was entered for: changed, they must be entered again.
            self.env["mail.sync.credential"].sudo().search(
                [("mailbox_id", "in", moved.ids)]
                + ([("kind", "!=", "password")] if vals.get("password") else [])).unlink()
            _logger.info("Mail Sync: mailbox(es) %s changed server, login or owner: stored "
                         "secrets deleted", moved.ids)
        if "password" in vals:
            self.invalidate_recordset(["password"])  # never keep the clear value around
        # Changing how to connect needs a new connection test before syncing again
        # (``mail_sync_keep_state``: Mail Sync's own writes, as superuser; a client's context
        # key is ignored).
        keep_state = self.env.su and self.env.context.get("mail_sync_keep_state")
        if connection_fields & set(vals) and not keep_state:
            self.filtered(lambda m: m.state != "draft").sudo().with_context(
                mail_sync_keep_state=True).write({"state": "draft"})
        return res

    def unlink(self):
        self._drop_hidden_content()
        return super().unlink()

    # ------------------------------------------------------------------ sharing
    def _drop_hidden_content(self):
        """The content these mailboxes recorded without sharing it whole goes with them: nobody
        else may read it, and its attachments (kept on the mailbox) would lose their owner."""
        messages = self.env["mail.message"].sudo().search([
            ("mail_sync_mailbox_id", "in", self.ids),
            ("mail_sync_visibility", "in", ("metadata", "private"))])
        if messages:
            messages.mail_sync_attachment_ids.unlink()
            messages.write({"mail_sync_body": False})

    def _apply_sharing(self):
        """Bring ``sharing`` to the owner's choice (or the company's default) and the mail
        already recorded in line with it (``mail.message._mail_sync_set_visibility``)."""
        for mailbox in self.sudo():
            wanted = mailbox.user_id.mail_sync_sharing or mailbox.company_id.mail_sync_sharing \
                or "everyone"
            if mailbox.sharing == wanted:
                continue
            mailbox.with_context(mail_sync_keep_state=True).write({"sharing": wanted})
            self.env["mail.message"].sudo()._mail_sync_apply_mailbox_sharing(mailbox)

    # ------------------------------------------------------------------ secrets
    def _set_secret(self, kind, value, expires_at=None):
        """Encrypt ``value`` into this mailbox's credential of ``kind`` (``False`` removes it)."""
        self.ensure_one()
        Credential = self.env["mail.sync.credential"].sudo()
        existing = Credential.search([("mailbox_id", "=", self.id), ("kind", "=", kind)])
        if not value:
            existing.unlink()
            return
        vals = {"token": Credential._encrypt(value), "expires_at": expires_at}
        if existing:
            existing.write(vals)
        else:
            Credential.create(dict(vals, mailbox_id=self.id, kind=kind))

    def _get_secret(self, kind):
        """Clear text of this mailbox's secret of ``kind``, or None. Internal use only."""
        self.ensure_one()
        Credential = self.env["mail.sync.credential"].sudo()
        cred = Credential.search([("mailbox_id", "=", self.id), ("kind", "=", kind)], limit=1)
        if not cred.token:
            return None
        return Credential._decrypt(cred.token)

    def _secrets(self):
        """Every clear secret of this mailbox, to redact them from error texts."""
        self.ensure_one()
        values = []
        for kind in ("password", "refresh_token", "access_token"):
            try:
                value = self._get_secret(kind)
            except Exception:  # noqa: BLE001 - a missing key must not hide the real error
                value = None
            if value:
                values.append(value)
        return values

    # ------------------------------------------------------------------ engine config
    @api.model
    def _get_param(self, key, default):
        value = self.env["ir.config_parameter"].sudo().get_param(f"crm_mail_sync.{key}")
        try:
            return type(default)(value) if value not in (None, False, "") else default
        except (TypeError, ValueError):
            return default

    def _access_token(self):
        """The OAuth access token (XOAUTH2), or None: None for a password mailbox; OAuth
        mailboxes get theirs from ``mail_sync_oauth_mixin`` (which extends this method)."""
        self.ensure_one()
        return None

    def _mail_config(self):
        """The engine's ``MailboxConfig`` for this mailbox. Holds secrets: never log it."""
        self.ensure_one()
        mailbox = self.sudo()
        if not mailbox.imap_host or not mailbox.imap_port:
            raise errors.SyncError("config", "The IMAP server and port are required.")
        imap = Endpoint(mailbox.imap_host.strip(), mailbox.imap_port, mailbox.imap_security)
        smtp = None
        if mailbox.smtp_host:
            smtp = Endpoint(mailbox.smtp_host.strip(), mailbox.smtp_port or 465,
                            mailbox.smtp_security)
        login = (mailbox.imap_login or mailbox.email or "").strip()
        access_token = mailbox._access_token() if mailbox.auth_method == "oauth" else None
        password = None
        if not access_token:
            facts = self._facts_in_use()
            if facts is None:
                password = mailbox._get_secret("password")
            elif facts.password_token:
                password = self.env["mail.sync.credential"].sudo()._decrypt(
                    facts.password_token)
        if not access_token and not password:
            raise errors.SyncError("config", "No password is stored for this mailbox.",
                                   host=imap.host, port=imap.port, provider=mailbox.provider)
        return MailboxConfig(
            email=(mailbox.email or "").strip(),
            imap=imap,
            login=login,
            smtp=smtp,
            smtp_login=(mailbox.smtp_login or login).strip(),
            password=password,
            access_token=access_token,
            provider=mailbox.provider,
            timeout=float(self._get_param("connect_timeout", 30)),
            allowed_networks=self._allowed_networks(),
        )

    @api.model
    def _allowed_networks(self):
        """What an administrator allowed beyond public mail servers (Settings ▸ CRM ▸ Mail Sync
        ▸ Allowed networks; the ``crm_mail_sync.allowed_networks`` parameter)."""
        return self.env["ir.config_parameter"].sudo().get_param(ALLOWED_NETWORKS_PARAM) or ""

    def _own_addresses(self):
        """Normalised addresses of the mailbox owner: never matched against CRM records."""
        self.ensure_one()
        from ..mailsync import addresses

        facts = self._facts_in_use()
        owner_email = facts.owner_email if facts is not None else self.user_id.email
        own = set()
        for value in (self.email, self.imap_login, self.smtp_login, owner_email):
            if value and "@" in value:
                normalized = addresses.normalize(value)
                if normalized:
                    own.add(normalized)
        return own

    # ------------------------------------------------------------------ connection test
    @api.model
    def _user_error(self, exc):
        """A SyncError as the text shown to the user."""
        if exc.kind == "auth":
            return "%s\n%s" % (_("Authentication failed. Please try again."),
                               errors.fix_for(exc.kind, exc.provider))
        return "%s\n%s" % (str(exc), errors.fix_for(exc.kind, exc.provider))

    def action_test_connection(self):
        """Button (the owner): log in over IMAP, then SMTP; enable sync on success."""
        self.ensure_one()
        self._check_owner_access()
        from ..mailsync import session

        try:
            config = self._mail_config()
            # A button holds an HTTP worker: never longer than TEST_TIMEOUT per server.
            config = dataclasses.replace(config, timeout=min(config.timeout, TEST_TIMEOUT))
            session.test_imap(config)
            if config.smtp:
                session.test_smtp(config)
        except errors.SyncError as exc:
            exc = errors.classify(exc, provider=self.provider)
            _logger.info("Mail Sync: connection test of mailbox %s failed: %s (%s)",
                         self.id, exc.kind, errors.redact(exc.detail, self._secrets()))
            # mail.sync.oauth.mixin: a Gmail app-password refusal offers Connect with Google.
            raise self._connection_user_error(exc) from None
        self._enable()
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "title": _("Connection successful"),
                "message": _("Mail Sync is enabled for %s.", self.email),
                "sticky": False,
                "next": {"type": "ir.actions.act_window_close"},
            },
        }

    def _enable(self):
        """Mark the mailbox ready to sync (the single place for the company mailbox limit and
        the Pending queue)."""
        self.sudo().with_context(mail_sync_keep_state=True).write({
            "state": "enabled",
            "error_since": False,
            "last_error": False,
            "next_sync": False,
        })

    # ------------------------------------------------------------------ sync
    def action_sync_now(self):
        """Button (owner): sync this mailbox now; a failure is raised to the user."""
        self.ensure_one()
        self.check_access("write")
        return self._sync_now(raise_on_error=True)

    def _sync_now(self, raise_on_error):
        """Sync now for Sync now and Retry now (the caller checked access), under the
        mailbox's sync lock. A failure is raised (``raise_on_error``) or shown as a warning.
        Returns the notification action."""
        self.ensure_one()
        mailbox = self.sudo()
        if not self._try_sync_lock(self.id, until_commit=True):
            raise UserError(_("A sync of this mailbox is already running."))
        if not mailbox._syncable():
            raise UserError(_("Test the connection first: Mail Sync is not enabled for %s.",
                              self.email))
        report = mailbox._sync(raise_on_error=raise_on_error)
        if report is None:
            notification = {"type": "warning", "title": _("Mail Sync failed"),
                            "message": "\n".join(filter(None, [mailbox.last_error,
                                                               mailbox.log_ids[:1].fix]))}
        else:
            notification = {"type": "success", "title": _("Mail Sync"),
                            "message": _("%(count)s email(s) recorded.", count=report.recorded)}
        notification.update(sticky=False, next={"type": "ir.actions.client",
                                                "tag": "soft_reload"})
        return {"type": "ir.actions.client", "tag": "display_notification",
                "params": notification}

    def _facts_in_use(self):
        """The SyncFacts of this mailbox's running sync (read in one query with the others of
        its batch, see mail_sync_mailbox_prefetch), or None outside a sync."""
        facts = self.env.context.get("mail_sync_facts")
        return facts if facts is not None and facts.mailbox_id == self.id else None

    def _folder_states(self):
        self.ensure_one()
        facts = self._facts_in_use()
        if facts is not None:
            return [FolderState(name=name, role=role, uidvalidity=uidvalidity or None,
                                last_uid=last_uid or 0)
                    for _id, name, role, uidvalidity, last_uid in facts.folders]
        return [
            FolderState(name=folder.name, role=folder.role,
                        uidvalidity=folder.uidvalidity or None, last_uid=folder.last_uid or 0)
            for folder in self.folder_ids.sorted("id")
        ]

    def _folder_record(self, state, cache):
        """The mail.sync.folder row of the engine's ``state`` (created on first sight)."""
        folder = cache.get(state.name)
        if folder is None:
            facts = self._facts_in_use()
            known = [row[0] for row in facts.folders if row[1] == state.name] if facts else []
            if known:
                folder = self.env["mail.sync.folder"].sudo().browse(known[0])
            else:
                folder = self.folder_ids.filtered(lambda f: f.name == state.name)[:1]
            if not folder:
                folder = self.env["mail.sync.folder"].sudo().create({
                    "mailbox_id": self.id, "name": state.name, "role": state.role,
                    "uidvalidity": state.uidvalidity or 0, "last_uid": 0,
                })
            cache[state.name] = folder
        return folder

    def _sync(self, raise_on_error=False, deadline=None):
        """Sync this one mailbox. Runs as superuser (the caller checked access).

        Each group of messages the engine hands over is recorded with its folder cursor in one
        savepoint, committed at once when ``mail_sync_auto_commit`` is in the context (cron,
        not tests); a message that cannot be read or recorded is skipped in that same
        transaction (``mail.sync.skipped``, an error-log line) and the others go on. A failure
        of the mailbox puts it in Error and writes the error log; it is raised only when
        ``raise_on_error`` (manual run). Returns the engine's SyncReport, or None on failure.
        """
        self.ensure_one()
        crashpoint.reached("sync_start", self.id)
        run = SyncRun(self, auto_commit=self.env.context.get("mail_sync_auto_commit", False))
        matcher = self.env["mail.sync.matcher"]

        def match(headers):
            crashpoint.reached("headers", self.id)
            return matcher._match(self, headers, run.own)

        try:
            config = self._mail_config()
            run.secrets = [s for s in (config.password, config.access_token) if s]
            folders = self._folder_states() or None
            run.stored.update((fs.name, (fs.uidvalidity or 0, fs.last_uid))
                              for fs in folders or ())
            if folders is None:
                # First sync: discover the folders and create all their cursor rows now, so that
                # they are committed with the first batch. Else a crash after that batch would
                # leave the other folders unknown, and never synced (found by the crash test).
                from ..mailsync.session import ImapSession

                with ImapSession(config) as discovery:
                    folders = discovery.discover_folders()
                for state in folders:
                    self._folder_record(state, run.folders)
                    run.stored[state.name] = (state.uidvalidity or 0, 0)
            skip_uids, suspects = self._crash_recovery(folders, run)
            since = fields.Datetime.now() - timedelta(days=self.sync_days or 0) \
                if self.sync_days else None
            quota = self._sync_quota()
            policy = self.env.context.get("mail_sync_policy")
            if policy is not None:
                policy.quota = quota  # no lead created for mail beyond the daily cap
            states, report = sync.sync_mailbox(
                config, folders, matcher=match,
                recorder=lambda fs, items, last: self._record_batch(run, fs, items, last),
                since=since, batch_size=self._get_param("fetch_batch_size", 200),
                deadline=deadline, quota=quota, limits=self._sync_limits(),
                skip_uids=skip_uids, suspects=suspects,
                before_bodies=lambda fs, uids: self._mark_inflight(run, fs, uids),
                on_errors=lambda fs, errs: run.pending_errors.extend(errs))
            # Folders seen without any batch (empty) still get their cursor row.
            # (Compared with what this run read or wrote: an idle poll reads no folder row.)
            for state in states:
                if state.name in run.stored:
                    uidvalidity, last_uid = run.stored[state.name]
                else:
                    folder = self._folder_record(state, run.folders)
                    uidvalidity, last_uid = folder.uidvalidity, folder.last_uid
                vals = {}
                if (state.uidvalidity or 0) != uidvalidity:
                    vals["uidvalidity"] = state.uidvalidity or 0
                if state.last_uid > last_uid or "uidvalidity" in vals:
                    vals["last_uid"] = state.last_uid
                if vals:
                    self._folder_record(state, run.folders).write(vals)
                    run.stored[state.name] = (state.uidvalidity or 0, state.last_uid)
        except Exception as exc:  # noqa: BLE001 - one mailbox never stops the others
            if run.auto_commit:
                self.env.cr.rollback()
            sync_error = errors.classify(exc, host=self.imap_host, port=self.imap_port,
                                         provider=self.provider, secrets=self._secrets())
            if not isinstance(exc, errors.SyncError):
                _logger.exception("Mail Sync: unexpected failure syncing mailbox %s", self.id)
            self._sync_failed(sync_error)
            if raise_on_error:
                raise UserError(self._user_error(sync_error)) from None
            return None
        now = fields.Datetime.now()
        self._write_outcome({
            "state": "enabled",
            "last_sync": now,
            "last_success": now,
            "last_error": False,
            "error_since": False,
            # Cut by the time budget: due again at once, so that the next run continues.
            "next_sync": False if report.stopped_early else now + timedelta(
                seconds=self._get_param("min_interval", 60)),
        })
        if run.suspects:
            self._prune_suspects(run)
        # Honest counts: what reached the database (a copy met twice is one email).
        report.recorded, report.entries = run.recorded
        folder_errors = [error for error in report.errors if error.uid is None]
        for error in folder_errors:  # message-level ones were logged with their batch
            self.env["mail.sync.log"].sudo()._log(self, error, secrets=run.secrets)
        _logger.info(
            "Mail Sync: mailbox %s synced: %s folder(s), %s header(s), %s matched, "
            "%s email(s) recorded (%s chatter entries), %s skipped%s", self.id,
            report.folders, report.headers_seen, report.matched, report.recorded,
            report.entries, run.skipped,
            " (stopped at the time limit)" if report.stopped_early else "")
        crashpoint.reached("sync_end", self.id)
        return report

    def _record_batch(self, run, folder_state, items, new_last_uid):
        """The engine's recorder: ``items`` recorded (each bad one isolated and skipped), the
        messages the engine could not read skipped, the folder cursor moved — in one savepoint,
        committed at once under auto-commit. ``new_last_uid`` None: no cursor (a retry, late
        linking)."""
        crashpoint.reached("parsed", self.id)
        registry = self.env["mail.sync.message"].sudo()
        with self.env.cr.savepoint():
            folder = self._folder_record(folder_state, run.folders)
            if new_last_uid is not None and folder.uidvalidity \
                    and folder.uidvalidity != (folder_state.uidvalidity or 0):
                # A new UIDVALIDITY: the skipped UIDs of the old one mean nothing any more.
                self.env["mail.sync.skipped"].sudo().search([
                    ("folder_id", "=", folder.id),
                    ("uidvalidity", "!=", folder_state.uidvalidity or 0)]).unlink()
            recorded, failures, _savepoints = registry._record_isolated(
                self, folder, items, run.own)
            crashpoint.reached("recorded", self.id)
            if new_last_uid is not None:
                cursor = (folder_state.uidvalidity or 0, max(new_last_uid or 0, 0))
                folder.write({"uidvalidity": cursor[0], "last_uid": cursor[1]})
                run.stored[folder_state.name] = cursor
            policy = self.env.context.get("mail_sync_policy")  # the matcher's own errors
            if policy is not None and policy.quota is not None:
                policy.quota -= recorded.emails
            if policy is not None and policy.errors:
                run.pending_errors += [e for e in policy.errors if e.folder == folder.name]
                policy.errors = [e for e in policy.errors if e.folder != folder.name]
            skipped, run.pending_errors = run.pending_errors + failures, []
            self._skip_messages(run, folder, skipped)
            self._batch_done(run, recorded.emails)
            run.recorded += recorded
        crashpoint.reached("before_commit", self.id)
        if run.auto_commit:
            self.env.cr.commit()
            crashpoint.reached("committed", self.id)
        return recorded

    def _skip_messages(self, run, folder, sync_errors):
        """A row in the skipped messages and an error-log line for each message-level error."""
        Skipped = self.env["mail.sync.skipped"].sudo()
        Log = self.env["mail.sync.log"].sudo()
        for error in sync_errors:
            if error.uid is None:
                continue
            row = Skipped._remember(self, folder, error)
            Log._log_skipped(self, error, row, secrets=run.secrets)
            run.skipped += 1
            run.failed.setdefault(folder.name, set()).add(error.uid)

    def _batch_done(self, run, recorded):
        """After a batch: the recorded count, and the in-flight mark of the batch cleared (its
        messages are recorded or skipped: no longer in flight). One UPDATE."""
        if not recorded and not run.inflight:
            return
        self.flush_recordset(["synced_count", "sync_inflight"])
        self.env.cr.execute(SQL(
            "UPDATE mail_sync_mailbox SET synced_count = COALESCE(synced_count, 0) + %s, "
            "sync_inflight = NULL WHERE id = %s", recorded, self.id))
        self.invalidate_recordset(["synced_count", "sync_inflight"])
        run.inflight = False

    # ------------------------------------------------------------------ crash safety
    # A message that kills the worker (memory, time limit) must not stop the mailbox: before
    # the bodies of a group are fetched, their UIDs are committed as "in flight"; the batch's
    # own commit clears the mark. A sync that finds a mark left behind knows the previous one
    # died with those messages in flight: each counts one death (``sync_suspects``) and is read
    # alone from then on; a message in flight at two deaths is skipped ("crashed"). The cron
    # claims mailboxes with a mark after the others, so they never starve the rest.

    def _mark_inflight(self, run, folder_state, uids):
        """Before the bodies of ``uids`` are fetched: remember them, committed."""
        mark = {"folder": folder_state.name, "uidvalidity": folder_state.uidvalidity or 0,
                "uids": list(uids)}
        self.flush_recordset(["sync_inflight"])
        self.env.cr.execute(SQL("UPDATE mail_sync_mailbox SET sync_inflight = %s WHERE id = %s",
                                json.dumps(mark), self.id))
        self.invalidate_recordset(["sync_inflight"])
        run.inflight = True
        if run.auto_commit:
            self.env.cr.commit()
        crashpoint.reached("bodies", self.id, uids=uids, folder=folder_state.name)

    def _prune_suspects(self, run):
        """After a successful sync: forget the suspects the cursors went past."""
        kept = {}
        for key, deaths in run.suspects.items():
            name = key.partition(":")[2]
            last_uid = run.stored.get(name, (0, 0))[1]
            deaths = {uid: n for uid, n in deaths.items() if int(uid) > last_uid}
            if deaths:
                kept[key] = deaths
        if kept != run.suspects:
            self.flush_recordset(["sync_suspects"])
            self.env.cr.execute(SQL("UPDATE mail_sync_mailbox SET sync_suspects = %s "
                                    "WHERE id = %s", json.dumps(kept) if kept else None,
                                    self.id))
            self.invalidate_recordset(["sync_suspects"])
            run.suspects = kept

    def _crash_recovery(self, folders, run=None):
        """``(skip_uids, suspects)`` for the engine from the deaths of earlier syncs (see
        above); the mark left by the last one, if any, is counted and cleared."""
        self.ensure_one()
        facts = self._facts_in_use()
        inflight = facts.inflight if facts is not None else self.sync_inflight
        suspects = dict((facts.suspects if facts is not None else self.sync_suspects) or {})
        validity = {fs.name: fs.uidvalidity or 0 for fs in folders}
        if inflight:
            key = f"{inflight.get('uidvalidity') or 0}:{inflight.get('folder')}"
            deaths = dict(suspects.get(key) or {})
            for uid in inflight.get("uids") or ():
                deaths[str(uid)] = deaths.get(str(uid), 0) + 1
            suspects[key] = deaths
            _logger.warning("Mail Sync: the previous sync of mailbox %s stopped while reading "
                            "%s message(s) of %s: they are read one by one now", self.id,
                            len(inflight.get("uids") or ()), inflight.get("folder"))
        # Only the current UIDVALIDITY of a known folder (or any, before its first batch was
        # stored), and UIDs above its cursor, matter.
        cursors = {fs.name: fs.last_uid for fs in folders}
        kept = {}
        for key, deaths in suspects.items():
            uidvalidity, _sep, name = key.partition(":")
            if name in validity and validity[name] in (0, int(uidvalidity or 0)):
                deaths = {uid: n for uid, n in deaths.items() if int(uid) > cursors[name]}
                if deaths:
                    kept[key] = deaths
        if inflight or kept != suspects:
            self.flush_recordset(["sync_inflight", "sync_suspects"])
            self.env.cr.execute(SQL(
                "UPDATE mail_sync_mailbox SET sync_inflight = NULL, sync_suspects = %s "
                "WHERE id = %s", json.dumps(kept) if kept else None, self.id))
            self.invalidate_recordset(["sync_inflight", "sync_suspects"])
        if run is not None:
            run.suspects = kept
        skip_uids, alone = {}, {}
        reason = ("crashed", "the sync stopped twice while reading this message")
        for key, deaths in kept.items():
            name = key.partition(":")[2]
            for uid, count in deaths.items():
                if count >= 2:
                    skip_uids.setdefault(name, {})[int(uid)] = reason
                else:
                    alone.setdefault(name, set()).add(int(uid))
        return skip_uids, alone

    # Written by every sync; nothing reacts to them but the cron's schedule.
    TIMESTAMP_FIELDS = ("last_sync", "last_success", "next_sync")

    def _write_outcome(self, vals):
        """Write the sync outcome ``vals``, only the fields whose value changes. When those are
        timestamps only (an enabled mailbox synced again: every idle poll) it is one UPDATE with
        no ORM write (no write overrides to run, no ``SELECT now()`` for ``write_date``)."""
        self.ensure_one()
        fields_ = self._fields
        vals = {name: value for name, value in vals.items() if fields_[name].convert_to_record(
            fields_[name].convert_to_cache(value, self), self) != self[name]}
        if not vals:
            return
        if set(vals) - set(self.TIMESTAMP_FIELDS):
            self.sudo().write(vals)
            return
        self.flush_recordset(list(vals))
        columns = sorted(vals)
        self.env.cr.execute(
            "UPDATE mail_sync_mailbox SET %s, write_uid = %%s, "
            "write_date = (now() AT TIME ZONE 'UTC') WHERE id = %%s"
            % ", ".join(f'"{name}" = %s' for name in columns),
            [vals[name] or None for name in columns] + [self.env.uid, self.id])
        self.invalidate_recordset(columns + ["write_uid", "write_date"])

    def _sync_quota(self):
        """How many more messages this run may record (None: no limit). Extension point of
        the daily cap (mail_sync_mailbox_health)."""
        return None

    def _sync_limits(self):
        """What one message may cost (the company's limits; from the sync's prefetched facts
        when syncing)."""
        self.ensure_one()
        facts = self._facts_in_use()
        if facts is not None:
            return facts.limits
        return self.sudo().company_id._mail_sync_limits()

    def _sync_failed(self, sync_error):
        """Error state + error-log entry for a failed sync of this mailbox (also for a failed
        send through it, ``mail_sync_sending`` in the context: then no sync was attempted)."""
        self.ensure_one()
        now = fields.Datetime.now()
        if not self.env.context.get("mail_sync_sending"):
            # A failure, not a death: what was in flight was rolled back, not fatal.
            self.flush_recordset(["sync_inflight"])
            self.env.cr.execute(SQL(
                "UPDATE mail_sync_mailbox SET sync_inflight = NULL WHERE id = %s "
                "AND sync_inflight IS NOT NULL", self.id))
            self.invalidate_recordset(["sync_inflight"])
        sending = self.env.context.get("mail_sync_sending")
        if not sending:
            _logger.warning("Mail Sync: sync of mailbox %s failed: %s", self.id, sync_error)
        self.env["mail.sync.log"].sudo()._log(self, sync_error)
        vals = {
            "state": "error",
            "last_sync": now,
            "last_error": str(sync_error),
            "error_since": self.error_since or now,
            "next_sync": now + timedelta(seconds=self._get_param("min_interval", 60)),
        }
        if sending:
            del vals["last_sync"]
        self.sudo().write(vals)

    # ------------------------------------------------------------------ cron
    @api.model
    def _due_domain_sql(self):
        """SQL condition of a mailbox the cron may sync now (extension point for back-off)."""
        return "state IN %(states)s AND active AND (next_sync IS NULL OR next_sync <= %(now)s)"

    @api.model
    def _claim(self, limit, exclude_ids):
        """Ids of up to ``limit`` due mailboxes, oldest sync first, that no other worker holds.
        A mailbox whose last sync died in the middle of a batch (``sync_inflight``) comes after
        all the others: one bad message never starves the rest.

        ``FOR UPDATE SKIP LOCKED`` protects the claim itself; a session-level advisory lock then
        keeps the mailbox ours across the per-batch commits, until ``_release`` (or until the
        worker's database session ends: a killed worker leaves nothing locked). Mailboxes whose
        advisory lock another worker holds are left out of the query, so that they do not use
        up ``limit`` (their row lock ends at that worker's first commit).

        Odoo's transactions are REPEATABLE READ: a row that another worker updated after this
        transaction's snapshot makes ``FOR UPDATE`` fail with a serialization error; the cron
        (auto-commit) then starts a new transaction and claims again.
        """
        query = f"""
            SELECT id FROM mail_sync_mailbox
             WHERE {self._due_domain_sql()} AND NOT (id = ANY(%(exclude)s))
               AND NOT (id = ANY(ARRAY(
                   SELECT objid::bigint FROM pg_locks
                    WHERE locktype = 'advisory' AND classid = %(key)s::oid AND objsubid = 2
                      AND granted AND pid <> pg_backend_pid()
                      AND database = (SELECT oid FROM pg_database
                                       WHERE datname = current_database()))))
          ORDER BY sync_inflight IS NOT NULL, last_sync ASC NULLS FIRST, id
             LIMIT %(limit)s
               FOR UPDATE SKIP LOCKED
        """
        testing = getattr(threading.current_thread(), "testing", False)
        for attempt in range(5):
            try:
                with mute_logger("odoo.sql_db"), self.env.cr.savepoint(flush=False):
                    self.env.cr.execute(query, {
                        "states": SYNCING_STATES, "now": fields.Datetime.now(),
                        "exclude": list(exclude_ids), "limit": limit, "key": ADVISORY_LOCK_KEY})
                    rows = self.env.cr.fetchall()
                break
            except psycopg2.errors.SerializationFailure:
                if testing or attempt == 4:
                    raise
                self.env.cr.rollback()  # a new snapshot (nothing of this run is lost)
                time.sleep(0.05 * (attempt + 1))
        return [mailbox_id for (mailbox_id,) in rows if self._try_sync_lock(mailbox_id)]

    @api.model
    def _release(self, mailbox_ids):
        for mailbox_id in mailbox_ids:
            self._sync_unlock(mailbox_id)

    # The one lock of a mailbox's sync, taken by every path that syncs it or changes what a
    # sync relies on: the cron (_claim), fast arrival, late linking, Sync now / Retry now and
    # disconnect. A lock that this database session already holds is granted again.
    @api.model
    def _try_sync_lock(self, mailbox_id, until_commit=False):
        """Take the sync lock of mailbox ``mailbox_id`` without waiting; False when another
        session holds it (a sync or a disconnect of that mailbox is running).

        ``until_commit``: a transaction-level lock that the commit or rollback releases
        (buttons and disconnect: one transaction; nothing to release, nothing left behind by an
        error). Else a session-level lock, across the per-batch commits of the cron, until
        ``_sync_unlock`` (or until the database session ends: a killed worker holds nothing).
        """
        function = "pg_try_advisory_xact_lock" if until_commit else "pg_try_advisory_lock"
        self.env.cr.execute(f"SELECT {function}(%s, %s)", (ADVISORY_LOCK_KEY, mailbox_id))
        return self.env.cr.fetchone()[0]

    @api.model
    def _sync_unlock(self, mailbox_id):
        """Release the session-level lock of ``_try_sync_lock``."""
        self.env.cr.execute("SELECT pg_advisory_unlock(%s, %s)", (ADVISORY_LOCK_KEY, mailbox_id))

    def _syncable(self):
        """Whether this mailbox is still to be synced, read again from the database once its
        sync lock is held: it may have been disconnected, archived or changed since it was
        picked (a claim's row lock ends at the first commit of the run)."""
        self.ensure_one()
        self.invalidate_recordset(["state", "active"])
        return self.active and self.state in SYNCING_STATES

    @api.model
    def _count_due(self):
        self.env.cr.execute(
            f"SELECT count(*) FROM mail_sync_mailbox WHERE {self._due_domain_sql()}",
            {"states": SYNCING_STATES, "now": fields.Datetime.now()})
        return self.env.cr.fetchone()[0]

    @api.model
    def _cron_sync(self, batch_size=None, time_budget=None):
        """Scheduled action: sync due mailboxes, oldest first, within ``time_budget`` seconds.

        Commits after each batch and each mailbox (not in tests); a failing mailbox goes to
        Error and the log, and the others go on.
        """
        batch_size = batch_size or self._get_param("cron_batch_size", 20)
        time_budget = time_budget or self._get_param("cron_time_budget", 240)
        auto_commit = not getattr(threading.current_thread(), "testing", False)
        start = time.monotonic()
        deadline = start + time_budget
        self.flush_model()
        claimed = self._claim(batch_size, [])
        crashpoint.reached("claimed")
        done = 0
        try:
            Mailbox = self.sudo().with_context(mail_sync_auto_commit=auto_commit)
            batch = tuple(claimed)  # one prefetch for the batch (mail_sync_mailbox_prefetch)
            for index, mailbox_id in enumerate(claimed):
                if time.monotonic() >= deadline:
                    break
                mailbox = Mailbox.browse(mailbox_id).with_prefetch(batch)
                try:
                    if not mailbox._syncable():
                        _logger.info("Mail Sync: mailbox %s no longer syncs (disconnected "
                                     "since it was claimed): skipped", mailbox_id)
                    elif auto_commit:
                        mailbox._sync(deadline=deadline)
                        done += 1
                    else:
                        with self.env.cr.savepoint():
                            mailbox._sync(deadline=deadline)
                        done += 1
                except Exception:  # noqa: BLE001 - never let one mailbox stop the cron
                    _logger.exception("Mail Sync: mailbox %s could not be processed", mailbox_id)
                    if auto_commit:
                        self.env.cr.rollback()
                    done += 1
                self._release([mailbox_id])
                claimed[index] = None
                if auto_commit:
                    self.env.cr.commit()
        finally:
            self._release([mailbox_id for mailbox_id in claimed if mailbox_id])
        remaining = self._count_due()
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        if auto_commit:
            self.env.cr.commit()
        return done

    # ------------------------------------------------------------------ actions
    def action_open_logs(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": _("Mail Sync errors"),
            "res_model": "mail.sync.log",
            "view_mode": "list,form",
            "domain": [("mailbox_id", "=", self.id)],
        }

    def action_open_skipped(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": _("Skipped messages"),
            "res_model": "mail.sync.skipped",
            "view_mode": "list,form",
            "domain": [("mailbox_id", "=", self.id)],
        }

    @api.model
    def _check_can_manage(self, user):
        """Opening ``user``'s mailbox: their own, or anyone's for Mail Sync managers (who read
        it) — setting one up for someone else is for administrators (``create``)."""
        if user != self.env.user and not self.env.user.has_group(
                "crm_mail_sync.group_mail_sync_manager"):
            raise AccessError(_("You can only set up your own mailbox."))
