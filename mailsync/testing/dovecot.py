"""A private Dovecot IMAP server on loopback, for tests and the demo.

``DovecotServer`` writes its own configuration into a work directory and runs
``dovecot -F -c FILE``. It listens on two ports of 127.0.0.1:

- ``port``: plain IMAP which also offers STARTTLS (``disable_plaintext_auth = no``);
- ``ssl_port``: implicit TLS with a self-signed certificate made at start (``cafile``).

Users live in per-user passwd-files (a new path is read at first login), so :meth:`add_user`
works on
a running server, also from another process (see :func:`shared_dovecot`). With
``oauth_introspection_url`` the server also accepts XOAUTH2/OAUTHBEARER, checking each token
with an RFC 7662 introspection POST (TESTING-NOTES.md).

The lifecycle, the IMAP helpers (client, append, append_many, flags, uidvalidity …) and
describe()/attach()'s common half are :class:`~.imap_server.ImapTestServer`'s, shared with the
Cyrus harness (:mod:`.cyrus`); here are Dovecot's configuration, users and reset_uidvalidity.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time

from . import LOOPBACK, self_signed_cert
from .imap_server import SPECIAL_USE, ImapTestServer, start_or_attach

ENV_VAR = "MAILSYNC_DOVECOT"


def dovecot_binary():
    for candidate in (shutil.which("dovecot"), "/usr/sbin/dovecot"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise RuntimeError("dovecot is not installed (apt-get install -y dovecot-imapd)")


def _doveadm_binary():
    for candidate in (shutil.which("doveadm"), "/usr/bin/doveadm"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise RuntimeError("doveadm is not installed (it comes with dovecot-core)")


class DovecotServer(ImapTestServer):
    """One private Dovecot. Use as a context manager or call start()/stop()."""

    name = "Dovecot"
    workdir_prefix = "mailsync-dovecot-"
    sent_folder = "Sent"
    separator = "/"

    def __init__(self, workdir=None, port=None, oauth_introspection_url=None, ssl_port=None):
        super().__init__(workdir, port, ssl_port)
        self.oauth_introspection_url = oauth_introspection_url
        self.config_file = os.path.join(self.workdir, "dovecot.conf")
        # One passwd-file per user: Dovecot re-reads a passwd-file at most once a second, but a
        # new user's file is a new path, read at its first login — so add_user works at once.
        self.passwd_dir = os.path.join(self.workdir, "users")
        self.log_path = os.path.join(self.workdir, "dovecot.log")
        self.cafile = os.path.join(self.workdir, "tls", "cert.pem")
        self.keyfile = os.path.join(self.workdir, "tls", "key.pem")
        # Unix sockets need short paths (108 bytes) that the unprivileged mail processes can reach.
        tag = self._tag()
        self.base_dir = os.path.join(tempfile.gettempdir(), f"mailsync-dc-{tag}")
        # Mail belongs to an unprivileged user: it must be able to reach it.
        mail_root = os.path.join(self.workdir, "mail")
        if not self._workdir_reachable():
            mail_root = os.path.join("/var/tmp", f"mailsync-mail-{tag}")
        self.mail_root = mail_root

    # ---- lifecycle -------------------------------------------------------------------------
    def _mail_owner(self):
        if os.geteuid() == 0:
            user = pwd.getpwnam("nobody")
            return user.pw_uid, user.pw_gid
        return os.getuid(), os.getgid()

    def _write_config(self):
        uid, gid = self._mail_owner()
        oauth = bool(self.oauth_introspection_url)
        mechanisms = "plain login xoauth2 oauthbearer" if oauth else "plain login"
        lines = [
            "# written by mailsync.testing.dovecot — private test instance",
            f"base_dir = {self.base_dir}",
            f"state_dir = {os.path.join(self.workdir, 'state')}",
            f"instance_name = mailsync-{self.port}",
            f"log_path = {self.log_path}",
            f"info_log_path = {self.log_path}",
            "protocols = imap",
            f"listen = {LOOPBACK}",
            "ssl = yes",
            f"ssl_cert = <{self.cafile}",
            f"ssl_key = <{self.keyfile}",
            "ssl_min_protocol = TLSv1.2",
            "disable_plaintext_auth = no",
            f"auth_mechanisms = {mechanisms}",
            "auth_failure_delay = 0",
            "auth_username_chars = abcdefghijklmnopqrstuvwxyz"
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@+",
            "auth_verbose = yes",
            "login_greeting = Dovecot (mailsync test) ready.",
            "mail_location = maildir:~/Maildir",
            f"first_valid_uid = {min(uid, 500)}",
            f"first_valid_gid = {min(gid, 1)}",
            "mail_max_userip_connections = 1000",
            "imap_idle_notify_interval = 10 secs",
            "verbose_proctitle = no",
        ]
        if os.path.exists("/usr/share/dovecot/dh.pem"):
            lines.append("ssl_dh = </usr/share/dovecot/dh.pem")
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.getuid()).pw_name
            group = grp.getgrgid(os.getgid()).gr_name
            lines += [
                f"default_internal_user = {me}",
                f"default_internal_group = {group}",
                f"default_login_user = {me}",
            ]
        lines += [
            "service imap-login {",
            f"  inet_listener imap {{\n    address = {LOOPBACK}\n    port = {self.port}\n  }}",
            f"  inet_listener imaps {{\n    address = {LOOPBACK}\n"
            f"    port = {self.ssl_port}\n    ssl = yes\n  }}",
            "  process_min_avail = 1",
            "  chroot =",
            "}",
            "service imap {\n  process_limit = 1000\n}",
            "service pop3-login {\n  inet_listener pop3 {\n    port = 0\n  }\n"
            "  inet_listener pop3s {\n    port = 0\n  }\n}",
            "service submission-login {\n  inet_listener submission {\n    port = 0\n  }\n}",
            "service lmtp {\n  unix_listener lmtp {\n    mode = 0\n  }\n}",
            "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}",
            "service stats {\n  unix_listener stats-writer {\n    mode = 0666\n  }\n}",
            "service auth {\n  user = root\n}" if os.geteuid() == 0 else "",
            "namespace inbox {",
            "  inbox = yes",
            "  separator = /",
        ]
        for name, use in SPECIAL_USE:
            lines.append(
                f"  mailbox {name} {{\n    special_use = {use}\n    auto = subscribe\n  }}"
            )
        lines.append("}")
        if oauth:
            oauth_conf = os.path.join(self.workdir, "dovecot-oauth2.conf.ext")
            with open(oauth_conf, "w") as fh:
                fh.write(
                    "introspection_mode = post\n"
                    f"introspection_url = {self.oauth_introspection_url}\n"
                    "force_introspection = yes\n"
                    "username_attribute = email\n"
                    "active_attribute = active\n"
                    "active_value = true\n"
                    "timeout_msecs = 5000\n"
                )
            lines.append(
                "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {oauth_conf}\n}}"
            )
        lines += [
            "passdb {",
            "  driver = passwd-file",
            "  mechanisms = plain login",
            f"  args = scheme=PLAIN username_format=%u {self.passwd_dir}/%u",
            "}",
            # A failed login still takes ~0.5 s: Dovecot flushes failures on a 500 ms timer and
            # only a 'nodelay' field avoids it, which a failed passdb never keeps (its fields are
            # rolled back). A 'nologin' trick would change the reply to [CONTACTADMIN], so no.
            "userdb {",
            "  driver = passwd-file",
            f"  args = username_format=%u {self.passwd_dir}/%u",
            f"  default_fields = uid={uid} gid={gid} home={self.mail_root}/%d/%n",
            "}",
            "protocol imap {",
            "  mail_max_userip_connections = 1000",
            "}",
        ]
        with open(self.config_file, "w") as fh:
            fh.write("\n".join(line for line in lines if line) + "\n")

    def _prepare(self):
        os.makedirs(self.workdir, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        for sub in ("state", "tls"):
            os.makedirs(os.path.join(self.workdir, sub), exist_ok=True)
        uid, gid = self._mail_owner()
        os.makedirs(self.mail_root, exist_ok=True)
        os.chmod(self.mail_root, 0o755)
        os.chown(self.mail_root, uid, gid)
        os.makedirs(self.passwd_dir, exist_ok=True)
        os.chmod(self.passwd_dir, 0o755)
        if not (os.path.exists(self.cafile) and os.path.exists(self.keyfile)):
            self_signed_cert(os.path.join(self.workdir, "tls"), "mailsync-dovecot")
        # A stale anvil/auth socket makes the first failed login wait 5 s (TESTING-NOTES).
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def _before_start(self):
        dovecot_binary()  # a clear error when it is missing
        self._prepare()

    def _launch(self):
        self._write_config()
        return subprocess.Popen(
            [dovecot_binary(), "-F", "-c", self.config_file],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _launch_output(self):
        return self._proc.stdout.read().decode(errors="replace")

    def _cleanup(self):
        shutil.rmtree(self.base_dir, ignore_errors=True)
        res = super()._cleanup()
        if self._own_workdir and self.mail_root != os.path.join(self.workdir, "mail"):
            shutil.rmtree(self.mail_root, ignore_errors=True)
        return res

    # ---- description for other processes ----------------------------------------------------
    def describe(self):
        """What another process needs to attach (the ``MAILSYNC_DOVECOT`` JSON)."""
        return {
            **self._description(),
            "mail_root": self.mail_root,
            "oauth_introspection_url": self.oauth_introspection_url,
        }

    @classmethod
    def attach(cls, info):
        """A handle on a server another process runs (``info`` as written by describe())."""
        self = cls.__new__(cls)._attached_to(info)
        self.workdir = info["workdir"]
        self.cafile = info.get("cafile") or os.path.join(self.workdir, "tls", "cert.pem")
        self.keyfile = os.path.join(os.path.dirname(self.cafile), "key.pem")
        self.passwd_dir = info.get("passwd_dir") or os.path.join(self.workdir, "users")
        self.config_file = info.get("config_file") or os.path.join(self.workdir, "dovecot.conf")
        self.log_path = info.get("log_path") or os.path.join(self.workdir, "dovecot.log")
        self.mail_root = info.get("mail_root") or os.path.join(self.workdir, "mail")
        self.oauth_introspection_url = info.get("oauth_introspection_url")
        self.base_dir = None
        return self

    # ---- users ---------------------------------------------------------------------------------
    def users(self):
        """``{login: password}`` of every user."""
        result = {}
        for name in os.listdir(self.passwd_dir):
            if not name.startswith("."):
                with contextlib.suppress(KeyError, FileNotFoundError):
                    result[name] = self.password(name)
        return result

    def add_user(self, login, password):
        """Create (or re-password) a mailbox user; usable at once, no restart. ``login`` is an
        e-mail address (Dovecot lower-cases it)."""
        self._check_credentials(login, password)
        path = self._user_file(login)
        existed = os.path.exists(path)
        if existed and self.password(login) == password:
            return login
        tmp = (
            f"{os.path.dirname(path)}/.{os.path.basename(path)}."
            f"{os.getpid()}.{threading.get_ident()}"
        )
        with open(tmp, "w") as fh:
            fh.write(f"{login.lower()}:{{PLAIN}}{password}::::::\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        if existed:
            # Dovecot checks a passwd-file it already read at most once a second.
            time.sleep(1.1)
        return login

    def password(self, login):
        try:
            with open(self._user_file(login)) as fh:
                password = fh.readline().rstrip("\n").split(":")[1]
        except (FileNotFoundError, IndexError):
            raise KeyError(f"no such Dovecot user: {login}") from None
        return password[len("{PLAIN}") :] if password.startswith("{PLAIN}") else password

    # ---- IMAP helpers (the rest are ImapTestServer's) ----------------------------------------
    def reset_uidvalidity(self, login, folder):
        """Give ``folder`` a new UIDVALIDITY; its messages stay (same bytes, flags and dates)
        but get new UIDs. Returns the new UIDVALIDITY."""
        with self._session(login) as client:
            client.select_folder(folder)
            old_validity = int(client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])
            uids = client.search(["ALL"])
            data = client.fetch(uids, ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"]) if uids else {}
            if uids:
                client.delete_messages(uids, silent=True)
                client.expunge()
            client.close_folder()
            for uid in sorted(data):
                item = data[uid]
                flags = tuple(f for f in item[b"FLAGS"] if f.lower() != b"\\recent")
                client.append(folder, item[b"BODY[]"], flags=flags, msg_time=item[b"INTERNALDATE"])
        new_validity = max(old_validity + 1, int(time.time()))
        self._doveadm("mailbox", "update", "-u", login, "--uid-validity", str(new_validity), folder)
        return new_validity

    def _doveadm(self, *args):
        result = subprocess.run(
            [_doveadm_binary(), "-c", self.config_file, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout


# ---- one server per process ---------------------------------------------------------------------
_shared = None
_shared_lock = threading.Lock()


def shared_dovecot():
    """The process-wide Dovecot: the test runner's (env ``MAILSYNC_DOVECOT``) or a lazily started
    one, stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = start_or_attach(DovecotServer, ENV_VAR)
        return _shared
