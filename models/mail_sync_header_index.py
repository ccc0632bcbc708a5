# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Late linking: mail that matched nothing is remembered by its place on the server.

For every message seen within the sync window that matched no lead or contact (and that the
never-log list and the auto-reply filter let through), one light row: mailbox, folder,
UIDVALIDITY, UID, Message-ID, date and the normalised addresses — no subject, no body. Rows are
bulk-inserted with one query per batch, in the transaction that moves the folder cursor.

When a lead or a contact is created or gets a new address (``crm.lead`` and
``res.partner`` create and write), the rows holding that address are marked pending and the "late
linking" scheduled action is triggered: it fetches those UIDs from the server (headers, then the
bodies that match), records them like the sync does and drops the rows. A UIDVALIDITY change
makes a folder's rows worthless: they are deleted when the new UIDVALIDITY is stored, and
checked again against the server before any fetch. Rows older than the mailbox's sync window are
pruned.
"""
import logging
import threading
import time
from collections import defaultdict
from datetime import timedelta

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..mailsync import addresses, errors, sync
from ..mailsync.session import ImapSession
from ..mailsync.types import FolderState
from .mail_sync_mailbox import SyncRun
from .mail_sync_privacy import SyncPolicy

_logger = logging.getLogger(__name__)

LATE_LINK_CRON = "crm_mail_sync.ir_cron_mail_sync_late_link"


class MailSyncHeaderIndex(models.Model):
    _name = "mail.sync.header.index"
    _description = "Mail Sync: unmatched mail (late linking)"
    _order = "id"
    _log_access = False

    mailbox_id = fields.Many2one("mail.sync.mailbox", required=True, index=True,
                                 ondelete="cascade", readonly=True)
    folder_id = fields.Many2one("mail.sync.folder", required=True, ondelete="cascade",
                                readonly=True)
    uidvalidity = fields.Integer(readonly=True)
    uid = fields.Integer("UID", readonly=True)
    message_id = fields.Char("Message-ID", readonly=True)
    date = fields.Datetime(readonly=True)
    pending = fields.Boolean(readonly=True, help="A lead or contact now has one of its addresses")

    def init(self):
        cr = self.env.cr
        cr.execute("ALTER TABLE mail_sync_header_index "
                   "ADD COLUMN IF NOT EXISTS addrs text[] NOT NULL DEFAULT '{}'")
        cr.execute("CREATE INDEX IF NOT EXISTS mail_sync_header_index_addrs_gin "
                   "ON mail_sync_header_index USING gin (addrs)")
        cr.execute("CREATE UNIQUE INDEX IF NOT EXISTS mail_sync_header_index_place "
                   "ON mail_sync_header_index (folder_id, uidvalidity, uid)")
        cr.execute("CREATE INDEX IF NOT EXISTS mail_sync_header_index_pending "
                   "ON mail_sync_header_index (mailbox_id) WHERE pending")

    # ------------------------------------------------------------------ writing
    @api.model
    def _insert(self, folder, uidvalidity, headers, naive):
        """One INSERT … SELECT unnest for the unmatched ``headers`` of ``folder``."""
        rows = [(h.uid, h.message_id, naive(h.date), " ".join(dict.fromkeys(
            a for a in h.all_addrs if a and " " not in a))) for h in headers]
        if not rows:
            return
        uids, mids, dates, addrs = zip(*rows)
        self.env.cr.execute("""
            INSERT INTO mail_sync_header_index
                   (mailbox_id, folder_id, uidvalidity, uid, message_id, date, addrs, pending)
            SELECT %s, %s, %s, u, m, d, string_to_array(a, ' '), false
              FROM unnest(%s::int[], %s::varchar[], %s::timestamp[], %s::text[]) AS t(u, m, d, a)
            ON CONFLICT (folder_id, uidvalidity, uid) DO NOTHING
        """, (folder.mailbox_id.id, folder.id, uidvalidity or 0, list(uids), list(mids),
              list(dates), list(addrs)))

    @api.model
    def _mark_pending(self, raw_addresses):
        """Rows holding one of ``raw_addresses`` become pending; the late-linking action is
        triggered when there are some. One query."""
        wanted = set()
        for value in raw_addresses:
            normalized = addresses.normalize(value) if value else None
            if normalized:
                wanted.add(normalized)
        if not wanted:
            return 0
        self.env.cr.execute(
            "UPDATE mail_sync_header_index SET pending = true "
            "WHERE addrs && %s::text[] AND NOT pending", (sorted(wanted),))
        count = self.env.cr.rowcount
        if count:
            self.invalidate_model(["pending"])
            cron = self.env.ref(LATE_LINK_CRON, raise_if_not_found=False)
            if cron:
                cron.sudo()._trigger()
        return count

    # ------------------------------------------------------------------ cron
    @api.model
    def _cron_late_link(self, time_budget=None):
        """Scheduled action (triggered): record the pending rows' mail on the records that now
        match, mailbox by mailbox; prune rows outside the sync windows."""
        auto_commit = not getattr(threading.current_thread(), "testing", False)
        Mailbox = self.env["mail.sync.mailbox"].sudo()
        deadline = time.monotonic() + (time_budget or Mailbox._get_param("cron_time_budget", 240))
        self.env.cr.execute("""
            DELETE FROM mail_sync_header_index i USING mail_sync_mailbox m
             WHERE m.id = i.mailbox_id AND m.sync_days > 0
               AND i.date < (now() at time zone 'UTC') - m.sync_days * interval '1 day'
        """)
        self.env.cr.execute(
            "SELECT DISTINCT mailbox_id FROM mail_sync_header_index WHERE pending")
        mailbox_ids = [row[0] for row in self.env.cr.fetchall()]
        done, busy = 0, False
        for mailbox_id in mailbox_ids:
            if time.monotonic() >= deadline:
                busy = True
                break
            if not Mailbox._try_sync_lock(mailbox_id):
                busy = True  # being synced: later
                continue
            try:
                mailbox = Mailbox.browse(mailbox_id)
                if mailbox._syncable():
                    mailbox._late_link()
                else:
                    self.search([("mailbox_id", "=", mailbox_id), ("pending", "=", True)]).write(
                        {"pending": False})
                done += 1
            except Exception:  # noqa: BLE001 - one mailbox never stops the others
                _logger.exception("Mail Sync: late linking of mailbox %s failed", mailbox_id)
                if auto_commit:
                    self.env.cr.rollback()
                busy = True
            finally:
                Mailbox._sync_unlock(mailbox_id)
            if auto_commit:
                self.env.cr.commit()
        if busy:
            cron = self.env.ref(LATE_LINK_CRON, raise_if_not_found=False)
            if cron:
                cron.sudo()._trigger(fields.Datetime.now() + timedelta(minutes=1))
        return done


class MailSyncFolder(models.Model):
    _inherit = "mail.sync.folder"

    def write(self, vals):
        """A new UIDVALIDITY drops the folder's index rows; the cursor write of a sync batch
        stores the batch's unmatched headers (one INSERT)."""
        if "uidvalidity" in vals:
            stale = self.filtered(lambda f: f.uidvalidity != (vals["uidvalidity"] or 0))
            if stale:
                self.env.cr.execute(
                    "DELETE FROM mail_sync_header_index WHERE folder_id = ANY(%s) "
                    "AND uidvalidity != %s", (stale.ids, vals["uidvalidity"] or 0))
        res = super().write(vals)
        holder = self.env.context.get("mail_sync_policy")
        if holder is not None and holder.pending and "uidvalidity" in vals:
            Index = self.env["mail.sync.header.index"].sudo()
            naive = self.env["mail.sync.message"]._naive
            for folder in self:
                headers = holder.pending.pop(folder.name, None)
                if headers:
                    Index._insert(folder, vals["uidvalidity"], headers, naive)
        return res


class MailSyncMailbox(models.Model):
    _inherit = "mail.sync.mailbox"

    def _read_places(self, places, run, policy):
        """Read the messages at ``places`` (``{mail.sync.folder: [uid]}``) again on the server,
        match them with ``policy`` (a SyncPolicy) and record what matches (bad ones isolated
        and skipped, no cursor moved). Returns ``{folder: (uids still there, uids matched)}``;
        a folder whose UIDVALIDITY changed or that is gone gives ``(set(), set())``. Raises
        SyncError when the mailbox cannot be reached."""
        self.ensure_one()
        Matcher = self.env["mail.sync.matcher"].with_context(mail_sync_policy=policy)
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
                state = FolderState(name=folder.name, role=folder.role, uidvalidity=uidvalidity,
                                    last_uid=folder.last_uid)
                run.folders[folder.name] = folder
                seen, matched, _report = sync.read_uids(
                    session, state, uids, limits=limits,
                    matcher=lambda headers: Matcher._match(self, headers, run.own),
                    recorder=lambda fs, items, _last: self._record_batch(run, fs, items, None),
                    on_errors=lambda fs, errs: run.pending_errors.extend(errs))
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
        run = SyncRun(self)
        holder = SyncPolicy(self, index=False, create_leads=False)
        before = self.synced_count
        try:
            outcome = self._read_places(
                {folder: folder_rows.filtered(lambda r, f=folder: r.uidvalidity == (
                    f.uidvalidity or 0)).mapped("uid") for folder, folder_rows in
                 by_folder.items()}, run, holder)
        except errors.SyncError as exc:
            _logger.info("Mail Sync: late linking of mailbox %s postponed: %s", self.id, exc)
            return 0  # the regular sync reports connection errors
        for folder, folder_rows in by_folder.items():
            seen, matched = outcome.get(folder, (set(), set()))
            # Gone, recorded (or skipped: then listed with the skipped messages), or already
            # recorded by a copy: the row is done. The others still match nothing.
            done = folder_rows.filtered(lambda r: r.uid not in seen or r.uid in matched
                                        or r.message_id in holder.known)
            done.unlink()
            (folder_rows - done).write({"pending": False})
        self.invalidate_recordset(["synced_count"])
        recorded = self.synced_count - before
        _logger.info("Mail Sync: late linking recorded %s message(s) of mailbox %s",
                     recorded, self.id)
        return recorded

    def action_retry_skipped(self):
        """Button (owner or manager): fetch the skipped messages again and record them (with
        the limits of now). What still fails stays listed, with one more attempt."""
        self.ensure_one()
        self._check_disconnect_access()  # owner or manager (mail_sync_access.py)
        mailbox = self.sudo()
        if not self._try_sync_lock(self.id, until_commit=True):
            raise UserError(_("A sync of this mailbox is running; try again in a minute."))
        if not mailbox._syncable():
            raise UserError(_("Test the connection first: Mail Sync is not enabled for %s.",
                              self.email))
        try:
            recorded, left = mailbox._retry_skipped()
        except errors.SyncError as exc:
            raise UserError(self._user_error(exc)) from None
        if left:
            message = _("%(recorded)s email(s) recorded; %(left)s still skipped (see the error "
                        "log for why).", recorded=recorded, left=left)
        else:
            message = _("%(recorded)s email(s) recorded; no skipped message left.",
                        recorded=recorded)
        return {"type": "ir.actions.client", "tag": "display_notification",
                "params": {"type": "warning" if left else "success", "title": _("Mail Sync"),
                           "message": message, "sticky": False,
                           "next": {"type": "ir.actions.client", "tag": "soft_reload"}}}

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
        run = SyncRun(self)
        before = self.synced_count
        outcome = self._read_places(
            {folder: folder_rows.mapped("uid") for folder, folder_rows in by_folder.items()},
            run, SyncPolicy(self, index=False))
        for folder, folder_rows in by_folder.items():
            failed = run.failed.get(folder.name, set())
            # Recorded, gone, or no longer concerning any record (or recorded by a copy).
            folder_rows.filtered(lambda r: r.uid not in failed or
                                 r.uidvalidity != (folder.uidvalidity or 0)).unlink()
        self.invalidate_recordset(["synced_count", "skipped_count"])
        left = Skipped.search_count([("mailbox_id", "=", self.id)])
        _logger.info("Mail Sync: retry of the skipped messages of mailbox %s: %s recorded, %s "
                     "still skipped", self.id, self.synced_count - before, left)
        return self.synced_count - before, left
