"""The fidelity mail generator itself (``mailsync.testing.fidelity_mail``), not the parser.

Each message parses with the standard library without raising, is built the way its case says
(raw byte checks), and its ``texts`` / ``attachments`` / ``subject`` / ``date`` are what the
case says a mail client shows. Same seed and date give the same bytes. No server.
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import re
import struct
import zlib
from email.utils import getaddresses, parsedate_to_datetime

import pytest

from mailsync.testing import fidelity_mail
from mailsync.testing.fidelity_mail import (
    DATE_RULES,
    NAMES,
    STDLIB_DIFFERS,
    FidelityMessage,
    fidelity_corpus,
    normalise,
    second_contact,
    shown_attachments,
    shown_texts,
)

OWNER = "sam.seller@crm.test"
CONTACT = "ann.lead@acme.test"
CONTACT2 = "contact2@acme.test"
DATE = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
WINDOW = dt.timedelta(days=10)

# messages whose envelope does not follow "From contact (INBOX) / To contact (Sent)"
ENVELOPE_EXCEPTIONS = {
    "bounce_dsn": "From MAILER-DAEMON of the owner's relay; the contact is the failed recipient",
    "two_copies_more_recipients_b": "the owner's own message in INBOX: the contact is in To",
}


@pytest.fixture(scope="module")
def corpus() -> list[FidelityMessage]:
    return fidelity_corpus(OWNER, CONTACT, date=DATE)


@pytest.fixture(scope="module")
def by_name(corpus) -> dict[str, FidelityMessage]:
    return {m.name: m for m in corpus}


def parse(raw: bytes, policy=email.policy.default):
    return email.message_from_bytes(raw, policy=policy)


def head(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def addrs(msg, name) -> list[str]:
    return [a.lower() for _, a in getaddresses([str(v) for v in msg.get_all(name, [])])]


def leaves(msg):
    """Every non-multipart part, *without* entering message/rfc822 (a list, not a generator)."""
    out = []
    stack = [msg]
    while stack:
        part = stack.pop(0)
        if part.get_content_maintype() == "multipart":
            stack[0:0] = list(part.iter_parts())
        else:
            out.append(part)
    return out


# --------------------------------------------------------------------------- the corpus as a whole


def test_names_unique_and_in_order(corpus):
    names = [m.name for m in corpus]
    assert len(names) == len(set(names)) == 28
    assert tuple(names) == NAMES


def test_field_values(corpus):
    for m in corpus:
        assert m.folder in ("INBOX", "Sent"), m.name
        assert m.date_rule in DATE_RULES, m.name
        assert m.note and "\n" not in m.note, m.name
        assert isinstance(m.raw, bytes) and m.size == len(m.raw)
        assert all(isinstance(t, str) and t == normalise(t) and t for t in m.texts), m.name
        for att in m.attachments:
            assert set(att) == {"filename", "content_type", "data"}, m.name
            assert att["filename"], m.name
            assert att["content_type"] == att["content_type"].lower(), m.name
            assert isinstance(att["data"], bytes) and att["data"], m.name
    assert set(STDLIB_DIFFERS) <= set(NAMES)


def test_about_a_third_sent(corpus):
    sent = sum(m.folder == "Sent" for m in corpus)
    assert 0.25 <= sent / len(corpus) <= 0.4


def test_every_message_parses_without_raising(corpus):
    for m in corpus:
        for policy in (email.policy.default, email.policy.compat32, email.policy.SMTP):
            msg = parse(m.raw, policy)
            for part in msg.walk():
                for key in part.keys():
                    str(part[key])
                part.get_content_type()
                part.get_filename()
                part.get_payload(decode=True)
                if policy is email.policy.default and not part.is_multipart():
                    part.get_content()
            assert not [d for d in msg.defects], (m.name, msg.defects)
        shown_texts(m.raw, client=False)


def test_crlf_ascii_headers_no_nul(corpus):
    """What Cyrus checks on APPEND: no NUL, no bare CR or LF, an ASCII header section whose
    lines all have a colon; every case of this corpus passes (cyrus_ok)."""
    for m in corpus:
        assert m.cyrus_ok is True, m.name
        assert b"\x00" not in m.raw, m.name
        assert m.raw.count(b"\n") == m.raw.count(b"\r\n") == m.raw.count(b"\r"), m.name
        assert m.raw.endswith(b"\r\n"), m.name
        h = head(m.raw)
        assert h.isascii(), m.name
        for line in h.split(b"\r\n"):
            assert line[:1] in (b" ", b"\t") or re.match(rb"^[!-9;-~]+:", line), (m.name, line)
            assert len(line) <= 998, m.name


def test_mime_version(corpus):
    for m in corpus:
        assert re.search(rb"(?im)^MIME-Version: 1\.0\r$", head(m.raw)), m.name


def test_concerns_the_contact(corpus):
    for m in corpus:
        msg = parse(m.raw)
        if m.name in ENVELOPE_EXCEPTIONS:
            continue
        if m.folder == "INBOX":
            assert addrs(msg, "From") == [CONTACT], m.name
            assert OWNER in addrs(msg, "To"), m.name
        else:
            assert addrs(msg, "From") == [OWNER], m.name
            assert CONTACT in addrs(msg, "To"), m.name


def test_message_ids(corpus):
    seen: dict[str, str] = {}
    for m in corpus:
        msg = parse(m.raw, email.policy.compat32)
        values = msg.get_all("Message-ID", [])
        if m.message_id is None:
            assert values == [], m.name
            continue
        assert values == [m.message_id], m.name
        assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", m.message_id), m.name
        if m.message_id in seen:
            assert {seen[m.message_id], m.name} == {
                "two_copies_more_recipients_a",
                "two_copies_more_recipients_b",
            }
        seen[m.message_id] = m.name
    assert [m.name for m in corpus if m.message_id is None] == [
        "no_message_id_a",
        "no_message_id_b",
    ]


def test_dates(corpus):
    for m in corpus:
        msg = parse(m.raw, email.policy.compat32)
        header = msg["Date"]
        if m.date_rule == "header":
            when = parsedate_to_datetime(header)
            assert when == m.date, m.name
            assert DATE - WINDOW <= when < DATE, m.name
        elif m.date_rule == "received":
            assert header is None, m.name
            top = msg.get_all("Received")[0]
            when = parsedate_to_datetime(top.rsplit(";", 1)[1].strip())
            assert when == m.date and DATE - WINDOW <= when < DATE, m.name
        else:
            assert m.date is None, m.name
            if header is not None:
                when = parsedate_to_datetime(header)
                assert not (DATE - WINDOW <= when <= DATE), m.name
    rules = {m.name: m.date_rule for m in corpus if m.date_rule != "header"}
    assert rules == {
        "no_date": "internaldate",
        "future_date": "internaldate",
        "ancient_date": "internaldate",
        "no_date_with_received": "received",
    }


def test_date_cases(by_name):
    assert parse(by_name["no_date"].raw)["Date"] is None
    future = parsedate_to_datetime(parse(by_name["future_date"].raw, email.policy.compat32)["Date"])
    assert DATE + dt.timedelta(days=3 * 365 - 11) <= future <= DATE + dt.timedelta(days=3 * 366)
    assert parse(by_name["ancient_date"].raw, email.policy.compat32)["Date"].startswith(
        "Mon, 1 Jan 1979 "
    )
    # 1 January 1979 was a Monday
    assert dt.date(1979, 1, 1).weekday() == 0


def test_default_date_is_now():
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    corpus = fidelity_corpus(OWNER, CONTACT)
    after = dt.datetime.now(dt.timezone.utc)
    for m in corpus:
        if m.date_rule == "header":
            assert before - WINDOW <= m.date <= after, m.name


def test_subjects(corpus):
    for m in corpus:
        assert m.subject is not None, m.name
        assert str(parse(m.raw)["Subject"]) == m.subject, m.name


def test_subject_split_midchar(by_name):
    m = by_name["subject_split_midchar"]
    assert b"Subject: =?utf-8?q?caf=C3?= =?utf-8?q?=A9?=\r\n" in m.raw
    # policy.default joins the bytes of adjacent encoded words: the client's "café"
    assert str(parse(m.raw)["Subject"]) == "café" == m.subject
    from email.header import decode_header, make_header

    assert str(make_header(decode_header(parse(m.raw, email.policy.compat32)["Subject"]))) == "café"


def test_determinism(corpus):
    again = fidelity_corpus(OWNER, CONTACT, date=DATE)
    assert [m.raw for m in again] == [m.raw for m in corpus]
    assert [(m.texts, m.attachments, m.message_id, m.date) for m in again] == [
        (m.texts, m.attachments, m.message_id, m.date) for m in corpus
    ]
    other = fidelity_corpus(OWNER, CONTACT, seed="other", date=DATE)
    assert [m.name for m in other] == list(NAMES)
    different = sum(a.raw != b.raw for a, b in zip(corpus, other))
    assert different >= len(NAMES) - 1  # only the fixed 1979 message may come out alike
    shifted = fidelity_corpus(OWNER, CONTACT, date=DATE + dt.timedelta(days=1))
    assert shifted[0].date == corpus[0].date + dt.timedelta(days=1)


def test_second_contact():
    assert second_contact(CONTACT) == CONTACT2
    assert second_contact("contact2@x.test") == "contact3@x.test"


# --------------------------------------------------------------------------- expected texts

# exact texts (normalised) of the cases whose whole text is short
EXACT_TEXTS = {
    "plain_then_html_mixed": ["Plain part first", "HTML part second"],
    "several_inline_texts": ["One", "Two", "Three"],
    "no_message_id_a": ["Body A"],
    "no_message_id_b": ["Body B"],
    "apple_mixed_inline_images": ["Hello", "See the photo", "Bye"],
    "signed_smime": ["Signed text"],
    "pkcs7_mime": [],
    "related_cid": ["This is our new logo & colours: Best regards, Sam Seller"],
    "outlook_tnef": ["Hi, Please find the meeting notes below. Kind regards"],
    "qp_soft_breaks": [
        "Hello, The new price is 1200 EUR per licence; the formula is "
        "total=price*seats, as agreed at the café yesterday. Internationalisation "
        "of the documentation will follow in May. Best regards"
    ],
    "iso_2022_jp": [
        "いつもお世話になっております。 見積書を送付いたします。 "
        "ご確認のほど、よろしくお願いいたします。"
    ],
    "cp1252_labelled_latin1": [
        "Hello, Our quote: € 2.500 – “all inclusive” for the café – valid 30 days. Regards"
    ],
    "gb18030": ["您好！ 附件是朱镕基路项目的报价单，请查收。 𠮷野家的订单下周发货。 此致 敬礼"],
    "koi8_r": [
        "Здравствуйте! Отправляю коммерческое предложение. Счёт на оплату будет "
        "завтра. -- С уважением, Анна"
    ],
    "undeclared_8bit": ["Grüße aus Köln – the invoice is 1.200 € (net), payable in 30 days."],
    "rfc2231_filenames": ["Please find the presentation and the offer attached."],
    "subject_split_midchar": ["Shall we meet at the café on Friday?"],
}


def test_exact_texts(by_name):
    for name, texts in EXACT_TEXTS.items():
        assert by_name[name].texts == texts, name


def test_texts_are_computed_from_the_bytes(corpus):
    for m in corpus:
        assert shown_texts(m.raw) == m.texts, m.name
        assert shown_attachments(m.raw) == m.attachments, m.name


def test_stdlib_differs_only_where_documented(corpus):
    for m in corpus:
        stdlib = shown_texts(m.raw, client=False)
        if m.name in STDLIB_DIFFERS:
            assert stdlib != m.texts, m.name
        else:
            assert stdlib == m.texts, m.name


def test_stdlib_difference_latin1(by_name):
    m = by_name["cp1252_labelled_latin1"]
    part = parse(m.raw)
    assert part.get_param("charset") == "iso-8859-1"
    body = part.get_payload(decode=True)
    for byte in (b"\x80", b"\x93", b"\x94", b"\x96"):
        assert byte in body
    stdlib = part.get_content()
    assert "\x80" in stdlib and "€" not in stdlib  # a C1 control, not the euro sign
    assert "€" in m.texts[0] and "“all inclusive”" in m.texts[0] and "–" in m.texts[0]


def test_stdlib_difference_undeclared_8bit(by_name):
    m = by_name["undeclared_8bit"]
    part = parse(m.raw)
    assert part.get_param("charset") is None
    assert "Content-Type: text/plain\r\n" in m.raw.decode("utf-8")
    assert "\ufffd" in part.get_content()  # US-ASCII with replacement characters
    assert m.texts == [normalise(part.get_payload(decode=True).decode("utf-8"))]
    assert not head(m.raw).decode("ascii").count("\ufffd")


def test_bounce_texts(by_name):
    m = by_name["bounce_dsn"]
    msg = parse(m.raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    types = [p.get_content_type() for p in msg.iter_parts()]
    assert types == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    assert len(m.texts) == 3
    human, status, returned = m.texts
    assert "could not be delivered" in human and "5.1.1" in human
    for line in (
        f"Final-Recipient: rfc822; {CONTACT}",
        "Action: failed",
        "Status: 5.1.1",
        "Reporting-MTA: dns; smtp.crm.test",
    ):
        assert line in status
    assert "Subject: Offer for Q3" in returned and f"To: Ann Lead <{CONTACT}>" in returned
    # the stdlib's own get_content() of message/delivery-status: only the first block, bytes
    dsn = list(msg.iter_parts())[1].get_content()
    assert isinstance(dsn, bytes) and b"Reporting-MTA" in dsn and b"Status:" not in dsn
    assert not any("Status: 5.1.1" in t for t in shown_texts(m.raw, client=False))
    assert m.attachments == []


def test_forwarded_rfc822(by_name):
    m = by_name["forwarded_rfc822"]
    msg = parse(m.raw)
    fwd = list(msg.iter_parts())[1]
    assert fwd.get_content_type() == "message/rfc822"
    inner = fwd.get_payload(0)
    assert m.texts == [
        "FYI",
        "Bob Buyer <bob.buyer@acme.test>",
        normalise(inner["Date"]),
        "Question about the offer",
        f"Ann Lead <{CONTACT}>",
        "Original question?",
    ]
    assert DATE - WINDOW <= parsedate_to_datetime(inner["Date"]) < m.date
    assert [a["filename"] for a in m.attachments] == ["orig.pdf"]


def test_only_rfc822(by_name):
    m = by_name["only_rfc822"]
    msg = parse(m.raw)
    assert msg.get_content_type() == "message/rfc822"
    inner = msg.get_payload(0)
    assert m.texts[:4] == [normalise(str(inner[h])) for h in ("From", "Date", "Subject", "To")]
    assert m.texts[4:] == ["We can deliver the first batch in week 21 and the rest in week 23."]
    assert m.attachments == []


def test_inline_text_with_filename(by_name):
    m = by_name["inline_text_with_filename"]
    assert b"Content-Disposition: inline; filename=msg.txt\r\n" in m.raw
    assert m.texts[0] == "Here is the log you asked for."
    assert "ERROR disk full on /var" in m.texts[1]
    assert [(a["filename"], a["content_type"]) for a in m.attachments] == [
        ("msg.txt", "text/plain")
    ]
    assert normalise(m.attachments[0]["data"].decode("ascii")) == m.texts[1]


def test_plain_then_html_structure(by_name):
    msg = parse(by_name["plain_then_html_mixed"].raw)
    assert msg.get_content_type() == "multipart/mixed"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert list(msg.iter_parts())[1].get_content().strip() == "<p>HTML part second</p>"


def test_several_inline_texts_structure(by_name):
    msg = parse(by_name["several_inline_texts"].raw)
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "application/pdf",
        "text/plain",
        "text/plain",
    ]
    assert [p.get_content_disposition() for p in parts] == [None, "attachment", None, None]
    assert "Apple-Mail=_" in msg.get_boundary()


def test_apple_inline_images(by_name):
    m = by_name["apple_mixed_inline_images"]
    msg = parse(m.raw)
    assert msg.get_content_type() == "multipart/alternative"
    plain, mixed = msg.iter_parts()
    # the CRLF before a boundary belongs to the delimiter
    assert plain.get_content() == "Hello\r\n\r\nSee the photo\r\n\r\nBye"
    kids = list(mixed.iter_parts())
    assert [p.get_content_type() for p in kids] == [
        "text/html",
        "image/jpeg",
        "text/html",
        "image/png",
        "text/html",
    ]
    for img in (kids[1], kids[3]):
        assert img.get_content_disposition() == "inline" and img["Content-ID"]
    assert [(a["filename"], a["content_type"]) for a in m.attachments] == [
        ("photo.jpg", "image/jpeg"),
        ("chart.png", "image/png"),
    ]


def test_related_cid(by_name):
    m = by_name["related_cid"]
    msg = parse(m.raw)
    assert msg.get_content_type() == "multipart/related"
    root, logo = msg.iter_parts()
    assert 'src="cid:logo@x"' in root.get_content()
    assert logo["Content-ID"] == "<logo@x>" and logo.get_content_type() == "image/png"
    assert [a["filename"] for a in m.attachments] == ["logo.png"]


def test_smime(by_name):
    signed = by_name["signed_smime"]
    msg = parse(signed.raw)
    assert msg.get_content_type() == "multipart/signed"
    assert msg.get_param("protocol") == "application/pkcs7-signature"
    assert [(a["filename"], a["content_type"]) for a in signed.attachments] == [
        ("smime.p7s", "application/pkcs7-signature")
    ]
    enc = by_name["pkcs7_mime"]
    msg = parse(enc.raw)
    assert msg.get_content_type() == "application/pkcs7-mime"
    assert msg.get_param("smime-type") == "enveloped-data"
    assert enc.texts == []
    assert [(a["filename"], a["content_type"]) for a in enc.attachments] == [
        ("smime.p7m", "application/pkcs7-mime")
    ]
    # DER ContentInfo: SEQUENCE, then the signedData / envelopedData OID
    assert signed.attachments[0]["data"][0] == 0x30
    assert bytes.fromhex("06092a864886f70d010702") in signed.attachments[0]["data"][:16]
    assert bytes.fromhex("06092a864886f70d010703") in enc.attachments[0]["data"][:16]


def test_outlook_tnef(by_name):
    m = by_name["outlook_tnef"]
    assert [(a["filename"], a["content_type"]) for a in m.attachments] == [
        ("winmail.dat", "application/ms-tnef")
    ]
    data = m.attachments[0]["data"]
    assert struct.unpack("<I", data[:4])[0] == 0x223E9F78
    assert b"IPM.Microsoft Mail.Note\x00" in data


def test_qp_soft_breaks(by_name):
    m = by_name["qp_soft_breaks"]
    assert b"Content-Transfer-Encoding: quoted-printable" in m.raw
    assert b"Internationalisa=\r\ntion" in m.raw  # a soft break inside a word
    assert b"caf=C3=\r\n=A9" in m.raw  # a soft break between the two bytes of é
    assert b"total=3Dprice" in m.raw
    assert "Internationalisation" in m.texts[0] and "café" in m.texts[0]


def test_format_flowed(by_name):
    m = by_name["format_flowed"]
    msg = parse(m.raw)
    assert msg.get_param("format") == "flowed" and msg.get_param("delsp") == "yes"
    assert re.search(rb"[^ ]  \r\n", m.raw)  # flowed lines (delsp=yes: one space is removed)
    assert b"\r\n> Could you send me" in m.raw
    # no unflowing: the stdlib's text, whitespace-normalised, holds the client's
    shown = "Here is the summary of what we agreed on, so that everyone on the team"
    assert normalise(shown) in m.texts[0]
    assert "> Could you send me a short summary of the call?" in m.texts[0]


def test_charsets(by_name):
    jp = by_name["iso_2022_jp"]
    msg = parse(jp.raw)
    assert msg.get_content_charset() == "iso-2022-jp"
    assert jp.raw.isascii() and b"\x1b$B" in jp.raw
    assert b"Subject: =?ISO-2022-JP?B?" in jp.raw and jp.subject == "お見積りの件"
    gb = by_name["gb18030"]
    msg = parse(gb.raw)
    plain = list(msg.iter_parts())[0]
    assert plain.get_content_charset() == "gb18030"
    data = plain.get_payload(decode=True)
    assert "𠮷".encode("gb18030") in data and len("𠮷".encode("gb18030")) == 4
    with pytest.raises(UnicodeEncodeError):
        "镕".encode("gb2312")
    assert "镕" in gb.texts[0] and "𠮷" in gb.texts[0]
    ru = by_name["koi8_r"]
    msg = parse(ru.raw)
    assert msg.get_content_charset() == "koi8-r"
    assert "Здравствуйте".encode("koi8_r") in ru.raw
    assert ru.subject == "Коммерческое предложение"


def test_rfc2231_filenames(by_name):
    m = by_name["rfc2231_filenames"]
    assert b"filename*=utf-8''Pr%C3%A4sentation%20Q3.pdf" in m.raw
    assert b"filename*0*=utf-8''" in m.raw and b"filename*1*=" in m.raw
    assert [a["filename"] for a in m.attachments] == [
        "Präsentation Q3.pdf",
        "Angebot für die Überarbeitung der Website – Fassung 2 (final).pdf",
    ]
    # compat32 decodes them alike
    msg = parse(m.raw, email.policy.compat32)
    names = [p.get_filename() for p in msg.walk() if p.get_content_type() == "application/pdf"]
    assert names == [a["filename"] for a in m.attachments]


def test_no_message_id_pair(by_name):
    a, b = by_name["no_message_id_a"], by_name["no_message_id_b"]
    ha, hb = parse(a.raw), parse(b.raw)
    for key in ("From", "To", "Cc", "Date", "Subject"):
        assert ha[key] is not None and str(ha[key]) == str(hb[key]), key
    assert addrs(ha, "Cc") == [CONTACT2]
    assert a.raw != b.raw and a.folder == b.folder
    assert (a.texts, b.texts) == (["Body A"], ["Body B"])


def test_two_copies(by_name):
    a, b = by_name["two_copies_more_recipients_a"], by_name["two_copies_more_recipients_b"]
    assert a.message_id == b.message_id is not None
    assert {a.folder, b.folder} == {"INBOX", "Sent"} and a.folder == "Sent"
    ma, mb = parse(a.raw), parse(b.raw)
    assert addrs(ma, "To") == [CONTACT] and addrs(ma, "Cc") == []
    assert addrs(mb, "To") == [CONTACT] and addrs(mb, "Cc") == [CONTACT2]
    assert ma.get_content() == mb.get_content() and a.texts == b.texts
    assert str(ma["Date"]) == str(mb["Date"]) and a.date == b.date


# --------------------------------------------------------------------------- attachments

EXPECTED_ATTACHMENTS = {
    "several_inline_texts": [("a.pdf", "application/pdf")],
    "inline_text_with_filename": [("msg.txt", "text/plain")],
    "forwarded_rfc822": [("orig.pdf", "application/pdf")],
    "apple_mixed_inline_images": [("photo.jpg", "image/jpeg"), ("chart.png", "image/png")],
    "outlook_tnef": [("winmail.dat", "application/ms-tnef")],
    "related_cid": [("logo.png", "image/png")],
    "signed_smime": [("smime.p7s", "application/pkcs7-signature")],
    "pkcs7_mime": [("smime.p7m", "application/pkcs7-mime")],
    "rfc2231_filenames": [
        ("Präsentation Q3.pdf", "application/pdf"),
        ("Angebot für die Überarbeitung der Website – Fassung 2 (final).pdf", "application/pdf"),
    ],
    "ancient_date": [("scan0001.pdf", "application/pdf")],
}


def test_attachment_lists(corpus):
    for m in corpus:
        got = [(a["filename"], a["content_type"]) for a in m.attachments]
        assert got == EXPECTED_ATTACHMENTS.get(m.name, []), m.name


def test_attachment_bytes_round_trip(corpus):
    """Each attachment's bytes are in the raw message exactly as encoded (base64 in 76-column
    CRLF lines, or the text itself), and decode back through compat32 too."""
    for m in corpus:
        legacy = [p for p in parse(m.raw, email.policy.compat32).walk() if not p.is_multipart()]
        for att in m.attachments:
            data = att["data"]
            if att["content_type"].startswith("text/"):
                assert data in m.raw, (m.name, att["filename"])
            else:
                enc = base64.encodebytes(data).replace(b"\n", b"\r\n")
                assert enc in m.raw, (m.name, att["filename"])
            assert any(
                p.get_filename() == att["filename"] and p.get_payload(decode=True) == data
                for p in legacy
            ), m.name


def test_attachment_formats(corpus):
    for m in corpus:
        for att in m.attachments:
            data, ctype = att["data"], att["content_type"]
            if ctype == "application/pdf":
                assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
            elif ctype == "image/jpeg":
                assert data.startswith(b"\xff\xd8\xff") and data.endswith(b"\xff\xd9")
            elif ctype == "image/png":
                assert data.startswith(b"\x89PNG\r\n\x1a\n")
                pos = 8
                while pos < len(data):  # every chunk's CRC is right
                    (length,) = struct.unpack(">I", data[pos : pos + 4])
                    kind = data[pos + 4 : pos + 8]
                    body = data[pos + 8 : pos + 8 + length]
                    (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
                    assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
                    pos += 12 + length
                assert kind == b"IEND"


# --------------------------------------------------------------------------- the helpers


def test_normalise():
    assert normalise("  a\r\n\tb \u00a0 c\u3000d\n") == "a b c d"
    assert normalise("") == ""


def test_html_text():
    html = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        "<script>alert(1)</script><p>A &amp; B</p><p>C&nbsp;D</p>E<br>F</body></html>"
    )
    assert normalise(fidelity_mail._html_text(html)) == "A & B C D E F"


def test_alternative_takes_the_last_showable():
    raw = (
        b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>rich</p>\r\n"
        b"--b\r\nContent-Type: application/x-unknown\r\n\r\nxx\r\n--b--\r\n"
    )
    assert shown_texts(raw) == ["rich"]
    assert shown_attachments(raw) == []
