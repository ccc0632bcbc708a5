#!/usr/bin/env python3
"""Take the README's screenshots from a real browser against the demo database.

    bash tools/demo.sh          # in another terminal: Odoo on :8069, database crm_mail_sync_demo
    /opt/odoo/venv/bin/python tools/screenshots.py [--url URL] [--db DB] [--no-prepare]

Run it with Odoo's Python (it has ``requests``, ``websocket-client`` and Pillow). It drives
headless Chromium (Debian's ``/usr/bin/chromium``) over the DevTools protocol and writes
``docs/screenshots/*.png`` (palette PNGs, each well under 300 KB):

- ``settings.png``: CRM ▸ Configuration ▸ Mail Sync ▸ Overview — every mailbox with its status
  badge (the Error badge hovered: its meaning shows as a tooltip), then the error log;
- ``user_mail_sync_tab.png``: My Profile ▸ Mail Sync of the admin user;
- ``lead_synced_mail.png``: the demo lead with the most synced mail, its chatter showing it;
- ``topbar_not_configured.png``: the top bar of a user without a mailbox (Marc Demo).

``--prepare`` (the default) first gives the demo company a few more salespeople and mailboxes so
that every status shows, through the addon's own buttons over XML-RPC (idempotent):
Sofia's password is wrong (a real sync → Error and an error-log line), Lucas's server refuses
connections (Error, then marked Connection: a demo cannot wait the 48 hours the rule needs), and
Nina connects with valid credentials once the company limit is full (Pending).
"""
import argparse
import base64
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

import requests
import websocket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_BYTES = 300 * 1024


# ---------------------------------------------------------------------- demo scenario (XML-RPC)
class Rpc:
    def __init__(self, url, db, login, password):
        self.db, self.password = db, password
        self.uid = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common").authenticate(
            db, login, password, {})
        if not self.uid:
            raise SystemExit(f"screenshots: cannot log in to {db} as {login}")
        self.models = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/object", allow_none=True)

    def __call__(self, model, method, *args, **kwargs):
        return self.models.execute_kw(self.db, self.uid, self.password, model, method,
                                      list(args), kwargs)

    def ref(self, xmlid):
        module, name = xmlid.split(".")
        rows = self("ir.model.data", "search_read", [("module", "=", module), ("name", "=", name)],
                    fields=["res_id"], limit=1)
        return rows[0]["res_id"] if rows else False


def prepare(rpc, url, imap_host, imap_port):
    """Salespeople whose mailboxes show every status, and real errors in the log. Each user
    creates their own mailbox (managers may not create one for somebody else)."""
    salesman = rpc.ref("sales_team.group_sale_salesman_all_leads")
    company_id = rpc("res.users", "read", [rpc.uid], ["company_id"])[0]["company_id"][0]

    def user(login, name):
        if not rpc("res.users", "search", [("login", "=", login)]):
            rpc("res.users", "create", {
                "login": login, "name": name, "email": login, "password": login,
                "groups_id": [(4, salesman)]})
        return Rpc(url, rpc.db, login, login)

    def mailbox(as_user, port, password, **extra):
        ids = as_user("mail.sync.mailbox", "search", [("user_id", "=", as_user.uid)])
        if ids:
            return ids[0], False
        login = as_user("res.users", "read", [as_user.uid], ["login"])[0]["login"]
        return as_user("mail.sync.mailbox", "create", dict({
            "email": login, "imap_login": login, "imap_host": imap_host, "imap_port": port,
            "imap_security": "none", "password": password}, **extra)), True

    def fail_a_sync(as_user, mailbox_id):
        # As the cron would: the enabled mailbox syncs, the server refuses: Error + log line.
        as_user("mail.sync.mailbox", "write", [mailbox_id], {"state": "enabled"})
        as_user("mail.sync.mailbox", "action_retry_now", [mailbox_id])

    sofia = user("sofia.sales@example.test", "Sofia Sales")
    box, new = mailbox(sofia, imap_port, "not-her-password")
    if new:
        fail_a_sync(sofia, box)
    lucas = user("lucas.lead@example.test", "Lucas Lead")
    box, new = mailbox(lucas, 1, "secret")  # nothing listens on port 1
    if new:
        fail_a_sync(lucas, box)
        fail_a_sync(lucas, box)  # the repeat is counted on the same log line
        lucas("mail.sync.mailbox", "write", [box], {"state": "connection"})
    nina = user("nina.new@example.test", "Nina New")
    box, new = mailbox(nina, imap_port, os.environ.get("DEMO_MAIL_PASSWORD", "demo-password"),
                       imap_login=os.environ.get("DEMO_MAIL_LOGIN", "demo.rep@example.test"))
    if new:
        seats = rpc("mail.sync.mailbox", "search_count",
                    [("state", "in", ("enabled", "error", "connection"))])
        if "mail_sync_mailbox_limit" in rpc("res.company", "fields_get", attributes=["type"]):
            rpc("res.company", "write", [company_id], {"mail_sync_mailbox_limit": seats})
        try:
            nina("mail.sync.mailbox", "action_test_connection", [box])
        except xmlrpc.client.Fault as exc:
            print(f"screenshots: Nina's connection test failed: {exc.faultString[:200]}")
        if rpc("mail.sync.mailbox", "read", [box], ["state"])[0]["state"] != "pending":
            nina("mail.sync.mailbox", "write", [box], {"state": "pending"})


# ---------------------------------------------------------------------- the browser (CDP)
class Browser:
    def __init__(self, chromium, width, height):
        self.profile = tempfile.mkdtemp(prefix="crm_mail_sync-shots-")
        self.proc = subprocess.Popen([
            chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-extensions", "--hide-scrollbars", "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
            "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        for _ in range(200):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.05)
        port = open(port_file).read().split()[0]
        for _ in range(100):
            try:
                pages = [t for t in requests.get(f"http://127.0.0.1:{port}/json/list",
                                                 timeout=5).json() if t["type"] == "page"]
                if pages:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30)
        self.msg_id = 0
        self.errors = []
        self.send("Runtime.enable")
        self.send("Page.enable")
        self.size(width, height)

    def send(self, method, **params):
        self.msg_id += 1
        self.ws.send(json.dumps({"id": self.msg_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("method") == "Runtime.exceptionThrown":
                self.errors.append(message["params"]["exceptionDetails"].get("text"))
            elif message.get("method") == "Runtime.consoleAPICalled" and \
                    message["params"]["type"] == "error":
                self.errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                            for a in message["params"]["args"]))
            if message.get("id") == self.msg_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def size(self, width, height):
        self.width, self.height = width, height
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def js(self, expression):
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def login(self, base, db, login, password):
        session = requests.post(f"{base}/web/session/authenticate", json={
            "jsonrpc": "2.0", "method": "call",
            "params": {"db": db, "login": login, "password": password}}, timeout=60)
        if not session.json().get("result"):
            raise SystemExit(f"screenshots: cannot log in as {login}: {session.text[:300]}")
        self.send("Network.clearBrowserCookies")
        self.send("Network.setCookie", name="session_id", value=session.cookies["session_id"],
                  url=base)

    def goto(self, url, wait_for, timeout=60):
        self.send("Page.navigate", url=url)
        self.wait(wait_for, timeout)

    def wait(self, selector, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.js(f"!!document.querySelector({json.dumps(selector)})"):
                time.sleep(0.8)  # images, fonts, the last renders
                return
            time.sleep(0.2)
        raise SystemExit(f"screenshots: {selector!r} never showed on {self.js('location.href')}")

    def click(self, selector):
        self.js(f"document.querySelector({json.dumps(selector)}).click()")

    def hover(self, selector):
        box = self.js(f"""(() => {{ const r = document.querySelector({json.dumps(selector)})
            .getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=box[0], y=box[1])

    def bottom(self, *selectors):
        """The lowest bottom edge (page pixels) of the elements matching ``selectors``."""
        return int(self.js(f"""Math.max(...{json.dumps(selectors)}.map((s) => {{
            const el = document.querySelector(s);
            return el ? el.getBoundingClientRect().bottom : 0; }}))"""))

    def shot(self, path, height=None):
        # Sticky notices unrelated to the page (e.g. the bus' "The page is out of date" when
        # the server has no websocket worker) are closed as a user would.
        self.js("document.querySelectorAll('.o_notification .o_notification_close')"
                ".forEach((button) => button.click())")
        time.sleep(0.3)
        clip = {"x": 0, "y": 0, "width": self.width,
                "height": min(height or self.height, self.height),
                "scale": 1}
        data = base64.b64decode(self.send("Page.captureScreenshot", format="png", clip=clip,
                                          captureBeyondViewport=False)["data"])
        save_small_png(data, path)

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


def save_small_png(data, path):
    """A palette PNG (UI screenshots have few colours): a fraction of the RGB size."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    for colors in (256, 128, 64):
        out = io.BytesIO()
        image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) \
            .save(out, format="PNG", optimize=True)
        if out.tell() < MAX_BYTES:
            break
    with open(path, "wb") as f:
        f.write(out.getvalue())
    print(f"screenshots: {os.path.relpath(path, ROOT)} ({out.tell() // 1024} KB)")


# ---------------------------------------------------------------------- the screenshots
def take(browser, base, db, out, admin, rpc):
    browser.login(base, db, *admin)

    # 1. The Mail Sync overview: badges, last sync, today, last error, the error log.
    browser.size(1440, 900)
    browser.goto(f"{base}/odoo/action-crm_mail_sync.mail_sync_settings_action",
                 ".o_mail_sync_error_log .o_data_row")
    # Hover the last row's badge: its tooltip then covers no other row.
    badge = ".o_mail_sync_mailboxes .o_data_row:last-child .o_mail_sync_state_badge"
    if browser.js(f"!!document.querySelector({json.dumps(badge)})"):
        browser.hover(badge)
        browser.wait(".o-tooltip", 10)
    browser.shot(os.path.join(out, "settings.png"),
                 height=browser.bottom(".o_mail_sync_error_log", ".o-tooltip") + 16)

    # 2. My Profile ▸ Mail Sync.
    browser.size(1280, 720)
    browser.goto(f"{base}/odoo/action-base.action_res_users_my/{rpc.uid}",
                 ".o_form_view a[name=page_mail_sync]")
    browser.click(".o_form_view a[name=page_mail_sync]")
    browser.wait(".o_form_view .o_mail_sync_state_badge")
    browser.shot(os.path.join(out, "user_mail_sync_tab.png"))

    # 3. The lead with the most synced mail.
    groups = rpc("mail.message", "read_group",
                 [("mail_sync_mailbox_id", "!=", False), ("model", "=", "crm.lead")],
                 ["res_id"], ["res_id"], orderby="__count desc", limit=1, lazy=False)
    if not groups:
        raise SystemExit("screenshots: no synced mail on any lead yet (is the demo synced?)")
    lead_id = groups[0]["res_id"]
    browser.size(1600, 1000)
    browser.goto(f"{base}/odoo/action-crm.crm_lead_action_pipeline/{lead_id}",
                 ".o-mail-Chatter .o-mail-Message")
    browser.shot(os.path.join(out, "lead_synced_mail.png"))

    # 4. The top bar of a user without a mailbox.
    demo_login = os.environ.get("SCREENSHOT_UNCONFIGURED_LOGIN", "demo")
    browser.login(base, db, demo_login, demo_login)
    browser.size(1440, 400)
    browser.goto(f"{base}/odoo", ".o_main_navbar .o_mail_sync_systray_link")
    browser.hover(".o_main_navbar .o_mail_sync_systray_link")
    browser.wait(".o-tooltip", 10)
    browser.shot(os.path.join(out, "topbar_not_configured.png"), height=160)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("DEMO_URL", "http://127.0.0.1:8069"))
    parser.add_argument("--db", default=os.environ.get("DEMO_DB", "crm_mail_sync_demo"))
    parser.add_argument("--login", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--imap-port", type=int,
                        default=int(os.environ.get("DEMO_IMAP_PORT", "10143")))
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "screenshots"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--no-prepare", dest="prepare", action="store_false")
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    rpc = Rpc(args.url, args.db, args.login, args.password)
    if args.prepare:
        prepare(rpc, args.url, "127.0.0.1", args.imap_port)
    browser = Browser(args.chromium, 1440, 900)
    try:
        take(browser, args.url, args.db, args.out, (args.login, args.password), rpc)
    finally:
        browser.close()
    if browser.errors:
        print("screenshots: errors in the browser console:", *browser.errors, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
