"""MIME parsing into plain value objects. Nothing here raises.

``parse_message`` reads a whole raw message (``BODY.PEEK[]``) with the stdlib ``email`` package
(``policy.default``; ``compat32`` when the modern policy chokes), decodes any charset, splits HTML
and text bodies from attachments and keeps a nested ``message/rfc822`` as an ``.eml`` attachment.
What could not be read is listed in ``ParsedMessage.defects``. The walk over the MIME tree
(:class:`Walker`) works on any tree of parts with the :class:`StdPart` interface: the large-message
path (``structure.py``) gives it parts that the server cuts out (``BODYSTRUCTURE``,
``BODY.PEEK[n]``) instead.

``parse_headers`` reads the cheap header fetch of one message into a ``HeaderInfo``.

Every string in the results went through :func:`mailsync.text.clean`: storable by PostgreSQL,
accepted by XML parsers, one-line fields on one line and cut to their limits.
"""

from __future__ import annotations

import codecs
import datetime as dt
import email
import email.header
import email.utils
import hashlib
import html
import mimetypes
import re
from email import policy as email_policy
from email.parser import BytesParser

from . import addresses
from .addresses import unsurrogate as _unsurrogate
from .text import FILENAME_MAX, NAME_MAX, SUBJECT_MAX, clean, clean_id, clean_line
from .types import OMITTED_ATTACHMENT_LIMIT, Attachment, HeaderInfo, Limits, Omitted, ParsedMessage

__all__ = [
    "parse_message",
    "parse_headers",
    "decode_bytes",
    "decode_header_text",
    "decode_transfer",
    "display_address",
    "synthesize_message_id",
    "normalize_message_id",
    "message_ids",
    "parse_date",
    "is_auto_submitted",
    "count_parts",
    "HEADER_FIELDS",
    "Walker",
    "StdPart",
]

# The header fields the session fetches (and from which a missing Message-ID is synthesised).
HEADER_FIELDS = (
    "MESSAGE-ID",
    "IN-REPLY-TO",
    "REFERENCES",
    "FROM",
    "TO",
    "CC",
    "DATE",
    "SUBJECT",
    "AUTO-SUBMITTED",
    "PRECEDENCE",
    "LIST-ID",
)

_MSGID = re.compile(r"<([^<>\s]+)>")
_MAX_REFERENCES = 100


# --- small helpers ---------------------------------------------------------------------------


def _charset_ok(charset: str | None) -> str | None:
    """The codec name of a declared charset, or None if unknown."""
    if not charset:
        return None
    charset = str(charset).strip().strip("\"'").lower()
    aliases = {
        "utf8": "utf-8",
        "x-unknown": None,
        "unknown-8bit": None,
        "8bit": None,
        "ks_c_5601-1987": "cp949",
        "windows-874": "cp874",
        "x-sjis": "shift_jis",
        "gb2312": "gb18030",
        "gbk": "gb18030",
        "cp-850": "cp850",
        # As browsers and mail clients read them (the WHATWG Encoding Standard): mail
        # labelled Latin-1 is mostly Windows-1252, whose € and curly quotes would
        # otherwise turn into invisible control characters.
        "iso-8859-1": "cp1252",
        "iso8859-1": "cp1252",
        "latin1": "cp1252",
        "latin-1": "cp1252",
        "l1": "cp1252",
        "iso_8859-1": "cp1252",
        "iso-ir-100": "cp1252",
        "ibm819": "cp1252",
        "cp819": "cp1252",
        "iso-8859-9": "cp1254",
        "latin5": "cp1254",
        "iso-8859-11": "cp874",
        "tis-620": "cp874",
    }
    if charset in aliases:
        charset = aliases[charset]
        if charset is None:
            return None
    try:
        return codecs.lookup(charset).name
    except (LookupError, ValueError, TypeError):
        return None


def decode_bytes(
    data: bytes, charset: str | None, defects: list | None = None, what: str = "text"
) -> str:
    """Decode ``data`` whatever its (declared) charset. Order: the declared charset, UTF-8,
    Windows-1252, then Latin-1 (never fails). Records a defect when the declared charset is
    unknown or wrong."""
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    data = bytes(data)
    declared = _charset_ok(charset)
    if charset and declared is None and defects is not None:
        defects.append(f"unknown charset {charset!r} in {what}")
    if declared and declared != "ascii":
        try:
            return data.decode(declared)
        except (UnicodeDecodeError, LookupError):
            pass
    if data.isascii():
        return data.decode("ascii")
    for fallback in ("utf-8", "cp1252"):
        try:
            text = data.decode(fallback)
        except UnicodeDecodeError:
            continue
        if defects is not None:
            if charset:
                defects.append(
                    f"{what}: data does not match charset {charset!r}; decoded as {fallback}"
                )
            else:
                defects.append(f"{what}: undeclared 8-bit data; decoded as {fallback}")
        return text
    if declared and declared != "ascii":
        if defects is not None:
            defects.append(f"{what}: invalid {declared} data; bad bytes replaced")
        return data.decode(declared, "replace")
    if defects is not None:
        defects.append(f"{what}: undecodable 8-bit data; decoded as latin-1")
    return data.decode("latin-1", "replace")


def _unfold(text: str) -> str:
    return re.sub(r"\r?\n[ \t]*", " ", text or "").strip()


_EW = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def decode_header_text(value, defects: list | None = None) -> str:
    """Decode RFC 2047 encoded words (any charset, broken base64 tolerated) and raw 8-bit."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    value = _unsurrogate(_unfold(str(value)))
    if "=?" not in value:
        return value
    try:
        parts = email.header.decode_header(value)
        out = []
        for chunk, charset in parts:
            if isinstance(chunk, bytes):
                chunk = decode_bytes(chunk, charset, defects, "header")
            out.append(chunk)
        return _unsurrogate("".join(out))
    except Exception:  # noqa: BLE001 - fall back to word-by-word decoding
        if defects is not None:
            defects.append("malformed encoded word in header")

    def _one(m):
        charset, enc, payload = m.groups()
        charset = charset.split("*", 1)[0]
        try:
            if enc.lower() == "b":
                import base64

                payload = re.sub(r"[^A-Za-z0-9+/]", "", payload)
                payload += "=" * (-len(payload) % 4)
                data = base64.b64decode(payload[: len(payload) - len(payload) % 4] or b"")
            else:
                import quopri

                data = quopri.decodestring(
                    payload.replace("_", " ").encode("ascii", "replace"), header=True
                )
        except Exception:  # noqa: BLE001
            return m.group(0)
        return decode_bytes(data, charset, defects, "header")

    return _EW.sub(_one, value)


def normalize_message_id(value) -> str | None:
    """``'<id@host>'`` from a Message-ID header value (first token), or None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    value = _unsurrogate(_unfold(str(value)))
    m = _MSGID.search(value)
    if m:
        return clean_id(f"<{m.group(1)}>")
    token = value.strip().strip("<>").strip()
    if token and " " not in token:
        return clean_id(f"<{token}>")
    return None


def message_ids(value) -> tuple[str, ...]:
    """All ``<...>`` ids in a References / In-Reply-To value, deduplicated, in order."""
    if not value:
        return ()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    seen = {}
    for m in _MSGID.finditer(_unsurrogate(str(value))):
        mid = clean_id(f"<{m.group(1)}>")
        if mid:
            seen.setdefault(mid, None)
    ids = tuple(seen)
    if len(ids) > _MAX_REFERENCES:  # keep the root and the most recent ones
        ids = ids[:1] + ids[-(_MAX_REFERENCES - 1) :]
    return ids


def _norm_for_hash(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    return re.sub(r"\s+", " ", _unsurrogate(str(value))).strip()


# A message without Message-ID is identified by its headers and the beginning of its body:
# this many bytes of it (``BODY.PEEK[TEXT]<0.N>`` in the header fetch, the same bytes of the
# raw message in the full parse).
BODY_DIGEST_BYTES = 65536


def synthesize_message_id(from_, to, cc, date, subject, body=None) -> str:
    """A stable Message-ID for a message that has none, from its raw header values and the
    first ``BODY_DIGEST_BYTES`` of its body (``body``): two messages with the same headers and
    different bodies get two ids; the same message in two folders gets one. The header fetch
    and the full parse give the same id for the same message."""
    h = hashlib.sha256()
    for v in (from_, to, cc, date, subject):
        h.update(_norm_for_hash(v).encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    if body is not None:
        h.update(hashlib.sha256(bytes(body[:BODY_DIGEST_BYTES])).digest())
    return f"<{h.hexdigest()}@mailsync.invalid>"


def body_of(raw: bytes) -> bytes:
    """What IMAP calls ``BODY[TEXT]`` of a raw message: everything after the header block."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        index = raw.find(separator)
        if index >= 0:
            return raw[index + len(separator) :]
    return b""


def parse_date(value, defects: list | None = None) -> dt.datetime | None:
    """An aware UTC datetime from a Date header, or None."""
    if not value:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    value = _unfold(_unsurrogate(str(value)))
    try:
        d = email.utils.parsedate_to_datetime(value)
    except Exception:  # noqa: BLE001
        d = None
    if d is None:
        # e.g. 'Mon, 3 Jun 2024 10:00:00 GMT+0200' or ISO 8601
        try:
            d = dt.datetime.fromisoformat(value.strip())
        except (ValueError, TypeError):
            if defects is not None:
                defects.append(f"unreadable Date header {clean_line(value, 80)!r}")
            return None
    try:
        if d.tzinfo is None:
            d = d.replace(tzinfo=dt.timezone.utc)
        d = d.astimezone(dt.timezone.utc)
    except (OverflowError, ValueError):
        if defects is not None:
            defects.append(f"out-of-range Date header {clean_line(value, 80)!r}")
        return None
    if not (1970 <= d.year <= 2200):
        if defects is not None:
            defects.append(f"implausible Date header {clean_line(value, 80)!r}")
        return None
    return d


def is_auto_submitted(auto_submitted, precedence, list_id) -> bool:
    if auto_submitted and str(auto_submitted).strip().lower() not in ("", "no"):
        return True
    if precedence and str(precedence).strip().lower() in ("bulk", "list", "junk"):
        return True
    return bool(list_id and str(list_id).strip())


def _raw_headers(msg) -> dict[str, list[str]]:
    """Lower-case name → raw (undecoded) values."""
    out: dict[str, list[str]] = {}
    try:
        items = msg.raw_items()
    except Exception:  # noqa: BLE001
        items = getattr(msg, "_headers", [])
    for name, value in items:
        out.setdefault(str(name).lower(), []).append(str(value))
    return out


def _first(headers, name):
    values = headers.get(name)
    return values[0] if values else None


# --- headers -------------------------------------------------------------------------------


def parse_headers(
    raw_header_bytes: bytes,
    *,
    folder: str,
    uid: int,
    size: int = 0,
    flags=(),
    gm_msgid=None,
    gm_labels=(),
    internal_date=None,
    body=None,
) -> HeaderInfo:
    """HeaderInfo from the header fields fetched by the session. Never raises. ``body``: the
    beginning of the body, for the id of a message without Message-ID (see
    :func:`synthesize_message_id`); the session fetches it for those only."""
    try:
        msg = BytesParser(policy=email_policy.compat32).parsebytes(
            bytes(raw_header_bytes or b""), headersonly=True
        )
        headers = _raw_headers(msg)
    except Exception:  # noqa: BLE001
        headers = {}
    internal_date = _aware_utc(internal_date)
    try:
        return _header_info(
            headers, folder, uid, size, flags, gm_msgid, gm_labels, internal_date, body
        )
    except Exception:  # noqa: BLE001 - the last resort: an id that still dedupes
        return HeaderInfo(
            folder=folder,
            uid=int(uid),
            message_id=synthesize_message_id(None, None, None, None, repr(raw_header_bytes)[:2000]),
            subject="",
            date=None,
            from_addrs=(),
            to_addrs=(),
            cc_addrs=(),
            size=int(size or 0),
            internal_date=internal_date,
        )


def _aware_utc(value):
    """An INTERNALDATE (imapclient gives a naive local or an aware datetime) as aware UTC."""
    if not isinstance(value, dt.datetime):
        return None
    try:
        if value.tzinfo is None:
            value = value.astimezone()  # imapclient's naive values are local time
        return value.astimezone(dt.timezone.utc)
    except (OverflowError, ValueError, OSError):
        return None


def _flag_str(f) -> str:
    return clean_line(f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f), 256)


def _header_info(
    headers, folder, uid, size, flags, gm_msgid, gm_labels, internal_date, body
) -> HeaderInfo:
    mid = normalize_message_id(_first(headers, "message-id"))
    synthetic = not mid
    if not mid:
        mid = synthesize_message_id(
            _first(headers, "from"),
            _first(headers, "to"),
            _first(headers, "cc"),
            _first(headers, "date"),
            _first(headers, "subject"),
            body,
        )
    refs = message_ids(" ".join(headers.get("references", [])))
    irt = message_ids(_first(headers, "in-reply-to"))
    return HeaderInfo(
        folder=folder,
        uid=int(uid),
        message_id=mid,
        subject=clean_line(decode_header_text(_first(headers, "subject")), SUBJECT_MAX),
        date=parse_date(_first(headers, "date")),
        from_addrs=addresses.extract(headers.get("from", [])),
        to_addrs=addresses.extract(headers.get("to", [])),
        cc_addrs=addresses.extract(headers.get("cc", [])),
        in_reply_to=irt[0] if irt else None,
        references=refs,
        size=int(size or 0),
        flags=tuple(_flag_str(f) for f in (flags or ())),
        gm_msgid=int(gm_msgid) if gm_msgid is not None else None,
        gm_labels=tuple(_flag_str(f) for f in (gm_labels or ())),
        auto_submitted=is_auto_submitted(
            _first(headers, "auto-submitted"),
            _first(headers, "precedence"),
            _first(headers, "list-id"),
        ),
        internal_date=internal_date,
        synthetic_id=synthetic,
    )


# --- whole message ---------------------------------------------------------------------------

_FEED_CHUNK = 1 << 16
_FAST_B64_MIN = 1 << 20
# The stdlib parser is quadratic in MIME nesting (each line is checked against every open
# boundary) and dies of RecursionError after a few hundred levels: past this many declared
# boundaries only the headers are read and the body is kept as text.
_MAX_BOUNDARIES = 300


def parse_message(
    raw: bytes, *, max_attachment_bytes: int | None = None, limits: Limits | None = None
) -> ParsedMessage:
    """ParsedMessage from a whole raw message. Never raises: what cannot be read is listed in
    ``defects`` (with the raw text as the body as the very last resort). ``limits``: see
    :class:`~.types.Limits` (``max_attachment_bytes`` alone is the older spelling); a message of
    more than ``limits.max_parts`` parts comes back with ``refused`` set and nothing read."""
    if raw is None:
        raw = b""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    raw = bytes(raw)
    if limits is None:
        limits = Limits(max_attachment_bytes=max_attachment_bytes)
    errors = []
    boundaries = raw.count(b"oundary=")
    if limits.max_parts and boundaries + 1 > limits.max_parts:
        return _refused_message(raw, limits, f"more than {boundaries + 1} MIME parts")
    headers_only = boundaries > _MAX_BOUNDARIES
    for pol in (email_policy.default, email_policy.compat32):
        try:
            msg = _parse_bytes(raw, pol, headers_only)
            defects = [f"retried with compat32 policy: {e}" for e in errors]
            if headers_only:
                defects.append(
                    f"more than {_MAX_BOUNDARIES} MIME boundaries: structure not "
                    f"read, body kept as text"
                )
            root = StdPart(msg)
            parts = count_parts(root)
            if limits.max_parts and parts > limits.max_parts:
                return _refused_message(raw, limits, f"{parts} MIME parts", msg)
            return _parsed(msg, root, raw, limits, defects)
        except Exception as e:  # noqa: BLE001
            errors.append(f"{type(e).__name__}: {e}"[:200])
    # Nothing worked: keep the raw text so that nothing is lost.
    defects = [clean_line(f"unparseable message ({'; '.join(errors)})", 600)]
    text = clean(decode_bytes(raw, None, defects, "message"))
    return ParsedMessage(
        message_id=synthesize_message_id(None, None, None, None, raw[:4096]),
        subject="",
        date=None,
        from_display="",
        from_addr=None,
        to_addrs=(),
        cc_addrs=(),
        in_reply_to=None,
        references=(),
        body_html=None,
        body_text=text,
        attachments=[],
        defects=_clean_defects(defects),
        size=len(raw),
    )


def _refused_message(raw, limits, what, msg=None) -> ParsedMessage:
    """The headers of a message refused as a whole (too many parts): nothing else is read."""
    if msg is None:
        try:
            msg = BytesParser(policy=email_policy.compat32).parsebytes(raw, headersonly=True)
        except Exception:  # noqa: BLE001
            msg = email.message.Message()
    parsed = parse_header_block(_raw_headers(msg), len(raw), [], body_of(raw))
    parsed.defects = _clean_defects(parsed.defects)
    parsed.refused = (
        "too_many_parts",
        f"The message has {what}, over the limit of {limits.max_parts}",
    )
    return parsed


def _parse_bytes(raw: bytes, pol, headers_only=False):
    """``BytesParser(policy=pol).parsebytes(raw)`` fed in chunks: parsebytes() puts the whole
    message in a ``StringIO`` (4 bytes a character), about 8x a big message's size in memory."""
    parser = email.parser.BytesFeedParser(policy=pol)
    if headers_only:
        parser._set_headersonly()  # noqa: SLF001 - what Parser(headersonly=True) calls
    view = memoryview(raw)
    for i in range(0, len(raw), _FEED_CHUNK):
        parser.feed(bytes(view[i : i + _FEED_CHUNK]))
    return parser.close()


def display_address(value, defects: list | None = None) -> str:
    """A From-like header value as shown: ``Name <address>`` (decoded, cleaned, the name cut to
    ``NAME_MAX``), or the cleaned text when it is not one address."""
    decoded = decode_header_text(value, defects)
    try:
        pairs = email.utils.getaddresses([decoded])
    except Exception:  # noqa: BLE001
        pairs = []
    if len(pairs) == 1 and "@" in (pairs[0][1] or ""):
        name, addr = clean_line(pairs[0][0], NAME_MAX), clean_line(pairs[0][1], 320)
        return f"{name} <{addr}>" if name else addr
    return clean_line(decoded, NAME_MAX + 320)


def parse_header_block(headers: dict, size: int, defects: list, body=None) -> ParsedMessage:
    """The header fields of a ParsedMessage (no body yet) from ``_raw_headers`` output;
    ``body``: the raw body (its beginning), for the id of a message without Message-ID."""
    mid = normalize_message_id(_first(headers, "message-id"))
    if not mid:
        mid = synthesize_message_id(
            _first(headers, "from"),
            _first(headers, "to"),
            _first(headers, "cc"),
            _first(headers, "date"),
            _first(headers, "subject"),
            body,
        )
        defects.append("missing Message-ID; synthesised")
    from_raw = headers.get("from", [])
    from_addrs = addresses.extract(from_raw)
    irt = message_ids(_first(headers, "in-reply-to"))
    return ParsedMessage(
        message_id=mid,
        subject=clean_line(decode_header_text(_first(headers, "subject"), defects), SUBJECT_MAX),
        date=parse_date(_first(headers, "date"), defects),
        from_display=display_address(from_raw[0], defects) if from_raw else "",
        from_addr=from_addrs[0] if from_addrs else None,
        to_addrs=addresses.extract(headers.get("to", [])),
        cc_addrs=addresses.extract(headers.get("cc", [])),
        in_reply_to=irt[0] if irt else None,
        references=message_ids(" ".join(headers.get("references", []))),
        body_html=None,
        body_text=None,
        defects=defects,
        size=size,
        received_date=_received_date(headers.get("received", [])),
        date_header=clean_line(_first(headers, "date") or "", 200),
    )


def _received_date(values) -> dt.datetime | None:
    """The date of the newest (topmost) Received header that has one."""
    for value in values:
        text = str(value)
        if ";" in text:
            date = parse_date(text.rpartition(";")[2])
            if date is not None:
                return date
    return None


def _parsed(msg, root, raw: bytes, limits: Limits, defects: list) -> ParsedMessage:
    parsed = parse_header_block(_raw_headers(msg), len(raw), defects, body_of(raw))
    walker = Walker(limits, defects)
    walker.walk(root)
    for d in getattr(msg, "defects", ()) or ():
        defects.append(_defect_text(d))
    walker.finish(parsed)
    return parsed


def _clean_defects(defects):
    return list(dict.fromkeys(clean_line(d, 300) for d in defects))


def _defect_text(d) -> str:
    return type(d).__name__ + (f": {d}" if str(d) else "")


def count_parts(root) -> int:
    """Every node of a part tree (the root and nested messages' parts included)."""
    count, stack = 0, [root]
    while stack:
        node = stack.pop()
        count += 1
        stack.extend(node.children() or ())
        inner = node.inner()
        if inner is not None:
            stack.append(inner)
    return count


# --- the part interface ------------------------------------------------------------------------


class StdPart:
    """One part of a message parsed by the stdlib (the interface :class:`Walker` reads; the
    large-message path has another implementation of it, ``structure.ImapPart``)."""

    __slots__ = ("part", "_children")

    def __init__(self, part):
        self.part = part
        self._children = None

    def content_type(self) -> str:
        return _content_type(self.part)

    def disposition(self) -> str | None:
        return _disposition(self.part)

    def filename(self, defects) -> str | None:
        return _filename(self.part, defects)

    def content_id(self) -> str | None:
        return _content_id(self.part)

    def charset(self) -> str | None:
        try:
            charset = self.part.get_param("charset")
            if isinstance(charset, tuple):  # RFC 2231 form
                charset = email.utils.collapse_rfc2231_value(charset)
            return charset
        except Exception:  # noqa: BLE001
            return None

    def part_defects(self) -> list[str]:
        return [_defect_text(d) for d in getattr(self.part, "defects", ()) or ()]

    def children(self):
        """The parts of a multipart (None when it is not one or has no usable boundary)."""
        if self._children is None:
            payload = None
            if self.content_type().startswith("multipart/"):
                payload = self.part.get_payload()
            self._children = (
                [StdPart(sub) for sub in payload] if isinstance(payload, list) else False
            )
        return self._children or None

    def inner(self):
        """The message a ``message/*`` part holds (as a part), or None."""
        ctype = self.content_type()
        if not ctype.startswith("message/") or ctype in ("message/delivery-status",):
            return None
        payload = self.part.get_payload()
        if isinstance(payload, list) and payload:
            return StdPart(payload[0])
        return None

    def headers(self) -> dict:
        return _raw_headers(self.part)

    def size_hint(self) -> int | None:
        """The decoded size when known without decoding (never, here)."""
        return None

    def payload(self, defects) -> bytes:
        return _payload_bytes(self.part, defects)

    def as_bytes(self) -> bytes:
        return _as_bytes(self.part)


# --- the walk ----------------------------------------------------------------------------------

# Parts a mail client shows as text, unless they are attachments (Content-Disposition):
# the body types, and the machine-readable reports of bounces and receipts, which a reader
# wants to see too. Any other text/* part is an attachment with its own extension.
INLINE_TEXT = frozenset(
    {
        "text/plain",
        "text/html",
        "text/enriched",
        "text/markdown",
        "text/x-markdown",
        "text/rfc822-headers",
        "message/delivery-status",
        "message/global-delivery-status",
        "message/disposition-notification",
        "message/global-disposition-notification",
        "message/feedback-report",
        "message/global-headers",
    }
)
# The header fields of a forwarded message shown above its body, as mail clients do.
QUOTED_HEADERS = ("From", "Date", "Subject", "To", "Cc")


def text_to_html(text: str) -> str:
    """Plain text as simple HTML: paragraphs on blank lines, line breaks kept, escaped."""
    paragraphs = re.split(r"\n[ \t]*\n", (text or "").replace("\r\n", "\n").strip("\n"))
    return "".join(
        "<p>%s</p>" % html.escape(para).replace("\n", "<br>") for para in paragraphs if para.strip()
    )


class _Quote:
    """A forwarded (or attached) message shown inline: its header lines and its own blocks."""

    __slots__ = ("headers", "blocks")

    def __init__(self, headers):
        self.headers = headers  # [(name, value)]
        self.blocks = []


class Walker:
    """Reads a tree of parts the way a mail client shows it: every inline text part in order
    (a ``multipart/alternative`` by its richest alternative), forwarded messages inline as a
    quote with their own attachments, the rest as attachments — within ``limits``. Iterative
    (no recursion limit on nesting). One bad part never loses the others: its error becomes a
    defect."""

    def __init__(self, limits: Limits | None, defects: list, *, text_only=False):
        self.limits = limits or Limits()
        self.defects = defects
        self.text_only = text_only  # the message is over its limit: text parts only
        self.omitted_reason = None
        self.blocks: list = []  # ("text" | "html", str) or _Quote, in document order
        self._open = [self.blocks]  # the block list being filled (nested quotes)
        self.attachments: list[Attachment] = []
        self.omitted: list[Omitted] = []

    def walk(self, root):
        stack = [root]
        first = True
        while stack:
            node = stack.pop()
            if node is _CLOSE_QUOTE:
                self._open.pop()
                continue
            try:
                if not first:
                    self.defects.extend(node.part_defects())
                first = False
                stack.extend(reversed(self._visit(node)))
            except Exception as e:  # noqa: BLE001 - one bad part must not lose the others
                self.defects.append(f"unreadable MIME part: {type(e).__name__}: {e}"[:300])

    def _visit(self, node) -> list:
        """Handle ``node``; the nodes to visit next, in document order."""
        ctype = node.content_type()
        if ctype.startswith("multipart/"):
            children = node.children()
            if children is None:
                self.defects.append(f"{ctype} without usable boundary; kept as text")
                self._text(node, "text/plain", None, keep=False)
                return []
            if ctype == "multipart/alternative":
                return self._alternative(children)
            return list(children)
        disposition = node.disposition()
        filename = node.filename(self.defects)
        if node.inner() is not None:
            return self._nested(node, disposition, filename)
        if ctype in INLINE_TEXT and disposition != "attachment":
            self._text(node, ctype, filename, keep=bool(filename))
            return []
        self._attachment(node, ctype, disposition, filename)
        return []

    @staticmethod
    def _shows_html(node) -> bool:
        """Whether a part holds HTML a client would show (itself, or within a multipart)."""
        stack = [node]
        while stack:
            part = stack.pop()
            ctype = part.content_type()
            if ctype == "text/html":
                return True
            if ctype.startswith("multipart/"):
                stack.extend(part.children() or ())
        return False

    def _alternative(self, children) -> list:
        """The richest alternative a client can show (the last HTML one, else the last text
        one, RFC 2046 order); alternatives no client shows as text (a calendar invitation …)
        are kept as attachments; the other text versions are dropped."""
        best, best_rank, kept = None, 0, []
        for sub in children:
            ctype = sub.content_type()
            if sub.disposition() == "attachment":
                kept.append(sub)
                continue
            if self._shows_html(sub):
                rank = 2
            elif ctype in INLINE_TEXT or ctype.startswith("multipart/"):
                rank = 1
            else:
                kept.append(sub)
                continue
            if rank >= best_rank:
                best, best_rank = sub, rank
        return kept + ([best] if best is not None else [])

    def _text(self, node, ctype, filename, keep):
        """A text part shown in place; with a file name, also kept as an attachment."""
        if self._over_limit(node, "" if not keep else filename, ctype, shown=True):
            return
        data = node.payload(self.defects)
        text = clean(decode_bytes(data, node.charset(), self.defects, ctype))
        self._open[-1].append(("html" if ctype == "text/html" else "text", text))
        if keep:
            self._add(
                Attachment(
                    filename=filename,
                    content_type=ctype,
                    data=data,
                    content_id=node.content_id(),
                    inline=True,
                )
            )

    def _nested(self, node, disposition, filename) -> list:
        """A forwarded or attached message: shown inline as a quote (its header lines, then its
        body) with its own attachments kept; attached as a file too when it was an
        attachment."""
        inner = node.inner()
        headers = inner.headers()
        lines = []
        for name in QUOTED_HEADERS:
            value = _first(headers, name.lower())
            if value:
                shown = (
                    display_address(value, self.defects)
                    if name in ("From",)
                    else clean_line(decode_header_text(value, self.defects), 1000)
                )
                lines.append((name, shown))
        if disposition == "attachment" and not self.text_only:
            subject = dict(lines).get("Subject", "")
            name = filename or _safe_filename(subject[:150] or "message") + ".eml"
            if not name.lower().endswith(".eml"):
                name += ".eml"
            if not self._over_limit(node, name, "message/rfc822"):
                self._add(
                    Attachment(
                        filename=name,
                        content_type="message/rfc822",
                        data=inner.as_bytes(),
                        content_id=node.content_id(),
                        inline=False,
                    )
                )
        quote = _Quote(lines)
        self._open[-1].append(quote)
        self._open.append(quote.blocks)
        return [inner, _CLOSE_QUOTE]

    def _attachment(self, node, ctype, disposition, filename):
        cid = node.content_id()
        if not filename:
            ext = mimetypes.guess_extension(ctype) or (
                ".txt" if ctype.startswith("text/") else ".bin"
            )
            filename = f"attachment-{len(self.attachments) + len(self.omitted) + 1}{ext}"
        if self._over_limit(node, filename, ctype):
            return
        inline = disposition == "inline" or (cid is not None and disposition != "attachment")
        self._add(
            Attachment(
                filename=filename,
                content_type=ctype,
                data=node.payload(self.defects),
                content_id=cid,
                inline=inline,
            )
        )

    def _over_limit(self, node, filename, ctype, shown=False) -> bool:
        """True (and the part noted as omitted) when ``node`` must not be fetched or kept:
        the message is over its limit and this is no text shown in place, or its known size is
        over the attachment limit. Sizes known only once decoded are checked in ``_add``."""
        size = node.size_hint()
        limit = self.limits.max_attachment_bytes
        if self.text_only and not (shown and not filename):
            self.omitted.append(Omitted(filename or "", ctype, size or 0, self.omitted_reason))
            return True
        if limit is not None and size is not None and size > limit:
            self.omitted.append(
                Omitted(
                    filename or _safe_filename(ctype.replace("/", ".")),
                    ctype,
                    size,
                    OMITTED_ATTACHMENT_LIMIT,
                )
            )
            return True
        return False

    def _add(self, att: Attachment):
        limit = self.limits.max_attachment_bytes
        if limit is not None and len(att.data) > limit:
            self.omitted.append(
                Omitted(att.filename, att.content_type, len(att.data), OMITTED_ATTACHMENT_LIMIT)
            )
            return
        self.attachments.append(att)

    @staticmethod
    def _flatten(blocks, kind):
        out = []
        for block in blocks:
            if isinstance(block, _Quote):
                out += Walker._flatten(block.blocks, kind)
            elif block[0] == kind:
                out.append(block[1])
        return out

    @staticmethod
    def _html(blocks) -> str:
        out = []
        for block in blocks:
            if isinstance(block, _Quote):
                head = "".join(
                    "<b>%s:</b> %s<br>" % (html.escape(name), html.escape(value))
                    for name, value in block.headers
                )
                out.append(
                    '<blockquote class="o_mail_sync_forwarded">%s%s</blockquote>'
                    % (f"<p>{head}</p>" if head else "", Walker._html(block.blocks))
                )
            elif block[0] == "html":
                out.append(block[1])
            else:
                out.append(text_to_html(block[1]))
        return "\n".join(out)

    def finish(self, parsed: ParsedMessage) -> ParsedMessage:
        """Put what the walk found into ``parsed``: ``body`` (everything shown, in order, as
        HTML), ``body_html`` / ``body_text`` (the HTML parts, the text parts)."""
        htmls, texts = self._flatten(self.blocks, "html"), self._flatten(self.blocks, "text")
        parsed.body_html = "\n".join(htmls) if htmls else None
        parsed.body_text = "\n\n".join(texts) if texts else None
        parsed.body = self._html(self.blocks) or None
        parsed.attachments = self.attachments
        parsed.omitted = self.omitted
        parsed.defects = _clean_defects(self.defects)
        return parsed


_CLOSE_QUOTE = object()  # marks, on the walk's stack, the end of a forwarded message


# --- part helpers ------------------------------------------------------------------------------


def decode_transfer(data: bytes, cte: str | None, defects: list | None = None) -> bytes:
    """``data`` decoded from its Content-Transfer-Encoding (base64 and quoted-printable; any
    other is taken as is). Lenient: bad base64 characters are skipped, a defect noted."""
    import binascii

    cte = (cte or "").strip().lower()
    try:
        if cte == "base64":
            try:
                return binascii.a2b_base64(data, strict_mode=False)
            except binascii.Error:
                if defects is not None:
                    defects.append("bad base64 padding; decoded what could be")
                clean_b64 = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
                return binascii.a2b_base64(clean_b64[: len(clean_b64) // 4 * 4] or b"")
        if cte == "quoted-printable":
            return binascii.a2b_qp(data)
    except Exception as e:  # noqa: BLE001
        if defects is not None:
            defects.append(f"undecodable {cte} payload: {type(e).__name__}")
    return data


def _payload_bytes(part, defects) -> bytes:
    big = _big_base64(part)
    if big is not None:
        return big
    try:
        data = part.get_payload(decode=True)
    except Exception as e:  # noqa: BLE001
        defects.append(f"undecodable payload: {type(e).__name__}")
        data = None
    if data is None:
        payload = part.get_payload()
        if isinstance(payload, str):
            data = payload.encode("utf-8", "surrogateescape")
        elif isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, list):  # message/delivery-status: blocks of header fields
            data = b"\r\n".join(_as_bytes(sub) for sub in payload)
        else:
            data = b""
    cte = str(part.get("Content-Transfer-Encoding", "") or "").strip().lower()
    for d in getattr(part, "defects", ()) or ():
        name = type(d).__name__
        if "Base64" in name:
            defects.append(f"bad base64 ({cte or 'base64'}) in {_content_type(part)} part: {name}")
    return data


def _big_base64(part) -> bytes | None:
    """A big base64 payload decoded without the stdlib's line-by-line copies (which take about
    4x the payload's size); None to let ``get_payload(decode=True)`` do it (and list defects)."""
    try:
        payload = part._payload  # noqa: SLF001 - get_payload() would not copy, but checks more
        if (
            not isinstance(payload, str)
            or len(payload) < _FAST_B64_MIN
            or str(part.get("Content-Transfer-Encoding", "")).strip().lower() != "base64"
            or not payload.isascii()
        ):
            return None
        import binascii

        return binascii.a2b_base64(payload)
    except Exception:  # noqa: BLE001 - bad padding etc.: the slow path lists the defects
        return None


def _content_type(part) -> str:
    try:
        ctype = part.get_content_type()
    except Exception:  # noqa: BLE001
        return "text/plain"
    return clean_line(ctype or "text/plain", 200).lower()


def _disposition(part) -> str | None:
    try:
        d = part.get_content_disposition()
    except Exception:  # noqa: BLE001
        raw = str(part.get("Content-Disposition", "") or "")
        d = raw.split(";", 1)[0].strip().lower() or None
    return d


def _filename(part, defects) -> str | None:
    name = None
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001
        name = None
    if not name:
        try:
            name = part.get_param("name")
            if isinstance(name, tuple):
                name = email.utils.collapse_rfc2231_value(name)
        except Exception:  # noqa: BLE001
            name = None
    if not name:
        return None
    name = decode_header_text(str(name), defects)
    return _safe_filename(name) or None


def _safe_filename(name: str) -> str:
    name = clean_line(name)
    name = re.sub(r"[/\\]", "_", name).strip().strip(".")
    return clean_line(name, FILENAME_MAX)


def _content_id(part) -> str | None:
    cid = part.get("Content-ID")
    if not cid:
        return None
    cid = clean_line(_unfold(_unsurrogate(str(cid))), 998)
    if cid.startswith("<") and cid.endswith(">"):
        cid = cid[1:-1].strip()
    return cid or None


def _as_bytes(msg) -> bytes:
    for fn in (
        lambda: msg.as_bytes(policy=email_policy.compat32),
        lambda: msg.as_bytes(),
        lambda: msg.as_string(policy=email_policy.compat32).encode("utf-8", "surrogateescape"),
    ):
        try:
            return fn()
        except Exception:  # noqa: BLE001
            continue
    return b""
