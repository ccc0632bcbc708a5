# Runs inside `odoo-bin shell -d crm_mail_sync_demo` (tools/demo.sh pipes it in; `env` is given).
#
# Connects the admin user's mailbox to the demo's Dovecot and SMTP server (the values below come
# from the environment tools/demo.sh sets) as the user would: the mailbox's settings, then Test
# connection (Enabled). Then the demo conversation (tools/demo_mailbox.py) arrives in the
# mailbox one message at a time, oldest first, each followed by a Sync now, so that the demo
# leads show their mail at once and in the order it was written.
# Idempotent: demo.sh runs it at every start (the ports are fixed, so the record stays valid);
# a mailbox whose settings did not change keeps its status and only syncs the new mail.
import os
import sys

from odoo.modules.module import get_module_path

# tools/demo_mailbox.py: the demo conversation (this file is piped in: no __file__).
sys.path.insert(0, os.path.join(os.path.realpath(get_module_path("crm_mail_sync")), "tools"))
import demo_mailbox  # noqa: E402

values = {
    "email": os.environ["DEMO_MAIL_LOGIN"],
    "imap_host": os.environ["DEMO_IMAP_HOST"],
    "imap_port": int(os.environ["DEMO_IMAP_PORT"]),
    "imap_security": "none",  # loopback only
    "imap_login": os.environ["DEMO_MAIL_LOGIN"],
    "smtp_host": os.environ["DEMO_SMTP_HOST"],
    "smtp_port": int(os.environ["DEMO_SMTP_PORT"]),
    "smtp_security": "none",
    "smtp_login": os.environ["DEMO_MAIL_LOGIN"],
}
password = os.environ["DEMO_MAIL_PASSWORD"]
admin = env.ref("base.user_admin")  # noqa: F821  (odoo shell provides env)

if "mail.sync.mailbox" not in env:  # noqa: F821
    print("demo_seed: model mail.sync.mailbox not installed; mailbox not configured")
else:
    # The demo's Dovecot and SMTP listen on loopback: allowed, as an administrator allows a
    # company server (Settings > CRM > Mail Sync > Allowed networks).
    env["ir.config_parameter"].sudo().set_param(  # noqa: F821
        "crm_mail_sync.allowed_networks",
        ", ".join(sorted({os.environ["DEMO_IMAP_HOST"], os.environ["DEMO_SMTP_HOST"]})),
    )
    Mailbox = env["mail.sync.mailbox"].sudo()  # noqa: F821
    mailbox = Mailbox.with_context(active_test=False).search([("user_id", "=", admin.id)], limit=1)
    if mailbox:
        changed = {name: value for name, value in values.items() if mailbox[name] != value}
        if not mailbox.active:
            changed["active"] = True
        if changed:
            mailbox.write(changed)  # a changed server or login: tested again below
    else:
        mailbox = Mailbox.create(dict(values, user_id=admin.id, auth_method="password"))
    if not mailbox.has_password:
        mailbox.password = password
    env.cr.commit()  # noqa: F821
    print(f"demo_seed: mailbox {mailbox.email} (id {mailbox.id}) set up for {admin.login}")
    try:
        if mailbox.state not in ("enabled", "error"):
            mailbox.action_test_connection()  # Enabled when the servers answer
            env.cr.commit()  # noqa: F821
        # The demo conversation arrives one message at a time, each followed by a sync (as the
        # cron would have over two weeks): the chatter then shows it in the order it was written.
        dovecot = demo_mailbox.shared_dovecot()
        waiting = demo_mailbox.to_deliver(dovecot)
        syncing = mailbox.state in ("enabled", "error")
        before = mailbox.synced_count
        for message in waiting:
            demo_mailbox.deliver(dovecot, message)
            if syncing:
                mailbox.action_sync_now()
                env.cr.commit()  # noqa: F821
        if syncing:
            if not waiting:
                mailbox.action_sync_now()  # what came in since the last start
                env.cr.commit()  # noqa: F821
            arrived = (
                f"{len(waiting)} demo messages delivered and synced one by one"
                if waiting
                else "synced"
            )
            print(
                f"demo_seed: {arrived}: {mailbox.synced_count - before} new emails recorded "
                f"({mailbox.synced_count} in all)"
            )
        else:
            print(
                f"demo_seed: mailbox is {mailbox.state}: {len(waiting)} demo messages "
                f"delivered, not synced now"
            )
    except Exception as exc:  # the demo still starts; the cron retries
        env.cr.rollback()  # noqa: F821
        print(f"demo_seed: the first sync did not complete ({type(exc).__name__}: {exc})")
