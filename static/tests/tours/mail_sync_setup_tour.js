/** @odoo-module **/
// The top-bar link, for real: an unconfigured salesperson sees "Your Mail Sync is not
// configured", follows it, fills the mailbox form with the test Dovecot and SMTP server, tests
// the connection, sees the Enabled badge, and after a reload the link is gone.
// The test puts the servers' values in sessionStorage (tests/test_ui.py) before the tour starts.
import { registry } from "@web/core/registry";

export const TOUR_VALUES_KEY = "crm_mail_sync_tour_values";
const LINK = ".o_main_navbar .o_mail_sync_systray_link";

function tourValues() {
    return JSON.parse(sessionStorage.getItem(TOUR_VALUES_KEY) || "{}");
}

function field(name, tag = "input") {
    return `.o_form_view .o_field_widget[name=${name}] ${tag}`;
}

registry.category("web_tour.tours").add("crm_mail_sync_setup_tour", {
    steps: () => {
        const values = tourValues();
        return [
            {
                content: "The top bar says Mail Sync is not configured: open the setup",
                trigger: `${LINK}:contains(Your Mail Sync is not configured)`,
                run: "click",
            },
            {
                content: "The mailbox form opens, not connected yet",
                trigger: ".o_form_view .o_field_widget[name=state]:contains(Not connected)",
            },
            { trigger: field("email"), run: `edit ${values.login}` },
            { trigger: field("imap_host"), run: `edit ${values.imap_host}` },
            { trigger: field("imap_security", "select"), run: "selectByLabel None" },
            {
                content: "The security change suggests the plain IMAP port",
                trigger: `${field("imap_port")}:value(143)`,
                run: `edit ${values.imap_port}`,
            },
            { trigger: field("imap_login"), run: `edit ${values.login}` },
            { trigger: field("password"), run: `edit ${values.password}` },
            { trigger: field("smtp_host"), run: `edit ${values.smtp_host}` },
            { trigger: field("smtp_security", "select"), run: "selectByLabel None" },
            {
                content: "The security change suggests the plain SMTP port",
                trigger: `${field("smtp_port")}:value(25)`,
                run: `edit ${values.smtp_port}`,
            },
            {
                content: "Test the connection",
                trigger: ".o_form_view .o_form_statusbar button[name=action_test_connection]",
                run: "click",
            },
            {
                content: "The mailbox is enabled",
                trigger:
                    ".o_form_view .o_field_widget[name=state] .o_mail_sync_state_badge[data-state=enabled]:contains(Enabled)",
            },
            {
                content: "Reload the web client",
                trigger: ".o_form_view .o_form_saved",
                run: "goToUrl /odoo",
            },
            {
                content: "The top bar no longer shows the link",
                trigger: ".o_main_navbar .o_menu_systray:not(:has(.o_mail_sync_systray_link))",
            },
        ];
    },
});

// The link is absent (a configured user) ...
registry.category("web_tour.tours").add("crm_mail_sync_systray_hidden_tour", {
    steps: () => [
        {
            content: "The web client is loaded and the top bar has no Mail Sync link",
            trigger: ".o_main_navbar .o_menu_systray:not(:has(.o_mail_sync_systray_link))",
        },
    ],
});

// ... or present (no mailbox, or disconnected), and opens the user's Mail Sync setup.
registry.category("web_tour.tours").add("crm_mail_sync_systray_shown_tour", {
    steps: () => [
        {
            content: "The top bar shows the link",
            trigger: `${LINK}:contains(Your Mail Sync is not configured)`,
            run: "click",
        },
        {
            content: "It opens the user's mailbox",
            trigger: `${field("email")}:value(${tourValues().login})`,
        },
    ],
});

// CRM ▸ Configuration ▸ Mail Sync ▸ Overview, as a Mail Sync manager: a salesperson's mailbox
// in Error with its error-log line; Retry now syncs it again (and fails again); Disconnect goes
// through the keep/remove wizard and leaves it Not connected.
registry.category("web_tour.tours").add("crm_mail_sync_overview_tour", {
    steps: () => {
        const row = `.o_mail_sync_mailboxes .o_data_row:contains(${tourValues().login})`;
        return [
            {
                content: "The mailbox shows its Error badge with its meaning as tooltip",
                trigger: `${row} .o_mail_sync_state_badge[data-state=error][data-tooltip*="An error occurred"]`,
            },
            {
                content: "The error log says what went wrong and how to fix it",
                trigger: `.o_mail_sync_error_log .o_data_row:contains(${tourValues().login}):contains(Authentication failed)`,
            },
            { content: "Retry now", trigger: `${row} button[name=action_retry_now]`, run: "click" },
            {
                content: "The retry fails again, and says so",
                trigger: ".o_notification:contains(Mail Sync failed)",
            },
            { content: "Disconnect", trigger: `${row} button[name=action_disconnect]`, run: "click" },
            {
                content: "Keep what was synced",
                trigger: ".modal button[name=action_confirm]",
                run: "click",
            },
            {
                content: "The mailbox is no longer connected",
                trigger: `${row} .o_mail_sync_state_badge[data-state=draft]`,
            },
        ];
    },
});

// A lead's chatter, as its salesperson: a synced email whose Date header was not believed
// shows the server's reception date, and the date's tooltip says what the header claimed.
registry.category("web_tour.tours").add("crm_mail_sync_date_note_tour", {
    steps: () => [
        {
            content: "Scroll down to the chatter (its messages load when it is seen)",
            trigger: ".o-mail-Chatter",
            run() {
                this.anchor.scrollIntoView({ block: "end" });
            },
        },
        {
            // (an email's body is drawn in a shadow root: the date is what the page shows)
            content: "The synced email's date tooltip names the Date header it had",
            trigger: ".o-mail-Message .o-mail-Message-date[title*='Date header said'][title*='1979']",
        },
        {
            content: "An ordinary message has the ordinary tooltip",
            trigger: ".o-mail-Message:contains(An ordinary note) .o-mail-Message-date:not([title*='Date header'])",
        },
    ],
});
