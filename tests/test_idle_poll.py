# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Idle poll: a sync where nothing changed reads the mailbox row and one query of
facts, writes one UPDATE, opens no folder (STATUS only); new mail is still found; facts
prefetched for a batch are not used once the mailbox row changed."""

from unittest.mock import patch

from odoo.tests import tagged

from ..mailsync.session import ImapSession
from ..models.mail_sync_mailbox import STORE_KEY
from .common import MailSyncCase


@tagged("post_install", "-at_install")
class TestIdlePoll(MailSyncCase):
    def _synced_mailbox(self, user, n=6):
        login, password = self._dovecot_user()
        messages = self._corpus(login, n, malformed_ratio=0)
        self._load(login, messages)
        mailbox = self._enabled_mailbox(user, login, password)
        self.assertTrue(self._sync(mailbox))
        return mailbox, login, messages

    def test_idle_poll_cost_and_new_mail(self):
        mailbox, login, _messages = self._synced_mailbox(self.user_sales)
        synced = len(self._synced(mailbox))
        examined = []
        original = ImapSession.examine

        def examine(session, name):
            examined.append(name)
            return original(session, name)

        self.env.invalidate_all()
        with patch.object(ImapSession, "examine", examine), self.assertQueryCount(3):
            report = mailbox.sudo()._sync()
        self.assertEqual(report.folders, 2)
        self.assertEqual(report.headers_seen, 0)
        self.assertEqual(examined, [], "an idle poll opens no folder (STATUS only)")
        self.assertEqual(mailbox.state, "enabled")

        # New mail in INBOX only: INBOX is examined, Sent is not, the mail is recorded.
        new = self._corpus(login, 10, malformed_ratio=0)
        inbox = [m for m in new if m.folder == "INBOX"]
        self.assertTrue(inbox)
        self._load(login, inbox)
        with patch.object(ImapSession, "examine", examine):
            report = mailbox.sudo()._sync()
        self.assertEqual(examined, ["INBOX"])
        self.assertEqual(report.headers_seen, len(inbox))
        self.assertGreaterEqual(len(self._synced(mailbox)), synced)
        # And the next poll is idle again.
        examined.clear()
        with patch.object(ImapSession, "examine", examine):
            report = mailbox.sudo()._sync()
        self.assertEqual(examined, [])
        self.assertEqual(report.headers_seen, 0)

    def test_batch_prefetch_not_used_after_a_change(self):
        first, *_rest = self._synced_mailbox(self.user_sales, n=3)
        second, login, _messages = self._synced_mailbox(self.user_jr, n=3)
        batch = (first | second).sudo()
        one, two = list(batch)  # iterating shares the prefetch set (as the cron's with_prefetch)
        facts = one._sync_facts(auto_commit=True)
        self.assertEqual(facts.mailbox_id, first.id)
        store = self.env.cr.cache[STORE_KEY]
        self.assertIn(second.id, store, "the batch's other mailbox is read with the first")
        old_token = store[second.id].password_token
        # The password changes after the prefetch (another transaction: a new write_date).
        second.password = "changed-meanwhile"
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE mail_sync_mailbox SET write_date = write_date + interval '1 second' "
            "WHERE id = %s",
            [second.id],
        )
        second.invalidate_recordset(["write_date"])
        facts = two._sync_facts(auto_commit=True)
        self.assertNotEqual(facts.password_token, old_token)
        Credential = self.env["mail.sync.credential"].sudo()
        self.assertEqual(Credential._decrypt(facts.password_token), "changed-meanwhile")
        self.assertNotIn(second.id, store)


@tagged("post_install", "-at_install")
class TestIdlePollCyrus(TestIdlePoll):
    """The idle poll on Cyrus IMAP: STATUS only there too."""

    IMAP = "cyrus"
    allow_inherited_tests_method = True
