# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from unittest.mock import patch

from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import MailSyncCase

MAILBOX_LOGGER = "odoo.addons.crm_mail_sync.models.mail_sync_mailbox"


@tagged("post_install", "-at_install")
class TestCron(MailSyncCase):
    def _good_mailbox(self, user, n=15):
        login, password = self._dovecot_user()
        self._load(login, self._corpus(login, n, seed=f"cron-{user.login}-{n}", malformed_ratio=0))
        return self._enabled_mailbox(user, login, password)

    def test_broken_mailbox_does_not_stop_others(self):
        # The broken one is claimed first (never synced, lowest id).
        login, _password = self._dovecot_user()
        broken = self._enabled_mailbox(self.user_jr, login, "wrong-password")
        good = self._good_mailbox(self.user_sales)
        Mailbox = self.env["mail.sync.mailbox"]
        with mute_logger(MAILBOX_LOGGER):
            done = Mailbox._cron_sync()
        self.assertEqual(done, 2)
        self.assertEqual(good.state, "enabled")
        self.assertTrue(self._synced(good))
        self.assertEqual(broken.state, "error")
        self.assertTrue(broken.error_since)
        self.assertTrue(broken.last_error.startswith("Authentication failed. Please try again."))
        log = self.env["mail.sync.log"].sudo().search([("mailbox_id", "=", broken.id)])
        self.assertEqual(len(log), 1)
        self.assertEqual(log.kind, "auth")
        self.assertEqual(log.user_id, self.user_jr)
        self.assertTrue(log.fix)
        self.assertNotIn("wrong-password", (log.message or "") + log.summary)
        # A repeat is counted on the same line, not a new one.
        broken.next_sync = False
        with mute_logger(MAILBOX_LOGGER):
            Mailbox._cron_sync()
        log.invalidate_recordset()
        self.assertEqual(
            self.env["mail.sync.log"].sudo().search_count([("mailbox_id", "=", broken.id)]), 1
        )
        self.assertEqual(log.count, 2)
        # The owner and managers read the entry; other salespeople do not.
        self.assertEqual(self.env["mail.sync.log"].with_user(self.user_jr).search([]), log)
        self.assertIn(log, self.env["mail.sync.log"].with_user(self.user_manager).search([]))
        self.assertNotIn(log, self.env["mail.sync.log"].with_user(self.user_sales).search([]))

    def test_unexpected_crash_is_contained(self):
        first = self._good_mailbox(self.user_jr)
        second = self._good_mailbox(self.user_sales)
        # A bug outside the recording of one message (the matcher here; a message that cannot
        # be recorded is isolated and skipped instead: test_bad_mail) stops that mailbox only.
        Matcher = type(self.env["mail.sync.matcher"])
        original = Matcher._match
        calls = []

        def flaky(self_, mailbox, headers, own, policy=None):
            calls.append(mailbox.id)
            if mailbox == first:
                raise RuntimeError("boom")
            return original(self_, mailbox, headers, own, policy)

        with patch.object(Matcher, "_match", flaky), mute_logger(MAILBOX_LOGGER):
            self.env["mail.sync.mailbox"]._cron_sync()
        self.assertEqual(first.state, "error")
        self.assertFalse(self._synced(first))
        self.assertFalse(first.folder_ids.filtered("last_uid"))  # cursor did not move
        self.assertEqual(second.state, "enabled")
        self.assertTrue(self._synced(second))
        self.assertEqual(
            self.env["mail.sync.log"].sudo().search([("mailbox_id", "=", first.id)]).kind, "unknown"
        )

    def test_only_due_mailboxes_and_time_budget(self):
        first = self._good_mailbox(self.user_jr, n=5)
        second = self._good_mailbox(self.user_sales, n=5)
        draft_login, draft_password = self._dovecot_user()
        draft = self._mailbox(self.user_manager, draft_login, draft_password)
        Mailbox = self.env["mail.sync.mailbox"]
        # batch size 1: the oldest (never synced, lowest id) first.
        self.assertEqual(Mailbox._cron_sync(batch_size=1), 1)
        self.assertTrue(first.last_sync)
        self.assertFalse(second.last_sync)
        self.assertEqual(Mailbox._cron_sync(batch_size=5), 1)
        self.assertTrue(second.last_sync)
        # Synced a moment ago: not due again yet; a draft mailbox is never synced.
        self.assertEqual(Mailbox._cron_sync(), 0)
        self.assertFalse(draft.last_sync)

    def test_manual_sync_raises(self):
        login, _password = self._dovecot_user()
        broken = self._enabled_mailbox(self.user_sales, login, "wrong-password")
        from odoo.exceptions import UserError

        with self.assertRaises(UserError) as caught, mute_logger(MAILBOX_LOGGER):
            broken.with_user(self.user_sales).action_sync_now()
        self.assertTrue(
            str(caught.exception).startswith("Authentication failed. Please try again.")
        )
        good = self._good_mailbox(self.user_jr, n=5)
        action = good.with_user(self.user_jr).action_sync_now()
        self.assertEqual(action["tag"], "display_notification")
        self.assertTrue(self._synced(good))

    def test_log_vacuum(self):
        login, _password = self._dovecot_user()
        broken = self._enabled_mailbox(self.user_sales, login, "wrong-password")
        with mute_logger(MAILBOX_LOGGER):
            broken._sync()
        log = self.env["mail.sync.log"].sudo().search([("mailbox_id", "=", broken.id)])
        self.assertTrue(log)
        self.env["mail.sync.log"]._gc_old_entries()
        self.assertTrue(log.exists())
        log.date = "2000-01-01 00:00:00"
        self.env["mail.sync.log"]._gc_old_entries()
        self.assertFalse(log.exists())

    def test_time_budget_cuts_the_run_and_the_next_run_continues(self):
        """A run stops inside its budget (give or take the batch under way),
        the mailbox it cut is due again at once, and the next runs finish the job: nothing lost,
        nothing recorded twice."""
        import time

        self.env["ir.config_parameter"].sudo().set_param("crm_mail_sync.fetch_batch_size", "4")
        mailboxes, expected = [], set()
        for user in (self.user_jr, self.user_sales, self.user_manager):
            login, password = self._dovecot_user()
            messages = self._corpus(login, 16, seed=f"budget-{user.login}", malformed_ratio=0)
            self._load(login, messages)
            mailbox = self._enabled_mailbox(user, login, password)
            mailboxes.append(mailbox)
            own = {login, user.email}
            expected |= {
                (mid, model, res_id)
                for mid, targets in self._expected_targets(messages, own).items()
                for model, res_id in targets
            }
        Matcher = type(self.env["mail.sync.matcher"])
        original = Matcher._match
        batch = 0.15  # each batch of headers takes at least this long

        def slow(self_, *args, **kwargs):
            time.sleep(batch)
            return original(self_, *args, **kwargs)

        budget, slack = 0.6, 1.0  # slack: the batch under way when the budget runs out
        Mailbox = self.env["mail.sync.mailbox"]
        runs, cut = [], False
        with patch.object(Matcher, "_match", slow):
            while len(runs) < 20 and any(not m.last_success or not m.next_sync for m in mailboxes):
                start = time.monotonic()
                Mailbox._cron_sync(time_budget=budget)
                runs.append(time.monotonic() - start)
                cut = cut or any(m.last_success and not m.next_sync for m in mailboxes)
        self.assertTrue(cut, "no run was cut by the budget: the test proves nothing")
        self.assertGreater(len(runs), 2)
        self.assertLess(max(runs), budget + slack, runs)
        synced = (
            self.env["mail.message"]
            .sudo()
            .search([("mail_sync_mailbox_id", "in", [m.id for m in mailboxes])])
        )
        pairs = [(m.message_id, m.model, m.res_id) for m in synced]
        self.assertEqual(len(pairs), len(set(pairs)), "a message was recorded twice")
        self.assertEqual(set(pairs), expected)
        self.assertTrue(all(m.state == "enabled" for m in mailboxes))

    def test_cron_budget_fits_odoo_real_time_limit(self):
        """Odoo stops a cron worker whose round (up to 10 runs of a job reporting remaining
        work) exceeds its real-time limit: the budget of a run keeps inside it."""
        import threading
        import time

        from odoo.tools import config

        Mailbox = self.env["mail.sync.mailbox"]
        prefork = {"workers": 2, "limit_time_real": 120}
        with patch.dict(config.options, dict(prefork, limit_time_real_cron=-1)):
            self.assertAlmostEqual(Mailbox._cron_budget(240), 9.6)  # 80 % of 120 s / 10 runs
        with patch.dict(config.options, dict(prefork, limit_time_real_cron=600)):
            self.assertAlmostEqual(Mailbox._cron_budget(240), 48)
            self.assertAlmostEqual(Mailbox._cron_budget(30), 30)
        with patch.dict(config.options, dict(prefork, limit_time_real_cron=0)):
            self.assertEqual(Mailbox._cron_budget(240), 240)  # no limit
        # A threaded server's cron thread says when its round started: what is left of it.
        threaded = {"workers": 0, "limit_time_real": 120, "limit_time_real_cron": -1}
        with (
            patch.dict(config.options, threaded),
            patch.object(threading.current_thread(), "start_time", time.time() - 90, create=True),
        ):
            self.assertTrue(5 < Mailbox._cron_budget(240) <= 6)  # 96 - 90
