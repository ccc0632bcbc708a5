# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Synced mail in the chatter: what marks it, who may see it, and what its owner may do with it.

Access: rules that Odoo's groups and record rules cannot say alone. Synced mail (``mail.message``
with ``mail_sync_mailbox_id``) is visible exactly where the lead or contact it is recorded on is
visible. Odoo also lets a user read a message they are the author of, created, or were notified
of, whatever the document. Sync records the mail a user sent with their partner as author (the
chatter shows who wrote it) and, when the user clicks "Sync now", with them as creator: without
this a Jr. Salesperson would read, through a message search or an RPC read, mail synced onto
another salesperson's lead, and learn that lead's name. For synced messages, the document decides
alone (read: read the document; write: write it).

Private by choice: a synced message can be made private, or removed from a record.

- Private: the message stays on the record but only the user whose mailbox synced it and Mail
  Sync managers see it (search, read, write). Both restrictions apply.
- Removed: the chatter entry is deleted and the removal is remembered
  (``mail.sync.message.removal``: Message-ID + record), so no later sync, replay, late link or
  colleague's mailbox brings it back onto that record.

Who may: the owner of the mailbox that synced it, or a Mail Sync manager; removing also needs
write access to the record.
"""

from collections import defaultdict

from markupsafe import escape

from odoo import _, api, fields, models
from odoo.exceptions import AccessError
from odoo.osv import expression
from odoo.tools import Query, SQL

from odoo.addons.mail.tools.discuss import Store

from .states import SHARING

MANAGER_GROUP = "crm_mail_sync.group_mail_sync_manager"


class MailMessage(models.Model):
    _inherit = "mail.message"

    # Marks exactly what a mailbox's sync created (to remove it on disconnect).
    mail_sync_mailbox_id = fields.Many2one(
        "mail.sync.mailbox",
        string="Synced from mailbox",
        index="btree_not_null",
        ondelete="set null",
        readonly=True,
        copy=False,
        groups="base.group_user",
    )

    mail_sync_direction = fields.Selection(
        [("sent", "Sent"), ("received", "Received")],
        string="Synced direction",
        readonly=True,
        copy=False,
        groups="base.group_user",
    )
    mail_sync_date_header = fields.Char(
        "Date header (Mail Sync)",
        readonly=True,
        copy=False,
        groups="base.group_user",
        help="The email's own Date header, when it was not believed (missing, in the future or "
        "before 1990) and the server's reception date was shown instead.",
    )
    mail_sync_private = fields.Boolean(
        "Private (Mail Sync)",
        readonly=True,
        copy=False,
        groups="base.group_user",
        help="Made private one by one: visible only to the user whose mailbox synced it and to "
        "Mail Sync managers, whatever the mailbox shares.",
    )
    mail_sync_private_user_id = fields.Many2one(
        "res.users",
        string="Owner (Mail Sync)",
        readonly=True,
        copy=False,
        index="btree_not_null",
        ondelete="set null",
        groups="base.group_user",
        help="The user whose mailbox synced this email: they (and Mail Sync managers) see it "
        "whole, whatever it shares.",
    )
    mail_sync_visibility = fields.Selection(
        SHARING,
        string="Shared with (Mail Sync)",
        readonly=True,
        copy=False,
        index=True,
        groups="base.group_user",
        help="Who sees this synced email: its mailbox's sharing, or Private when it was made "
        "private.",
    )
    mail_sync_participants = fields.Char(
        "Participants (Mail Sync)", readonly=True, copy=False, groups="base.group_user"
    )

    # The content of an email that is not shared whole (Subject and participants only, Private):
    # moved out of ``body`` and ``attachment_ids``, where every reader and every export of the
    # record would find it. Read back (as superuser) for the owner and Mail Sync managers only.
    mail_sync_body = fields.Html(
        "Hidden content (Mail Sync)",
        readonly=True,
        copy=False,
        sanitize=False,
        groups="base.group_system",
    )

    mail_sync_attachment_ids = fields.Many2many(
        "ir.attachment",
        "mail_sync_message_hidden_attachment_rel",
        "message_id",
        "attachment_id",
        string="Hidden attachments (Mail Sync)",
        readonly=True,
        copy=False,
        groups="base.group_system",
    )

    # ------------------------------------------------------------------ access
    @api.model
    def _search(self, domain, offset=0, limit=None, order=None):
        """Synced mail is found where its record is readable, and private mail by its owner and
        Mail Sync managers only (portal users too: synced mail is internal, but they may be its
        author)."""
        if not self.env.is_superuser():
            domain = self._mail_sync_restrict(domain, self._mail_sync_search_domain())
            flush = ["model", "res_id", "mail_sync_mailbox_id"]
            if not self._mail_sync_sees_private():
                domain = self._mail_sync_restrict(
                    domain,
                    [
                        "|",
                        ("mail_sync_visibility", "!=", "private"),
                        ("mail_sync_private_user_id", "=", self.env.uid),
                    ],
                )
                flush += ["mail_sync_visibility", "mail_sync_private_user_id"]
            # mail.message's _search runs its query without flushing these fields itself.
            self.flush_model(flush)
        return super()._search(domain, offset, limit, order)

    def _get_forbidden_access(self, operation):
        forbidden = super()._get_forbidden_access(operation)
        if operation not in ("read", "write"):  # create and unlink: Odoo checks the document
            return forbidden
        hidden = self._mail_sync_forbidden((self - forbidden).ids, operation)
        if hidden:
            forbidden += self.browse([id_ for id_ in self._ids if id_ in hidden])
        if not self._mail_sync_sees_private():
            uid = self.env.uid
            private = (
                (self - forbidden)
                .sudo()
                .filtered(
                    lambda m: (
                        m.mail_sync_visibility == "private"
                        and m.mail_sync_private_user_id.id != uid
                    )
                )
            )
            if private:
                forbidden += self.browse(private.ids)
        return forbidden

    @api.model
    def _mail_sync_forbidden(self, ids, operation):
        """Of message ``ids``, the synced ones whose document the current user may not
        ``operation`` (read | write) — checked as the real user, even from a sudo env."""
        env = self.env(su=False)
        if not ids or env.is_superuser():
            return set()
        self.flush_model(["model", "res_id", "mail_sync_mailbox_id"])
        rows = env.execute_query(
            SQL(
                "SELECT id, model, res_id FROM mail_message "
                "WHERE id = ANY(%s) AND mail_sync_mailbox_id IS NOT NULL",
                list(ids),
            )
        )
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
                    list(doc_msgs), operation, model_name=model
                )
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
                    [], "read", model_name=model
                )
            if not Doc.browse().has_access(operation):
                continue
            docs = Doc._where_calc([], active_test=False)
            Doc._apply_ir_rules(docs, operation)
            docs.add_where(
                SQL(
                    "%s = %s",
                    SQL.identifier(docs.table, "id"),
                    SQL.identifier(self._table, "res_id"),
                )
            )
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
        return expression.AND(
            [domain, [("id", "in", SQL("(SELECT %s WHERE %s)", row, query.where_clause))]]
        )

    def _compute_is_current_user_or_guest_author(self):
        # Authors may edit their message and delete its attachments (mail controllers): not on
        # synced mail recorded on a document they may not write.
        res = super()._compute_is_current_user_or_guest_author()
        authored = self.filtered(lambda m: m.is_current_user_or_guest_author and m.id)
        hidden = self._mail_sync_forbidden(authored.ids, "write") if authored else set()
        for message in authored:
            if message.id in hidden:
                message.is_current_user_or_guest_author = False
        return res

    @api.model_create_multi
    def create(self, vals_list):
        """Synced mail is shared as its mailbox shares (or private when made so): recorded with
        its content in place, then moved out for what is not shared whole."""
        mailboxes = (
            self.env["mail.sync.mailbox"]
            .sudo()
            .browse(
                {
                    vals["mail_sync_mailbox_id"]
                    for vals in vals_list
                    if vals.get("mail_sync_mailbox_id")
                }
            )
        )
        owners = {
            mailbox.id: (mailbox.user_id.id, mailbox.sharing or "everyone") for mailbox in mailboxes
        }
        targets = []
        for vals in vals_list:
            owner, sharing = owners.get(vals.get("mail_sync_mailbox_id"), (False, None))
            if sharing is None:
                targets.append(None)
                continue
            vals.setdefault("mail_sync_private_user_id", owner)
            target = vals.pop("mail_sync_visibility", None) or (
                "private" if vals.get("mail_sync_private") else sharing
            )
            vals["mail_sync_visibility"] = "everyone"
            targets.append(target)
        messages = super().create(vals_list)
        for visibility in ("metadata", "private"):
            hidden = [m.id for m, target in zip(messages, targets) if target == visibility]
            if hidden:
                self.browse(hidden).sudo()._mail_sync_set_visibility(visibility)
        return messages

    # ------------------------------------------------------------------ access
    @api.model
    def _mail_sync_sees_private(self):
        env = self.env(su=False)
        return env.is_superuser() or env.user.has_group(MANAGER_GROUP)

    def _mail_sync_sees_content(self):
        """The messages of ``self`` whose moved-out content the current user may see: the owner
        and Mail Sync managers, on messages not shared whole."""
        hidden = self.sudo().filtered(lambda m: m.mail_sync_visibility in ("metadata", "private"))
        if not hidden or self._mail_sync_sees_private():
            return hidden
        return hidden.filtered(lambda m: m.mail_sync_private_user_id.id == self.env.uid)

    def _read_format(self, fnames, load="_classic_read"):
        result = super()._read_format(fnames, load=load)
        if {"body", "attachment_ids"} & set(fnames) and self.env.user._is_internal():
            owned = {message.id: message for message in self._mail_sync_sees_content()}
            for values in result:
                message = owned.get(values["id"])
                if message is None:
                    continue
                if "body" in values and message.mail_sync_body:
                    values["body"] = message.mail_sync_body
                if "attachment_ids" in values and message.mail_sync_attachment_ids:
                    values["attachment_ids"] = message.mail_sync_attachment_ids.ids
        return result

    def _to_store(self, store, /, *, fields=None, **kwargs):
        res = super()._to_store(store, fields=fields, **kwargs)
        if self.env.user._is_internal():
            # A Date header that was not believed: the chatter shows the server's reception
            # date, the date's tooltip says what the email itself claimed.
            for message in self.sudo().filtered("mail_sync_date_header"):
                store.add(
                    self.browse(message.id),
                    {
                        "mail_sync_date_note": _(
                            "The email's own Date header said “%(date)s”; the date the mail server "
                            "received it is shown instead.",
                            date=message.mail_sync_date_header,
                        )
                    },
                )
        for message in self._mail_sync_sees_content():
            if message.mail_sync_attachment_ids:
                store.add(
                    self.browse(message.id),
                    {"attachment_ids": Store.many(message.mail_sync_attachment_ids.sorted("id"))},
                )
        return res

    # ------------------------------------------------------------------ sharing
    @api.model
    def _mail_sync_apply_mailbox_sharing(self, mailbox):
        """The mail of ``mailbox`` shared as its ``sharing`` says (what was made private one by
        one stays private)."""
        self.flush_model()
        self.env.cr.execute(
            SQL(
                "SELECT id FROM mail_message WHERE mail_sync_mailbox_id = %s "
                "AND NOT COALESCE(mail_sync_private, false)",
                mailbox.id,
            )
        )
        ids = [row[0] for row in self.env.cr.fetchall()]
        self.browse(ids)._mail_sync_set_visibility(mailbox.sharing or "everyone")

    def _mail_sync_set_visibility(self, visibility):
        """Share these synced messages with ``visibility`` (everyone | metadata | private): the
        content of what is not shared whole moves out of ``body`` and ``attachment_ids`` (and
        the attachments off the record, onto the mailbox: only its owner and Mail Sync managers
        may open them), what becomes shared whole moves back. A few queries whatever the
        number of messages."""
        if not self.ids:
            return
        self.flush_model()
        self.env["ir.attachment"].flush_model()
        cr = self.env.cr
        ids = list(self.ids)
        if visibility == "everyone":
            cr.execute(
                SQL(
                    """
                UPDATE ir_attachment a SET res_model = m.model, res_id = m.res_id
                  FROM mail_sync_message_hidden_attachment_rel r
                  JOIN mail_message m ON m.id = r.message_id
                 WHERE r.attachment_id = a.id AND r.message_id = ANY(%(ids)s)
            """,
                    ids=ids,
                )
            )
            cr.execute(
                SQL(
                    """
                WITH moved AS (
                    DELETE FROM mail_sync_message_hidden_attachment_rel
                     WHERE message_id = ANY(%(ids)s) RETURNING message_id, attachment_id)
                INSERT INTO message_attachment_rel (message_id, attachment_id)
                SELECT message_id, attachment_id FROM moved ON CONFLICT DO NOTHING
            """,
                    ids=ids,
                )
            )
            cr.execute(
                SQL(
                    """
                UPDATE mail_message SET body = mail_sync_body, mail_sync_body = NULL,
                       mail_sync_visibility = 'everyone'
                 WHERE id = ANY(%(ids)s) AND mail_sync_body IS NOT NULL
            """,
                    ids=ids,
                )
            )
            cr.execute(
                SQL(
                    """
                UPDATE mail_message SET mail_sync_visibility = 'everyone'
                 WHERE id = ANY(%(ids)s)
            """,
                    ids=ids,
                )
            )
        else:
            cr.execute(
                SQL(
                    """
                UPDATE ir_attachment a SET res_model = 'mail.sync.mailbox',
                       res_id = m.mail_sync_mailbox_id
                  FROM message_attachment_rel r
                  JOIN mail_message m ON m.id = r.message_id
                 WHERE r.attachment_id = a.id AND r.message_id = ANY(%(ids)s)
                   AND m.mail_sync_mailbox_id IS NOT NULL
            """,
                    ids=ids,
                )
            )
            cr.execute(
                SQL(
                    """
                WITH moved AS (
                    DELETE FROM message_attachment_rel r USING mail_message m
                     WHERE m.id = r.message_id AND r.message_id = ANY(%(ids)s)
                       AND m.mail_sync_mailbox_id IS NOT NULL
                 RETURNING r.message_id, r.attachment_id)
                INSERT INTO mail_sync_message_hidden_attachment_rel (message_id, attachment_id)
                SELECT message_id, attachment_id FROM moved ON CONFLICT DO NOTHING
            """,
                    ids=ids,
                )
            )
            # The placeholder says what is shared: the participants (and who sees the rest).
            for lang, message_ids in self._mail_sync_ids_by_owner_lang(ids).items():
                note = self.with_context(lang=lang).env._(
                    "The content and attachments of this email are visible to its owner and "
                    "the Mail Sync managers only."
                )
                cr.execute(
                    SQL(
                        """
                    UPDATE mail_message m
                       SET mail_sync_body = CASE WHEN m.mail_sync_body IS NULL THEN m.body
                                                 ELSE m.mail_sync_body END,
                           body = '<p><i>' || %(note)s || '</i></p>'
                                  || CASE WHEN m.mail_sync_participants IS NULL THEN ''
                                     ELSE '<p>' || replace(replace(replace(
                                         m.mail_sync_participants, '&', '&amp;'), '<', '&lt;'),
                                         '>', '&gt;') || '</p>' END
                     WHERE m.id = ANY(%(ids)s)
                """,
                        note=str(escape(note)),
                        ids=message_ids,
                    )
                )
            cr.execute(
                SQL(
                    """
                UPDATE mail_message m SET mail_sync_visibility = %(visibility)s,
                       mail_sync_private_user_id = COALESCE(m.mail_sync_private_user_id,
                                                            b.user_id)
                  FROM mail_sync_mailbox b
                 WHERE b.id = m.mail_sync_mailbox_id AND m.id = ANY(%(ids)s)
            """,
                    visibility=visibility,
                    ids=ids,
                )
            )
        self.invalidate_model()
        self.env["ir.attachment"].invalidate_model(["res_model", "res_id"])

    def _mail_sync_ids_by_owner_lang(self, ids):
        """``{lang: [message id]}`` of synced messages, by their mailbox owner's language."""
        self.env.cr.execute(
            SQL(
                """
            SELECT COALESCE(p.lang, 'en_US'), array_agg(m.id)
              FROM mail_message m
              JOIN mail_sync_mailbox b ON b.id = m.mail_sync_mailbox_id
              JOIN res_users u ON u.id = b.user_id
              JOIN res_partner p ON p.id = u.partner_id
             WHERE m.id = ANY(%s)
          GROUP BY 1
        """,
                list(ids),
            )
        )
        return dict(self.env.cr.fetchall())

    # ------------------------------------------------------------------ actions
    def _mail_sync_check_owner(self):
        """Only synced messages, of the current user's mailbox unless a manager."""
        if not self:
            return
        self.check_access("read")
        manager = self._mail_sync_sees_private()
        for message in self.sudo():
            if not message.mail_sync_mailbox_id:
                raise AccessError(
                    _("Only emails recorded by Mail Sync can be made private or removed here.")
                )
            if not manager and message.mail_sync_mailbox_id.user_id != self.env.user:
                raise AccessError(
                    _(
                        "Only %s (whose mailbox synced it) or a Mail Sync manager can do this.",
                        message.mail_sync_mailbox_id.user_id.name,
                    )
                )

    def action_mail_sync_make_private(self):
        self._mail_sync_check_owner()
        messages = self.sudo()
        messages.write({"mail_sync_private": True})
        messages._mail_sync_set_visibility("private")
        return True

    def action_mail_sync_make_public(self):
        """Back to what the mailbox shares (no longer private one by one)."""
        self._mail_sync_check_owner()
        messages = self.sudo()
        messages.write({"mail_sync_private": False})
        for mailbox in messages.mail_sync_mailbox_id:
            messages.filtered(
                lambda m, b=mailbox: m.mail_sync_mailbox_id == b
            )._mail_sync_set_visibility(mailbox.sharing or "everyone")
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
                vals.append(
                    {
                        "message_id": message.message_id,
                        "model": message.model,
                        "res_id": message.res_id,
                        "user_id": self.env.uid,
                        "company_id": message.mail_sync_mailbox_id.company_id.id,
                        "subject": (message.subject or "")[:500],
                    }
                )
        Removal.create(vals)
        hidden_attachments = messages.mail_sync_attachment_ids  # on the mailbox, not the record
        messages.unlink()
        hidden_attachments.unlink()
        return {"type": "ir.actions.client", "tag": "soft_reload"}

    @staticmethod
    def _mail_sync_documents(messages):
        docs = {}
        for message in messages:
            if message.model and message.res_id:
                docs.setdefault(message.model, set()).add(message.res_id)
        return {model: list(ids) for model, ids in docs.items()}
