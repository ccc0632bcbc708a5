# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Mailbox health: statuses and their transitions, the company mailbox limit with its Pending
queue, the daily cap, retry and disconnect.

Transitions:

- any sync error → Error, retried with a growing back-off (5 min doubling up to 2 h,
  ``next_sync``);
- 48 hours of errors without one successful sync (since ``error_since``) → Connection: not
  synced, not billable; only a successful connection test or OAuth reconnect (``_enable``)
  brings it back;
- a successful sync → Enabled.

Seats: a company may sync at most ``res.company.mail_sync_mailbox_limit`` mailboxes (0: no
limit). Enabled, Error and Connection mailboxes hold a seat (``holds_seat`` also keeps it while
the owner edits the settings of a connected mailbox, which puts it back to Not connected until
the next connection test); a mailbox enabled beyond the limit is Pending and the cron promotes
Pending mailboxes first come first served (``pending_since``) as soon as seats free.

Daily cap: ``res.company.mail_sync_daily_cap`` emails per mailbox per day in the owner's
timezone; ``synced_count`` at the start of the local day is kept in ``cap_base`` so that
``synced_today = synced_count - cap_base``. The engine gets ``quota = cap - synced_today``: it
records up to that many and keeps the cursor just below the first deferred message.
"""
import logging
import threading
from datetime import datetime, time as dtime, timedelta

import pytz
from psycopg2.errors import LockNotAvailable, SerializationFailure

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import split_every

from ..mailsync.types import SyncReport
from .res_company import BILLABLE_STATES, SEAT_STATES

_logger = logging.getLogger(__name__)

# Errors without one successful sync for this long: Connection.
CONNECTION_AFTER = timedelta(hours=48)
BACKOFF_INITIAL = 5 * 60  # seconds; crm_mail_sync.backoff_initial
BACKOFF_MAX = 2 * 60 * 60  # seconds; crm_mail_sync.backoff_max


class MailSyncMailbox(models.Model):
    _inherit = "mail.sync.mailbox"

    pending_since = fields.Datetime(
        "Pending since", readonly=True, copy=False, index="btree_not_null",
        help="When this mailbox asked for a seat of the company's mailbox limit: the Pending "
             "queue is served in this order.")
    holds_seat = fields.Boolean(
        "Holds a seat", readonly=True, copy=False,
        help="Counts against the company's mailbox limit until disconnected.")
    error_count = fields.Integer(
        "Failed attempts", readonly=True, copy=False,
        help="Failed syncs in a row; the retry delay doubles with each one.")
    cap_day = fields.Date("Cap day", readonly=True, copy=False,
                          help="The owner's local day the daily count refers to.")
    cap_base = fields.Integer("Synced before the cap day", readonly=True, copy=False)
    synced_today = fields.Integer(
        "Emails synced today", compute="_compute_synced_today",
        help="Emails recorded today (in the user's timezone).")
    daily_cap = fields.Integer(
        "Daily cap", compute="_compute_daily_cap",
        help="Most emails synced per day for this mailbox (0: unlimited); the rest wait for "
             "the next day.")
    is_billable = fields.Boolean("Billable", compute="_compute_is_billable")

    # ------------------------------------------------------------------ computes
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
    def _tz(self):
        self.ensure_one()
        facts = self._facts_in_use()
        try:
            return pytz.timezone((facts.tz if facts is not None else self.sudo().user_id.tz)
                                 or "UTC")
        except pytz.UnknownTimeZoneError:
            return pytz.utc

    def _local_today(self):
        """Today in the owner's timezone."""
        now = pytz.utc.localize(fields.Datetime.now())
        return now.astimezone(self._tz()).date()

    def _next_local_midnight(self):
        """The next midnight in the owner's timezone, as Odoo's naive UTC."""
        tz = self._tz()
        tomorrow = self._local_today() + timedelta(days=1)
        midnight = tz.localize(datetime.combine(tomorrow, dtime.min))
        return midnight.astimezone(pytz.utc).replace(tzinfo=None)

    def _cap_roll(self):
        """Start a new count when the owner's local day changed."""
        self.ensure_one()
        today = self._local_today()
        if self.cap_day != today:
            self.sudo().write({"cap_day": today, "cap_base": self.synced_count})

    def _sync_quota(self):
        self.ensure_one()
        self._cap_roll()  # also without a cap: "emails synced today" is shown to everyone
        cap = self._daily_cap_value()
        if not cap:
            return super()._sync_quota()
        return max(cap - (self.synced_count - self.cap_base), 0)

    def _daily_cap_value(self):
        """The company's daily cap (0: none); from the sync's prefetched facts when syncing."""
        facts = self._facts_in_use()
        return facts.daily_cap if facts is not None else self.company_id.mail_sync_daily_cap

    # ------------------------------------------------------------------ sync outcome
    def _sync(self, raise_on_error=False, deadline=None):
        self.ensure_one()
        if self._daily_cap_value() and self._sync_quota() == 0:
            # Today's cap is used up: nothing to ask the server before the owner's midnight.
            self.sudo().write({"next_sync": self._next_local_midnight()})
            return SyncReport()
        report = super()._sync(raise_on_error=raise_on_error, deadline=deadline)
        if report is not None:
            vals = {"error_count": 0} if self.error_count else {}
            if report.deferred:
                # Messages wait for tomorrow (the cursor stays below the first of them).
                vals["next_sync"] = max(self.next_sync or fields.Datetime.now(),
                                        self._next_local_midnight())
            if vals:
                self.sudo().write(vals)
        return report

    def _backoff(self, attempts):
        """The delay before retrying after ``attempts`` failed syncs in a row."""
        initial = self._get_param("backoff_initial", BACKOFF_INITIAL)
        maximum = self._get_param("backoff_max", BACKOFF_MAX)
        return timedelta(seconds=min(initial * 2 ** min(max(attempts, 1) - 1, 20), maximum))

    def _connection_lost(self, now=None):
        """In error for 48 hours without a successful sync."""
        self.ensure_one()
        now = now or fields.Datetime.now()
        since = self.error_since or self.last_success
        return bool(since) and now - since >= CONNECTION_AFTER

    def _sync_failed(self, sync_error):
        super()._sync_failed(sync_error)
        now = fields.Datetime.now()
        attempts = self.error_count + 1
        vals = {"error_count": attempts, "next_sync": now + self._backoff(attempts)}
        if self._connection_lost(now):
            vals.update(state="connection", next_sync=False)
            _logger.warning("Mail Sync: mailbox %s could not sync for two days: Connection "
                            "(no longer synced until a connection test succeeds)", self.id)
        self.sudo().write(vals)

    @api.model
    def _check_connection_lost(self):
        """Error mailboxes without a successful sync for 48 hours go to Connection."""
        limit = fields.Datetime.now() - CONNECTION_AFTER
        lost = self.sudo().search([
            ("state", "=", "error"),
            "|", ("error_since", "<=", limit),
            "&", ("error_since", "=", False), ("last_success", "<=", limit),
        ])
        if lost:
            _logger.warning("Mail Sync: mailbox(es) %s could not sync for two days: Connection",
                            lost.ids)
            lost.write({"state": "connection", "next_sync": False})
        return lost

    # ------------------------------------------------------------------ seats
    @api.model
    def _lock_company_seats(self, company):
        """Serialise seat decisions of ``company``: a real row update, so that a concurrent
        transaction deciding on the same company fails to serialise (and is retried) instead
        of counting from an older snapshot."""
        self.env.cr.execute(
            "UPDATE res_company SET write_date = write_date WHERE id = %s", (company.id,))

    @api.model
    def _try_lock_company_seats(self, company):
        """``_lock_company_seats`` without waiting (cron): False when another transaction
        holds the company row or changed it since this one's snapshot."""
        try:
            with self.env.cr.savepoint():
                self.env.cr.execute(
                    "SELECT id FROM res_company WHERE id = %s FOR NO KEY UPDATE NOWAIT",
                    (company.id,), log_exceptions=False)
                self.env.cr.execute(
                    "UPDATE res_company SET write_date = write_date WHERE id = %s",
                    (company.id,), log_exceptions=False)
        except (LockNotAvailable, SerializationFailure):
            return False
        return True

    @api.model
    def _seats_used(self, company, exclude_ids=()):
        self.flush_model(["state", "holds_seat", "company_id", "active"])
        self.env.cr.execute("""
            SELECT count(*) FROM mail_sync_mailbox
             WHERE company_id = %s AND active AND (state IN %s OR holds_seat)
               AND NOT (id = ANY(%s))
        """, (company.id, SEAT_STATES, list(exclude_ids)))
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
        queued = [("company_id", "=", self.company_id.id), ("state", "=", "pending"),
                  ("id", "!=", self.id)]
        if self.state == "pending" and self.pending_since:
            queued += ["|", ("pending_since", "<", self.pending_since),
                       "&", ("pending_since", "=", self.pending_since), ("id", "<", self.id)]
        ahead = self.sudo().search_count(queued)
        return self._seats_used(self.company_id, [self.id]) + ahead < limit

    def _take_seat(self):
        """Enabled, holding a seat (core ``_enable``)."""
        super()._enable()
        self.sudo().with_context(mail_sync_keep_state=True).write({
            "holds_seat": True, "pending_since": False, "error_count": 0})

    def _enable(self):
        """A successful connection test (or OAuth connection): Enabled when the company has a
        seat for the mailbox, else Pending (keeping its place if it already waited)."""
        now = fields.Datetime.now()
        for company in self.company_id:
            self._lock_company_seats(company)
        for mailbox in self.sudo():
            if mailbox._seat_available():
                mailbox._take_seat()
                continue
            _logger.info("Mail Sync: mailbox %s is Pending (company mailbox limit reached)",
                         mailbox.id)
            mailbox.with_context(mail_sync_keep_state=True).write({
                "state": "pending",
                "pending_since": (mailbox.pending_since if mailbox.state == "pending"
                                  else False) or now,
                "holds_seat": False,
                "error_since": False,
                "last_error": False,
                "next_sync": False,
                "error_count": 0,
            })

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
            _logger.info("Mail Sync: Pending mailbox(es) %s promoted (a seat is free)",
                         promoted.ids)
        return promoted

    @api.model
    def _trigger_promotion(self):
        """A seat may have freed: let the cron promote the queue soon."""
        if self.sudo().search_count([("state", "=", "pending")], limit=1):
            cron = self.env.ref("crm_mail_sync.ir_cron_mail_sync", raise_if_not_found=False)
            if cron:
                cron.sudo()._trigger()

    @api.model
    def _cron_sync(self, batch_size=None, time_budget=None):
        """Before syncing: Error → Connection after 48 hours, then Pending promotions (the
        promoted mailboxes are due at once, so they sync in this same run)."""
        self._check_connection_lost()
        self._promote_pending()
        self.env.flush_all()
        if not getattr(threading.current_thread(), "testing", False):
            self.env.cr.commit()  # release the company rows locked by the promotion
        return super()._cron_sync(batch_size=batch_size, time_budget=time_budget)

    def unlink(self):
        frees = self.filtered(lambda m: m.active and m._holds_seat())
        res = super().unlink()
        if frees:
            self._trigger_promotion()
        return res

    # ------------------------------------------------------------------ buttons
    def action_test_connection(self):
        """A successful test beyond the company's mailbox limit says that the mailbox waits."""
        action = super().action_test_connection()
        if self.state == "pending" and isinstance(action, dict) and action.get("params"):
            action["params"].update(
                type="warning",
                message=_("The connection works, but %s is Pending: the company's mailbox "
                          "limit is reached. It starts syncing by itself as soon as a seat "
                          "frees.", self.email))
        return action

    def action_retry_now(self):
        """Button (owner or manager): Error/Enabled → sync now; Connection → test the
        connection (the only way back), which enables the mailbox again."""
        self.ensure_one()
        self._check_disconnect_access()  # owner or manager (mail_sync_access.py)
        if self.state == "connection":
            action = self.sudo().action_test_connection()
            cron = self.env.ref("crm_mail_sync.ir_cron_mail_sync", raise_if_not_found=False)
            if cron:
                cron.sudo()._trigger()
            return action
        if self.state == "pending":
            raise UserError(_(
                "%s waits for a seat: raise the company's mailbox limit or disconnect another "
                "mailbox.", self.email))
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
                raise UserError(_("A sync of this mailbox is running; try again in a "
                                  "minute."))
        for mailbox in self.sudo():
            if remove:
                mailbox._remove_synced()
            self.env["mail.sync.credential"].sudo().search(
                [("mailbox_id", "=", mailbox.id)]).unlink()
            mailbox.folder_ids.unlink()
            mailbox.with_context(mail_sync_keep_state=True).write({
                "state": "draft",
                "holds_seat": False,
                "pending_since": False,
                "error_since": False,
                "error_count": 0,
                "last_error": False,
                "next_sync": False,
            })
            _logger.info("Mail Sync: mailbox %s disconnected (%s)", mailbox.id,
                         "synced mail removed" if remove else "synced mail kept")
        self._trigger_promotion()

    def _remove_synced(self):
        """Delete the chatter entries this mailbox's sync created (and their attachments) and
        its registry. An entry another mailbox also synced (its registry holds the Message-ID:
        its sync skipped the entry already on the record) is handed over to that mailbox
        instead, since it is that user's synced mail too. Nothing else is touched."""
        self.ensure_one()
        Message = self.env["mail.message"].sudo()
        Registry = self.env["mail.sync.message"].sudo()
        messages = Message.search([("mail_sync_mailbox_id", "=", self.id)])
        if messages:
            self.env.cr.execute("""
                SELECT DISTINCT ON (r.message_id) r.message_id, r.id, r.mailbox_id
                  FROM mail_sync_message r
                 WHERE r.mailbox_id != %s AND r.message_id = ANY(%s)
              ORDER BY r.message_id, r.id
            """, (self.id, list(set(filter(None, messages.mapped("message_id"))))))
            heirs = {mid: (rid, mbid) for mid, rid, mbid in self.env.cr.fetchall()}
            handed = messages.filtered(lambda m: m.message_id in heirs)
            for message in handed:
                registry_id, mailbox_id = heirs[message.message_id]
                message.write({"mail_sync_mailbox_id": mailbox_id})
                Registry.browse(registry_id).write({"mail_message_ids": [(4, message.id)]})
            messages -= handed
        attachments = messages.attachment_ids | messages.mail_sync_attachment_ids
        if attachments:
            shared = Message.search([("attachment_ids", "in", attachments.ids),
                                     ("id", "not in", messages.ids)])
            attachments -= shared.attachment_ids
        Registry.search([("mailbox_id", "=", self.id)]).unlink()
        for ids in split_every(1000, messages.ids):
            Message.browse(ids).unlink()
        attachments.unlink()
        _logger.info("Mail Sync: mailbox %s: %s synced chatter entries removed", self.id,
                     len(messages))
