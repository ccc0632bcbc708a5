"""A real SMTP server on loopback for tests and the demo (aiosmtpd ``Controller``).

- AUTH PLAIN / LOGIN against a user table, AUTH XOAUTH2 against a token validator (a callable
  ``token -> email | None`` or an RFC 7662 introspection URL answering ``{"active", "email"}``);
  AUTH is allowed without TLS (``auth_require_tls=False``), as on loopback.
- ``port`` offers STARTTLS (optional), ``ssl_port`` is implicit TLS; both use a self-signed
  certificate made at start (``cafile``).
- Every received message is written to a spool directory (``<n>.eml`` + ``<n>.json`` with the
  envelope, the authenticated user and mechanism). :attr:`SmtpServer.messages` reads the spool,
  so a handle attached to a server run by another process (``shared_smtp()`` with env
  ``MAILSYNC_SMTP``) sees the same thing. The user table is a JSON file next to the spool, so
  :meth:`SmtpServer.add_user` works across processes too.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import fcntl
import json
import logging
import os
import shutil
import ssl
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from . import LOOPBACK, free_port, self_signed_cert

ENV_VAR = "MAILSYNC_SMTP"
XOAUTH2_ERROR = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
CODE_BAD_CREDENTIALS = "535 5.7.8 Username and Password not accepted"


class _DropLoginDataWarning(logging.Filter):
    """aiosmtpd 1.4 logs a WARNING about its own use of ``login_data`` on every AUTH."""

    def filter(self, record):
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_DropLoginDataWarning())


@dataclass
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list
    data: bytes = field(repr=False)
    auth_user: str | None = None
    auth_mechanism: str | None = None
    peer: str | None = None
    received_at: float = 0.0
    path: str | None = None

    @property
    def message(self):
        """The message parsed with the stdlib (``email.message.EmailMessage``)."""
        import email
        import email.policy

        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class _AuthData:
    login: str
    mechanism: str


def introspection_validator(url, timeout=5.0):
    """A token validator that POSTs ``token=…`` to ``url`` (RFC 7662) and returns the email of
    an active token, else None."""

    def validate(token):
        body = urllib.parse.urlencode({"token": token}).encode()
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                info = json.loads(response.read().decode() or "{}")
        except Exception:  # an unreachable or failing server rejects every token
            return None
        if info.get("active") in (True, "true") and info.get("email"):
            return info["email"]
        return None

    return validate


def parse_xoauth2(blob):
    """``b'user=U\\x01auth=Bearer T\\x01\\x01'`` → ``(U, T)``; ``(None, None)`` when malformed."""
    try:
        text = blob.decode()
    except UnicodeDecodeError:
        return None, None
    fields = {}
    for part in text.split("\x01"):
        if "=" in part:
            key, value = part.split("=", 1)
            fields[key.strip().lower()] = value
    auth = fields.get("auth", "")
    if not auth.lower().startswith("bearer "):
        return fields.get("user"), None
    return fields.get("user"), auth[len("bearer ") :].strip()


class _Handler:
    def __init__(self, owner):
        self.owner = owner

    async def handle_DATA(self, server, session, envelope):
        auth = session.auth_data if isinstance(session.auth_data, _AuthData) else None
        self.owner._spool_message(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=envelope.original_content or envelope.content or b"",
            auth_user=auth.login if auth and session.authenticated else None,
            auth_mechanism=auth.mechanism if auth and session.authenticated else None,
            peer=f"{session.peer[0]}:{session.peer[1]}" if session.peer else None,
        )
        return "250 2.0.0 OK: queued"

    async def auth_XOAUTH2(self, server, args):
        from aiosmtpd.smtp import MISSING, AuthResult

        if len(args) > 1:
            try:
                blob = base64.b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        user, token = parse_xoauth2(blob)
        email = None
        if token:
            validator = self.owner.token_validator
            if validator is not None:
                email = await server.loop.run_in_executor(None, validator, token)
        if user and email and user.strip().lower() == str(email).strip().lower():
            return AuthResult(success=True, auth_data=_AuthData(user, "XOAUTH2"))
        # Like Gmail: a JSON error challenge, the client answers with an empty line, then 535.
        answer = await server.challenge_auth(json.dumps(XOAUTH2_ERROR))
        if answer is MISSING:
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False, message=CODE_BAD_CREDENTIALS)


class SmtpServer:
    """One loopback SMTP server (two listeners). ``start()``/``stop()`` or a context manager."""

    host = LOOPBACK

    def __init__(
        self,
        users=None,
        token_validator=None,
        *,
        workdir=None,
        port=None,
        ssl_port=None,
        starttls=True,
        auth_required=False,
    ):
        self._own_workdir = workdir is None
        self.workdir = os.path.abspath(workdir or tempfile.mkdtemp(prefix="mailsync-smtp-"))
        self.spool_dir = os.path.join(self.workdir, "spool")
        self.users_file = os.path.join(self.workdir, "users.json")
        self.cafile = os.path.join(self.workdir, "tls", "cert.pem")
        self.keyfile = os.path.join(self.workdir, "tls", "key.pem")
        self.port = port
        self.ssl_port = ssl_port
        self.starttls = starttls
        self.auth_required = auth_required
        self.introspection_url = None
        self.token_validator = None
        self.set_token_validator(token_validator)
        self._initial_users = dict(users or {})
        self._controllers = []
        self._attached = False
        self._counter = 0
        self._counter_lock = threading.Lock()

    # ---- configuration ------------------------------------------------------------------------
    def set_token_validator(self, validator):
        """``validator``: callable ``token -> email | None``, an introspection URL, or None."""
        if isinstance(validator, str):
            self.introspection_url = validator
            validator = introspection_validator(validator)
        self.token_validator = validator

    # ---- lifecycle ----------------------------------------------------------------------------
    def _server_context(self):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cafile, self.keyfile)
        return context

    def start(self):
        if self._controllers or self._attached:
            return self
        from aiosmtpd.controller import Controller

        os.makedirs(self.spool_dir, exist_ok=True)
        if not (os.path.exists(self.cafile) and os.path.exists(self.keyfile)):
            self_signed_cert(os.path.join(self.workdir, "tls"), "mailsync-smtp")
        with self._users_locked():
            users = self._read_users()
            users.update(self._initial_users)
            self._write_users(users)
        handler = _Handler(self)
        common = dict(
            hostname=self.host,
            authenticator=self._authenticate,
            auth_require_tls=False,
            auth_required=self.auth_required,
            server_hostname="mailsync-test-smtp",
            ready_timeout=10.0,
        )
        try:
            self.port = self._start_controller(
                Controller,
                handler,
                self.port,
                tls_context=self._server_context() if self.starttls else None,
                **common,
            )
            self.ssl_port = self._start_controller(
                Controller, handler, self.ssl_port, ssl_context=self._server_context(), **common
            )
        except Exception:
            self.stop()
            raise
        return self

    def _start_controller(self, controller_cls, handler, port, **kwargs):
        fixed = port is not None
        for attempt in range(1 if fixed else 3):
            chosen = port if fixed else free_port()
            controller = controller_cls(handler, port=chosen, **kwargs)
            try:
                controller.start()
            except Exception:
                if fixed or attempt == 2:
                    raise
                continue
            self._controllers.append(controller)
            return chosen
        raise RuntimeError("no free port for the SMTP server")

    def stop(self):
        if self._attached:
            return
        controllers, self._controllers = self._controllers, []
        for controller in controllers:
            with contextlib.suppress(Exception):
                controller.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def describe(self):
        """What another process needs to attach (the ``MAILSYNC_SMTP`` JSON)."""
        return {
            "host": self.host,
            "port": self.port,
            "ssl_port": self.ssl_port,
            "starttls": self.starttls,
            "cafile": self.cafile,
            "workdir": self.workdir,
            "spool_dir": self.spool_dir,
            "users_file": self.users_file,
            "introspection_url": self.introspection_url,
        }

    @classmethod
    def attach(cls, info):
        self = cls(
            workdir=info["workdir"],
            port=int(info["port"]),
            ssl_port=int(info["ssl_port"]) if info.get("ssl_port") else None,
            starttls=bool(info.get("starttls", True)),
        )
        self.spool_dir = info.get("spool_dir") or self.spool_dir
        self.users_file = info.get("users_file") or self.users_file
        self.cafile = info.get("cafile") or self.cafile
        if info.get("introspection_url"):
            self.introspection_url = info["introspection_url"]
        self._attached = True
        return self

    # ---- users --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _users_locked(self):
        os.makedirs(os.path.dirname(self.users_file), exist_ok=True)
        with open(self.users_file + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_users(self):
        try:
            with open(self.users_file) as fh:
                return json.load(fh)
        except (FileNotFoundError, ValueError):
            return {}

    def _write_users(self, users):
        tmp = self.users_file + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(users, fh)
        os.replace(tmp, self.users_file)

    def add_user(self, login, password):
        with self._users_locked():
            users = self._read_users()
            users[login] = password
            self._write_users(users)
        return login

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        login = auth_data.login.decode(errors="replace")
        password = auth_data.password.decode(errors="replace")
        if self._read_users().get(login) == password:
            return AuthResult(success=True, auth_data=_AuthData(login, mechanism))
        return AuthResult(success=False, handled=False, message=CODE_BAD_CREDENTIALS)

    # ---- spool --------------------------------------------------------------------------------
    def _spool_message(self, **meta):
        data = meta.pop("data")
        with self._counter_lock:
            self._counter += 1
            name = f"{time.time_ns():020d}-{os.getpid()}-{self._counter:06d}"
        os.makedirs(self.spool_dir, exist_ok=True)
        eml = os.path.join(self.spool_dir, name + ".eml")
        with open(eml, "wb") as fh:
            fh.write(data)
        meta["received_at"] = time.time()
        tmp = os.path.join(self.spool_dir, name + ".json.tmp")
        with open(tmp, "w") as fh:
            json.dump(meta, fh)
        os.replace(tmp, os.path.join(self.spool_dir, name + ".json"))  # the .json marks it done

    @property
    def messages(self):
        """Every message received since the last :meth:`clear`, oldest first."""
        result = []
        try:
            names = sorted(n for n in os.listdir(self.spool_dir) if n.endswith(".json"))
        except FileNotFoundError:
            return result
        for name in names:
            base = os.path.join(self.spool_dir, name[: -len(".json")])
            try:
                with open(base + ".json") as fh:
                    meta = json.load(fh)
                with open(base + ".eml", "rb") as fh:
                    data = fh.read()
            except (FileNotFoundError, ValueError):
                continue  # removed by a concurrent clear()
            result.append(ReceivedMessage(data=data, path=base + ".eml", **meta))
        return result

    def messages_to(self, address):
        address = address.lower()
        return [m for m in self.messages if address in (r.lower() for r in m.rcpt_tos)]

    def clear(self):
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.spool_dir):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.spool_dir, name))

    def wait_for(self, count=1, timeout=10.0):
        """Wait until at least ``count`` messages are spooled; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages
            if len(messages) >= count or time.monotonic() > deadline:
                return messages
            time.sleep(0.02)


_shared = None
_shared_lock = threading.Lock()


def shared_smtp():
    """The process-wide SMTP server: the test runner's (env ``MAILSYNC_SMTP``) or a lazily
    started one, stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            info = os.environ.get(ENV_VAR)
            if info:
                _shared = SmtpServer.attach(json.loads(info))
            else:
                server = SmtpServer()
                server.start()
                atexit.register(server.stop)
                _shared = server
        return _shared
