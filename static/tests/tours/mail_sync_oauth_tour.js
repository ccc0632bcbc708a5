/** @odoo-module **/
// Connect with Google, for real: the button sends the browser to the (local) authorization
// endpoint, which sends it back to /crm_mail_sync/oauth/callback, which lands on the mailbox.
import { registry } from "@web/core/registry";

registry.category("web_tour.tours").add("crm_mail_sync_connect_google", {
    steps: () => [
        {
            content: "The mailbox is not connected yet",
            trigger: ".o_form_view .o_field_widget[name=state]:contains(Not connected)",
        },
        {
            content: "Connect with Google",
            trigger: ".o_form_view button[name=action_connect_google]",
            run: "click",
        },
        {
            content: "Back from the consent screen: the mailbox is enabled",
            trigger: ".o_form_view .o_field_widget[name=state]:contains(Enabled)",
        },
    ],
});
