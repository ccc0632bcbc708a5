"""A private Cyrus IMAP server on loopback, for tests: the same interface as ``DovecotServer``
(both are :class:`~.imap_server.ImapTestServer`: lifecycle, client, append, flags … live there).

Debian's ``cyrus-imapd`` conflicts with the installed ``dovecot-imapd``, so it is never installed:
:func:`ensure_cyrus_root` downloads the packages once with ``apt-get download`` and unpacks them
(``dpkg -x``) into a private root outside the repository (``$MAILSYNC_CYRUS_ROOT``, else
``$XDG_CACHE_HOME/crm_mail_sync/cyrus-root``, else ``~/.cache/crm_mail_sync/cyrus-root``); the
binaries run from there with ``LD_LIBRARY_PATH``. When that is impossible it raises
:class:`CyrusUnavailable` (tests then skip with its message).

``CyrusServer`` writes its own ``imapd.conf``/``cyrus.conf`` into a work directory and runs
``master -D`` in its own process group. It listens on 127.0.0.1:

- ``port``: plain IMAP, which also offers STARTTLS; ``ssl_port``: implicit TLS (``cafile``).

What a caller must know (how Cyrus differs from the Dovecot harness):

- Folders use Debian's default namespace: INBOX-rooted, separator ``.``: the Sent folder is
  ``INBOX.Sent`` (special-use ``\\Sent``; likewise Drafts, Trash, Junk, Archive), created with
  INBOX when the user first logs in (autocreate; :meth:`add_user` logs in once). Every method
  that takes a folder maps it with :meth:`CyrusServer.folder_name`: ``INBOX`` stays, ``Sent`` ->
  ``INBOX.Sent``, any other ``X`` -> ``INBOX.X`` with ``/`` -> ``.`` (so ``Clients/ACME`` ->
  ``INBOX.Clients.ACME``); :attr:`CyrusServer.sent_folder` is the real Sent name. LIST gives
  the special-use flags in lower case (``\\sent``): compare them without case.
- Logins are e-mail addresses (``virtdomains: userid``), lower-cased; the local part may not
  contain a dot (with the ``.`` separator Cyrus logs such a user in but LISTs no folder).
- Cyrus refuses on APPEND what Dovecot stores: header lines without a colon or with a space,
  tab or nothing before it, a bare CR ("Message contains invalid header"), NUL bytes anywhere
  ("Message contains NUL characters"). :meth:`CyrusServer.append` raises :class:`AppendRefused`.
  8-bit header bytes are kept as they are by default (``header_8bit="keep"``, imapd.conf
  ``munge8bit: no``); ``"munge"`` is Cyrus's own default (each 8-bit byte becomes ``X``),
  ``"reject"`` refuses them ("Message contains non-ASCII characters in headers").
- :meth:`CyrusServer.reset_uidvalidity` re-appends the messages and rebuilds the folder's
  index (``reconstruct``): no other session may have that folder selected meanwhile.
- Protocol telemetry: :meth:`enable_telemetry` then :meth:`telemetry` (what each session of that
  user sent and received, as Cyrus logs it in ``<configdirectory>/log/<user>/``, from after
  LOGIN) and :meth:`client_commands` (the command lines the client sent, tags stripped).
- Cyrus's services refuse to run as root: as root, master drops to ``nobody``, which must reach
  the binaries, the spool and the configuration. master runs in a private mount namespace
  (``unshare -m``) where the root is bind-mounted into the work directory (a ``~/.cache`` under a
  0700 home is out of nobody's reach) and ``/dev/log`` leads to a socket of this process: Cyrus
  logs only through syslog, and no syslog daemon runs here; its records go to ``cyrus.log``
  (:meth:`log_text`). Without a namespace the root is copied to /var/tmp once and Cyrus logs
  nothing.
- No XOAUTH2: ``oauth_introspection_url`` raises :class:`CyrusUnavailable`.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import grp
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from . import LOOPBACK, self_signed_cert
from .imap_server import SPECIAL_USE, ImapTestServer, others_can_traverse, start_or_attach

ENV_VAR = "MAILSYNC_CYRUS"
ROOT_ENV = "MAILSYNC_CYRUS_ROOT"
CYRUS_VERSION = "3.6.1"
# What the brief found on Debian 12 (cyrus-admin is only perl, kept for cyradm); anything else
# ``ldd`` finds missing is looked up in the packages' dependency closure (_complete_root).
CORE_PACKAGES = ("cyrus-imapd", "cyrus-common", "sasl2-bin", "libsasl2-modules-db")
EXTRA_PACKAGES = (
    "cyrus-admin",
    "libclamav12",
    "libical3",
    "libpcre3",
    "libxapian30",
    "libzephyr4",
    "libmspack0",
    "libsasl2-2",
    "libsasl2-modules",
)
_MARKER = ".mailsync-cyrus-root.json"
_CHECKED_BINARIES = (
    "usr/lib/cyrus/bin/master",
    "usr/lib/cyrus/bin/imapd",
    "usr/lib/cyrus/bin/ctl_cyrusdb",
    "usr/lib/cyrus/bin/reconstruct",
    "usr/lib/cyrus/bin/mbpath",
    "usr/lib/cyrus/bin/idled",
    "usr/sbin/saslpasswd2",
)
HEADER_8BIT = {"keep": ("no", "no"), "munge": ("yes", "no"), "reject": ("no", "yes")}
_LOGIN = re.compile(r"[A-Za-z0-9\-_+]+@[A-Za-z0-9.\-_]+")  # no dot before the @ (see above)
_DOTTED_LOGIN = re.compile(r"[A-Za-z0-9.\-_+]+@[A-Za-z0-9.\-_]+")


class CyrusUnavailable(RuntimeError):
    """Cyrus cannot be had on this machine (packages, libraries, feature); tests skip."""


class AppendRefused(Exception):
    """Cyrus answered NO/BAD to an APPEND: ``reason`` is its text (e.g. "Message contains
    invalid header")."""

    def __init__(self, folder, reason):
        self.folder = folder
        self.reason = reason
        super().__init__(f"Cyrus refused APPEND to {folder}: {reason}")


# ---- the private root of Debian packages -----------------------------------------------------
def cyrus_root_path():
    """Where :func:`ensure_cyrus_root` keeps the unpacked packages (never in the repository)."""
    override = os.environ.get(ROOT_ENV)
    if override:
        return os.path.abspath(override)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(cache), "crm_mail_sync", "cyrus-root")


def _lib_dirs(root):
    """Every directory of the root that holds shared libraries (multiarch and plain)."""
    dirs = []
    for pattern in (
        "usr/lib/*-linux-gnu*",
        "lib/*-linux-gnu*",
        "usr/lib",
        "lib",
        "usr/lib/cyrus/lib",
    ):
        for path in sorted(glob.glob(os.path.join(root, pattern))):
            if os.path.isdir(path) and not os.path.islink(path) and path not in dirs:
                if glob.glob(os.path.join(path, "*.so*")):
                    dirs.append(path)
    return dirs


def _sasl_dir(root):
    found = sorted(glob.glob(os.path.join(root, "usr/lib/*/sasl2")))
    return found[0] if found and glob.glob(os.path.join(found[0], "libsasldb.so*")) else None


def cyrus_env(root, mounted_at=None):
    """The environment the root's binaries run with (``LD_LIBRARY_PATH``, ``SASL_PATH``);
    ``mounted_at``: where the binaries see the root (a bind mount in master's namespace)."""
    env = dict(os.environ)

    def seen(path):
        return mounted_at + path[len(root) :] if mounted_at else path

    libs = [seen(d) for d in _lib_dirs(root)]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(libs)
    sasl = _sasl_dir(root)
    if sasl:
        env["SASL_PATH"] = seen(sasl)
    env.pop("CYRUS_VERBOSE", None)
    return env


def _missing_libraries(root):
    """Sonames that ``ldd`` cannot find for the binaries (and SASL plugins) we run."""
    ldd = shutil.which("ldd")
    if not ldd:
        raise CyrusUnavailable("ldd is missing (libc-bin): cannot check the Cyrus binaries")
    targets = [os.path.join(root, b) for b in _CHECKED_BINARIES]
    sasl = _sasl_dir(root)
    if sasl:
        targets += sorted(glob.glob(os.path.join(sasl, "lib*.so.2")))
    missing = set()
    env = cyrus_env(root)
    for target in targets:
        if not os.path.exists(target):
            raise CyrusUnavailable(f"the Cyrus packages lack {os.path.relpath(target, root)}")
        out = subprocess.run([ldd, target], capture_output=True, text=True, env=env, timeout=60)
        missing.update(m.group(1) for m in re.finditer(r"^\s*(\S+) => not found", out.stdout, re.M))
    return sorted(missing)


def _apt_download(names, dest, log):
    """``apt-get download NAMES`` into dest; one ``apt-get update`` (as root) if it fails."""
    apt = shutil.which("apt-get")
    if not apt:
        raise CyrusUnavailable("apt-get is missing: the Cyrus packages cannot be downloaded")
    for attempt in range(2):
        out = subprocess.run(
            [apt, "download", "-q", *names], cwd=dest, capture_output=True, text=True, timeout=900
        )
        log.append(
            f"$ apt-get download {' '.join(names)}\n{out.stdout[-2000:]}{out.stderr[-2000:]}"
        )
        if out.returncode == 0:
            return True
        if attempt == 0 and os.geteuid() == 0:
            upd = subprocess.run([apt, "update", "-q"], capture_output=True, text=True, timeout=900)
            log.append(f"$ apt-get update -> {upd.returncode}\n{upd.stderr[-2000:]}")
            continue
        break
    return False


def _closure_packages():
    """Library packages in the dependency closure of the Cyrus packages (apt's local lists)."""
    cache = shutil.which("apt-cache")
    if not cache:
        return []
    out = subprocess.run(
        [
            cache,
            "depends",
            "--recurse",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            *CORE_PACKAGES,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    names = {
        line.strip()
        for line in out.stdout.splitlines()
        if line and not line[0].isspace() and not line.startswith("<")
    }
    return sorted(n for n in names if n.startswith("lib"))


def _packages_for(sonames, closure):
    """Debian package names for missing sonames: ``libfoo.so.3`` -> ``libfoo3``."""
    wanted = set()
    for soname in sonames:
        m = re.match(r"(lib[^.]+?)(?:-([\d.]+))?\.so(?:\.(\d+))?", soname)
        if not m:
            continue
        base, dash_version, version = m.group(1), m.group(2), m.group(3) or ""
        candidates = [
            base + (dash_version or "") + version,
            f"{base}-{version}",
            base + version,
            base,
        ]
        pick = next((c.lower() for c in candidates if c and c.lower() in closure), None)
        if pick is None:
            prefix = base.lower().replace("_", "-")
            pick = next((p for p in closure if p.startswith(prefix)), None)
        if pick:
            wanted.add(pick)
    return sorted(wanted)


def _unpack(debs, root):
    dpkg = shutil.which("dpkg") or shutil.which("dpkg-deb")
    if not dpkg:
        raise CyrusUnavailable("dpkg is missing: the Cyrus packages cannot be unpacked")
    for deb in debs:
        out = subprocess.run([dpkg, "-x", deb, root], capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise CyrusUnavailable(f"dpkg -x {os.path.basename(deb)} failed: {out.stderr.strip()}")


def _build_root(staging, log):
    download = staging + ".debs"
    os.makedirs(download, exist_ok=True)
    os.makedirs(staging, exist_ok=True)
    try:
        if not _apt_download(CORE_PACKAGES + EXTRA_PACKAGES, download, log):
            # Another Debian release names some libraries differently: the core alone, then
            # whatever ldd misses.
            if not _apt_download(CORE_PACKAGES, download, log):
                raise CyrusUnavailable(
                    "apt-get download cyrus-imapd cyrus-common sasl2-bin failed:\n" + log[-1]
                )
        done = set()
        closure = None
        for _round in range(4):
            debs = sorted(glob.glob(os.path.join(download, "*.deb")))
            _unpack([d for d in debs if d not in done], staging)
            done.update(debs)
            missing = _missing_libraries(staging)
            if not missing:
                return
            if closure is None:
                closure = _closure_packages()
            have = {os.path.basename(d).split("_")[0] for d in done}
            wanted = [p for p in _packages_for(missing, closure) if p not in have]
            if not wanted or not _apt_download(wanted, download, log):
                break
        raise CyrusUnavailable("Cyrus binaries miss libraries: " + ", ".join(missing))
    finally:
        shutil.rmtree(download, ignore_errors=True)


def ensure_cyrus_root():
    """The private root with Cyrus IMAP unpacked (downloaded on first use; fast afterwards).

    Raises :class:`CyrusUnavailable` when the packages cannot be had or their binaries cannot
    run here."""
    root = cyrus_root_path()
    marker = os.path.join(root, _MARKER)
    if os.path.exists(marker):
        return root
    parent = os.path.dirname(root)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise CyrusUnavailable(f"cannot create {parent}: {e}") from None
    with open(root + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be downloading right now
        if os.path.exists(marker):
            return root
        log = []
        if os.path.exists(os.path.join(root, "usr/lib/cyrus/bin/master")):
            # A root given by hand (or an interrupted one): accept it when it runs.
            missing = _missing_libraries(root)
            if missing and os.environ.get(ROOT_ENV):
                raise CyrusUnavailable(
                    f"{root} (from {ROOT_ENV}) misses libraries: " + ", ".join(missing)
                )
            if not missing:
                _write_marker(root, [])
                return root
        staging = f"{root}.tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            _build_root(staging, log)
            debs = sorted(p for p in os.listdir(os.path.join(staging, "usr/share/doc")))
            _write_marker(staging, debs)
            shutil.rmtree(root, ignore_errors=True)
            os.replace(staging, root)
        except CyrusUnavailable:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        except (OSError, subprocess.SubprocessError) as e:
            shutil.rmtree(staging, ignore_errors=True)
            raise CyrusUnavailable(f"preparing the Cyrus root failed: {e}") from None
    return root


def _write_marker(root, packages):
    with open(os.path.join(root, _MARKER), "w") as fh:
        json.dump({"version": CYRUS_VERSION, "packages": packages, "made": time.time()}, fh)


def _reachable_root(root):
    """``root`` if Cyrus's user (nobody) can reach it, else a copy of it in /var/tmp (made once:
    without a mount namespace nothing else gets nobody past a 0700 home directory)."""
    if os.geteuid() != 0 or others_can_traverse(root):
        return root
    tag = hashlib.sha1(root.encode()).hexdigest()[:12]
    copy = os.path.join("/var/tmp", f"mailsync-cyrus-root-{tag}")
    if os.path.exists(os.path.join(copy, _MARKER)):
        return copy
    with open(copy + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(copy, _MARKER)):
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(root, copy + ".tmp", symlinks=True, dirs_exist_ok=True)
            os.chmod(copy + ".tmp", 0o755)
            os.replace(copy + ".tmp", copy)
    return copy


_namespace_ok = None


def _namespace_works(probe_dir):
    """Can this process give master a private mount namespace (root, util-linux unshare)?"""
    global _namespace_ok
    if _namespace_ok is None:
        unshare = shutil.which("unshare")
        if os.geteuid() != 0 or not unshare:
            _namespace_ok = False
        else:
            os.makedirs(probe_dir, exist_ok=True)
            out = subprocess.run(
                [
                    unshare,
                    "-m",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    f"mount -t tmpfs mailsync-probe '{probe_dir}'",
                ],
                capture_output=True,
                timeout=30,
            )
            _namespace_ok = out.returncode == 0
            with contextlib.suppress(OSError):
                os.rmdir(probe_dir)
    return _namespace_ok


class _SyslogSink:
    """A unix datagram socket that stands in for /dev/log: each record is a line of a file."""

    def __init__(self, path, log_path):
        self.path = path
        self.log_path = log_path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="cyrus-syslog", daemon=True)
        self.thread.start()

    def _run(self):
        with open(self.log_path, "ab", buffering=0) as fh:
            while not self._stop.is_set():
                try:
                    data = self.sock.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    break
                fh.write(re.sub(rb"^<\d+>", b"", data).rstrip(b"\n") + b"\n")

    def close(self):
        self._stop.set()
        self.thread.join(timeout=2)
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class CyrusServer(ImapTestServer):
    """One private Cyrus IMAP. Use as a context manager or call start()/stop()."""

    name = "Cyrus"
    workdir_prefix = "mailsync-cyrus-"
    separator = "."
    sent_folder = "INBOX.Sent"
    admin = "cyrusadmin"
    _LOGIN = _LOGIN
    _refused_errors = (AppendRefused,)

    def __init__(
        self,
        workdir=None,
        port=None,
        oauth_introspection_url=None,
        ssl_port=None,
        header_8bit="keep",
    ):
        if oauth_introspection_url:
            raise CyrusUnavailable("the Cyrus harness has no XOAUTH2/OAUTHBEARER")
        if header_8bit not in HEADER_8BIT:
            raise ValueError(f"header_8bit is one of {sorted(HEADER_8BIT)}, not {header_8bit!r}")
        super().__init__(workdir, port, ssl_port)  # its own work dir is 0755: nobody gets in
        self.oauth_introspection_url = None
        self.header_8bit = header_8bit
        tag = self._tag()
        # Cyrus runs as nobody: everything it touches lives where nobody can reach it.
        run_dir = os.path.join(self.workdir, "cyrus")
        if os.geteuid() == 0 and not self._workdir_reachable():
            run_dir = os.path.join("/var/tmp", f"mailsync-cyrus-{tag}")
        self.run_dir = run_dir
        self.config_file = os.path.join(run_dir, "imapd.conf")
        self.cyrus_conf = os.path.join(run_dir, "cyrus.conf")
        self.config_dir = os.path.join(run_dir, "conf")
        self.spool_dir = os.path.join(run_dir, "spool")
        self.sasldb = os.path.join(run_dir, "sasldb2")
        self.passwd_dir = os.path.join(self.workdir, "users")
        self.log_path = os.path.join(self.workdir, "cyrus.log")
        self.master_log = os.path.join(self.workdir, "master.out")
        self.cafile = os.path.join(run_dir, "tls", "cert.pem")
        self.keyfile = os.path.join(run_dir, "tls", "key.pem")
        self.pid_file = os.path.join(run_dir, "master.pid")
        self.syslog_socket = os.path.join(run_dir, "syslog.sock")
        if len(self.syslog_socket) > 100:
            self.syslog_socket = os.path.join(tempfile.gettempdir(), f"mailsync-cy-{tag}.sock")
        self.root = None
        self.admin_password = None
        self._sink = None
        self._namespace = False

    # ---- lifecycle -------------------------------------------------------------------------
    def _cyrus_user(self):
        """(name, group, uid, gid) Cyrus runs as: nobody/nogroup as root, else ourselves."""
        if os.geteuid() == 0:
            user = pwd.getpwnam("nobody")
            try:
                group = grp.getgrnam("nogroup")
            except KeyError:
                group = grp.getgrgid(user.pw_gid)
            return user.pw_name, group.gr_name, user.pw_uid, group.gr_gid
        me = pwd.getpwuid(os.getuid())
        return me.pw_name, grp.getgrgid(os.getgid()).gr_name, os.getuid(), os.getgid()

    def _bin(self, name, root=None):
        return os.path.join(root or self.root, "usr/lib/cyrus/bin", name)

    def _write_config(self, root):
        user, group, _uid, _gid = self._cyrus_user()
        munge, reject = HEADER_8BIT[self.header_8bit]
        folders = " | ".join(name for name, _use in SPECIAL_USE)
        conf = self.config_dir
        lines = [
            "# written by mailsync.testing.cyrus — private test instance",
            f"configdirectory: {conf}",
            "defaultpartition: default",
            f"partition-default: {self.spool_dir}",
            f"proc_path: {conf}/proc",
            f"mboxname_lockpath: {conf}/lock",
            f"temp_path: {self.run_dir}/tmp",
            f"idlesocket: {conf}/socket/idle",
            f"notifysocket: {conf}/socket/notify",
            f"lmtpsocket: {conf}/socket/lmtp",
            f"sievedir: {conf}/sieve",
            f"cyrus_user: {user}",
            f"cyrus_group: {group}",
            f"admins: {self.admin}",
            "allowplaintext: yes",
            "sasl_pwcheck_method: auxprop",
            "sasl_auxprop_plugin: sasldb",
            f"sasl_sasldb_path: {self.sasldb}",
            "sasl_mech_list: PLAIN LOGIN",
            "virtdomains: userid",
            "unixhierarchysep: no",
            "altnamespace: no",
            "hashimapspool: true",
            "autocreate_quota: 0",
            f"autocreate_inbox_folders: {folders}",
            f"autocreate_subscribe_folders: {folders}",
            *(f"xlist-{use[1:].lower()}: {name}" for name, use in SPECIAL_USE),
            "delete_mode: immediate",
            "expunge_mode: immediate",
            "failedloginpause: 0",
            "imapidlepoll: 1",
            f"munge8bit: {munge}",
            f"reject8bit: {reject}",
            "syslog_prefix: mailsync-cyrus",
            "telemetry_bysessionid: yes",  # one telemetry file per session, not per process
            f"tls_server_cert: {self.cafile}",
            f"tls_server_key: {self.keyfile}",
            "tls_versions: tls1_2 tls1_3",
        ]
        with open(self.config_file, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        cfg = self.config_file
        with open(self.cyrus_conf, "w") as fh:
            fh.write(
                "# written by mailsync.testing.cyrus\n"
                "START {\n"
                f'  recover cmd="{self._bin("ctl_cyrusdb", root)} -C {cfg} -r"\n'
                "}\n"
                "SERVICES {\n"
                f'  imap cmd="{self._bin("imapd", root)} -C {cfg} -U 50" '
                f'listen="{LOOPBACK}:{self.port}" prefork=1\n'
                f'  imaps cmd="{self._bin("imapd", root)} -C {cfg} -s -U 50" '
                f'listen="{LOOPBACK}:{self.ssl_port}" prefork=0\n'
                "}\n"
                "EVENTS {\n"
                "}\n"
                "DAEMON {\n"
                f'  idled cmd="{self._bin("idled", root)} -C {cfg}"\n'
                "}\n"
            )

    def _prepare(self):
        os.makedirs(self.workdir, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        os.makedirs(self.run_dir, exist_ok=True)
        os.chmod(self.run_dir, 0o755)
        for sub in (
            "db",
            "socket",
            "log",
            "sieve",
            "quota",
            "user",
            "lock",
            "proc",
            "msg",
            "ptclient",
        ):
            os.makedirs(os.path.join(self.config_dir, sub), exist_ok=True)
        for path in (
            self.spool_dir,
            os.path.join(self.run_dir, "tmp"),
            os.path.join(self.run_dir, "tls"),
            os.path.join(self.run_dir, "root"),
        ):
            os.makedirs(path, exist_ok=True)
        os.makedirs(self.passwd_dir, exist_ok=True)
        os.chmod(self.passwd_dir, 0o700)
        if not (os.path.exists(self.cafile) and os.path.exists(self.keyfile)):
            self_signed_cert(os.path.join(self.run_dir, "tls"), "mailsync-cyrus")
        admin_file = os.path.join(self.passwd_dir, ".admin")
        if os.path.exists(admin_file):
            with open(admin_file) as fh:
                self.admin_password = fh.read().strip()
        else:
            self.admin_password = "admin-" + secrets.token_urlsafe(12)
            fd = os.open(admin_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(self.admin_password)
        self._saslpasswd(self.admin, self.admin_password)

    def _chown_run_dir(self):
        if os.geteuid() != 0:
            return
        _user, _group, uid, gid = self._cyrus_user()
        for base, dirs, files in os.walk(self.run_dir):
            if base == os.path.join(self.run_dir, "root"):
                dirs[:] = []
            for name in [*dirs, *files]:
                with contextlib.suppress(FileNotFoundError):
                    os.lchown(os.path.join(base, name), uid, gid)
        os.chown(self.run_dir, uid, gid)

    def _before_start(self):
        self.root = ensure_cyrus_root()
        self._namespace = _namespace_works(os.path.join(self.run_dir, "ns-probe"))
        self._prepare()

    def _launch(self):
        # Cyrus's services refuse to run as root: nobody must reach the binaries. In the
        # namespace the root is bind-mounted into run_dir; else a copy may be needed.
        inner_root = (
            os.path.join(self.run_dir, "root") if self._namespace else _reachable_root(self.root)
        )
        self._write_config(inner_root)
        self._chown_run_dir()
        return self._spawn(self._namespace, inner_root)

    def _spawn(self, namespace, inner_root):
        master_args = [
            self._bin("master", inner_root),
            "-C",
            self.config_file,
            "-M",
            self.cyrus_conf,
            "-p",
            self.pid_file,
            "-D",
        ]
        with open(self.master_log, "ab") as out:
            if not namespace:
                return subprocess.Popen(
                    master_args,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=cyrus_env(inner_root),
                    start_new_session=True,
                    cwd=self.run_dir,
                )
            if self._sink is None:
                self._sink = _SyslogSink(self.syslog_socket, self.log_path)
            ns = os.path.join(self.run_dir, "ns")
            os.makedirs(ns, exist_ok=True)
            # /dev/log does not exist here (no syslog daemon) and must not be created on the
            # host: in master's own mount namespace /dev becomes an overlay with /dev/log -> our
            # socket; the root is bind-mounted where nobody can reach it.
            script = (
                f"mount --bind {_q(self.root)} {_q(inner_root)} || exit 70\n"
                f"if mount -t tmpfs -o mode=0755 mailsync-cyrus {_q(ns)} && "
                f"mkdir {_q(ns)}/u {_q(ns)}/w && "
                "mount -t overlay overlay -o "
                f"lowerdir=/dev,upperdir={_q(ns)}/u,workdir={_q(ns)}/w /dev; then\n"
                f"  ln -sf {_q(self.syslog_socket)} /dev/log\n"
                "  mount -t tmpfs -o mode=1777 shm /dev/shm\n"
                "else\n"
                "  echo 'mailsync: no /dev/log in the namespace: Cyrus logs nothing' >&2\n"
                "fi\n"
                'exec "$@"\n'
            )
            env = cyrus_env(self.root, mounted_at=inner_root)
            return subprocess.Popen(
                [
                    shutil.which("unshare"),
                    "-m",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    script,
                    "mailsync-cyrus",
                    *master_args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                cwd=self.run_dir,
            )

    def _cleanup(self):
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        res = super()._cleanup()
        if self._own_workdir or self.run_dir != os.path.join(self.workdir, "cyrus"):
            # (the root's bind mount exists only in master's namespace: from here run_dir/root
            # is an empty directory, and the cache itself is never touched)
            shutil.rmtree(self.run_dir, ignore_errors=True)
        return res

    # ---- description for other processes ----------------------------------------------------
    def describe(self):
        """What another process needs to attach (the ``MAILSYNC_CYRUS`` JSON)."""
        return {
            "kind": "cyrus",
            **self._description(),
            "run_dir": self.run_dir,
            "root": self.root,
            "admin": self.admin,
            "admin_password": self.admin_password,
            "sent_folder": self.sent_folder,
            "separator": self.separator,
            "header_8bit": self.header_8bit,
        }

    @classmethod
    def attach(cls, info):
        """A handle on a server another process runs (``info`` as written by describe())."""
        self = cls(
            workdir=info["workdir"],
            port=int(info["port"]),
            ssl_port=int(info["ssl_port"]) if info.get("ssl_port") else None,
            header_8bit=info.get("header_8bit") or "keep",
        )._attached_to(info)
        self.run_dir = info.get("run_dir") or self.run_dir
        self.config_file = info.get("config_file") or os.path.join(self.run_dir, "imapd.conf")
        self.cyrus_conf = os.path.join(self.run_dir, "cyrus.conf")
        self.config_dir = os.path.join(self.run_dir, "conf")
        self.spool_dir = os.path.join(self.run_dir, "spool")
        self.sasldb = os.path.join(self.run_dir, "sasldb2")
        self.cafile = info.get("cafile") or os.path.join(self.run_dir, "tls", "cert.pem")
        self.keyfile = os.path.join(os.path.dirname(self.cafile), "key.pem")
        self.pid_file = os.path.join(self.run_dir, "master.pid")
        self.passwd_dir = info.get("passwd_dir") or self.passwd_dir
        self.log_path = info.get("log_path") or self.log_path
        self.root = info.get("root") or ensure_cyrus_root()
        self.admin_password = info.get("admin_password")
        return self

    # ---- tools of the root -------------------------------------------------------------------
    def _tool(self, args, *, input_text=None, check=True):
        out = subprocess.run(
            args,
            input=input_text,
            capture_output=True,
            text=True,
            env=cyrus_env(self.root),
            timeout=120,
        )
        if check and out.returncode != 0:
            raise RuntimeError(
                f"{os.path.basename(args[0])} {' '.join(args[1:])} failed "
                f"({out.returncode}): {out.stderr.strip() or out.stdout.strip()}"
            )
        return out.stdout

    def _saslpasswd(self, login, password):
        # saslpasswd2 runs as root (nobody may not reach the root), then nobody gets the file.
        self._tool(
            [
                os.path.join(self.root, "usr/sbin/saslpasswd2"),
                "-f",
                self.sasldb,
                "-p",
                "-c",
                "-u",
                "",
                login,
            ],
            input_text=password,
        )
        if os.geteuid() == 0:
            _user, _group, uid, gid = self._cyrus_user()
            os.chown(self.sasldb, uid, gid)
            os.chmod(self.sasldb, 0o640)

    # ---- users ---------------------------------------------------------------------------------
    def _login_error(self, login):
        if _DOTTED_LOGIN.fullmatch(login or ""):
            return f"Cyrus (separator '.') cannot serve a login with a dot before the @: {login!r}"
        return super()._login_error(login)

    def add_user(self, login, password):
        """Create (or re-password) a mailbox user; usable at once, no restart. ``login`` is an
        e-mail address without a dot before the @ (Cyrus lower-cases it). Its INBOX and the
        special-use folders (``INBOX.Sent`` …) exist when this returns."""
        self._check_credentials(login, password)
        login = login.lower()
        path = self._user_file(login)
        if os.path.exists(path) and self.password(login) == password:
            return login
        self._saslpasswd(login, password)
        tmp = (
            f"{os.path.dirname(path)}/.{os.path.basename(path)}"
            f".{os.getpid()}.{threading.get_ident()}"
        )
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password)
        os.replace(tmp, path)
        # First login: Cyrus creates INBOX and the special-use folders (autocreate).
        with self._session(login) as client:
            if not any(name == "INBOX" for _f, _d, name in client.list_folders("", "INBOX")):
                self._admin_create_inbox(login)
        return login

    def _admin_create_inbox(self, login):
        local, domain = login.split("@", 1)
        admin = self.admin_client()
        try:
            admin.create_folder(f"user.{local}@{domain}")
        finally:
            with contextlib.suppress(Exception):
                admin.logout()

    def password(self, login):
        try:
            with open(self._user_file(login)) as fh:
                return fh.read()
        except FileNotFoundError:
            raise KeyError(f"no such Cyrus user: {login}") from None

    # ---- folders -------------------------------------------------------------------------------
    @classmethod
    def folder_name(cls, folder):
        """The Cyrus name of ``folder`` as a Dovecot caller writes it: INBOX stays, ``Sent`` ->
        ``INBOX.Sent``, ``A/B`` -> ``INBOX.A.B``; a name already under ``INBOX.`` stays."""
        if folder.upper() == "INBOX":
            return "INBOX"
        if folder.upper().startswith("INBOX."):
            return "INBOX" + folder[5:]
        return "INBOX." + folder.replace("/", cls.separator)

    def _mailbox_path(self, login, real):
        """Directory of the user's folder ``real`` (``INBOX`` / ``INBOX.X``) in the spool."""
        local, domain = login.lower().split("@", 1)
        name = f"user.{local}{real[len('INBOX') :]}@{domain}"
        return self._tool([self._bin("mbpath"), "-C", self.config_file, name]).strip()

    # ---- IMAP helpers (client, append, append_many, flags… are ImapTestServer's) -------------
    def admin_client(self):
        """An IMAPClient logged in as the Cyrus admin (sees ``user.<local>…@<domain>``)."""
        return self.client(self.admin, self.admin_password)

    def _refusal(self, folder, error):
        # append() and append_many() raise AppendRefused when Cyrus refuses the message
        # (append_many(skip_refused=True) gives None for it instead).
        reason = re.sub(r"^append failed:\s*", "", str(error), flags=re.I)
        return AppendRefused(folder, reason)

    def reset_uidvalidity(self, login, folder):
        """Give ``folder`` a new, higher UIDVALIDITY; its messages stay (same bytes, flags and
        internal dates) but get new UIDs, above the old ones. Returns the new UIDVALIDITY.

        Cyrus has no command for it: the messages are read, all but the last are expunged, the
        folder's ``cyrus.index`` is removed and ``reconstruct`` builds a new one from the files
        (Cyrus then takes a new UIDVALIDITY and fixes its mailbox list; the last message keeps
        its UID, so the UIDs go on above it); the messages are appended again and that last old
        copy expunged. The folder keeps its name, special-use flag and subscription. No other
        session may have the folder selected meanwhile."""
        real = self.folder_name(folder)
        with self._session(login) as client:
            client.select_folder(real)
            old_validity = int(client.folder_status(real, ["UIDVALIDITY"])[b"UIDVALIDITY"])
            uids = sorted(client.search(["ALL"]))
            data = client.fetch(uids, ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"]) if uids else {}
            if len(uids) > 1:
                client.delete_messages(uids[:-1], silent=True)
                client.expunge()
            client.close_folder()
        path = self._mailbox_path(login, real)
        local, domain = login.lower().split("@", 1)
        name = f"user.{local}{real[len('INBOX') :]}@{domain}"
        new_validity = old_validity
        for _attempt in range(5):
            # a new index takes the clock's seconds: wait until they pass the old value
            while old_validity - 5 < int(time.time()) <= old_validity:
                time.sleep(0.05)
            for meta in ("cyrus.index", "cyrus.cache"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(path, meta))
            self._tool([self._bin("reconstruct"), "-C", self.config_file, name])
            with self._session(login) as client:
                new_validity = int(client.folder_status(real, ["UIDVALIDITY"])[b"UIDVALIDITY"])
            if new_validity > old_validity:
                break
        if new_validity <= old_validity:
            raise RuntimeError(f"Cyrus kept UIDVALIDITY {old_validity} of {real} for {login}")
        with self._session(login) as client:
            client.select_folder(real)
            kept = client.search(["ALL"])
            for uid in uids:
                item = data[uid]
                flags = tuple(f for f in item[b"FLAGS"] if f.lower() != b"\\recent")
                client.append(real, item[b"BODY[]"], flags=flags, msg_time=item[b"INTERNALDATE"])
            if kept:
                client.delete_messages(kept, silent=True)
                client.expunge()
            client.close_folder()
        return new_validity

    # ---- telemetry and logs --------------------------------------------------------------------
    def _telemetry_dir(self, login):
        return os.path.join(self.config_dir, "log", login.lower())

    def enable_telemetry(self, login):
        """Turn on Cyrus's protocol log for ``login`` (sessions that log in from now on);
        returns its directory."""
        path = self._telemetry_dir(login)
        os.makedirs(path, exist_ok=True)
        if os.geteuid() == 0:
            _user, _group, uid, gid = self._cyrus_user()
            os.chown(path, uid, gid)
        return path

    def clear_telemetry(self, login):
        for entry in glob.glob(os.path.join(self._telemetry_dir(login), "*")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry)

    def telemetry(self, login):
        """The protocol log of ``login``'s sessions ('' if none), one session after the other
        in the order they ended: chunks ``<time<`` are what the client sent, ``>time>`` what
        Cyrus answered (a session's LOGIN comes before its log starts: no password in it)."""
        files = glob.glob(os.path.join(self._telemetry_dir(login), "*"))
        files.sort(key=lambda p: (os.stat(p).st_mtime_ns, p))  # sessions in the order they ended
        parts = []
        for path in files:
            with contextlib.suppress(FileNotFoundError), open(path, "rb") as fh:
                parts.append(fh.read().decode("utf-8", "replace"))
        return "".join(parts)

    def client_commands(self, login):
        """The command lines ``login``'s clients sent (tag stripped), from the telemetry."""
        # Each chunk Cyrus read or wrote starts with <time< (client) or >time> (server); one
        # command may come in several chunks. A literal's bytes ({n}) are left out.
        parts = re.split(r"([<>])\d{6,}\1", self.telemetry(login))
        stream = "".join(parts[i + 1] for i in range(1, len(parts) - 1, 2) if parts[i] == "<")
        commands, pos, current = [], 0, ""
        while pos < len(stream):
            end = stream.find("\r\n", pos)
            if end < 0:
                end = len(stream)
            line = stream[pos:end]
            pos = end + 2
            current += line
            literal = re.search(r"\{(\d+)\+?\}$", line)
            if literal:
                pos += int(literal.group(1))  # the literal's bytes, then the rest of the line
                continue
            if current.strip():
                parts = current.split(" ", 1)
                commands.append(parts[1] if len(parts) > 1 else parts[0])
            current = ""
        return commands

    def _log_files(self):
        """Cyrus's syslog records (``cyrus.log``) and master's own output."""
        return (self.log_path, self.master_log)


def _q(path):
    import shlex

    return shlex.quote(path)


# ---- one server per process ---------------------------------------------------------------------
_shared = None
_shared_lock = threading.Lock()


def shared_cyrus():
    """The process-wide Cyrus: the test runner's (env ``MAILSYNC_CYRUS``) or a lazily started
    one, stopped at exit. Raises CyrusUnavailable when Cyrus cannot be had."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = start_or_attach(CyrusServer, ENV_VAR)
        return _shared
