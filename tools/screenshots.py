#!/usr/bin/env python3
"""Take the README's screenshots from a real browser against the demo database.

    bash tools/demo.sh          # in another terminal: Odoo on :8069, database crm_mail_sync_demo
    /opt/odoo/venv/bin/python tools/screenshots.py [--url URL] [--db DB] [--out DIR]
                                                   [--no-prepare] [--only NAME,...]

Run it with Odoo's Python (it has ``requests``, ``websocket-client`` and Pillow). It drives
headless Chromium (Debian's ``/usr/bin/chromium``) over the DevTools protocol and writes
``docs/screenshots/*.png`` (palette PNGs, each well under 300 KB):

- ``settings.png``: CRM ▸ Configuration ▸ Mail Sync ▸ Overview — every mailbox with its status
  badge (the Error badge hovered: its meaning shows as a tooltip), then the error log;
- ``user_mail_sync_tab.png``: My Profile ▸ Mail Sync of the admin user;
- ``lead_synced_mail.png``: the demo lead with the most synced mail, its chatter showing it;
- ``topbar_not_configured.png``: the top bar of a user without a mailbox (Marc Demo).

The preparation (skipped with ``--no-prepare``; idempotent) gives the demo company three more
salespeople whose mailboxes show every status, doing only what they and the administrator can
do themselves — the addon's buttons and Settings over XML-RPC:

- Sofia connects her mailbox (Test connection: Enabled), then her password changes at her mail
  provider (the demo's Dovecot); her next sync (Retry now) fails: Error and an error-log line.
- Lucas connects his (Enabled) through a mail server that then goes away (a relay this script
  runs and closes); two syncs fail: Error, counted twice on one log line. A mailbox goes to
  Connection after 48 hours of errors; the demo does not wait two days: the demo's own tooling
  (``odoo-bin shell`` on the demo database, as ``tools/demo_seed.py``) moves the start of his
  errors 48 hours back and applies the addon's rule (what the sync cron checks first): Connection.
- The administrator sets the company's mailbox limit (Settings ▸ CRM ▸ Mail Sync) to the seats
  in use; Nina then connects with valid credentials: Pending.

Every wait is bounded and ends with a message saying what did not happen. Exit status: 0 when
every screenshot was written, 1 otherwise (also when the browser's console showed errors).
"""

import argparse
import base64
import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client

import requests
import websocket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_BYTES = 300 * 1024
SHOTS = ("settings", "user_mail_sync_tab", "lead_synced_mail", "topbar_not_configured")
RPC_TIMEOUT = 180  # seconds for one XML-RPC call (a connection test or a sync included)
SHELL_TIMEOUT = 300  # seconds for the odoo-bin shell step (loads the registry)


class ShotError(Exception):
    """What did not happen, said in one line."""


def until(what, check, timeout, interval=1.0):
    """``check()``'s first truthy value within ``timeout`` seconds, else ShotError."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise ShotError(f"{what}: not after {timeout:.0f} s")
        time.sleep(interval)


def fault_text(exc):
    """The user-facing line of an XML-RPC fault (a UserError's message, a traceback's last
    line)."""
    lines = [line.strip() for line in str(exc.faultString).strip().splitlines() if line.strip()]
    return lines[-1] if lines else repr(exc)


# ---------------------------------------------------------------------- XML-RPC
class _Transport(xmlrpc.client.Transport):
    def __init__(self, timeout):
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host):
        connection = super().make_connection(host)
        connection.timeout = self._timeout
        return connection


class _SafeTransport(xmlrpc.client.SafeTransport):
    def __init__(self, timeout):
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host):
        connection = super().make_connection(host)
        connection.timeout = self._timeout
        return connection


def server_proxy(url):
    transport = (_SafeTransport if url.startswith("https:") else _Transport)(RPC_TIMEOUT)
    return xmlrpc.client.ServerProxy(url, allow_none=True, transport=transport)


def wait_for_server(url, timeout):
    """Odoo answers at ``url`` within ``timeout`` seconds (the demo may still be starting)."""

    def up():
        try:
            return requests.get(f"{url}/web/login", timeout=10).status_code < 500
        except requests.RequestException:
            return False

    until(f"Odoo at {url} (is `bash tools/demo.sh` running?)", up, timeout, interval=2)


class Rpc:
    """One user's XML-RPC session."""

    def __init__(self, url, db, login, password):
        self.url, self.db, self.login, self.password = url, db, login, password
        try:
            self.uid = server_proxy(f"{url}/xmlrpc/2/common").authenticate(db, login, password, {})
        except (OSError, xmlrpc.client.Error) as exc:
            raise ShotError(f"cannot reach Odoo at {url} to log in as {login}: {exc}") from None
        if not self.uid:
            raise ShotError(f"cannot log in to {db} as {login}")
        self.models = server_proxy(f"{url}/xmlrpc/2/object")

    def __call__(self, model, method, *args, **kwargs):
        try:
            return self.models.execute_kw(
                self.db, self.uid, self.password, model, method, list(args), kwargs
            )
        except (OSError, xmlrpc.client.ProtocolError) as exc:
            raise ShotError(f"{self.login}: {model}.{method}: {exc}") from None

    def ref(self, xmlid):
        module, name = xmlid.split(".")
        rows = self(
            "ir.model.data",
            "search_read",
            [("module", "=", module), ("name", "=", name)],
            fields=["res_id"],
            limit=1,
        )
        return rows[0]["res_id"] if rows else False


# ---------------------------------------------------------------------- the demo's own tooling
class Demo:
    """The running demo's mail server and database, as tools/demo.sh set them up under its
    state directory (``${XDG_STATE_HOME:-~/.local/state}/crm_mail_sync/demo``)."""

    def __init__(self, state_dir, db):
        self.state_dir, self.db = state_dir, db
        env_file = os.path.join(state_dir, "run", "env.json")
        try:
            with open(env_file) as fh:
                info = json.loads(json.load(fh)["MAILSYNC_DOVECOT"])
        except (OSError, ValueError, KeyError):
            raise ShotError(
                f"no demo mail server described in {env_file}: is `bash tools/demo.sh`"
                f" running with this state directory (--state-dir)?"
            ) from None
        sys.path.insert(0, ROOT)
        from mailsync.testing.dovecot import DovecotServer

        self.dovecot = DovecotServer.attach(info)
        self.imap_host = info.get("host") or "127.0.0.1"
        self.imap_port = int(info["port"])

    def mail_user(self, login, password):
        """The user's mailbox at their mail provider (created, or its password changed)."""
        self.dovecot.add_user(login, password)

    def odoo_shell(self, script, env=None):
        """Run ``script`` in ``odoo-bin shell`` on the demo database (as tools/demo.sh runs
        tools/demo_seed.py); returns its ``demo_clock:`` lines."""
        odoo_home = os.environ.get("ODOO_HOME", "/opt/odoo")
        addons = [os.path.join(odoo_home, "src", "odoo", "addons")]
        if os.path.isdir(os.path.join(odoo_home, "src", "addons")):
            addons.append(os.path.join(odoo_home, "src", "addons"))
        demo_addons = os.path.join(self.state_dir, "addons")
        if not os.path.exists(os.path.join(demo_addons, "crm_mail_sync")):
            raise ShotError(f"{demo_addons}/crm_mail_sync missing: not the demo's state directory")
        addons.append(demo_addons)
        command = [
            os.path.join(odoo_home, "venv", "bin", "python"),
            os.path.join(odoo_home, "src", "odoo-bin"),
            "shell",
            f"--addons-path={','.join(addons)}",
            f"--data-dir={os.path.join(self.state_dir, 'odoo-data')}",
            "-d",
            self.db,
            f"--db-filter=^{self.db}$",
            "--no-http",
            "--max-cron-threads=0",
            "--log-level=warn",
        ]
        try:
            result = subprocess.run(
                command,
                input=script,
                text=True,
                capture_output=True,
                timeout=SHELL_TIMEOUT,
                env=dict(os.environ, **(env or {})),
            )
        except subprocess.TimeoutExpired:
            raise ShotError(
                f"odoo-bin shell on {self.db}: not done after {SHELL_TIMEOUT} s"
            ) from None
        except OSError as exc:
            raise ShotError(f"cannot run odoo-bin shell ({command[0]}): {exc}") from None
        lines = [line for line in result.stdout.splitlines() if line.startswith("demo_clock:")]
        if result.returncode != 0 or not lines:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise ShotError(
                f"odoo-bin shell on {self.db} failed (exit {result.returncode}): "
                + " | ".join(tail)
            )
        return lines


# Two days of errors, without waiting two days: the start of the mailbox's errors moves back 48
# hours, then the addon's own rule (the first thing the sync cron does) decides.
CONNECTION_CLOCK = r"""
import os
from datetime import timedelta

Mailbox = env["mail.sync.mailbox"].sudo()
mailbox = Mailbox.browse(int(os.environ["DEMO_MAILBOX_ID"])).exists()
if not mailbox or mailbox.state != "error":
    print(f"demo_clock: mailbox {os.environ['DEMO_MAILBOX_ID']} is "
          f"{mailbox.state if mailbox else 'gone'}, not in Error: nothing to do")
else:
    since = (mailbox.error_since or mailbox.last_sync) - timedelta(hours=48, minutes=1)
    mailbox.with_context(mail_sync_keep_state=True).write({"error_since": since})
    Mailbox._check_connection_lost()
    env.cr.commit()
    print(f"demo_clock: mailbox {mailbox.id} in error since {since}: {mailbox.state}")
"""


class Relay:
    """A mail server that goes away: forwards loopback connections on a free port to the demo's
    IMAP server until closed, then that port refuses connections."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self):
        self.closed.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


# ---------------------------------------------------------------------- demo scenario
def prepare(rpc, demo_factory):
    """Salespeople whose mailboxes show every status, and real errors in the log (see the
    module's docstring). Each user creates and connects their own mailbox (managers may not
    create one for somebody else)."""
    Mailbox = "mail.sync.mailbox"
    salesman = rpc.ref("sales_team.group_sale_salesman_all_leads")
    if not salesman:
        raise ShotError("no sales_team.group_sale_salesman_all_leads group: is CRM installed?")

    def user(login, name):
        if not rpc("res.users", "search", [("login", "=", login)]):
            rpc(
                "res.users",
                "create",
                {
                    "login": login,
                    "name": name,
                    "email": login,
                    "password": login,
                    "groups_id": [(4, salesman)],
                },
            )
        return Rpc(rpc.url, rpc.db, login, login)

    def find(as_user):
        ids = as_user(Mailbox, "search", [("user_id", "=", as_user.uid)])
        return ids[0] if ids else False

    def state(as_user, box):
        return as_user(Mailbox, "read", [box], ["state"])[0]["state"]

    def connect_box(as_user, password, port=None):
        """The user's mailbox on the demo's IMAP server (created, or pointed at ``port`` with
        the password typed again), then Test connection."""
        port = port or demo.imap_port
        box = find(as_user)
        if not box:
            box = as_user(
                Mailbox,
                "create",
                {
                    "email": as_user.login,
                    "imap_login": as_user.login,
                    "imap_host": demo.imap_host,
                    "imap_port": port,
                    "imap_security": "none",
                    "password": password,
                },
            )
        else:
            as_user(
                Mailbox,
                "write",
                [box],
                {
                    "imap_host": demo.imap_host,
                    "imap_port": port,
                    "imap_security": "none",
                    "password": password,
                },
            )
        button(as_user, "action_test_connection", box, f"{as_user.login}: Test connection")
        return box

    def button(as_user, method, box, what, timeout=120):
        """A mailbox button; waits (bounded) while the cron syncs the same mailbox."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return as_user(Mailbox, method, [box])
            except xmlrpc.client.Fault as exc:
                if "already running" in exc.faultString and time.monotonic() < deadline:
                    time.sleep(2)
                    continue
                raise ShotError(f"{what}: {fault_text(exc)}") from None

    def expect(as_user, box, wanted, what):
        got = state(as_user, box)
        if got not in wanted:
            raise ShotError(
                f"{what}: {as_user.login}'s mailbox is {got}, not {' or '.join(wanted)}"
            )
        return got

    def set_limit(limit):
        """Settings ▸ CRM ▸ Mail Sync ▸ Mailbox limit, as the administrator saves it."""
        settings = rpc("res.config.settings", "create", {"mail_sync_mailbox_limit": limit})
        rpc("res.config.settings", "execute", [settings])

    sofia = user("sofia.sales@example.test", "Sofia Sales")
    lucas = user("lucas.lead@example.test", "Lucas Lead")
    nina = user("nina.new@example.test", "Nina New")
    boxes = {who.login: find(who) for who in (sofia, lucas, nina)}
    states = {
        login: state(who, boxes[login]) if boxes[login] else "draft"
        for login, who in ((sofia.login, sofia), (lucas.login, lucas), (nina.login, nina))
    }
    if (
        states[sofia.login] in ("error", "connection")
        and states[lucas.login] == "connection"
        and states[nina.login] == "pending"
    ):
        print(
            "screenshots: demo salespeople already prepared "
            "(Sofia Error, Lucas Connection, Nina Pending)"
        )
        return
    demo = demo_factory()

    # Nina waits for a seat at the end: until then nobody waits and there is no limit.
    if states[nina.login] != "draft":
        wizard = nina(
            "mail.sync.disconnect.wizard",
            "create",
            {"mailbox_id": boxes[nina.login], "mode": "keep"},
        )
        nina("mail.sync.disconnect.wizard", "action_confirm", [wizard])
    set_limit(0)

    # Sofia: connected, then her password changes at her provider; the next sync fails.
    if states[sofia.login] not in ("error", "connection"):
        sofia_password = "sofia-password-1"
        if states[sofia.login] != "enabled":
            demo.mail_user(sofia.login, sofia_password)
            box = connect_box(sofia, sofia_password)
            expect(sofia, box, ("enabled",), "Sofia's connection test")
        box = find(sofia)
        demo.mail_user(sofia.login, "changed-at-the-provider")
        button(sofia, "action_retry_now", box, "Sofia's sync")
        expect(sofia, box, ("error",), "Sofia's sync with a changed password")
        print("screenshots: Sofia Sales: Error (authentication failed)")

    # Lucas: connected through a server that then goes away; two syncs fail; 48 hours later
    # (the demo's clock) the rule says Connection.
    if states[lucas.login] != "connection":
        box = find(lucas)
        if states[lucas.login] != "error":
            lucas_password = "lucas-password-1"
            demo.mail_user(lucas.login, lucas_password)
            relay = Relay(demo.imap_host, demo.imap_port)
            try:
                box = connect_box(lucas, lucas_password, port=relay.port)
                expect(lucas, box, ("enabled",), "Lucas's connection test")
            finally:
                relay.close()  # his server goes away
            button(lucas, "action_retry_now", box, "Lucas's first sync")
            expect(lucas, box, ("error",), "Lucas's first sync after his server went away")
            button(lucas, "action_retry_now", box, "Lucas's second sync")
        expect(lucas, box, ("error",), "Lucas's syncs after his server went away")
        for line in demo.odoo_shell(CONNECTION_CLOCK, env={"DEMO_MAILBOX_ID": str(box)}):
            print(f"screenshots: {line}")
        expect(lucas, box, ("connection",), "48 hours of errors")
        print("screenshots: Lucas Lead: Connection (his server refused the connection)")

    # Nina: the company's limit is reached; her valid connection test leaves her Pending.
    nina_password = "nina-password-1"
    demo.mail_user(nina.login, nina_password)
    seats = rpc(Mailbox, "search_count", [("state", "in", ("enabled", "error", "connection"))])
    set_limit(seats)
    box = connect_box(nina, nina_password)
    expect(nina, box, ("pending",), f"Nina's connection test with the limit at {seats}")
    print(f"screenshots: Nina New: Pending (company mailbox limit {seats})")


# ---------------------------------------------------------------------- the browser (CDP)
class Browser:
    def __init__(self, chromium, width, height, timeout=60):
        if not chromium or not os.path.exists(chromium):
            raise ShotError(f"no Chromium at {chromium!r} (apt-get install chromium, --chromium)")
        self.profile = tempfile.mkdtemp(prefix="crm_mail_sync-shots-")
        self.proc = subprocess.Popen(
            [
                chromium,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.ws = None
        self.timeout = timeout
        try:
            port_file = os.path.join(self.profile, "DevToolsActivePort")

            def read_port():
                if self.proc.poll() is not None:
                    raise ShotError(f"Chromium exited at start (exit {self.proc.returncode})")
                with contextlib.suppress(OSError, IndexError):
                    with open(port_file) as fh:
                        return fh.read().split()[0]
                return None

            devtools_port = until("Chromium's DevTools port", read_port, 30, interval=0.1)

            def page():
                with contextlib.suppress(requests.RequestException, ValueError):
                    pages = [
                        t
                        for t in requests.get(
                            f"http://127.0.0.1:{devtools_port}/json/list", timeout=5
                        ).json()
                        if t["type"] == "page"
                    ]
                    return pages[0] if pages else None
                return None

            target = until("Chromium's first page", page, 30, interval=0.1)
            self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=30)
            self.msg_id = 0
            self.errors = []
            self.send("Runtime.enable")
            self.send("Page.enable")
            self.size(width, height)
        except BaseException:
            self.close()
            raise

    def send(self, method, **params):
        self.msg_id += 1
        self.ws.send(json.dumps({"id": self.msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while True:
            if time.monotonic() > deadline:
                raise ShotError(f"Chromium did not answer {method} within {self.timeout} s")
            try:
                message = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                raise ShotError(f"Chromium did not answer {method} within 30 s") from None
            except websocket.WebSocketException as exc:
                raise ShotError(f"lost Chromium during {method}: {exc}") from None
            if message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.errors.append(
                    (details.get("exception") or {}).get("description") or details.get("text")
                )
            elif (
                message.get("method") == "Runtime.consoleAPICalled"
                and message["params"]["type"] == "error"
            ):
                self.errors.append(
                    " ".join(
                        str(a.get("value", a.get("description", "")))
                        for a in message["params"]["args"]
                    )
                )
            if message.get("id") == self.msg_id:
                if "error" in message:
                    raise ShotError(f"Chromium: {method}: {message['error']}")
                return message.get("result", {})

    def size(self, width, height):
        self.width, self.height = width, height
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def js(self, expression):
        result = self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise ShotError(
                f"{expression[:80]!r}: "
                f"{(details.get('exception') or {}).get('description') or details}"
            )
        return result["result"].get("value")

    def login(self, base, db, login, password):
        try:
            session = requests.post(
                f"{base}/web/session/authenticate",
                json={
                    "jsonrpc": "2.0",
                    "method": "call",
                    "params": {"db": db, "login": login, "password": password},
                },
                timeout=60,
            )
            ok = session.json().get("result")
        except (requests.RequestException, ValueError) as exc:
            raise ShotError(f"cannot log in to {base} as {login}: {exc}") from None
        if not ok or "session_id" not in session.cookies:
            raise ShotError(f"cannot log in as {login}: {session.text[:300]}")
        self.send("Network.clearBrowserCookies")
        self.send(
            "Network.setCookie", name="session_id", value=session.cookies["session_id"], url=base
        )

    def goto(self, url, wait_for, timeout=240):
        self.send("Page.navigate", url=url)
        self.wait(wait_for, timeout)

    def wait(self, selector, timeout=60):
        """Until an element matches ``selector`` (a CSS selector list), at most ``timeout``
        seconds; then a moment for images, fonts and the last renders."""
        found = f"!!document.querySelector({json.dumps(selector)})"
        try:
            until(f"{selector!r} on the page", lambda: self.js(found), timeout, interval=0.2)
        except ShotError:
            raise ShotError(
                f"{selector!r} never showed on {self.js('location.href')} (waited {timeout} s)"
            ) from None
        time.sleep(0.8)

    def click(self, selector):
        if not self.js(f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
                if (el) {{ el.click(); }} return !!el; }})()"""):
            raise ShotError(f"nothing to click at {selector!r}")

    def hover(self, selector):
        box = self.js(f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
            if (!el) {{ return null; }}
            const r = el.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2];
            }})()""")
        if not box:
            raise ShotError(f"nothing to hover at {selector!r}")
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=box[0], y=box[1])

    def bottom(self, *selectors):
        """The lowest bottom edge (page pixels) of the elements matching ``selectors``."""
        return int(
            self.js(f"""Math.max(...{json.dumps(selectors)}.map((s) => {{
            const el = document.querySelector(s);
            return el ? el.getBoundingClientRect().bottom : 0; }}))""")
        )

    def shot(self, path, height=None):
        # Sticky notices unrelated to the page (e.g. the bus' "The page is out of date" when
        # the server has no websocket worker) are closed as a user would.
        self.js(
            "document.querySelectorAll('.o_notification .o_notification_close')"
            ".forEach((button) => button.click())"
        )
        time.sleep(0.3)
        clip = {
            "x": 0,
            "y": 0,
            "width": self.width,
            "height": min(height or self.height, self.height),
            "scale": 1,
        }
        data = base64.b64decode(
            self.send(
                "Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=False
            )["data"]
        )
        save_small_png(data, path)

    def close(self):
        try:
            if self.ws is not None:
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            shutil.rmtree(self.profile, ignore_errors=True)


def save_small_png(data, path):
    """A palette PNG (UI screenshots have few colours): a fraction of the RGB size."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    for colors in (256, 128, 64):
        out = io.BytesIO()
        image.quantize(
            colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        ).save(out, format="PNG", optimize=True)
        if out.tell() < MAX_BYTES:
            break
    with open(path, "wb") as f:
        f.write(out.getvalue())
    shown = os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path
    print(f"screenshots: {shown} ({out.tell() // 1024} KB)")


# An empty list of the overview says so below its header, readable: not drawn over the header.
OVERVIEW_LAYOUT = """(() => {
    const problems = [];
    for (const name of ["o_mail_sync_mailboxes", "o_mail_sync_error_log"]) {
        const section = document.querySelector("." + name);
        const help = section && section.querySelector(".o_view_nocontent .o_nocontent_help");
        if (!help) { continue; }
        const head = section.querySelector(".o_list_table thead");
        const text = help.getBoundingClientRect();
        const box = section.getBoundingClientRect();
        if (!head) { problems.push(name + ": empty-list message without a header row"); continue; }
        const header = head.getBoundingClientRect();
        if (text.height < 8 || text.width < 8 || !help.innerText.trim()) {
            problems.push(name + ": the empty-list message is not visible");
        }
        if (text.top < header.bottom - 1) {
            problems.push(`${name}: the empty-list message (top ${Math.round(text.top)}) ` +
                          `overlaps the header row (bottom ${Math.round(header.bottom)})`);
        }
        if (text.bottom > box.bottom + 1) {
            problems.push(`${name}: the empty-list message overflows its section`);
        }
    }
    return problems;
})()"""


# ---------------------------------------------------------------------- the screenshots
def take(browser, base, db, out, admin, rpc, only, synced_timeout):
    browser.login(base, db, *admin)

    # 1. The Mail Sync overview: badges, last sync, today, last error, the error log.
    if "settings" in only:
        browser.size(1440, 900)
        # (The first page of a new database also builds the web client's assets: minutes.)
        browser.goto(
            f"{base}/odoo/action-crm_mail_sync.mail_sync_settings_action",
            ".o_mail_sync_mailboxes :is(.o_data_row, .o_view_nocontent)",
            timeout=300,
        )
        browser.wait(".o_mail_sync_error_log :is(.o_data_row, .o_view_nocontent)")
        problems = browser.js(OVERVIEW_LAYOUT)
        # Hover an Error badge (else the last row's): its meaning shows as a tooltip.
        badges = ".o_mail_sync_mailboxes .o_data_row .o_mail_sync_state_badge"
        selector = next(
            (
                s
                for s in (badges + "[data-state=error]", badges)
                if browser.js(f"!!document.querySelector({json.dumps(s)})")
            ),
            None,
        )
        if selector:
            browser.hover(selector)
            with contextlib.suppress(ShotError):  # a badge without a meaning shows no tooltip
                browser.wait(".o-tooltip", 10)
        browser.shot(
            os.path.join(out, "settings.png"),
            height=browser.bottom(".o_mail_sync_error_log", ".o-tooltip") + 16,
        )
        if problems:  # (the screenshot shows them)
            raise ShotError("the Mail Sync overview's layout: " + "; ".join(problems))

    # 2. My Profile ▸ Mail Sync.
    if "user_mail_sync_tab" in only:
        browser.size(1280, 720)
        browser.goto(
            f"{base}/odoo/action-base.action_res_users_my/{rpc.uid}",
            ".o_form_view a[name=page_mail_sync]",
            timeout=300,
        )
        browser.click(".o_form_view a[name=page_mail_sync]")
        browser.wait(".o_form_view .o_mail_sync_state_badge")
        browser.shot(os.path.join(out, "user_mail_sync_tab.png"))

    # 3. The lead with the most synced mail (the demo's first sync ran at its start; the cron
    #    syncs every few minutes).
    if "lead_synced_mail" in only:

        def busiest_lead():
            groups = rpc(
                "mail.message",
                "read_group",
                [("mail_sync_mailbox_id", "!=", False), ("model", "=", "crm.lead")],
                ["res_id"],
                ["res_id"],
                orderby="__count desc",
                limit=1,
                lazy=False,
            )
            return groups[0]["res_id"] if groups else None

        lead_id = until(
            "synced mail on a demo lead (did the demo's first sync run? see the "
            "demo's logs/seed.log)",
            busiest_lead,
            synced_timeout,
            interval=5,
        )
        browser.size(1600, 1000)
        browser.goto(
            f"{base}/odoo/action-crm.crm_lead_action_pipeline/{lead_id}",
            ".o-mail-Chatter .o-mail-Message",
        )
        browser.shot(os.path.join(out, "lead_synced_mail.png"))

    # 4. The top bar of a user without a mailbox.
    if "topbar_not_configured" in only:
        demo_login = os.environ.get("SCREENSHOT_UNCONFIGURED_LOGIN", "demo")
        browser.login(base, db, demo_login, demo_login)
        browser.size(1440, 400)
        browser.goto(f"{base}/odoo", ".o_main_navbar .o_mail_sync_systray_link")
        browser.hover(".o_main_navbar .o_mail_sync_systray_link")
        browser.wait(".o-tooltip", 10)
        browser.shot(os.path.join(out, "topbar_not_configured.png"), height=160)


def main():
    state_home = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get(
            "DEMO_URL", f"http://127.0.0.1:{os.environ.get('DEMO_HTTP_PORT', '8069')}"
        ),
    )
    parser.add_argument("--db", default=os.environ.get("DEMO_DB", "crm_mail_sync_demo"))
    parser.add_argument("--login", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument(
        "--state-dir",
        default=os.path.join(state_home, "crm_mail_sync", "demo"),
        help="the demo's state directory (tools/demo.sh: "
        "${XDG_STATE_HOME:-~/.local/state}/crm_mail_sync/demo)",
    )
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "screenshots"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument(
        "--no-prepare",
        dest="prepare",
        action="store_false",
        help="take the pictures of the demo as it is",
    )
    parser.add_argument(
        "--only",
        default=",".join(SHOTS),
        help=f"comma-separated screenshots to take (default: {','.join(SHOTS)})",
    )
    parser.add_argument(
        "--wait-server",
        type=float,
        default=60,
        help="seconds to wait for Odoo to answer (default 60)",
    )
    parser.add_argument(
        "--wait-synced",
        type=float,
        default=180,
        help="seconds to wait for synced mail on a lead (default 180)",
    )
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(SHOTS))
    if unknown:
        parser.error(f"unknown screenshot(s) {', '.join(unknown)}; known: {', '.join(SHOTS)}")

    browser = None
    try:
        os.makedirs(args.out, exist_ok=True)
        wait_for_server(args.url, args.wait_server)
        rpc = Rpc(args.url, args.db, args.login, args.password)
        if args.prepare:
            prepare(rpc, lambda: Demo(args.state_dir, args.db))
        browser = Browser(args.chromium, 1440, 900)
        take(
            browser,
            args.url,
            args.db,
            args.out,
            (args.login, args.password),
            rpc,
            only,
            args.wait_synced,
        )
    except ShotError as exc:
        print(f"screenshots: FAILED: {exc}", file=sys.stderr)
        if browser is not None and browser.errors:
            print(
                "screenshots: errors in the browser console:",
                *browser.errors,
                sep="\n  ",
                file=sys.stderr,
            )
        return 1
    except xmlrpc.client.Fault as exc:
        print(f"screenshots: FAILED: Odoo refused: {fault_text(exc)}", file=sys.stderr)
        return 1
    finally:
        if browser is not None:
            browser.close()
    if browser.errors:
        print(
            "screenshots: errors in the browser console:",
            *browser.errors,
            sep="\n  ",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
