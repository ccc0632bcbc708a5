# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
{
    "name": "CRM Mail Sync",
    "summary": "Sync each salesperson's own IMAP mailbox onto CRM leads and contacts",
    "version": "18.0.1.0.0",
    "category": "Sales/CRM",
    "license": "LGPL-3",
    "depends": ["crm", "mail"],
    "external_dependencies": {
        "python": ["imapclient", "cryptography", "google_auth_oauthlib", "requests"],
    },
    "data": [
        "security/mail_sync_security.xml",
        "security/ir.model.access.csv",
        "views/mail_sync_mailbox_views.xml",
        "views/oauth_templates.xml",
        "views/res_config_settings_views.xml",
        "views/mail_sync_log_views.xml",
        "views/crm_lead_views.xml",
        "views/res_partner_views.xml",
        "views/res_users_views.xml",
        "views/mail_sync_mailbox_oauth_views.xml",
        "views/mail_sync_menus.xml",
        "views/mail_sync_mailbox_smart_mail_views.xml",
        "views/res_config_settings_smart_mail_views.xml",
        "data/ir_config_parameter.xml",
        "data/ir_cron.xml",
    ],
    # "assets": {"web.assets_backend": ["crm_mail_sync/static/src/**/*"]} comes with the first
    # file under static/src (the top-bar component): an empty glob logs a warning at every load.
    "assets": {
        "web.assets_tests": ["crm_mail_sync/static/tests/tours/**/*"],
    },
    "installable": True,
    "application": False,
}
