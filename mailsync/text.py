"""Clean text at the door: every string that leaves the engine goes through :func:`clean`.

What a stranger can put in a header or a body must never reach the database as something
PostgreSQL refuses (NUL), XML/HTML parsers refuse (other C0 controls, lone surrogates, U+FFFE/F:
Odoo's HTML sanitizer turns such a body into "Invalid HTML"), or that breaks a one-line field
(CR/LF in a subject, a display name, a file name). One function for all of it:

- characters outside XML 1.0's ``Char`` production are removed (NUL, C0 controls except tab,
  line feed and carriage return, U+FFFE, U+FFFF); lone surrogates (raw bytes smuggled through
  ``surrogateescape``) become U+FFFD;
- ``single_line``: every line break (CR, LF, VT, FF, NEL, U+2028, U+2029) and tab is folded to one
  space, runs of white space to one, and the value is stripped;
- ``limit``: a longer value is cut to ``limit`` characters, the last one an ellipsis.

The limits of each field are here too, so that the header fetch and the full parse (and every
caller) cut the same way.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "clean",
    "clean_line",
    "clean_id",
    "SUBJECT_MAX",
    "NAME_MAX",
    "ID_MAX",
    "FILENAME_MAX",
    "ELLIPSIS",
]

SUBJECT_MAX = 1000
NAME_MAX = 256  # a display name (the address comes on top)
ID_MAX = 998  # a Message-ID / References item, angle brackets included (RFC 5322 line length)
FILENAME_MAX = 200
ELLIPSIS = "\u2026"

# Not an XML 1.0 Char (https://www.w3.org/TR/xml/#charsets), surrogates apart.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BREAKS = re.compile("[\t\n\x0b\x0c\r\x1c-\x1e\x85\u2028\u2029 ]+")


def clean(value, *, single_line: bool = False, limit: int | None = None) -> str:
    """``value`` (str, bytes or None) as text any database, XML parser or form accepts."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "replace")
    elif not isinstance(value, str):
        value = str(value)
    if single_line:
        # Before the control characters go: a vertical tab or a form feed separated two words.
        value = _BREAKS.sub(" ", value).strip()
    if not value.isascii():
        value = _SURROGATE.sub("\ufffd", value)
    value = _NOT_XML.sub("", value)
    if single_line:
        value = value.strip()
    if limit is not None and len(value) > limit:
        value = value[: max(limit - 1, 0)].rstrip() + ELLIPSIS
    return value


def clean_line(value, limit: int | None = None) -> str:
    """:func:`clean` for a one-line field."""
    return clean(value, single_line=True, limit=limit)


def clean_id(value: str | None) -> str | None:
    """A Message-ID-like ``<...>`` token as stored: cleaned, no white space, and at most
    ``ID_MAX`` characters. A longer one keeps its beginning, an ellipsis and a digest of the
    whole (two different long ids never become one), and stays ASCII-safe for the index."""
    if not value:
        return None
    value = clean_line(value).replace(" ", "")
    if not value:
        return None
    if len(value) <= ID_MAX and len(value.encode("utf-8")) <= ID_MAX:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:16]
    inner = value.strip("<>")
    keep = ID_MAX - len(digest) - 4  # "<", "…", "#", ">"
    head = inner.encode("utf-8")[:keep].decode("utf-8", "ignore")
    return f"<{head}{ELLIPSIS}#{digest}>"
