# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The Mail Sync error log: when, what went wrong (server words, secrets removed), how to fix.

Repeats of the same error (same mailbox, kind and message within 24 hours) are counted on one
line instead of flooding the log; entries older than 90 days are vacuumed.

Summary and fix are stored as the engine wrote them, in English (repeats are found by comparing
them); they are read in the reader's language (``read``, ``_translated``).
"""

from datetime import timedelta

from odoo import api, fields, models

from ..mailsync import errors

REPEAT_WINDOW = timedelta(hours=24)
RETENTION = timedelta(days=90)


class MailSyncLog(models.Model):
    _name = "mail.sync.log"
    _description = "Mail Sync error log"
    _order = "date desc, id desc"
    _rec_name = "summary"

    date = fields.Datetime(required=True, default=fields.Datetime.now, index=True, readonly=True)
    mailbox_id = fields.Many2one("mail.sync.mailbox", index=True, ondelete="cascade", readonly=True)
    user_id = fields.Many2one(related="mailbox_id.user_id", store=True, string="User")
    company_id = fields.Many2one(related="mailbox_id.company_id", store=True)
    kind = fields.Selection(
        [(kind, kind.replace("_", " ").capitalize()) for kind in errors.KINDS],
        required=True,
        readonly=True,
    )
    summary = fields.Char("Error", readonly=True)
    message = fields.Text("Server message", readonly=True)
    fix = fields.Text("How to fix it", readonly=True)
    count = fields.Integer(default=1, readonly=True)

    # ------------------------------------------------------------------ translation
    @api.model
    def _translated(self, text):
        """``text`` — messages and fixes of the engine's catalogue (``mailsync.errors``), in
        English as stored — in the environment's language; a server's words stay as they are.

        The catalogue's texts are marked with ``_lt`` in mailsync/errors.py, so they are in the
        addon's .pot and .po files. ``env._`` looks a text up in the .po files of the module of
        the function that calls it (``get_translated_module``: the caller's ``__name__``): the
        lambda below lives in ``odoo.addons.crm_mail_sync.models``, so crm_mail_sync's."""
        if not text or (self.env.lang or "en_US") == "en_US":
            return text
        return errors.translate(text, lambda source: self.env._(source))

    @api.model
    def _translate_read(self, result, names):
        """``result`` of a ``read`` with the fields ``names`` (engine texts stored in English)
        in the reader's language. Returns ``result``."""
        if (self.env.lang or "en_US") != "en_US":
            for values in result:
                for name in names:
                    if values.get(name):
                        values[name] = self._translated(values[name])
        return result

    def read(self, fields=None, load="_classic_read"):
        """Every read (list, form, the mailbox's error lines, the API) shows summary and fix
        in the reader's language; the rows keep the engine's English."""
        return self._translate_read(super().read(fields, load), ("summary", "fix"))

    @api.depends("summary")
    @api.depends_context("lang")
    def _compute_display_name(self):
        for line in self:
            line.display_name = self._translated(line.summary) or ""

    # ------------------------------------------------------------------ logging
    @api.model
    def _log(self, mailbox, sync_error, secrets=None):
        """Log ``sync_error`` (a SyncError) for ``mailbox``; a repeat updates the same line.

        ``secrets``: the mailbox's clear secrets when the caller holds them (a sync has its
        MailboxConfig); else they are read and decrypted here, once, and only when the error
        carries words of a server or library (``detail``). Without them the summary is one of
        our own sentences (host, port, folder): no secret to remove, nothing decrypted."""
        return self._write_line(
            mailbox,
            sync_error.kind,
            str(sync_error),
            sync_error.detail or "",
            secrets,
            same_message=True,
        )

    @api.model
    def _log_skipped(self, mailbox, sync_error, skipped, secrets=None):
        """The error-log line of a skipped message: what went wrong in one sentence, how to fix
        it, and which message (folder, UID, date, sender, subject, secrets removed). Messages
        skipped for the same reason within 24 hours are counted on one line (the table of
        skipped messages lists each; the line names the latest)."""
        detail = " — ".join(filter(None, [skipped._where(), sync_error.detail]))
        return self._write_line(
            mailbox, sync_error.kind, sync_error.summary, detail, secrets, same_message=False
        )

    @api.model
    def _write_line(self, mailbox, kind, summary, message, secrets, same_message):
        """Create the line, or count a repeat on the line of the last 24 hours with the same
        kind and summary (and message, when ``same_message``; else the message is updated)."""
        if secrets is None and message:
            secrets = mailbox._secrets()
        if secrets:
            summary = errors.redact(summary, secrets)
            message = errors.redact(message, secrets)
        now = fields.Datetime.now()
        domain = [
            ("mailbox_id", "=", mailbox.id),
            ("kind", "=", kind),
            ("summary", "=", summary),
            ("date", ">=", now - REPEAT_WINDOW),
        ]
        if same_message:
            domain.append(("message", "=", message or False))
        existing = self.sudo().search(domain, limit=1, order="date desc")
        if existing:
            vals = {"count": existing.count + 1, "date": now}
            if not same_message:
                vals["message"] = message or False
            existing.write(vals)
            return existing
        return self.sudo().create(
            {
                "date": now,
                "mailbox_id": mailbox.id,
                "kind": kind,
                "summary": summary,
                "message": message or False,
                "fix": errors.fix_for(kind, mailbox.provider),
            }
        )

    @api.autovacuum
    def _gc_old_entries(self):
        self.sudo().search([("date", "<", fields.Datetime.now() - RETENTION)]).unlink()
