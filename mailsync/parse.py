"""MIME parsing into plain value objects. Nothing here raises.

``parse_message`` reads a whole raw message (``BODY.PEEK[]``) with the stdlib ``email`` package
(``policy.default``; ``compat32`` when the modern policy chokes), decodes any charset, splits HTML
and text bodies from attachments and keeps a nested ``message/rfc822`` as an ``.eml`` attachment.
What could not be read is listed in ``ParsedMessage.defects``.

``parse_headers`` reads the cheap header fetch of one message into a ``HeaderInfo``.
"""
from __future__ import annotations

import codecs
import datetime as dt
import email
import email.header
import email.utils
import hashlib
import mimetypes
import re
from email import policy as email_policy
from email.parser import BytesParser

from . import addresses
from .addresses import unsurrogate as _unsurrogate
from .types import Attachment, HeaderInfo, ParsedMessage

__all__ = ["parse_message", "parse_headers", "decode_bytes", "decode_header_text",
           "synthesize_message_id", "normalize_message_id", "message_ids", "parse_date",
           "is_auto_submitted", "HEADER_FIELDS"]

# The header fields the session fetches (and from which a missing Message-ID is synthesised).
HEADER_FIELDS = ("MESSAGE-ID", "IN-REPLY-TO", "REFERENCES", "FROM", "TO", "CC", "DATE",
                 "SUBJECT", "AUTO-SUBMITTED", "PRECEDENCE", "LIST-ID")

_MSGID = re.compile(r"<([^<>\s]+)>")
_MAX_REFERENCES = 100


# --- small helpers ---------------------------------------------------------------------------

def _charset_ok(charset: str | None) -> str | None:
    """The codec name of a declared charset, or None if unknown."""
    if not charset:
        return None
    charset = str(charset).strip().strip('"\'').lower()
    aliases = {"utf8": "utf-8", "x-unknown": None, "unknown-8bit": None, "8bit": None,
               "ks_c_5601-1987": "cp949", "windows-874": "cp874", "x-sjis": "shift_jis",
               "gb2312": "gb18030", "gbk": "gb18030", "cp-850": "cp850"}
    if charset in aliases:
        charset = aliases[charset]
        if charset is None:
            return None
    try:
        return codecs.lookup(charset).name
    except (LookupError, ValueError, TypeError):
        return None


def decode_bytes(data: bytes, charset: str | None, defects: list | None = None,
                 what: str = "text") -> str:
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
                defects.append(f"{what}: data does not match charset {charset!r}; "
                               f"decoded as {fallback}")
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
                data = quopri.decodestring(payload.replace("_", " ").encode("ascii", "replace"),
                                           header=True)
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
        return f"<{m.group(1)}>"
    token = value.strip().strip("<>").strip()
    if token and " " not in token and len(token) < 1000:
        return f"<{token}>"
    return None


def message_ids(value) -> tuple[str, ...]:
    """All ``<...>`` ids in a References / In-Reply-To value, deduplicated, in order."""
    if not value:
        return ()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    seen = {}
    for m in _MSGID.finditer(_unsurrogate(str(value))):
        seen.setdefault(f"<{m.group(1)}>", None)
    ids = tuple(seen)
    if len(ids) > _MAX_REFERENCES:  # keep the root and the most recent ones
        ids = ids[:1] + ids[-(_MAX_REFERENCES - 1):]
    return ids


def _norm_for_hash(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    return re.sub(r"\s+", " ", _unsurrogate(str(value))).strip()


def synthesize_message_id(from_, to, cc, date, subject) -> str:
    """A stable Message-ID for a message that has none, from its raw header values. The header
    fetch and the full parse give the same id for the same message."""
    h = hashlib.sha256()
    for v in (from_, to, cc, date, subject):
        h.update(_norm_for_hash(v).encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return f"<{h.hexdigest()}@mailsync.invalid>"


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
                defects.append(f"unreadable Date header {value[:80]!r}")
            return None
    try:
        if d.tzinfo is None:
            d = d.replace(tzinfo=dt.timezone.utc)
        d = d.astimezone(dt.timezone.utc)
    except (OverflowError, ValueError):
        if defects is not None:
            defects.append(f"out-of-range Date header {value[:80]!r}")
        return None
    if not (1970 <= d.year <= 2200):
        if defects is not None:
            defects.append(f"implausible Date header {value[:80]!r}")
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

def parse_headers(raw_header_bytes: bytes, *, folder: str, uid: int, size: int = 0,
                  flags=(), gm_msgid=None, gm_labels=()) -> HeaderInfo:
    """HeaderInfo from the header fields fetched by the session. Never raises."""
    try:
        msg = BytesParser(policy=email_policy.compat32).parsebytes(
            bytes(raw_header_bytes or b""), headersonly=True)
        headers = _raw_headers(msg)
    except Exception:  # noqa: BLE001
        headers = {}
    try:
        return _header_info(headers, folder, uid, size, flags, gm_msgid, gm_labels)
    except Exception:  # noqa: BLE001 - the last resort: an id that still dedupes
        return HeaderInfo(folder=folder, uid=int(uid), message_id=synthesize_message_id(
            None, None, None, None, repr(raw_header_bytes)[:2000]), subject="", date=None,
            from_addrs=(), to_addrs=(), cc_addrs=(), size=int(size or 0))


def _flag_str(f) -> str:
    return f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f)


def _header_info(headers, folder, uid, size, flags, gm_msgid, gm_labels) -> HeaderInfo:
    mid = normalize_message_id(_first(headers, "message-id"))
    if not mid:
        mid = synthesize_message_id(_first(headers, "from"), _first(headers, "to"),
                                    _first(headers, "cc"), _first(headers, "date"),
                                    _first(headers, "subject"))
    refs = message_ids(" ".join(headers.get("references", [])))
    irt = message_ids(_first(headers, "in-reply-to"))
    return HeaderInfo(
        folder=folder,
        uid=int(uid),
        message_id=mid,
        subject=decode_header_text(_first(headers, "subject")),
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
        auto_submitted=is_auto_submitted(_first(headers, "auto-submitted"),
                                         _first(headers, "precedence"),
                                         _first(headers, "list-id")),
    )


# --- whole message ---------------------------------------------------------------------------

def parse_message(raw: bytes, *, max_attachment_bytes: int | None = None) -> ParsedMessage:
    """ParsedMessage from a whole raw message. Never raises: what cannot be read is listed in
    ``defects`` (with the raw text as the body as the very last resort)."""
    if raw is None:
        raw = b""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    raw = bytes(raw)
    errors = []
    # The stdlib parser is quadratic in MIME nesting (each line is checked against every open
    # boundary) and dies of RecursionError after a few hundred levels: a 1,000-level message
    # takes seconds. Past _MAX_BOUNDARIES, read the headers only and keep the body as text.
    headers_only = raw.count(b"oundary=") > _MAX_BOUNDARIES
    for pol in (email_policy.default, email_policy.compat32):
        try:
            msg = _parse_bytes(raw, pol, headers_only)
            return _parsed(msg, raw, max_attachment_bytes,
                           [f"retried with compat32 policy: {e}" for e in errors] +
                           ([f"more than {_MAX_BOUNDARIES} MIME boundaries: structure not "
                             f"read, body kept as text"] if headers_only else []))
        except Exception as e:  # noqa: BLE001
            errors.append(f"{type(e).__name__}: {e}"[:200])
    # Nothing worked: keep the raw text so that nothing is lost.
    defects = [f"unparseable message ({'; '.join(errors)})"]
    text = decode_bytes(raw, None, defects, "message")
    return ParsedMessage(
        message_id=synthesize_message_id(None, None, None, None, raw[:4096]),
        subject="", date=None, from_display="", from_addr=None, to_addrs=(), cc_addrs=(),
        in_reply_to=None, references=(), body_html=None, body_text=text, attachments=[],
        defects=defects, size=len(raw))


_FEED_CHUNK = 1 << 16
_FAST_B64_MIN = 1 << 20
_MAX_BOUNDARIES = 300


def _parse_bytes(raw: bytes, pol, headers_only=False):
    """``BytesParser(policy=pol).parsebytes(raw)`` fed in chunks: parsebytes() puts the whole
    message in a ``StringIO`` (4 bytes a character), about 8x a big message's size in memory."""
    parser = email.parser.BytesFeedParser(policy=pol)
    if headers_only:
        parser._set_headersonly()  # noqa: SLF001 - what Parser(headersonly=True) calls
    view = memoryview(raw)
    for i in range(0, len(raw), _FEED_CHUNK):
        parser.feed(bytes(view[i:i + _FEED_CHUNK]))
    return parser.close()


def _parsed(msg, raw: bytes, max_attachment_bytes, defects: list) -> ParsedMessage:
    headers = _raw_headers(msg)
    mid = normalize_message_id(_first(headers, "message-id"))
    if not mid:
        mid = synthesize_message_id(_first(headers, "from"), _first(headers, "to"),
                                    _first(headers, "cc"), _first(headers, "date"),
                                    _first(headers, "subject"))
        defects.append("missing Message-ID; synthesised")
    from_raw = headers.get("from", [])
    from_addrs = addresses.extract(from_raw)
    irt = message_ids(_first(headers, "in-reply-to"))
    walker = _Walker(max_attachment_bytes, defects)
    walker.walk(msg)
    for d in getattr(msg, "defects", ()) or ():
        defects.append(_defect_text(d))
    texts = [t for t in walker.texts if t is not None]
    htmls = [h for h in walker.htmls if h is not None]
    return ParsedMessage(
        message_id=mid,
        subject=decode_header_text(_first(headers, "subject"), defects),
        date=parse_date(_first(headers, "date"), defects),
        from_display=decode_header_text(from_raw[0], defects) if from_raw else "",
        from_addr=from_addrs[0] if from_addrs else None,
        to_addrs=addresses.extract(headers.get("to", [])),
        cc_addrs=addresses.extract(headers.get("cc", [])),
        in_reply_to=irt[0] if irt else None,
        references=message_ids(" ".join(headers.get("references", []))),
        body_html="\n".join(htmls) if htmls else None,
        body_text="\n\n".join(texts) if texts else None,
        attachments=walker.attachments,
        defects=_dedupe(defects),
        size=len(raw),
    )


def _dedupe(items):
    return list(dict.fromkeys(items))


def _defect_text(d) -> str:
    return type(d).__name__ + (f": {d}" if str(d) else "")


class _Walker:
    def __init__(self, max_attachment_bytes, defects):
        self.max = max_attachment_bytes
        self.defects = defects
        self.texts: list[str] = []
        self.htmls: list[str] = []
        self.attachments: list[Attachment] = []
        self._depth = 0

    def walk(self, part, *, in_alternative=False):
        self._depth += 1
        try:
            if self._depth > 50:
                self.defects.append("MIME nesting too deep; rest ignored")
                return
            self._walk(part, in_alternative)
        except Exception as e:  # noqa: BLE001 - one bad part must not lose the others
            self.defects.append(f"unreadable MIME part: {type(e).__name__}: {e}"[:300])
        finally:
            self._depth -= 1

    def _walk(self, part, in_alternative):
        if self._depth > 1:
            for d in getattr(part, "defects", ()) or ():
                self.defects.append(_defect_text(d))
        ctype = _content_type(part)
        maintype = ctype.split("/", 1)[0]
        if maintype == "multipart":
            payload = part.get_payload()
            if isinstance(payload, list):
                alt = ctype == "multipart/alternative"
                if alt:
                    self._alternative(payload)
                else:
                    for sub in payload:
                        self.walk(sub)
                return
            # multipart without (a usable) boundary: keep its raw body as text
            self.defects.append(f"{ctype} without usable boundary; kept as text")
            self._text(part, "text/plain", force=True)
            return
        if ctype in ("message/rfc822", "message/global") or (
                maintype == "message" and isinstance(part.get_payload(), list)
                and ctype not in ("message/delivery-status",)):
            self._nested(part)
            return
        disposition = _disposition(part)
        filename = _filename(part, self.defects)
        if ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
            self._text(part, ctype)
            return
        self._attachment(part, ctype, disposition, filename)

    def _alternative(self, parts):
        # Keep the best HTML and the best text of the alternatives (the last of each wins,
        # per RFC 2046 ordering); other alternatives (calendar, …) become attachments.
        best_html = best_text = None
        for sub in parts:
            ctype = _content_type(sub)
            if ctype == "text/html" and _disposition(sub) != "attachment":
                best_html = sub
            elif ctype == "text/plain" and _disposition(sub) != "attachment":
                best_text = sub
            else:
                self.walk(sub)
        if best_text is not None:
            self.walk(best_text)
        if best_html is not None:
            self.walk(best_html)

    def _payload_bytes(self, part) -> bytes:
        big = _big_base64(part)
        if big is not None:
            return big
        try:
            data = part.get_payload(decode=True)
        except Exception as e:  # noqa: BLE001
            self.defects.append(f"undecodable payload: {type(e).__name__}")
            data = None
        if data is None:
            payload = part.get_payload()
            if isinstance(payload, str):
                data = payload.encode("utf-8", "surrogateescape")
            elif isinstance(payload, bytes):
                data = payload
            else:
                data = b""
        cte = str(part.get("Content-Transfer-Encoding", "") or "").strip().lower()
        for d in getattr(part, "defects", ()) or ():
            name = type(d).__name__
            if "Base64" in name:
                self.defects.append(f"bad base64 ({cte or 'base64'}) in {_content_type(part)}"
                                    f" part: {name}")
        return data

    def _text(self, part, ctype, force=False):
        data = self._payload_bytes(part)
        charset = None
        try:
            charset = part.get_param("charset")
            if isinstance(charset, tuple):  # RFC 2231 form
                charset = email.utils.collapse_rfc2231_value(charset)
        except Exception:  # noqa: BLE001
            charset = None
        text = decode_bytes(data, charset, self.defects, ctype)
        if ctype == "text/html":
            self.htmls.append(text)
        else:
            self.texts.append(text)

    def _nested(self, part):
        payload = part.get_payload()
        data = b""
        subject = ""
        inner = payload[0] if isinstance(payload, list) and payload else None
        if inner is not None:
            data = _as_bytes(inner)
            try:
                subject = decode_header_text(inner.get("Subject"))
            except Exception:  # noqa: BLE001
                subject = ""
        else:
            data = self._payload_bytes(part)
        name = _filename(part, self.defects) or _safe_filename(subject or "message") + ".eml"
        if not name.lower().endswith(".eml"):
            name += ".eml"
        self._add(Attachment(filename=name, content_type="message/rfc822", data=data,
                             content_id=_content_id(part), inline=False))

    def _attachment(self, part, ctype, disposition, filename):
        data = self._payload_bytes(part)
        cid = _content_id(part)
        if not filename:
            ext = mimetypes.guess_extension(ctype) or ".bin"
            filename = f"attachment-{len(self.attachments) + 1}{ext}"
        inline = disposition == "inline" or (cid is not None and disposition != "attachment")
        self._add(Attachment(filename=filename, content_type=ctype, data=data, content_id=cid,
                             inline=inline))

    def _add(self, att: Attachment):
        if self.max is not None and len(att.data) > self.max:
            self.defects.append(f"attachment {att.filename!r} ({len(att.data)} bytes) is larger "
                                f"than {self.max} bytes; not kept")
            return
        self.attachments.append(att)


def _big_base64(part) -> bytes | None:
    """A big base64 payload decoded without the stdlib's line-by-line copies (which take about
    4x the payload's size); None to let ``get_payload(decode=True)`` do it (and list defects)."""
    try:
        payload = part._payload  # noqa: SLF001 - get_payload() would not copy, but checks more
        if (not isinstance(payload, str) or len(payload) < _FAST_B64_MIN or str(
                part.get("Content-Transfer-Encoding", "")).strip().lower() != "base64"
                or not payload.isascii()):
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
    return (ctype or "text/plain").lower()


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
    name = re.sub(r"[\x00-\x1f\x7f/\\]", "_", name).strip().strip(".")
    return name[:200]


def _content_id(part) -> str | None:
    cid = part.get("Content-ID")
    if not cid:
        return None
    cid = _unfold(_unsurrogate(str(cid))).strip()
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
