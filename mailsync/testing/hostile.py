"""A hostile IMAP server on loopback, for reliability tests (stdlib only, threads).

``HostileServer(mode, upstream=(host, port))`` listens on ``127.0.0.1:port``. Its ``mode`` can be
changed while it runs: every new connection gets the mode in force when it was accepted, so a
test (or an Odoo-level test) points a mailbox at ``server.port`` once and makes the same server
misbehave, then "recover" by switching to ``proxy`` (a plain pass-through to the real Dovecot).

Modes (:data:`MODES`):

- ``blackhole``: accepts, never answers.
- ``greeting_then_silence``: sends a greeting, then reads and never answers.
- ``half_fetch``: speaks enough IMAP for a sync (CAPABILITY, LOGIN, LIST, EXAMINE, UID SEARCH,
  header FETCH of :attr:`messages`), then answers the first body FETCH (``BODY.PEEK[]``) with half
  a literal and drops the line.
- ``garbage``: sends random bytes (seeded) and closes.
- ``bad_cert``: implicit TLS with a fresh self-signed certificate the client does not trust.
- ``wrong_host``: implicit TLS with a certificate for another name (``cafile`` trusts it, so the
  only fault is the host name).
- ``too_many_connections``: ``* BYE [UNAVAILABLE] Too many simultaneous connections`` as the
  greeting (``variant='gmail'``: ``NO [ALERT] Too many simultaneous connections. (Failure)``
  on LOGIN).
- ``over_quota``: ``NO [OVERQUOTA] …`` on FETCH (``variant='gmail'``: ``NO [ALERT] Account
  exceeded command or bandwidth limits. (Failure)`` on LOGIN).
- ``throttled``: ``NO [THROTTLED] …`` on FETCH (``variant='unavailable'``:
  ``NO [UNAVAILABLE] Temporary failure, try again later`` on LOGIN).
- ``proxy``: pass-through to ``upstream`` (the real Dovecot); with ``cut_after`` set, the
  connection is cut ``cut_after`` bytes into the server's answer to the ``cut_on``-th body FETCH
  (``BODY.PEEK[]``) of that connection — a realistic half FETCH.

The scripted modes (``half_fetch``, ``over_quota``, ``throttled``, ``too_many_connections``)
serve :attr:`messages` (raw bytes; UIDs 1..n in INBOX; no Sent folder). :attr:`connections`
counts accepted connections; :attr:`log` keeps ``(mode, event)`` pairs for assertions.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import ssl
import tempfile
import threading

from . import LOOPBACK

__all__ = ["HostileServer", "MODES", "SCRIPTED_MODES"]

MODES = (
    "blackhole",
    "greeting_then_silence",
    "half_fetch",
    "garbage",
    "bad_cert",
    "wrong_host",
    "too_many_connections",
    "over_quota",
    "throttled",
    "proxy",
)
SCRIPTED_MODES = ("half_fetch", "over_quota", "throttled", "too_many_connections")

CAPS = "IMAP4rev1 LITERAL+ UIDPLUS SPECIAL-USE"
_BODY_FETCH = re.compile(rb"BODY\.PEEK\[\]|BODY\[\]|RFC822(?![.\w])", re.I)
_CMD = re.compile(rb"^(\S+) (?:(UID) )?(\S+)(.*)$", re.S)


def _cert(directory, names):
    """A self-signed certificate valid for ``names`` (DNS names): (cert_path, key_path)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    os.makedirs(directory, exist_ok=True)
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


class HostileServer:
    """A misbehaving IMAP server. Use as a context manager or call start()/stop()."""

    host = LOOPBACK

    def __init__(
        self,
        mode="blackhole",
        *,
        upstream=None,
        messages=(),
        variant=None,
        cut_after=None,
        cut_on=1,
        seed=0,
    ):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        self.mode = mode
        self.variant = variant
        self.upstream = upstream  # (host, port) of the real server, for 'proxy'
        self.messages = list(messages)
        self.cut_after = cut_after
        self.cut_on = cut_on
        self.seed = seed
        self.port = None
        self.connections = 0
        self.log: list[tuple[str, str]] = []
        self._sock = None
        self._threads: list[threading.Thread] = []
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._tmp = tempfile.mkdtemp(prefix="mailsync-hostile-")
        self.bad_cafile = None  # the certificate of 'bad_cert' (never trusted by the client)
        self.cafile = None  # the CA of 'wrong_host': trust it, the name is still wrong
        self._bad_ctx = self._wrong_ctx = None

    # -- lifecycle --
    def start(self):
        cert, key = _cert(os.path.join(self._tmp, "bad"), ["localhost", "mailsync-untrusted"])
        self.bad_cafile = cert
        self._bad_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._bad_ctx.load_cert_chain(cert, key)
        cert, key = _cert(os.path.join(self._tmp, "wrong"), ["imap.other-name.invalid"])
        self.cafile = cert
        self._wrong_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._wrong_ctx.load_cert_chain(cert, key)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        sock.listen(64)
        sock.settimeout(0.2)
        self._sock = sock
        self.port = sock.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name=f"hostile-{self.port}", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        with self._lock:
            socks = list(self._open)
        for s in socks:
            _close(s)
        for t in self._threads:
            t.join(timeout=3)
        import shutil

        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _track(self, s):
        with self._lock:
            self._open.add(s)
        return s

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _addr = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            mode = self.mode
            self._track(conn)
            t = threading.Thread(target=self._serve, args=(conn, mode), daemon=True)
            t.start()
            self._threads = [x for x in self._threads if x.is_alive()] + [t]

    def _note(self, mode, event):
        self.log.append((mode, event))

    def _serve(self, conn, mode):
        conn.settimeout(30)
        try:
            getattr(self, "_mode_" + mode)(conn)
        except (OSError, ssl.SSLError, ValueError) as e:
            self._note(mode, f"ended: {type(e).__name__}")
        finally:
            _close(conn)
            with self._lock:
                self._open.discard(conn)

    # -- silent modes --
    def _hold(self, conn):
        """Read and ignore until the client goes or the server stops."""
        conn.settimeout(0.2)
        while not self._stop.is_set():
            try:
                if not conn.recv(65536):
                    return
            except socket.timeout:
                continue

    def _mode_blackhole(self, conn):
        self._note("blackhole", "accepted")
        self._hold(conn)

    def _mode_greeting_then_silence(self, conn):
        conn.sendall(b"* OK [CAPABILITY " + CAPS.encode() + b"] ready.\r\n")
        self._note("greeting_then_silence", "greeted")
        self._hold(conn)

    def _mode_garbage(self, conn):
        rng = random.Random(self.seed)
        data = bytes(rng.getrandbits(8) for _ in range(4096))
        data = b"\x8f" + data.replace(b"*", b"#").replace(b"+", b"-")  # never a valid first line
        conn.sendall(data + b"\r\n" + data[:100])
        self._note("garbage", "sent")

    def _tls(self, conn, ctx, mode):
        try:
            tls = ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self._note(mode, f"handshake failed: {type(e).__name__}")
            return
        # The client accepted the certificate (it should not have): greet it anyway.
        self._note(mode, "handshake completed")
        with contextlib.suppress(OSError):
            tls.sendall(b"* OK ready.\r\n")
            self._hold(tls)

    def _mode_bad_cert(self, conn):
        self._tls(conn, self._bad_ctx, "bad_cert")

    def _mode_wrong_host(self, conn):
        self._tls(conn, self._wrong_ctx, "wrong_host")

    # -- scripted IMAP --
    def _mode_too_many_connections(self, conn):
        if self.variant == "gmail":
            self._imap(
                conn,
                "too_many_connections",
                fail_at="LOGIN",
                reply=b"NO [ALERT] Too many simultaneous connections. (Failure)",
            )
        else:
            conn.sendall(b"* BYE [UNAVAILABLE] Too many simultaneous connections\r\n")
            self._note("too_many_connections", "bye")

    def _mode_over_quota(self, conn):
        if self.variant == "gmail":
            self._imap(
                conn,
                "over_quota",
                fail_at="LOGIN",
                reply=b"NO [ALERT] Account exceeded command or bandwidth limits. (Failure)",
            )
        else:
            self._imap(
                conn,
                "over_quota",
                fail_at="FETCH",
                reply=b"NO [OVERQUOTA] Quota exceeded (mailbox for user is full)",
            )

    def _mode_throttled(self, conn):
        if self.variant == "unavailable":
            self._imap(
                conn,
                "throttled",
                fail_at="LOGIN",
                reply=b"NO [UNAVAILABLE] Temporary failure, try again later",
            )
        else:
            self._imap(
                conn,
                "throttled",
                fail_at="FETCH",
                reply=b"NO [THROTTLED] Too many commands, slow down",
            )

    def _mode_half_fetch(self, conn):
        self._imap(conn, "half_fetch", fail_at="BODY", reply=None)

    def _imap(self, conn, mode, *, fail_at, reply):
        """A minimal IMAP server over :attr:`messages` that fails at ``fail_at``
        (LOGIN | FETCH (any) | BODY (a body fetch)) with the tagged ``reply`` (None: half a
        literal, then drop)."""
        rfile = conn.makefile("rb")
        send = conn.sendall
        send(b"* OK [CAPABILITY " + CAPS.encode() + b"] hostile IMAP ready.\r\n")
        msgs = self.messages
        while not self._stop.is_set():
            line = rfile.readline(65536)
            if not line:
                return
            m = _CMD.match(line.rstrip(b"\r\n"))
            if not m:
                send(b"* BAD what?\r\n")
                continue
            tag, cmd, rest = m.group(1), m.group(3).upper(), m.group(4)
            if cmd == b"CAPABILITY":
                send(b"* CAPABILITY " + CAPS.encode() + b"\r\n" + tag + b" OK done.\r\n")
            elif cmd == b"LOGIN":
                if fail_at == "LOGIN":
                    self._note(mode, "LOGIN refused")
                    send(tag + b" " + reply + b"\r\n")
                    continue
                send(tag + b" OK [CAPABILITY " + CAPS.encode() + b"] Logged in\r\n")
            elif cmd == b"LOGOUT":
                send(b"* BYE bye\r\n" + tag + b" OK done.\r\n")
                return
            elif cmd in (b"NOOP", b"ENABLE", b"ID", b"UNSELECT", b"CLOSE"):
                send(tag + b" OK done.\r\n")
            elif cmd in (b"LIST", b"LSUB"):
                send(b'* LIST (\\HasNoChildren) "/" INBOX\r\n' + tag + b" OK done.\r\n")
            elif cmd in (b"EXAMINE", b"SELECT"):
                n = len(msgs)
                send(
                    b"* FLAGS (\\Seen \\Flagged)\r\n* %d EXISTS\r\n* 0 RECENT\r\n"
                    b"* OK [UIDVALIDITY 4242] UIDs valid\r\n* OK [UIDNEXT %d] next\r\n"
                    % (n, n + 1)
                    + tag
                    + b" OK [READ-ONLY] done.\r\n"
                )
            elif cmd == b"SEARCH":
                lo = 1
                mm = re.search(rb"UID (\d+):", rest)
                if mm:
                    lo = int(mm.group(1))
                hits = b" ".join(b"%d" % u for u in range(1, len(msgs) + 1) if u >= lo)
                send(
                    b"* SEARCH" + (b" " + hits if hits else b"") + b"\r\n" + tag + b" OK done.\r\n"
                )
            elif cmd == b"FETCH":
                body = bool(_BODY_FETCH.search(rest))
                if fail_at == "FETCH" or (fail_at == "BODY" and body):
                    if reply is None:
                        raw = msgs[0] if msgs else b"Subject: x\r\n\r\n" + b"y" * 1000
                        send(b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % len(raw) + raw[: len(raw) // 2])
                        self._note(mode, "half literal sent, dropping")
                        return
                    self._note(mode, "FETCH refused")
                    send(tag + b" " + reply + b"\r\n")
                    continue
                self._fetch(send, tag, rest, body)
            else:
                send(tag + b" BAD unknown command\r\n")

    def _fetch(self, send, tag, rest, body):
        ms = re.match(rb"\s*([\d:,*]+)", rest)
        wanted = set()
        n = len(self.messages)
        for part in (ms.group(1) if ms else b"").split(b","):
            if b":" in part:
                a, b = part.split(b":")
                a = int(a) if a != b"*" else n
                b = int(b) if b != b"*" else n
                wanted.update(range(min(a, b), max(a, b) + 1))
            elif part and part != b"*":
                wanted.add(int(part))
        hf = re.search(rb"BODY\.PEEK\[(HEADER\.FIELDS \([^)]*\))\]", rest)
        out = []
        for uid in sorted(u for u in wanted if 1 <= u <= n):
            raw = self.messages[uid - 1]
            if body:
                item, data = b"BODY[]", raw
            else:
                head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
                item = b"BODY[" + (hf.group(1) if hf else b"HEADER") + b"]"
                data = head
            out.append(
                b"* %d FETCH (UID %d RFC822.SIZE %d FLAGS () %s {%d}\r\n"
                % (uid, uid, len(raw), item, len(data))
                + data
                + b")\r\n"
            )
        send(b"".join(out) + tag + b" OK done.\r\n")

    # -- proxy --
    def _mode_proxy(self, conn):
        if not self.upstream:
            raise ValueError("proxy mode needs upstream=(host, port)")
        up = self._track(socket.create_connection(self.upstream, timeout=10))
        state = {"body_fetches": 0, "cutting": False, "left": None}
        done = threading.Event()

        def client_to_server():
            try:
                conn.settimeout(0.2)
                while not done.is_set() and not self._stop.is_set():
                    try:
                        data = conn.recv(65536)
                    except socket.timeout:
                        continue
                    if not data:
                        break
                    if (
                        self.cut_after is not None
                        and _BODY_FETCH.search(data)
                        and b"FETCH" in data.upper()
                    ):
                        state["body_fetches"] += 1
                        if state["body_fetches"] == self.cut_on:
                            state["left"] = self.cut_after
                    up.sendall(data)
            except OSError:
                pass
            finally:
                done.set()

        t = threading.Thread(target=client_to_server, daemon=True)
        t.start()
        try:
            up.settimeout(0.2)
            while not done.is_set() and not self._stop.is_set():
                try:
                    data = up.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                left = state["left"]
                if left is not None:
                    if len(data) >= left:
                        conn.sendall(data[:left])
                        self._note("proxy", f"cut after {self.cut_after} bytes of a body FETCH")
                        break
                    state["left"] = left - len(data)
                conn.sendall(data)
        except OSError:
            pass
        finally:
            done.set()
            _close(up)
            with self._lock:
                self._open.discard(up)
            t.join(timeout=2)


def _close(s):
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()
