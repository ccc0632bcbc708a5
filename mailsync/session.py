"""One IMAP connection to a user's mailbox, read-only, on top of imapclient.

- Transport: implicit TLS (``ssl``), ``starttls`` or ``none`` (loopback only). Certificates are
  always checked (``ssl.create_default_context``); tests may add a CA file via ``MAILSYNC_CAFILE``.
- Login: ``LOGIN`` with the password, or ``AUTHENTICATE XOAUTH2`` when ``config.access_token``.
- Folders are opened with ``EXAMINE``; messages are read with ``BODY.PEEK``: the mailbox is never
  modified (no STORE, EXPUNGE, MOVE, COPY; ``append`` exists for the caller's Sent copy only).
- ``headers_bytes`` / ``bodies_bytes`` count the bytes really read from the socket during header
  and body fetches.
- Every failure is raised as a classified :class:`~.errors.SyncError`.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import re
import smtplib
import ssl

from imapclient import IMAPClient
from imapclient import imap4 as _ic_imap4
from imapclient import tls as _ic_tls

from . import netguard, parse
from .netguard import is_loopback
from .errors import SyncError, classify
from .types import (
    ROLE_ALL,
    ROLE_INBOX,
    ROLE_SENT,
    SECURITY_NONE,
    SECURITY_SSL,
    SECURITY_STARTTLS,
    FolderState,
    HeaderInfo,
    MailboxConfig,
)

__all__ = [
    "ImapSession",
    "pick_folders",
    "test_imap",
    "test_smtp",
    "ssl_context",
    "is_loopback",
    "HEADER_FETCH",
    "SENT_FALLBACK_NAMES",
]

CAFILE_ENV = "MAILSYNC_CAFILE"
HEADER_FETCH = "BODY.PEEK[HEADER.FIELDS (%s)]" % " ".join(parse.HEADER_FIELDS)
SENT_FALLBACK_NAMES = (
    "Sent",
    "Sent Items",
    "Sent Messages",
    "INBOX.Sent",
    "[Gmail]/Sent Mail",
    "Sent Mail",
    "INBOX/Sent",
)
FETCH_CHUNK = 500  # UIDs per FETCH command (keeps command lines short)


def ssl_context(cafile: str | None = None) -> ssl.SSLContext:
    """A verifying client context; ``MAILSYNC_CAFILE`` (tests) adds a trusted CA file.

    Contexts are shared per CA file: loading the system's trust store costs tens of
    milliseconds, more than a whole idle poll of a mailbox.
    """
    return _ssl_context(cafile or os.environ.get(CAFILE_ENV) or None)


@functools.lru_cache(maxsize=8)
def _ssl_context(cafile: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if cafile:
        ctx.load_verify_locations(cafile=cafile)
    return ctx


def _close_quietly(close, fallback=None) -> None:
    """Close a connection with ``close`` (None: nothing to close), else with ``fallback`` (the
    polite way failed: drop it). Errors while closing are ignored: a connection being given up
    has nothing more to say, and the error that stopped it is what the caller reports."""
    if close is None:
        return
    try:
        close()
    except Exception:  # noqa: BLE001
        _close_quietly(fallback)


# --- imapclient with a connect timeout that also covers implicit TLS, and byte counting ------


class _Counting:
    """Mixin for imaplib.IMAP4 classes: counts bytes read from the server."""

    bytes_in = 0

    def read(self, size):
        data = super().read(size)
        self.bytes_in += len(data)
        return data

    def readline(self):
        line = super().readline()
        self.bytes_in += len(line)
        return line


class _GreetingCapabilities:
    """Mixin for imaplib.IMAP4 classes: take the capabilities from the greeting's
    ``[CAPABILITY ...]`` response code (RFC 3501 7.1) when the server sends one, instead of a
    CAPABILITY command: one round trip less per connection (an idle poll has only a few)."""

    def _get_capabilities(self):
        greeting = self.welcome if isinstance(self.welcome, bytes) else b""
        m = re.search(rb"\[CAPABILITY ([^\]]+)\]", greeting, re.I)
        if not m:
            return super()._get_capabilities()
        self.capabilities = tuple(str(m.group(1), "ascii", "replace").upper().split())
        # As the CAPABILITY command would: imapclient must not take these pre-login ones for
        # the post-login capabilities that LOGIN's answer brings (Gmail's X-GM-EXT-1).
        self.untagged_responses.pop("CAPABILITY", None)


class _PlainIMAP4(_GreetingCapabilities, _Counting, _ic_imap4.IMAP4WithTimeout):
    def __init__(self, host, port, timeout, addresses):
        self._addresses = addresses
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout=None):
        # To the addresses the network rule checked, never to a new DNS answer.
        return netguard.connect(
            self._addresses, self.port, timeout if timeout is not None else self._timeout
        )


class _TlsIMAP4(_GreetingCapabilities, _Counting, _ic_tls.IMAP4_TLS):
    def __init__(self, host, port, ssl_context, timeout, addresses):
        self._addresses = addresses
        super().__init__(host, port, ssl_context, timeout)

    # imapclient 3.1's IMAP4_TLS drops the connect timeout (imaplib passes None down):
    # a server that accepts but never completes the TLS handshake would hang forever. The
    # certificate is checked against the host name, the connection goes to a checked address.
    def _create_socket(self, timeout=None):
        sock = netguard.connect(
            self._addresses, self.port, timeout if timeout is not None else self._timeout
        )
        return _ic_tls.wrap_socket(sock, self.ssl_context, self.host)


class _Client(IMAPClient):
    def __init__(self, *args, addresses=(), **kwargs):
        self._addresses = list(addresses)
        super().__init__(*args, **kwargs)
        # imapclient sets imaplib's debug level to 5 so that imaplib logs through its logger;
        # imaplib then builds the repr() of every response *before* the logger drops it: a
        # 25 MB message body became a 57 MB string during the FETCH (peak RSS 4x the message)
        # and every body of a backfill was repr()'d for nothing.
        if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
            self._imap.debug = 0

    def _create_IMAP4(self):
        connect_timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _TlsIMAP4(
                self.host, self.port, self.ssl_context, connect_timeout, self._addresses
            )
        return _PlainIMAP4(self.host, self.port, connect_timeout, self._addresses)

    @property
    def bytes_in(self) -> int:
        return self._imap.bytes_in


def _search_date(date) -> dt.date:
    if isinstance(date, dt.datetime):
        return date.astimezone(dt.timezone.utc).date() if date.tzinfo else date.date()
    return date


def _checked_endpoint(ep, what: str, provider: str):
    """``ep`` when it can be connected to; else the configuration error a user can act on."""
    if ep is None or not ep.host or not ep.port:
        raise SyncError(
            "config",
            f"{what} server or port missing",
            host=getattr(ep, "host", None),
            port=getattr(ep, "port", None),
            provider=provider,
        )
    if ep.security not in (SECURITY_SSL, SECURITY_STARTTLS, SECURITY_NONE):
        raise SyncError(
            "config",
            f"unknown security {ep.security!r}",
            host=ep.host,
            port=ep.port,
            provider=provider,
        )
    if ep.security == SECURITY_NONE and not is_loopback(ep.host):
        raise SyncError(
            "config",
            f"unencrypted {what} is only allowed to the local machine",
            host=ep.host,
            port=ep.port,
            provider=provider,
        )
    return ep


def _resolve(ep, what: str, config) -> list[str]:
    """The checked addresses of ``ep`` (the network rule); an unencrypted connection only to
    addresses of this machine (by name, checked before, and by address)."""
    addresses = netguard.resolve(
        ep.host, ep.port, config.allowed_networks, provider=config.provider
    )
    if ep.security == SECURITY_NONE and not all(is_loopback(a) for a in addresses):
        raise SyncError(
            "config",
            f"unencrypted {what} is only allowed to the local machine",
            host=ep.host,
            port=ep.port,
            provider=config.provider,
        )
    return addresses


def _str(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class ImapSession:
    """A read-only IMAP session. Use as a context manager (connects on enter)."""

    def __init__(self, config: MailboxConfig, *, cafile: str | None = None):
        self.config = config
        self.cafile = cafile
        self.client: _Client | None = None
        self._caps: frozenset[str] = frozenset()
        self.headers_bytes = 0
        self.bodies_bytes = 0
        self.selected: str | None = None

    # -- plumbing --
    @property
    def host(self):
        return self.config.imap.host

    @property
    def port(self):
        return self.config.imap.port

    def _secrets(self):
        return [s for s in (self.config.password, self.config.access_token) if s]

    def _error(self, exc) -> SyncError:
        return classify(
            exc,
            host=self.host,
            port=self.port,
            provider=self.config.provider,
            secrets=self._secrets(),
        )

    @property
    def _c(self) -> _Client:
        if self.client is None:
            raise SyncError(
                "config",
                "the IMAP session is not connected",
                host=self.host,
                port=self.port,
                provider=self.config.provider,
            )
        return self.client

    def _call(self, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except SyncError:
            raise
        except Exception as e:  # noqa: BLE001 - every failure leaves classified
            raise self._error(e) from None

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    # -- connection --
    def connect(self) -> "ImapSession":
        cfg = self.config
        ep = _checked_endpoint(cfg.imap, "IMAP", cfg.provider)
        if not cfg.access_token and not cfg.password:
            raise SyncError(
                "config",
                "no password or access token",
                host=ep.host,
                port=ep.port,
                provider=cfg.provider,
            )
        addresses = _resolve(ep, "IMAP", cfg)
        client = None
        try:
            ctx = ssl_context(self.cafile) if ep.security != SECURITY_NONE else None
            client = _Client(
                ep.host,
                ep.port,
                ssl=ep.security == SECURITY_SSL,
                ssl_context=ctx if ep.security == SECURITY_SSL else None,
                timeout=cfg.timeout,
                addresses=addresses,
            )
            if ep.security == SECURITY_STARTTLS:
                if not client.has_capability("STARTTLS"):
                    raise SyncError(
                        "tls",
                        "the server does not offer STARTTLS",
                        host=ep.host,
                        port=ep.port,
                        provider=cfg.provider,
                    )
                client.starttls(ctx)
                client._cached_capabilities = None  # capabilities change after STARTTLS
            if cfg.access_token:
                client.oauth2_login(cfg.login, cfg.access_token)
            else:
                client.login(cfg.login, cfg.password)
            self._caps = frozenset(_str(c).upper() for c in client.capabilities())
        except Exception as e:  # noqa: BLE001
            _close_quietly(client and client.shutdown)
            raise self._error(e) from None
        self.client = client
        return self

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            _close_quietly(client.logout, client.shutdown)

    @property
    def capabilities(self) -> frozenset[str]:
        return self._caps

    @property
    def is_gmail(self) -> bool:
        return "X-GM-EXT-1" in self._caps

    @property
    def bytes_in(self) -> int:
        return self.client.bytes_in if self.client is not None else 0

    # -- folders --
    def list_folders(self) -> list[tuple[tuple[str, ...], str]]:
        """[(flags, name)] of every folder."""
        rows = self._call(self._c.list_folders)
        return [(tuple(_str(f) for f in flags), _str(name)) for flags, _delim, name in rows]

    def discover_folders(self) -> list[FolderState]:
        """INBOX and the Sent folder (special-use ``\\Sent``, else a well-known name).

        Gmail (``X-GM-EXT-1``) with an ``\\All`` folder: All Mail only, which already holds
        INBOX and Sent Mail (and archived mail) — reading those too would fetch every message's
        headers two or three times.
        """
        return pick_folders(self.list_folders(), gmail=self.is_gmail)

    def examine(self, name: str) -> tuple[int, int | None]:
        """Open ``name`` read-only (EXAMINE): (UIDVALIDITY, UIDNEXT)."""
        try:
            info = self._call(self._c.select_folder, name, readonly=True)
        except SyncError as e:
            e.folder = name
            if e.kind == "protocol" and re.search(
                r"(select|examine) failed|doesn.?t exist|"
                r"not exist|no such|unknown",
                e.detail,
                re.I,
            ):
                e.kind, e.retryable = "folder_missing", False
            raise
        self.selected = name
        uidvalidity = info.get(b"UIDVALIDITY")
        uidnext = info.get(b"UIDNEXT")
        if uidvalidity is None:
            raise SyncError(
                "protocol",
                f"no UIDVALIDITY for {name!r}",
                host=self.host,
                port=self.port,
                provider=self.config.provider,
                folder=name,
            )
        return int(uidvalidity), (int(uidnext) if uidnext is not None else None)

    def status_many(self, names) -> dict[str, tuple[int, int]]:
        """``{name: (UIDVALIDITY, UIDNEXT)}`` of ``names`` through STATUS, every command sent
        at once (pipelined: one round trip for all folders) and without opening any of them.
        A folder whose STATUS fails or lacks either value is left out: the caller EXAMINEs it,
        which reports the error properly. A dead connection raises SyncError."""
        names = list(names)
        if not names:
            return {}
        from imapclient.imap_utf7 import decode as decode_utf7
        from imapclient.response_parser import parse_response

        client = self._c
        imap = client._imap

        def run():
            tags = [
                imap._command("STATUS", client._normalise_folder(name), "(UIDNEXT UIDVALIDITY)")
                for name in names
            ]
            for tag in tags:
                try:
                    imap._command_complete("STATUS", tag)  # NO: no untagged STATUS for it
                except imap.abort:
                    raise
                except imap.error:
                    pass  # BAD (a server without STATUS): that folder is EXAMINEd
            return imap._untagged_response("OK", [None], "STATUS")[1]

        wanted = {name.upper() if name.upper() == "INBOX" else name: name for name in names}
        out = {}
        for entry in self._call(run):
            if entry is None:
                continue
            try:
                parsed = parse_response([entry])
                returned, items = (
                    parsed[0],
                    dict((_str(k).upper(), v) for k, v in zip(parsed[1][::2], parsed[1][1::2])),
                )
                returned = decode_utf7(returned) if client.folder_encode else _str(returned)
                returned = _str(returned)
            except Exception:  # noqa: BLE001 - an odd answer: EXAMINE that folder instead
                continue
            name = wanted.get(returned.upper() if returned.upper() == "INBOX" else returned)
            if (
                name is not None
                and items.get("UIDVALIDITY") is not None
                and items.get("UIDNEXT") is not None
            ):
                out[name] = (int(items["UIDVALIDITY"]), int(items["UIDNEXT"]))
        return out

    def uids_after(self, last_uid: int, since=None) -> list[int]:
        """UIDs above ``last_uid`` in the examined folder, ascending; with ``since`` (a
        date/datetime) only those whose internal date is on or after it."""
        criteria = ["UID", f"{int(last_uid) + 1}:*"]
        if since is not None:
            criteria += ["SINCE", _search_date(since)]
        uids = self._call(self._c.search, criteria)
        return sorted(u for u in (int(x) for x in uids) if u > last_uid)

    def uids_since(self, date) -> list[int]:
        """UIDs of messages whose internal date is on or after ``date`` (a date/datetime)."""
        uids = self._call(self._c.search, ["SINCE", _search_date(date)])
        return sorted(int(x) for x in uids)

    # -- fetches --
    def _fetch(self, uids, items):
        out = {}
        uids = sorted({int(u) for u in uids})
        for i in range(0, len(uids), FETCH_CHUNK):
            chunk = uids[i : i + FETCH_CHUNK]
            out.update(self._call(self._c.fetch, chunk, items))
        return out

    def fetch_headers(self, uids) -> list[HeaderInfo]:
        """HeaderInfo of each UID (ascending), from the header fields only — no bodies."""
        if not uids:
            return []
        items = [HEADER_FETCH, "RFC822.SIZE", "FLAGS", "INTERNALDATE"]
        if self.is_gmail:
            items += ["X-GM-MSGID", "X-GM-LABELS"]
        before = self.bytes_in
        try:
            data = self._fetch(uids, items)
        finally:
            self.headers_bytes += self.bytes_in - before
        folder = self.selected or ""

        def header_of(uid, body=None):
            row = data[uid]
            raw = b""
            for key, value in row.items():
                if isinstance(key, bytes) and key.upper().startswith(b"BODY[HEADER"):
                    raw = value or b""
                    break
            return parse.parse_headers(
                raw,
                folder=folder,
                uid=int(uid),
                size=row.get(b"RFC822.SIZE") or 0,
                flags=row.get(b"FLAGS") or (),
                gm_msgid=row.get(b"X-GM-MSGID"),
                gm_labels=row.get(b"X-GM-LABELS") or (),
                internal_date=row.get(b"INTERNALDATE"),
                body=body,
            )

        result = {uid: header_of(uid) for uid in sorted(data)}
        # A message without Message-ID is known by its headers and the beginning of its body
        # (parse.synthesize_message_id): one more FETCH, for those messages only.
        nameless = [uid for uid, header in result.items() if header.synthetic_id]
        if nameless:
            item = f"BODY.PEEK[TEXT]<0.{parse.BODY_DIGEST_BYTES}>"
            before = self.bytes_in
            try:
                bodies = self._fetch(nameless, [item])
            finally:
                self.headers_bytes += self.bytes_in - before
            for uid in nameless:
                body = next(
                    (
                        value
                        for key, value in (bodies.get(uid) or {}).items()
                        if isinstance(key, bytes) and key.upper().startswith(b"BODY[TEXT]")
                    ),
                    b"",
                )
                result[uid] = header_of(uid, body or b"")
        return list(result.values())

    def fetch_raw(self, uids) -> dict[int, bytes]:
        """{uid: whole raw message} via BODY.PEEK[] (flags untouched)."""
        if not uids:
            return {}
        before = self.bytes_in
        try:
            data = self._fetch(uids, ["BODY.PEEK[]"])
        finally:
            self.bodies_bytes += self.bytes_in - before
        out = {}
        for uid, row in data.items():
            body = row.get(b"BODY[]")
            if body is None:
                for key, value in row.items():
                    if isinstance(key, bytes) and key.upper().startswith(b"BODY["):
                        body = value
                        break
            if body is not None:
                out[int(uid)] = bytes(body)
        return out

    def fetch_message_items(self, uid: int, items) -> dict:
        """The FETCH row of one message for ``items`` (sections read with ``BODY.PEEK``: flags
        untouched), counted as body bytes. ``{}`` when the message is gone."""
        before = self.bytes_in
        try:
            data = self._call(self._c.fetch, [int(uid)], list(items))
        finally:
            self.bodies_bytes += self.bytes_in - before
        return data.get(int(uid)) or {}

    def append(self, folder: str, raw: bytes, flags=(), when=None) -> int | None:
        """APPEND a message (the caller's own Sent copy). Returns the new UID when known."""
        res = self._call(self._c.append, folder, raw, flags=tuple(flags), msg_time=when)
        try:
            text = _str(res)
            m = re.search(r"APPENDUID \d+ (\d+)", text)
            return int(m.group(1)) if m else None
        except Exception:  # noqa: BLE001
            return None

    def noop(self) -> None:
        self._call(self._c.noop)

    def create_folder(self, name: str) -> None:
        """CREATE a folder (Smart Mail's Sent folder when the mailbox has none)."""
        self._call(self._c.create_folder, name)


def pick_folders(rows, *, gmail: bool = False) -> list[FolderState]:
    """The folders to sync from a LIST answer ``[(flags, name)]`` (see discover_folders)."""
    by_lower = {}
    special = {}
    for flags, name in rows:
        lowered = {str(f).lower() for f in flags}
        if "\\noselect" in lowered or "\\nonexistent" in lowered:
            continue
        by_lower.setdefault(name.lower(), name)
        for role, flag in ((ROLE_SENT, "\\sent"), (ROLE_ALL, "\\all")):
            if flag in lowered and role not in special:
                special[role] = name
    if gmail and ROLE_ALL in special:
        return [FolderState(name=special[ROLE_ALL], role=ROLE_ALL)]
    folders = [FolderState(name=by_lower.get("inbox", "INBOX"), role=ROLE_INBOX)]
    sent = special.get(ROLE_SENT)
    if not sent:
        for candidate in SENT_FALLBACK_NAMES:
            if candidate.lower() in by_lower:
                sent = by_lower[candidate.lower()]
                break
    if sent and sent.lower() != "inbox":
        folders.append(FolderState(name=sent, role=ROLE_SENT))
    return folders


def test_imap(config: MailboxConfig, *, cafile: str | None = None) -> None:
    """Connect, log in, list folders and examine INBOX. Raises SyncError on failure."""
    with ImapSession(config, cafile=cafile) as s:
        folders = s.discover_folders()
        s.examine(folders[0].name)


def test_smtp(config: MailboxConfig, *, cafile: str | None = None) -> None:
    """Connect to ``config.smtp`` and log in (password or XOAUTH2), checking every reply.
    Raises SyncError on failure."""
    ep = config.smtp
    if ep is None or not ep.host or not ep.port:
        raise SyncError("config", "SMTP server or port missing", provider=config.provider)
    with smtp_connection(config, cafile=cafile):
        pass


class _PinnedSMTP(smtplib.SMTP):
    """smtplib.SMTP connected to addresses the network rule checked (TLS and STARTTLS still
    check the certificate against the host name)."""

    def __init__(self, addresses, host, port, **kwargs):
        self._addresses = list(addresses)
        super().__init__(host, port, **kwargs)

    def _get_socket(self, host, port, timeout):
        return netguard.connect(self._addresses, port, timeout)


class _PinnedSMTP_SSL(smtplib.SMTP_SSL, _PinnedSMTP):  # noqa: N801 - smtplib's name
    def __init__(self, addresses, host, port, **kwargs):
        self._addresses = list(addresses)
        smtplib.SMTP_SSL.__init__(self, host, port, **kwargs)


class smtp_connection:  # noqa: N801 - used as a context manager like a function
    """A logged-in smtplib connection to ``config.smtp``; failures raise SyncError."""

    def __init__(self, config: MailboxConfig, *, cafile: str | None = None):
        self.config = config
        self.cafile = cafile
        self.smtp = None

    def _error(self, exc):
        ep = self.config.smtp
        return classify(
            exc,
            host=ep.host,
            port=ep.port,
            provider=self.config.provider,
            secrets=[s for s in (self.config.password, self.config.access_token) if s],
        )

    def __enter__(self) -> smtplib.SMTP:
        cfg = self.config
        ep = _checked_endpoint(cfg.smtp, "SMTP", cfg.provider)
        addresses = _resolve(ep, "SMTP", cfg)
        login = cfg.smtp_login or cfg.login
        smtp = None
        try:
            ctx = ssl_context(self.cafile) if ep.security != SECURITY_NONE else None
            if ep.security == SECURITY_SSL:
                smtp = _PinnedSMTP_SSL(
                    addresses, ep.host, ep.port, timeout=cfg.timeout, context=ctx
                )
            else:
                smtp = _PinnedSMTP(addresses, ep.host, ep.port, timeout=cfg.timeout)
            smtp.ehlo()
            if ep.security == SECURITY_STARTTLS:
                if not smtp.has_extn("starttls"):
                    raise SyncError(
                        "tls",
                        "the server does not offer STARTTLS",
                        host=ep.host,
                        port=ep.port,
                        provider=cfg.provider,
                    )
                smtp.starttls(context=ctx)
                smtp.ehlo()
            if cfg.access_token:
                auth_string = f"user={login}\1auth=Bearer {cfg.access_token}\1\1"

                def _xoauth2(challenge=None):
                    # first call: the initial response; on an error challenge answer empty so
                    # that the server ends the exchange with its 5xx code.
                    return auth_string if challenge is None else ""

                smtp.auth("XOAUTH2", _xoauth2, initial_response_ok=True)
            elif cfg.password:
                smtp.login(login, cfg.password)
            else:
                raise SyncError(
                    "config",
                    "no password or access token",
                    host=ep.host,
                    port=ep.port,
                    provider=cfg.provider,
                )
        except Exception as e:  # noqa: BLE001
            _close_quietly(smtp and smtp.close)
            raise self._error(e) from None
        self.smtp = smtp
        return smtp

    def __exit__(self, *exc):
        smtp, self.smtp = self.smtp, None
        if smtp is not None:
            _close_quietly(smtp.quit, smtp.close)


# Not pytest tests, whatever their names say.
test_imap.__test__ = False
test_smtp.__test__ = False
