# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Fast arrival: new mail on the lead within a minute, without a connection per user.

Design (why not IMAP IDLE): IDLE needs one open connection per mailbox for as long as Odoo runs,
held by a thread of some long-lived process. Odoo has none that fits: HTTP workers are recycled,
cron workers must return, and with several servers every one would hold (or fight for) the same
connections. Instead a scheduled action runs every minute (``ir_cron_mail_sync_fast``): for each
enabled mailbox it logs in and asks ``STATUS (UIDNEXT UIDVALIDITY)`` of its synced folders —
no SELECT, no SEARCH, no database write — and runs the regular sync (``_sync``: same matcher,
recorder, registry and cursor; nothing else records mail) only for mailboxes whose UIDNEXT moved
or whose UIDVALIDITY changed. The regular 5-minute cron keeps doing everything else (errors and
their back-off, discovery, daily caps). Mailboxes are taken with the same advisory lock as the
regular sync, so the two never sync one mailbox at once; several servers share the work.

Latency: Odoo's cron thread wakes up every 60 s (plus jitter), and other jobs may run before this
one, so a once-a-minute check leaves a message waiting up to ~70 s. Each run therefore also asks
for a second check half a minute later (``crm_mail_sync.fast_second_check``, seconds, 0: off): a
cron trigger at that time, and a one-shot timer thread in the same process that sends Odoo's
``cron_trigger`` NOTIFY then, so that the cron thread wakes up for it. No thread holds a cron
worker or an IMAP connection in between. The benchmark's "arrival" phase measures the latency
end to end against a real Odoo server.
"""
import logging
import threading
import time
from datetime import timedelta

from odoo import api, fields, models

from ..mailsync import errors
from ..mailsync.arrival import changed_folders
from ..mailsync.session import ImapSession

_logger = logging.getLogger(__name__)

FAST_CRON = "crm_mail_sync.ir_cron_mail_sync_fast"
_wakeups = {}  # db name -> pending threading.Timer (one per database and process)
_wakeups_lock = threading.Lock()


def _notify_cron(dbname):
    """Wake up the cron threads/workers listening on ``cron_trigger`` (like ir.cron._notifydb)."""
    import odoo.sql_db
    from odoo.tools import SQL

    from odoo.addons.base.models.ir_cron import ODOO_NOTIFY_FUNCTION

    with _wakeups_lock:
        _wakeups.pop(dbname, None)
    try:
        with odoo.sql_db.db_connect("postgres").cursor() as cr:
            cr.execute(SQL("SELECT %s('cron_trigger', %s)", SQL.identifier(ODOO_NOTIFY_FUNCTION),
                           dbname))
    except Exception:  # noqa: BLE001 - the regular schedule still runs
        _logger.warning("Mail Sync: could not wake up the cron for the second check",
                        exc_info=True)


def schedule_wakeup(dbname, delay):
    with _wakeups_lock:
        if dbname in _wakeups:
            return False
        timer = threading.Timer(delay, _notify_cron, args=(dbname,))
        timer.daemon = True
        _wakeups[dbname] = timer
    timer.start()
    return True


class MailSyncMailbox(models.Model):
    _inherit = "mail.sync.mailbox"

    fast_checked_at = fields.Datetime("Last new-mail check", readonly=True, copy=False)

    @api.model
    def _fast_candidates(self):
        """Enabled mailboxes the fast check may look at: the regular throttle (``next_sync``
        within ``min_interval``) is ignored, longer waits (daily cap, back-off) are not. A
        mailbox whose last sync died in the middle of a batch is left to the regular cron,
        which takes it after the others."""
        now = fields.Datetime.now()
        self.flush_model()
        self.env.cr.execute("""
            SELECT id FROM mail_sync_mailbox
             WHERE state = 'enabled' AND active AND sync_inflight IS NULL
               AND (next_sync IS NULL OR next_sync <= %s)
          ORDER BY fast_checked_at ASC NULLS FIRST, id
        """, (now + timedelta(seconds=self._get_param("min_interval", 60)),))
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
                return bool(changed_folders(session, folders))
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
        Mailbox = self.sudo().with_context(mail_sync_auto_commit=auto_commit)
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
                        mailbox._sync(deadline=deadline)
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
                self.env.cr.commit()
        if checked:
            self.env.cr.execute(
                "UPDATE mail_sync_mailbox SET fast_checked_at = %s WHERE id = ANY(%s)",
                (fields.Datetime.now(), checked))
            self.invalidate_model(["fast_checked_at"])
        second = self._get_param("fast_second_check", 30)
        if second > 0 and auto_commit and not self.env.context.get("mail_sync_no_second_check"):
            cron = self.env.ref(FAST_CRON, raise_if_not_found=False)
            if cron:
                cron.sudo()._trigger(fields.Datetime.now() + timedelta(seconds=second))
                self.env.cr.postcommit.add(
                    lambda dbname=self.env.cr.dbname: schedule_wakeup(dbname, second + 1))
        if auto_commit:
            self.env.cr.commit()
        return synced
