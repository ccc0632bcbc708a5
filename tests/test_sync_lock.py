# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""One lock per mailbox for every path that syncs it or pulls its credentials away: the cron,
Sync now, Retry now and disconnect. Another worker's lock is held here from a second database
session."""

import contextlib
from unittest.mock import patch

from odoo import sql_db
from odoo.exceptions import UserError
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..models.mail_sync_mailbox import ADVISORY_LOCK_KEY
from .common import MailSyncCase

MAILBOX_LOGGER = "odoo.addons.crm_mail_sync.models.mail_sync_mailbox"


@tagged("post_install", "-at_install")
class TestSyncLock(MailSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Mailbox = cls.env["mail.sync.mailbox"]
        cls.company.write({"mail_sync_mailbox_limit": 0, "mail_sync_daily_cap": 0})

    def _connected(self, user):
        login, password = self._dovecot_user()
        return self._enabled_mailbox(user, login, password, sync_days=0)

    @contextlib.contextmanager
    def _synced_elsewhere(self, mailbox):
        """Another worker (database session) holds ``mailbox``'s sync lock."""
        cr = sql_db.db_connect(self.env.cr.dbname).cursor()
        try:
            cr.execute("SELECT pg_advisory_lock(%s, %s)", (ADVISORY_LOCK_KEY, mailbox.id))
            yield
        finally:
            cr.execute("SELECT pg_advisory_unlock_all()")
            cr.rollback()
            cr.close()

    def test_disconnect_refused_while_a_sync_runs(self):
        mailbox = self._connected(self.user_jr)
        with self._synced_elsewhere(mailbox):
            with self.assertRaisesRegex(
                UserError, "A sync of this mailbox is running; try again in a minute."
            ):
                mailbox.sudo()._disconnect()
            self.assertEqual(mailbox.state, "enabled")
            self.assertTrue(mailbox.has_password)
            # The cron leaves it to that worker.
            self.assertEqual(self.Mailbox._cron_sync(), 0)
            self.assertFalse(mailbox.last_sync)
        mailbox.sudo()._disconnect()
        self.assertEqual(mailbox.state, "draft")

    def test_disconnected_after_the_claim_is_skipped(self):
        gone = self._connected(self.user_jr)
        kept = self._connected(self.user_sales)
        claim = type(self.Mailbox)._claim

        def claim_then_disconnect(model, limit, exclude_ids):
            ids = claim(model, limit, exclude_ids)
            self.assertIn(gone.id, ids)
            gone.sudo()._disconnect()  # committed by another worker before the sync begins
            return ids

        with (
            patch.object(type(self.Mailbox), "_claim", claim_then_disconnect),
            mute_logger(MAILBOX_LOGGER),
        ):
            self.assertEqual(self.Mailbox._cron_sync(), 1)
        self.assertEqual(gone.state, "draft")
        self.assertFalse(gone.last_error)
        self.assertFalse(gone.last_sync)
        self.assertFalse(gone.log_ids)
        self.assertFalse(gone.folder_ids)
        self.assertEqual(kept.state, "enabled")
        self.assertTrue(kept.last_success)

    def test_manual_sync_waits_for_the_running_sync(self):
        mailbox = self._connected(self.user_jr)
        with self._synced_elsewhere(mailbox):
            with self.assertRaisesRegex(UserError, "already running"):
                mailbox.with_user(self.user_jr).action_sync_now()
            with self.assertRaisesRegex(UserError, "already running"):
                mailbox.with_user(self.user_jr).action_retry_now()
        self.assertFalse(mailbox.last_sync)
        self.assertEqual(mailbox.state, "enabled")
        action = mailbox.with_user(self.user_jr).action_sync_now()
        self.assertEqual(action["params"]["type"], "success")
        # Sync now and Retry now are one implementation: the same notification.
        action = mailbox.with_user(self.user_jr).action_retry_now()
        self.assertEqual(action["params"]["type"], "success")
        self.assertEqual(mailbox.state, "enabled")

    def test_fast_arrival_skips_a_locked_mailbox(self):
        mailbox = self._connected(self.user_jr)
        with self._synced_elsewhere(mailbox):
            self.assertEqual(
                self.Mailbox.with_context(mail_sync_no_second_check=True)._cron_fast_arrival(), 0
            )
        self.assertFalse(mailbox.last_sync)
        self.assertEqual(
            self.Mailbox.with_context(mail_sync_no_second_check=True)._cron_fast_arrival(), 1
        )
        self.assertTrue(mailbox.last_sync)
