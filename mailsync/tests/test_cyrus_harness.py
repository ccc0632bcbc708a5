"""The Cyrus test server works like the Dovecot one (mailsync.testing.cyrus), and the engine's
ImapSession talks to it. Skips (with the reason) only where Cyrus cannot be had at all."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import secrets
import ssl
import subprocess
import sys
import time

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from mailsync.testing import cyrus as cyrus_mod
from mailsync.testing.cyrus import AppendRefused, CyrusServer, CyrusUnavailable, ensure_cyrus_root

_serial = itertools.count(1)
WHEN = dt.datetime(2025, 3, 3, 10, 0, 7, tzinfo=dt.timezone.utc)


def _message(subject, sender="ann@customer.test", to="me@example.test", extra=b""):
    return (
        (
            f"From: Ann <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@customer.test>\r\n"
            "Date: Mon, 03 Mar 2025 10:00:00 +0000\r\n"
        ).encode()
        + extra
        + b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + (f"Body of {subject}\r\n").encode()
    )


def _server_or_skip(**kwargs):
    try:
        ensure_cyrus_root()
    except CyrusUnavailable as e:
        pytest.skip(f"Cyrus unavailable: {e}")
    return CyrusServer(**kwargs)


@pytest.fixture(scope="module")
def cyrus():
    server = _server_or_skip()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def user(cyrus):
    login = f"cy{next(_serial)}-{os.getpid()}-{secrets.token_hex(3)}@example.test"
    password = "pw-" + secrets.token_urlsafe(9).replace(":", "x")
    assert cyrus.add_user(login, password) == login
    return login


def _fetch(server, login, folder, uids, items):
    client = server.client(login)
    try:
        client.select_folder(folder, readonly=True)
        return client.fetch(uids, items)
    finally:
        client.logout()


def _utc(value):
    return value.astimezone(dt.timezone.utc)


# ---- the root and the server itself --------------------------------------------------------------
def test_root_is_cached_outside_the_repository_and_fast(cyrus):
    started = time.monotonic()
    root = ensure_cyrus_root()
    assert time.monotonic() - started < 0.05
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert not os.path.abspath(root).startswith(repo + os.sep)
    assert os.path.exists(os.path.join(root, "usr/lib/cyrus/bin/master"))
    assert cyrus.root == root


def test_unavailable_packages_raise_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv(cyrus_mod.ROOT_ENV, str(tmp_path / "cyrus-root"))
    real_which = cyrus_mod.shutil.which
    monkeypatch.setattr(
        cyrus_mod.shutil, "which", lambda name: None if name == "apt-get" else real_which(name)
    )
    with pytest.raises(CyrusUnavailable, match="apt-get"):
        ensure_cyrus_root()
    assert not os.path.exists(tmp_path / "cyrus-root")


def test_login_folders_and_special_use(cyrus, user):
    client = cyrus.client(user)
    try:
        caps = set(client.capabilities())
        assert {b"IDLE", b"UIDPLUS", b"SPECIAL-USE", b"MOVE"} <= caps
        rows = client.list_folders()
    finally:
        client.logout()
    assert {sep for _flags, sep, _name in rows} == {b"."}
    uses = {name: {f.decode().lower() for f in flags} for flags, _sep, name in rows}
    # Cyrus reports the special-use flags in lower case (\sent): compare without case.
    assert "\\sent" in uses["INBOX.Sent"] and "\\drafts" in uses["INBOX.Drafts"]
    assert "\\trash" in uses["INBOX.Trash"] and "\\junk" in uses["INBOX.Junk"]
    assert "\\archive" in uses["INBOX.Archive"] and "INBOX" in uses
    assert cyrus.sent_folder == "INBOX.Sent"
    assert [cyrus.folder_name(n) for n in ("inbox", "Sent", "INBOX.Sent", "Clients/ACME")] == [
        "INBOX",
        "INBOX.Sent",
        "INBOX.Sent",
        "INBOX.Clients.ACME",
    ]


def test_plain_port_offers_starttls_and_ssl_port_verifies(cyrus, user):
    context = ssl.create_default_context(cafile=cyrus.cafile)
    plain = IMAPClient(cyrus.host, cyrus.port, ssl=False, timeout=10)
    try:
        assert b"STARTTLS" in plain.capabilities()
        plain.starttls(context)
        plain.login(user, cyrus.password(user))
    finally:
        plain.logout()
    secure = cyrus.client(user, ssl_port=True, timeout=10)
    secure.logout()
    with pytest.raises(ssl.SSLError):
        IMAPClient(
            cyrus.host,
            cyrus.ssl_port,
            ssl=True,
            ssl_context=ssl.create_default_context(),
            timeout=10,
        )


def test_add_user_repassword_and_refused_logins(cyrus):
    login = cyrus.add_user("Late-Joiner@Example.test", "first-pw")
    assert login == "late-joiner@example.test"
    cyrus.client(login).logout()
    cyrus.add_user(login, "second-pw")  # effective at once
    with pytest.raises(LoginError):
        cyrus.client(login, "first-pw")
    cyrus.client(login, "second-pw").logout()
    with pytest.raises(LoginError):
        cyrus.client("nobody-here@example.test", "x")
    with pytest.raises(ValueError, match="dot"):
        cyrus.add_user("first.last@example.test", "pw")
    with pytest.raises(ValueError):
        cyrus.add_user("colon@example.test", "a:b")


# ---- messages ------------------------------------------------------------------------------------
def test_append_to_inbox_and_sent_keeps_flags_and_dates(cyrus, user):
    first = cyrus.append(user, "INBOX", _message("one"), flags=[b"\\Seen"], when=WHEN)
    second = cyrus.append(user, "INBOX", _message("two"), flags=["\\Flagged", "$Label1"])
    sent = cyrus.append(user, "Sent", _message("mine", sender=user), flags=["\\Seen"], when=WHEN)
    assert second > first and sent == 1
    inbox_flags = cyrus.flags(user, "INBOX")
    assert inbox_flags[first] == ("\\Seen",)
    assert sorted(inbox_flags[second]) == sorted(("\\Flagged", "$Label1"))
    assert cyrus.flags(user, "Sent") == cyrus.flags(user, "INBOX.Sent") == {sent: ("\\Seen",)}
    data = _fetch(cyrus, user, "INBOX", [first], ["INTERNALDATE", "BODY.PEEK[]"])[first]
    assert _utc(data[b"INTERNALDATE"]) == WHEN
    assert data[b"BODY[]"] == _message("one")
    data = _fetch(cyrus, user, cyrus.sent_folder, [sent], ["INTERNALDATE", "BODY.PEEK[]"])[sent]
    assert _utc(data[b"INTERNALDATE"]) == WHEN and data[b"BODY[]"] == _message("mine", sender=user)


def test_append_creates_missing_folder(cyrus, user):
    assert cyrus.append(user, "Clients/ACME", _message("nested")) == 1
    assert cyrus.create_folder(user, "Clients/ACME") == "INBOX.Clients.ACME"  # idempotent
    assert cyrus.flags(user, "Clients/ACME") == {1: ()}


def test_what_cyrus_refuses_on_append(cyrus, user):
    refused = {
        "no colon": _message("a", extra=b"This line is no header\r\n"),
        "space before colon": _message("b", extra=b"X-Odd : value\r\n"),
        "bare CR": _message("c", extra=b"X-Odd: one\rtwo\r\n"),
        "NUL": _message("d") + b"nul \x00 byte\r\n",
    }
    for what, raw in refused.items():
        with pytest.raises(AppendRefused) as info:
            cyrus.append(user, "INBOX", raw)
        assert info.value.folder == "INBOX", what
        assert re.search(r"invalid header|NUL", info.value.reason), (what, info.value.reason)
    # 8-bit header bytes: kept byte for byte by default (munge8bit: no).
    eight_bit = _message("e", extra="X-Name: Bj\u00f6rk\r\n".encode())
    uid = cyrus.append(user, "INBOX", eight_bit)
    assert _fetch(cyrus, user, "INBOX", [uid], ["BODY.PEEK[]"])[uid][b"BODY[]"] == eight_bit
    # append_many goes on past refused messages when asked to.
    uids = cyrus.append_many(
        user,
        "Sent",
        [_message("f"), refused["no colon"], (_message("g"), ["\\Seen"], WHEN)],
        skip_refused=True,
    )
    assert uids[1] is None and uids[0] < uids[2]
    with pytest.raises(AppendRefused):
        cyrus.append_many(user, "Sent", [refused["NUL"]])
    assert len(cyrus.flags(user, "Sent")) == 2


@pytest.mark.parametrize(
    "mode, refused, stored_header",
    [
        ("munge", False, b"X-Name: BjXXrk"),  # Cyrus's own default: each 8-bit byte becomes X
        ("reject", True, None),
    ],
)
def test_header_8bit_modes(mode, refused, stored_header):
    with _server_or_skip(header_8bit=mode) as server:
        login = server.add_user("eight@example.test", "pw-eight")
        raw = _message("e", extra="X-Name: Bj\u00f6rk\r\n".encode())
        if refused:
            with pytest.raises(AppendRefused, match="non-ASCII characters in headers"):
                server.append(login, "INBOX", raw)
        else:
            uid = server.append(login, "INBOX", raw)
            body = _fetch(server, login, "INBOX", [uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
            assert stored_header in body


def test_reset_uidvalidity_keeps_messages_flags_and_dates(cyrus, user):
    for folder in ("INBOX", "Sent"):
        uids = [
            cyrus.append(
                user,
                folder,
                _message(f"{folder} {i}"),
                flags=["\\Seen"] if i else (),
                when=WHEN + dt.timedelta(hours=i),
            )
            for i in range(3)
        ]
        before = cyrus.uidvalidity(user, folder)
        after = cyrus.reset_uidvalidity(user, folder)
        assert after > before and cyrus.uidvalidity(user, folder) == after
        if folder == "INBOX":
            again = cyrus.reset_uidvalidity(user, folder)  # right again: still a new one
            assert again > after
        flags = cyrus.flags(user, folder)
        assert len(flags) == 3 and not set(flags) & set(uids)
        assert sorted(flags.values()) == [(), ("\\Seen",), ("\\Seen",)]
        data = _fetch(
            cyrus, user, cyrus.folder_name(folder), sorted(flags), ["BODY.PEEK[]", "INTERNALDATE"]
        )
        assert sorted((v[b"BODY[]"], _utc(v[b"INTERNALDATE"])) for v in data.values()) == sorted(
            (_message(f"{folder} {i}"), WHEN + dt.timedelta(hours=i)) for i in range(3)
        )
    # The Sent folder is still the special-use one; the other folders kept their UIDVALIDITY.
    client = cyrus.client(user)
    try:
        uses = {name: {f.lower() for f in flags} for flags, _s, name in client.list_folders()}
    finally:
        client.logout()
    assert b"\\sent" in uses["INBOX.Sent"]


def test_idle_notices_new_mail(cyrus, user):
    client = cyrus.client(user)
    try:
        client.select_folder("INBOX")
        client.idle()
        cyrus.append(user, "INBOX", _message("while idling"))
        responses = client.idle_check(timeout=15)
        client.idle_done()
        assert any(b"EXISTS" in r for r in responses)
    finally:
        client.logout()


# ---- the engine against Cyrus --------------------------------------------------------------------
def _config(cyrus, login):
    from mailsync.types import Endpoint, MailboxConfig

    return MailboxConfig(
        email=login,
        imap=Endpoint(cyrus.host, cyrus.port, "none"),
        login=login,
        password=cyrus.password(login),
        timeout=10.0,
        allowed_networks="127.0.0.1",
    )


def test_engine_session_reads_cyrus(cyrus, user):
    from mailsync.session import ImapSession
    from mailsync.types import ROLE_INBOX, ROLE_SENT

    received = cyrus.append_many(
        user,
        "INBOX",
        [
            (_message("hello"), (), WHEN),
            (_message("again", extra=b"In-Reply-To: <hello@customer.test>\r\n"), ["\\Seen"], WHEN),
        ],
    )
    sent = cyrus.append(user, "Sent", _message("reply", sender=user, to="ann@customer.test"))
    with ImapSession(_config(cyrus, user)) as s:
        folders = s.discover_folders()
        assert [(f.name, f.role) for f in folders] == [
            ("INBOX", ROLE_INBOX),
            ("INBOX.Sent", ROLE_SENT),
        ]
        validity, uidnext = s.examine("INBOX")
        assert validity == cyrus.uidvalidity(user, "INBOX") and uidnext == received[-1] + 1
        assert s.uids_after(0) == received and s.uids_after(received[0]) == received[1:]
        headers = s.fetch_headers(received)
        assert [h.subject for h in headers] == ["hello", "again"]
        assert headers[0].from_addrs == ("ann@customer.test",)
        assert headers[1].in_reply_to == "<hello@customer.test>"
        assert "\\Seen" in headers[1].flags
        assert s.fetch_raw([received[0]]) == {received[0]: _message("hello")}
        s.examine("INBOX.Sent")
        assert s.uids_after(0) == [sent]
        assert s.fetch_headers([sent])[0].to_addrs == ("ann@customer.test",)
        assert s.status_many(["INBOX", "INBOX.Sent"])["INBOX.Sent"][1] == sent + 1


def test_telemetry_shows_what_the_engine_sent(cyrus, user):
    from mailsync.session import ImapSession

    cyrus.append(user, "INBOX", _message("watched"))
    before = cyrus.flags(user, "INBOX")
    cyrus.enable_telemetry(user)
    cyrus.clear_telemetry(user)
    assert cyrus.telemetry(user) == ""
    with ImapSession(_config(cyrus, user)) as s:
        name = s.discover_folders()[0].name
        s.examine(name)
        uids = s.uids_after(0)
        s.fetch_headers(uids)
        s.fetch_raw(uids)
    text = cyrus.telemetry(user)
    assert "watched" in text  # the server's answers are logged too
    commands = cyrus.client_commands(user)
    verbs = [
        " ".join(c.split()[: 2 if c.upper().startswith("UID ") else 1]).upper() for c in commands
    ]
    assert "EXAMINE" in verbs and "UID FETCH" in verbs and verbs[-1] == "LOGOUT"
    read_only = {
        "CAPABILITY",
        "LIST",
        "EXAMINE",
        "UID SEARCH",
        "UID FETCH",
        "LOGOUT",
        "NOOP",
        "STATUS",
        "ID",
        "NAMESPACE",
        "ENABLE",
    }
    assert set(verbs) <= read_only, commands
    assert not any(re.search(r"BODY\[", c, re.I) for c in commands), commands  # only BODY.PEEK
    assert not any(cyrus.password(user) in c for c in commands)
    assert cyrus.flags(user, "INBOX") == before


# ---- other processes and the end -----------------------------------------------------------------
def test_describe_and_attach_in_another_process(cyrus):
    info = json.dumps(cyrus.describe())
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[2]);"
        "from mailsync.testing.cyrus import CyrusServer;"
        "c = CyrusServer.attach(json.loads(sys.argv[1]));"
        "c.add_user('attached@example.test', 'pw-attached');"
        "print(c.append('attached@example.test', 'Sent', b'Subject: x\\r\\n\\r\\ny\\r\\n'))"
    )
    import mailsync

    root = os.path.dirname(mailsync.__path__[0])
    out = subprocess.run(
        [sys.executable, "-c", code, info, root], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 1
    assert cyrus.password("attached@example.test") == "pw-attached"
    assert cyrus.flags("attached@example.test", "Sent")
    attached = CyrusServer.attach(json.loads(info))
    assert (attached.port, attached.ssl_port, attached.sent_folder) == (
        cyrus.port,
        cyrus.ssl_port,
        "INBOX.Sent",
    )
    attached.stop()  # a no-op for an attached handle
    assert cyrus.client("attached@example.test")


def test_shared_cyrus_attaches_through_the_env_var(cyrus, monkeypatch):
    monkeypatch.setenv(cyrus_mod.ENV_VAR, json.dumps(cyrus.describe()))
    monkeypatch.setattr(cyrus_mod, "_shared", None)
    shared = cyrus_mod.shared_cyrus()
    assert shared is cyrus_mod.shared_cyrus() and shared._attached
    assert (shared.port, shared.run_dir) == (cyrus.port, cyrus.run_dir)


def _processes_mentioning(text):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if text.encode() in fh.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_log_and_stop_leave_nothing_behind():
    server = _server_or_skip()
    server.start()
    try:
        login = server.add_user("short-lived@example.test", "pw-short")
        server.client(login).logout()
        pid, run_dir = server.pid, server.run_dir
        assert _processes_mentioning(run_dir)
        deadline = time.monotonic() + 5
        while "login:" not in server.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f"{login} plaintext User logged in" in server.log_text()
    finally:
        server.stop()
    assert not _processes_mentioning(run_dir)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not os.path.exists(server.workdir) and not os.path.exists(run_dir)


def test_admin_sees_the_users_mailboxes(cyrus, user):
    local = user.split("@")[0]
    admin = cyrus.admin_client()
    try:
        names = {name for _flags, _sep, name in admin.list_folders("", f"user.{local}*")}
        cyrus_mod.CyrusServer._ensure_folder(admin, f"user.{local}.Made-By-Admin@example.test")
    finally:
        admin.logout()
    assert {f"user.{local}@example.test", f"user.{local}.Sent@example.test"} <= names
    client = cyrus.client(user)
    try:
        assert client.folder_exists("INBOX.Made-By-Admin")
    finally:
        client.logout()
