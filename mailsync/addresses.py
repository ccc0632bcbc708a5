"""E-mail address normalisation: what the matcher compares.

``normalize('Ann Example <Ann@Bücher.DE>') == 'ann@xn--bcher-kva.de'``; anything that is not
an address gives ``None``. Never raises.
"""

from __future__ import annotations

import email.header
import email.utils
import re
from typing import Iterable

__all__ = ["normalize", "extract", "split_domain"]

# characters never allowed in an unquoted local part we accept, nor in a domain
_BAD_LOCAL = re.compile(r"[\s<>()\[\],;:\\\"@\x00-\x1f\x7f]")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def unsurrogate(text: str) -> str:
    """Header text read from bytes may carry surrogate-escaped raw 8-bit bytes."""
    if not any("\udc80" <= c <= "\udcff" for c in text):
        return text
    raw = text.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace")


def idna_domain(domain: str) -> str | None:
    """``Exämple.com`` → ``xn--exmple-cua.com`` (lower case), or None when it is no domain."""
    labels = domain.split(".")
    out = []
    for label in labels:
        if not label:
            return None
        if label.isascii():
            ascii_label = label
        else:
            try:
                ascii_label = label.encode("idna").decode("ascii")
            except (UnicodeError, ValueError):
                return None
        ascii_label = ascii_label.lower()
        if not _LABEL.match(ascii_label):
            return None
        out.append(ascii_label)
    result = ".".join(out)
    return result if len(result) <= 253 else None


def normalize(addr) -> str | None:
    """Lower-case ``local@domain`` with an IDNA (punycode) domain, or None.

    Accepts a bare address, ``<addr>``, ``Name <addr>`` or an RFC 2047 encoded form.
    """
    try:
        return _normalize(addr)
    except Exception:  # noqa: BLE001 - a normaliser must never break a sync
        return None


def _normalize(addr) -> str | None:
    if addr is None:
        return None
    if isinstance(addr, bytes):
        addr = addr.decode("utf-8", "surrogateescape")
    addr = unsurrogate(str(addr)).strip()
    if not addr:
        return None
    if "<" in addr or " " in addr or '"' in addr or "(" in addr:
        pairs = email.utils.getaddresses([addr])
        candidates = [a for _, a in pairs if a]
        if len(candidates) != 1:
            if "=?" in addr:
                return _normalize(_decode_words(addr))
            return None
        addr = candidates[0].strip()
    if addr.startswith("<") and addr.endswith(">"):
        addr = addr[1:-1].strip()
    if addr.lower().startswith("mailto:"):
        addr = addr[7:]
    addr = addr.rstrip(".")
    if addr.count("@") != 1:
        if "=?" in addr:
            return _normalize(_decode_words(addr))
        return None
    local, domain = addr.split("@")
    if not local or not domain or len(local) > 64:
        return None
    if _BAD_LOCAL.search(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    domain = domain.strip().rstrip(".")
    if domain.startswith("[") and domain.endswith("]"):  # address literal
        inner = domain[1:-1]
        if not re.fullmatch(r"[0-9.]+|IPv6:[0-9A-Fa-f:.]+", inner):
            return None
        return f"{local.lower()}@{domain.lower()}"
    domain = idna_domain(domain.lower())
    if not domain:
        return None
    return f"{local.lower()}@{domain}"


def _decode_words(text: str) -> str:
    try:
        parts = email.header.decode_header(text)
    except Exception:  # noqa: BLE001
        return text
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            try:
                chunk = chunk.decode(charset or "utf-8", "replace")
            except LookupError:
                chunk = chunk.decode("utf-8", "replace")
        out.append(chunk)
    return "".join(out)


def extract(header_values: Iterable[str]) -> tuple[str, ...]:
    """All normalised addresses in the given header values (To, Cc, …), deduplicated, in order.

    Accepts ``str``, ``bytes`` or ``None`` values; never raises.
    """
    seen: dict[str, None] = {}
    values = []
    for v in header_values or ():
        if v is None:
            continue
        if isinstance(v, bytes):
            v = v.decode("utf-8", "surrogateescape")
        v = unsurrogate(str(v))
        values.append(v.replace("\r", " ").replace("\n", " "))
    try:
        pairs = email.utils.getaddresses(values)
    except Exception:  # noqa: BLE001
        pairs = []
        for v in values:
            pairs.extend(("", p) for p in re.split(r"[,;]", v))
    for name, addr in pairs:
        norm = normalize(addr)
        if norm is None and addr and "=?" in addr:
            norm = normalize(_decode_words(addr))
        if norm is None and name and "@" in name:
            # e.g. 'ann@x.org' written only as a display name, or mangled encoded words
            norm = normalize(_decode_words(name))
        if norm and norm not in seen:
            seen[norm] = None
    if not seen:
        # last resort for headers getaddresses could not split: scan for addr-spec tokens
        for v in values:
            for token in re.findall(r"[^\s<>,;:\"()\[\]]+@[^\s<>,;:\"()\[\]]+", v):
                norm = normalize(token)
                if norm and norm not in seen:
                    seen[norm] = None
    return tuple(seen)


def split_domain(addr: str) -> str | None:
    """The domain of a normalised address."""
    norm = normalize(addr)
    return norm.rsplit("@", 1)[1] if norm else None
