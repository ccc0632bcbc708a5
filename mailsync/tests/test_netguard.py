"""The network rule against real sockets: a mailbox that points at the Odoo server's own network
is refused before any packet leaves, with one and the same answer for every such address; an
administrator can allow a network; the connection goes to the checked address only."""

import socket
import time

import pytest

from mailsync import netguard
from mailsync.errors import SyncError
from mailsync.session import ImapSession, test_imap, test_smtp
from mailsync.types import Endpoint


class Listener:
    """A loopback port that counts the connections it accepts (and says nothing)."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]

    def accepted(self):
        count = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, BlockingIOError):
                return count
            conn.close()
            count += 1

    def close(self):
        self.sock.close()


def _kind(fn):
    with pytest.raises(SyncError) as caught:
        fn()
    return caught.value


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.3",
        "localhost",
        "10.1.2.3",
        "192.168.0.10",
        "172.16.5.4",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "::ffff:127.0.0.1",
        "fd00:ec2::254",
        "fe80::1",
    ],
)
def test_private_addresses_refused_at_once_with_one_answer(mail_user, host):
    cfg = mail_user.config("none", allowed_networks="", timeout=30, imap=Endpoint(host, 993, "ssl"))
    started = time.monotonic()
    error = _kind(lambda: test_imap(cfg))
    assert time.monotonic() - started < 1.0  # decided before connecting: no time-out to read
    assert error.kind == "not_allowed"
    assert (
        str(error) == f"Mail Sync does not connect to this server or port: it is not a "
        f"public mail server ({host}:993)."
    )
    assert "Allowed networks" in error.fix


def test_nothing_is_sent_to_a_refused_server(mail_user):
    listener = Listener()
    try:
        for security in ("none", "ssl", "starttls"):
            cfg = mail_user.config(
                "none",
                allowed_networks="",
                imap=Endpoint("127.0.0.1", listener.port, security),
                smtp=Endpoint("127.0.0.1", listener.port, security),
            )
            assert _kind(lambda c=cfg: test_imap(c)).kind == "not_allowed"
            assert _kind(lambda c=cfg: test_smtp(c)).kind == "not_allowed"
        assert listener.accepted() == 0
    finally:
        listener.close()


def test_allowed_network_connects_and_an_address_outside_it_stays_refused(mail_user, dovecot):
    cfg = mail_user.config("none", allowed_networks="127.0.0.1")
    test_imap(cfg)  # the test Dovecot on 127.0.0.1, an unusual port: allowed with its address
    other = mail_user.config(
        "none", allowed_networks="127.0.0.1", imap=Endpoint("127.0.0.3", dovecot.port, "none")
    )
    assert _kind(lambda: test_imap(other)).kind == "not_allowed"
    wide = mail_user.config("none", allowed_networks="10.0.0.0/8, 127.0.0.0/30")
    test_imap(wide)
    by_name = mail_user.config(
        "none", allowed_networks="localhost", imap=Endpoint("localhost", dovecot.port, "none")
    )
    test_imap(by_name)


def test_unusual_port_of_a_public_server_refused():
    def public(host, port, **_kw):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]

    assert netguard.resolve("mail.example.com", 993, "", resolver=public) == ["93.184.215.14"]
    assert netguard.resolve("mail.example.com", 587, "", resolver=public)
    error = _kind(lambda: netguard.resolve("mail.example.com", 5432, "", resolver=public))
    assert (error.kind, error.detail) == ("not_allowed", "port 5432 is not a mail port")
    assert netguard.resolve("mail.example.com", 5432, "93.184.215.0/24", resolver=public)


def test_a_name_with_one_private_address_is_refused():
    def mixed(host, port, **_kw):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port)),
        ]

    assert (
        _kind(lambda: netguard.resolve("mail.example.com", 993, "", resolver=mixed)).kind
        == "not_allowed"
    )


def test_the_connection_goes_to_the_checked_address(mail_user, dovecot, monkeypatch):
    """DNS rebinding: the name is resolved once, checked, and the socket goes to that address;
    a second, different answer is never asked for."""
    answers = []

    def rebinding(host, port, *args, **kwargs):
        answers.append(host)
        address = "127.0.0.1" if len(answers) == 1 else "127.0.0.3"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    cfg = mail_user.config(
        "none", allowed_networks="localhost", imap=Endpoint("localhost", dovecot.port, "none")
    )
    with ImapSession(cfg) as session:
        assert session.client._imap.sock.getpeername()[0] == "127.0.0.1"
        session.discover_folders()
    assert answers == ["localhost"]


def test_tls_still_checks_the_certificate_against_the_name(mail_user, dovecot, monkeypatch):
    """Pinned to the checked address, the TLS handshake still verifies the server name: a
    certificate for 127.0.0.1/localhost does not pass for another name."""
    monkeypatch.setenv("MAILSYNC_CAFILE", dovecot.cafile)
    good = mail_user.config("ssl", allowed_networks="127.0.0.1")
    test_imap(good)
    real = socket.getaddrinfo

    def alias(host, port, *args, **kwargs):
        return real("127.0.0.1" if host == "imap.alias.test" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", alias)
    other_name = mail_user.config(
        "ssl",
        allowed_networks="127.0.0.1",
        imap=Endpoint("imap.alias.test", dovecot.ssl_port, "ssl"),
    )
    assert _kind(lambda: test_imap(other_name)).kind == "certificate"
