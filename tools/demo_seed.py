# Runs inside `odoo-bin shell -d crm_mail_sync_demo` (tools/demo.sh pipes it in; `env` is given).
#
# ====================================================================================
# HOOK — TO BE FINISHED by the engineer who owns models/ (mail.sync.mailbox).
# It must: connect the admin user's mailbox to the demo Dovecot/SMTP (values below, from the
# environment set by tools/demo.sh) and start a first sync so the demo leads show mail.
# Keep it idempotent: demo.sh runs it on every start (ports are fixed, so the record stays valid).
# ====================================================================================
import os

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
    print("demo_seed: model mail.sync.mailbox not installed yet; mailbox not configured")
else:
    # The demo's Dovecot and SMTP listen on loopback: allowed, as an administrator allows a
    # company server (Settings > CRM > Mail Sync > Allowed networks).
    env["ir.config_parameter"].sudo().set_param(  # noqa: F821
        "crm_mail_sync.allowed_networks",
        ", ".join(sorted({os.environ["DEMO_IMAP_HOST"], os.environ["DEMO_SMTP_HOST"]})))
    Mailbox = env["mail.sync.mailbox"].sudo()  # noqa: F821
    mailbox = Mailbox.with_context(active_test=False).search([("user_id", "=", admin.id)], limit=1)
    if mailbox:
        mailbox.write(dict(values, active=True))
    else:
        mailbox = Mailbox.create(dict(values, user_id=admin.id, auth_method="password"))
    if not mailbox.has_password:
        mailbox.password = password
    env.cr.commit()  # noqa: F821
    print(f"demo_seed: mailbox {mailbox.email} (id {mailbox.id}) connected for {admin.login}")
    try:  # TODO(models owner): the real "enable + first sync" entry point
        mailbox.action_test_connection()  # enables the mailbox when the servers answer
        mailbox.action_sync_now()
        env.cr.commit()  # noqa: F821
        print(f"demo_seed: first sync done: {mailbox.synced_count} emails recorded")
    except Exception as exc:  # the demo still starts; the cron retries
        env.cr.rollback()  # noqa: F821
        print(f"demo_seed: first sync did not complete ({type(exc).__name__}: {exc})")
