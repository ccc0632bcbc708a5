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
from datetime import timedelta

from odoo import api, fields, models
from odoo.tools import SQL

from ..mailsync import addresses

_logger = logging.getLogger(__name__)

LATE_LINK_CRON = "crm_mail_sync.ir_cron_mail_sync_late_link"


class MailSyncHeaderIndex(models.Model):
    _name = "mail.sync.header.index"
    _description = "Mail Sync: unmatched mail (late linking)"
    _order = "id"
    _log_access = False

    mailbox_id = fields.Many2one(
        "mail.sync.mailbox", required=True, index=True, ondelete="cascade", readonly=True
    )
    folder_id = fields.Many2one(
        "mail.sync.folder", required=True, ondelete="cascade", readonly=True
    )
    uidvalidity = fields.Integer(readonly=True)
    uid = fields.Integer("UID", readonly=True)
    message_id = fields.Char("Message-ID", readonly=True)
    date = fields.Datetime(readonly=True)
    pending = fields.Boolean(readonly=True, help="A lead or contact now has one of its addresses")

    def init(self):
        cr = self.env.cr
        cr.execute(
            SQL(
                "ALTER TABLE mail_sync_header_index "
                "ADD COLUMN IF NOT EXISTS addrs text[] NOT NULL DEFAULT '{}'"
            )
        )
        cr.execute(
            SQL(
                "CREATE INDEX IF NOT EXISTS mail_sync_header_index_addrs_gin "
                "ON mail_sync_header_index USING gin (addrs)"
            )
        )
        cr.execute(
            SQL(
                "CREATE UNIQUE INDEX IF NOT EXISTS mail_sync_header_index_place "
                "ON mail_sync_header_index (folder_id, uidvalidity, uid)"
            )
        )
        cr.execute(
            SQL(
                "CREATE INDEX IF NOT EXISTS mail_sync_header_index_pending "
                "ON mail_sync_header_index (mailbox_id) WHERE pending"
            )
        )

    # ------------------------------------------------------------------ writing
    @api.model
    def _insert(self, folder, uidvalidity, headers, naive):
        """One INSERT … SELECT unnest for the unmatched ``headers`` of ``folder``."""
        rows = [
            (
                h.uid,
                h.message_id,
                naive(h.date),
                " ".join(dict.fromkeys(a for a in h.all_addrs if a and " " not in a)),
            )
            for h in headers
        ]
        if not rows:
            return
        uids, mids, dates, addrs = zip(*rows)
        self.env.cr.execute(
            SQL(
                """
            INSERT INTO mail_sync_header_index
                   (mailbox_id, folder_id, uidvalidity, uid, message_id, date, addrs, pending)
            SELECT %s, %s, %s, u, m, d, string_to_array(a, ' '), false
              FROM unnest(%s::int[], %s::varchar[], %s::timestamp[], %s::text[]) AS t(u, m, d, a)
            ON CONFLICT (folder_id, uidvalidity, uid) DO NOTHING
        """,
                folder.mailbox_id.id,
                folder.id,
                uidvalidity or 0,
                list(uids),
                list(mids),
                list(dates),
                list(addrs),
            )
        )

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
            SQL(
                "UPDATE mail_sync_header_index SET pending = true "
                "WHERE addrs && %s::text[] AND NOT pending",
                sorted(wanted),
            )
        )
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
        self.env.cr.execute(
            SQL("""
            DELETE FROM mail_sync_header_index i USING mail_sync_mailbox m
             WHERE m.id = i.mailbox_id AND m.sync_days > 0
               AND i.date < (now() at time zone 'UTC') - m.sync_days * interval '1 day'
        """)
        )
        self.env.cr.execute(
            SQL("SELECT DISTINCT mailbox_id FROM mail_sync_header_index WHERE pending")
        )
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
                        {"pending": False}
                    )
                done += 1
            except Exception:  # noqa: BLE001 - one mailbox never stops the others
                _logger.exception("Mail Sync: late linking of mailbox %s failed", mailbox_id)
                if auto_commit:
                    self.env.cr.rollback()
                busy = True
            finally:
                Mailbox._sync_unlock(mailbox_id)
            if auto_commit:
                self.env.cr.commit()  # pylint: disable=invalid-commit
        if busy:
            cron = self.env.ref(LATE_LINK_CRON, raise_if_not_found=False)
            if cron:
                cron.sudo()._trigger(fields.Datetime.now() + timedelta(minutes=1))
        return done
