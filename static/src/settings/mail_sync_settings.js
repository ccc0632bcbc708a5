/** @odoo-module **/
// CRM ▸ Configuration ▸ Mail Sync ▸ Overview: every mailbox with its status badge, last
// successful sync, emails synced today and last error (retry / disconnect buttons), then the
// recent error log; above them the company's billable mailboxes, mailbox limit and daily cap.
import { Component, markup, onWillStart, useState } from "@odoo/owl";

import { _t } from "@web/core/l10n/translation";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { Layout } from "@web/search/layout";
import { View } from "@web/views/view";

export class MailSyncSettings extends Component {
    static template = "crm_mail_sync.MailSyncSettings";
    static components = { Layout, View };
    static props = ["*"];

    setup() {
        this.orm = useService("orm");
        this.action = useService("action");
        this.state = useState({ info: null });
        onWillStart(async () => {
            this.state.info = await this.orm.call("mail.sync.mailbox", "mail_sync_overview_info", []);
        });
    }

    get display() {
        return { controlPanel: {} };
    }

    viewProps(which) {
        const info = this.state.info;
        const view = info.views[which];
        return {
            type: "list",
            resModel: view.model,
            views: [
                [view.list_id, "list"],
                [view.search_id, "search"],
            ],
            display: { controlPanel: false },
            allowSelectors: false,
            context: view.context || {},
            noContentHelp: markup(view.help), // server-made, no user input
            selectRecord: (resId) => this.openRecord(view, resId),
        };
    }

    openRecord(view, resId) {
        this.action.doAction({
            type: "ir.actions.act_window",
            res_model: view.model,
            res_id: resId,
            views: [[view.form_id, "form"]],
        });
    }

    openErrorLog() {
        this.action.doAction("crm_mail_sync.mail_sync_log_action");
    }

    get limitLabel() {
        const limit = this.state.info.company.limit;
        return limit ? String(limit) : _t("No limit");
    }

    get capLabel() {
        const cap = this.state.info.company.daily_cap;
        return cap ? _t("%s emails per user per day", cap) : _t("Unlimited");
    }
}

registry.category("actions").add("crm_mail_sync.settings", MailSyncSettings);
