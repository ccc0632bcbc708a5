# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The synced messages of each mailbox (``mail.sync.message``), and the recorder that fills them.

One row per (mailbox, Message-ID) recorded: the matcher skips known Message-IDs before any body
is downloaded, so a replay (crash, UIDVALIDITY change, the same mail in two folders) records
nothing twice. Rows are written in the same transaction as the chatter messages and the folder
cursor.
"""

import dataclasses
import datetime
import logging
import re

import psycopg2
from markupsafe import Markup

from odoo import api, fields, models
from odoo.tools import SQL, plaintext2html

from ..mailsync import crashpoint, errors
from ..mailsync.types import OMITTED_MESSAGE_LIMIT
from .sync_run import Counts, naive_utc

_logger = logging.getLogger(__name__)

# A Date before this is not believed (nor one more than a day ahead): INTERNALDATE instead.
EARLIEST_DATE = datetime.datetime(1990, 1, 1)
_CID_RE = re.compile(r"""(["'])cid:([^"']+)\1""", re.I)

# Types a browser would run or render as a page on Odoo's origin: stored as text/plain, as
# Odoo's own mail gateway does (``attachments_mime_plainxml``). Odoo forces text/plain for
# anything HTML- or XML-like under that context key; scripts are added here.
ACTIVE_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "application/javascript",
        "text/javascript",
        "application/ecmascript",
        "text/ecmascript",
        "application/x-javascript",
        "text/jscript",
        "text/vbscript",
        "application/x-shockwave-flash",
        "text/x-component",
        "application/hta",
        "multipart/x-mixed-replace",
    }
)
# Failures that are not a message's fault: the transaction itself is at stake (serialization,
# deadlock, lock timeout, lost connection). They are raised, never isolated as a bad message.
# Outlook's rich-text attachment: no reader but Outlook's opens it, the chatter says so.
TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
NOT_POISON = (psycopg2.OperationalError, psycopg2.InterfaceError)


def merge_copies(items):
    """``items`` with one entry per Message-ID: the first copy, on the records of every copy
    (a copy Cc'd to more people, or a Bcc copy, names more of them), with the addresses of
    every copy."""
    merged = {}
    for header, parsed, match in items:
        first = merged.get(header.message_id)
        if first is None:
            merged[header.message_id] = (header, parsed, match)
            continue
        old = first[2]
        merged[header.message_id] = (
            first[0],
            first[1],
            dataclasses.replace(
                old,
                lead_ids=tuple(dict.fromkeys(old.lead_ids + match.lead_ids)),
                partner_ids=tuple(dict.fromkeys(old.partner_ids + match.partner_ids)),
                authors={**match.authors, **old.authors},
                record_names={**match.record_names, **old.record_names},
                addresses=tuple(dict.fromkeys(old.addresses + match.addresses)),
            ),
        )
    return list(merged.values())


def address_lines(addresses):
    """A synced message's ``addresses`` value: sorted, one per line."""
    return "\n".join(sorted(set(filter(None, addresses)))) or False


def attachment_mimetype(content_type):
    """The mimetype an attachment of ``content_type`` is stored with: active types as text."""
    ctype = (content_type or "application/octet-stream").split(";", 1)[0].strip().lower()
    if (
        ctype in ACTIVE_TYPES
        or "javascript" in ctype
        or "ecmascript" in ctype
        or ctype.endswith("+xml")
        or "html" in ctype
    ):
        return "text/plain"
    return ctype or "application/octet-stream"


def human_size(size):
    """``73 MB``, ``640 KB``, ``12 bytes``."""
    if size >= 1 << 20:
        return f"{size / (1 << 20):.0f} MB"
    if size >= 1 << 10:
        return f"{size / (1 << 10):.0f} KB"
    return f"{size} bytes"


@dataclasses.dataclass(frozen=True)
class RecordingBatch:
    """What every chatter entry of one recording shares."""

    mailbox: object
    folder: object
    own_addrs: object
    on_record: dict  # (model, res_id, Message-ID) -> mail.message id already on the record
    subtype_id: int
    user_partner_id: int


class MailSyncMessage(models.Model):
    _name = "mail.sync.message"
    _description = "Mail Sync: synced message"
    _order = "date desc, id desc"
    _rec_name = "message_id"

    mailbox_id = fields.Many2one(
        "mail.sync.mailbox", required=True, index=True, ondelete="cascade", readonly=True
    )
    company_id = fields.Many2one(related="mailbox_id.company_id", store=True)
    folder_id = fields.Many2one("mail.sync.folder", ondelete="set null", readonly=True)
    uid = fields.Integer("UID", readonly=True)
    message_id = fields.Char("Message-ID", required=True, index=True, readonly=True)
    direction = fields.Selection([("sent", "Sent"), ("received", "Received")], readonly=True)
    date = fields.Datetime(readonly=True)
    subject = fields.Char(readonly=True)
    in_reply_to = fields.Char("In-Reply-To", readonly=True)
    mail_message_ids = fields.Many2many(
        "mail.message",
        "mail_sync_message_mail_message_rel",
        "sync_message_id",
        "mail_message_id",
        string="Chatter entries",
        readonly=True,
    )
    # The addresses the email named (normalised, one per line, the mailbox's own left out),
    # over every copy recorded: a later copy naming others (Cc'd to more people, a Bcc copy)
    # is recorded on their records too. Empty on rows older than this field: no copy adds.
    addresses = fields.Text(readonly=True)

    _sql_constraints = [
        (
            "mailbox_message_unique",
            "unique(mailbox_id, message_id)",
            "A message is recorded once per mailbox.",
        ),
    ]

    def init(self):
        # Replies recorded before the message they answer (another folder, a later batch) are
        # found through this index when that message arrives, and threaded under it.
        self.env.cr.execute(
            SQL("""
            CREATE INDEX IF NOT EXISTS mail_sync_message_mailbox_in_reply_to_index
                ON mail_sync_message (mailbox_id, in_reply_to) WHERE in_reply_to IS NOT NULL
        """)
        )

    # ------------------------------------------------------------------ recording
    @api.model
    def _direction(self, folder, header, own_addrs):
        if folder.role == "sent" or any(a in own_addrs for a in header.from_addrs):
            return "sent"
        return "received"

    @api.model
    def _body(self, parsed, mailbox=None):
        if parsed.body:  # every part a mail client shows, in order (mailsync.parse.Walker)
            body = Markup(parsed.body)  # sanitized by mail.message's Html field
        elif parsed.body_html:
            body = Markup(parsed.body_html)
        elif parsed.body_text:
            body = plaintext2html(parsed.body_text)
        else:
            body = Markup("")
        notes = self._omitted_notes(parsed, mailbox) if mailbox is not None else []
        if notes:
            body += Markup("").join(
                Markup('<p class="o_mail_sync_omitted"><i>%s</i></p>') % note for note in notes
            )
        return body

    @api.model
    def _omitted_notes(self, parsed, mailbox):
        """One sentence per part that was not synced, in the mailbox owner's language:
        "report.pdf (73 MB) was not synced: over the 25 MB limit.", and one per attachment that
        a reader would not expect (Outlook's winmail.dat)."""
        env = self.with_context(lang=mailbox.user_id.lang or self.env.lang).env
        notes = [
            env._(
                "%(name)s is Outlook's rich-text format (TNEF): it is kept as an attachment, and "
                "opens in Outlook or a TNEF viewer.",
                name=attachment.filename,
            )
            for attachment in parsed.attachments
            if attachment.content_type.lower() in TNEF_TYPES
        ]
        if not parsed.omitted:
            return notes
        company = mailbox.company_id
        for omitted in parsed.omitted:
            size = human_size(omitted.size)
            if omitted.reason == OMITTED_MESSAGE_LIMIT:
                limit = f"{company.mail_sync_max_message_mb} MB"
                if omitted.filename:
                    notes.append(
                        env._(
                            "%(name)s (%(size)s) was not synced: the email is over the %(limit)s "
                            "limit.",
                            name=omitted.filename,
                            size=size,
                            limit=limit,
                        )
                    )
                else:
                    notes.append(
                        env._(
                            "The body of this email (%(size)s) was not synced: the email is over "
                            "the %(limit)s limit.",
                            size=size,
                            limit=limit,
                        )
                    )
            else:
                limit = f"{company.mail_sync_max_attachment_mb} MB"
                notes.append(
                    env._(
                        "%(name)s (%(size)s) was not synced: over the %(limit)s limit.",
                        name=omitted.filename or env._("An attachment"),
                        size=size,
                        limit=limit,
                    )
                )
        return notes

    @api.model
    def _record_isolated(self, mailbox, folder, items, own_addrs):
        """Record ``items`` like ``_record``; when that fails, retry in halves, each under a
        savepoint, until every good message is recorded and each message that still fails is
        isolated. Returns ``(counts, failures, savepoints)``: ``counts`` as ``_record``'s,
        ``failures`` message-level ``SyncError`` (kind ``record``) to skip. Failures of the
        transaction itself (a serialization failure, a lost connection) are raised, never
        blamed on a message."""
        # One entry per Message-ID before splitting (a copy in each half would collide in the
        # synced messages), its records those of every copy.
        pieces, failures = [merge_copies(items)], []
        recorded, savepoints = Counts(0, 0), 0
        while pieces:
            piece = pieces.pop()
            if not piece:
                continue
            savepoints += 1
            try:
                with self.env.cr.savepoint():
                    recorded += self._record(mailbox, folder, piece, own_addrs)
            except NOT_POISON:
                raise
            except Exception as exc:  # noqa: BLE001 - isolated below, then skipped and logged
                if len(piece) == 1:
                    header = piece[0][0]
                    _logger.info(
                        "Mail Sync: mailbox %s could not record UID %s of %s: %s: %s",
                        mailbox.id,
                        header.uid,
                        folder.name,
                        type(exc).__name__,
                        exc,
                    )
                    failures.append(
                        errors.SyncError(
                            "record",
                            f"{type(exc).__name__}: {exc}",
                            uid=header.uid,
                            folder=folder.name,
                            header=header,
                            retryable=False,
                        )
                    )
                    continue
                middle = len(piece) // 2
                pieces += [piece[middle:], piece[:middle]]  # the first half first
        return recorded, failures, savepoints

    @api.model
    def _without_removed(self, items):
        """``items`` without the records each email was removed from by hand: a removed
        (Message-ID, record) pair is never recorded again (``mail.sync.message.removal``)."""
        if not items:
            return items
        removed = (
            self.env["mail.sync.message.removal"]
            .sudo()
            ._removed({header.message_id for header, _parsed, _match in items})
        )
        if not removed:
            return items
        kept = []
        for header, parsed, match in items:
            mid = header.message_id
            leads = tuple(i for i in match.lead_ids if (mid, "crm.lead", i) not in removed)
            partners = tuple(i for i in match.partner_ids if (mid, "res.partner", i) not in removed)
            if leads != tuple(match.lead_ids) or partners != tuple(match.partner_ids):
                match = dataclasses.replace(match, lead_ids=leads, partner_ids=partners)
            kept.append((header, parsed, match))
        return kept

    def _record(self, mailbox, folder, items, own_addrs):
        """Record ``items`` (``(HeaderInfo, ParsedMessage, Match)``) of ``folder`` on their
        matched leads and contacts as chatter emails, without notifying anyone, and register
        their Message-IDs. Returns the ``Counts`` of what it recorded: emails (Message-IDs
        recorded, or recorded on more records) and chatter entries created.

        The stages, batched (ARCHITECTURE.md): plan (one query for what the records already
        hold: duplicates, threading parents) → attachments (one create) → messages (one create)
        → threading (one query, one UPDATE) → synced rows (one create).
        """
        unique = {item[0].message_id: item for item in merge_copies(items)}
        items = self._without_removed(list(unique.values()))
        if not items:
            return Counts(0, 0)
        items.sort(key=lambda item: (self._message_date(item[0], item[1]), item[0].uid))
        plan, on_record = self._record_plan(items)
        attachments_of = self._record_attachments(plan)
        messages, message_vals = self._record_messages(
            mailbox, folder, plan, attachments_of, on_record, own_addrs
        )
        crashpoint.reached("recorded_some", mailbox.id)
        self._record_threading(mailbox, plan, messages, message_vals, on_record)
        return self._record_synced_rows(mailbox, folder, unique, items, plan, messages, own_addrs)

    def _record_plan(self, items):
        """``(plan, on_record)``: the chatter entries to create, ``[(header, parsed, match,
        model, res_id)]``, one per matched record that does not hold the email yet; and what
        the matched records already hold, ``{(model, res_id, Message-ID): mail.message id}``
        (the same Message-ID, e.g. sent from Odoo, or a message one of the emails replies to)."""
        targets = {}  # message_id -> [(model, res_id)]
        for header, _parsed, match in items:
            targets[header.message_id] = [("crm.lead", i) for i in match.lead_ids] + [
                ("res.partner", i) for i in match.partner_ids
            ]
        wanted_ids = set(targets)
        for header, _parsed, _match in items:
            if header.in_reply_to:
                wanted_ids.add(header.in_reply_to)
            wanted_ids.update(header.references or ())
        record_ids = {"crm.lead": set(), "res.partner": set()}
        for pairs in targets.values():
            for model, res_id in pairs:
                record_ids[model].add(res_id)
        self.env["mail.message"].flush_model(["model", "res_id", "message_id"])
        rows = self.env.execute_query(
            SQL(
                """
            SELECT id, model, res_id, message_id FROM mail_message
             WHERE message_id = ANY(%(mids)s)
               AND ((model = 'crm.lead' AND res_id = ANY(%(leads)s))
                 OR (model = 'res.partner' AND res_id = ANY(%(partners)s)))
          ORDER BY id
        """,
                mids=list(wanted_ids),
                leads=list(record_ids["crm.lead"]),
                partners=list(record_ids["res.partner"]),
            )
        )
        on_record = {}
        for message_id, model, res_id, mid in rows:
            on_record.setdefault((model, res_id, mid), message_id)
        plan = [
            (header, parsed, match, model, res_id)
            for header, parsed, match in items
            for model, res_id in targets[header.message_id]
            if (model, res_id, header.message_id) not in on_record
        ]  # never twice
        return plan, on_record

    def _record_attachments(self, plan):
        """The attachments of the planned entries, one copy per record (res_model/res_id = the
        record, like the gateway), in one create: ``{plan index: [(attachment, record)]}``.
        Never decode an image (a decompression bomb is stored as its bytes, untouched), and
        never store an active type (HTML, SVG, scripts) as such: text/plain, like the gateway."""
        Attachment = (
            self.env["ir.attachment"]
            .sudo()
            .with_context(image_no_postprocess=True, attachments_mime_plainxml=True)
        )
        slots, vals_list = [], []
        for index, (_header, parsed, _match, model, res_id) in enumerate(plan):
            for attachment in parsed.attachments:
                slots.append((index, attachment))
                vals_list.append(
                    {
                        "name": attachment.filename or "attachment",
                        "raw": attachment.data,
                        "mimetype": attachment_mimetype(attachment.content_type),
                        "res_model": model,
                        "res_id": res_id,
                    }
                )
        records = Attachment.create(vals_list) if vals_list else Attachment
        attachments_of = {}
        for (index, attachment), record in zip(slots, records):
            attachments_of.setdefault(index, []).append((attachment, record))
        return attachments_of

    def _record_messages(self, mailbox, folder, plan, attachments_of, on_record, own_addrs):
        """The chatter entries of the plan, in one create, notifying nobody:
        ``(messages, their create values)``."""
        Message = (
            self.env["mail.message"]
            .sudo()
            .with_context(mail_create_nosubscribe=True, mail_notrack=True, tracking_disable=True)
        )
        batch = RecordingBatch(
            mailbox=mailbox,
            folder=folder,
            own_addrs=own_addrs,
            on_record=on_record,
            subtype_id=self.env["ir.model.data"]._xmlid_to_res_id("mail.mt_comment"),
            user_partner_id=mailbox.user_id.partner_id.id,
        )
        message_vals = [
            self._message_values(batch, entry, attachments_of.get(index, []))
            for index, entry in enumerate(plan)
        ]
        return (Message.create(message_vals) if message_vals else Message), message_vals

    def _record_threading(self, mailbox, plan, messages, message_vals, on_record):
        """Thread the new entries: a reply to a message recorded in this same batch, and the
        replies recorded earlier (another folder, an earlier batch) answering a message
        recorded now. One query, one UPDATE."""
        created = {}
        for (header, _p, _m, model, res_id), message in zip(plan, messages):
            created.setdefault((model, res_id, header.message_id), message.id)
        known = {**on_record, **created}
        parent_fix = []
        for (header, _p, _m, model, res_id), message, vals in zip(plan, messages, message_vals):
            parent = self._find_parent(header, model, res_id, known)
            if parent and parent != message.id and parent != vals.get("parent_id"):
                parent_fix.append((message.id, parent))
        if created:
            self.flush_model(["mailbox_id", "in_reply_to", "mail_message_ids"])
            rows = self.env.execute_query(
                SQL(
                    """
                SELECT mm.id, mm.model, mm.res_id, r.in_reply_to, mm.parent_id
                  FROM mail_sync_message r
                  JOIN mail_sync_message_mail_message_rel rel ON rel.sync_message_id = r.id
                  JOIN mail_message mm ON mm.id = rel.mail_message_id
                 WHERE r.mailbox_id = %s AND r.in_reply_to = ANY(%s)
            """,
                    mailbox.id,
                    list({key[2] for key in created}),
                )
            )
            for message_id, model, res_id, in_reply_to, parent_id in rows:
                parent = created.get((model, res_id, in_reply_to))
                if parent and parent != parent_id:
                    parent_fix.append((message_id, parent))
        if parent_fix:
            self.env.cr.execute(
                SQL(
                    "UPDATE mail_message m SET parent_id = v.parent_id "
                    "FROM (VALUES %s) AS v(id, parent_id) WHERE m.id = v.id",
                    SQL(", ").join(SQL("(%s, %s)", child, parent) for child, parent in parent_fix),
                )
            )
            self.env["mail.message"].invalidate_model(["parent_id", "child_ids"])

    def _record_synced_rows(self, mailbox, folder, unique, items, plan, messages, own_addrs):
        """The synced-message rows, linked to the chatter entries they created. A Message-ID this
        mailbox recorded before (a copy with more recipients) keeps its row and gains the
        entries and the addresses. Returns the ``Counts``."""
        messages_of = {}
        for (header, _p, _m, _model, _res_id), message in zip(plan, messages):
            messages_of.setdefault(header.message_id, []).append(message.id)
        existing = {
            row.message_id: row
            for row in self.sudo().search(
                [("mailbox_id", "=", mailbox.id), ("message_id", "in", list(unique))]
            )
        }
        for message_id, row in existing.items():
            vals = {}
            if messages_of.get(message_id):
                vals["mail_message_ids"] = [(4, mid) for mid in messages_of[message_id]]
            if row.addresses:
                seen = set(row.addresses.split())
                if not set(unique[message_id][2].addresses) <= seen:
                    vals["addresses"] = address_lines(seen | set(unique[message_id][2].addresses))
            if vals:
                row.write(vals)
        self.sudo().create(
            [
                {
                    "mailbox_id": mailbox.id,
                    "folder_id": folder.id,
                    "uid": header.uid,
                    "message_id": header.message_id,
                    "direction": self._direction(folder, header, own_addrs),
                    "date": self._message_date(header, parsed),
                    "subject": (header.subject or parsed.subject or "")[:500],
                    "in_reply_to": header.in_reply_to or False,
                    "mail_message_ids": [(6, 0, messages_of.get(header.message_id, []))],
                    "addresses": address_lines(match.addresses),
                }
                for header, parsed, match in items
                if header.message_id not in existing
            ]
        )
        emails = len([mid for mid in unique if mid not in existing or messages_of.get(mid)])
        return Counts(emails, len(messages))

    # ------------------------------------------------------------------ helpers
    @api.model
    def _message_date(self, header, parsed):
        """The date a mail client shows: the Date header, else the server's INTERNALDATE, else
        the newest Received header's date — each only when plausible (not before 1990, not
        more than a day ahead); else now."""
        now = fields.Datetime.now()
        for candidate in (header.date or parsed.date, header.internal_date, parsed.received_date):
            value = naive_utc(candidate)
            if value and EARLIEST_DATE <= value <= now + datetime.timedelta(days=1):
                return value
        return now

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
    def _message_values(self, batch, entry, attachments):
        """The ``mail.message`` values of one planned ``entry`` (header, parsed, match, model,
        res_id) of a recording ``batch``, with its ``attachments`` [(attachment, record)]."""
        header, parsed, match, model, res_id = entry
        mailbox, own_addrs = batch.mailbox, batch.own_addrs
        direction = self._direction(batch.folder, header, own_addrs)
        from_addr = (
            (header.from_addrs or (parsed.from_addr,))[0]
            if (header.from_addrs or parsed.from_addr)
            else None
        )
        if direction == "sent" and (not from_addr or from_addr in own_addrs):
            author_id = batch.user_partner_id
        else:
            author_id = match.authors.get(from_addr, False) if from_addr else False
        body = self._body(parsed, mailbox)
        if attachments and body:
            by_cid = {a.content_id.strip("<>"): rec.id for a, rec in attachments if a.content_id}
            if by_cid:
                body = Markup(
                    _CID_RE.sub(
                        lambda m: (
                            f"{m.group(1)}/web/image/{by_cid[m.group(2)]}{m.group(1)}"
                            if m.group(2) in by_cid
                            else m.group(0)
                        ),
                        str(body),
                    )
                )
        email_from = parsed.from_display or from_addr or False
        return {
            "model": model,
            "res_id": res_id,
            "record_name": match.record_names.get((model, res_id), False),
            "message_type": "email",
            "subtype_id": batch.subtype_id,
            "is_internal": True,
            "body": body,
            "subject": header.subject or parsed.subject or False,
            "date": self._message_date(header, parsed),
            "email_from": email_from,
            "reply_to": email_from,
            "author_id": author_id,
            "message_id": header.message_id,
            "parent_id": self._find_parent(header, model, res_id, batch.on_record),
            "attachment_ids": [(6, 0, [rec.id for _a, rec in attachments])],
            "mail_sync_mailbox_id": mailbox.id,
            "mail_sync_direction": direction,
            "mail_sync_participants": self._participants(email_from, header, parsed),
            # The Date header as written, when the chatter's date is not it.
            "mail_sync_date_header": parsed.date_header
            if parsed.date_header
            and (naive_utc(header.date or parsed.date) != self._message_date(header, parsed))
            else False,
        }

    @api.model
    def _participants(self, email_from, header, parsed):
        """ "From …; To …; Cc …" (what is shared of an email that is not shared whole)."""
        parts = [f"From: {email_from or '?'}"]
        for label, addrs in (
            ("To", header.to_addrs or parsed.to_addrs),
            ("Cc", header.cc_addrs or parsed.cc_addrs),
        ):
            if addrs:
                parts.append(f"{label}: {', '.join(addrs)}")
        return "; ".join(parts)[:2000]
