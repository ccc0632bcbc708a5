# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Hand-made messages for the privacy / filter / late-link / dry-run / fast-arrival tests."""

import datetime
import email.utils
import secrets

from .common import MailSyncCase


def raw_mail(
    frm,
    to,
    subject,
    *,
    cc=(),
    headers=None,
    body="Hello,\nsee you soon.\n",
    date=None,
    message_id=None,
):
    date = date or datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    message_id = message_id or f"<{secrets.token_hex(8)}@test.example>"
    lines = [
        f"From: {frm}",
        f"To: {', '.join(to) if isinstance(to, (list, tuple)) else to}",
        f"Subject: {subject}",
        f"Date: {email.utils.format_datetime(date)}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    if cc:
        lines.append(f"Cc: {', '.join(cc)}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode(), message_id


class DovecotUserCase(MailSyncCase):
    """One fresh Dovecot user per test and helpers to put mail into it."""

    def setUp(self):
        super().setUp()
        self.login, self.password = self._dovecot_user()
        self.own = self.login

    def put(self, frm, to, subject, folder="INBOX", flags=(), **kwargs):
        raw, mid = raw_mail(frm, to, subject, **kwargs)
        self.dovecot.append(self.login, folder, raw, flags=flags, when=kwargs.get("date"))
        return mid

    def received(self, frm, subject, **kwargs):
        return self.put(frm, [self.login], subject, **kwargs)

    def on(self, record):
        """Message-IDs synced onto ``record``."""
        return set(
            self.env["mail.message"]
            .sudo()
            .search(
                [
                    ("model", "=", record._name),
                    ("res_id", "=", record.id),
                    ("mail_sync_mailbox_id", "!=", False),
                ]
            )
            .mapped("message_id")
        )
