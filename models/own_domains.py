# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""A company's own domains (``res.company._mail_sync_own_domains``): the helpers shared by the
models whose changes can make a domain own or not (company, partner, user, mailbox)."""

from ..mailsync import addresses
from ..mailsync.privacy import domain_of, is_shared_domain


def normalize_domain(value):
    """``Example.COM.`` → ``example.com`` (IDNA), or None for what is no domain."""
    value = (value or "").strip().lower().lstrip("@").rstrip(".")
    if not value or " " in value or "." not in value:
        return None
    return addresses.idna_domain(value) or value


def email_domain(value):
    """The domain of an address when it can be a company's own (no public suffix, no free
    mail provider), else None."""
    domain = normalize_domain(domain_of(addresses.normalize(value or "") or ""))
    return domain if domain and not is_shared_domain(domain) else None


def own_domains_changed(env):
    """Some company's own domains may have changed. Odoo 18 invalidates ormcaches per cache
    name only, in every worker: this clears the registry's "default" cache, so the callers do
    it only when an own domain can come or go (an internal user's or a company's address changes
    domain, a mailbox's, a user becomes internal or leaves) — never for exclusions, which are
    not cached."""
    env.registry.clear_cache()
