"""What the private test IMAP servers share: :class:`ImapTestServer`, the base of
``DovecotServer`` (:mod:`.dovecot`) and ``CyrusServer`` (:mod:`.cyrus`).

The base holds the server-independent half of a harness:

- the lifecycle around one server process: a work directory (made 0755, so that the
  unprivileged mail processes can reach it), ``start()`` (free ports, up to three attempts when
  a port was taken meanwhile, wait for both ports and the greeting), ``stop()``, ``_kill()`` of
  the process group, the context manager, ``pid``, ``log_text()``;
- users: the validation of logins and passwords, the per-user file of :meth:`password`;
- the IMAP helpers every test uses: :meth:`client`, :meth:`create_folder`, :meth:`append`,
  :meth:`append_many`, :meth:`flags`, :meth:`uidvalidity`; each maps the folder it is given
  with :meth:`folder_name` (the identity here; Cyrus maps ``Sent`` to ``INBOX.Sent``);
- the common half of ``describe()`` / ``attach()`` and of ``shared_*()``.

A server subclass supplies what is its own: its name, configuration and process
(``_before_start``, ``_launch``), clean-up (``_cleanup``), ``add_user``, ``password``,
``reset_uidvalidity``, its folder names and what it refuses on APPEND (``_refusal``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading

from . import LOOPBACK, free_port, wait_for_port

__all__ = ["ImapTestServer", "SPECIAL_USE", "others_can_traverse", "start_or_attach"]

# The special-use folders (RFC 6154) every new user has: (name as a test writes it, flag).
SPECIAL_USE = (
    ("Drafts", r"\Drafts"),
    ("Sent", r"\Sent"),
    ("Trash", r"\Trash"),
    ("Junk", r"\Junk"),
    ("Archive", r"\Archive"),
)
_FORBIDDEN = re.compile(r"[:\r\n\0]")  # not in a password: it would break its passwd-file line


def others_can_traverse(path):
    """True if an unprivileged user can reach ``path`` (every parent has o+x)."""
    path = os.path.abspath(path)
    while True:
        try:
            if not os.stat(path).st_mode & 0o001:
                return False
        except FileNotFoundError:
            pass
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


class ImapTestServer:
    """One private IMAP server on loopback. Use as a context manager or call start()/stop().

    Subclasses set :attr:`name`, :attr:`workdir_prefix`, :attr:`sent_folder`,
    :attr:`separator` and implement the hooks named in the module docstring."""

    host = LOOPBACK
    name = "IMAP"  # in error messages: "Dovecot did not start ..."
    workdir_prefix = "mailsync-imap-"
    sent_folder = "Sent"  # the real name of the \Sent folder a new user has
    separator = "/"  # the hierarchy separator of folder names
    _LOGIN = re.compile(r"[A-Za-z0-9.\-_+]+@[A-Za-z0-9.\-_]+")

    def __init__(self, workdir=None, port=None, ssl_port=None):
        self._own_workdir = workdir is None
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix=self.workdir_prefix)
            os.chmod(workdir, 0o755)  # mkdtemp's 0700 would keep the mail processes out
        self.workdir = os.path.abspath(workdir)
        self.port = port
        self.ssl_port = ssl_port
        self._proc = None
        self._attached = False
        self._lock = threading.Lock()

    def _workdir_reachable(self):
        """Can an unprivileged user (the mail processes) reach the work directory? Its parents
        decide: the directory itself gets 0755 (an own one here, any other in _prepare())."""
        return others_can_traverse(os.path.dirname(self.workdir))

    def _tag(self):
        """A short stable tag of the work directory (for paths outside it)."""
        return hashlib.sha1(self.workdir.encode()).hexdigest()[:12]

    # ---- lifecycle -------------------------------------------------------------------------
    def _before_start(self):
        """Prepare what start() needs once (binaries, directories, certificate)."""

    def _launch(self):
        """Write the configuration for ``self.port``/``self.ssl_port`` and start the server:
        returns its ``subprocess.Popen`` (in a process group of its own)."""
        raise NotImplementedError

    def _launch_output(self):
        """What the failed process wrote that log_text() does not show ('' by default)."""
        return ""

    def start(self, timeout=15.0):
        if self._proc is not None or self._attached:
            return self
        self._before_start()
        fixed = self.port is not None
        last_error = ""
        for _attempt in range(3 if not fixed else 1):
            if not fixed:
                self.port = free_port()
                self.ssl_port = free_port()
                while self.ssl_port == self.port:
                    self.ssl_port = free_port()
            elif self.ssl_port is None:
                self.ssl_port = free_port()
            log_offset = len(self.log_text())
            self._proc = self._launch()
            alive = lambda: self._proc.poll() is None  # noqa: E731
            ok = wait_for_port(self.host, self.port, timeout, alive=alive)
            ok = ok and wait_for_port(self.host, self.ssl_port, timeout, alive=alive)
            if ok and self._greets():
                return self
            output = self._launch_output() if self._proc.poll() is not None else ""
            self._kill()
            last_error = output + self.log_text()[log_offset:]
            if "in use" not in last_error:
                break
        raise RuntimeError(
            f"{self.name} did not start (config {self.config_file}):\n{last_error[-4000:]}"
        )

    def _greets(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=5) as sock:
                return sock.recv(200).startswith(b"* OK")
        except OSError:
            return False

    def _kill(self):
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)  # the master process ends its children
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # any straggler of the instance's process group
        if proc.stdout:
            proc.stdout.close()

    def _cleanup(self):
        """Remove what the stopped server leaves (its own work directory and the like)."""
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def stop(self):
        """Stop the server and remove its files; a no-op for an attached handle."""
        if self._attached:
            return
        self._kill()
        self._cleanup()

    @property
    def pid(self):
        return self._proc.pid if self._proc else None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _log_files(self):
        return (self.log_path,)

    def log_text(self):
        """The server's log ('' before it wrote one)."""
        text = ""
        for path in self._log_files():
            try:
                with open(path, errors="replace") as fh:
                    text += fh.read()
            except FileNotFoundError:
                pass
        return text

    # ---- description for other processes ----------------------------------------------------
    def _description(self):
        """The part of describe() every server has."""
        return {
            "host": self.host,
            "port": self.port,
            "ssl_port": self.ssl_port,
            "cafile": self.cafile,
            "workdir": self.workdir,
            "passwd_dir": self.passwd_dir,
            "config_file": self.config_file,
            "log_path": self.log_path,
            "pid": self.pid,
        }

    def _attached_to(self, info):
        """Make this object a handle on the server ``info`` (describe()) describes: the common
        fields; the subclass's attach() sets its own paths."""
        self._own_workdir = False
        self._attached = True
        self._proc = None
        self._lock = threading.Lock()
        self.port = int(info["port"])
        self.ssl_port = int(info["ssl_port"]) if info.get("ssl_port") else None
        return self

    # ---- users ---------------------------------------------------------------------------------
    def _login_error(self, login):
        return f"logins are e-mail addresses like alice@example.test, not {login!r}"

    def _check_credentials(self, login, password):
        if not self._LOGIN.fullmatch(login or ""):
            raise ValueError(self._login_error(login))
        if not password or _FORBIDDEN.search(password):
            raise ValueError("passwords may not be empty or contain ':' or line breaks")

    def _user_file(self, login):
        return os.path.join(self.passwd_dir, login.lower())

    # ---- folders -------------------------------------------------------------------------------
    @classmethod
    def folder_name(cls, folder):
        """The server's name of ``folder`` as a test writes it (``INBOX``, ``Sent``, ``A/B``):
        the name itself here; see CyrusServer.folder_name."""
        return folder

    # ---- IMAP helpers --------------------------------------------------------------------------
    def ssl_context(self):
        """An SSLContext that trusts this server's certificate."""
        return ssl.create_default_context(cafile=self.cafile)

    def client(self, login, password=None, *, ssl_port=False, timeout=30):
        """An ``imapclient.IMAPClient`` logged in as ``login`` (plain port unless ssl_port)."""
        from imapclient import IMAPClient

        if ssl_port:
            client = IMAPClient(
                self.host,
                port=self.ssl_port,
                ssl=True,
                ssl_context=self.ssl_context(),
                timeout=timeout,
            )
        else:
            client = IMAPClient(self.host, port=self.port, ssl=False, timeout=timeout)
        try:
            client.login(login, password if password is not None else self.password(login))
        except Exception:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        return client

    @contextlib.contextmanager
    def _session(self, login):
        client = self.client(login)
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    @staticmethod
    def _ensure_folder(client, folder):
        """Create ``folder`` (a real name) and subscribe to it, unless it is INBOX or exists."""
        if folder.upper() != "INBOX" and not client.folder_exists(folder):
            client.create_folder(folder)
            with contextlib.suppress(Exception):
                client.subscribe_folder(folder)

    def create_folder(self, login, name):
        """Create ``name`` (mapped, see folder_name) if missing; returns the real name."""
        real = self.folder_name(name)
        with self._session(login) as client:
            self._ensure_folder(client, real)
        return real

    def _refusal(self, folder, error):
        """The exception to raise when the server answers NO/BAD to an APPEND to ``folder``
        (``error``: the client's exception); None: the client's exception itself."""
        return None

    #: The exceptions of a refused APPEND that ``append_many(skip_refused=True)`` skips.
    _refused_errors = ()

    def _append(self, client, folder, raw_bytes, flags, when):
        try:
            response = client.append(folder, raw_bytes, flags=tuple(flags), msg_time=when)
        except client.AbortError:
            raise
        except client.Error as e:
            refused = self._refusal(folder, e)
            if refused is None:
                raise
            raise refused from None
        if isinstance(response, bytes):
            response = response.decode(errors="replace")
        match = re.search(r"APPENDUID \d+ (\d+)", response or "")
        if match:
            return int(match.group(1))
        client.select_folder(folder, readonly=True)  # no UIDPLUS: the highest UID is ours
        return max(client.search(["ALL"]))

    def append(self, login, folder, raw_bytes, flags=(), when=None):
        """APPEND ``raw_bytes`` to ``folder`` (mapped; created if missing); returns the new
        UID."""
        if isinstance(raw_bytes, str):
            raw_bytes = raw_bytes.encode()
        real = self.folder_name(folder)
        with self._session(login) as client:
            self._ensure_folder(client, real)
            return self._append(client, real, raw_bytes, flags, when)

    def append_many(self, login, folder, messages, skip_refused=False):
        """APPEND several ``raw`` or ``(raw, flags, when)`` in one session; returns the UIDs
        (``None`` for a message the server refused when ``skip_refused``: see the server's
        ``append``)."""
        real = self.folder_name(folder)
        uids = []
        with self._session(login) as client:
            self._ensure_folder(client, real)
            for item in messages:
                raw, flags, when = (item, (), None) if isinstance(item, (bytes, str)) else item
                if isinstance(raw, str):
                    raw = raw.encode()
                try:
                    uids.append(self._append(client, real, raw, flags, when))
                except self._refused_errors:
                    if not skip_refused:
                        raise
                    uids.append(None)
        return uids

    def flags(self, login, folder):
        """``{uid: tuple(flags as str)}`` of every message in ``folder`` (read-only; without
        ``\\Recent``, which depends on the session, not on the mailbox)."""
        real = self.folder_name(folder)
        with self._session(login) as client:
            client.select_folder(real, readonly=True)
            data = client.fetch("1:*", ["FLAGS"]) if client.search(["ALL"]) else {}
        result = {}
        for uid, item in sorted(data.items()):
            flags = (f.decode() if isinstance(f, bytes) else str(f) for f in item[b"FLAGS"])
            result[uid] = tuple(f for f in flags if f != "\\Recent")  # per-session, not state
        return result

    def uidvalidity(self, login, folder):
        with self._session(login) as client:
            status = client.folder_status(self.folder_name(folder), ["UIDVALIDITY"])
            return int(status[b"UIDVALIDITY"])


def start_or_attach(cls, env_var):
    """The process-wide server of class ``cls``: attached to the one the test runner describes
    in ``$env_var`` (describe() as JSON), or a new one, started and stopped at exit. (The
    caller keeps it, under its lock.)"""
    import atexit

    info = os.environ.get(env_var)
    if info:
        return cls.attach(json.loads(info))
    server = cls()
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    atexit.register(server.stop)
    return server
