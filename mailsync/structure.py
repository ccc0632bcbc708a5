"""The large-message path: a message read part by part, as the server cuts it.

A message over ``LARGE_MESSAGE_BYTES`` (or over the caller's message limit) is never fetched
whole. Instead, on the session's open folder:

1. ``UID FETCH uid (BODYSTRUCTURE BODY.PEEK[HEADER])`` — the MIME tree and the header;
2. the parts are counted against ``Limits.max_parts`` (a refused message costs nothing more);
3. ``UID FETCH uid (BODY.PEEK[n.MIME] … BODY.PEEK[m.HEADER] …)`` — the MIME header of every
   part and the header of every encapsulated message, read by the stdlib exactly as the
   whole-message path reads them (file names, dispositions, content ids, charsets);
4. :class:`~mailsync.parse.Walker` walks the tree; a part's content is fetched only when the
   walk keeps it (text parts; attachments within the limits), with ``BODY.PEEK[n]`` in pieces of
   ``PART_CHUNK`` bytes decoded as they arrive: a big attachment is held once, decoded, and a
   part over the limit is never downloaded at all.

``fetch_parsed`` returns a ``ParsedMessage`` like ``parse.parse_message`` does. Errors of the
session are raised as ``SyncError``; a BODYSTRUCTURE the server cannot give (or that makes no
sense) raises ``StructureUnavailable`` for the caller to fall back on.
"""

from __future__ import annotations

import binascii
import io
import re
from email import policy as email_policy
from email.parser import BytesParser

from .parse import StdPart, Walker, _raw_headers, count_parts, decode_transfer, parse_header_block
from .text import clean_line
from .types import OMITTED_MESSAGE_LIMIT, Limits, Omitted, ParsedMessage

__all__ = [
    "fetch_parsed",
    "fetch_header_only",
    "StructureUnavailable",
    "LARGE_MESSAGE_BYTES",
    "PART_CHUNK",
]

# Messages above this size are read part by part (bounded memory) instead of whole.
LARGE_MESSAGE_BYTES = 8 << 20
# A part is fetched in pieces of at most this many bytes (partial FETCH ``<offset.length>``).
PART_CHUNK = 4 << 20

_NOT_B64 = re.compile(rb"[^A-Za-z0-9+/]")


class StructureUnavailable(Exception):
    """The server gave no usable BODYSTRUCTURE for this message."""


def _b(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value)


def _headers_message(data: bytes):
    """An ``email.message.Message`` holding only the header block ``data``."""
    try:
        return BytesParser(policy=email_policy.default).parsebytes(data or b"", headersonly=True)
    except Exception:  # noqa: BLE001
        return BytesParser(policy=email_policy.compat32).parsebytes(data or b"", headersonly=True)


class _Fetcher:
    """FETCH of one message's sections on the session's open folder."""

    def __init__(self, session, uid):
        self.session = session
        self.uid = uid

    def items(self, items) -> dict:
        return self.session.fetch_message_items(self.uid, items)

    def section(self, section: str, cte: str, size: int | None, defects) -> bytes:
        """The content of ``section``, decoded from ``cte``, fetched in pieces."""
        decoder = _Decoder(cte)
        offset = 0
        while True:
            if size is not None and size <= PART_CHUNK and offset == 0:
                key, item = f"BODY[{section}]", f"BODY.PEEK[{section}]"
            else:
                key, item = (
                    f"BODY[{section}]<{offset}>",
                    f"BODY.PEEK[{section}]<{offset}.{PART_CHUNK}>",
                )
            row = self.items([item])
            data = _find(row, key) or b""
            decoder.feed(data)
            offset += len(data)
            if key.endswith("]") or len(data) < PART_CHUNK:
                break
            del data, row
        return decoder.close(defects)


def _find(row: dict, key: str):
    """The value of ``key`` (e.g. ``BODY[2]<0>``) in a FETCH row, whatever its case."""
    wanted = key.upper().encode()
    for name, value in row.items():
        if isinstance(name, bytes) and name.upper() == wanted:
            return value
    return None


class _Decoder:
    """Content-Transfer-Encoding decoding of a part that arrives in pieces."""

    def __init__(self, cte):
        self.cte = (cte or "").strip().lower()
        self.carry = b""
        self.out = io.BytesIO()

    def feed(self, data: bytes):
        if not data:
            return
        if self.cte == "base64":
            data = self.carry + _NOT_B64.sub(b"", data)
            cut = len(data) // 4 * 4
            self.out.write(binascii.a2b_base64(data[:cut]))
            self.carry = data[cut:]
        elif self.cte == "quoted-printable":
            data = self.carry + data
            cut = data.rfind(b"\n") + 1
            self.out.write(binascii.a2b_qp(data[:cut]))
            self.carry = data[cut:]
        else:
            self.out.write(data)

    def close(self, defects) -> bytes:
        if self.carry:
            if self.cte == "base64":
                rest = (
                    self.carry[: len(self.carry) // 4 * 4]
                    if len(self.carry) % 4 == 1
                    else self.carry + b"=" * (-len(self.carry) % 4)
                )
                if len(self.carry) % 4 == 1:
                    defects.append("bad base64 length; last character dropped")
                self.out.write(decode_transfer(rest, "base64", defects))
            else:
                self.out.write(decode_transfer(self.carry, self.cte, defects))
            self.carry = b""
        return self.out.getvalue()


class ImapPart(StdPart):
    """One part of a message on the server, from its BODYSTRUCTURE: the same interface as
    :class:`~mailsync.parse.StdPart` (headers from ``n.MIME``), content fetched on demand."""

    __slots__ = (
        "fetcher",
        "section",
        "body",
        "mime",
        "message_section",
        "_inner",
        "_inner_headers",
    )

    def __init__(self, fetcher, section, body, mime=None, message_section=None):
        super().__init__(mime)
        self.fetcher = fetcher
        self.section = section
        self.body = body
        self.mime = mime
        self.message_section = message_section  # this node is an encapsulated message's root
        self._inner = None
        self._inner_headers = None

    # -- structure --
    def is_multipart(self) -> bool:
        return isinstance(self.body[0], list)

    def content_type(self) -> str:
        if self.is_multipart():
            return clean_line("multipart/" + _b(self.body[1]), 200).lower()
        if self.mime is not None and self.mime.get("Content-Type"):
            return super().content_type()
        return clean_line(f"{_b(self.body[0])}/{_b(self.body[1])}", 200).lower()

    def _sub(self, index) -> str:
        return f"{self.section}.{index}" if self.section else str(index)

    def children(self):
        if not self.is_multipart():
            return None
        if self._children is None:
            self._children = [
                ImapPart(self.fetcher, self._sub(i), body) for i, body in enumerate(self.body[0], 1)
            ]
        return self._children

    def _is_message(self) -> bool:
        return (
            not self.is_multipart()
            and _b(self.body[0]).lower() == "message"
            and _b(self.body[1]).lower() in ("rfc822", "global")
            and len(self.body) > 8
            and isinstance(self.body[8], tuple)
        )

    def inner(self):
        if not self._is_message():
            return None
        if self._inner is None:
            inner_body = self.body[8]
            if isinstance(inner_body[0], list):
                self._inner = ImapPart(
                    self.fetcher, self.section, inner_body, message_section=self.section
                )
            else:
                self._inner = ImapPart(
                    self.fetcher, f"{self.section}.1", inner_body, message_section=self.section
                )
            self._inner._inner_headers = self._inner_headers
        return self._inner

    def nodes(self):
        """Every node below and including this one (depth first)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.children() or ())
            inner = node.inner()
            if inner is not None:
                stack.append(inner)

    # -- headers --
    def charset(self):
        if self.mime is not None:
            return super().charset()
        params = self.body[2] if len(self.body) > 2 else None
        if isinstance(params, tuple):
            for key, value in zip(params[::2], params[1::2]):
                if _b(key).lower() == "charset":
                    return _b(value)
        return None

    def _mime_or_none(self, method, *args):
        if self.mime is None:
            return None
        return getattr(super(), method)(*args)

    def disposition(self):
        return self._mime_or_none("disposition")

    def filename(self, defects):
        return self._mime_or_none("filename", defects)

    def content_id(self):
        return self._mime_or_none("content_id")

    def part_defects(self):
        return []

    def headers(self) -> dict:
        return _raw_headers(self._inner_headers) if self._inner_headers is not None else {}

    def size_hint(self):
        if self.is_multipart():
            return None
        try:
            size = int(self.body[6])
        except (IndexError, TypeError, ValueError):
            return None
        if self._cte() == "base64":
            return size * 57 // 78  # 76 characters and CRLF a line, 57 bytes decoded
        return size

    def _cte(self) -> str:
        if self.mime is not None and self.mime.get("Content-Transfer-Encoding"):
            return str(self.mime.get("Content-Transfer-Encoding")).strip().lower()
        return _b(self.body[5] if len(self.body) > 5 else "").lower()

    # -- content --
    def payload(self, defects) -> bytes:
        size = None
        try:
            size = int(self.body[6])
        except (IndexError, TypeError, ValueError):
            pass
        return self.fetcher.section(self.section or "1", self._cte(), size, defects)

    def as_bytes(self) -> bytes:
        section = self.message_section or self.section
        return self.fetcher.section(section, "", None, [])


def _read_tree(fetcher, structure, header_msg) -> ImapPart:
    """The ImapPart tree of a message with its MIME headers (one FETCH for all of them)."""
    if not isinstance(structure, tuple) or not structure:
        raise StructureUnavailable("no BODYSTRUCTURE")
    if isinstance(structure[0], list):
        root = ImapPart(fetcher, "", structure)
    else:
        root = ImapPart(fetcher, "1", structure, mime=header_msg)
    nodes = list(root.nodes())
    wanted = []
    for node in nodes:
        if (
            node.mime is None
            and not node.is_multipart()
            and node.section
            and node.message_section is None
        ):
            wanted.append(f"BODY.PEEK[{node.section}.MIME]")
        if node._is_message():
            wanted.append(f"BODY.PEEK[{node.section}.HEADER]")
    row = fetcher.items(wanted) if wanted else {}
    for node in nodes:
        if (
            node.mime is None
            and not node.is_multipart()
            and node.section
            and node.message_section is None
        ):
            data = _find(row, f"BODY[{node.section}.MIME]")
            if data is not None:
                node.mime = node.part = _headers_message(data)
        if node._is_message():
            data = _find(row, f"BODY[{node.section}.HEADER]")
            node._inner_headers = _headers_message(data or b"")
            inner = node.inner()
            inner._inner_headers = node._inner_headers
            if not inner.is_multipart():  # its MIME header is the message's header
                inner.mime = inner.part = node._inner_headers
    return root


def fetch_parsed(session, header, limits: Limits | None = None) -> ParsedMessage:
    """The message of ``header`` (on the session's open folder) read part by part: all of it
    within ``limits``, or only its header and text parts when it is over
    ``limits.max_message_bytes``. Raises SyncError (session) or StructureUnavailable."""
    limits = limits or Limits()
    fetcher = _Fetcher(session, header.uid)
    row = fetcher.items(["BODYSTRUCTURE", "BODY.PEEK[HEADER]"])
    structure = row.get(b"BODYSTRUCTURE")
    header_bytes = _find(row, "BODY[HEADER]") or b""
    header_msg = _headers_message(header_bytes)
    defects: list = []
    parsed = parse_header_block(_raw_headers(header_msg), header.size or 0, defects)
    if header.synthetic_id:  # made up from the body's beginning, as the header fetch did
        parsed.message_id = header.message_id
    try:
        root = _read_tree(fetcher, structure, header_msg)
        parts = count_parts(root)
    except (IndexError, TypeError, ValueError, AttributeError) as e:
        raise StructureUnavailable(f"{type(e).__name__}: {e}") from None
    if limits.max_parts and parts > limits.max_parts:
        parsed.refused = (
            "too_many_parts",
            f"The message has {parts} MIME parts, over the limit of {limits.max_parts}",
        )
        return parsed
    over = bool(limits.max_message_bytes and (header.size or 0) > limits.max_message_bytes)
    walker = Walker(limits, defects, text_only=over)
    walker.omitted_reason = OMITTED_MESSAGE_LIMIT
    walker.walk(root)
    return walker.finish(parsed)


def fetch_header_only(session, header, reason=OMITTED_MESSAGE_LIMIT) -> ParsedMessage:
    """A message recorded from its header alone (no usable structure, over the limit): the
    whole body is one omitted part."""
    row = session.fetch_message_items(header.uid, ["BODY.PEEK[HEADER]"])
    header_msg = _headers_message(_find(row, "BODY[HEADER]") or b"")
    defects = ["the server gave no usable structure of this message; its body was not read"]
    parsed = parse_header_block(_raw_headers(header_msg), header.size or 0, defects)
    if header.synthetic_id:
        parsed.message_id = header.message_id
    parsed.omitted = [Omitted("", "", header.size or 0, reason)]
    parsed.defects = [clean_line(d, 300) for d in defects]
    return parsed
