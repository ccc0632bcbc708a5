"""Deterministic generator of a *hostile mail corpus*: raw RFC 5322 messages a stranger could send.

``hostile_corpus(owner, lead)`` returns one :class:`HostileMessage` per hostile case (NUL bytes
in encoded words and bodies, CR/LF in a subject, a 1 MB header, 5,000 parts, 200 nested
multiparts, a 200-megapixel PNG, active HTML/SVG attachments, a 30 MiB attachment, a 60 MiB
message, an unknown charset, raw 8-bit headers, missing From/Date, a year-9999 Date, a 2,048-char
Message-ID, two messages sharing one Message-ID). Every message concerns the lead: received mail
(folder ``INBOX``) has the lead in From (or Cc), sent mail (folder ``Sent``) has it in To.
``good_messages(owner, lead, n)`` returns ordinary well-formed mail to interleave with them.

Each message says what the sync should do with it (``expect``: ``recorded`` / ``skipped``) and
carries machine-readable ``checks`` (see :data:`CHECK_KEYS`). Nothing is stored on disk: the big
messages are built in memory at call time, each exactly once (``big=False`` leaves them out).
Same arguments (``seed`` *and* ``date``) → same bytes; every message draws from its own random
stream, so the small messages do not depend on ``big``.

Stdlib only, no Odoo.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import html
import io
import random
import string
import struct
import zlib
from dataclasses import dataclass, field
from email.utils import format_datetime

__all__ = [
    "HostileMessage",
    "hostile_corpus",
    "good_messages",
    "NAMES",
    "BIG_NAMES",
    "CHECK_KEYS",
    "png_bomb",
    "MIB",
]

MIB = 1024 * 1024
CRLF = b"\r\n"

NAMES = (
    "nul_subject",
    "nul_from_name",
    "nul_filename",
    "nul_body",
    "crlf_subject",
    "huge_header",
    "many_parts",
    "deep_nesting",
    "html_attachment",
    "svg_attachment",
    "unknown_charset",
    "8bit_headers",
    "no_from",
    "no_date",
    "date_9999",
    "long_message_id",
    "same_id_a",
    "same_id_b",
    "png_bomb",
    "big_attachment",
    "huge_message",
)
BIG_NAMES = ("png_bomb", "big_attachment", "huge_message")

# What a ``checks`` key asks of the consumer (the parsed / recorded message):
CHECK_KEYS = {
    "subject": "the stored subject equals this",
    "subject_prefix": "the stored subject starts with this",
    "subject_max_len": "the stored subject has at most this many characters",
    "subject_ends_with": "the stored subject ends with this (a truncation mark)",
    "subject_contains": "each string is in the stored subject",
    "from_name_without": "the stored author name does not contain this",
    "author": "the stored author (None: no author)",
    "body_contains": "each string is in the stored body text",
    "body_without": "no string of this list is in the stored body text",
    "attachment_names": "the stored attachments' names, in order (exactly these)",
    "attachment_bytes": "{name: the attachment's exact decoded bytes}",
    "attachment_mimetype": "{name: the mimetype the attachment is stored with}",
    "png_size": "(width, height) declared by the PNG attachment",
    "omitted": "[{filename, [size,] reason}] parts left out and listed, reason one of "
    "'attachment_limit' / 'message_limit'",
    "min_raw_size": "len(raw) is at least this",
    "parts": "len(list(msg.walk())) of the message (root included)",
    "skip_kind": "the message is refused as a whole with this kind",
    "depth": "number of nested multipart containers, root included",
    "date": "'internaldate': the stored date comes from the server's INTERNALDATE",
    "message_id_max_len": "the stored Message-ID has at most this many characters",
    "duplicate_of": "same Message-ID as that message: deduplicated, only the first is kept",
}

_ALNUM = string.ascii_letters + string.digits
_B64_BLOCK = 57 * 18396  # 1,048,572 bytes: a whole number of 76-character base64 lines


@dataclass
class HostileMessage:
    name: str  # short id, e.g. "nul_subject"
    folder: str  # "INBOX" (received from the lead) or "Sent" (sent by the owner to the lead)
    raw: bytes = field(repr=False)  # the whole message
    message_id: str | None  # the Message-ID header value as written, None when absent
    expect: str  # "recorded" | "skipped"
    why: str  # one line: what is hostile about it and what the sync should do
    checks: dict = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        return len(self.raw)


# --------------------------------------------------------------------------- small helpers


def display_name_for(addr: str) -> str:
    """A plain ASCII display name from an address' local part ("ann.lead" → "Ann Lead")."""
    local = addr.split("@", 1)[0]
    words = [w for w in "".join(c if c.isalnum() else " " for c in local).split() if w.isalpha()]
    return " ".join(w.capitalize() for w in words[:2]) or "Contact"


def domain_of(addr: str) -> str:
    return addr.rsplit("@", 1)[-1] or "example.test"


def _b64(data: bytes) -> bytes:
    """Base64 in 76-character lines, each ending with CRLF."""
    return base64.encodebytes(data).replace(b"\n", CRLF)


def _write_b64(out: io.BytesIO, blocks) -> None:
    """Write the base64 of ``blocks`` (each a multiple of 57 bytes but the last) to ``out`` in
    76-character CRLF lines, without ever holding the whole encoded text twice."""
    for block in blocks:
        enc = binascii.b2a_base64(block, newline=False)
        k, rest = divmod(len(enc), 76)
        if k:
            lines = bytearray(k * 78)
            for j in range(76):
                lines[j::78] = enc[j : k * 76 : 76]
            lines[76::78] = b"\r" * k
            lines[77::78] = b"\n" * k
            out.write(lines)
            del lines
        if rest:
            out.write(enc[k * 76 :] + CRLF)


def _random_blocks(rng: random.Random, size: int, head: bytes = b""):
    """``size`` pseudo-random (incompressible) bytes in blocks of ``_B64_BLOCK`` bytes."""
    done = 0
    while done < size:
        n = min(_B64_BLOCK, size - done)
        block = rng.randbytes(n)
        if done == 0 and head:
            block = head + block[len(head) :]
        done += n
        yield block


def _boundary(rng: random.Random, tag: str) -> str:
    # fixed width random tail: no boundary is a prefix of another one
    return f"=_{tag}_" + "".join(rng.choices(_ALNUM, k=24))


def _part(headers: list[str], body: bytes) -> bytes:
    return ("\r\n".join(headers) + "\r\n\r\n").encode("ascii") + body


def _multipart(boundary: str, parts: list[bytes]) -> bytes:
    """The body of a multipart: each part after its delimiter, then the close delimiter."""
    b = boundary.encode("ascii")
    out = []
    for p in parts:
        out += [b"--", b, CRLF, p, CRLF]
    out += [b"--", b, b"--", CRLF]
    return b"".join(out)


def _text_part(text: str, charset: str = "utf-8", cte: str = "8bit") -> bytes:
    data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode(charset)
    if cte == "base64":
        data = _b64(data)
    return _part(
        [f'Content-Type: text/plain; charset="{charset}"', f"Content-Transfer-Encoding: {cte}"],
        data,
    )


def _attachment(ctype: str, filename: str, data: bytes, *, quote=True) -> bytes:
    fn = f'"{filename}"' if quote else filename
    return _part(
        [
            f"Content-Type: {ctype}; name={fn}",
            "Content-Transfer-Encoding: base64",
            f"Content-Disposition: attachment; filename={fn}",
        ],
        _b64(data),
    )


def png_bomb(width: int = 20_000, height: int = 10_000) -> bytes:
    """A valid all-black 8-bit grayscale PNG of ``width`` × ``height``, zlib level 9.

    The IDAT stream is compressed row by row (filter byte 0 + ``width`` zero bytes), so the
    ``width * height`` raw pixels are never held in memory. 20,000 × 10,000 → about 190 KB.
    """
    return _png_bomb_cached(width, height)


@functools.lru_cache(maxsize=2)
def _png_bomb_cached(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    comp = zlib.compressobj(9)
    row = bytes(width + 1)
    pieces = [comp.compress(row) for _ in range(height)]
    pieces.append(comp.flush())
    idat = b"".join(pieces)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------- message assembly


class _Ctx:
    def __init__(self, owner: str, lead: str, seed: str, date: dt.datetime | None, kind: str):
        self.owner, self.lead, self.seed, self.kind = owner, lead, str(seed), kind
        date = date or dt.datetime.now(dt.timezone.utc)
        if date.tzinfo is None:
            date = date.replace(tzinfo=dt.timezone.utc)
        self.date = date.astimezone(dt.timezone.utc).replace(microsecond=0)
        self.owner_name = display_name_for(owner)
        self.lead_name = display_name_for(lead)

    def rng(self, name: str) -> random.Random:
        return random.Random(f"mailsync-{self.kind}:{self.seed}:{name}")

    def when(self, rng: random.Random) -> dt.datetime:
        """A moment within the 10 days before ``date`` (at least 10 minutes before it)."""
        return self.date - dt.timedelta(seconds=rng.randint(600, 9 * 86400 + 23 * 3600))

    def message_id(self, rng: random.Random, name: str, folder: str) -> str:
        host = domain_of(self.owner if folder == "Sent" else self.lead)
        tag = name.replace("_", "-")
        return f"<{self.kind}.{tag}.{rng.getrandbits(64):016x}@{host}>"

    def headers(
        self,
        rng,
        name,
        folder,
        *,
        subject,
        mid="auto",
        date="auto",
        from_="auto",
        to="auto",
        cc=None,
        extra=(),
    ) -> tuple[list, str | None]:
        """Envelope header lines (str, or bytes for raw 8-bit ones) and the Message-ID written."""
        if from_ == "auto":
            from_ = (
                f"{self.owner_name} <{self.owner}>"
                if folder == "Sent"
                else f"{self.lead_name} <{self.lead}>"
            )
        if to == "auto":
            to = (
                f"{self.lead_name} <{self.lead}>"
                if folder == "Sent"
                else f"{self.owner_name} <{self.owner}>"
            )
        if mid == "auto":
            mid = self.message_id(rng, name, folder)
        if date == "auto":
            date = format_datetime(self.when(rng))
        lines: list = []
        if from_ is not None:
            lines.append(from_ if isinstance(from_, bytes) else f"From: {from_}")
        lines.append(f"To: {to}")
        if cc:
            lines.append(f"Cc: {cc}")
        lines.append(subject if isinstance(subject, bytes) else f"Subject: {subject}")
        if date is not None:
            lines.append(f"Date: {date}")
        if mid is not None:
            lines.append(f"Message-ID: {mid}")
        lines.append("MIME-Version: 1.0")
        lines.extend(extra)
        return lines, mid


def _head(lines: list) -> bytes:
    return b"".join((ln if isinstance(ln, bytes) else ln.encode("ascii")) + CRLF for ln in lines)


def _raw(lines: list, body_headers: list[str], body: bytes) -> bytes:
    return _head(lines + body_headers) + CRLF + body


def _plain(lines, text: str, charset="utf-8", cte="8bit") -> bytes:
    return _raw(
        lines,
        [f'Content-Type: text/plain; charset="{charset}"', f"Content-Transfer-Encoding: {cte}"],
        text.replace("\n", "\r\n").encode(charset),
    )


def _mixed(rng, lines, parts: list[bytes], tag="mixed") -> bytes:
    b = _boundary(rng, tag)
    return _raw(lines, [f'Content-Type: multipart/mixed; boundary="{b}"'], _multipart(b, parts))


def _msg(ctx, name, folder, raw, mid, why, checks, expect="recorded") -> HostileMessage:
    return HostileMessage(
        name=name, folder=folder, raw=raw, message_id=mid, expect=expect, why=why, checks=checks
    )


# --------------------------------------------------------------------------- the cases


def _nul_subject(ctx, name="nul_subject", folder="INBOX"):
    rng = ctx.rng(name)
    lines, mid = ctx.headers(rng, name, folder, subject="=?utf-8?q?x=00y?=")
    raw = _plain(lines, "The subject of this message decodes to x, NUL, y.\n")
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        "encoded-word Subject decoding to a NUL byte: store it with the NUL removed",
        {"subject": "xy"},
    )


def _nul_from_name(ctx, name="nul_from_name", folder="INBOX"):
    rng = ctx.rng(name)
    lines, mid = ctx.headers(
        rng, name, folder, subject="Hello from Ann", from_=f"=?utf-8?q?Ann=00Lead?= <{ctx.lead}>"
    )
    raw = _plain(lines, "My display name holds a NUL byte.\n")
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        "From display name decodes to a NUL byte: match the address, drop the NUL",
        {"from_name_without": "\x00"},
    )


def _nul_filename(ctx, name="nul_filename", folder="Sent"):
    rng = ctx.rng(name)
    lines, mid = ctx.headers(rng, name, folder, subject="The report")
    data = rng.randbytes(1024)
    enc = "=?utf-8?q?rep=00ort.pdf?="
    raw = _mixed(
        rng,
        lines,
        [
            _text_part("Please find the report attached.\n"),
            _attachment("application/octet-stream", enc, data),
        ],
    )
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        "attachment filename (name= and filename=) decodes to 'rep\\0ort.pdf': "
        "store it as 'report.pdf' with its bytes intact",
        {"attachment_names": ["report.pdf"], "attachment_bytes": {"report.pdf": data}},
    )


def _nul_body(ctx, name="nul_body", folder="INBOX"):
    rng = ctx.rng(name)
    lines, mid = ctx.headers(rng, name, folder, subject="Control characters inside")
    body = b"Hello\x00 world\x01 and\x1b more\r\nSecond line.\r\n"
    raw = _raw(
        lines,
        ['Content-Type: text/plain; charset="utf-8"', "Content-Transfer-Encoding: 8bit"],
        body,
    )
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        "raw NUL, SOH and ESC bytes in an 8bit body: record the text without them",
        {"body_contains": ["Hello", "world", "more"], "body_without": ["\x00", "\x01", "\x1b"]},
    )


def _crlf_subject(ctx, name="crlf_subject", folder="INBOX"):
    rng = ctx.rng(name)
    lines, mid = ctx.headers(rng, name, folder, subject="=?utf-8?q?first=0D=0Asecond=0Athird?=")
    raw = _plain(lines, "The subject decodes to three lines.\n")
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        "encoded-word Subject decoding to CR LF and LF: fold each break to one space",
        {"subject": "first second third"},
    )


HUGE_HEADER_CHARS = 1_048_576
HUGE_HEADER_FOLD = 900


def _huge_header(ctx, name="huge_header", folder="Sent"):
    rng = ctx.rng(name)
    n, w = HUGE_HEADER_CHARS, HUGE_HEADER_FOLD
    chunk = "A" * w
    pieces = [chunk] * (n // w) + (["A" * (n % w)] if n % w else [])
    subject = "Subject: " + "\r\n ".join(pieces)  # every line < 998 characters: legal
    lines, mid = ctx.headers(rng, name, folder, subject=subject.encode("ascii"))
    raw = _plain(lines, "This message has a one-megabyte subject.\n")
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        f"Subject of {n:,} 'A' folded every {w} characters: store a truncated subject "
        f"(at most 1000 characters, ending with an ellipsis)",
        {"subject_prefix": "AAAA", "subject_max_len": 1000, "subject_ends_with": "…"},
    )


MANY_PARTS = 5000


def _many_parts(ctx, name="many_parts", folder="INBOX"):
    rng = ctx.rng(name)
    lines, mid = ctx.headers(rng, name, folder, subject="Lots of small files")
    parts = [_text_part("5,000 parts follow.\n")]
    for i in range(1, MANY_PARTS):
        parts.append(
            _part(
                [
                    f'Content-Type: text/plain; charset="us-ascii"; name="p{i}.txt"',
                    "Content-Transfer-Encoding: 7bit",
                    f'Content-Disposition: attachment; filename="p{i}.txt"',
                ],
                f"part {i}\r\n".encode("ascii"),
            )
        )
    raw = _mixed(rng, lines, parts)
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        f"multipart/mixed with {MANY_PARTS:,} parts: refuse it as a whole "
        f"(too_many_parts) and move on",
        {"parts": MANY_PARTS + 1, "skip_kind": "too_many_parts"},
        expect="skipped",
    )


NEST_DEPTH = 200


def _deep_nesting(ctx, name="deep_nesting", folder="Sent"):
    rng = ctx.rng(name)
    lines, mid = ctx.headers(rng, name, folder, subject="Nested")
    bounds = [_boundary(rng, f"nest{i:03d}") for i in range(NEST_DEPTH)]
    inner = _text_part("Deep inside the nest.\n")
    # level i (0 = root) is a multipart/mixed holding level i+1; the last holds the text
    head = []
    for i in range(1, NEST_DEPTH):
        head.append(
            f'--{bounds[i - 1]}\r\nContent-Type: multipart/mixed; boundary="{bounds[i]}"\r\n\r\n'
        )
    head.append(f"--{bounds[-1]}\r\n")
    tail = [f"\r\n--{b}--" for b in reversed(bounds)]
    body = "".join(head).encode("ascii") + inner + "".join(tail).encode("ascii") + CRLF
    raw = _raw(lines, [f'Content-Type: multipart/mixed; boundary="{bounds[0]}"'], body)
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        f"multipart/mixed nested {NEST_DEPTH} deep: no recursion error, keep the "
        f"innermost text (or record it with a defect)",
        {"depth": NEST_DEPTH, "body_contains": ["Deep inside the nest"]},
    )


PNG_SIZE = (20_000, 10_000)


def _png_bomb(ctx, name="png_bomb", folder="INBOX"):
    rng = ctx.rng(name)
    lines, mid = ctx.headers(rng, name, folder, subject="Our floor plan")
    png = png_bomb(*PNG_SIZE)
    raw = _mixed(
        rng,
        lines,
        [
            _text_part("The floor plan, in full resolution.\n"),
            _attachment("image/png", "bomb.png", png),
        ],
    )
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        "a small PNG declaring 20,000 x 10,000 pixels (200 MP): store the bytes, never "
        "decode it (no thumbnail, no image processing)",
        {
            "attachment_names": ["bomb.png"],
            "attachment_bytes": {"bomb.png": png},
            "png_size": PNG_SIZE,
        },
    )


HTML_PAYLOAD = (
    b"<!DOCTYPE html>\r\n<html><head><title>Invoice</title></head><body>\r\n"
    b"<h1>Invoice 2024-117</h1>\r\n<script>alert(document.cookie)</script>\r\n"
    b"</body></html>\r\n"
)
SVG_PAYLOAD = (
    b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>\r\n'
)


def _html_attachment(ctx, name="html_attachment", folder="Sent"):
    rng = ctx.rng(name)
    lines, mid = ctx.headers(rng, name, folder, subject="Your invoice")
    raw = _mixed(
        rng,
        lines,
        [
            _text_part("The invoice is attached.\n"),
            _attachment("text/html", "invoice.html", HTML_PAYLOAD),
        ],
    )
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        "text/html attachment with a <script>: store it as text/plain so it is never rendered",
        {
            "attachment_names": ["invoice.html"],
            "attachment_mimetype": {"invoice.html": "text/plain"},
            "attachment_bytes": {"invoice.html": HTML_PAYLOAD},
        },
    )


def _svg_attachment(ctx, name="svg_attachment", folder="INBOX"):
    rng = ctx.rng(name)
    lines, mid = ctx.headers(rng, name, folder, subject="Our new logo")
    raw = _mixed(
        rng,
        lines,
        [_text_part("Here is our logo.\n"), _attachment("image/svg+xml", "logo.svg", SVG_PAYLOAD)],
    )
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        "image/svg+xml attachment with onload and <script>: store it as text/plain",
        {
            "attachment_names": ["logo.svg"],
            "attachment_mimetype": {"logo.svg": "text/plain"},
            "attachment_bytes": {"logo.svg": SVG_PAYLOAD},
        },
    )


BIG_ATTACHMENT = 30 * MIB


def _big_attachment(ctx, name="big_attachment", folder="Sent"):
    rng = ctx.rng(name)
    lines, mid = ctx.headers(rng, name, folder, subject="The data dump")
    b = _boundary(rng, "mixed")
    out = io.BytesIO()
    out.write(_head(lines + [f'Content-Type: multipart/mixed; boundary="{b}"']) + CRLF)
    out.write(f"--{b}\r\n".encode() + _text_part("Here is the full data dump.\n") + CRLF)
    out.write(
        f"--{b}\r\n".encode()
        + _head(
            [
                'Content-Type: application/octet-stream; name="big.bin"',
                "Content-Transfer-Encoding: base64",
                'Content-Disposition: attachment; filename="big.bin"',
            ]
        )
        + CRLF
    )
    _write_b64(out, _random_blocks(rng, BIG_ATTACHMENT))
    out.write(f"\r\n--{b}--\r\n".encode())
    raw = out.getvalue()  # no copy: BytesIO hands over its buffer
    del out
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        "one 30 MiB attachment: record the message and its text, list the attachment "
        "as omitted (attachment_limit) instead of storing it",
        {
            "body_contains": ["Here is the full data dump."],
            "omitted": [
                {"filename": "big.bin", "size": BIG_ATTACHMENT, "reason": "attachment_limit"}
            ],
            "attachment_names": [],
        },
    )


VIDEO_SIZE = 45 * MIB
# an MP4 'ftyp' box, so the file starts like a real video
_MP4_HEAD = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"


def _huge_message(ctx, name="huge_message", folder="INBOX"):
    rng = ctx.rng(name)
    lines, mid = ctx.headers(rng, name, folder, subject="Product video")
    b = _boundary(rng, "mixed")
    out = io.BytesIO()
    out.write(_head(lines + [f'Content-Type: multipart/mixed; boundary="{b}"']) + CRLF)
    out.write(f"--{b}\r\n".encode() + _text_part("Please find the video attached.\n") + CRLF)
    out.write(
        f"--{b}\r\n".encode()
        + _head(
            [
                'Content-Type: video/mp4; name="video.mp4"',
                "Content-Transfer-Encoding: base64",
                'Content-Disposition: attachment; filename="video.mp4"',
            ]
        )
        + CRLF
    )
    _write_b64(out, _random_blocks(rng, VIDEO_SIZE, head=_MP4_HEAD))
    out.write(f"\r\n--{b}--\r\n".encode())
    raw = out.getvalue()
    del out
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        "a ~64 MB message (45 MiB video): record its text without downloading/storing "
        "the video, listed as omitted (message_limit)",
        {
            "body_contains": ["Please find the video attached."],
            "omitted": [{"filename": "video.mp4", "reason": "message_limit"}],
            "min_raw_size": 60_000_000,
        },
    )


def _unknown_charset(ctx, name="unknown_charset", folder="INBOX"):
    rng = ctx.rng(name)
    lines, mid = ctx.headers(rng, name, folder, subject="Greetings")
    raw = _raw(
        lines,
        [
            'Content-Type: text/plain; charset="x-no-such-charset"',
            "Content-Transfer-Encoding: 8bit",
        ],
        "Grüße aus München\r\n".encode("utf-8"),
    )
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        "body in an unknown charset (really UTF-8): decode leniently, never raise",
        {"body_contains": ["Gr", "M"]},
    )


def _8bit_headers(ctx, name="8bit_headers", folder="Sent"):
    rng = ctx.rng(name)
    subject = b"Subject: R\xc3\xa9union b\xe9ta"  # é as UTF-8, then é as a lone Latin-1 byte
    from_ = b"From: Ren\xc3\xa9 M\xfcller <" + ctx.owner.encode("ascii") + b">"
    lines, mid = ctx.headers(rng, name, folder, subject=subject, from_=from_)
    raw = _plain(lines, "Raw 8-bit bytes in the headers, no encoded words.\n")
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        "raw UTF-8 and Latin-1 bytes in Subject and From name: decode leniently",
        {"subject_contains": ["union"]},
    )


def _no_from(ctx, name="no_from", folder="INBOX"):
    rng = ctx.rng(name)
    lines, mid = ctx.headers(
        rng,
        name,
        folder,
        subject="Who sent this?",
        from_=None,
        to=f"{ctx.owner_name} <{ctx.owner}>",
        cc=f"{ctx.lead_name} <{ctx.lead}>",
    )
    raw = _plain(lines, "This message has no From header; the lead is in Cc.\n")
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        "no From header (lead in Cc): record it with no author",
        {"author": None},
    )


def _no_date(ctx, name="no_date", folder="Sent"):
    rng = ctx.rng(name)
    lines, mid = ctx.headers(rng, name, folder, subject="Undated", date=None)
    raw = _plain(lines, "This message has no Date header.\n")
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        "no Date header: date it with the server's INTERNALDATE",
        {"date": "internaldate"},
    )


def _date_9999(ctx, name="date_9999", folder="INBOX"):
    rng = ctx.rng(name)
    lines, mid = ctx.headers(
        rng, name, folder, subject="From the future", date="Fri, 31 Dec 9999 23:59:59 +0000"
    )
    raw = _plain(lines, "This message claims to come from the year 9999.\n")
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        "Date in year 9999: do not trust it, use the server's INTERNALDATE",
        {"date": "internaldate"},
    )


LONG_ID_LEN = 2048


def _long_message_id(ctx, name="long_message_id", folder="INBOX"):
    rng = ctx.rng(name)
    host = domain_of(ctx.lead)
    local = "".join(rng.choices(_ALNUM, k=LONG_ID_LEN - len(host) - 3))
    mid = f"<{local}@{host}>"
    lines, mid = ctx.headers(rng, name, folder, subject="Long id", mid=mid)
    raw = _plain(lines, "The Message-ID of this message is 2,048 characters long.\n")
    return _msg(
        ctx,
        name,
        folder,
        raw,
        mid,
        "a 2,048-character Message-ID on one header line: store at most 998 characters",
        {"message_id_max_len": 998},
    )


def _same_id(ctx, folder="INBOX"):
    rng = ctx.rng("same_id")
    shared = ctx.message_id(rng, "same_id", folder)
    out = []
    for name, which, body in (
        ("same_id_a", "first", "The first message with this Message-ID.\n"),
        ("same_id_b", "second", "A different message reusing the same Message-ID.\n"),
    ):
        r = ctx.rng(name)
        lines, mid = ctx.headers(r, name, folder, subject=f"Same id, {which}", mid=shared)
        raw = _plain(lines, body)
        if name == "same_id_a":
            out.append(
                _msg(
                    ctx,
                    name,
                    folder,
                    raw,
                    mid,
                    "first of two different messages sharing one Message-ID: record it",
                    {"subject": "Same id, first"},
                )
            )
        else:
            out.append(
                _msg(
                    ctx,
                    name,
                    folder,
                    raw,
                    mid,
                    "second message with the Message-ID of same_id_a: deduplicated "
                    "(only same_id_a is kept)",
                    {"duplicate_of": "same_id_a"},
                )
            )
    return out


def hostile_corpus(
    owner: str,
    lead: str,
    *,
    seed: str = "hostile",
    big: bool = True,
    date: dt.datetime | None = None,
) -> list[HostileMessage]:
    """The hostile messages between ``owner`` and ``lead``, in the fixed order of :data:`NAMES`
    (the big ones last; ``big=False`` leaves out :data:`BIG_NAMES`).

    Dates fall within the 10 days before ``date`` (default now, UTC) except ``no_date`` and
    ``date_9999``. Same ``seed`` and ``date`` → same bytes.
    """
    ctx = _Ctx(owner, lead, seed, date, "hostile")
    out = [
        _nul_subject(ctx),
        _nul_from_name(ctx),
        _nul_filename(ctx),
        _nul_body(ctx),
        _crlf_subject(ctx),
        _huge_header(ctx),
        _many_parts(ctx),
        _deep_nesting(ctx),
        _html_attachment(ctx),
        _svg_attachment(ctx),
        _unknown_charset(ctx),
        _8bit_headers(ctx),
        _no_from(ctx),
        _no_date(ctx),
        _date_9999(ctx),
        _long_message_id(ctx),
        *_same_id(ctx),
    ]
    if big:
        out += [_png_bomb(ctx), _big_attachment(ctx), _huge_message(ctx)]
    return out


# --------------------------------------------------------------------------- good mail

_GOOD_LINES = [
    "Thanks for your time today.",
    "As discussed, the offer is attached.",
    "Let me know if you have questions.",
    "We can adjust the scope if needed.",
    "The team is available next week.",
    "Pricing is valid until the end of the month.",
]


def _pdf_like(rng: random.Random, i: int) -> bytes:
    stream = rng.randbytes(rng.randint(1500, 3000))
    return (
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
        + f"2 0 obj\n<< /Length {len(stream)} >>\nstream\n".encode("ascii")
        + stream
        + f"\nendstream\nendobj\n% offer {i}\n%%EOF\n".encode("ascii")
    )


def good_messages(
    owner: str, lead: str, n: int, *, seed: str = "good", date: dt.datetime | None = None
) -> list[HostileMessage]:
    """``n`` ordinary well-formed messages "Good 1" … "Good n" between ``owner`` and ``lead``:
    alternately INBOX (even index) and Sent, text/plain, multipart/alternative or
    multipart/mixed with a small PDF-like attachment; Dates ascending within the 10 days before
    ``date``. Same ``seed`` and ``date`` → same bytes."""
    ctx = _Ctx(owner, lead, seed, date, "good")
    span = 9 * 86400 + 20 * 3600  # seconds: 10 days minus a margin
    out = []
    for i in range(1, n + 1):
        name = f"good_{i}"
        folder = "INBOX" if i % 2 else "Sent"
        rng = ctx.rng(name)
        when = ctx.date - dt.timedelta(days=10) + dt.timedelta(seconds=1800 + (span * i) // (n + 1))
        marker = f"GOOD-{i}-{rng.getrandbits(32):08x}"
        subject = f"Good {i}"
        lines, mid = ctx.headers(rng, name, folder, subject=subject, date=format_datetime(when))
        greet = ctx.lead_name if folder == "Sent" else ctx.owner_name
        sign = ctx.owner_name if folder == "Sent" else ctx.lead_name
        text = (
            f"Hello {greet.split()[0]},\n\n{marker}\n\n"
            + " ".join(rng.sample(_GOOD_LINES, 3))
            + f"\n\nBest regards,\n{sign}\n"
        )
        style = i % 3  # 1: text/plain, 2: alternative, 0: mixed + attachment
        attachments = []
        if style == 1:
            raw = _plain(lines, text)
        else:
            b = _boundary(rng, "alt")
            html_text = "\r\n".join(
                f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>"
                for p in text.strip().split("\n\n")
            )
            alt_body = _multipart(
                b,
                [
                    _text_part(text),
                    _part(
                        [
                            'Content-Type: text/html; charset="utf-8"',
                            "Content-Transfer-Encoding: 8bit",
                        ],
                        f"<html><body>\r\n{html_text}\r\n</body></html>\r\n".encode("utf-8"),
                    ),
                ],
            )
            alt_headers = [f'Content-Type: multipart/alternative; boundary="{b}"']
            if style == 2:
                raw = _raw(lines, alt_headers, alt_body)
            else:
                fname = f"offer-{i}.pdf"
                attachments.append(fname)
                raw = _mixed(
                    rng,
                    lines,
                    [
                        _part(alt_headers, alt_body),
                        _attachment("application/pdf", fname, _pdf_like(rng, i)),
                    ],
                )
        out.append(
            HostileMessage(
                name=name,
                folder=folder,
                raw=raw,
                message_id=mid,
                expect="recorded",
                why="an ordinary well-formed message: record it",
                checks={
                    "subject": subject,
                    "body_contains": [marker],
                    "attachment_names": attachments,
                },
            )
        )
    return out
