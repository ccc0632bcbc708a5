# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Mailbox health: statuses and transitions with frozen time, the company mailbox
limit and its Pending queue, billing, the daily cap across the owner's midnight, the error
log, retry and the disconnect wizard."""

import datetime
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from freezegun import freeze_time

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..mailsync import errors
from .common import MailSyncCase

MAILBOX_LOGGER = "odoo.addons.crm_mail_sync.models.mail_sync_mailbox"
HEALTH_LOGGER = MAILBOX_LOGGER


def raw_mail(
    login,
    n,
    sender="Ann Smith <ann.smith@acme.example>",
    subject=None,
    message_id=None,
    in_reply_to=None,
    attachment=None,
    date=None,
):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = login
    msg["Subject"] = subject or f"Order {n}"
    msg["Message-ID"] = message_id or make_msgid(f"health{n}", domain="acme.example")
    msg["Date"] = format_datetime(
        date
        or datetime.datetime(2024, 5, 1, 9, 0, tzinfo=datetime.timezone.utc) + timedelta(minutes=n)
    )
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg.set_content(f"Message number {n}.\n")
    if attachment:
        msg.add_attachment(
            attachment, maintype="application", subtype="octet-stream", filename=f"quote-{n}.bin"
        )
    return msg["Message-ID"], bytes(msg)


@tagged("post_install", "-at_install")
class TestHealth(MailSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Mailbox = cls.env["mail.sync.mailbox"]
        cls.company.write({"mail_sync_mailbox_limit": 0, "mail_sync_daily_cap": 0})

    # ------------------------------------------------------------------ helpers
    def _put(self, login, raws, folder="INBOX"):
        self.dovecot.append_many(login, folder, list(raws))

    def _connected(self, user, n=0, **values):
        """A mailbox of ``user`` on a new Dovecot account holding ``n`` mails from Ann,
        enabled as after a successful connection test."""
        login, password = self._dovecot_user()
        if n:
            self._put(login, [raw_mail(login, i)[1] for i in range(n)])
        values.setdefault("sync_days", 0)
        return self._enabled_mailbox(user, login, password, **values)

    def _broken(self, user):
        """An enabled mailbox whose stored password the server refuses."""
        login, _password = self._dovecot_user()
        mailbox = self._enabled_mailbox(user, login, "wrong-password", sync_days=0)
        return mailbox, login

    def _billable(self):
        self.company.invalidate_recordset(["mail_sync_billable_count"])
        return self.company.mail_sync_billable_count

    def _fail(self, mailbox):
        with mute_logger(MAILBOX_LOGGER, HEALTH_LOGGER):
            self.assertIsNone(mailbox._sync())

    def _cron(self):
        with mute_logger(MAILBOX_LOGGER, HEALTH_LOGGER):
            return self.Mailbox._cron_sync()

    def _disconnect(self, mailbox, mode="keep", user=None):
        action = mailbox.with_user(user or mailbox.user_id).action_disconnect()
        self.assertEqual(action["res_model"], "mail.sync.disconnect.wizard")
        wizard = (
            self.env[action["res_model"]]
            .with_user(user or mailbox.user_id)
            .with_context(**action["context"])
            .create({"mode": mode})
        )
        self.assertEqual(wizard.mailbox_id, mailbox)
        wizard.action_confirm()
        self.env.invalidate_all()

    # ------------------------------------------------------------------ transitions
    def test_error_backoff_and_recovery_by_sync(self):
        mailbox, login = self._broken(self.user_sales)
        start = datetime.datetime(2024, 5, 6, 8, 0, 0)
        delays = []
        now = start
        for _attempt in range(8):
            with freeze_time(now):
                self._fail(mailbox)
            self.assertEqual(mailbox.state, "error")
            self.assertEqual(mailbox.error_since, start)
            delays.append(mailbox.next_sync - now)
            now = mailbox.next_sync
        self.assertEqual(
            [d.total_seconds() / 60 for d in delays], [5, 10, 20, 40, 80, 120, 120, 120]
        )
        self.assertEqual(mailbox.error_count, 8)
        # Not due before the back-off is over: the cron leaves it alone.
        with freeze_time(now - timedelta(seconds=1)):
            last_sync = mailbox.last_sync
            self._cron()
            self.assertEqual(mailbox.last_sync, last_sync)
        # The server accepts the stored password again: the next sync succeeds → Enabled.
        self.dovecot.add_user(login, "wrong-password")
        with freeze_time(now):
            self._cron()
        self.assertEqual(mailbox.state, "enabled")
        self.assertFalse(mailbox.error_since)
        self.assertFalse(mailbox.last_error)
        self.assertEqual(mailbox.error_count, 0)
        self.assertEqual(mailbox.last_success, now)

    def test_connection_after_exactly_48_hours_and_recovery_by_connection_test(self):
        mailbox, login = self._broken(self.user_sales)
        start = datetime.datetime(2024, 5, 6, 8, 0, 0)
        with freeze_time(start):
            self._fail(mailbox)
        self.assertEqual(mailbox.state, "error")
        with freeze_time(start + timedelta(hours=47, minutes=59, seconds=59)):
            self._cron()  # due: tries again, fails again: still Error
            self.assertEqual(mailbox.state, "error")
            self.assertEqual(mailbox.last_sync, start + timedelta(hours=47, minutes=59, seconds=59))
        with freeze_time(start + timedelta(hours=48)):
            self.assertEqual(self._cron(), 0)  # Connection: not synced any more
        self.assertEqual(mailbox.state, "connection")
        self.assertFalse(mailbox.next_sync)
        self.assertFalse(mailbox.is_billable)
        self.assertEqual(self._billable(), 0)
        last_sync = mailbox.last_sync
        with freeze_time(start + timedelta(days=5)):
            self.assertEqual(self._cron(), 0)
            with self.assertRaises(UserError):
                mailbox.with_user(self.user_sales).action_sync_now()
        self.assertEqual(mailbox.last_sync, last_sync)
        self.assertEqual(mailbox.state, "connection")
        # Only a successful connection test brings it back.
        with self.assertRaises(UserError), mute_logger(MAILBOX_LOGGER):
            mailbox.with_user(self.user_sales).action_test_connection()
        self.assertEqual(mailbox.state, "connection")
        self.dovecot.add_user(login, "wrong-password")
        with freeze_time(start + timedelta(days=5, minutes=1)):
            mailbox.with_user(self.user_sales).action_test_connection()
            self.assertEqual(mailbox.state, "enabled")
            self.assertFalse(mailbox.error_since)
            self.assertEqual(self._cron(), 1)
        self.assertEqual(mailbox.state, "enabled")
        self.assertTrue(mailbox.is_billable)

    def test_failure_at_48_hours_goes_to_connection(self):
        mailbox, _login = self._broken(self.user_jr)
        start = datetime.datetime(2024, 5, 6, 8, 0, 0)
        with freeze_time(start):
            self._fail(mailbox)
        with freeze_time(start + timedelta(hours=47, minutes=59, seconds=59)):
            self._fail(mailbox)
        self.assertEqual(mailbox.state, "error")
        with freeze_time(start + timedelta(hours=48)):
            self._fail(mailbox)
        self.assertEqual(mailbox.state, "connection")
        # A successful sync in between restarts the 48 hours.
        other, login = self._broken(self.user_sales)
        with freeze_time(start):
            self._fail(other)
        self.dovecot.add_user(login, "wrong-password")
        with freeze_time(start + timedelta(hours=47)):
            self.assertIsNotNone(other._sync())
        self.dovecot.add_user(login, "another-password")
        with freeze_time(start + timedelta(hours=48)):
            self._fail(other)
        self.assertEqual(other.state, "error")
        self.assertEqual(other.error_since, start + timedelta(hours=48))

    def test_retry_now(self):
        mailbox, login = self._broken(self.user_jr)
        self._fail(mailbox)
        self.assertTrue(mailbox.next_sync)
        # A manager retries at once, whatever the back-off says.
        with mute_logger(MAILBOX_LOGGER, HEALTH_LOGGER):
            action = mailbox.with_user(self.user_manager).action_retry_now()
        self.assertEqual(action["params"]["type"], "warning")
        self.assertIn("Authentication failed. Please try again.", action["params"]["message"])
        self.assertEqual(mailbox.error_count, 2)
        self.dovecot.add_user(login, "wrong-password")
        action = mailbox.with_user(self.user_manager).action_retry_now()
        self.assertEqual(action["params"]["type"], "success")
        self.assertEqual(mailbox.state, "enabled")
        # Connection: retry runs the connection test.
        mailbox.write({"state": "connection"})
        mailbox.with_user(self.user_manager).action_retry_now()
        self.assertEqual(mailbox.state, "enabled")
        # Another salesperson may not.
        with self.assertRaises(AccessError):
            mailbox.with_user(self.user_sales).action_retry_now()

    # ------------------------------------------------------------------ limit and billing
    def test_limit_pending_promoted_by_cron_when_first_disconnects(self):
        self.company.mail_sync_mailbox_limit = 2
        first = self._connected(self.user_jr, n=3)
        second = self._connected(self.user_sales, n=3)
        third = self._connected(self.user_manager, n=3)
        self.assertEqual(
            (first.state, second.state, third.state), ("enabled", "enabled", "pending")
        )
        self.assertTrue(third.pending_since)
        # Its connection test works and says that it waits for a seat.
        since = third.pending_since
        action = third.with_user(self.user_manager.id).action_test_connection()
        self.assertEqual(action["params"]["type"], "warning")
        self.assertIn("Pending", action["params"]["message"])
        self.assertEqual((third.state, third.pending_since), ("pending", since))
        self.assertEqual(self._billable(), 2)
        # The Pending one is never synced.
        self._cron()
        self.assertFalse(third.last_sync)
        self.assertFalse(self._synced(third))
        # The first disconnects; no action from anyone; one cron run later the third syncs.
        self._disconnect(first, "keep")
        self.assertEqual(first.state, "draft")
        self.assertEqual(third.state, "pending")
        self._cron()
        self.assertEqual(third.state, "enabled")
        self.assertFalse(third.pending_since)
        self.assertTrue(third.last_success)
        self.assertEqual(len(self._synced(third)), 9)  # 3 mails x 3 records (lead + 2 contacts)
        self.assertEqual(self._billable(), 2)

    def test_raising_limit_promotes_first_come_first_served(self):
        self.company.mail_sync_mailbox_limit = 1
        first = self._connected(self.user_jr)
        with freeze_time(datetime.datetime.now() - timedelta(minutes=10)):
            second = self._connected(self.user_sales)
        with freeze_time(datetime.datetime.now() - timedelta(minutes=5)):
            third = self._connected(self.user_manager)
        self.assertEqual(
            (first.state, second.state, third.state), ("enabled", "pending", "pending")
        )
        self.assertLess(second.pending_since, third.pending_since)
        self.company.mail_sync_mailbox_limit = 2
        # Nobody jumps the queue: a newcomer waits behind the Pending ones.
        fourth = self._connected(self.user_employee)
        self.assertEqual(fourth.state, "pending")
        # A repeated connection test of a Pending mailbox keeps its place.
        since = third.pending_since
        third._enable()
        self.assertEqual((third.state, third.pending_since), ("pending", since))
        self._cron()
        self.assertEqual(
            (second.state, third.state, fourth.state), ("enabled", "pending", "pending")
        )
        self.assertTrue(second.last_sync)  # promoted and synced in the same run
        self.company.mail_sync_mailbox_limit = 0  # no limit
        self._cron()
        self.assertEqual((third.state, fourth.state), ("enabled", "enabled"))
        self.assertEqual(self._billable(), 4)

    def test_connection_keeps_its_seat_and_billing(self):
        self.company.mail_sync_mailbox_limit = 1
        first, _login = self._broken(self.user_jr)
        start = datetime.datetime(2024, 5, 6, 8, 0, 0)
        with freeze_time(start):
            self._fail(first)
        with freeze_time(start + timedelta(hours=48)):
            self._cron()
        self.assertEqual(first.state, "connection")
        second = self._connected(self.user_sales)
        self.assertEqual(second.state, "pending")
        self._cron()
        self.assertEqual(second.state, "pending")  # Connection still holds the seat
        # Neither Pending nor Connection is billable.
        self.assertEqual(self._billable(), 0)
        settings = self.env["res.config.settings"].create({})
        self.assertEqual(settings.mail_sync_billable_count, 0)
        self.assertEqual(settings.mail_sync_mailbox_limit, 1)
        # Editing the settings of a connected mailbox does not give its seat away.
        first.password = "new-password"
        self.assertEqual(first.state, "draft")
        self.assertTrue(first.holds_seat)
        first._enable()
        self.assertEqual(first.state, "enabled")
        self.assertEqual(second.state, "pending")
        self.assertEqual(self._billable(), 1)
        # Disconnected: the seat is free; the cron promotes the Pending one.
        self._disconnect(first, "keep", user=self.user_manager)
        self._cron()
        self.assertEqual(second.state, "enabled")
        self.assertEqual(self._billable(), 1)

    # ------------------------------------------------------------------ daily cap
    def test_synced_today_counts_without_a_cap(self):
        self.assertFalse(self.company.mail_sync_daily_cap)
        login, password = self._dovecot_user()
        self._put(login, [raw for _mid, raw in (raw_mail(login, i) for i in range(5))])
        mailbox = self._enabled_mailbox(self.user_sales, login, password, sync_days=0)
        self.assertEqual(mailbox._sync().recorded, 5)
        mailbox.invalidate_recordset()
        self.assertEqual(mailbox.synced_today, 5)
        self.assertEqual(mailbox.daily_cap, 0)

    def test_daily_cap_across_midnight_in_user_timezone(self):
        self.user_sales.tz = "Asia/Tokyo"  # UTC+9: local midnight is 15:00 UTC
        self.company.mail_sync_plan = "free"
        self.assertEqual(self.company.mail_sync_daily_cap, 100)
        login, password = self._dovecot_user()
        sent = [raw_mail(login, i) for i in range(150)]
        self._put(login, [raw for _mid, raw in sent])
        mailbox = self._enabled_mailbox(self.user_sales, login, password, sync_days=0)
        self.assertEqual(mailbox.daily_cap, 100)
        day = datetime.date(2024, 5, 6)
        evening = datetime.datetime.combine(day, datetime.time(14, 50))  # 23:50 in Tokyo
        with freeze_time(evening):
            report = mailbox._sync()
            self.assertEqual(report.recorded, 100)
            self.assertEqual(report.deferred, 50)
            mailbox.invalidate_recordset()
            self.assertEqual(mailbox.synced_today, 100)
            self.assertEqual(mailbox.state, "enabled")
            # Waits for the owner's midnight (15:00 UTC), not UTC midnight.
            self.assertEqual(
                mailbox.next_sync, datetime.datetime.combine(day, datetime.time(15, 0))
            )
        registry = self.env["mail.sync.message"].sudo()
        recorded = registry.search([("mailbox_id", "=", mailbox.id)])
        self.assertEqual(len(recorded), 100)
        # Each mail is on the lead and on Ann's two contacts: counted once against the cap.
        self.assertEqual(len(self._synced(mailbox)), 300)
        with freeze_time(evening + timedelta(minutes=9, seconds=59)):  # 23:59:59 Tokyo
            self.assertEqual(self._cron(), 0)  # not due
            self.assertEqual(mailbox._sync().recorded, 0)  # at the cap: nothing asked
            mailbox.invalidate_recordset()
            self.assertEqual(mailbox.synced_today, 100)
        with freeze_time(evening + timedelta(minutes=20)):  # 00:10 Tokyo, still 6 May in UTC
            mailbox.invalidate_recordset()
            self.assertEqual(mailbox.synced_today, 0)
            self.assertEqual(self._cron(), 1)
            mailbox.invalidate_recordset()
            self.assertEqual(mailbox.synced_today, 50)
            self.assertEqual(mailbox.cap_day, datetime.date(2024, 5, 7))
        recorded = registry.search([("mailbox_id", "=", mailbox.id)])
        self.assertEqual(sorted(recorded.mapped("message_id")), sorted(mid for mid, _raw in sent))
        entries = self._synced(mailbox)
        self.assertEqual(len(entries), 450)
        lead_entries = entries.filtered(lambda m: m.model == "crm.lead")
        self.assertEqual(len(lead_entries), 150)
        self.assertEqual(len(set(lead_entries.mapped("message_id"))), 150)
        # Nothing more to sync: nothing lost, nothing twice.
        with freeze_time(evening + timedelta(hours=2)):
            mailbox.next_sync = False
            self.assertEqual(mailbox._sync().recorded, 0)
        self.assertEqual(len(self._synced(mailbox)), 450)

    def test_daily_cap_unlimited_and_custom(self):
        self.assertEqual(self.company.mail_sync_plan, "unlimited")
        mailbox = self._connected(self.user_jr, n=12)
        self.company.mail_sync_daily_cap = 5
        self.assertEqual(self.company.mail_sync_plan, "custom")
        self.assertEqual(mailbox._sync().recorded, 5)
        self.company.mail_sync_plan = "unlimited"
        self.assertEqual(self.company.mail_sync_daily_cap, 0)
        mailbox.next_sync = False
        self.assertEqual(mailbox._sync().recorded, 7)

    # ------------------------------------------------------------------ error log
    def test_error_catalogue_and_log(self):
        kinds = (
            "auth",
            "imap_disabled",
            "app_password",
            "oauth_revoked",
            "certificate",
            "dns",
            "timeout",
            "over_quota",
            "throttled",
            "folder_missing",
            "message_too_large",
        )
        unknown = errors.fix_for("unknown")
        for kind in kinds:
            for provider in ("generic", "gmail", "outlook"):
                fix = errors.fix_for(kind, provider)
                self.assertTrue(fix)
                self.assertNotEqual(fix, unknown, kind)
        self.assertNotEqual(errors.fix_for("auth", "gmail"), errors.fix_for("auth"))
        login, password = self._dovecot_user()
        mailbox = self._enabled_mailbox(self.user_jr, login, password, provider="gmail")
        Log = self.env["mail.sync.log"].sudo()
        error = errors.SyncError(
            "auth",
            f"NO [AUTHENTICATIONFAILED] bad {password}",
            host="imap.gmail.com",
            port=993,
            provider="gmail",
        )
        for _repeat in range(3):
            Log._log(mailbox, error)
        Log._log(mailbox, errors.SyncError("throttled", "NO [THROTTLED] slow down"))
        logs = Log.search([("mailbox_id", "=", mailbox.id)])
        self.assertEqual(len(logs), 2)
        auth = logs.filtered(lambda log: log.kind == "auth")
        self.assertEqual(auth.count, 3)
        self.assertEqual(auth.user_id, self.user_jr)
        self.assertEqual(auth.summary, "Authentication failed. Please try again.")
        self.assertNotIn(password, auth.message)
        self.assertIn("[redacted]", auth.message)
        self.assertEqual(auth.fix, errors.fix_for("auth", "gmail"))

    # ------------------------------------------------------------------ disconnect
    def _two_users_on_one_thread(self):
        """User A and user B both sync mail with Ann on the same lead: B's replies thread
        under A's mail, one mail is in both mailboxes; Odoo-sent mail on the lead too."""
        login_a, password_a = self._dovecot_user()
        login_b, password_b = self._dovecot_user()
        mails_a = [
            raw_mail(login_a, i, attachment=b"quote %d" % i if i == 0 else None) for i in range(6)
        ]
        shared_id, shared_raw = raw_mail(login_a, 99, subject="To both of you")
        mails_b = [
            raw_mail(
                login_b,
                50 + i,
                subject=f"Re: Order {i}",
                in_reply_to=mails_a[i][0],
                attachment=b"b attachment" if i == 0 else None,
            )
            for i in range(3)
        ]
        self._put(login_a, [raw for _mid, raw in mails_a] + [shared_raw])
        self._put(login_b, [raw for _mid, raw in mails_b] + [shared_raw])
        smtp = {"smtp_host": "127.0.0.1", "smtp_port": 2525, "smtp_security": "none"}
        a = self._enabled_mailbox(self.user_sales, login_a, password_a, sync_days=0, **smtp)
        b = self._enabled_mailbox(self.user_jr, login_b, password_b, sync_days=0)
        self.lead_ann.message_post(
            body="Sent from Odoo", message_type="comment", subtype_xmlid="mail.mt_comment"
        )
        self.lead_ann.message_post(body="An internal note", subtype_xmlid="mail.mt_note")
        self.assertEqual(a._sync().recorded, 7)
        self.assertEqual(b._sync().recorded, 4)
        return a, b, shared_id

    def test_disconnect_remove_takes_exactly_this_mailbox_entries(self):
        a, b, shared_id = self._two_users_on_one_thread()
        Message = self.env["mail.message"].sudo()
        Attachment = self.env["ir.attachment"].sudo()
        own = self._synced(a)
        shared = own.filtered(lambda m: m.message_id == shared_id)
        self.assertEqual(len(own), 21)  # 7 mails x (lead + Ann's 2 contacts)
        self.assertEqual(len(shared), 3)  # B's sync skipped them: already on the records
        others_before = {
            m.id: (m.model, m.res_id, m.body, m.parent_id.id)
            for m in Message.search([("id", "not in", own.ids)])
        }
        own_attachments = own.attachment_ids
        self.assertTrue(own_attachments)
        b_attachments = self._synced(b).attachment_ids
        self.assertTrue(b_attachments)
        # Before: A's sender routes A's mail through A's SMTP.
        self.assertEqual(
            self.Mailbox._smart_mail_for(
                self.user_sales.partner_id, a.email, sender=self.user_sales
            ),
            a,
        )

        self._disconnect(a, "remove")

        # Every other chatter entry is still there, unchanged but for threading under a
        # removed message; A's entries are gone, except the mail B synced too (B's now).
        others_after = {
            m.id: (m.model, m.res_id, m.body, m.parent_id.id)
            for m in Message.search([("id", "not in", shared.ids)])
        }
        self.assertEqual(set(others_after), set(others_before))
        for message_id, (model, res_id, body, parent_id) in others_before.items():
            after = others_after[message_id]
            self.assertEqual(after[:3], (model, res_id, body))
            self.assertIn(after[3], (parent_id, False) if parent_id in own.ids else (parent_id,))
        self.assertFalse((own - shared).exists())
        self.assertEqual(shared.exists(), shared)
        self.assertEqual(shared.mail_sync_mailbox_id, b)
        self.assertFalse(self._synced(a))
        self.assertFalse(Attachment.browse(own_attachments.ids).exists())
        self.assertEqual(Attachment.browse(b_attachments.ids).exists(), b_attachments)
        self.assertFalse(
            self.env["mail.sync.message"].sudo().search_count([("mailbox_id", "=", a.id)])
        )
        self.assertEqual(
            self.env["mail.sync.message"].sudo().search_count([("mailbox_id", "=", b.id)]), 4
        )
        self.assertTrue(self.lead_ann.message_ids.filtered(lambda m: "Sent from Odoo" in m.body))
        # Disconnected: Not connected, no secret, no cursor, no seat, no sending.
        self.assertEqual(a.state, "draft")
        self.assertFalse(a.has_password)
        self.assertFalse(
            self.env["mail.sync.credential"].sudo().search_count([("mailbox_id", "=", a.id)])
        )
        self.assertFalse(a.folder_ids)
        self.assertFalse(a.holds_seat)
        self.assertFalse(
            self.Mailbox._smart_mail_for(
                self.user_sales.partner_id, a.email, sender=self.user_sales
            )
        )
        last_sync = a.last_sync
        self._cron()
        self.assertEqual(a.last_sync, last_sync)  # never synced again
        self.assertEqual(b.state, "enabled")
        # B removes too: now the shared mail goes.
        self._disconnect(b, "remove", user=self.user_manager)
        self.assertFalse(shared.exists())

    def test_disconnect_keep_removes_nothing(self):
        a, _b, _shared_id = self._two_users_on_one_thread()
        Message = self.env["mail.message"].sudo()
        before = Message.search([]).ids
        registry_before = self.env["mail.sync.message"].sudo().search_count([])
        attachments_before = self.env["ir.attachment"].sudo().search_count([])
        self._disconnect(a, "keep")
        self.assertEqual(Message.search([]).ids, before)
        self.assertEqual(self.env["mail.sync.message"].sudo().search_count([]), registry_before)
        self.assertEqual(self.env["ir.attachment"].sudo().search_count([]), attachments_before)
        self.assertEqual(len(self._synced(a)), 21)
        self.assertEqual(a.state, "draft")
        self.assertFalse(a.has_password)
        self.assertFalse(a.folder_ids)
        # The owner's top bar offers the setup again.
        info = self.env["res.users"].with_user(self.user_sales).mail_sync_systray_info()
        self.assertTrue(info["show"])

    def test_disconnect_access(self):
        mailbox = self._connected(self.user_jr)
        with self.assertRaises(AccessError):
            mailbox.with_user(self.user_sales).action_disconnect()
        self._disconnect(mailbox, "keep", user=self.user_manager)
        self.assertEqual(mailbox.state, "draft")
