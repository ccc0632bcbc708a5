"""The hostile mail generator itself (``mailsync.testing.hostile_mail``), not the parser.

Each message is checked with the standard library (``email`` with ``policy=compat32``) and with
raw byte checks: it is what its name claims, concerns the lead, has the right size, and the
same seed and date give the same bytes. The big corpus is generated once for the module (under
``tracemalloc``, timed) and its three big messages are checked in a single test. No server.
"""

from __future__ import annotations

import binascii
import datetime as dt
import email
import email.policy
import re
import struct
import time
import tracemalloc
import zlib
from email.header import decode_header
from email.utils import parseaddr, parsedate_to_datetime

import pytest

from mailsync.testing import hostile_mail
from mailsync.testing.hostile_mail import (
    BIG_NAMES,
    NAMES,
    HostileMessage,
    good_messages,
    hostile_corpus,
)

OWNER = "sam.seller@crm.test"
LEAD = "ann.lead@acme.test"
DATE = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
MIB = 1024 * 1024
POLICY = email.policy.compat32

GEN_SECONDS = 20.0
# the corpus itself is ~110 MB; building it may add one big block and the encoder's buffers,
# never a second copy of the 60 MB message
PEAK_OVER_RESULT = 60 * MIB


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=POLICY)


def head_bytes(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def header_lines(raw: bytes) -> list[bytes]:
    """Unfolded header lines (raw bytes) of the top-level header section."""
    out: list[bytes] = []
    for line in head_bytes(raw).split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and out:
            out[-1] += b"\r\n" + line
        else:
            out.append(line)
    return out


def header_values(raw: bytes, name: str) -> list[bytes]:
    prefix = name.lower().encode() + b":"
    return [
        ln[len(prefix) :].lstrip(b" ") for ln in header_lines(raw) if ln.lower().startswith(prefix)
    ]


def decoded(value: str) -> bytes:
    """The bytes an RFC 2047 value decodes to (charset left aside)."""
    return b"".join(
        p if isinstance(p, bytes) else p.encode("ascii") for p, _ in decode_header(value)
    )


def attachments(msg) -> list:
    return [
        p
        for p in msg.walk()
        if not p.is_multipart() and (p.get("Content-Disposition") or "").startswith("attachment")
    ]


@pytest.fixture(scope="module")
def small() -> dict[str, HostileMessage]:
    corpus = hostile_corpus(OWNER, LEAD, date=DATE, big=False)
    return {m.name: m for m in corpus}


@pytest.fixture(scope="module")
def big():
    """(corpus, seconds, peak traced bytes, traced bytes held by the result)."""
    hostile_mail._png_bomb_cached.cache_clear()  # time the PNG too
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        corpus = hostile_corpus(OWNER, LEAD, date=DATE, big=True)
        seconds = time.perf_counter() - t0
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return corpus, seconds, peak, current


# ----------------------------------------------------------------------------- the whole corpus


def test_names_order_and_shape(small):
    corpus = list(small.values())
    assert [m.name for m in corpus] == [n for n in NAMES if n not in BIG_NAMES]
    assert NAMES[-len(BIG_NAMES) :] == BIG_NAMES  # the big ones last
    for m in corpus:
        assert isinstance(m.raw, bytes) and m.raw
        assert m.folder in ("INBOX", "Sent")
        assert m.expect in ("recorded", "skipped")
        assert m.why and "\n" not in m.why
        assert isinstance(m.checks, dict) and m.checks
        assert set(m.checks) <= set(hostile_mail.CHECK_KEYS), m.name
    assert [m.name for m in corpus if m.expect == "skipped"] == ["many_parts"]
    sent = [m.name for m in corpus if m.folder == "Sent"]
    assert {"nul_filename", "huge_header", "html_attachment", "8bit_headers"} <= set(sent)
    assert len(corpus) / 4 <= len(sent) <= len(corpus) / 2


def test_line_endings_and_mime_version(small):
    for m in small.values():
        rest = m.raw.replace(b"\r\n", b"")
        assert b"\n" not in rest and b"\r" not in rest, m.name  # CRLF everywhere
        assert m.raw.endswith(b"\r\n"), m.name
        assert header_values(m.raw, "MIME-Version") == [b"1.0"], m.name
        assert b"\r\n\r\n" in m.raw, m.name
        msg = parse(m.raw)
        assert msg.get_content_type() in ("text/plain", "multipart/mixed"), m.name


def test_message_ids(small):
    ids = {}
    for m in small.values():
        written = header_values(m.raw, "Message-ID")
        assert len(written) == 1, m.name
        assert written[0].decode("ascii") == m.message_id, m.name
        assert parse(m.raw)["Message-ID"] == m.message_id
        assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", m.message_id), m.name
        ids.setdefault(m.message_id, []).append(m.name)
    assert ids.pop(small["same_id_a"].message_id) == ["same_id_a", "same_id_b"]
    assert all(len(names) == 1 for names in ids.values())


def test_addresses_concern_the_lead(small):
    for m in small.values():
        msg = parse(m.raw)
        to = parseaddr(str(msg["To"]))[1]
        if m.name == "no_from":
            assert msg["From"] is None and b"\r\nFrom:" not in b"\r\n" + head_bytes(m.raw)
            assert m.folder == "INBOX" and to == OWNER
            assert parseaddr(msg["Cc"])[1] == LEAD
            continue
        frm = parseaddr(str(msg["From"]))[1]
        if m.folder == "INBOX":
            assert (frm, to) == (LEAD, OWNER), m.name
        else:
            assert (frm, to) == (OWNER, LEAD), m.name


def test_dates_within_ten_days(small):
    for m in small.values():
        dates = header_values(m.raw, "Date")
        if m.name == "no_date":
            assert dates == [] and parse(m.raw)["Date"] is None
            continue
        assert len(dates) == 1, m.name
        if m.name == "date_9999":
            assert dates[0] == b"Fri, 31 Dec 9999 23:59:59 +0000"
            continue
        when = parsedate_to_datetime(dates[0].decode())
        assert DATE - dt.timedelta(days=10) < when < DATE, (m.name, when)


def test_base64_lines(small):
    for m in small.values():
        for part in parse(m.raw).walk():
            if part.get("Content-Transfer-Encoding", "").lower() != "base64":
                continue
            lines = part.get_payload().split("\r\n")
            assert lines[-1] == "", m.name
            lines = lines[:-1]
            assert all(len(ln) == 76 for ln in lines[:-1]), m.name
            assert 0 < len(lines[-1]) <= 76, m.name
            binascii.a2b_base64("".join(lines).encode(), strict_mode=True)


def test_deterministic_and_seeded(small):
    again = hostile_corpus(OWNER, LEAD, date=DATE, big=False)
    assert [(m.name, m.raw, m.message_id, m.checks) for m in again] == [
        (m.name, m.raw, m.message_id, m.checks) for m in small.values()
    ]
    other = {m.name: m for m in hostile_corpus(OWNER, LEAD, date=DATE, big=False, seed="x")}
    assert not {m.message_id for m in other.values()} & {m.message_id for m in small.values()}
    assert (
        other["nul_filename"].checks["attachment_bytes"]
        != small["nul_filename"].checks["attachment_bytes"]
    )
    # another date moves the Date headers only
    later = hostile_corpus(OWNER, LEAD, date=DATE + dt.timedelta(days=3), big=False)
    assert [m.message_id for m in later] == [m.message_id for m in small.values()]
    assert later[0].raw != small["nul_subject"].raw


def test_default_date_is_now():
    m = hostile_corpus(OWNER, LEAD, big=False)[0]
    when = parsedate_to_datetime(parse(m.raw)["Date"])
    now = dt.datetime.now(dt.timezone.utc)
    assert now - dt.timedelta(days=10) < when <= now


# ----------------------------------------------------------------------------- one case each


def test_nul_subject(small):
    m = small["nul_subject"]
    assert header_values(m.raw, "Subject") == [b"=?utf-8?q?x=00y?="]
    assert head_bytes(m.raw).isascii() and b"\x00" not in m.raw
    assert decode_header(parse(m.raw)["Subject"]) == [(b"x\x00y", "utf-8")]
    assert m.checks == {"subject": "xy"}


def test_nul_from_name(small):
    m = small["nul_from_name"]
    assert header_values(m.raw, "From") == [f"=?utf-8?q?Ann=00Lead?= <{LEAD}>".encode()]
    name, addr = parseaddr(parse(m.raw)["From"])
    assert addr == LEAD and decoded(name) == b"Ann\x00Lead"
    assert m.checks == {"from_name_without": "\x00"}


def test_nul_filename(small):
    m = small["nul_filename"]
    assert m.folder == "Sent"
    msg = parse(m.raw)
    [att] = attachments(msg)
    assert att.get_content_type() == "application/octet-stream"
    assert att.get_param("name") == "=?utf-8?q?rep=00ort.pdf?="
    assert att.get_filename() == "=?utf-8?q?rep=00ort.pdf?="
    assert decoded(att.get_filename()) == b"rep\x00ort.pdf"
    data = att.get_payload(decode=True)
    assert len(data) == 1024
    assert m.checks == {
        "attachment_names": ["report.pdf"],
        "attachment_bytes": {"report.pdf": data},
    }


def test_nul_body(small):
    m = small["nul_body"]
    assert b"\r\n\r\nHello\x00 world\x01 and\x1b more\r\n" in m.raw
    msg = parse(m.raw)
    assert msg.get_content_type() == "text/plain" and msg.get_content_charset() == "utf-8"
    assert msg["Content-Transfer-Encoding"] == "8bit"
    assert b"Hello\x00 world\x01 and\x1b more" in msg.get_payload(decode=True)
    assert m.checks["body_without"] == ["\x00", "\x01", "\x1b"]
    assert m.checks["body_contains"] == ["Hello", "world", "more"]


def test_crlf_subject(small):
    m = small["crlf_subject"]
    assert header_values(m.raw, "Subject") == [b"=?utf-8?q?first=0D=0Asecond=0Athird?="]
    assert decoded(parse(m.raw)["Subject"]) == b"first\r\nsecond\nthird"
    assert m.checks == {"subject": "first second third"}


def test_huge_header(small):
    m = small["huge_header"]
    assert m.folder == "Sent"
    [value] = header_values(m.raw, "Subject")
    lines = value.split(b"\r\n")
    assert len(lines) == -(-1_048_576 // 900)
    assert all(len(ln) <= 998 for ln in head_bytes(m.raw).split(b"\r\n"))  # legal on the wire
    assert all(ln.startswith(b" ") for ln in lines[1:])
    assert value.replace(b"\r\n ", b"") == b"A" * 1_048_576
    subject = parse(m.raw)["Subject"]
    assert subject.replace("\r\n ", "") == "A" * 1_048_576
    assert m.checks == {"subject_prefix": "AAAA", "subject_max_len": 1000, "subject_ends_with": "…"}


def test_many_parts(small):
    m = small["many_parts"]
    assert m.expect == "skipped"
    msg = parse(m.raw)
    parts = list(msg.walk())
    assert len(parts) == 5001 == m.checks["parts"]
    assert m.checks["skip_kind"] == "too_many_parts"
    assert parts[1].get_content_type() == "text/plain" and parts[1].get_filename() is None
    names = [p.get_filename() for p in parts[2:]]
    assert names == [f"p{i}.txt" for i in range(1, 5000)]
    assert all(p.get_content_type() == "text/plain" for p in parts[1:])
    assert not msg.defects


def test_deep_nesting(small):
    m = small["deep_nesting"]
    msg = parse(m.raw)
    depth, node, boundaries = 0, msg, set()
    while node.is_multipart():
        assert node.get_content_type() == "multipart/mixed"
        boundaries.add(node.get_boundary())
        depth += 1
        [node] = node.get_payload()
    assert depth == 200 == m.checks["depth"]
    assert len(boundaries) == 200  # each level its own boundary, none a prefix of another
    assert not any(a != b and b.startswith(a) for a in boundaries for b in boundaries)
    assert node.get_content_type() == "text/plain"
    assert "Deep inside the nest" in node.get_payload(decode=True).decode()
    assert len(list(msg.walk())) == 201 and not msg.defects


@pytest.mark.parametrize(
    "name,filename,ctype,needle",
    [
        (
            "html_attachment",
            "invoice.html",
            "text/html",
            b"<script>alert(document.cookie)</script>",
        ),
        (
            "svg_attachment",
            "logo.svg",
            "image/svg+xml",
            b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
            b"<script>alert(2)</script></svg>",
        ),
    ],
)
def test_active_attachments(small, name, filename, ctype, needle):
    m = small[name]
    [att] = attachments(parse(m.raw))
    assert att.get_filename() == filename and att.get_content_type() == ctype
    data = att.get_payload(decode=True)
    assert needle in data
    assert m.checks == {
        "attachment_names": [filename],
        "attachment_mimetype": {filename: "text/plain"},
        "attachment_bytes": {filename: data},
    }


def test_unknown_charset(small):
    m = small["unknown_charset"]
    msg = parse(m.raw)
    assert msg.get_content_charset() == "x-no-such-charset"
    assert msg.get_payload(decode=True) == "Grüße aus München\r\n".encode("utf-8")
    assert m.checks == {"body_contains": ["Gr", "M"]}


def test_8bit_headers(small):
    m = small["8bit_headers"]
    assert header_values(m.raw, "Subject") == [b"R\xc3\xa9union b\xe9ta"]
    [frm] = header_values(m.raw, "From")
    assert not frm.isascii() and b"\xc3\xa9" in frm and b"\xfc" in frm
    assert frm.endswith(f"<{OWNER}>".encode()) and b"=?" not in head_bytes(m.raw)
    assert "union" in str(parse(m.raw)["Subject"])
    assert m.checks == {"subject_contains": ["union"]}


def test_missing_and_impossible_headers(small):
    assert small["no_from"].checks == {"author": None}
    assert small["no_date"].checks == {"date": "internaldate"}
    assert small["date_9999"].checks == {"date": "internaldate"}
    assert parse(small["date_9999"].raw)["Date"] == "Fri, 31 Dec 9999 23:59:59 +0000"


def test_long_message_id(small):
    m = small["long_message_id"]
    assert len(m.message_id) == 2048
    assert re.fullmatch(r"<[A-Za-z0-9]+@acme\.test>", m.message_id)
    line = b"Message-ID: " + m.message_id.encode()
    assert b"\r\n" + line + b"\r\n" in m.raw  # one header line, longer than 998
    assert parse(m.raw)["Message-ID"] == m.message_id
    assert m.checks == {"message_id_max_len": 998}


def test_same_id(small):
    a, b = small["same_id_a"], small["same_id_b"]
    assert a.message_id == b.message_id and a.raw != b.raw
    assert (a.folder, b.folder) == ("INBOX", "INBOX")
    assert (a.expect, b.expect) == ("recorded", "recorded")
    ma, mb = parse(a.raw), parse(b.raw)
    assert (ma["Subject"], mb["Subject"]) == ("Same id, first", "Same id, second")
    assert ma.get_payload() != mb.get_payload()
    assert b.checks == {"duplicate_of": "same_id_a"}


# ----------------------------------------------------------------------------- good mail


def test_good_messages():
    good = good_messages(OWNER, LEAD, 9, date=DATE)
    assert good_messages(OWNER, LEAD, 9, date=DATE) == good
    assert [m.name for m in good] == [f"good_{i}" for i in range(1, 10)]
    assert [m.folder for m in good] == ["INBOX", "Sent"] * 4 + ["INBOX"]
    assert len({m.message_id for m in good}) == 9
    hostile_ids = {m.message_id for m in hostile_corpus(OWNER, LEAD, date=DATE, big=False)}
    assert not hostile_ids & {m.message_id for m in good}
    kinds, last = set(), None
    for i, m in enumerate(good, 1):
        assert m.expect == "recorded"
        msg = parse(m.raw)
        assert not msg.defects and not m.raw.replace(b"\r\n", b"").count(b"\n")
        assert msg["Subject"] == f"Good {i}" == m.checks["subject"]
        assert msg["Message-ID"] == m.message_id
        frm, to = parseaddr(msg["From"])[1], parseaddr(msg["To"])[1]
        assert (frm, to) == ((LEAD, OWNER) if m.folder == "INBOX" else (OWNER, LEAD))
        when = parsedate_to_datetime(msg["Date"])
        assert DATE - dt.timedelta(days=10) < when < DATE and (last is None or when > last)
        last = when
        kinds.add(msg.get_content_type())
        text = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
        for needle in m.checks["body_contains"]:
            assert needle in text.get_payload(decode=True).decode("utf-8")
        atts = attachments(msg)
        assert [a.get_filename() for a in atts] == m.checks["attachment_names"]
        for a in atts:
            assert a.get_content_type() == "application/pdf"
            assert a.get_payload(decode=True).startswith(b"%PDF-")
    assert kinds == {"text/plain", "multipart/alternative", "multipart/mixed"}


# ----------------------------------------------------------------------------- the big ones


def _b64_region(raw: bytes, filename: str) -> tuple[bytes, int, int]:
    """(headers of the part carrying ``filename``, start, end) of its base64 text in raw."""
    marker = f'filename="{filename}"\r\n\r\n'.encode()
    start = raw.index(marker) + len(marker)
    part_start = raw.rindex(b"\r\n--", 0, start) + 2
    end = raw.index(b"\r\n--", start)
    return raw[part_start:start], start, end  # the region ends with its last CRLF


def _check_b64_region(raw: bytes, start: int, end: int, size: int) -> bytes:
    """The region is 76-character CRLF lines of base64 decoding to ``size`` bytes; returns the
    first 64 decoded bytes."""
    region = memoryview(raw)[start:end]
    full, rest = divmod(-(-size // 3) * 4, 76)
    assert len(region) == full * 78 + (rest + 2 if rest else 0)
    assert bytes(region[76 : full * 78 : 78]) == b"\r" * full
    assert bytes(region[77 : full * 78 : 78]) == b"\n" * full
    assert bytes(region[-2:]) == b"\r\n"
    data = binascii.a2b_base64(region)  # the line breaks are skipped
    assert len(data) == size
    head = data[:64]
    del data
    return head


def _png_check(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    pos, chunks, idat = 8, [], []
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF, kind
        chunks.append(kind)
        if kind == b"IDAT":
            idat.append(data)
        if kind == b"IHDR":
            width, height, depth, color, comp, filt, inter = struct.unpack(">IIBBBBB", data)
            assert (depth, color, comp, filt, inter) == (8, 0, 0, 0, 0)
        pos += 12 + length
    assert pos == len(png) and chunks[0] == b"IHDR" and chunks[-1] == b"IEND"
    # inflate in slices, never holding the 200 MB of pixels
    d, stream, total, zero = zlib.decompressobj(), b"".join(idat), 0, bytes(4 * MIB)
    while stream:
        out = d.decompress(stream, len(zero))
        assert out == zero[: len(out)]  # filter byte 0 and black pixels only
        total += len(out)
        stream = d.unconsumed_tail
    assert d.eof and not d.unused_data
    assert total == (width + 1) * height
    return width, height


def test_big_corpus(big, small):
    corpus, seconds, peak, held = big
    names = [m.name for m in corpus]
    assert names == list(NAMES) and names[-3:] == list(BIG_NAMES)
    by = {m.name: m for m in corpus}
    # the small ones are the same bytes whether or not the big ones are made
    assert all(by[n].raw == m.raw for n, m in small.items())
    assert len({m.message_id for m in corpus}) == len(corpus) - 1
    total = sum(len(m.raw) for m in corpus)

    # time and memory: each big message built once, no second copy of the 60 MB one
    assert seconds < GEN_SECONDS, seconds
    assert held >= total * 0.95
    assert peak < total + PEAK_OVER_RESULT, (peak / MIB, total / MIB)
    print(
        f"\nhostile_corpus(big=True): {seconds:.2f} s, {total / MIB:.1f} MiB of mail, "
        f"peak traced {peak / MIB:.1f} MiB"
    )

    for m in corpus[-3:]:
        hdr = head_bytes(m.raw)
        assert b"\r\nMIME-Version: 1.0" in hdr and b"\r\nDate: " in hdr
        assert header_values(m.raw, "Message-ID") == [m.message_id.encode()]
        assert m.expect == "recorded"
        when = parsedate_to_datetime(header_values(m.raw, "Date")[0].decode())
        assert DATE - dt.timedelta(days=10) < when < DATE

    # png_bomb: small enough to parse whole
    m = by["png_bomb"]
    assert m.folder == "INBOX"
    [att] = attachments(parse(m.raw))
    assert (att.get_filename(), att.get_content_type()) == ("bomb.png", "image/png")
    png = att.get_payload(decode=True)
    assert 50_000 < len(png) < 1_000_000
    assert _png_check(png) == (20_000, 10_000)
    assert m.checks == {
        "attachment_names": ["bomb.png"],
        "attachment_bytes": {"bomb.png": png},
        "png_size": (20_000, 10_000),
    }

    # big_attachment / huge_message: the structure with compat32 (bulk cut out), the base64
    # bulk with raw byte checks
    for name, filename, ctype, size, body in (
        (
            "big_attachment",
            "big.bin",
            "application/octet-stream",
            30 * MIB,
            "Here is the full data dump.",
        ),
        ("huge_message", "video.mp4", "video/mp4", 45 * MIB, "Please find the video attached."),
    ):
        m = by[name]
        part_head, start, end = _b64_region(m.raw, filename)
        assert f"Content-Type: {ctype};".encode() in part_head
        assert b"Content-Transfer-Encoding: base64" in part_head
        first = _check_b64_region(m.raw, start, end, size)
        assert len(set(first)) > 20  # random-looking, not a constant fill
        skeleton = m.raw[:start] + b"QUJD\r\n" + m.raw[end:]
        msg = parse(skeleton)
        parts = list(msg.walk())
        assert [p.get_content_type() for p in parts] == ["multipart/mixed", "text/plain", ctype]
        assert not msg.defects
        assert parts[2].get_filename() == filename
        assert body in parts[1].get_payload(decode=True).decode()
        assert m.checks["body_contains"] == [body]
        if name == "huge_message":
            assert first.startswith(b"\x00\x00\x00\x20ftyp")
            assert len(m.raw) >= 60_000_000 == m.checks["min_raw_size"]
            assert len(m.raw) < 70 * MIB
            assert m.checks["omitted"] == [{"filename": "video.mp4", "reason": "message_limit"}]
        else:
            assert m.folder == "Sent"
            assert m.checks["omitted"] == [
                {"filename": "big.bin", "size": 31457280, "reason": "attachment_limit"}
            ]
            assert m.checks["attachment_names"] == []
