# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Which CRM records a batch of message headers concerns.

For one batch of ``HeaderInfo`` the matcher runs a fixed number of queries, whatever the batch
size: the synced messages (Message-IDs this mailbox already recorded), the leads and the
contacts whose normalised address appears in From, To or Cc. Decisions:

- the mailbox owner's own addresses never match;
- leads: active ones only (lost leads are archived in Odoo 18 and get no new history), of the
  mailbox's company or of no company; matched by the lead's own address or its contact's;
- contacts: active partners of the mailbox's company or of no company; partners of internal
  users (colleagues) are not "contacts" and are never recorded on, but may be the author.
"""

from dataclasses import dataclass, field

import logging

from odoo import _, api, models
from odoo.tools import SQL

from ..mailsync import errors
from .mail_sync_message import NOT_POISON

_logger = logging.getLogger(__name__)


@dataclass
class Match:
    """What one message is recorded on."""

    lead_ids: tuple = ()
    partner_ids: tuple = ()
    # normalised address -> partner id, for the author (includes colleagues)
    authors: dict = field(default_factory=dict)
    record_names: dict = field(default_factory=dict)  # (model, id) -> name
    # the normalised addresses the message names, the mailbox's own left out (the synced message
    # keeps them: a later copy is wanted only for the records of addresses not seen before)
    addresses: tuple = ()


def address_variants(address):
    """The forms an address may take in Odoo's ``email_normalized``: the engine gives IDNA
    (punycode) domains, Odoo keeps the domain as typed (lower-cased)."""
    variants = {address}
    local, _sep, domain = address.rpartition("@")
    if "xn--" in domain:
        try:
            variants.add(f"{local}@{domain.encode('ascii').decode('idna')}")
        except UnicodeError:
            pass
    return variants


class MailSyncMatcher(models.AbstractModel):
    _name = "mail.sync.matcher"
    _description = "Mail Sync matcher (addresses to CRM records)"

    @api.model
    def _known_message_ids(self, mailbox, message_ids):
        """``{Message-ID: addresses seen (a set, or None: every address)}`` for those of
        ``message_ids`` this mailbox recorded."""
        if not message_ids:
            return {}
        self.env["mail.sync.message"].flush_model(["mailbox_id", "message_id", "addresses"])
        self.env.cr.execute(
            SQL(
                "SELECT message_id, addresses FROM mail_sync_message WHERE mailbox_id = %s "
                "AND message_id = ANY(%s)",
                mailbox.id,
                list(message_ids),
            )
        )
        return {
            mid: set(addresses.split()) if addresses else None
            for mid, addresses in self.env.cr.fetchall()
        }

    @api.model
    def _records_holding(self, message_ids):
        """``{Message-ID: {(model, res_id)}}``: the leads and contacts that already hold (or
        removed) each of ``message_ids``. One query (none without ids)."""
        if not message_ids:
            return {}
        self.env["mail.message"].flush_model(["model", "res_id", "message_id"])
        self.env["mail.sync.message.removal"].flush_model(["message_id", "model", "res_id"])
        ids = list(message_ids)
        self.env.cr.execute(
            SQL(
                """
            SELECT message_id, model, res_id FROM mail_message
             WHERE message_id = ANY(%s) AND model IN ('crm.lead', 'res.partner')
             UNION
            SELECT message_id, model, res_id FROM mail_sync_message_removal
             WHERE message_id = ANY(%s)
        """,
                ids,
                ids,
            )
        )
        holding = {}
        for message_id, model, res_id in self.env.cr.fetchall():
            holding.setdefault(message_id, set()).add((model, res_id))
        return holding

    @api.model
    def _find_records(self, mailbox, addrs):
        """``(leads, partners, names)`` for the normalised ``addrs`` (keys in the engine's form):
        ``{address: {lead_id}}``, ``{address: [(partner_id, is_contact)]}`` and
        ``{(model, id): name}``."""
        variant_of = {}
        for addr in addrs:
            for variant in address_variants(addr):
                variant_of[variant] = addr
        keys = list(variant_of)
        company_id = mailbox.company_id.id
        self.env["crm.lead"].flush_model(
            ["email_normalized", "partner_id", "active", "company_id", "name"]
        )
        self.env["res.partner"].flush_model(
            ["email_normalized", "active", "company_id", "complete_name"]
        )
        self.env["res.users"].flush_model(["partner_id", "share", "active"])
        self.env.cr.execute(
            SQL(
                """
            SELECT l.id, l.name, l.email_normalized
              FROM crm_lead l
             WHERE l.email_normalized = ANY(%(addrs)s) AND l.active
               AND (l.company_id IS NULL OR l.company_id = %(company)s)
             UNION
            SELECT l.id, l.name, p.email_normalized
              FROM crm_lead l
              JOIN res_partner p ON p.id = l.partner_id
             WHERE p.email_normalized = ANY(%(addrs)s) AND l.active
               AND (l.company_id IS NULL OR l.company_id = %(company)s)
        """,
                addrs=keys,
                company=company_id,
            )
        )
        leads, names = {}, {}
        for lead_id, name, email in self.env.cr.fetchall():
            leads.setdefault(variant_of[email], set()).add(lead_id)
            names[("crm.lead", lead_id)] = name
        self.env.cr.execute(
            SQL(
                """
            SELECT p.id, p.complete_name, p.email_normalized,
                   EXISTS(SELECT 1 FROM res_users u
                           WHERE u.partner_id = p.id AND NOT u.share) AS colleague
              FROM res_partner p
             WHERE p.email_normalized = ANY(%(addrs)s) AND p.active
               AND (p.company_id IS NULL OR p.company_id = %(company)s)
          ORDER BY p.id
        """,
                addrs=keys,
                company=company_id,
            )
        )
        partners = {}
        for partner_id, name, email, colleague in self.env.cr.fetchall():
            partners.setdefault(variant_of[email], []).append((partner_id, not colleague))
            names[("res.partner", partner_id)] = name
        return leads, partners, names

    @api.model
    def _match(self, mailbox, headers, own_addrs, policy=None):
        """``{uid: Match}`` for the headers that concern at least one lead or contact and whose
        Message-ID this mailbox has not recorded yet (only those bodies get downloaded).

        With ``policy`` (a ``SyncPolicy``: a sync, a dry run, a late link) the never-log list and
        the auto-reply filter come first (dropped before any lookup); what matches no record is
        kept for late linking (``policy.pending``) or creates a lead (the mailbox's opt-in)."""
        if policy is None or not headers:
            return self._match_records(mailbox, headers, own_addrs)
        rules = policy.rules()
        kept = [h for h in headers if not rules.skip(h, own_addrs)]
        result = self._match_records(mailbox, kept, own_addrs, policy) if kept else {}
        unmatched = [h for h in kept if h.uid not in result and h.message_id not in policy.known]
        if unmatched and policy.create_leads:
            candidates = unmatched
            if policy.quota is not None:
                # The daily cap records the first ``quota`` wanted messages (by UID): no lead
                # for a message that will wait for tomorrow.
                room = max(policy.quota, 0)
                first = set(sorted(list(result) + [h.uid for h in unmatched])[:room])
                candidates = [h for h in unmatched if h.uid in first]
            if candidates:
                result.update(self._new_leads(mailbox, candidates, own_addrs, policy))
            unmatched = [h for h in unmatched if h.uid not in result]
        if unmatched and policy.index:
            for header in unmatched:
                policy.pending.setdefault(header.folder, []).append(header)
        return result

    @api.model
    def _match_records(self, mailbox, headers, own_addrs, policy=None):
        """The lookup of ``_match``: the records the headers' addresses name."""
        if not headers:
            return {}
        known = self._known_message_ids(mailbox, {h.message_id for h in headers})
        if policy is not None:
            policy.known |= set(known)
        addrs = {a for h in headers for a in h.all_addrs if a} - set(own_addrs)
        if not addrs:
            return {}
        leads, partners, names = self._find_records(mailbox, addrs)
        # A Message-ID already recorded is wanted again only for the records of addresses its
        # earlier copies did not name (a copy Cc'd to more people, a Bcc copy in another
        # folder), and only where it is not yet: nothing is fetched for a replay or a plain
        # second copy, and a chatter entry someone deleted does not come back.
        holding = self._records_holding([mid for mid, seen in known.items() if seen is not None])
        result = {}
        for header in headers:
            involved = [a for a in dict.fromkeys(header.all_addrs) if a and a not in own_addrs]
            linking = involved
            if header.message_id in known:
                seen = known[header.message_id]
                linking = [a for a in involved if seen is not None and a not in seen]
            lead_ids = sorted({lid for a in linking for lid in leads.get(a, ())})
            partner_ids = sorted(
                {pid for a in linking for pid, contact in partners.get(a, ()) if contact}
            )
            if header.message_id in known:
                held = holding.get(header.message_id, set())
                lead_ids = [i for i in lead_ids if ("crm.lead", i) not in held]
                partner_ids = [i for i in partner_ids if ("res.partner", i) not in held]
            if not lead_ids and not partner_ids:
                continue
            authors = {a: partners[a][0][0] for a in header.from_addrs if a in partners}
            result[header.uid] = Match(
                lead_ids=tuple(lead_ids),
                partner_ids=tuple(partner_ids),
                authors=authors,
                record_names={
                    key: names[key]
                    for key in [("crm.lead", i) for i in lead_ids]
                    + [("res.partner", i) for i in partner_ids]
                },
                addresses=tuple(involved),
            )
        return result

    @api.model
    def _new_leads(self, mailbox, headers, own_addrs, policy):
        """``{uid: Match}`` on leads created for received mail whose sender is unknown: no lead
        (even archived), no contact and no colleague has that address. A lead that cannot be
        created (each one under a savepoint) makes its messages skipped (``policy.errors``);
        the other senders go on."""
        rules = policy.rules()
        candidates = {}
        for header in headers:
            sender = next((a for a in header.from_addrs if a), None)
            if not sender or sender in own_addrs or rules.excluded(sender):
                continue
            candidates.setdefault(sender, []).append(header)
        if not candidates:
            return {}
        variants = {
            variant: sender for sender in candidates for variant in address_variants(sender)
        }
        self.env["crm.lead"].flush_model(["email_normalized"])
        self.env["res.partner"].flush_model(["email_normalized"])
        self.env.cr.execute(
            SQL(
                """
            SELECT email_normalized FROM crm_lead WHERE email_normalized = ANY(%(a)s)
             UNION
            SELECT email_normalized FROM res_partner WHERE email_normalized = ANY(%(a)s)
        """,
                a=list(variants),
            )
        )
        taken = {variants[row[0]] for row in self.env.cr.fetchall()}
        result = {}
        Lead = (
            self.env["crm.lead"]
            .sudo()
            .with_context(
                tracking_disable=True,
                mail_create_nolog=True,
                mail_create_nosubscribe=True,
                mail_notrack=True,
            )
        )
        for sender, sender_headers in candidates.items():
            if sender in taken:
                continue
            sender_headers.sort(key=lambda h: h.uid)
            first = sender_headers[0]
            try:
                with self.env.cr.savepoint():
                    lead = Lead.create(
                        {
                            "name": first.subject or _("Email from %s", sender),
                            "email_from": sender,
                            "user_id": mailbox.user_id.id,
                            "company_id": mailbox.company_id.id,
                            "type": "lead"
                            if self.env.user.has_group("crm.group_use_lead")
                            else "opportunity",
                            "description": _(
                                "Created by Mail Sync from mail received by %s.", mailbox.email
                            ),
                        }
                    )
            except NOT_POISON:
                raise
            except Exception as exc:  # noqa: BLE001 - this sender's mail is skipped, not the rest
                _logger.info(
                    "Mail Sync: mailbox %s could not create a lead for %s: %s",
                    mailbox.id,
                    sender,
                    exc,
                )
                policy.errors.extend(
                    errors.SyncError(
                        "record",
                        f"a lead could not be created for {sender}: {type(exc).__name__}: {exc}",
                        uid=header.uid,
                        folder=header.folder,
                        header=header,
                        retryable=False,
                    )
                    for header in sender_headers
                )
                continue
            _logger.info(
                "Mail Sync: mailbox %s created lead %s for a new sender", mailbox.id, lead.id
            )
            for header in sender_headers:
                match = Match(
                    lead_ids=(lead.id,),
                    partner_ids=(),
                    authors={},
                    record_names={("crm.lead", lead.id): lead.name},
                    addresses=tuple(
                        a for a in dict.fromkeys(header.all_addrs) if a and a not in own_addrs
                    ),
                )
                result[header.uid] = match
        return result
