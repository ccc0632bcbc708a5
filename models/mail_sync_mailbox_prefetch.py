# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Idle-poll cost: what a sync reads besides the mailbox row, in one query for a whole batch.

A sync where nothing changed used to cost ten queries per mailbox, most of them the ORM reading
the owner (user, then partner), the company (daily cap), the password (search, then read) and
the folder cursors (search, then read) one mailbox at a time. ``_fetch_sync_facts`` reads all of
that for many mailboxes in one query; the outermost ``_sync`` puts this mailbox's facts in the
context (``mail_sync_facts``) for the length of the run, where ``_own_addresses``,
``_mail_config``, ``_folder_states``, ``_folder_record``, ``_tz`` and the daily cap take them.

With ``mail_sync_auto_commit`` (the cron: a commit per mailbox) the facts of every mailbox of the
record set's prefetch set (the claimed batch) are read at the first sync and kept on the cursor
(``cr.cache``, which commits do not clear) until each one's turn. A kept entry is used only if
the mailbox row's ``write_date`` is still the one read with it: every change of the password,
the owner, the folders (connect, disconnect) or of the sync outcome writes the mailbox row.
Without auto-commit (tests, buttons) only this mailbox is read, at the start of its run.
"""
import json

from odoo import models

from .res_company import limits_from

# At most this many mailboxes' facts per query (the cron claims 20 by default).
PREFETCH_LIMIT = 100
STORE_KEY = "mail_sync_prefetch"


class SyncFacts:
    """What one sync of one mailbox needs besides the mailbox row (plain values, no records)."""

    __slots__ = ("mailbox_id", "write_date", "owner_email", "tz", "daily_cap", "password_token",
                 "folders", "limits", "inflight", "suspects")

    def __init__(self, mailbox_id, write_date, owner_email, tz, daily_cap, password_token,
                 folders, limits=None, inflight=None, suspects=None):
        self.mailbox_id = mailbox_id
        self.write_date = write_date
        self.owner_email = owner_email
        self.tz = tz
        self.daily_cap = daily_cap or 0
        self.password_token = password_token
        # [(id, name, role, uidvalidity, last_uid)] by id
        self.folders = folders
        self.limits = limits  # mailsync.types.Limits of the company
        self.inflight = inflight  # crash safety: mail.sync.mailbox.sync_inflight
        self.suspects = suspects  # and sync_suspects

    def __repr__(self):  # never the token
        return f"SyncFacts(mailbox={self.mailbox_id}, folders={len(self.folders)})"


class MailSyncMailbox(models.Model):
    _inherit = "mail.sync.mailbox"

    def _fetch_sync_facts(self, ids):
        """``{mailbox id: SyncFacts}`` of ``ids``, in one query."""
        self.env["mail.sync.folder"].flush_model()
        self.env["mail.sync.credential"].flush_model()
        self.env["res.partner"].flush_model(["email", "tz"])
        self.env["res.users"].flush_model(["partner_id"])
        self.env["res.company"].flush_model(["mail_sync_daily_cap", "mail_sync_max_attachment_mb",
                                             "mail_sync_max_message_mb", "mail_sync_max_parts"])
        self.flush_model(["user_id", "company_id", "sync_inflight", "sync_suspects"])
        self.env.cr.execute("""
            SELECT m.id, m.write_date, p.email, p.tz, c.mail_sync_daily_cap, cred.token,
                   (SELECT json_agg(json_build_array(f.id, f.name, f.role, f.uidvalidity,
                                                     f.last_uid) ORDER BY f.id)
                      FROM mail_sync_folder f WHERE f.mailbox_id = m.id),
                   c.mail_sync_max_attachment_mb, c.mail_sync_max_message_mb,
                   c.mail_sync_max_parts, m.sync_inflight, m.sync_suspects
              FROM mail_sync_mailbox m
              JOIN res_users u ON u.id = m.user_id
              JOIN res_partner p ON p.id = u.partner_id
              JOIN res_company c ON c.id = m.company_id
         LEFT JOIN mail_sync_credential cred ON cred.mailbox_id = m.id AND cred.kind = 'password'
             WHERE m.id = ANY(%s)
        """, [list(ids)])
        facts = {}
        for (mailbox_id, write_date, email, tz, cap, token, folders, attachment_mb, message_mb,
             parts, inflight, suspects) in self.env.cr.fetchall():
            if isinstance(folders, str):
                folders = json.loads(folders)
            facts[mailbox_id] = SyncFacts(
                mailbox_id, write_date, email, tz, cap, token,
                [tuple(row) for row in (folders or [])],
                limits=limits_from(attachment_mb, message_mb, parts),
                inflight=inflight, suspects=suspects)
        return facts

    def _sync_facts(self):
        """This mailbox's SyncFacts for the run that starts (see the module docstring)."""
        self.ensure_one()
        auto_commit = self.env.context.get("mail_sync_auto_commit", False)
        store = self.env.cr.cache.setdefault(STORE_KEY, {})
        facts = store.pop(self.id, None)
        if facts is not None and (not auto_commit or facts.write_date != self.write_date):
            facts = None  # something wrote the mailbox since: read again
        if facts is None:
            ids = [self.id]
            if auto_commit:
                ids += [i for i in self._prefetch_ids
                        if isinstance(i, int) and i != self.id and i not in store
                        ][:PREFETCH_LIMIT - 1]
            fetched = self._fetch_sync_facts(ids)
            facts = fetched.pop(self.id, None)
            if auto_commit:
                store.update(fetched)
        return facts

    def _sync(self, raise_on_error=False, deadline=None):
        current = self.env.context.get("mail_sync_facts")
        if (current is not None and current.mailbox_id == self.id) or not self.id:
            return super()._sync(raise_on_error=raise_on_error, deadline=deadline)
        facts = self._sync_facts()
        if facts is None:
            return super()._sync(raise_on_error=raise_on_error, deadline=deadline)
        return super(MailSyncMailbox, self.with_context(mail_sync_facts=facts))._sync(
            raise_on_error=raise_on_error, deadline=deadline)
