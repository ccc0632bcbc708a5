"""MIME parsing: never raises, any charset decodes, attachments and nested messages kept."""

import base64
import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailsync.parse import (
    body_of,
    decode_bytes,
    parse_date,
    parse_headers,
    parse_message,
    synthesize_message_id,
)
from mailsync.testing import corpus

UTC = dt.timezone.utc


def msg(*lines, body=b"hello\r\n"):
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def test_plain_message_fields():
    raw = msg(
        "From: =?utf-8?q?Ren=C3=A9e_Roux?= <Renee@X.org>",
        'To: sam@acme.test, "Doe, J" <j@y.org>',
        "Cc: Bob <BOB@z.org>",
        "Subject: =?iso-8859-1?q?R=E9union?= de mardi",
        "Date: Tue, 4 Jun 2024 17:30:00 +0200",
        "Message-ID:  <abc.123@x.org> ",
        "In-Reply-To: <p1@x.org>",
        "References: <root@x.org>\r\n <p1@x.org>",
        "Content-Type: text/plain; charset=utf-8",
        body="Grüße\r\n".encode(),
    )
    p = parse_message(raw)
    assert p.message_id == "<abc.123@x.org>"
    assert p.subject == "Réunion de mardi"
    assert p.date == dt.datetime(2024, 6, 4, 15, 30, tzinfo=UTC)
    assert p.from_display == "Renée Roux <Renee@X.org>"
    assert p.from_addr == "renee@x.org"
    assert p.to_addrs == ("sam@acme.test", "j@y.org") and p.cc_addrs == ("bob@z.org",)
    assert p.in_reply_to == "<p1@x.org>" and p.references == ("<root@x.org>", "<p1@x.org>")
    assert p.body_text.strip() == "Grüße" and p.body_html is None
    assert p.defects == [] and p.size == len(raw)


def test_alternative_html_and_text_and_inline_image_and_rfc2231_name():
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    raw = msg(
        "From: a@x.org",
        "To: b@y.org",
        "Subject: s",
        "Message-ID: <m@x>",
        'Content-Type: multipart/related; boundary="R"',
        body=(
            b'--R\r\nContent-Type: multipart/alternative; boundary="A"\r\n\r\n'
            b"--A\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nplain\r\n"
            b"--A\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            b'<p>caf=C3=A9 <img src=3D"cid:logo@x"></p>\r\n--A--\r\n'
            b"--R\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: inline; filename*=utf-8''Pr%C3%A4sentation.png\r\n\r\n"
            + base64.encodebytes(png)
            + b"--R--\r\n"
        ),
    )
    p = parse_message(raw)
    assert p.body_text is None  # the richest alternative only, as a mail client shows
    assert "café" in p.body_html and "café" in p.body and "plain" not in p.body
    [att] = p.attachments
    assert (att.filename, att.content_type, att.content_id, att.inline, att.data) == (
        "Präsentation.png",
        "image/png",
        "logo@x",
        True,
        png,
    )
    assert p.defects == []


def test_forwarded_message_shown_inline_with_its_attachments():
    inner = msg(
        "From: Carl <c@z.org>",
        "To: a@x.org",
        "Subject: Original offer",
        "Date: Mon, 3 Jun 2024 10:00:00 +0000",
        "Message-ID: <inner@z.org>",
        'Content-Type: multipart/mixed; boundary="I"',
        body=(
            b"--I\r\nContent-Type: text/plain\r\n\r\ninner text\r\n"
            b"--I\r\nContent-Type: application/pdf; name=offer.pdf\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n--I--\r\n"
        ),
    )
    for disposition in ("", "Content-Disposition: attachment\r\n"):
        raw = msg(
            "From: a@x.org",
            "To: b@y.org",
            "Subject: Fwd",
            "Message-ID: <fwd@x.org>",
            'Content-Type: multipart/mixed; boundary="M"',
            body=(
                b"--M\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
                b"--M\r\nContent-Type: message/rfc822\r\n"
                + disposition.encode()
                + b"\r\n"
                + inner
                + b"\r\n--M--\r\n"
            ),
        )
        p = parse_message(raw)
        # In order: the forwarding text, then the forwarded message as a quote.
        body = p.body
        assert body.index("see below") < body.index("Original offer") < body.index("inner text")
        assert "Carl &lt;c@z.org&gt;" in body and "<blockquote" in body
        names = [a.filename for a in p.attachments]
        assert "offer.pdf" in names  # the forwarded message's own attachment
        if disposition:  # attached as a file: kept as one too
            [eml] = [a for a in p.attachments if a.content_type == "message/rfc822"]
            assert eml.filename == "Original offer.eml"
            again = parse_message(eml.data)
            assert again.message_id == "<inner@z.org>" and "inner text" in again.body
        else:
            assert names == ["offer.pdf"]


def test_missing_message_id_is_synthesised_stably_and_matches_header_fetch():
    headers = [
        "From: a@x.org",
        "To: b@y.org",
        "Subject: no id",
        "Date: Mon, 3 Jun 2024 10:00:00 +0000",
    ]
    raw = msg(*headers)
    p1, p2 = parse_message(raw), parse_message(raw)
    assert p1.message_id == p2.message_id
    assert p1.message_id.startswith("<") and p1.message_id.endswith("@mailsync.invalid>")
    assert "missing Message-ID; synthesised" in p1.defects
    # the IMAP header fetch returns only some header fields, in the server's order, and the
    # beginning of the body (BODY.PEEK[TEXT]<0.N>) for a message without Message-ID
    fetched = ("\r\n".join(reversed(headers)) + "\r\n\r\n").encode()
    assert (
        parse_headers(fetched, folder="INBOX", uid=1, body=b"hello\r\n").message_id == p1.message_id
    )
    # Same headers, another body: another message (they never merge).
    assert parse_message(msg(*headers, body=b"other\r\n")).message_id != p1.message_id
    other = parse_message(msg(*headers[:-1], "Date: Mon, 3 Jun 2024 10:00:01 +0000"))
    assert other.message_id != p1.message_id
    assert synthesize_message_id("a", "b", None, "d", "s") == synthesize_message_id(
        " a", "b ", "", "d", "s"
    )


@pytest.mark.parametrize("charset,cte", [(c, v[0]) for c, v in corpus.CHARSETS.items()])
def test_every_corpus_charset_decodes(charset, cte):
    for phrase in corpus.CHARSETS[charset][1]:
        text = phrase.encode(charset, "replace").decode(charset)
        raw = msg(
            "From: a@x.org",
            "Message-ID: <c@x>",
            f"Content-Type: text/plain; charset={charset}",
            f"Content-Transfer-Encoding: {cte}",
            body=corpus._encode_body(text, charset, cte),
        )
        p = parse_message(raw)
        assert text in p.body_text and p.defects == []


def test_unknown_charset_and_undeclared_8bit_decode_with_defect():
    p = parse_message(
        msg(
            "From: a@x.org",
            "Message-ID: <c@x>",
            "Content-Type: text/plain; charset=x-unknown",
            body="Prix spécial".encode("latin-1"),
        )
    )
    assert p.body_text == "Prix spécial"
    assert any("x-unknown" in d for d in p.defects)
    p = parse_message(
        msg("From: a@x.org", "Message-ID: <c@x>", body="1 200 € – ok".encode("cp1252"))
    )
    assert p.body_text == "1 200 € – ok" and any("undeclared" in d for d in p.defects)
    p = parse_message(
        msg(
            "From: a@x.org",
            "Message-ID: <c@x>",
            "Content-Type: text/plain; charset=utf-8",
            body=b"\x81\x8d\xff bad",
        )
    )
    assert "bad" in p.body_text and p.defects


def test_decode_bytes_order():
    assert decode_bytes("Привет".encode("koi8-r"), "koi8-r") == "Привет"
    assert decode_bytes("é".encode("utf-8"), "bogus") == "é"
    assert decode_bytes("é€".encode("cp1252"), None) == "é€"
    assert decode_bytes(b"\x81\x8d", None) == "\x81\x8d"  # latin-1 never fails
    assert decode_bytes(None, None) == ""


def test_broken_structures_do_not_raise_and_keep_what_they_can():
    no_boundary = parse_message(
        msg(
            "From: a@x.org",
            "Message-ID: <c@x>",
            "Content-Type: multipart/mixed",
            body=b"--zz\r\nContent-Type: text/plain\r\n\r\nkept\r\n--zz--",
        )
    )
    assert "kept" in no_boundary.body_text and no_boundary.defects
    bad_b64 = parse_message(
        msg(
            "From: a@x.org",
            "Message-ID: <c@x>",
            'Content-Type: multipart/mixed; boundary="B"',
            body=(
                b"--B\r\nContent-Type: text/plain\r\n\r\nbody\r\n--B\r\n"
                b"Content-Type: application/pdf; name=x.pdf\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\n"
                b"JVBER!!*not base64\r\nQUJDR\r\n--B--\r\n"
            ),
        )
    )
    assert bad_b64.body_text.strip() == "body"
    assert bad_b64.attachments[0].filename == "x.pdf"
    assert any("base64" in d for d in bad_b64.defects)
    header_only = parse_message(b"From: a@x.org\r\nSubject: only headers\r\nMessage-ID: <h@x>")
    assert header_only.subject == "only headers" and header_only.body_text in (None, "")
    empty = parse_message(b"")
    assert empty.message_id.endswith("@mailsync.invalid>")


def test_dates():
    assert parse_date("Mon, 3 Jun 2024 10:00:00 -0000") == dt.datetime(2024, 6, 3, 10, tzinfo=UTC)
    assert parse_date("3 Jun 2024 23:00 -0500") == dt.datetime(2024, 6, 4, 4, tzinfo=UTC)
    defects = []
    assert parse_date("yesterday-ish", defects) is None and defects
    assert parse_date(None) is None
    assert parse_date("Mon, 3 Jun 9999 10:00:00 +0000") is None


def test_max_attachment_bytes():
    raw = msg(
        "From: a@x.org",
        "Message-ID: <c@x>",
        'Content-Type: multipart/mixed; boundary="B"',
        body=(
            b"--B\r\nContent-Type: text/plain\r\n\r\nbody\r\n--B\r\nContent-Type: "
            b"application/octet-stream\r\nContent-Disposition: attachment; filename=big.bin"
            b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(b"x" * 5000)
            + b"--B--\r\n"
        ),
    )
    assert len(parse_message(raw).attachments[0].data) == 5000
    p = parse_message(raw, max_attachment_bytes=1000)
    assert p.attachments == [] and p.body_text.strip() == "body"
    assert [(o.filename, o.size, o.reason) for o in p.omitted] == [
        ("big.bin", 5000, "attachment_limit")
    ]


def test_parse_headers_fields_and_auto_submitted():
    raw = (
        b"Message-ID: <n@list.org>\r\nFrom: News <news@list.org>\r\nTo: sam@acme.test\r\n"
        b"Subject: =?utf-8?b?SGVsbG8g8J+YgA==?=\r\nDate: Mon, 3 Jun 2024 10:00:00 +0000\r\n"
        b"List-Id: <weekly.list.org>\r\n\r\n"
    )
    h = parse_headers(raw, folder="INBOX", uid=42, size=1234, flags=(b"\\Seen", "$Forwarded"))
    assert (h.folder, h.uid, h.size, h.flags) == ("INBOX", 42, 1234, ("\\Seen", "$Forwarded"))
    assert h.subject == "Hello 😀" and h.from_addrs == ("news@list.org",)
    assert h.auto_submitted and h.all_addrs == ("news@list.org", "sam@acme.test")
    for extra, auto in (
        (b"Auto-Submitted: auto-replied\r\n", True),
        (b"Auto-Submitted: no\r\n", False),
        (b"Precedence: bulk\r\n", True),
        (b"Precedence: junk\r\n", True),
        (b"Precedence: first-class\r\n", False),
    ):
        h = parse_headers(b"From: a@x.org\r\n" + extra + b"\r\n", folder="INBOX", uid=1)
        assert h.auto_submitted is auto, extra
    assert parse_headers(b"", folder="INBOX", uid=1).message_id.endswith("@mailsync.invalid>")


def test_corpus_roundtrip_ids_and_addresses():
    msgs = corpus.generate(
        7, "sam@acme.test", ["ann@client.org", "bob@other.fr", "dmitri@ru.test"], 300
    )
    for m in msgs:
        p = parse_message(m.raw)
        head = m.raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        h = parse_headers(head, folder=m.folder, uid=1)
        if h.synthetic_id:  # the session fetches the body's beginning for these
            h = parse_headers(head, folder=m.folder, uid=1, body=body_of(m.raw))
        assert p.message_id == h.message_id == m.message_id
        assert set(h.all_addrs) == set(m.addrs)
        if not m.malformed:
            assert p.defects == [], (m.charset, p.defects)
            assert p.subject == h.subject == m.subject
            assert len(p.attachments) == m.attachments
            assert p.date == m.date.replace(microsecond=0)
            assert p.in_reply_to == m.in_reply_to


@given(st.binary(max_size=3000))
@settings(max_examples=400, deadline=None)
def test_parse_message_never_raises_on_bytes(data):
    p = parse_message(data)
    assert p.message_id.startswith("<")
    h = parse_headers(data, folder="INBOX", uid=1)
    assert h.message_id.startswith("<")


_SAMPLES = corpus.generate(
    3,
    "sam@acme.test",
    ["ann@client.org", "bob@other.fr"],
    60,
    malformed_ratio=0.2,
    attachment_ratio=0.1,
    big_every=0,
)


@given(
    st.sampled_from(_SAMPLES),
    st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=0, max_size=8)), max_size=6),
    st.integers(0, 10**6),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_parse_message_never_raises_on_mutated_mail(sample, edits, cut):
    raw = bytearray(sample.raw)
    for pos, junk in edits:
        pos %= max(1, len(raw))
        raw[pos : pos + len(junk)] = junk
    raw = bytes(raw[: max(1, cut % (len(raw) + 1))])
    p = parse_message(raw)
    assert isinstance(p.defects, list)
    assert p.date is None or p.date.tzinfo is not None
