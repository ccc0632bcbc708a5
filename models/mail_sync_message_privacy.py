# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Private by choice: a synced message can be made private, or removed from a record.

- Private: the message stays on the record but only the user whose mailbox synced it and Mail
  Sync managers see it (search, read, write). Works together with ``mail_sync_access`` (synced
  mail is visible only where its record is): both restrictions apply.
- Removed: the chatter entry is deleted and the removal is remembered
  (``mail.sync.message.removal``: Message-ID + record), so no later sync, replay, late link or
  colleague's mailbox brings it back onto that record.

Who may: the owner of the mailbox that synced it, or a Mail Sync manager; removing also needs
write access to the record.
"""
import dataclasses

from odoo import _, api, fields, models
from odoo.exceptions import AccessError

MANAGER_GROUP = "crm_mail_sync.group_mail_sync_manager"


class MailSyncMessageRemoval(models.Model):
    _name = "mail.sync.message.removal"
    _description = "Mail Sync: message removed from a record"
    _order = "id desc"
    _rec_name = "message_id"

    message_id = fields.Char("Message-ID", required=True, index=True, readonly=True)
    model = fields.Char(required=True, readonly=True)
    res_id = fields.Many2oneReference(model_field="model", required=True, readonly=True)
    user_id = fields.Many2one("res.users", string="Removed by", readonly=True,
                              ondelete="set null")
    subject = fields.Char(readonly=True)

    _sql_constraints = [
        ("removal_unique", "unique(message_id, model, res_id)", "Already removed."),
    ]

    @api.model
    def _removed(self, message_ids):
        """{(message_id, model, res_id)} removed among ``message_ids``. One query."""
        if not message_ids:
            return set()
        self.flush_model(["message_id", "model", "res_id"])
        self.env.cr.execute(
            "SELECT message_id, model, res_id FROM mail_sync_message_removal "
            "WHERE message_id = ANY(%s)", (list(message_ids),))
        return set(self.env.cr.fetchall())


class MailSyncMessage(models.Model):
    _inherit = "mail.sync.message"

    @api.model
    def _record(self, mailbox, folder, items, own_addrs):
        """Removed (Message-ID, record) pairs are never recorded again."""
        if items:
            removed = self.env["mail.sync.message.removal"].sudo()._removed(
                {header.message_id for header, _parsed, _match in items})
            if removed:
                kept = []
                for header, parsed, match in items:
                    mid = header.message_id
                    leads = tuple(i for i in match.lead_ids
                                  if (mid, "crm.lead", i) not in removed)
                    partners = tuple(i for i in match.partner_ids
                                     if (mid, "res.partner", i) not in removed)
                    if leads != tuple(match.lead_ids) or partners != tuple(match.partner_ids):
                        match = dataclasses.replace(match, lead_ids=leads, partner_ids=partners)
                    kept.append((header, parsed, match))
                items = kept
        return super()._record(mailbox, folder, items, own_addrs)


class MailMessage(models.Model):
    _inherit = "mail.message"

    mail_sync_private = fields.Boolean(
        "Private (Mail Sync)", readonly=True, copy=False, groups="base.group_user",
        help="Visible only to the user whose mailbox synced it and to Mail Sync managers.")
    mail_sync_private_user_id = fields.Many2one(
        "res.users", string="Private to", readonly=True, copy=False, index="btree_not_null",
        ondelete="set null", groups="base.group_user")

    # ------------------------------------------------------------------ access
    @api.model
    def _mail_sync_sees_private(self):
        env = self.env(su=False)
        return env.is_superuser() or env.user.has_group(MANAGER_GROUP)

    @api.model
    def _search(self, domain, offset=0, limit=None, order=None):
        # Portal users too (synced mail is internal, but they may be its author).
        if not self.env.is_superuser() and not self._mail_sync_sees_private():
            domain = self._mail_sync_restrict(domain, [
                "|", ("mail_sync_private", "=", False),
                ("mail_sync_private_user_id", "=", self.env.uid)])
            # mail.message's _search runs its query without flushing these fields itself.
            self.flush_model(["mail_sync_private", "mail_sync_private_user_id"])
        return super()._search(domain, offset, limit, order)

    def _get_forbidden_access(self, operation):
        forbidden = super()._get_forbidden_access(operation)
        if operation in ("read", "write") and not self._mail_sync_sees_private():
            rest = (self - forbidden).sudo()
            uid = self.env.uid
            hidden = rest.filtered(lambda m: m.mail_sync_private
                                   and m.mail_sync_private_user_id.id != uid)
            if hidden:
                forbidden += self.browse(hidden.ids)
        return forbidden

    # ------------------------------------------------------------------ actions
    def _mail_sync_check_owner(self):
        """Only synced messages, of the current user's mailbox unless a manager."""
        if not self:
            return
        self.check_access("read")
        manager = self._mail_sync_sees_private()
        for message in self.sudo():
            if not message.mail_sync_mailbox_id:
                raise AccessError(_("Only emails recorded by Mail Sync can be made private or "
                                    "removed here."))
            if not manager and message.mail_sync_mailbox_id.user_id != self.env.user:
                raise AccessError(_("Only %s (whose mailbox synced it) or a Mail Sync manager "
                                    "can do this.", message.mail_sync_mailbox_id.user_id.name))

    def action_mail_sync_make_private(self):
        self._mail_sync_check_owner()
        for message in self.sudo():
            message.write({"mail_sync_private": True,
                           "mail_sync_private_user_id": message.mail_sync_mailbox_id.user_id.id})
        return True

    def action_mail_sync_make_public(self):
        self._mail_sync_check_owner()
        self.sudo().write({"mail_sync_private": False, "mail_sync_private_user_id": False})
        return True

    def action_mail_sync_remove(self):
        """Remove these synced emails from their record, for good."""
        self._mail_sync_check_owner()
        messages = self.sudo()
        for model, res_ids in self._mail_sync_documents(messages).items():
            self.env[model].browse(res_ids).check_access("write")
        Removal = self.env["mail.sync.message.removal"].sudo()
        known = Removal._removed({m.message_id for m in messages if m.message_id})
        vals = []
        for message in messages:
            key = (message.message_id, message.model, message.res_id)
            if message.message_id and message.model and message.res_id and key not in known:
                known.add(key)
                vals.append({"message_id": message.message_id, "model": message.model,
                             "res_id": message.res_id, "user_id": self.env.uid,
                             "subject": (message.subject or "")[:500]})
        Removal.create(vals)
        messages.unlink()
        return {"type": "ir.actions.client", "tag": "soft_reload"}

    @staticmethod
    def _mail_sync_documents(messages):
        docs = {}
        for message in messages:
            if message.model and message.res_id:
                docs.setdefault(message.model, set()).add(message.res_id)
        return {model: list(ids) for model, ids in docs.items()}
