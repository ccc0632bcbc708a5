# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Hostile servers at the Odoo level: a hostile IMAP server (``mailsync.testing.hostile``) in
front of the real Dovecot. Each misbehaviour ends the cron run within the configured timeout with
the right error-log entry, the Error status and a back-off; once the server behaves again, the
next run records everything (the mail that arrived meanwhile too), once."""

import os
import time
from unittest.mock import patch

from odoo import fields
from odoo.tests import tagged
from odoo.tools import mute_logger

from odoo.addons.mail.tests.common import mail_new_test_user

from ..mailsync.testing.hostile import HostileServer
from .common import MailSyncCase

MAILBOX_LOGGER = "odoo.addons.crm_mail_sync.models.mail_sync_mailbox"
TIMEOUT = 2
BOUND = 2 * TIMEOUT + 4  # connect + one answer, and the run's own work

# mode, variant, security, error kind (the engine's mailsync/tests/test_hostile.py cases)
CASES = [
    ("blackhole", None, "none", "timeout"),
    ("blackhole", None, "ssl", "timeout"),
    ("greeting_then_silence", None, "none", "timeout"),
    ("half_fetch", None, "none", "dropped"),
    ("proxy_cut", None, "none", "dropped"),
    ("garbage", None, "none", "protocol"),
    ("bad_cert", None, "ssl", "certificate"),
    ("wrong_host", None, "ssl", "certificate"),
    ("too_many_connections", None, "none", "too_many_connections"),
    ("too_many_connections", "gmail", "none", "too_many_connections"),
    ("over_quota", None, "none", "over_quota"),
    ("over_quota", "gmail", "none", "over_quota"),
    ("throttled", None, "none", "throttled"),
    ("throttled", "unavailable", "none", "throttled"),
]


@tagged("post_install", "-at_install")
class TestHostileServers(MailSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Param = cls.env["ir.config_parameter"].sudo()
        Param.set_param("crm_mail_sync.connect_timeout", str(TIMEOUT))
        Param.set_param("crm_mail_sync.fetch_batch_size", "3")
        fake = [
            cls._corpus("fake@sales.example.test", 3, seed="hostile-fake", malformed_ratio=0)[i].raw
            for i in range(3)
        ]
        cls.hostile = HostileServer("proxy", messages=fake)
        cls.hostile.start()
        cls.addClassCleanup(cls.hostile.stop)

    def _pairs(self, mailbox):
        return [(m.message_id, m.model, m.res_id) for m in self._synced(mailbox)]

    def _run_cron(self):
        start = time.monotonic()
        with mute_logger(MAILBOX_LOGGER):
            self.env["mail.sync.mailbox"]._cron_sync()
        return time.monotonic() - start

    def test_hostile_servers_end_in_time_log_back_off_and_resume_without_loss(self):
        hostile, dovecot = self.hostile, self.dovecot
        for index, (mode, variant, security, kind) in enumerate(CASES):
            with (
                self.subTest(mode=mode, variant=variant, security=security),
                patch.dict(os.environ, {"MAILSYNC_CAFILE": dovecot.cafile}),
            ):
                user = mail_new_test_user(
                    self.env,
                    login=f"hostile{index}",
                    name=f"Hostile {index}",
                    email=f"hostile{index}@ourco.example",
                    groups="base.group_user,sales_team.group_sale_salesman_all_leads",
                )
                login, password = self._dovecot_user()
                messages = self._corpus(login, 12, seed=f"hostile-{index}", malformed_ratio=0)
                first, later = messages[:8], messages[8:]
                self._load(login, first)
                hostile.mode, hostile.variant, hostile.cut_after = "proxy", None, None
                hostile.upstream = (
                    dovecot.host,
                    dovecot.ssl_port if security == "ssl" else dovecot.port,
                )
                mailbox = self._enabled_mailbox(
                    user,
                    login,
                    password,
                    imap_host=hostile.host,
                    imap_port=hostile.port,
                    imap_security=security,
                )
                own = {login, user.email}
                # 1. healthy
                self._run_cron()
                self.assertEqual(mailbox.state, "enabled", mailbox.last_error)
                self.assertEqual(
                    set(self._pairs(mailbox)),
                    {
                        (mid, model, res_id)
                        for mid, targets in self._expected_targets(first, own).items()
                        for model, res_id in targets
                    },
                )
                before = self._pairs(mailbox)
                self._load(login, later)  # mail arrives while the server misbehaves
                # 2. hostile
                if mode == "proxy_cut":
                    hostile.mode, hostile.cut_after, hostile.cut_on = "proxy", 700, 1
                else:
                    hostile.mode, hostile.variant = mode, variant
                cafile = hostile.cafile if mode == "wrong_host" else dovecot.cafile
                mailbox.next_sync = False
                with patch.dict(os.environ, {"MAILSYNC_CAFILE": cafile}):
                    elapsed = self._run_cron()
                self.assertLess(elapsed, BOUND)
                self.assertEqual(mailbox.state, "error")
                self.assertTrue(mailbox.last_error)
                self.assertNotIn(password, mailbox.last_error)
                log = self.env["mail.sync.log"].sudo().search([("mailbox_id", "=", mailbox.id)])
                self.assertEqual(log.mapped("kind"), [kind], log.mapped("message"))
                self.assertTrue(log.fix)
                self.assertGreater(mailbox.next_sync, fields.Datetime.now())  # back-off
                after = self._pairs(mailbox)
                self.assertEqual(len(after), len(set(after)))
                self.assertLessEqual(set(before), set(after))
                # 3. the server behaves again; the back-off is over
                hostile.mode, hostile.variant, hostile.cut_after = "proxy", None, None
                mailbox.next_sync = False
                self._run_cron()
                self.assertEqual(mailbox.state, "enabled", mailbox.last_error)
                self.assertFalse(mailbox.error_count)
                pairs = self._pairs(mailbox)
                self.assertEqual(len(pairs), len(set(pairs)), "a message was recorded twice")
                self.assertEqual(
                    set(pairs),
                    {
                        (mid, model, res_id)
                        for mid, targets in self._expected_targets(messages, own).items()
                        for model, res_id in targets
                    },
                )
                mailbox.active = False  # out of the next cases' cron runs
