/** @odoo-module **/
// The top-bar link "Your Mail Sync is not configured": shown to a Mail Sync user without an
// Enabled, Error or Pending mailbox in the current company; opens their Mail Sync setup.
// The server tells open clients when that changes (models/mail_sync_mailbox_systray.py).
import { Component, onWillDestroy, onWillStart, useState } from "@odoo/owl";

import { registry } from "@web/core/registry";
import { user } from "@web/core/user";
import { useService } from "@web/core/utils/hooks";

export const SYSTRAY_NOTIFICATION = "crm_mail_sync/systray";

export class MailSyncSystray extends Component {
    static template = "crm_mail_sync.MailSyncSystray";
    static props = {};

    setup() {
        this.orm = useService("orm");
        this.action = useService("action");
        this.state = useState({ show: false });
        onWillStart(() => this.refresh());
        const bus = this.env.services.bus_service;
        if (bus) {
            const onNotification = () => this.refresh();
            bus.subscribe(SYSTRAY_NOTIFICATION, onNotification);
            onWillDestroy(() => bus.unsubscribe(SYSTRAY_NOTIFICATION, onNotification));
        }
    }

    async refresh() {
        try {
            const info = await this.orm.silent.call("res.users", "mail_sync_systray_info", []);
            this.state.show = Boolean(info && info.show);
        } catch {
            this.state.show = false; // never break the top bar
        }
    }

    async onClick() {
        const action = await this.orm.call("res.users", "action_open_mail_sync", [[user.userId]]);
        await this.action.doAction(action);
    }
}

registry
    .category("systray")
    .add("crm_mail_sync.MailSyncSystray", { Component: MailSyncSystray }, { sequence: 90 });
