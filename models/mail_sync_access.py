# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Access rules that Odoo's groups and record rules cannot say alone.

Synced mail (``mail.message`` with ``mail_sync_mailbox_id``) is visible exactly where the lead or
contact it is recorded on is visible. Odoo also lets a user read a message they are the author
of, created, or were notified of — whatever the document. Sync records the mail a user sent with
their partner as author (the chatter shows who wrote it) and, when the user clicks "Sync now",
with them as creator: without this override a Jr. Salesperson would read, through a message
search or an RPC read, mail synced onto another salesperson's lead, and learn that lead's name.
For synced messages, the document decides alone (read: read the document; write: write it).

Company limits and plans (``res.company`` ``mail_sync_*`` fields) are edited by administrators
(Settings) only — Odoo lets "Access Rights" users write companies too.
"""
from collections import defaultdict

from odoo import _, api, models
from odoo.exceptions import AccessError
from odoo.osv import expression
from odoo.tools import Query, SQL


class MailMessage(models.Model):
    _inherit = "mail.message"

    @api.model
    def _mail_sync_forbidden(self, ids, operation):
        """Of message ``ids``, the synced ones whose document the current user may not
        ``operation`` (read | write) — checked as the real user, even from a sudo env."""
        env = self.env(su=False)
        if not ids or env.is_superuser():
            return set()
        self.flush_model(["model", "res_id", "mail_sync_mailbox_id"])
        rows = env.execute_query(SQL(
            "SELECT id, model, res_id FROM mail_message "
            "WHERE id = ANY(%s) AND mail_sync_mailbox_id IS NOT NULL", list(ids)))
        if not rows:
            return set()
        forbidden = set()
        by_doc = defaultdict(lambda: defaultdict(list))
        for id_, model, res_id in rows:
            if model and res_id and model in env:
                by_doc[model][res_id].append(id_)
            else:
                forbidden.add(id_)  # synced mail always has a document; none: superuser only
        for model, doc_msgs in by_doc.items():
            documents = env[model].browse(doc_msgs)
            if hasattr(documents, "_get_mail_message_access"):
                doc_operation = documents._get_mail_message_access(list(doc_msgs), operation)
            else:
                doc_operation = env["mail.thread"]._get_mail_message_access(
                    list(doc_msgs), operation, model_name=model)
            result = documents._check_access(doc_operation)
            if result:
                for doc_id in result[0]._ids:
                    forbidden.update(doc_msgs[doc_id])
        return forbidden

    @api.model
    def _mail_sync_document_models(self):
        """The models synced mail is recorded on (``mail.sync.message._record``)."""
        return ("crm.lead", "res.partner")

    @api.model
    def _mail_sync_search_domain(self):
        """The synced messages the current user may list: those whose document they may read —
        a condition of the search query itself, so that limit and offset stay exact (a page of
        N is N rows) and no extra query runs. Per document model, a correlated sub-query of the
        documents that the user's access rights and record rules let them read (archived ones
        too, as in ``_get_forbidden_access``). Synced mail moved onto a record of another model
        is listed to the superuser only (read by id, its document decides)."""
        env = self.env(su=False)
        domain = [("mail_sync_mailbox_id", "=", False)]
        for model in self._mail_sync_document_models():
            if model not in env:
                continue
            Doc = env[model]
            if hasattr(Doc, "_get_mail_message_access"):
                operation = Doc._get_mail_message_access([], "read")
            else:
                operation = env["mail.thread"]._get_mail_message_access(
                    [], "read", model_name=model)
            if not Doc.browse().has_access(operation):
                continue
            docs = Doc._where_calc([], active_test=False)
            Doc._apply_ir_rules(docs, operation)
            docs.add_where(SQL("%s = %s", SQL.identifier(docs.table, "id"),
                               SQL.identifier(self._table, "res_id")))
            readable = docs.subselect()
            env.flush_query(readable)  # mail.message's _search runs its query without flushing
            domain = expression.OR([domain, [("model", "=", model), ("res_id", "in", readable)]])
        return domain

    @api.model
    def _mail_sync_restrict(self, domain, restriction):
        """``domain`` and ``restriction``, a domain on Mail Sync's fields. Only employees may
        name those in a search (``groups``): for any other user (portal), ``restriction`` is
        compiled as the superuser and joins ``domain`` as a condition on the same row."""
        if self.env.user._is_internal():
            return expression.AND([domain, restriction])
        query = Query(self.env, self._table, self._table_sql)
        expression.expression(restriction, self.sudo(), self._table, query)
        row = SQL.identifier(self._table, "id")
        return expression.AND([domain, [
            ("id", "in", SQL("(SELECT %s WHERE %s)", row, query.where_clause))]])

    @api.model
    def _search(self, domain, offset=0, limit=None, order=None):
        if not self.env.is_superuser():
            domain = self._mail_sync_restrict(domain, self._mail_sync_search_domain())
            self.flush_model(["model", "res_id", "mail_sync_mailbox_id"])
        return super()._search(domain, offset, limit, order)

    def _get_forbidden_access(self, operation):
        forbidden = super()._get_forbidden_access(operation)
        if operation in ("read", "write"):  # create and unlink: Odoo checks the document only
            hidden = self._mail_sync_forbidden((self - forbidden).ids, operation)
            if hidden:
                forbidden += self.browse([id_ for id_ in self._ids if id_ in hidden])
        return forbidden

    def _compute_is_current_user_or_guest_author(self):
        # Authors may edit their message and delete its attachments (mail controllers): not on
        # synced mail recorded on a document they may not write.
        super()._compute_is_current_user_or_guest_author()
        authored = self.filtered(lambda m: m.is_current_user_or_guest_author and m.id)
        hidden = self._mail_sync_forbidden(authored.ids, "write") if authored else set()
        for message in authored:
            if message.id in hidden:
                message.is_current_user_or_guest_author = False


class IrAttachment(models.Model):
    _inherit = "ir.attachment"

    def check(self, mode, values=None):
        """The attachments of synced mail that is not shared whole live on their mailbox
        (``mail.message._mail_sync_set_visibility``): readable only by who may read a message
        holding them and see its content (its owner, Mail Sync managers — where they may read
        the record). Odoo lets anyone read an attachment whose record is gone: not these."""
        res = super().check(mode, values=values)
        if self and not self.env.is_superuser():
            self.flush_model(["res_model", "res_id"])
            rows = self.env.execute_query(SQL("""
                SELECT a.id, r.message_id
                  FROM ir_attachment a
             LEFT JOIN mail_sync_message_hidden_attachment_rel r ON r.attachment_id = a.id
                 WHERE a.id = ANY(%s) AND a.res_model = 'mail.sync.mailbox'
            """, list(self.ids)))
            if rows:
                messages = self.env["mail.message"].browse(
                    {message_id for _id, message_id in rows if message_id})
                if any(not message_id for _id, message_id in rows) \
                        or messages._filtered_access("read") != messages \
                        or messages._mail_sync_sees_content() != messages.sudo():
                    raise AccessError(_("Sorry, you are not allowed to access this document."))
        return res


    @api.model
    def _search(self, domain, offset=0, limit=None, order=None):
        """Reads (fields, downloads, lists) of those attachments: the same rule as ``check``,
        as a condition of the query (Odoo reads an attachment through its search)."""
        query = super()._search(domain, offset, limit, order)
        if self.env.is_superuser():
            return query
        Message = self.env["mail.message"]
        readable = Message._search([] if Message._mail_sync_sees_private() else
                                   [("mail_sync_private_user_id", "=", self.env.uid)])
        self.env["mail.message"].flush_model(["mail_sync_private_user_id",
                                              "mail_sync_visibility"])
        self.flush_model(["res_model"])
        query.add_where(SQL(
            "(%(model)s IS DISTINCT FROM 'mail.sync.mailbox' OR %(id)s IN ("
            "SELECT attachment_id FROM mail_sync_message_hidden_attachment_rel "
            "WHERE message_id IN %(readable)s))",
            model=SQL.identifier(self._table, "res_model"),
            id=SQL.identifier(self._table, "id"), readable=readable.subselect()))
        return query


class ResCompany(models.Model):
    _inherit = "res.company"

    def write(self, vals):
        if any(name.startswith("mail_sync_") for name in vals) and not (
                self.env.is_superuser() or self.env.user.has_group("base.group_system")):
            raise AccessError(_("Only administrators can change the Mail Sync mailbox limit "
                                "and plan of a company."))
        return super().write(vals)


class MailSyncMailbox(models.Model):
    _inherit = "mail.sync.mailbox"

    def _check_owner_access(self):
        """Only the owner of these mailboxes (a dry run reads their mail). AccessError."""
        if not self:
            raise AccessError(_("Choose a mailbox."))
        self.check_access("read")
        if self.env.is_superuser():
            return
        for mailbox in self:
            if mailbox.user_id != self.env.user:
                raise AccessError(_("Only %s can do this with their mailbox.",
                                    mailbox.user_id.name))

    def _check_disconnect_access(self):
        """Whoever disconnects these mailboxes must be their owner or a Mail Sync manager of
        their company (the record rules say who reads which mailbox; only owners write theirs).
        Raises AccessError; the caller then works with ``sudo()``. Never reveals a secret."""
        if not self:
            raise AccessError(_("Choose a mailbox."))
        self.check_access("read")
        if self.env.is_superuser():
            return
        manager = self.env.user.has_group("crm_mail_sync.group_mail_sync_manager")
        for mailbox in self:
            if mailbox.user_id != self.env.user and not manager:
                raise AccessError(_("Only %s or a Mail Sync manager can disconnect this mailbox.",
                                    mailbox.user_id.name))
