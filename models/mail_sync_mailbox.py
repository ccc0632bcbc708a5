# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""One user's mailbox: connection settings, status, and the sync of that mailbox.

The protocol work is the engine's (``..mailsync``); this model builds the engine's
``MailboxConfig``, runs the sync pipeline (``_sync``: prepare → engine → outcome), records what
the engine hands over, keeps the status, seats and daily cap, sends through the mailbox (Smart
Mail), and runs the scheduled actions (``_cron_sync``, ``_cron_fast_arrival``). ARCHITECTURE.md
gives the stages, which method owns what and where transactions begin and end.
"""

import copy
import dataclasses
import json
import logging
import threading
import time
from collections import defaultdict
from datetime import datetime, time as dtime, timedelta
from email.utils import formataddr, getaddresses

import psycopg2
import pytz
from psycopg2.errors import LockNotAvailable, SerializationFailure

from odoo import _, api, fields, models, modules
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL, config as odoo_config, email_normalize, mute_logger, split_every
from odoo.tools.translate import LazyTranslate

from ..mailsync import addresses, crashpoint, errors, oauth, sync
from ..mailsync.arrival import changed_folders
from ..mailsync.parse import normalize_message_id
from ..mailsync.netguard import is_loopback
from ..mailsync.session import ImapSession, smtp_connection
from ..mailsync.types import Endpoint, FolderState, MailboxConfig, SyncReport
from . import mail_sync_oauth_mixin  # noqa: F401 - the mixin this model inherits, defined first
from .cron_wakeup import schedule_wakeup
from .mail_sync_message import NOT_POISON, address_lines
from .mail_sync_oauth_mixin import TOKEN_CACHE
from .own_domains import email_domain, own_domains_changed
from .res_company import limits_from
from .states import (
    BILLABLE_STATES,
    CONFIGURED_STATES,
    CONNECTED_STATES,
    SEAT_STATES,
    SHARING,
    SYNCING_STATES,
)
from .sync_run import SyncFacts, SyncPolicy, SyncRun, naive_utc

_logger = logging.getLogger(__name__)

SECURITY = [("ssl", "SSL/TLS"), ("starttls", "STARTTLS"), ("none", "None (local only)")]

# Translated where shown (state_description: env._); English when built into the field's help
# at import, where no language is known.
_lt = LazyTranslate(__name__, default_lang="en_US")

# The product's exact words.
STATE_HELP = {
    "draft": _lt("Mail Sync is not configured for this user account yet."),
    "enabled": _lt("Mail Sync was successfully enabled for this user account."),
    "error": _lt(
        "An error occurred when attempting to sync the user account's email (for "
        "example an invalid email address or a connectivity issue)."
    ),
    "pending": _lt(
        "The account waits for a raise in the company's mailbox sync limit, or for "
        "someone else to disconnect so that the company is below the limit."
    ),
    "connection": _lt(
        "Unable to connect for two days due to errors. No longer trying to sync. "
        "Not billed while this lasts."
    ),
}

# The servers of the providers Connect with Google / Microsoft knows (mailsync.oauth).
PROVIDER_DEFAULTS = {
    provider.config_provider: {
        "imap_host": provider.imap.host,
        "imap_port": provider.imap.port,
        "imap_security": provider.imap.security,
        "smtp_host": provider.smtp.host,
        "smtp_port": provider.smtp.port,
        "smtp_security": provider.smtp.security,
    }
    for provider in (oauth.GOOGLE, oauth.MICROSOFT)
}
# Gmail's own domains (personal accounts); other domains on Gmail are Google Workspace.
GMAIL_DOMAINS = {"gmail.com", "googlemail.com"}
OUTLOOK_DOMAINS = {"outlook.com", "hotmail.com", "live.com", "msn.com"}

# The network rule (mailsync.netguard): hosts, addresses and networks an administrator allowed.
ALLOWED_NETWORKS_PARAM = "crm_mail_sync.allowed_networks"
# Test connection never waits longer than this for one server (seconds).
TEST_TIMEOUT = 30.0

# Session-level advisory lock namespace ("MSYN") held while a mailbox syncs: row locks end at
# the first commit, this one lasts until the sync of that mailbox is over (or the worker dies).
ADVISORY_LOCK_KEY = 0x4D53594E

# Status, seat, daily-cap and sync bookkeeping: billing and the Pending queue depend on them.
# Written only by Mail Sync itself (sync, connection test, seat queue, disconnect, Smart Mail:
# as superuser), never by a client: ``create``/``write`` refuse them unless ``env.su``.
PROTECTED_FIELDS = frozenset(
    {
        "state",
        "last_sync",
        "last_success",
        "next_sync",
        "last_error",
        "error_since",
        "synced_count",
        "folder_ids",
        "log_ids",
        "skipped_ids",
        "sync_inflight",
        "sync_suspects",
        "sharing",
        "pending_since",
        "holds_seat",
        "error_count",
        "cap_day",
        "cap_base",
        "smtp_sent_date",
        "smtp_sent_count",
        "fast_checked_at",
    }
)

# Health: errors without one successful sync for this long: Connection.
CONNECTION_AFTER = timedelta(hours=48)
BACKOFF_INITIAL = 5 * 60  # seconds; crm_mail_sync.backoff_initial
BACKOFF_MAX = 2 * 60 * 60  # seconds; crm_mail_sync.backoff_max

# Sync facts: at most this many mailboxes' facts per query (the cron claims 20 by default).
PREFETCH_LIMIT = 100
STORE_KEY = "mail_sync_prefetch"

# Smart Mail: the providers' daily sending limits (recipients).
DAILY_LIMIT_GMAIL = 500
DAILY_LIMIT_WORKSPACE = 2000
DAILY_LIMIT_OUTLOOK = 10000
# Providers that file SMTP-sent mail into the Sent folder by themselves.
PROVIDERS_KEEPING_SENT = ("gmail", "outlook")
FALLBACK_PARAM = "crm_mail_sync.smart_mail_fallback"

# Cron workers: the shipped sync action, copied to make ``crm_mail_sync.cron_workers`` of them.
CRON_XMLID = "crm_mail_sync.ir_cron_mail_sync"
MAX_CRON_WORKERS = 64
# Odoo runs a job that reports remaining work up to this many times in a row (ir_cron.py).
MAX_RUNS_PER_ROUND = 10
FAST_CRON = "crm_mail_sync.ir_cron_mail_sync_fast"
LATE_LINK_CRON = "crm_mail_sync.ir_cron_mail_sync_late_link"

# The owner's top-bar link is told when their mailbox becomes configured or stops being so.
SYSTRAY_NOTIFICATION = "crm_mail_sync/systray"


class MailSyncMailbox(models.Model):
    _name = "mail.sync.mailbox"
    _inherit = ["mail.sync.oauth.mixin"]
    _description = "Mail Sync mailbox"
    _order = "user_id, id"
    _check_company_auto = True
    _rec_name = "email"

    active = fields.Boolean(default=True)
    user_id = fields.Many2one(
        "res.users",
        required=True,
        index=True,
        ondelete="cascade",
        default=lambda self: self.env.user,
        domain="[('share', '=', False)]",
    )
    company_id = fields.Many2one(
        "res.company", required=True, index=True, default=lambda self: self.env.company
    )
    email = fields.Char("Email address", required=True)
    provider = fields.Selection(
        [
            ("generic", "Other (IMAP)"),
            ("gmail", "Gmail / Google Workspace"),
            ("outlook", "Outlook / Microsoft 365"),
        ],
        required=True,
        default="generic",
    )
    auth_method = fields.Selection(
        [("password", "Password / app password"), ("oauth", "OAuth")],
        string="Authentication",
        required=True,
        default="password",
    )
    imap_host = fields.Char("IMAP server")
    imap_port = fields.Integer("IMAP port", default=993)
    imap_security = fields.Selection(SECURITY, string="IMAP security", default="ssl", required=True)
    imap_login = fields.Char("IMAP login", help="Usually the email address.")
    smtp_host = fields.Char("SMTP server")
    smtp_port = fields.Integer("SMTP port", default=465)
    smtp_security = fields.Selection(SECURITY, string="SMTP security", default="ssl", required=True)
    smtp_login = fields.Char("SMTP login", help="Leave empty to use the IMAP login.")
    sync_days = fields.Integer(
        "Sync history (days)",
        default=30,
        help="How far back to sync on first connection (0: the whole mailbox).",
    )

    # Write-only: never read back (always empty), encrypted into mail.sync.credential.
    password = fields.Char(
        compute="_compute_password",
        inverse="_inverse_password",
        copy=False,
        help="Your mailbox password or app password. It is stored encrypted and never shown.",
    )
    has_password = fields.Boolean(compute="_compute_has_password")
    state = fields.Selection(
        [
            ("draft", "Not connected"),
            ("enabled", "Enabled"),
            ("error", "Error"),
            ("pending", "Pending"),
            ("connection", "Connection"),
        ],
        string="Status",
        default="draft",
        required=True,
        readonly=True,
        copy=False,
        index=True,
        help="\n".join(
            f"{label}: {STATE_HELP[key]}"
            for key, label in (
                ("enabled", "Enabled"),
                ("error", "Error"),
                ("pending", "Pending"),
                ("connection", "Connection"),
            )
        ),
    )
    state_description = fields.Char("Status meaning", compute="_compute_state_description")
    last_sync = fields.Datetime("Last sync", readonly=True, copy=False)
    last_success = fields.Datetime("Last successful sync", readonly=True, copy=False)
    next_sync = fields.Datetime(
        "Next sync",
        readonly=True,
        copy=False,
        help="The mailbox is not synced before this time (empty: at the next run).",
    )
    last_error = fields.Text("Last error", readonly=True, copy=False)
    error_since = fields.Datetime("In error since", readonly=True, copy=False)
    folder_ids = fields.One2many(
        "mail.sync.folder", "mailbox_id", string="Folders", readonly=True, copy=False
    )
    synced_count = fields.Integer("Synced emails", readonly=True, copy=False)
    log_ids = fields.One2many(
        "mail.sync.log", "mailbox_id", string="Errors", readonly=True, copy=False
    )
    skipped_ids = fields.One2many("mail.sync.skipped", "mailbox_id", readonly=True, copy=False)
    skipped_count = fields.Integer(
        "Skipped messages",
        compute="_compute_skipped_count",
        help="Messages a sync skipped (unreadable, over a limit, "
        "could not be recorded). Retry skipped messages syncs "
        "them again.",
    )
    sharing = fields.Selection(
        SHARING,
        string="Synced emails shared with",
        readonly=True,
        copy=False,
        help="Who sees the emails this mailbox records: the owner's choice (My Profile ▸ "
        "Mail Sync), else the company's default. The owner and Mail Sync managers always "
        "see them whole.",
    )

    # Crash safety (see _crash_recovery): the UIDs being read, and how many syncs died with
    # each suspect in flight.
    sync_inflight = fields.Json("Messages in flight", readonly=True, copy=False)
    sync_suspects = fields.Json("Messages read alone", readonly=True, copy=False)

    _sql_constraints = [
        (
            "user_company_unique",
            "unique(user_id, company_id)",
            "A user has one Mail Sync mailbox per company.",
        ),
        (
            "imap_port_range",
            "CHECK(imap_port IS NULL OR (imap_port >= 0 AND imap_port <= 65535))",
            "The IMAP port must be between 1 and 65535.",
        ),
        (
            "smtp_port_range",
            "CHECK(smtp_port IS NULL OR (smtp_port >= 0 AND smtp_port <= 65535))",
            "The SMTP port must be between 1 and 65535.",
        ),
        (
            "sync_days_positive",
            "CHECK(sync_days IS NULL OR sync_days >= 0)",
            "The sync history cannot be negative.",
        ),
    ]
    pending_since = fields.Datetime(
        "Pending since",
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="When this mailbox asked for a seat of the company's mailbox limit: the Pending "
        "queue is served in this order.",
    )
    holds_seat = fields.Boolean(
        "Holds a seat",
        readonly=True,
        copy=False,
        help="Counts against the company's mailbox limit until disconnected.",
    )
    error_count = fields.Integer(
        "Failed attempts",
        readonly=True,
        copy=False,
        help="Failed syncs in a row; the retry delay doubles with each one.",
    )
    cap_day = fields.Date(
        "Cap day",
        readonly=True,
        copy=False,
        help="The owner's local day the daily count refers to.",
    )
    cap_base = fields.Integer("Synced before the cap day", readonly=True, copy=False)
    synced_today = fields.Integer(
        "Emails synced today",
        compute="_compute_synced_today",
        help="Emails recorded today (in the user's timezone).",
    )
    daily_cap = fields.Integer(
        "Daily cap",
        compute="_compute_daily_cap",
        help="Most emails synced per day for this mailbox (0: unlimited); the rest wait for "
        "the next day.",
    )
    is_billable = fields.Boolean("Billable", compute="_compute_is_billable")
    mail_sync_create_leads = fields.Boolean(
        "Create leads from new contacts",
        help="Received mail from an address that is no lead, contact or colleague creates a "
        "lead (after the never-log list and the auto-reply filter).",
    )
    exclusion_count = fields.Integer(compute="_compute_exclusion_count")
    smtp_daily_limit = fields.Integer(
        "Daily sending limit",
        compute="_compute_smtp_daily_limit",
        store=True,
        readonly=False,
        help="Most recipients this mailbox sends to per day (UTC) through Smart Mail; mail "
        "beyond it stays queued for the next day. 0: no limit. Defaults: Gmail 500, "
        "Google Workspace 2,000, Microsoft 365 10,000.",
    )
    smtp_sent_date = fields.Date("Sending day", readonly=True, copy=False)
    smtp_sent_count = fields.Integer(
        "Recipients sent today",
        readonly=True,
        copy=False,
        help="Recipients of the mail sent through this mailbox on the sending day.",
    )
    fast_checked_at = fields.Datetime("Last new-mail check", readonly=True, copy=False)

    # ------------------------------------------------------------------ computes
    def _compute_password(self):
        for mailbox in self:
            mailbox.password = False

    def _inverse_password(self):
        for mailbox in self:
            if mailbox.password:
                mailbox._set_secret("password", mailbox.password)

    def _compute_skipped_count(self):
        counts = dict(
            self.env["mail.sync.skipped"]
            .sudo()
            ._read_group([("mailbox_id", "in", self.ids)], ["mailbox_id"], ["__count"])
        )
        for mailbox in self:
            mailbox.skipped_count = counts.get(mailbox._origin, 0)

    def _compute_has_password(self):
        creds = (
            self.env["mail.sync.credential"]
            .sudo()
            .search_fetch(
                [("mailbox_id", "in", self.ids), ("kind", "=", "password")], ["mailbox_id"]
            )
        )
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
            for protocol, security, host in (
                ("imap", mailbox.imap_security, mailbox.imap_host),
                ("smtp", mailbox.smtp_security, mailbox.smtp_host),
            ):
                if security != "none" or not host or is_loopback(host):
                    continue
                if protocol == "imap":
                    message = _(
                        "An unencrypted IMAP connection is only allowed to the local machine "
                        "(localhost); choose SSL/TLS or STARTTLS for %s.",
                        host,
                    )
                else:
                    message = _(
                        "An unencrypted SMTP connection is only allowed to the local machine "
                        "(localhost); choose SSL/TLS or STARTTLS for %s.",
                        host,
                    )
                raise ValidationError(message)

    @api.constrains("user_id", "company_id")
    def _check_user_internal(self):
        for mailbox in self:
            if mailbox.user_id.share:
                raise ValidationError(_("Only internal users can sync a mailbox."))
            if mailbox.company_id not in mailbox.user_id.company_ids:
                raise ValidationError(
                    _(
                        "%(user)s does not work for %(company)s: a mailbox syncs in one of its "
                        "owner's companies.",
                        user=mailbox.user_id.name,
                        company=mailbox.company_id.name,
                    )
                )

    # ------------------------------------------------------------------ CRUD
    def _check_protected_fields(self, vals):
        """Refuse a client's value for a PROTECTED_FIELDS field (Mail Sync writes them as
        superuser)."""
        if self.env.su:
            return
        protected = sorted(PROTECTED_FIELDS.intersection(vals))
        if protected:
            raise AccessError(
                _(
                    "The status, seat, daily cap and counters of a mailbox are kept by Mail Sync "
                    "and cannot be set directly (%s). Use Test Connection, Sync now or "
                    "Disconnect.",
                    ", ".join(protected),
                )
            )

    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.su:
            for vals in vals_list:
                self._check_protected_fields(vals)
            # Nor through defaults in the context (``default_state``: grouped views send it).
            context = self.env.context
            if any(key.startswith("default_") and key[8:] in PROTECTED_FIELDS for key in context):
                # (the whole context replaced: a key dropped, not set to a value)
                kept = {
                    key: value
                    for key, value in context.items()
                    if not (key.startswith("default_") and key[8:] in PROTECTED_FIELDS)
                }
                self = self.with_context(kept)  # noqa: PLW0642  # pylint: disable=context-overridden
        if not (self.env.su or self.env.user.has_group("base.group_system")):
            for vals in vals_list:
                owner = (
                    vals.get("user_id") or self.env.context.get("default_user_id") or self.env.uid
                )
                if owner != self.env.uid:
                    raise AccessError(
                        _("Only an administrator can set up a mailbox for another user.")
                    )
        for vals in vals_list:
            if vals.get("email") and not vals.get("imap_login"):
                vals["imap_login"] = vals["email"].strip()
        mailboxes = super().create(vals_list)
        mailboxes.invalidate_recordset(["password"])  # never keep the clear value around
        mailboxes._apply_sharing()
        self._systray_notify([key[0] for key in mailboxes._systray_keys().values() if key[2]])
        if any(mailbox._own_domain_key()[0] for mailbox in mailboxes):
            own_domains_changed(self.env)
        return mailboxes

    def _check_ownership_write(self, vals):
        """A mailbox belongs to one user and one company for life: only Settings
        administrators hand it to another user or company, and only its owner changes it
        (managers act on others' mailboxes through their buttons: retry, disconnect)."""
        if self.env.su or self.env.user.has_group("base.group_system"):
            return
        if {"user_id", "company_id"} & set(vals):
            raise AccessError(
                _(
                    "Only an administrator can give a mailbox to another user or "
                    "move it to another company."
                )
            )
        others = self.filtered(lambda m: m.user_id != self.env.user)
        if others:
            raise AccessError(
                _("Only %s can change their mailbox's settings.", others[0].user_id.name)
            )

    # Where a stored secret goes, and whose it is: when one of them changes, the secrets go.
    SECRET_BINDING_FIELDS = (
        "imap_host",
        "imap_port",
        "imap_security",
        "imap_login",
        "smtp_host",
        "smtp_port",
        "smtp_security",
        "smtp_login",
        "email",
        "user_id",
        "company_id",
    )

    def _secrets_to_forget(self, vals):
        """The mailboxes of ``self`` whose server, login or owner ``vals`` really changes."""
        names = [name for name in self.SECRET_BINDING_FIELDS if name in vals]
        if not names:
            return self.browse()
        changed = self.browse()
        for mailbox in self:
            for name in names:
                field = self._fields[name]
                new = field.convert_to_record(field.convert_to_cache(vals[name], mailbox), mailbox)
                old = mailbox[name]
                if isinstance(old, str) or isinstance(new, str):
                    old, new = (old or "").strip().lower(), (new or "").strip().lower()
                if old != new:
                    changed |= mailbox
                    break
        return changed

    # Changing how to connect needs a new connection test before syncing again.
    CONNECTION_FIELDS = frozenset(
        {
            "email",
            "provider",
            "auth_method",
            "imap_host",
            "imap_port",
            "imap_security",
            "imap_login",
            "smtp_host",
            "smtp_port",
            "smtp_security",
            "smtp_login",
            "password",
            "user_id",
            "company_id",
        }
    )

    def write(self, vals):
        self._check_protected_fields(vals)
        self._check_ownership_write(vals)
        moved = self._secrets_to_forget(vals)
        # What the top-bar link and the company's own domains depend on, before the write.
        systray = (
            self._systray_keys()
            if {"state", "active", "user_id", "company_id"} & set(vals)
            else None
        )
        own_domains = (
            {m.id: m._own_domain_key() for m in self}
            if {"email", "company_id", "state", "active"} & set(vals)
            else None
        )
        res = super().write(vals)
        if moved:
            # A stored password or token is never sent to a server, or used by a user, other
            # than the ones it was entered for: changed, they must be entered again.
            self.env["mail.sync.credential"].sudo().search(
                [("mailbox_id", "in", moved.ids)]
                + ([("kind", "!=", "password")] if vals.get("password") else [])
            ).unlink()
            _logger.info(
                "Mail Sync: mailbox(es) %s changed server, login or owner: stored secrets deleted",
                moved.ids,
            )
        if "password" in vals:
            self.invalidate_recordset(["password"])  # never keep the clear value around
        # (``mail_sync_keep_state``: Mail Sync's own writes, as superuser; a client's context
        # key is ignored.)
        keep_state = self.env.su and self.env.context.get("mail_sync_keep_state")
        if self.CONNECTION_FIELDS & set(vals) and not keep_state:
            self.filtered(lambda m: m.state != "draft").sudo().with_context(
                mail_sync_keep_state=True
            ).write({"state": "draft"})
        if systray is not None:
            self._systray_changed(systray)
        if own_domains is not None and any(
            m._own_domain_key() != own_domains.get(m.id) for m in self
        ):
            own_domains_changed(self.env)
        return res

    def unlink(self):
        had_domain = any(email_domain(mailbox.email) for mailbox in self)
        configured_users = [key[0] for key in self._systray_keys().values() if key[2]]
        frees_seat = self.filtered(lambda m: m.active and m._holds_seat())
        self._drop_hidden_content()
        res = super().unlink()
        if frees_seat:
            self._trigger_promotion()
        self._systray_notify(configured_users)
        if had_domain:
            own_domains_changed(self.env)
        return res

    def read(self, fields=None, load="_classic_read"):
        """The last error in the reader's language (stored as the engine wrote it, English)."""
        return self.env["mail.sync.log"]._translate_read(
            super().read(fields, load), ("last_error",)
        )

    # ------------------------------------------------------------------ sharing
    def _drop_hidden_content(self):
        """The content these mailboxes recorded without sharing it whole goes with them: nobody
        else may read it, and its attachments (kept on the mailbox) would lose their owner."""
        messages = (
            self.env["mail.message"]
            .sudo()
            .search(
                [
                    ("mail_sync_mailbox_id", "in", self.ids),
                    ("mail_sync_visibility", "in", ("metadata", "private")),
                ]
            )
        )
        if messages:
            messages.mail_sync_attachment_ids.unlink()
            messages.write({"mail_sync_body": False})

    def _apply_sharing(self):
        """Bring ``sharing`` to the owner's choice (or the company's default) and the mail
        already recorded in line with it (``mail.message._mail_sync_set_visibility``)."""
        for mailbox in self.sudo():
            wanted = (
                mailbox.user_id.mail_sync_sharing
                or mailbox.company_id.mail_sync_sharing
                or "everyone"
            )
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
        """Every clear secret of this mailbox, to redact them from error texts (the stored ones
        and the OAuth tokens this transaction refreshed)."""
        self.ensure_one()
        values = []
        for kind in ("password", "refresh_token", "access_token"):
            try:
                value = self._get_secret(kind)
            except Exception:  # noqa: BLE001 - a missing key must not hide the real error
                value = None
            if value:
                values.append(value)
        access, _expiry, refresh = self.env.cr.cache.get(TOKEN_CACHE, {}).get(
            self.id, (None, None, None)
        )
        return values + [value for value in (access, refresh) if value and value not in values]

    # ------------------------------------------------------------------ engine config
    @api.model
    def _get_param(self, key, default):
        value = self.env["ir.config_parameter"].sudo().get_param(f"crm_mail_sync.{key}")
        try:
            return type(default)(value) if value not in (None, False, "") else default
        except (TypeError, ValueError):
            return default

    def _access_token(self):
        """The OAuth access token (XOAUTH2), or None for a password mailbox."""
        self.ensure_one()
        if self.auth_method == "oauth":
            return self._oauth_access_token()
        return None

    def _mail_config(self, facts=None):
        """The engine's ``MailboxConfig`` for this mailbox. Holds secrets: never log it."""
        self.ensure_one()
        mailbox = self.sudo()
        if not mailbox.imap_host or not mailbox.imap_port:
            raise errors.SyncError("config", "The IMAP server and port are required.")
        imap = Endpoint(mailbox.imap_host.strip(), mailbox.imap_port, mailbox.imap_security)
        smtp = None
        if mailbox.smtp_host:
            smtp = Endpoint(
                mailbox.smtp_host.strip(), mailbox.smtp_port or 465, mailbox.smtp_security
            )
        login = (mailbox.imap_login or mailbox.email or "").strip()
        access_token = mailbox._access_token() if mailbox.auth_method == "oauth" else None
        password = None
        if not access_token:
            if facts is None:
                password = mailbox._get_secret("password")
            elif facts.password_token:
                password = self.env["mail.sync.credential"].sudo()._decrypt(facts.password_token)
        if not access_token and not password:
            raise errors.SyncError(
                "config",
                "No password is stored for this mailbox.",
                host=imap.host,
                port=imap.port,
                provider=mailbox.provider,
            )
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

    def _own_addresses(self, facts=None):
        """Normalised addresses of the mailbox owner: never matched against CRM records."""
        self.ensure_one()
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
        """A SyncError as the text shown to the user (in the user's language)."""
        translated = self.env["mail.sync.log"]._translated
        if exc.kind == "auth":
            return "%s\n%s" % (
                _("Authentication failed. Please try again."),
                translated(errors.fix_for(exc.kind, exc.provider)),
            )
        return translated("%s\n%s" % (str(exc), errors.fix_for(exc.kind, exc.provider)))

    def action_test_connection(self):
        """Button (the owner): log in over IMAP, then SMTP; enable sync on success (or Pending
        when the company's mailbox limit is reached)."""
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
            _logger.info(
                "Mail Sync: connection test of mailbox %s failed: %s (%s)",
                self.id,
                exc.kind,
                errors.redact(exc.detail, self._secrets()),
            )
            # A Gmail app-password refusal offers Connect with Google.
            raise self._connection_user_error(exc) from None
        self._enable()
        params = {
            "type": "success",
            "title": _("Connection successful"),
            "message": _("Mail Sync is enabled for %s.", self.email),
            "sticky": False,
            "next": {"type": "ir.actions.act_window_close"},
        }
        if self.state == "pending":
            params.update(
                type="warning",
                message=_(
                    "The connection works, but %s is Pending: the company's mailbox limit is "
                    "reached. It starts syncing by itself as soon as a seat frees.",
                    self.email,
                ),
            )
        return {"type": "ir.actions.client", "tag": "display_notification", "params": params}

    def _enable(self):
        """A successful connection test (or OAuth connection): Enabled when the company has a
        seat for the mailbox, else Pending (keeping its place if it already waited). The single
        place for the company mailbox limit and the Pending queue."""
        now = fields.Datetime.now()
        for company in self.company_id:
            self._lock_company_seats(company)
        for mailbox in self.sudo():
            if mailbox._seat_available():
                mailbox._take_seat()
                continue
            _logger.info(
                "Mail Sync: mailbox %s is Pending (company mailbox limit reached)", mailbox.id
            )
            mailbox.with_context(mail_sync_keep_state=True).write(
                {
                    "state": "pending",
                    "pending_since": (
                        mailbox.pending_since if mailbox.state == "pending" else False
                    )
                    or now,
                    "holds_seat": False,
                    "error_since": False,
                    "last_error": False,
                    "next_sync": False,
                    "error_count": 0,
                }
            )

    def _take_seat(self):
        """Enabled, holding a seat."""
        self.sudo().with_context(mail_sync_keep_state=True).write(
            {
                "state": "enabled",
                "error_since": False,
                "last_error": False,
                "next_sync": False,
                "holds_seat": True,
                "pending_since": False,
                "error_count": 0,
            }
        )

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
        mailbox = self._lock_for_button(_("A sync of this mailbox is already running."))
        report = mailbox._sync(raise_on_error=raise_on_error)
        if report is None:
            notification = {
                "type": "warning",
                "title": _("Mail Sync failed"),
                "message": "\n".join(
                    map(
                        self.env["mail.sync.log"]._translated,
                        filter(None, [mailbox.last_error, mailbox.log_ids[:1].fix]),
                    )
                ),
            }
        else:
            notification = {
                "type": "success",
                "title": _("Mail Sync"),
                "message": _("%(count)s email(s) recorded.", count=report.recorded),
            }
        notification.update(sticky=False, next={"type": "ir.actions.client", "tag": "soft_reload"})
        return {"type": "ir.actions.client", "tag": "display_notification", "params": notification}

    def _lock_for_button(self, busy):
        """This mailbox as superuser, under its sync lock until the request's transaction ends
        (the caller checked access). UserError ``busy`` when a sync of it runs, or when it is
        not enabled."""
        if not self._try_sync_lock(self.id, until_commit=True):
            raise UserError(busy)
        mailbox = self.sudo()
        if not mailbox._syncable():
            raise UserError(
                _("Test the connection first: Mail Sync is not enabled for %s.", self.email)
            )
        return mailbox

    def _folder_states(self, facts=None):
        """The engine's FolderStates of this mailbox (from the run's facts when given)."""
        self.ensure_one()
        if facts is not None:
            return [
                FolderState(
                    name=name, role=role, uidvalidity=uidvalidity or None, last_uid=last_uid or 0
                )
                for _id, name, role, uidvalidity, last_uid in facts.folders
            ]
        return [
            FolderState(
                name=folder.name,
                role=folder.role,
                uidvalidity=folder.uidvalidity or None,
                last_uid=folder.last_uid or 0,
            )
            for folder in self.folder_ids.sorted("id")
        ]

    def _folder_record(self, state, run):
        """The mail.sync.folder row of the engine's ``state`` (created on first sight)."""
        folder = run.folders.get(state.name)
        if folder is None:
            facts = run.facts
            known = [row[0] for row in facts.folders if row[1] == state.name] if facts else []
            if known:
                folder = self.env["mail.sync.folder"].sudo().browse(known[0])
            else:
                folder = self.folder_ids.filtered(lambda f: f.name == state.name)[:1]
            if not folder:
                folder = (
                    self.env["mail.sync.folder"]
                    .sudo()
                    .create(
                        {
                            "mailbox_id": self.id,
                            "name": state.name,
                            "role": state.role,
                            "uidvalidity": state.uidvalidity or 0,
                            "last_uid": 0,
                        }
                    )
                )
            run.folders[state.name] = folder
        return folder

    def _sync(self, raise_on_error=False, deadline=None, auto_commit=False):
        """Sync this one mailbox, as superuser (the caller checked access). The stages, in
        order (ARCHITECTURE.md): prepare the run (facts, policy, daily cap) → the engine's sync
        (matcher and recorder stages, each batch in a savepoint, committed at once with
        ``auto_commit``: the cron, never tests) → the outcome, one write (Enabled, or Error
        with its back-off and error-log entry). A failure is raised only when
        ``raise_on_error`` (manual run). Returns the engine's SyncReport, or None on failure.
        """
        self.ensure_one()
        run = self._sync_prepare(auto_commit)
        if run.policy.quota == 0 and self._daily_cap_value(run.facts):
            # Today's cap is used up: nothing to ask the server before the owner's midnight.
            self.sudo().write({"next_sync": self._next_local_midnight(run.facts)})
            return SyncReport()
        crashpoint.reached("sync_start", self.id)
        try:
            report = self._sync_engine(run, deadline)
        except Exception as exc:  # noqa: BLE001 - one mailbox never stops the others
            if run.auto_commit:
                self.env.cr.rollback()
            sync_error = errors.classify(
                exc,
                host=self.imap_host,
                port=self.imap_port,
                provider=self.provider,
                secrets=self._secrets(),
            )
            if not isinstance(exc, errors.SyncError):
                _logger.exception("Mail Sync: unexpected failure syncing mailbox %s", self.id)
            self._sync_failed(sync_error)
            if raise_on_error:
                raise UserError(self._user_error(sync_error)) from None
            return None
        self._sync_succeeded(run, report)
        return report

    def _sync_prepare(self, auto_commit):
        """The run of a sync that starts: its facts (one query for the cron's whole batch), its
        policy (never-log list, auto-replies, new leads) and today's quota (the daily cap)."""
        facts = self._sync_facts(auto_commit) if self.id else None
        run = SyncRun(self, facts=facts, policy=SyncPolicy(self), auto_commit=auto_commit)
        run.policy.quota = self._sync_quota(facts)
        return run

    def _sync_engine(self, run, deadline):
        """The engine's sync of the mailbox's folders with this run's matcher and recorder;
        the folder cursors stored. Raises on a failure of the mailbox. Returns the report."""
        matcher = self.env["mail.sync.matcher"]

        def match(headers):
            crashpoint.reached("headers", self.id)
            return matcher._match(self, headers, run.own, run.policy)

        config = self._mail_config(run.facts)
        run.secrets = [s for s in (config.password, config.access_token) if s]
        folders = self._sync_folders(run, config)
        skip_uids, suspects = self._crash_recovery(folders, run)
        since = (
            fields.Datetime.now() - timedelta(days=self.sync_days or 0) if self.sync_days else None
        )
        states, report = sync.sync_mailbox(
            config,
            folders,
            matcher=match,
            recorder=lambda fs, items, last: self._record_batch(run, fs, items, last),
            since=since,
            batch_size=self._get_param("fetch_batch_size", 200),
            deadline=deadline,
            quota=run.policy.quota,
            limits=self._sync_limits(run.facts),
            skip_uids=skip_uids,
            suspects=suspects,
            before_bodies=lambda fs, uids: self._mark_inflight(run, fs, uids),
            on_errors=lambda fs, errs: run.pending_errors.extend(errs),
        )
        self._store_cursors(run, states)
        return report

    def _sync_folders(self, run, config):
        """The folder cursors the engine starts from. First sync: discover the folders and
        create all their cursor rows now, so that they are committed with the first batch (else
        a crash after that batch would leave the other folders unknown, and never synced)."""
        folders = self._folder_states(run.facts)
        run.stored.update((fs.name, (fs.uidvalidity or 0, fs.last_uid)) for fs in folders)
        if folders:
            return folders
        from ..mailsync.session import ImapSession

        with ImapSession(config) as discovery:
            folders = discovery.discover_folders()
        for state in folders:
            self._folder_record(state, run)
            run.stored[state.name] = (state.uidvalidity or 0, 0)
        return folders

    def _store_cursors(self, run, states):
        """After the engine: folders seen without any batch (empty) still get their cursor row
        (compared with what this run read or wrote: an idle poll reads no folder row)."""
        for state in states:
            if state.name in run.stored:
                uidvalidity, last_uid = run.stored[state.name]
            else:
                folder = self._folder_record(state, run)
                uidvalidity, last_uid = folder.uidvalidity, folder.last_uid
            vals = {}
            if (state.uidvalidity or 0) != uidvalidity:
                vals["uidvalidity"] = state.uidvalidity or 0
            if state.last_uid > last_uid or "uidvalidity" in vals:
                vals["last_uid"] = state.last_uid
            if vals:
                folder = self._folder_record(state, run)
                folder.write(vals)
                run.stored[state.name] = (state.uidvalidity or 0, state.last_uid)
                self._index_unmatched(run, folder)

    def _sync_succeeded(self, run, report):
        """The outcome of a sync that ran: Enabled, next run (at once when the time budget cut
        it; after the owner's midnight when the daily cap deferred messages), in one write; the
        folder-level errors logged; honest counts in the report."""
        now = fields.Datetime.now()
        next_sync = (
            False
            if report.stopped_early
            else now + timedelta(seconds=self._get_param("min_interval", 60))
        )
        if report.deferred:
            # Messages wait for tomorrow (the cursor stays below the first of them).
            next_sync = max(next_sync or now, self._next_local_midnight(run.facts))
        self._write_outcome(
            {
                "state": "enabled",
                "last_sync": now,
                "last_success": now,
                "last_error": False,
                "error_since": False,
                "error_count": 0,
                "next_sync": next_sync,
            }
        )
        if run.suspects:
            self._prune_suspects(run)
        # Honest counts: what reached the database (a copy met twice is one email).
        report.recorded, report.entries = run.recorded
        for error in report.errors:
            if error.uid is None:  # message-level ones were logged with their batch
                self.env["mail.sync.log"].sudo()._log(self, error, secrets=run.secrets)
        _logger.info(
            "Mail Sync: mailbox %s synced: %s folder(s), %s header(s), %s matched, "
            "%s email(s) recorded (%s chatter entries), %s skipped%s",
            self.id,
            report.folders,
            report.headers_seen,
            report.matched,
            report.recorded,
            report.entries,
            run.skipped,
            " (stopped at the time limit)" if report.stopped_early else "",
        )
        crashpoint.reached("sync_end", self.id)

    def _sync_failed(self, sync_error, sending=False):
        """The outcome of a failed sync of this mailbox (``sending``: of a send through it, no
        sync was attempted), in one write: Error, retried after a back-off that doubles with
        each failure in a row; Connection after 48 hours without a successful sync. And an
        error-log entry."""
        self.ensure_one()
        now = fields.Datetime.now()
        if not sending:
            # A failure, not a death: what was in flight was rolled back, not fatal.
            self.flush_recordset(["sync_inflight"])
            self.env.cr.execute(
                SQL(
                    "UPDATE mail_sync_mailbox SET sync_inflight = NULL WHERE id = %s "
                    "AND sync_inflight IS NOT NULL",
                    self.id,
                )
            )
            self.invalidate_recordset(["sync_inflight"])
            _logger.warning("Mail Sync: sync of mailbox %s failed: %s", self.id, sync_error)
        self.env["mail.sync.log"].sudo()._log(self, sync_error)
        attempts = self.error_count + 1
        vals = {
            "state": "error",
            "last_error": str(sync_error),
            "error_since": self.error_since or now,
            "error_count": attempts,
            "next_sync": now + self._backoff(attempts),
        }
        if not sending:
            vals["last_sync"] = now
        if self._connection_lost(now, since=vals["error_since"]):
            vals.update(state="connection", next_sync=False)
            _logger.warning(
                "Mail Sync: mailbox %s could not sync for two days: Connection "
                "(no longer synced until a connection test succeeds)",
                self.id,
            )
        self.sudo().write(vals)

    def _record_batch(self, run, folder_state, items, new_last_uid):
        """The engine's recorder: ``items`` recorded (each bad one isolated and skipped), the
        messages the engine could not read skipped, the folder cursor moved — in one savepoint,
        committed at once under auto-commit. ``new_last_uid`` None: no cursor (a retry, late
        linking)."""
        crashpoint.reached("parsed", self.id)
        Synced = self.env["mail.sync.message"].sudo()
        with self.env.cr.savepoint():
            folder = self._folder_record(folder_state, run)
            if (
                new_last_uid is not None
                and folder.uidvalidity
                and folder.uidvalidity != (folder_state.uidvalidity or 0)
            ):
                # A new UIDVALIDITY: the skipped UIDs of the old one mean nothing any more.
                self.env["mail.sync.skipped"].sudo().search(
                    [
                        ("folder_id", "=", folder.id),
                        ("uidvalidity", "!=", folder_state.uidvalidity or 0),
                    ]
                ).unlink()
            recorded, failures, _savepoints = Synced._record_isolated(self, folder, items, run.own)
            crashpoint.reached("recorded", self.id)
            if new_last_uid is not None:
                cursor = (folder_state.uidvalidity or 0, max(new_last_uid or 0, 0))
                folder.write({"uidvalidity": cursor[0], "last_uid": cursor[1]})
                run.stored[folder_state.name] = cursor
                self._index_unmatched(run, folder)
            policy = run.policy  # the matcher's own errors
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
            self.env.cr.commit()  # pylint: disable=invalid-commit
            crashpoint.reached("committed", self.id)
        return recorded

    def _index_unmatched(self, run, folder):
        """The headers of ``folder`` that matched nothing in this run go to the late-linking
        header index (one INSERT), with the cursor that moved past them."""
        headers = run.policy.pending.pop(folder.name, None) if run.policy is not None else None
        if headers:
            self.env["mail.sync.header.index"].sudo()._insert(
                folder, folder.uidvalidity, headers, naive_utc
            )

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
        self.env.cr.execute(
            SQL(
                "UPDATE mail_sync_mailbox SET synced_count = COALESCE(synced_count, 0) + %s, "
                "sync_inflight = NULL WHERE id = %s",
                recorded,
                self.id,
            )
        )
        self.invalidate_recordset(["synced_count", "sync_inflight"])
        run.inflight = False

    def _mark_inflight(self, run, folder_state, uids):
        """Before the bodies of ``uids`` are fetched: remember them, committed."""
        mark = {
            "folder": folder_state.name,
            "uidvalidity": folder_state.uidvalidity or 0,
            "uids": list(uids),
        }
        self.flush_recordset(["sync_inflight"])
        self.env.cr.execute(
            SQL(
                "UPDATE mail_sync_mailbox SET sync_inflight = %s WHERE id = %s",
                json.dumps(mark),
                self.id,
            )
        )
        self.invalidate_recordset(["sync_inflight"])
        run.inflight = True
        if run.auto_commit:
            self.env.cr.commit()  # pylint: disable=invalid-commit
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
            self.env.cr.execute(
                SQL(
                    "UPDATE mail_sync_mailbox SET sync_suspects = %s WHERE id = %s",
                    json.dumps(kept) if kept else None,
                    self.id,
                )
            )
            self.invalidate_recordset(["sync_suspects"])
            run.suspects = kept

    def _crash_recovery(self, folders, run=None):
        """``(skip_uids, suspects)`` for the engine from the deaths of earlier syncs (see
        above); the mark left by the last one, if any, is counted and cleared."""
        self.ensure_one()
        facts = run.facts if run is not None else None
        inflight = facts.inflight if facts is not None else self.sync_inflight
        suspects = dict((facts.suspects if facts is not None else self.sync_suspects) or {})
        validity = {fs.name: fs.uidvalidity or 0 for fs in folders}
        if inflight:
            key = f"{inflight.get('uidvalidity') or 0}:{inflight.get('folder')}"
            deaths = dict(suspects.get(key) or {})
            for uid in inflight.get("uids") or ():
                deaths[str(uid)] = deaths.get(str(uid), 0) + 1
            suspects[key] = deaths
            _logger.warning(
                "Mail Sync: the previous sync of mailbox %s stopped while reading "
                "%s message(s) of %s: they are read one by one now",
                self.id,
                len(inflight.get("uids") or ()),
                inflight.get("folder"),
            )
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
            self.env.cr.execute(
                SQL(
                    "UPDATE mail_sync_mailbox SET sync_inflight = NULL, sync_suspects = %s "
                    "WHERE id = %s",
                    json.dumps(kept) if kept else None,
                    self.id,
                )
            )
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
        vals = {
            name: value
            for name, value in vals.items()
            if fields_[name].convert_to_record(fields_[name].convert_to_cache(value, self), self)
            != self[name]
        }
        if not vals:
            return
        if set(vals) - set(self.TIMESTAMP_FIELDS):
            self.sudo().write(vals)
            return
        self.flush_recordset(list(vals))
        columns = sorted(vals)
        self.env.cr.execute(
            SQL(
                "UPDATE mail_sync_mailbox SET %s, write_uid = %s, "
                "write_date = (now() AT TIME ZONE 'UTC') WHERE id = %s",
                SQL(", ").join(
                    SQL("%s = %s", SQL.identifier(name), vals[name] or None) for name in columns
                ),
                self.env.uid,
                self.id,
            )
        )
        self.invalidate_recordset(columns + ["write_uid", "write_date"])

    def _sync_quota(self, facts=None):
        """How many more messages this run may record today (None: no daily cap)."""
        self.ensure_one()
        self._cap_roll(facts)  # also without a cap: "emails synced today" is shown to everyone
        cap = self._daily_cap_value(facts)
        if not cap:
            return None
        return max(cap - (self.synced_count - self.cap_base), 0)

    def _sync_limits(self, facts=None):
        """What one message may cost (the company's limits; from the sync's prefetched facts
        when syncing)."""
        self.ensure_one()
        if facts is not None:
            return facts.limits
        return self.sudo().company_id._mail_sync_limits()

    # ------------------------------------------------------------------ cron
    @api.model
    def _due_domain_sql(self):
        """The SQL condition of a mailbox the cron may sync now."""
        return SQL(
            "state IN %s AND active AND (next_sync IS NULL OR next_sync <= %s)",
            SYNCING_STATES,
            fields.Datetime.now(),
        )

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
        query = SQL(
            """
            SELECT id FROM mail_sync_mailbox
             WHERE %(due)s AND NOT (id = ANY(%(exclude)s))
               AND NOT (id = ANY(ARRAY(
                   SELECT objid::bigint FROM pg_locks
                    WHERE locktype = 'advisory' AND classid = %(key)s::oid AND objsubid = 2
                      AND granted AND pid <> pg_backend_pid()
                      AND database = (SELECT oid FROM pg_database
                                       WHERE datname = current_database()))))
          ORDER BY sync_inflight IS NOT NULL, last_sync ASC NULLS FIRST, id
             LIMIT %(limit)s
               FOR UPDATE SKIP LOCKED
        """,
            due=self._due_domain_sql(),
            exclude=list(exclude_ids),
            key=ADVISORY_LOCK_KEY,
            limit=limit,
        )
        testing = getattr(threading.current_thread(), "testing", False)
        for attempt in range(5):
            try:
                with mute_logger("odoo.sql_db"), self.env.cr.savepoint(flush=False):
                    self.env.cr.execute(query)
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
        self.env.cr.execute(SQL("SELECT %s(%s, %s)", SQL(function), ADVISORY_LOCK_KEY, mailbox_id))
        return self.env.cr.fetchone()[0]

    @api.model
    def _sync_unlock(self, mailbox_id):
        """Release the session-level lock of ``_try_sync_lock``."""
        self.env.cr.execute(SQL("SELECT pg_advisory_unlock(%s, %s)", ADVISORY_LOCK_KEY, mailbox_id))

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
            SQL("SELECT count(*) FROM mail_sync_mailbox WHERE %s", self._due_domain_sql())
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _cron_sync(self, batch_size=None, time_budget=None):
        """Scheduled action (each of the ``cron_workers`` copies runs it): the mailboxes' health
        first (Error → Connection after 48 hours, Pending promotions: the promoted mailboxes
        are due at once), then the due mailboxes, oldest first, within the time budget that
        Odoo's limits leave; when more are due than this run takes, the other sync actions are
        woken so that idle workers join in. The only place a sync commits (besides fast arrival
        and late linking, which are crons too). Returns the number of mailboxes processed."""
        auto_commit = not getattr(threading.current_thread(), "testing", False)
        self._check_connection_lost()
        self._promote_pending()
        self.env.flush_all()
        if auto_commit:
            # release the company rows locked by the promotion
            self.env.cr.commit()  # pylint: disable=invalid-commit
        workers = self._cron_workers()
        if auto_commit:
            time_budget = self._cron_budget(time_budget)
            if time_budget < 1:
                # This worker's round is nearly over: the next round continues.
                current = workers.filtered(lambda c: c.id == self.env.context.get("cron_id"))
                if current:
                    current._trigger()
                return 0
            # the claim may start a new transaction (_claim)
            self.env.cr.commit()  # pylint: disable=invalid-commit
        done = self._cron_sync_due(batch_size, time_budget, auto_commit)
        others = workers.filtered(lambda c: c.id != self.env.context.get("cron_id"))
        if done and others and self._count_due() > 0:
            now = fields.Datetime.now()
            for cron in others:
                if not cron.nextcall or cron.nextcall > now:
                    cron._trigger()
        return done

    @api.model
    def _cron_sync_due(self, batch_size, time_budget, auto_commit):
        """Claim up to ``batch_size`` due mailboxes and sync them one by one until the time
        budget is spent; commits after each batch and each mailbox (``auto_commit``); a failing
        mailbox goes to Error and the log, and the others go on."""
        batch_size = batch_size or self._get_param("cron_batch_size", 20)
        time_budget = time_budget or self._get_param("cron_time_budget", 240)
        deadline = time.monotonic() + time_budget
        self.flush_model()
        claimed = self._claim(batch_size, [])
        crashpoint.reached("claimed")
        done = 0
        try:
            batch = tuple(claimed)  # one prefetch of the sync facts for the batch
            for index, mailbox_id in enumerate(claimed):
                if time.monotonic() >= deadline:
                    break
                mailbox = self.sudo().browse(mailbox_id).with_prefetch(batch)
                done += self._sync_claimed(mailbox, deadline, auto_commit)
                self._release([mailbox_id])
                claimed[index] = None
                if auto_commit:
                    self.env.cr.commit()  # pylint: disable=invalid-commit
        finally:
            self._release([mailbox_id for mailbox_id in claimed if mailbox_id])
        self.env["ir.cron"]._notify_progress(done=done, remaining=self._count_due())
        if auto_commit:
            self.env.cr.commit()  # pylint: disable=invalid-commit
        return done

    @api.model
    def _sync_claimed(self, mailbox, deadline, auto_commit):
        """Sync one mailbox whose sync lock this worker holds (the cron), unless
        it was disconnected since it was picked. Never raises; in tests (no ``auto_commit``)
        the sync runs in a savepoint. Returns whether the mailbox was processed (synced, or
        failed: False only when it no longer syncs)."""
        try:
            if not mailbox._syncable():
                _logger.info(
                    "Mail Sync: mailbox %s no longer syncs (disconnected since it was "
                    "claimed): skipped",
                    mailbox.id,
                )
                return False
            if auto_commit:
                mailbox._sync(deadline=deadline, auto_commit=True)
            else:
                with self.env.cr.savepoint():
                    mailbox._sync(deadline=deadline)
            return True
        except Exception:  # noqa: BLE001 - never let one mailbox stop the cron
            _logger.exception("Mail Sync: mailbox %s could not be processed", mailbox.id)
            if auto_commit:
                self.env.cr.rollback()
            return True

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
            "crm_mail_sync.group_mail_sync_manager"
        ):
            raise AccessError(_("You can only set up your own mailbox."))

    # ------------------------------------------------------------------ top-bar link

    def _systray_keys(self):
        """``{mailbox id: (user id, company id, configured)}``, read as superuser."""
        return {
            mailbox.id: (
                mailbox.user_id.id,
                mailbox.company_id.id,
                mailbox.active and mailbox.state in CONFIGURED_STATES,
            )
            for mailbox in self.sudo().with_context(active_test=False)
        }

    @api.model
    def _systray_notify(self, user_ids):
        users = self.env["res.users"].sudo().browse(sorted(set(user_ids) - {False}))
        if users:
            users._bus_send(SYSTRAY_NOTIFICATION, {})

    def _systray_changed(self, before):
        """Tell the owners whose top-bar link appears or disappears (``before``: the
        ``_systray_keys`` read before a write). Only a change of "configured" (or of owner)
        matters: a sync writing "enabled" over "enabled" every few minutes sends nothing."""
        after = self._systray_keys()
        changed = {key for mailbox_id, key in before.items() if after.get(mailbox_id) != key}
        changed |= {key for mailbox_id, key in after.items() if before.get(mailbox_id) != key}
        self._systray_notify([user_id for user_id, _company, _configured in changed])

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
                    "help": "<p>%s</p>"
                    % _(
                        "No mailbox is connected yet: each user "
                        "connects their own from My Profile ▸ Mail Sync."
                    ),
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

    # ------------------------------------------------------------------ who may act

    def _check_owner_access(self):
        """Only the owner of these mailboxes (a dry run reads their mail). AccessError."""
        if not self:
            raise AccessError(_("Choose a mailbox."))
        self.check_access("read")
        if self.env.is_superuser():
            return
        for mailbox in self:
            if mailbox.user_id != self.env.user:
                raise AccessError(
                    _("Only %s can do this with their mailbox.", mailbox.user_id.name)
                )

    def _check_disconnect_access(self):
        """Whoever disconnects these mailboxes must be their owner or a Mail Sync manager of
        their company (the record rules say who reads which mailbox; only owners write theirs).
        Raises AccessError; the caller then works with ``sudo()``. Never reveals a secret."""
        if not self:
            raise AccessError(_("Choose a mailbox."))
        self.check_access("read")
        if self.env.is_superuser():
            return
        manager = self.env.user.has_group("crm_mail_sync.group_mail_sync_manager")
        for mailbox in self:
            if mailbox.user_id != self.env.user and not manager:
                raise AccessError(
                    _(
                        "Only %s or a Mail Sync manager can disconnect this mailbox.",
                        mailbox.user_id.name,
                    )
                )

    # ---------------------------------------------- health: daily cap, back-off, Connection
    @api.depends("synced_count", "cap_base", "cap_day")
    def _compute_synced_today(self):
        for mailbox in self:
            sudo = mailbox.sudo()
            if sudo.cap_day and sudo.cap_day == sudo._local_today():
                mailbox.synced_today = max(sudo.synced_count - sudo.cap_base, 0)
            else:
                mailbox.synced_today = 0

    @api.depends("company_id.mail_sync_daily_cap")
    def _compute_daily_cap(self):
        for mailbox in self:
            mailbox.daily_cap = mailbox.sudo().company_id.mail_sync_daily_cap

    @api.depends("state", "active")
    def _compute_is_billable(self):
        for mailbox in self:
            mailbox.is_billable = mailbox.active and mailbox.state in BILLABLE_STATES

    # ------------------------------------------------------------------ local day
    def _tz(self, facts=None):
        self.ensure_one()
        try:
            return pytz.timezone(
                (facts.tz if facts is not None else self.sudo().user_id.tz) or "UTC"
            )
        except pytz.UnknownTimeZoneError:
            return pytz.utc

    def _local_today(self, facts=None):
        """Today in the owner's timezone."""
        now = pytz.utc.localize(fields.Datetime.now())
        return now.astimezone(self._tz(facts)).date()

    def _next_local_midnight(self, facts=None):
        """The next midnight in the owner's timezone, as Odoo's naive UTC."""
        tz = self._tz(facts)
        tomorrow = self._local_today(facts) + timedelta(days=1)
        midnight = tz.localize(datetime.combine(tomorrow, dtime.min))
        return midnight.astimezone(pytz.utc).replace(tzinfo=None)

    def _cap_roll(self, facts=None):
        """Start a new count when the owner's local day changed."""
        self.ensure_one()
        today = self._local_today(facts)
        if self.cap_day != today:
            self.sudo().write({"cap_day": today, "cap_base": self.synced_count})

    def _daily_cap_value(self, facts=None):
        """The company's daily cap (0: none); from the sync's prefetched facts when syncing."""
        return facts.daily_cap if facts is not None else self.company_id.mail_sync_daily_cap

    def _backoff(self, attempts):
        """The delay before retrying after ``attempts`` failed syncs in a row."""
        initial = self._get_param("backoff_initial", BACKOFF_INITIAL)
        maximum = self._get_param("backoff_max", BACKOFF_MAX)
        return timedelta(seconds=min(initial * 2 ** min(max(attempts, 1) - 1, 20), maximum))

    def _connection_lost(self, now=None, since=None):
        """In error for 48 hours (``since``, else since the error began) without a
        successful sync."""
        self.ensure_one()
        now = now or fields.Datetime.now()
        since = since or self.error_since or self.last_success
        return bool(since) and now - since >= CONNECTION_AFTER

    @api.model
    def _check_connection_lost(self):
        """Error mailboxes without a successful sync for 48 hours go to Connection."""
        limit = fields.Datetime.now() - CONNECTION_AFTER
        lost = self.sudo().search(
            [
                ("state", "=", "error"),
                "|",
                ("error_since", "<=", limit),
                "&",
                ("error_since", "=", False),
                ("last_success", "<=", limit),
            ]
        )
        if lost:
            _logger.warning(
                "Mail Sync: mailbox(es) %s could not sync for two days: Connection", lost.ids
            )
            lost.write({"state": "connection", "next_sync": False})
        return lost

    # ------------------------------------------------------------------ seats
    @api.model
    def _lock_company_seats(self, company):
        """Serialise seat decisions of ``company``: a real row update, so that a concurrent
        transaction deciding on the same company fails to serialise (and is retried) instead
        of counting from an older snapshot."""
        self.env.cr.execute(
            SQL("UPDATE res_company SET write_date = write_date WHERE id = %s", company.id)
        )

    @api.model
    def _try_lock_company_seats(self, company):
        """``_lock_company_seats`` without waiting (cron): False when another transaction
        holds the company row or changed it since this one's snapshot."""
        try:
            with self.env.cr.savepoint():
                self.env.cr.execute(
                    SQL(
                        "SELECT id FROM res_company WHERE id = %s FOR NO KEY UPDATE NOWAIT",
                        company.id,
                    ),
                    log_exceptions=False,
                )
                self.env.cr.execute(
                    SQL("UPDATE res_company SET write_date = write_date WHERE id = %s", company.id),
                    log_exceptions=False,
                )
        except (LockNotAvailable, SerializationFailure):
            return False
        return True

    @api.model
    def _seats_used(self, company, exclude_ids=()):
        self.flush_model(["state", "holds_seat", "company_id", "active"])
        self.env.cr.execute(
            SQL(
                """
            SELECT count(*) FROM mail_sync_mailbox
             WHERE company_id = %s AND active AND (state IN %s OR holds_seat)
               AND NOT (id = ANY(%s))
        """,
                company.id,
                SEAT_STATES,
                list(exclude_ids),
            )
        )
        return self.env.cr.fetchone()[0]

    def _holds_seat(self):
        self.ensure_one()
        return self.holds_seat or self.state in SEAT_STATES

    def _seat_available(self):
        """Whether this mailbox may sync now under its company's limit: it holds a seat, or a
        seat is free for it once every mailbox queued before it is served."""
        self.ensure_one()
        if self._holds_seat():
            return True
        limit = self.company_id.mail_sync_mailbox_limit
        if not limit:
            return True
        queued = [
            ("company_id", "=", self.company_id.id),
            ("state", "=", "pending"),
            ("id", "!=", self.id),
        ]
        if self.state == "pending" and self.pending_since:
            queued += [
                "|",
                ("pending_since", "<", self.pending_since),
                "&",
                ("pending_since", "=", self.pending_since),
                ("id", "<", self.id),
            ]
        ahead = self.sudo().search_count(queued)
        return self._seats_used(self.company_id, [self.id]) + ahead < limit

    @api.model
    def _promote_pending(self):
        """Enable Pending mailboxes, first come first served, for the seats that are free.
        Returns the promoted mailboxes."""
        Mailbox = self.sudo()
        pending = Mailbox.search([("state", "=", "pending")], order="pending_since, id")
        promoted = Mailbox.browse()
        for company in pending.company_id:
            queue = pending.filtered(lambda m, c=company: m.company_id == c)
            limit = company.mail_sync_mailbox_limit
            if limit and self._seats_used(company) >= limit:
                continue
            if not self._try_lock_company_seats(company):
                continue  # another worker or a connection test decides now: next run
            free = len(queue) if not limit else limit - self._seats_used(company)
            if free > 0:
                queue = queue[:free]
                queue._take_seat()
                promoted |= queue
        if promoted:
            _logger.info(
                "Mail Sync: Pending mailbox(es) %s promoted (a seat is free)", promoted.ids
            )
        return promoted

    @api.model
    def _trigger_promotion(self):
        """A seat may have freed: let the cron promote the queue soon."""
        if self.sudo().search_count([("state", "=", "pending")], limit=1):
            cron = self.env.ref("crm_mail_sync.ir_cron_mail_sync", raise_if_not_found=False)
            if cron:
                cron.sudo()._trigger()

    def action_retry_now(self):
        """Button (owner or manager): Error/Enabled → sync now; Connection → test the
        connection (the only way back), which enables the mailbox again."""
        self.ensure_one()
        self._check_disconnect_access()  # owner or manager
        if self.state == "connection":
            action = self.sudo().action_test_connection()
            cron = self.env.ref("crm_mail_sync.ir_cron_mail_sync", raise_if_not_found=False)
            if cron:
                cron.sudo()._trigger()
            return action
        if self.state == "pending":
            raise UserError(
                _(
                    "%s waits for a seat: raise the company's mailbox limit or disconnect another "
                    "mailbox.",
                    self.email,
                )
            )
        # Sync now (as the owner's button, but a failure is shown, not raised).
        return self._sync_now(raise_on_error=False)

    def action_disconnect(self):
        """Button (owner or manager): the disconnect wizard (keep or remove what was synced)."""
        self.ensure_one()
        self._check_disconnect_access()
        return {
            "type": "ir.actions.act_window",
            "name": _("Disconnect %s", self.email),
            "res_model": "mail.sync.disconnect.wizard",
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "new",
            "context": {"default_mailbox_id": self.id},
        }

    # ------------------------------------------------------------------ disconnect
    def _disconnect(self, remove=False):
        """Stop syncing and sending: credentials deleted, folder cursors cleared, seat freed,
        Not connected. ``remove``: also delete what the sync of this mailbox recorded.
        Refused while a sync of the mailbox runs (it would record mail again, or fail for want
        of the deleted password); the lock then keeps syncs away until this commits."""
        for mailbox in self:
            if not self._try_sync_lock(mailbox.id, until_commit=True):
                raise UserError(_("A sync of this mailbox is running; try again in a minute."))
        for mailbox in self.sudo():
            if remove:
                mailbox._remove_synced()
            self.env["mail.sync.credential"].sudo().search(
                [("mailbox_id", "=", mailbox.id)]
            ).unlink()
            mailbox.folder_ids.unlink()
            mailbox.with_context(mail_sync_keep_state=True).write(
                {
                    "state": "draft",
                    "holds_seat": False,
                    "pending_since": False,
                    "error_since": False,
                    "error_count": 0,
                    "last_error": False,
                    "next_sync": False,
                }
            )
            _logger.info(
                "Mail Sync: mailbox %s disconnected (%s)",
                mailbox.id,
                "synced mail removed" if remove else "synced mail kept",
            )
        self._trigger_promotion()

    def _remove_synced(self):
        """Delete the chatter entries this mailbox's sync created (and their attachments) and
        its synced messages. An entry another mailbox also synced (its synced messages hold the
        Message-ID: its sync skipped the entry already on the record) is handed over to that
        mailbox instead, since it is that user's synced mail too. Nothing else is touched."""
        self.ensure_one()
        Message = self.env["mail.message"].sudo()
        Synced = self.env["mail.sync.message"].sudo()
        messages = Message.search([("mail_sync_mailbox_id", "=", self.id)])
        if messages:
            self.env.cr.execute(
                SQL(
                    """
                SELECT DISTINCT ON (r.message_id) r.message_id, r.id, r.mailbox_id
                  FROM mail_sync_message r
                 WHERE r.mailbox_id != %s AND r.message_id = ANY(%s)
              ORDER BY r.message_id, r.id
            """,
                    self.id,
                    list(set(filter(None, messages.mapped("message_id")))),
                )
            )
            heirs = {mid: (rid, mbid) for mid, rid, mbid in self.env.cr.fetchall()}
            handed = messages.filtered(lambda m: m.message_id in heirs)
            for message in handed:
                synced_id, mailbox_id = heirs[message.message_id]
                message.write({"mail_sync_mailbox_id": mailbox_id})
                Synced.browse(synced_id).write({"mail_message_ids": [(4, message.id)]})
            messages -= handed
        attachments = messages.attachment_ids | messages.mail_sync_attachment_ids
        if attachments:
            shared = Message.search(
                [("attachment_ids", "in", attachments.ids), ("id", "not in", messages.ids)]
            )
            attachments -= shared.attachment_ids
        Synced.search([("mailbox_id", "=", self.id)]).unlink()
        for ids in split_every(1000, messages.ids):
            Message.browse(ids).unlink()
        attachments.unlink()
        _logger.info(
            "Mail Sync: mailbox %s: %s synced chatter entries removed", self.id, len(messages)
        )

    # ------------------------------------------------------------------ sync facts

    def _fetch_sync_facts(self, ids):
        """``{mailbox id: SyncFacts}`` of ``ids``, in one query."""
        self.env["mail.sync.folder"].flush_model()
        self.env["mail.sync.credential"].flush_model()
        self.env["res.partner"].flush_model(["email", "tz"])
        self.env["res.users"].flush_model(["partner_id"])
        self.env["res.company"].flush_model(
            [
                "mail_sync_daily_cap",
                "mail_sync_max_attachment_mb",
                "mail_sync_max_message_mb",
                "mail_sync_max_parts",
            ]
        )
        self.flush_model(["user_id", "company_id", "sync_inflight", "sync_suspects"])
        self.env.cr.execute(
            SQL(
                """
            SELECT m.id, m.write_date, p.email, p.tz, c.mail_sync_daily_cap, cred.token,
                   (SELECT json_agg(json_build_array(f.id, f.name, f.role, f.uidvalidity,
                                                     f.last_uid) ORDER BY f.id)
                      FROM mail_sync_folder f WHERE f.mailbox_id = m.id),
                   c.mail_sync_max_attachment_mb, c.mail_sync_max_message_mb,
                   c.mail_sync_max_parts, m.sync_inflight, m.sync_suspects
              FROM mail_sync_mailbox m
              JOIN res_users u ON u.id = m.user_id
              JOIN res_partner p ON p.id = u.partner_id
              JOIN res_company c ON c.id = m.company_id
         LEFT JOIN mail_sync_credential cred ON cred.mailbox_id = m.id AND cred.kind = 'password'
             WHERE m.id = ANY(%s)
        """,
                list(ids),
            )
        )
        facts = {}
        for (
            mailbox_id,
            write_date,
            email,
            tz,
            cap,
            token,
            folders,
            attachment_mb,
            message_mb,
            parts,
            inflight,
            suspects,
        ) in self.env.cr.fetchall():
            if isinstance(folders, str):
                folders = json.loads(folders)
            facts[mailbox_id] = SyncFacts(
                mailbox_id,
                write_date,
                email,
                tz,
                cap,
                token,
                [tuple(row) for row in (folders or [])],
                limits=limits_from(attachment_mb, message_mb, parts),
                inflight=inflight,
                suspects=suspects,
            )
        return facts

    def _sync_facts(self, auto_commit=False):
        """This mailbox's SyncFacts for the run that starts. With ``auto_commit`` (the cron: a
        commit per mailbox) the facts of every mailbox of the record set's prefetch set (the
        claimed batch) are read at the first sync and kept on the cursor (``cr.cache``, which
        commits do not clear) until each one's turn; a kept entry is used only if the mailbox
        row's ``write_date`` is still the one read with it. Else only this mailbox is read."""
        self.ensure_one()
        store = self.env.cr.cache.setdefault(STORE_KEY, {})
        facts = store.pop(self.id, None)
        if facts is not None and (not auto_commit or facts.write_date != self.write_date):
            facts = None  # something wrote the mailbox since: read again
        if facts is None:
            ids = [self.id]
            if auto_commit:
                ids += [
                    i
                    for i in self._prefetch_ids
                    if isinstance(i, int) and i != self.id and i not in store
                ][: PREFETCH_LIMIT - 1]
            fetched = self._fetch_sync_facts(ids)
            facts = fetched.pop(self.id, None)
            if auto_commit:
                store.update(fetched)
        return facts

    # ------------------------------------------------------------------ own domains, never log

    def _own_domain_key(self):
        self.ensure_one()
        connected = self.active and self.state in CONNECTED_STATES
        return (email_domain(self.email) if connected else None, self.company_id.id)

    def _compute_exclusion_count(self):
        counts = {}
        if self.company_id:  # one query for all: (company, user or none) -> count
            groups = self.env["mail.sync.exclusion"]._read_group(
                [
                    ("company_id", "in", self.company_id.ids),
                    ("user_id", "in", [False, *self.user_id.ids]),
                ],
                ["company_id", "user_id"],
                ["__count"],
            )
            counts = {(company.id, user.id): count for company, user, count in groups}
        for mailbox in self:
            company_id = mailbox.company_id.id
            mailbox.exclusion_count = counts.get((company_id, False), 0) + (
                counts.get((company_id, mailbox.user_id.id), 0) if mailbox.user_id else 0
            )

    def action_open_exclusions(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": _("Never log"),
            "res_model": "mail.sync.exclusion",
            "view_mode": "list",
            "domain": [
                ("company_id", "=", self.company_id.id),
                "|",
                ("user_id", "=", False),
                ("user_id", "=", self.user_id.id),
            ],
            "context": {
                "default_user_id": self.user_id.id,
                "default_company_id": self.company_id.id,
            },
        }

    # ------------------------------------------------------------------ Smart Mail

    @api.depends("provider", "email")
    def _compute_smtp_daily_limit(self):
        for mailbox in self:
            domain = (mailbox.email or "").rpartition("@")[2].strip().lower()
            if mailbox.provider == "gmail":
                mailbox.smtp_daily_limit = (
                    DAILY_LIMIT_GMAIL if domain in GMAIL_DOMAINS else DAILY_LIMIT_WORKSPACE
                )
            elif mailbox.provider == "outlook":
                mailbox.smtp_daily_limit = DAILY_LIMIT_OUTLOOK
            else:
                mailbox.smtp_daily_limit = 0

    # -------------------------------------------------------------- Smart Mail: routing
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
        mailboxes = self.sudo().search(
            [
                ("user_id", "=", sender.id),
                ("state", "in", SYNCING_STATES),
                ("smtp_host", "!=", False),
                ("active", "=", True),
            ],
            order="id",
        )
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

    # ---------------------------------------------------------- Smart Mail: connection
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
            raise errors.SyncError(
                "config", "No SMTP server is set for this mailbox.", provider=self.provider
            )
        connection = smtp_connection(config).__enter__()  # the caller quits it
        # What Odoo's _prepare_email_message reads: From header and envelope sender become the
        # mailbox address (never the company bounce or notification address).
        connection.from_filter = config.email
        connection.smtp_from = self._smart_mail_sender()
        connection.mail_sync_mailbox_id = self.id
        connection.mail_sync_sent = []
        connection.mail_sync_error = None
        return connection

    # ------------------------------------------------------------ Smart Mail: failures
    def _smart_mail_failed(self, sync_error):
        """An SMTP failure of the mailbox: what a failed sync does (``_sync_failed``: error-log
        entry with the fix, Error with its back-off and error count, Connection after two days)."""
        self.ensure_one()
        _logger.warning(
            "Mail Sync: sending through mailbox %s failed: %s (%s)",
            self.id,
            sync_error,
            errors.redact(sync_error.detail, self._secrets()),
        )
        self.sudo()._sync_failed(sync_error, sending=True)

    def _smart_mail_reason(self, sync_error):
        """The failure reason shown on the mail and on the lead's failed notification."""
        self.ensure_one()
        detail = errors.redact(sync_error.detail or "", self._secrets())
        lines = [
            _(
                "Could not send through your mailbox %(email)s (SMTP %(host)s:%(port)s).",
                email=self.email,
                host=self.smtp_host,
                port=self.smtp_port,
            ),
            self._user_error(sync_error),
        ]
        if detail:
            lines.append(_("Server answer: %s", detail))
        return "\n".join(lines)

    @api.model
    def _smart_mail_fallback(self):
        return self.env["ir.config_parameter"].sudo().get_param(FALLBACK_PARAM) in (
            "True",
            "true",
            "1",
        )

    # --------------------------------------------------------- Smart Mail: daily limit
    def _smart_mail_reserve(self, count):
        """Count ``count`` recipients against today's limit; False when they do not fit (the
        mail waits for the next day). The row is locked until the end of the transaction so
        that two workers never overshoot together."""
        self.ensure_one()
        today = fields.Datetime.now().date()
        self.flush_recordset(["smtp_sent_date", "smtp_sent_count", "smtp_daily_limit"])
        self.env.cr.execute(
            SQL(
                """
            SELECT smtp_daily_limit,
                   CASE WHEN smtp_sent_date = %s THEN COALESCE(smtp_sent_count, 0) ELSE 0 END
              FROM mail_sync_mailbox WHERE id = %s FOR UPDATE
        """,
                today,
                self.id,
            )
        )
        limit, sent = self.env.cr.fetchone()
        if limit and sent + count > limit:
            return False
        self.env.cr.execute(
            SQL(
                "UPDATE mail_sync_mailbox SET smtp_sent_date = %s, smtp_sent_count = %s "
                "WHERE id = %s",
                today,
                sent + count,
                self.id,
            )
        )
        self.invalidate_recordset(["smtp_sent_date", "smtp_sent_count"])
        return True

    def _smart_mail_release(self, count):
        """Give back recipients reserved for a mail that was not sent."""
        self.ensure_one()
        today = fields.Datetime.now().date()
        self.env.cr.execute(
            SQL(
                """
            UPDATE mail_sync_mailbox SET smtp_sent_count = GREATEST(smtp_sent_count - %s, 0)
             WHERE id = %s AND smtp_sent_date = %s
        """,
                count,
                self.id,
                today,
            )
        )
        self.invalidate_recordset(["smtp_sent_count"])

    def _smart_mail_exhaust(self):
        """The provider said the daily quota is used up: nothing more is sent today."""
        self.ensure_one()
        if not self.smtp_daily_limit:
            return
        today = fields.Datetime.now().date()
        self.env.cr.execute(
            SQL(
                "UPDATE mail_sync_mailbox SET smtp_sent_date = %s, smtp_sent_count = %s "
                "WHERE id = %s",
                today,
                self.smtp_daily_limit,
                self.id,
            )
        )
        self.invalidate_recordset(["smtp_sent_date", "smtp_sent_count"])

    @api.model
    def _smart_mail_next_day(self):
        """Start of the next sending day (UTC, naive like Odoo's datetimes)."""
        now = fields.Datetime.now()
        return datetime.combine(now.date() + timedelta(days=1), dtime.min)

    # -------------------------------------------------------- Smart Mail: after a send
    def _smart_mail_record_sent(self, messages, mail_message, subject):
        """The mail went out: register its Message-ID (the sync then skips it in the Sent
        folder) and, for providers that do not file SMTP-sent mail themselves, APPEND a copy
        to the Sent folder marked \\Seen. A failing copy is logged, never fails the mail."""
        self.ensure_one()
        first = messages[0]
        message_id = normalize_message_id(first["Message-Id"])
        if not message_id:
            return
        Synced = self.env["mail.sync.message"].sudo()
        # Every recipient of this mail.mail: the copy in Sent names no one new (the message
        # is on the record already, and is recorded nowhere else).
        named = set(
            addresses.extract(
                value
                for message in messages
                for name in ("From", "To", "Cc", "Bcc")
                for value in message.get_all(name, [])
            )
        ) - set(self._own_addresses())
        row = Synced.search(
            [("mailbox_id", "=", self.id), ("message_id", "=", message_id)], limit=1
        )
        if row:
            # Another mail.mail of the same message (other recipients): one copy, and its
            # recipients are named too.
            if row.addresses and not named <= set(row.addresses.split()):
                row.addresses = address_lines(named | set(row.addresses.split()))
            return
        try:
            with self.env.cr.savepoint():
                Synced.create(
                    {
                        "mailbox_id": self.id,
                        "message_id": message_id,
                        "direction": "sent",
                        "date": fields.Datetime.now(),
                        "subject": (subject or "")[:500],
                        "mail_message_ids": [(6, 0, mail_message.ids)],
                        "addresses": address_lines(named),
                    }
                )
        except NOT_POISON:
            raise
        except Exception as exc:  # noqa: BLE001 - the mail is sent: never fail it afterwards
            # Without its synced-message row the sync may meet the mail in the Sent folder; it is
            # on the record already (same Message-ID) and is not recorded twice there.
            _logger.warning(
                "Mail Sync: the mail %s sent through mailbox %s could not be recorded: %s",
                message_id,
                self.id,
                exc,
            )
            self.env["mail.sync.log"].sudo()._log(
                self,
                errors.SyncError(
                    "record",
                    f"sent mail {message_id} ({subject or ''}): {type(exc).__name__}: {exc}",
                    provider=self.provider,
                ),
            )
        if self.provider in PROVIDERS_KEEPING_SENT:
            return
        raw = self._smart_mail_copy(messages)
        try:
            self._smart_mail_append_sent(raw)
        except Exception as exc:  # noqa: BLE001 - the mail is sent; the copy is a courtesy
            secrets = self._secrets()
            sync_error = errors.classify(
                exc,
                host=self.imap_host,
                port=self.imap_port,
                provider=self.provider,
                secrets=secrets,
            )
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
        self.ensure_one()
        folder = self.folder_ids.filtered(lambda f: f.role == "sent")[:1].name
        with ImapSession(self._mail_config()) as session:
            if not folder:
                found = [f for f in session.discover_folders() if f.role == "sent"]
                folder = found[0].name if found else "Sent"
                if not found:
                    session.create_folder(folder)
            session.append(folder, raw, flags=(b"\\Seen",))

    # ------------------------------------------------------------------ cron workers

    @api.model
    def _cron_workers(self):
        """The active scheduled actions that sync mailboxes, made to number
        ``crm_mail_sync.cron_workers``: copies of the shipped one are created or archived."""
        main = self.env.ref(CRON_XMLID, raise_if_not_found=False)
        if not main:
            return self.env["ir.cron"]
        main = main.sudo()
        wanted = max(1, min(self._get_param("cron_workers", 1), MAX_CRON_WORKERS))
        Cron = self.env["ir.cron"].sudo().with_context(active_test=False)
        copies = Cron.search(
            [("model_id", "=", main.model_id.id), ("code", "=", main.code), ("id", "!=", main.id)],
            order="id",
        )
        active = copies.filtered("active")
        if len(active) + 1 < wanted:
            missing = wanted - 1 - len(active)
            revived = (copies - active)[:missing]
            revived.write({"active": True, "nextcall": main.nextcall})
            for index in range(missing - len(revived)):
                main.copy(
                    {
                        "name": "%s (worker %s)" % (main.name, len(copies) + index + 2),
                        "nextcall": main.nextcall,
                        "active": True,
                    }
                )
            _logger.info("Mail Sync: %s scheduled actions sync in parallel", wanted)
        elif len(active) + 1 > wanted:
            extra = active[wanted - 1 :]
            try:
                with self.env.cr.savepoint():
                    extra._try_lock()  # one running in another worker: archive it next time
                    extra.write({"active": False})
            except Exception:  # noqa: BLE001 - lock not available
                _logger.info("Mail Sync: a scheduled action to archive is running; later")
        return Cron.search(
            [("model_id", "=", main.model_id.id), ("code", "=", main.code), ("active", "=", True)]
        )

    @api.model
    def _cron_budget(self, time_budget=None):
        """The run's time budget, shortened so that Odoo's real-time limit of cron workers
        (``--limit-time-real-cron``, else ``--limit-time-real``: 120 s by default) never
        interrupts a run: the limit covers the whole round of a worker, in which Odoo repeats a
        job that reports remaining work up to 10 times. Threaded servers tell when the round
        started; prefork workers do not, so each run gets a tenth of the limit there."""
        budget = float(time_budget or self._get_param("cron_time_budget", 240))
        cron_limit = odoo_config.get("limit_time_real_cron") or 0
        if cron_limit > 0:
            limit = cron_limit
        elif cron_limit < 0 or not odoo_config.get("workers"):
            limit = odoo_config.get("limit_time_real") or 0  # what odoo/service/server.py applies
        else:
            limit = 0  # prefork with --limit-time-real-cron=0: no limit
        if limit <= 0:
            return budget
        started = getattr(threading.current_thread(), "start_time", None)
        if started:
            return min(budget, started + 0.8 * limit - time.time())
        return min(budget, 0.8 * limit / MAX_RUNS_PER_ROUND)

    # ------------------------------------------------------------------ late linking, retry

    def _read_places(self, places, run):
        """Read the messages at ``places`` (``{mail.sync.folder: [uid]}``) again on the server,
        match them with the run's policy (a SyncPolicy) and record what matches (bad ones isolated
        and skipped, no cursor moved). Returns ``{folder: (uids still there, uids matched)}``;
        a folder whose UIDVALIDITY changed or that is gone gives ``(set(), set())``. Raises
        SyncError when the mailbox cannot be reached."""
        self.ensure_one()
        Matcher = self.env["mail.sync.matcher"]
        limits = self._sync_limits()
        outcome = {}
        with ImapSession(self._mail_config()) as session:
            for folder, uids in places.items():
                try:
                    uidvalidity, _uidnext = session.examine(folder.name)
                except errors.SyncError as exc:
                    if exc.kind != "folder_missing":
                        raise
                    outcome[folder] = (set(), set())
                    continue
                if uidvalidity != (folder.uidvalidity or 0):
                    outcome[folder] = (set(), set())
                    continue
                state = FolderState(
                    name=folder.name,
                    role=folder.role,
                    uidvalidity=uidvalidity,
                    last_uid=folder.last_uid,
                )
                run.folders[folder.name] = folder
                seen, matched, _report = sync.read_uids(
                    session,
                    state,
                    uids,
                    limits=limits,
                    matcher=lambda headers: Matcher._match(self, headers, run.own, run.policy),
                    recorder=lambda fs, items, _last: self._record_batch(run, fs, items, None),
                    on_errors=lambda fs, errs: run.pending_errors.extend(errs),
                )
                outcome[folder] = (seen, matched)
        return outcome

    def _late_link(self):
        """Fetch this mailbox's pending index rows from the server and record what matches now.
        Returns the number of messages recorded."""
        self.ensure_one()
        Index = self.env["mail.sync.header.index"].sudo()
        rows = Index.search([("mailbox_id", "=", self.id), ("pending", "=", True)])
        if not rows:
            return 0
        by_folder = defaultdict(lambda: Index)
        for row in rows:
            by_folder[row.folder_id] |= row
        policy = SyncPolicy(self, index=False, create_leads=False)
        run = SyncRun(self, policy=policy)
        before = self.synced_count
        try:
            outcome = self._read_places(
                {
                    folder: folder_rows.filtered(
                        lambda r, f=folder: r.uidvalidity == (f.uidvalidity or 0)
                    ).mapped("uid")
                    for folder, folder_rows in by_folder.items()
                },
                run,
            )
        except errors.SyncError as exc:
            _logger.info("Mail Sync: late linking of mailbox %s postponed: %s", self.id, exc)
            return 0  # the regular sync reports connection errors
        for folder, folder_rows in by_folder.items():
            seen, matched = outcome.get(folder, (set(), set()))
            # Gone, recorded (or skipped: then listed with the skipped messages), or already
            # recorded by a copy: the row is done. The others still match nothing.
            done = folder_rows.filtered(
                lambda r, seen=seen, matched=matched: (
                    r.uid not in seen or r.uid in matched or r.message_id in policy.known
                )
            )
            done.unlink()
            (folder_rows - done).write({"pending": False})
        self.invalidate_recordset(["synced_count"])
        recorded = self.synced_count - before
        _logger.info(
            "Mail Sync: late linking recorded %s message(s) of mailbox %s", recorded, self.id
        )
        return recorded

    def action_retry_skipped(self):
        """Button (owner or manager): fetch the skipped messages again and record them (with
        the limits of now). What still fails stays listed, with one more attempt."""
        self.ensure_one()
        self._check_disconnect_access()  # owner or manager
        mailbox = self._lock_for_button(
            _("A sync of this mailbox is running; try again in a minute.")
        )
        try:
            recorded, left = mailbox._retry_skipped()
        except errors.SyncError as exc:
            raise UserError(self._user_error(exc)) from None
        if left:
            message = _(
                "%(recorded)s email(s) recorded; %(left)s still skipped (see the error "
                "log for why).",
                recorded=recorded,
                left=left,
            )
        else:
            message = _(
                "%(recorded)s email(s) recorded; no skipped message left.", recorded=recorded
            )
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "warning" if left else "success",
                "title": _("Mail Sync"),
                "message": message,
                "sticky": False,
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }

    def _retry_skipped(self):
        """Read the skipped messages again: ``(recorded, still skipped)``."""
        self.ensure_one()
        Skipped = self.env["mail.sync.skipped"].sudo()
        rows = Skipped.search([("mailbox_id", "=", self.id)])
        if not rows:
            return 0, 0
        by_folder = defaultdict(lambda: Skipped)
        for row in rows:
            by_folder[row.folder_id] |= row
        policy = SyncPolicy(self, index=False)
        run = SyncRun(self, policy=policy)
        before = self.synced_count
        self._read_places(
            {folder: folder_rows.mapped("uid") for folder, folder_rows in by_folder.items()},
            run,
        )
        for folder, folder_rows in by_folder.items():
            failed = run.failed.get(folder.name, set())
            # Recorded, gone, or no longer concerning any record (or recorded by a copy).
            folder_rows.filtered(
                lambda r, failed=failed, folder=folder: (
                    r.uid not in failed or r.uidvalidity != (folder.uidvalidity or 0)
                )
            ).unlink()
        self.invalidate_recordset(["synced_count", "skipped_count"])
        left = Skipped.search_count([("mailbox_id", "=", self.id)])
        _logger.info(
            "Mail Sync: retry of the skipped messages of mailbox %s: %s recorded, %s still skipped",
            self.id,
            self.synced_count - before,
            left,
        )
        return self.synced_count - before, left

    # ------------------------------------------------------------------ fast arrival

    @api.model
    def _fast_candidates(self):
        """Enabled mailboxes the fast check may look at: the regular throttle (``next_sync``
        within ``min_interval``) is ignored, longer waits (daily cap, back-off) are not. A
        mailbox whose last sync died in the middle of a batch is left to the regular cron,
        which takes it after the others."""
        now = fields.Datetime.now()
        self.flush_model()
        self.env.cr.execute(
            SQL(
                """
            SELECT id FROM mail_sync_mailbox
             WHERE state = 'enabled' AND active AND sync_inflight IS NULL
               AND (next_sync IS NULL OR next_sync <= %s)
          ORDER BY fast_checked_at ASC NULLS FIRST, id
        """,
                now + timedelta(seconds=self._get_param("min_interval", 60)),
            )
        )
        return [row[0] for row in self.env.cr.fetchall()]

    def _has_new_mail(self):
        """True when a synced folder's UIDNEXT moved or UIDVALIDITY changed (or the mailbox was
        never synced). A connection failure answers False: the regular cron reports it."""
        self.ensure_one()
        folders = self._folder_states()
        if not folders:
            return True
        try:
            with ImapSession(self._mail_config()) as session:
                return bool(changed_folders(session, folders, unanswered_changed=False))
        except errors.SyncError as exc:
            _logger.info("Mail Sync: new-mail check of mailbox %s failed: %s", self.id, exc.kind)
            return False

    @api.model
    def _cron_fast_arrival(self, time_budget=None):
        """Scheduled action, every minute: sync the mailboxes with new mail. Returns the number
        of mailboxes synced."""
        time_budget = time_budget or self._get_param("fast_time_budget", 50)
        auto_commit = not getattr(threading.current_thread(), "testing", False)
        deadline = time.monotonic() + time_budget
        Mailbox = self.sudo()
        checked, synced = [], 0
        for mailbox_id in self._fast_candidates():
            if time.monotonic() >= deadline:
                break
            if not self._try_sync_lock(mailbox_id):
                continue  # the regular sync (or another server, or a disconnect) has it
            try:
                mailbox = Mailbox.browse(mailbox_id)
                checked.append(mailbox_id)
                if mailbox._syncable() and mailbox._has_new_mail():
                    if auto_commit:
                        mailbox._sync(deadline=deadline, auto_commit=True)
                    else:
                        with self.env.cr.savepoint():
                            mailbox._sync(deadline=deadline)
                    synced += 1
            except Exception:  # noqa: BLE001 - one mailbox never stops the others
                _logger.exception("Mail Sync: fast sync of mailbox %s failed", mailbox_id)
                if auto_commit:
                    self.env.cr.rollback()
            finally:
                self._sync_unlock(mailbox_id)
            if auto_commit:
                self.env.cr.commit()  # pylint: disable=invalid-commit
        if checked:
            self.env.cr.execute(
                SQL(
                    "UPDATE mail_sync_mailbox SET fast_checked_at = %s WHERE id = ANY(%s)",
                    fields.Datetime.now(),
                    checked,
                )
            )
            self.invalidate_model(["fast_checked_at"])
        second = self._get_param("fast_second_check", 30)
        if second > 0 and auto_commit and not self.env.context.get("mail_sync_no_second_check"):
            cron = self.env.ref(FAST_CRON, raise_if_not_found=False)
            if cron:
                cron.sudo()._trigger(fields.Datetime.now() + timedelta(seconds=second))
                self.env.cr.postcommit.add(
                    lambda dbname=self.env.cr.dbname: schedule_wakeup(dbname, second + 1)
                )
        if auto_commit:
            self.env.cr.commit()  # pylint: disable=invalid-commit
        return synced
