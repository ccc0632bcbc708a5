# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Never-log lists, the auto-reply / bulk filter, and new leads from new contacts (opt-in).

- ``mail.sync.exclusion``: addresses and domains whose mail is never synced, for a whole company
  (no user) or one user. The company's own domains (its email and website, its users' and
  mailboxes' addresses; public providers such as gmail.com never count) are excluded too unless
  the company turns that off. A message is private — never synced — when every party other than
  the mailbox owner is excluded.
- Auto-replies and bulk mail (``Auto-Submitted``, ``Precedence: bulk/list/junk``, ``List-Id``,
  out-of-office subjects, junk flags) are not synced unless the company turns the filter off.
- A mailbox may opt in to ``mail_sync_create_leads``: received mail from an address that is no
  lead, contact or colleague creates a lead — after the filters above.

All of it is applied in the matcher, before any body is downloaded. The policy is built lazily
(first batch with new headers), so the idle poll of a mailbox with nothing new costs no query.
"""
import logging
import re
from urllib.parse import urlparse

from odoo import _, api, fields, models, tools
from odoo.exceptions import ValidationError

from ..mailsync import addresses, errors
from ..mailsync.privacy import Policy, domain_of, is_shared_domain
from .mail_sync_matcher import Match
from .mail_sync_message import NOT_POISON

_logger = logging.getLogger(__name__)

# A mailbox whose connection test succeeded (its login proves the address): its domain counts
# as the company's own.
CONNECTED_STATES = ("enabled", "error")


def normalize_domain(value):
    value = (value or "").strip().lower().lstrip("@").rstrip(".")
    if not value or " " in value or "." not in value:
        return None
    try:
        return value.encode("idna").decode("ascii")
    except UnicodeError:
        return value


def _email_domain(value):
    """The domain of an address when it can be a company's own (no public suffix, no free
    mail provider), else None."""
    domain = normalize_domain(domain_of(addresses.normalize(value or "") or ""))
    return domain if domain and not is_shared_domain(domain) else None


def _own_domains_changed(env):
    """Some company's own domains (``res.company._mail_sync_own_domains_cached``) may have
    changed. Odoo 18 invalidates ormcaches per cache name only, in every worker: this clears the
    registry's "default" cache, so the callers do it only when an own domain can come or go (an
    internal user's or a company's address changes domain, a mailbox's, a user becomes internal
    or leaves) — never for exclusions, which are not cached."""
    env.registry.clear_cache()


class SyncPolicy:
    """What one sync run (or dry run, or late link) of one mailbox applies. Lives in the context
    under ``mail_sync_policy``; ``policy()`` queries on first use only.

    ``index``: unmatched headers are kept (``pending``) for the late-linking header index;
    ``create_leads``: the mailbox's opt-in applies (not in a dry run)."""

    def __init__(self, mailbox, *, index=True, create_leads=None):
        self.mailbox = mailbox
        self.index = index
        self.create_leads = mailbox.mail_sync_create_leads if create_leads is None \
            else create_leads
        self._policy = None
        self.pending = {}  # folder name -> [HeaderInfo] matching nothing (header index)
        self.known = set()  # Message-IDs the registry already holds (never indexed)
        self.errors = []  # message-level SyncErrors of the matcher (a lead it could not create)
        self.quota = None  # messages this run may still record (the daily cap), None: no cap

    def __repr__(self):
        return f"SyncPolicy(mailbox={self.mailbox.id})"

    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = self.mailbox.env["mail.sync.exclusion"].sudo()._policy_for(
                self.mailbox)
        return self._policy


class MailSyncExclusion(models.Model):
    _name = "mail.sync.exclusion"
    _description = "Mail Sync: never-log address or domain"
    _order = "company_id, user_id, value"
    _rec_name = "value"

    company_id = fields.Many2one("res.company", required=True, index=True,
                                 default=lambda self: self.env.company, ondelete="cascade")
    user_id = fields.Many2one(
        "res.users", string="Only for", index=True, ondelete="cascade",
        domain="[('share', '=', False)]",
        help="Empty: for everyone in the company. Otherwise only this user's mailbox.")
    value = fields.Char("Address or domain", required=True,
                        help="e.g. jane@partner.example, or partner.example (its subdomains too)")
    kind = fields.Selection([("address", "Address"), ("domain", "Domain")],
                            compute="_compute_kind", store=True)
    note = fields.Char()

    _sql_constraints = [
        ("value_unique", "unique(company_id, user_id, value)",
         "This address or domain is already excluded."),
    ]

    @api.depends("value")
    def _compute_kind(self):
        for rec in self:
            rec.kind = "address" if rec.value and "@" in rec.value else "domain"

    @api.model
    def _normalize_value(self, value):
        if value and "@" in value.strip().lstrip("@"):
            normalized = addresses.normalize(value)
        else:
            normalized = normalize_domain(value)
        if not normalized:
            raise ValidationError(_("“%s” is neither an email address nor a domain.", value))
        return normalized

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if "value" in vals:
                vals["value"] = self._normalize_value(vals["value"])
        return super().create(vals_list)  # read per sync run (_policy_for): nothing cached

    def write(self, vals):
        if "value" in vals:
            vals["value"] = self._normalize_value(vals["value"])
        return super().write(vals)

    # ------------------------------------------------------------------ policy
    @api.model
    def _policy_for(self, mailbox):
        """The :class:`Policy` of ``mailbox``: company-wide and its user's exclusions, plus the
        company's own domains when enabled. Two queries at most."""
        company = mailbox.company_id
        self.flush_model(["company_id", "user_id", "value"])
        self.env.cr.execute(
            "SELECT value FROM mail_sync_exclusion WHERE company_id = %s "
            "AND (user_id IS NULL OR user_id = %s)", (company.id, mailbox.user_id.id))
        values = [row[0] for row in self.env.cr.fetchall()]
        addrs = frozenset(v for v in values if "@" in v)
        domains = {v for v in values if "@" not in v}
        if company.mail_sync_exclude_own_domain:
            domains |= set(company._mail_sync_own_domains())
        return Policy(addresses=addrs, domains=frozenset(domains),
                      skip_auto=company.mail_sync_skip_auto)


class ResCompany(models.Model):
    _inherit = "res.company"

    mail_sync_exclude_own_domain = fields.Boolean(
        "Mail Sync: never log internal mail", default=True,
        help="Mail exchanged only with addresses of the company's own domains (its email and "
             "website, its users' addresses) is never synced.")
    mail_sync_skip_auto = fields.Boolean(
        "Mail Sync: skip auto-replies and bulk mail", default=True,
        help="Out-of-office and other automatic replies, mailing lists and bulk mail "
             "(Auto-Submitted, Precedence, List-Id) are not synced.")
    mail_sync_own_domains = fields.Char(
        "Mail Sync: own domains", compute="_compute_mail_sync_own_domains",
        help="The domains treated as internal (public providers such as gmail.com never are).")

    def _compute_mail_sync_own_domains(self):
        for company in self:
            company.mail_sync_own_domains = ", ".join(company._mail_sync_own_domains())

    def _mail_sync_own_domains(self):
        """Sorted own domains of this company: its email's and website's, and those of its
        internal users and mailboxes, without public mail providers."""
        self.ensure_one()
        return list(self._mail_sync_own_domains_cached(self.id))

    @tools.ormcache("company_id")
    def _mail_sync_own_domains_cached(self, company_id):
        """Own domains are the ones nobody can claim alone: the company's email and website
        domains (set by administrators), the domains of the company's connected mailboxes (a
        connection test proved a login there), and the domains at least two internal users
        of the company have an address on (a user can change their own address: one alone
        never makes a domain internal). Never a public suffix (``co.uk``) or a free mail
        provider (``gmail.com``)."""
        company = self.browse(company_id).sudo()
        found = set()
        for value in (company.email, company.partner_id.email):
            domain = normalize_domain(domain_of(addresses.normalize(value or "") or ""))
            if domain:
                found.add(domain)
        if company.website:
            host = urlparse(company.website if "//" in company.website
                            else "//" + company.website).hostname or ""
            host = re.sub(r"^www\.", "", host)
            domain = normalize_domain(host)
            if domain:
                found.add(domain)
        self.env["res.users"].flush_model(["partner_id", "share", "active", "company_ids"])
        self.env["res.partner"].flush_model(["email_normalized"])
        self.env["mail.sync.mailbox"].flush_model(["company_id", "email", "state", "active"])
        self.env.cr.execute("""
            SELECT lower(split_part(p.email_normalized, '@', 2))
              FROM res_users u
              JOIN res_partner p ON p.id = u.partner_id
              JOIN res_company_users_rel r ON r.user_id = u.id AND r.cid = %(company)s
             WHERE NOT u.share AND u.active AND p.email_normalized LIKE '%%@%%'
          GROUP BY 1 HAVING count(DISTINCT u.id) >= 2
             UNION
            SELECT DISTINCT lower(split_part(m.email, '@', 2))
              FROM mail_sync_mailbox m
             WHERE m.company_id = %(company)s AND m.active AND m.email LIKE '%%@%%'
               AND m.state IN %(connected)s
        """, {"company": company_id, "connected": CONNECTED_STATES})
        for (domain,) in self.env.cr.fetchall():
            domain = normalize_domain(domain)
            if domain:
                found.add(domain)
        return tuple(sorted(d for d in found if not is_shared_domain(d)))

    def write(self, vals):
        res = super().write(vals)
        if {"email", "website", "partner_id"} & set(vals):  # the flags are read per sync run
            _own_domains_changed(self.env)
        return res


class ResPartner(models.Model):
    _inherit = "res.partner"

    def write(self, vals):
        if "email" not in vals:
            return super().write(vals)
        before = {partner.id: _email_domain(partner.email) for partner in self}
        res = super().write(vals)
        moved = self.filtered(lambda p: _email_domain(p.email) != before.get(p.id))
        if moved and (
                self.env["res.users"].sudo().search_count(
                    [("partner_id", "in", moved.ids), ("share", "=", False)], limit=1)
                or self.env["res.company"].sudo().search_count(
                    [("partner_id", "in", moved.ids)], limit=1)):
            _own_domains_changed(self.env)  # an internal user's or a company's address
        return res


class ResUsers(models.Model):
    _inherit = "res.users"

    @api.model_create_multi
    def create(self, vals_list):
        users = super().create(vals_list)
        # (Not user.email: its cache is not filled in yet when the create is done.)
        if any(not user.share and _email_domain(user.partner_id.email) for user in users):
            _own_domains_changed(self.env)
        return users

    def write(self, vals):
        res = super().write(vals)
        # The address itself is the partner's (res.partner.write above).
        if {"active", "share", "groups_id", "company_ids", "partner_id"} & set(vals) \
                and any(_email_domain(user.partner_id.email) for user in self):
            _own_domains_changed(self.env)
        return res

    def unlink(self):
        internal = any(not user.share and _email_domain(user.partner_id.email) for user in self)
        res = super().unlink()
        if internal:
            _own_domains_changed(self.env)
        return res


class MailSyncMailbox(models.Model):
    _inherit = "mail.sync.mailbox"

    # The company's own domains include its mailboxes' (res.company._mail_sync_own_domains).
    @api.model_create_multi
    def create(self, vals_list):
        mailboxes = super().create(vals_list)
        if any(mailbox._own_domain_key()[0] for mailbox in mailboxes):
            _own_domains_changed(self.env)
        return mailboxes

    def _own_domain_key(self):
        self.ensure_one()
        connected = self.active and self.state in CONNECTED_STATES
        return (_email_domain(self.email) if connected else None, self.company_id.id)

    def write(self, vals):
        if not {"email", "company_id", "state", "active"} & set(vals):
            return super().write(vals)
        before = {m.id: m._own_domain_key() for m in self}
        res = super().write(vals)
        if any(m._own_domain_key() != before.get(m.id) for m in self):
            _own_domains_changed(self.env)
        return res

    def unlink(self):
        had_domain = any(_email_domain(mailbox.email) for mailbox in self)
        res = super().unlink()
        if had_domain:
            _own_domains_changed(self.env)
        return res

    mail_sync_create_leads = fields.Boolean(
        "Create leads from new contacts",
        help="Received mail from an address that is no lead, contact or colleague creates a "
             "lead (after the never-log list and the auto-reply filter).")
    exclusion_count = fields.Integer(compute="_compute_exclusion_count")

    def _compute_exclusion_count(self):
        counts = {}
        if self.company_id:  # one query for all: (company, user or none) -> count
            groups = self.env["mail.sync.exclusion"]._read_group(
                [("company_id", "in", self.company_id.ids),
                 ("user_id", "in", [False, *self.user_id.ids])],
                ["company_id", "user_id"], ["__count"])
            counts = {(company.id, user.id): count for company, user, count in groups}
        for mailbox in self:
            company_id = mailbox.company_id.id
            mailbox.exclusion_count = counts.get((company_id, False), 0) + (
                counts.get((company_id, mailbox.user_id.id), 0) if mailbox.user_id else 0)

    def action_open_exclusions(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": _("Never log"),
            "res_model": "mail.sync.exclusion",
            "view_mode": "list",
            "domain": [("company_id", "=", self.company_id.id),
                       "|", ("user_id", "=", False), ("user_id", "=", self.user_id.id)],
            "context": {"default_user_id": self.user_id.id,
                        "default_company_id": self.company_id.id},
        }

    def _sync(self, raise_on_error=False, deadline=None):
        if self.env.context.get("mail_sync_policy") is not None:
            return super()._sync(raise_on_error=raise_on_error, deadline=deadline)
        holder = SyncPolicy(self)
        return super(MailSyncMailbox, self.with_context(mail_sync_policy=holder))._sync(
            raise_on_error=raise_on_error, deadline=deadline)


class MailSyncMatcher(models.AbstractModel):
    _inherit = "mail.sync.matcher"

    @api.model
    def _known_message_ids(self, mailbox, message_ids):
        known = super()._known_message_ids(mailbox, message_ids)
        holder = self.env.context.get("mail_sync_policy")
        if holder is not None:
            holder.known |= set(known)
        return known

    @api.model
    def _match(self, mailbox, headers, own_addrs):
        """The policy first (never-log, auto-replies: dropped before any lookup), then the
        records; what matched nothing is kept for late linking or creates a lead (opt-in)."""
        holder = self.env.context.get("mail_sync_policy")
        if holder is None or not headers:
            return super()._match(mailbox, headers, own_addrs)
        policy = holder.policy()
        kept = [h for h in headers if not policy.skip(h, own_addrs)]
        result = super()._match(mailbox, kept, own_addrs) if kept else {}
        unmatched = [h for h in kept if h.uid not in result and h.message_id not in holder.known]
        if unmatched and holder.create_leads:
            candidates = unmatched
            if holder.quota is not None:
                # The daily cap records the first ``quota`` wanted messages (by UID): no lead
                # for a message that will wait for tomorrow.
                room = max(holder.quota, 0)
                first = set(sorted(list(result) + [h.uid for h in unmatched])[:room])
                candidates = [h for h in unmatched if h.uid in first]
            if candidates:
                result.update(self._new_leads(mailbox, candidates, own_addrs, policy, holder))
            unmatched = [h for h in unmatched if h.uid not in result]
        if unmatched and holder.index:
            for header in unmatched:
                holder.pending.setdefault(header.folder, []).append(header)
        return result

    @api.model
    def _new_leads(self, mailbox, headers, own_addrs, policy, holder):
        """``{uid: Match}`` on leads created for received mail whose sender is unknown: no lead
        (even archived), no contact and no colleague has that address. A lead that cannot be
        created (each one under a savepoint) makes its messages skipped (``holder.errors``);
        the other senders go on."""
        candidates = {}
        for header in headers:
            sender = next((a for a in header.from_addrs if a), None)
            if not sender or sender in own_addrs or policy.excluded(sender):
                continue
            candidates.setdefault(sender, []).append(header)
        if not candidates:
            return {}
        variants = {}
        for sender in candidates:
            variants[sender] = sender
            local, _sep, domain = sender.rpartition("@")
            if "xn--" in domain:
                try:
                    variants[f"{local}@{domain.encode('ascii').decode('idna')}"] = sender
                except UnicodeError:
                    pass
        self.env["crm.lead"].flush_model(["email_normalized"])
        self.env["res.partner"].flush_model(["email_normalized"])
        self.env.cr.execute("""
            SELECT email_normalized FROM crm_lead WHERE email_normalized = ANY(%(a)s)
             UNION
            SELECT email_normalized FROM res_partner WHERE email_normalized = ANY(%(a)s)
        """, {"a": list(variants)})
        taken = {variants[row[0]] for row in self.env.cr.fetchall()}
        result = {}
        Lead = self.env["crm.lead"].sudo().with_context(
            tracking_disable=True, mail_create_nolog=True, mail_create_nosubscribe=True,
            mail_notrack=True)
        for sender, sender_headers in candidates.items():
            if sender in taken:
                continue
            sender_headers.sort(key=lambda h: h.uid)
            first = sender_headers[0]
            try:
                with self.env.cr.savepoint():
                    lead = Lead.create({
                        "name": first.subject or _("Email from %s", sender),
                        "email_from": sender,
                        "user_id": mailbox.user_id.id,
                        "company_id": mailbox.company_id.id,
                        "type": "lead" if self.env.user.has_group("crm.group_use_lead")
                        else "opportunity",
                        "description": _("Created by Mail Sync from mail received by %s.",
                                         mailbox.email),
                    })
            except NOT_POISON:
                raise
            except Exception as exc:  # noqa: BLE001 - this sender's mail is skipped, not the rest
                _logger.info("Mail Sync: mailbox %s could not create a lead for %s: %s",
                             mailbox.id, sender, exc)
                holder.errors.extend(errors.SyncError(
                    "record", f"a lead could not be created for {sender}: "
                              f"{type(exc).__name__}: {exc}", uid=header.uid,
                    folder=header.folder, header=header, retryable=False)
                    for header in sender_headers)
                continue
            _logger.info("Mail Sync: mailbox %s created lead %s for a new sender",
                         mailbox.id, lead.id)
            for header in sender_headers:
                match = Match(lead_ids=(lead.id,), partner_ids=(), authors={},
                              record_names={("crm.lead", lead.id): lead.name},
                              addresses=tuple(a for a in dict.fromkeys(header.all_addrs)
                                              if a and a not in own_addrs))
                result[header.uid] = match
        return result
