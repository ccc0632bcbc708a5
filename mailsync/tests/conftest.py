"""Fixtures of the engine's own tests (no Odoo).

The servers are the ones ``tools/test.sh`` started for the whole run (env ``MAILSYNC_DOVECOT`` /
``MAILSYNC_SMTP``), or private ones started on first use when pytest runs alone:
``python -m pytest mailsync/tests -q -p no:cacheprovider``.
"""

from __future__ import annotations

import itertools
import os
import secrets
import sys
from dataclasses import dataclass, field

import pytest

# The repository root is the addon; its engine imports as the top-level package ``mailsync``.
# (mailsync/tests has no __init__.py on purpose: pytest puts this directory, not the root, on
# sys.path in its default "prepend" import mode.)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mailsync.testing.dovecot import shared_dovecot  # noqa: E402
from mailsync.testing.smtp_server import shared_smtp  # noqa: E402

_serial = itertools.count(1)
# The test servers listen on loopback: allowed by the network rule (mailsync.netguard), as an
# administrator allows a company server.
LOOPBACK_ALLOWED = "127.0.0.1"


@dataclass
class MailUser:
    """A fresh mailbox on the shared Dovecot (and the same login on the shared SMTP server)."""

    login: str
    password: str = field(repr=False)
    server: object = field(repr=False, default=None)
    smtp: object = field(repr=False, default=None)

    @property
    def email(self):
        return self.login

    def client(self):
        """An IMAPClient logged in as this user (caller logs out)."""
        return self.server.client(self.login, self.password)

    def append(self, folder, raw, flags=(), when=None):
        return self.server.append(self.login, folder, raw, flags=flags, when=when)

    def config(self, security="none", **overrides):
        """A ``MailboxConfig`` for this user: ``security`` is 'none' (plain port), 'starttls'
        (plain port + STARTTLS) or 'ssl' (the TLS port). Trusting the test CA is the caller's
        business (``server.cafile``)."""
        from mailsync.types import Endpoint, MailboxConfig

        imap_port = self.server.ssl_port if security == "ssl" else self.server.port
        smtp_endpoint = None
        if self.smtp is not None:
            smtp_port = self.smtp.ssl_port if security == "ssl" else self.smtp.port
            smtp_endpoint = Endpoint(self.smtp.host, smtp_port, security)
        values = dict(
            email=self.login,
            imap=Endpoint(self.server.host, imap_port, security),
            login=self.login,
            smtp=smtp_endpoint,
            smtp_login=self.login,
            password=self.password,
            timeout=10.0,
            allowed_networks=LOOPBACK_ALLOWED,
        )
        values.update(overrides)
        return MailboxConfig(**values)


def new_mail_user(dovecot, smtp=None, prefix="user"):
    login = f"{prefix}{next(_serial)}-{os.getpid()}-{secrets.token_hex(3)}@example.test"
    password = "pw-" + secrets.token_urlsafe(9).replace(":", "x")
    dovecot.add_user(login, password)
    if smtp is not None:
        smtp.add_user(login, password)
    return MailUser(login, password, dovecot, smtp)


@pytest.fixture(scope="session")
def dovecot():
    """The shared Dovecot (``DovecotServer`` API: host, port, ssl_port, cafile, add_user,
    append, client, flags, reset_uidvalidity, create_folder, log_text)."""
    return shared_dovecot()


@pytest.fixture(scope="session")
def smtp():
    """The shared SMTP server (``SmtpServer`` API: host, port, ssl_port, cafile, add_user,
    messages, clear, wait_for)."""
    return shared_smtp()


@pytest.fixture
def mail_user(dovecot, smtp):
    """A fresh user with its own empty mailbox: ``.login``/``.email``, ``.password``,
    ``.client()``, ``.append()``, ``.config(security)``."""
    return new_mail_user(dovecot, smtp)


# ---- both test IMAP servers (test_imap_servers.py) ----------------------------------------------
@pytest.fixture(scope="session", params=["dovecot", "cyrus"])
def imap_server(request):
    """The shared Dovecot or the shared Cyrus (``ImapTestServer`` API: the ``dovecot`` one's,
    plus ``sent_folder`` and ``folder_name()``; Cyrus adds telemetry). Cyrus is skipped, with
    the reason, only where it cannot be had at all."""
    if request.param == "dovecot":
        return shared_dovecot()
    from mailsync.testing.cyrus import CyrusUnavailable, shared_cyrus

    try:
        return shared_cyrus()
    except CyrusUnavailable as e:
        pytest.skip(f"Cyrus unavailable: {e}")


@pytest.fixture
def imap_user(imap_server):
    """A fresh user with its own empty mailbox on ``imap_server`` (a ``MailUser``; its login
    has no dot before the @, which Cyrus cannot serve)."""
    return new_mail_user(imap_server, prefix="srv")
