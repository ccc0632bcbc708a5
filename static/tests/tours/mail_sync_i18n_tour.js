/** @odoo-module **/
// The overview page (CRM ▸ Configuration ▸ Mail Sync ▸ Overview) of a French Mail Sync manager:
// a salesperson's mailbox in Error shows the French badge with its French meaning as tooltip,
// and the error log says what went wrong and how to fix it in French (the engine's catalogue,
// stored in English, translated when read). The French texts expected, taken from i18n/fr.po,
// are put in sessionStorage by tests/test_i18n.py before the tour starts.
import { registry } from "@web/core/registry";

const TOUR_VALUES_KEY = "crm_mail_sync_tour_values";

function tourValues() {
    return JSON.parse(sessionStorage.getItem(TOUR_VALUES_KEY) || "{}");
}

function normalized(text) {
    return (text || "").replace(/\s+/g, " ").trim();
}

function expectContains(actual, expected, what) {
    if (!expected || !normalized(actual).includes(normalized(expected))) {
        throw new Error(`${what}: expected ${JSON.stringify(expected)} in ${JSON.stringify(actual)}`);
    }
}

registry.category("web_tour.tours").add("crm_mail_sync_i18n_fr_tour", {
    steps: () => {
        const values = tourValues();
        const row = `.o_mail_sync_mailboxes .o_data_row:contains(${values.login})`;
        const logRow = `.o_mail_sync_error_log .o_data_row:contains(${values.login})`;
        return [
            {
                content: "The page's own words are French",
                trigger: ".o_mail_sync_error_log h4",
                run() {
                    expectContains(this.anchor.textContent, values.error_log, "error log title");
                },
            },
            {
                content: "The Error badge is French, and so is its meaning (the tooltip)",
                trigger: `${row} .o_mail_sync_state_badge[data-state=error]`,
                run() {
                    expectContains(this.anchor.textContent, values.badge, "badge");
                    expectContains(this.anchor.dataset.tooltip, values.tooltip, "badge tooltip");
                },
            },
            {
                content: "The error log says what went wrong and how to fix it, in French",
                trigger: logRow,
                run() {
                    expectContains(this.anchor.textContent, values.summary, "what went wrong");
                    expectContains(this.anchor.textContent, values.fix, "how to fix it");
                },
            },
        ];
    },
});
