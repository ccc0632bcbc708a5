# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The synced-message registry, and the recorder that fills it.

One row per (mailbox, Message-ID) recorded: the matcher skips known Message-IDs before any body
is downloaded, so a replay (crash, UIDVALIDITY change, the same mail in two folders) records
nothing twice. Rows are written in the same transaction as the chatter messages and the folder
cursor.
"""
import datetime
import re

from markupsafe import Markup

from odoo import api, fields, models
from odoo.tools import plaintext2html

from ..mailsync import crashpoint


MIN_DATE = datetime.datetime(1970, 1, 1)
_CID_RE = re.compile(r"""(["'])cid:([^"']+)\1""", re.I)


class MailSyncMessage(models.Model):
    _name = "mail.sync.message"
    _description = "Mail Sync: synced message registry"
    _order = "date desc, id desc"
    _rec_name = "message_id"

    mailbox_id = fields.Many2one("mail.sync.mailbox", required=True, index=True,
                                 ondelete="cascade", readonly=True)
    company_id = fields.Many2one(related="mailbox_id.company_id", store=True)
    folder_id = fields.Many2one("mail.sync.folder", ondelete="set null", readonly=True)
    uid = fields.Integer("UID", readonly=True)
    message_id = fields.Char("Message-ID", required=True, index=True, readonly=True)
    direction = fields.Selection([("sent", "Sent"), ("received", "Received")], readonly=True)
    date = fields.Datetime(readonly=True)
    subject = fields.Char(readonly=True)
    in_reply_to = fields.Char("In-Reply-To", readonly=True)
    mail_message_ids = fields.Many2many(
        "mail.message", "mail_sync_message_mail_message_rel", "sync_message_id",
        "mail_message_id", string="Chatter entries", readonly=True)

    _sql_constraints = [
        ("mailbox_message_unique", "unique(mailbox_id, message_id)",
         "A message is recorded once per mailbox."),
    ]

    def init(self):
        # Replies recorded before the message they answer (another folder, a later batch) are
        # found through this index when that message arrives, and threaded under it.
        self.env.cr.execute("""
            CREATE INDEX IF NOT EXISTS mail_sync_message_mailbox_in_reply_to_index
                ON mail_sync_message (mailbox_id, in_reply_to) WHERE in_reply_to IS NOT NULL
        """)

    # ------------------------------------------------------------------ recording
    @api.model
    def _direction(self, folder, header, own_addrs):
        if folder.role == "sent" or any(a in own_addrs for a in header.from_addrs):
            return "sent"
        return "received"

    @api.model
    def _body(self, parsed):
        if parsed.body_html:
            return Markup(parsed.body_html)  # sanitized by mail.message's Html field
        if parsed.body_text:
            return plaintext2html(parsed.body_text)
        return ""

    @api.model
    def _record(self, mailbox, folder, items, own_addrs):
        """Record ``items`` (``(HeaderInfo, ParsedMessage, Match)``) of ``folder`` on their
        matched leads and contacts as chatter emails, without notifying anyone, and register
        their Message-IDs. Returns the number of messages recorded.

        Batched: one query for what the records already hold (duplicates, threading parents),
        one create for the attachments, one for the chatter entries, one for the registry.
        """
        # One entry per Message-ID (the same mail can come twice in a batch).
        unique = {}
        for header, parsed, match in items:
            unique.setdefault(header.message_id, (header, parsed, match))
        items = list(unique.values())
        if not items:
            return 0
        items.sort(key=lambda item: (self._naive(item[0].date or item[1].date) or MIN_DATE,
                                     item[0].uid))

        Message = self.env["mail.message"].sudo().with_context(
            mail_create_nosubscribe=True, mail_notrack=True, tracking_disable=True)
        Attachment = self.env["ir.attachment"].sudo()
        comment_subtype_id = self.env["ir.model.data"]._xmlid_to_res_id("mail.mt_comment")
        user_partner_id = mailbox.user_id.partner_id.id

        targets = {}  # message_id -> [(model, res_id)]
        for header, _parsed, match in items:
            targets[header.message_id] = [("crm.lead", i) for i in match.lead_ids] + [
                ("res.partner", i) for i in match.partner_ids]

        # What the matched records already hold: same Message-ID (e.g. sent from Odoo) or a
        # message this one replies to.
        wanted_ids = set(targets)
        for header, parsed, _match in items:
            if header.in_reply_to:
                wanted_ids.add(header.in_reply_to)
            wanted_ids.update(header.references or ())
        record_ids = {model: set() for model in ("crm.lead", "res.partner")}
        for pairs in targets.values():
            for model, res_id in pairs:
                record_ids[model].add(res_id)
        Message.flush_model(["model", "res_id", "message_id"])
        self.env.cr.execute("""
            SELECT id, model, res_id, message_id FROM mail_message
             WHERE message_id = ANY(%(mids)s)
               AND ((model = 'crm.lead' AND res_id = ANY(%(leads)s))
                 OR (model = 'res.partner' AND res_id = ANY(%(partners)s)))
          ORDER BY id
        """, {"mids": list(wanted_ids), "leads": list(record_ids["crm.lead"]),
              "partners": list(record_ids["res.partner"])})
        on_record = {}  # (model, res_id, message_id) -> mail.message id
        for message_id, model, res_id, mid in self.env.cr.fetchall():
            on_record.setdefault((model, res_id, mid), message_id)

        # Attachments: one copy per record (res_model/res_id = the record), like the gateway.
        attachment_vals, attachment_slots = [], []
        plan = []  # (header, parsed, match, model, res_id)
        for header, parsed, match in items:
            for model, res_id in targets[header.message_id]:
                if (model, res_id, header.message_id) in on_record:
                    continue  # already on this record: not recorded twice
                plan.append((header, parsed, match, model, res_id))
                for attachment in parsed.attachments:
                    attachment_slots.append((len(plan) - 1, attachment))
                    attachment_vals.append({
                        "name": attachment.filename or "attachment",
                        "raw": attachment.data,
                        "mimetype": attachment.content_type or "application/octet-stream",
                        "res_model": model,
                        "res_id": res_id,
                    })
        attachments = Attachment.create(attachment_vals) if attachment_vals else Attachment
        attachments_of = {}
        for (index, attachment), record in zip(attachment_slots, attachments):
            attachments_of.setdefault(index, []).append((attachment, record))

        message_vals = [
            self._message_values(mailbox, folder, header, parsed, match, model, res_id,
                                 attachments_of.get(index, []), on_record, comment_subtype_id,
                                 user_partner_id, own_addrs)
            for index, (header, parsed, match, model, res_id) in enumerate(plan)
        ]
        messages = Message.create(message_vals) if message_vals else Message
        crashpoint.reached("recorded_some", mailbox.id)

        # Threading inside the batch: a reply to a message recorded in this same batch.
        created = {}
        for (header, _p, _m, model, res_id), message in zip(plan, messages):
            created.setdefault((model, res_id, header.message_id), message.id)
        known = {**on_record, **created}
        parent_fix = []
        for (header, _p, _m, model, res_id), message, vals in zip(plan, messages, message_vals):
            parent = self._find_parent(header, model, res_id, known)
            if parent and parent != message.id and parent != vals.get("parent_id"):
                parent_fix.append((message.id, parent))
        # Replies recorded earlier (another folder, an earlier batch) answering a message
        # recorded now: thread them under it.
        if created:
            self.flush_model(["mailbox_id", "in_reply_to", "mail_message_ids"])
            self.env.cr.execute("""
                SELECT mm.id, mm.model, mm.res_id, r.in_reply_to, mm.parent_id
                  FROM mail_sync_message r
                  JOIN mail_sync_message_mail_message_rel rel ON rel.sync_message_id = r.id
                  JOIN mail_message mm ON mm.id = rel.mail_message_id
                 WHERE r.mailbox_id = %s AND r.in_reply_to = ANY(%s)
            """, (mailbox.id, list({key[2] for key in created})))
            for message_id, model, res_id, in_reply_to, parent_id in self.env.cr.fetchall():
                parent = created.get((model, res_id, in_reply_to))
                if parent and parent != parent_id:
                    parent_fix.append((message_id, parent))
        if parent_fix:
            self.env.cr.execute(
                "UPDATE mail_message m SET parent_id = v.parent_id "
                "FROM (VALUES %s) AS v(id, parent_id) WHERE m.id = v.id"
                % ", ".join(["(%s, %s)"] * len(parent_fix)),
                [value for pair in parent_fix for value in pair])
            self.env["mail.message"].invalidate_model(["parent_id", "child_ids"])

        # Registry rows, linked to the chatter entries they created.
        messages_of = {}
        for (header, _p, _m, _model, _res_id), message in zip(plan, messages):
            messages_of.setdefault(header.message_id, []).append(message.id)
        self.sudo().create([{
            "mailbox_id": mailbox.id,
            "folder_id": folder.id,
            "uid": header.uid,
            "message_id": header.message_id,
            "direction": self._direction(folder, header, own_addrs),
            "date": self._naive(header.date or parsed.date),
            "subject": (header.subject or parsed.subject or "")[:500],
            "in_reply_to": header.in_reply_to or False,
            "mail_message_ids": [(6, 0, messages_of.get(header.message_id, []))],
        } for header, parsed, _match in items])
        return len(items)

    # ------------------------------------------------------------------ helpers
    @api.model
    def _naive(self, value):
        """An aware datetime as Odoo's naive UTC."""
        if not value:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value

    @api.model
    def _find_parent(self, header, model, res_id, known):
        """The message on (model, res_id) this one answers: In-Reply-To first, else the latest
        of References that the record holds."""
        if header.in_reply_to and (model, res_id, header.in_reply_to) in known:
            return known[(model, res_id, header.in_reply_to)]
        for reference in reversed(header.references or ()):
            if (model, res_id, reference) in known:
                return known[(model, res_id, reference)]
        return False

    @api.model
    def _message_values(self, mailbox, folder, header, parsed, match, model, res_id,
                        attachments, on_record, subtype_id, user_partner_id, own_addrs):
        direction = self._direction(folder, header, own_addrs)
        from_addr = (header.from_addrs or (parsed.from_addr,))[0] if (
            header.from_addrs or parsed.from_addr) else None
        if direction == "sent" and (not from_addr or from_addr in own_addrs):
            author_id = user_partner_id
        else:
            author_id = match.authors.get(from_addr, False) if from_addr else False
        body = self._body(parsed)
        if attachments and body:
            by_cid = {a.content_id.strip("<>"): rec.id for a, rec in attachments if a.content_id}
            if by_cid:
                body = Markup(_CID_RE.sub(
                    lambda m: f'{m.group(1)}/web/image/{by_cid[m.group(2)]}{m.group(1)}'
                    if m.group(2) in by_cid else m.group(0), str(body)))
        email_from = parsed.from_display or from_addr or False
        return {
            "model": model,
            "res_id": res_id,
            "record_name": match.record_names.get((model, res_id), False),
            "message_type": "email",
            "subtype_id": subtype_id,
            "is_internal": True,
            "body": body,
            "subject": header.subject or parsed.subject or False,
            "date": self._naive(header.date or parsed.date) or fields.Datetime.now(),
            "email_from": email_from,
            "reply_to": email_from,
            "author_id": author_id,
            "message_id": header.message_id,
            "parent_id": self._find_parent(header, model, res_id, on_record),
            "attachment_ids": [(6, 0, [rec.id for _a, rec in attachments])],
            "mail_sync_mailbox_id": mailbox.id,
            "mail_sync_direction": direction,
        }
