# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Dry run: "N emails from the last X days would be recorded on these leads", from headers only.

Reads the mailbox with the sync's own read loop (EXAMINE, UID SEARCH SINCE, header fetch) and
asks the same matcher, with the same never-log list and auto-reply filter — but fetches no
body, records nothing, creates no lead and writes no cursor. Then "Enable" tests the connection
and enables.
"""

from collections import Counter
from datetime import timedelta

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..mailsync import errors, sync
from ..mailsync.session import ImapSession
from ..models.sync_run import SyncPolicy

BATCH = 500


def _note_targets(targets, match):
    """Add the leads and contacts of ``match`` (the matcher's answer) to ``targets``."""
    targets.update(("crm.lead", res_id) for res_id in match.lead_ids)
    targets.update(("res.partner", res_id) for res_id in match.partner_ids)


class MailSyncDryRun(models.TransientModel):
    _name = "mail.sync.dry.run"
    _description = "Mail Sync: dry run"

    mailbox_id = fields.Many2one("mail.sync.mailbox", required=True, ondelete="cascade")
    mailbox_state = fields.Selection(related="mailbox_id.state")
    days = fields.Integer("Last days", default=30, required=True)
    done = fields.Boolean(readonly=True)
    scanned_count = fields.Integer("Emails read", readonly=True)
    email_count = fields.Integer("Emails that would be recorded", readonly=True)
    skipped_auto_count = fields.Integer("Auto-replies and bulk mail skipped", readonly=True)
    skipped_private_count = fields.Integer("Never-log (private) mail skipped", readonly=True)
    line_ids = fields.One2many("mail.sync.dry.run.line", "wizard_id", readonly=True)
    summary = fields.Char(compute="_compute_summary")

    @api.depends("done", "email_count", "days", "line_ids")
    def _compute_summary(self):
        for wizard in self:
            if not wizard.done:
                wizard.summary = False
                continue
            wizard.summary = _(
                "%(count)s emails from the last %(days)s days would be recorded on these "
                "%(records)s leads and contacts.",
                count=wizard.email_count,
                days=wizard.days,
                records=len(wizard.line_ids),
            )

    @api.model_create_multi
    def create(self, vals_list):
        """A dry run reads a mailbox's mail: its owner's only."""
        for vals in vals_list:
            mailbox = self.env["mail.sync.mailbox"].browse(
                vals.get("mailbox_id")
                or self.env.context.get("default_mailbox_id")
                or self.env.context.get("active_id")
            )
            mailbox._check_owner_access()
        return super().create(vals_list)

    @api.model
    def default_get(self, fields_list):
        res = super().default_get(fields_list)
        mailbox = self.env["mail.sync.mailbox"].browse(
            res.get("mailbox_id") or self.env.context.get("active_id")
        )
        if mailbox.exists():
            res.setdefault("mailbox_id", mailbox.id)
            if "days" in fields_list and mailbox.sync_days:
                res["days"] = mailbox.sync_days
        return res

    def action_run(self):
        self.ensure_one()
        mailbox = self.mailbox_id
        mailbox._check_owner_access()
        if self.days <= 0:
            raise UserError(_("Choose how many days back to look."))
        try:
            result = self._scan(mailbox.sudo(), self.days)
        except errors.SyncError as exc:
            raise UserError(
                mailbox._user_error(errors.classify(exc, provider=mailbox.provider))
            ) from None
        self.line_ids.unlink()
        self.write(
            {
                "done": True,
                "scanned_count": result["scanned"],
                "email_count": result["count"],
                "skipped_auto_count": result["auto"],
                "skipped_private_count": result["excluded"],
                "line_ids": [(0, 0, vals) for vals in result["lines"]],
            }
        )
        return self._reopen()

    def action_enable(self):
        self.ensure_one()
        return self.mailbox_id.action_test_connection()

    def _reopen(self):
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
            "name": _("Mail Sync dry run"),
        }

    @api.model
    def _scan(self, mailbox, days):
        """``{count, scanned, auto, excluded, lines}`` for the last ``days`` of ``mailbox``."""
        policy = SyncPolicy(mailbox, index=False, create_leads=False)
        by_message, scanned = self._match_headers(mailbox, days, policy)
        per_record = Counter(t for targets in by_message.values() for t in targets)
        counters = policy.rules().counters
        return {
            "count": len(by_message),
            "scanned": len(scanned),
            "auto": counters["auto"],
            "excluded": counters["excluded"],
            "lines": self._lines(per_record),
        }

    @api.model
    def _match_headers(self, mailbox, days, policy):
        """``({Message-ID: {(model, id)}}, {Message-ID})``: the leads and contacts the sync's
        matcher (with ``policy``) names for each message of the last ``days``, and
        every message read. The sync's read loop, headers only: no body is fetched."""
        own = mailbox._own_addresses()
        Matcher = self.env["mail.sync.matcher"]
        since = fields.Datetime.now() - timedelta(days=days)
        by_message, scanned = {}, set()

        def match(headers):
            scanned.update(h.message_id for h in headers)
            matches = Matcher._match(mailbox, headers, own, policy) or {}
            for header in headers:
                if header.uid in matches:
                    _note_targets(
                        by_message.setdefault(header.message_id, set()), matches[header.uid]
                    )
            return matches

        with ImapSession(mailbox._mail_config()) as session:
            for folder in session.discover_folders():
                session.examine(folder.name)
                sync.read_uids(
                    session,
                    folder,
                    session.uids_since(since),
                    matcher=match,
                    batch_size=BATCH,
                    bodies=False,
                )
        return by_message, scanned

    @api.model
    def _lines(self, per_record):
        """The wizard's lines of ``per_record`` (``Counter`` of ``(model, id)``), most emails
        first. Records are named with the caller's rights: one line counts those they cannot
        read."""
        readable = {
            model: set(
                self.env[model]
                .browse([res_id for m, res_id in per_record if m == model])
                ._filtered_access("read")
                .ids
            )
            for model in ("crm.lead", "res.partner")
        }
        lines, hidden_records, hidden_count = [], 0, 0
        for (model, res_id), count in per_record.most_common():
            if res_id not in readable[model]:
                hidden_records += 1
                hidden_count += count
                continue
            lines.append(
                {
                    "lead_id": res_id if model == "crm.lead" else False,
                    "partner_id": res_id if model == "res.partner" else False,
                    "count": count,
                }
            )
        if hidden_records:
            lines.append(
                {
                    "name": _("1 record you cannot see")
                    if hidden_records == 1
                    else _("%s records you cannot see", hidden_records),
                    "count": hidden_count,
                }
            )
        return lines


class MailSyncDryRunLine(models.TransientModel):
    _name = "mail.sync.dry.run.line"
    _description = "Mail Sync: dry run, per record"
    _order = "count desc, id"

    wizard_id = fields.Many2one("mail.sync.dry.run", required=True, ondelete="cascade")
    name = fields.Char(
        "Records", readonly=True, help="Set for the line that counts the records you cannot see."
    )
    lead_id = fields.Many2one("crm.lead", readonly=True)
    partner_id = fields.Many2one("res.partner", string="Contact", readonly=True)
    count = fields.Integer("Emails", readonly=True)
