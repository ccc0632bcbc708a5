"""The network rule: Mail Sync connects to public mail servers only.

Any user may type any server and port into their mailbox. Without a rule, Test connection would
probe the Odoo server's own network for them (127.0.0.1:5432, 10.0.0.0/8, the cloud metadata
address 169.254.169.254) and tell apart "refused", "timed out" and "not a mail server". So every
connection goes through :func:`resolve`:

- the host name is resolved once; every address must be public (``ipaddress``'s ``is_global``:
  not loopback, private, link-local, shared, reserved, multicast or unspecified — an IPv4
  address inside IPv6 counts as itself), unless an administrator allowed it;
- the port must be one of the usual mail ports, unless the host or address is allowed;
- the connection then goes to one of the checked addresses (the certificate is still checked
  against the host name): a DNS answer that changes between the check and the connect (DNS
  rebinding) cannot reach anything else.

``allowed`` is what an administrator listed (comma- or space-separated host names, IP addresses
and CIDR networks; e.g. ``127.0.0.1`` for a local test server, ``mail.intranet.example,
10.1.2.0/24`` for a company server). A refusal is one ``SyncError`` of kind ``not_allowed``,
the same for every refused address, decided before any packet is sent.
"""

from __future__ import annotations

import ipaddress
import socket

from .errors import SyncError

__all__ = ["MAIL_PORTS", "Allowed", "resolve", "connect", "is_public"]

# IMAP (143, 993), SMTP submission (465, 587), SMTP (25) and its common alternative (2525).
MAIL_PORTS = frozenset({25, 143, 465, 587, 993, 2525})


def is_loopback(host: str) -> bool:
    """``localhost``, ``*.localhost`` or a loopback address (``127.0.0.0/8``, ``::1``)."""
    if not host:
        return False
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(
        ".localhost"
    ):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _ip(value):
    try:
        return ipaddress.ip_address(str(value).strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_public(address) -> bool:
    """Whether ``address`` (an IP) is on the public internet."""
    ip = _ip(address)
    if ip is None:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class Allowed:
    """What an administrator allowed beyond the public internet."""

    def __init__(self, text: str | None = ""):
        self.hosts = set()
        self.networks = []
        for item in (text or "").replace(",", " ").split():
            item = item.strip().lower().rstrip(".")
            if not item:
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.hosts.add(item)

    def __bool__(self):
        return bool(self.hosts or self.networks)

    def host(self, host: str) -> bool:
        return (host or "").strip().lower().rstrip(".") in self.hosts

    def address(self, address) -> bool:
        ip = _ip(address)
        if ip is None:
            return False
        candidates = [ip] + ([ip.ipv4_mapped] if ip.version == 6 and ip.ipv4_mapped else [])
        return any(
            c in net for c in candidates for net in self.networks if c.version == net.version
        )


def _refuse(host, port, provider, why):
    return SyncError("not_allowed", why, host=host, port=port, provider=provider, retryable=False)


def resolve(
    host: str, port: int, allowed: Allowed | str | None, *, provider="generic", resolver=None
) -> list[str]:
    """The addresses of ``host`` that Mail Sync may connect to on ``port`` (in the resolver's
    order). Raises SyncError: ``not_allowed`` (a private address or an unusual port that the
    administrator did not allow), ``dns`` (the name does not resolve)."""
    if not isinstance(allowed, Allowed):
        allowed = Allowed(allowed)
    host_allowed = allowed.host(host)
    try:
        infos = (resolver or socket.getaddrinfo)(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise SyncError("dns", str(exc), host=host, port=port, provider=provider) from None
    except (UnicodeError, ValueError) as exc:
        raise SyncError(
            "dns", f"invalid server name: {exc}", host=host, port=port, provider=provider
        ) from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise SyncError("dns", "no address", host=host, port=port, provider=provider)
    if not host_allowed:
        for address in addresses:
            if not is_public(address) and not allowed.address(address):
                raise _refuse(host, port, provider, "not a public address")
        if int(port) not in MAIL_PORTS and not all(allowed.address(a) for a in addresses):
            raise _refuse(host, port, provider, f"port {port} is not a mail port")
    return addresses


def connect(addresses, port, timeout):
    """A TCP connection to the first of ``addresses`` (already checked IP addresses) that
    answers; nothing is resolved again."""
    error = None
    for address in addresses:
        sock = socket.socket(
            socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM
        )
        try:
            sock.settimeout(timeout)
            sock.connect((address, port))
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError("no address to connect to")
