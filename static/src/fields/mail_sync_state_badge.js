/** @odoo-module **/
// The mailbox status as a coloured badge whose tooltip is the status' meaning (PRODUCT.md):
//   <field name="state" widget="mail_sync_state_badge"
//          options="{'description_field': 'state_description'}"/>
// Colours: Enabled green, Error and Connection red, Pending orange, Not connected grey.
import { registry } from "@web/core/registry";
import { BadgeField, badgeField } from "@web/views/fields/badge/badge_field";

const STATE_CLASSES = {
    enabled: "text-bg-success",
    error: "text-bg-danger",
    connection: "text-bg-danger",
    pending: "text-bg-warning",
    draft: "text-bg-300",
};

export class MailSyncStateBadge extends BadgeField {
    static template = "crm_mail_sync.MailSyncStateBadge";
    static props = {
        ...BadgeField.props,
        descriptionField: { type: String, optional: true },
    };

    get value() {
        return this.props.record.data[this.props.name];
    }

    get classFromDecoration() {
        if (Object.keys(this.props.decorations).length) {
            return super.classFromDecoration;
        }
        return STATE_CLASSES[this.value] || "text-bg-300";
    }

    get tooltip() {
        const field = this.props.descriptionField;
        return (field && this.props.record.data[field]) || "";
    }
}

export const mailSyncStateBadge = {
    ...badgeField,
    component: MailSyncStateBadge,
    supportedTypes: ["selection"],
    extractProps: (fieldInfo, dynamicInfo) => ({
        ...badgeField.extractProps(fieldInfo, dynamicInfo),
        descriptionField: fieldInfo.options.description_field,
    }),
    fieldDependencies: ({ options }) =>
        options.description_field ? [{ name: options.description_field, type: "char" }] : [],
};

registry.category("fields").add("mail_sync_state_badge", mailSyncStateBadge);
