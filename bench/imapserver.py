"""A private Dovecot for the benchmark: Maildir++ on disk, passwd-file users, plain IMAP on
loopback.

Why not ``mailsync.testing.dovecot``: the benchmark loads tens of thousands of messages and a
thousand users, so it writes Maildir files directly (no IMAP round trip per message) and needs the
user list as one file. Loading is not timed; this only has to be fast and deterministic.

Maildir file names are ``<seq>.M<seq>P0.bench,S=<size>:2,<flags>``; Dovecot assigns UIDs to new
files sorted by name, so UIDs follow the load order. The file mtime is the INTERNALDATE.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

MAIL_USER = "mail"  # uid/gid owning the Maildirs (Dovecot refuses uid 0)

CONF = """\
base_dir = {wd}/run
state_dir = {wd}/state
log_path = {wd}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:{wd}/mail/%u
mail_fsync = never
maildir_very_dirty_syncs = yes
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {wd}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={wd}/home/%u
}}
namespace inbox {{
  inbox = yes
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  service_count = 0
  process_min_avail = 2
}}
service imap {{
  process_limit = 2048
}}
service auth {{
  client_limit = 4096
}}
default_client_limit = 4096
default_vsz_limit = 1G
"""


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class BenchDovecot:
    host = "127.0.0.1"

    def __init__(self, workdir: str | None = None, port: int | None = None):
        self.workdir = workdir or tempfile.mkdtemp(prefix="mailsync-bench-dovecot-")
        os.makedirs(self.workdir, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        self.port = port or free_port()
        self.proc = None
        self.users: dict[str, str] = {}
        self._seq: dict[str, int] = {}
        import pwd

        pw = pwd.getpwnam(MAIL_USER)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid

    # -- users and messages ------------------------------------------------------------------
    def _maildir(self, login: str, folder: str) -> str:
        base = os.path.join(self.workdir, "mail", login)
        return base if folder.upper() == "INBOX" else os.path.join(base, "." + folder)

    def add_user(self, login: str, password: str):
        """Register a user (written to the passwd file by :meth:`write_users`)."""
        self.users[login] = password
        for folder in ("INBOX", "Sent"):
            d = self._maildir(login, folder)
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(d, sub), exist_ok=True)
            if folder != "INBOX":
                open(os.path.join(d, "maildirfolder"), "w").close()

    def write_users(self):
        path = os.path.join(self.workdir, "passwd")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            for login, pw in self.users.items():
                f.write(f"{login}:{{PLAIN}}{pw}\n")
        os.replace(tmp, path)

    def put(self, login: str, folder: str, raw: bytes, flags: str = "", when: float | None = None):
        """Write one message straight into the user's Maildir (before or while Dovecot runs)."""
        seq = self._seq.get(login, 0) + 1
        self._seq[login] = seq
        name = f"{1000000000 + seq}.M{seq}P0.bench,S={len(raw)}:2,{''.join(sorted(flags))}"
        path = os.path.join(self._maildir(login, folder), "cur", name)
        with open(path, "wb") as f:
            f.write(raw)
        if when is not None:
            os.utime(path, (when, when))

    def fix_owner(self):
        for root, _dirs, files in os.walk(os.path.join(self.workdir, "mail")):
            os.chown(root, self.uid, self.gid)
            for n in files:
                os.chown(os.path.join(root, n), self.uid, self.gid)
        home = os.path.join(self.workdir, "home")
        os.makedirs(home, exist_ok=True)
        os.chown(home, self.uid, self.gid)

    # -- process -----------------------------------------------------------------------------
    @property
    def conf_path(self):
        return os.path.join(self.workdir, "dovecot.conf")

    def start(self):
        self.write_users()
        self.fix_owner()
        for d in ("run", "state"):
            os.makedirs(os.path.join(self.workdir, d), exist_ok=True)
        with open(self.conf_path, "w") as f:
            f.write(CONF.format(wd=self.workdir, port=self.port, uid=self.uid, gid=self.gid))
        self.proc = subprocess.Popen(
            ["dovecot", "-F", "-c", self.conf_path],
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.workdir, "stderr.log"), "wb"),
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited: " + self._tail())
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dovecot did not listen: " + self._tail())

    def reload_users(self):
        """New users are seen on the next login (passwd-file is re-read when it changes)."""
        self.write_users()
        self.fix_owner()

    def _tail(self):
        out = ""
        for n in ("stderr.log", "dovecot.log"):
            p = os.path.join(self.workdir, n)
            if os.path.exists(p):
                out += open(p, errors="replace").read()[-2000:]
        return out

    def stop(self, remove=True):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def client(self, login: str):
        from imapclient import IMAPClient

        c = IMAPClient(self.host, self.port, ssl=False, timeout=60)
        c.login(login, self.users[login])
        return c

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
