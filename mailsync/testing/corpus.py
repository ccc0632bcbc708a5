"""Deterministic generator of realistic raw RFC 5322 messages for tests and benchmarks.

``generate(seed, user, correspondents, n)`` returns ``n`` :class:`CorpusMessage` in date order:
about 40 % sent (folder ``Sent``) and 60 % received (``INBOX``); about half are replies
(In-Reply-To / References to earlier messages of the same correspondent); a quarter carry a
20–60 KB attachment and every ``big_every``-th a 300–700 KB one; bodies and subjects come in
utf-8, iso-8859-1, windows-1252, koi8-r, iso-2022-jp and shift_jis; a few (``malformed_ratio``)
are broken on purpose (missing boundary, bad base64, undeclared 8-bit, unknown charset, header
only, nested message/rfc822, missing Message-ID). Same arguments → same bytes.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
import string
from dataclasses import dataclass, field
from email.header import Header
from email.utils import format_datetime

from .. import addresses
from ..parse import body_of, synthesize_message_id
from ..text import clean_line
from ..types import DIRECTION_RECEIVED, DIRECTION_SENT

__all__ = ["CorpusMessage", "generate", "MALFORMED_KINDS", "CHARSETS"]

MALFORMED_KINDS = (
    "missing_boundary",
    "bad_base64",
    "undeclared_8bit",
    "unknown_charset",
    "header_only",
    "nested_rfc822",
    "no_message_id",
)

# charset → (transfer encoding, sample phrases)
CHARSETS = {
    "utf-8": (
        "8bit",
        [
            "Grüße aus Köln — see you soon 😀",
            "Résumé of our call: next steps",
            "Preisübersicht für Q3 – €1.200 pro Lizenz",
            "Çok teşekkürler, görüşmek üzere",
            "Zażółć gęślą jaźń: offer attached",
        ],
    ),
    "iso-8859-1": (
        "quoted-printable",
        [
            "Réunion de mardi: ordre du jour",
            "Vielen Dank für Ihre Anfrage",
            "Préparation du devis numéro 42",
            "Año nuevo, precios nuevos",
        ],
    ),
    "windows-1252": (
        "quoted-printable",
        [
            "Quote: €2,500 “all inclusive” – valid 30 days",
            "Follow-up … as promised",
            "Café meeting – 10 o’clock",
        ],
    ),
    "koi8-r": (
        "base64",
        [
            "Привет! Отправляю коммерческое предложение",
            "Спасибо за встречу, ждём ответа",
            "Счёт на оплату во вложении",
        ],
    ),
    "iso-2022-jp": (
        "7bit",
        [
            "お世話になっております。見積書を送付いたします",
            "ご連絡ありがとうございます",
            "来週の打ち合わせについて",
        ],
    ),
    "shift_jis": (
        "base64",
        [
            "資料を添付しました。ご確認ください",
            "価格表の件でご相談があります",
            "よろしくお願いいたします",
        ],
    ),
}
_CHARSET_WEIGHTS = {
    "utf-8": 55,
    "iso-8859-1": 12,
    "windows-1252": 12,
    "koi8-r": 7,
    "iso-2022-jp": 7,
    "shift_jis": 7,
}
_TOPICS = [
    "Proposal",
    "Quote",
    "Invoice",
    "Meeting",
    "Contract renewal",
    "Demo",
    "Pricing",
    "Onboarding",
    "Support ticket",
    "Partnership",
    "Order",
    "Introduction",
    "Follow-up",
]
_NAMES = [
    "Ann Smith",
    "Bob Martin",
    "Chloé Dubois",
    "Dmitri Ivanov",
    "Eva Müller",
    "Felipe García",
    "Grace Lee",
    "Hiro Tanaka",
    "Ines Costa",
    "Jan Novák",
    "Kofi Mensah",
    "Lena Schmidt",
    "Marco Rossi",
    "Nora Jensen",
    "Olga Petrova",
]
_ATTACH_TYPES = [
    ("application/pdf", "pdf"),
    ("image/png", "png"),
    ("image/jpeg", "jpg"),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    ("application/zip", "zip"),
    ("text/csv", "csv"),
]


@dataclass
class CorpusMessage:
    raw: bytes = field(repr=False)
    folder: str  # 'INBOX' | 'Sent'
    message_id: str  # what parse_message() / parse_headers() will report
    direction: str  # 'sent' | 'received'
    addrs: tuple[str, ...]  # normalised From + To + Cc
    date: dt.datetime = None
    subject: str = ""
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    correspondent: str | None = None  # the main other party
    attachments: int = 0
    malformed: str | None = None  # one of MALFORMED_KINDS
    charset: str = "utf-8"

    @property
    def size(self) -> int:
        return len(self.raw)


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _qp(data: bytes) -> bytes:
    import quopri

    return quopri.encodestring(data).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _encode_body(text: str, charset: str, cte: str) -> bytes:
    data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode(charset, "replace")
    if cte == "base64":
        return _b64(data)
    if cte == "quoted-printable":
        return _qp(data)
    return data


def _hdr(text: str, charset: str) -> str:
    """An RFC 2047 header value (plain when ASCII)."""
    if text.isascii():
        return text
    try:
        text.encode(charset)
    except UnicodeEncodeError:
        charset = "utf-8"
    return Header(text, charset).encode(linesep="\r\n")


def _addr_hdr(name: str | None, addr: str, charset: str) -> str:
    if not name:
        return addr
    if name.isascii():
        if any(c in name for c in ',.;:@"()'):
            return f'"{name}" <{addr}>'
        return f"{name} <{addr}>"
    return f"{_hdr(name, charset)} <{addr}>"


def _name_for(addr: str, rng: random.Random) -> str:
    local = addr.split("@", 1)[0]
    if "." in local:
        return " ".join(p.capitalize() for p in local.split(".")[:2])
    return rng.choice(_NAMES)


def generate(
    seed,
    user: str,
    correspondents,
    n: int,
    *,
    malformed_ratio: float = 0.03,
    big_every: int = 150,
    attachment_ratio: float = 0.25,
    reply_ratio: float = 0.5,
    sent_ratio: float = 0.4,
    bulk_ratio: float = 0.0,
    start: dt.datetime | None = None,
    user_name: str = "Sam Seller",
) -> list[CorpusMessage]:
    """``n`` messages between ``user`` and ``correspondents``, deterministic for ``seed``.

    ``bulk_ratio``: share of received newsletters (List-Id, Precedence: bulk) from addresses that
    are not correspondents. ``big_every``: every so many messages carries a 300–700 KB attachment
    (0 disables).
    """
    rng = random.Random(f"mailsync-corpus:{seed}")
    correspondents = [c for c in correspondents] or ["someone@example.com"]
    start = start or dt.datetime(2024, 1, 8, 9, 0, tzinfo=dt.timezone.utc)
    when = start
    names = {c: _name_for(c, rng) for c in correspondents}
    threads: dict[str, list[tuple[str, str]]] = {}  # correspondent → [(message_id, subject)]
    out: list[CorpusMessage] = []
    user_domain = user.split("@", 1)[-1]
    malformed_every = int(round(1 / malformed_ratio)) if malformed_ratio > 0 else 0
    for i in range(n):
        when = when + dt.timedelta(minutes=rng.randint(3, 240), seconds=rng.randint(0, 59))
        malformed = None
        if malformed_every and i % malformed_every == malformed_every // 2:
            malformed = MALFORMED_KINDS[(i // malformed_every) % len(MALFORMED_KINDS)]
        bulk = not malformed and bulk_ratio > 0 and rng.random() < bulk_ratio
        sent = not bulk and rng.random() < sent_ratio
        corr = rng.choice(correspondents)
        charset = rng.choices(list(_CHARSET_WEIGHTS), weights=list(_CHARSET_WEIGHTS.values()))[0]
        phrase = rng.choice(CHARSETS[charset][1])
        in_reply_to, refs = None, ()
        thread = threads.get(corr)
        if not bulk and thread and rng.random() < reply_ratio:
            parent_id, subject = thread[-1]
            in_reply_to = parent_id
            refs = tuple(mid for mid, _ in thread[-10:])
            subject = subject if subject.startswith("Re: ") else "Re: " + subject
        else:
            subject = f"{rng.choice(_TOPICS)} #{rng.randint(100, 9999)} – {phrase[:30]}"
            if charset in ("iso-2022-jp", "shift_jis", "koi8-r"):
                subject = f"{phrase[:20]} ({rng.choice(_TOPICS)})"
        cc = []
        if not bulk and len(correspondents) > 2 and rng.random() < 0.2:
            cc = rng.sample([c for c in correspondents if c != corr], k=1)
        if bulk:
            kind = rng.choice(["deals", "weekly", "updates", "promo"])
            sender = f"news@{kind}-{rng.randint(1, 40)}.example.net"
            from_h = _addr_hdr("Newsletter", sender, charset)
            to_list = [user]
        elif sent:
            from_h = _addr_hdr(user_name, user, charset)
            to_list = [corr]
        else:
            from_h = _addr_hdr(names[corr], corr, charset)
            to_list = [user]
        sender_domain = user_domain if sent else (from_h.rsplit("@", 1)[-1].rstrip(">"))
        mid = f"<{seed}.{i}.{rng.getrandbits(48):012x}@{sender_domain}>"
        to_h = ", ".join(
            _addr_hdr(names.get(a) if not sent or a != user else user_name, a, charset)
            if a != user
            else _addr_hdr(user_name, user, charset)
            for a in to_list
        )
        cc_h = ", ".join(_addr_hdr(names.get(a), a, charset) for a in cc)
        tz = dt.timezone(dt.timedelta(hours=rng.choice([-8, -5, 0, 1, 2, 3, 9])))
        date_h = format_datetime(when.astimezone(tz))
        subject_h = _hdr(subject, charset)

        headers = [f"From: {from_h}", f"To: {to_h}"]
        if cc_h:
            headers.append(f"Cc: {cc_h}")
        headers += [f"Subject: {subject_h}", f"Date: {date_h}"]
        if malformed != "no_message_id":
            headers.append(f"Message-ID: {mid}")
        if in_reply_to:
            headers.append(f"In-Reply-To: {in_reply_to}")
            headers.append("References: " + "\r\n ".join(refs))
        if bulk:
            headers.append(f"List-Id: <weekly.{sender_domain}>")
            headers.append("Precedence: bulk")
        headers.append("MIME-Version: 1.0")
        headers.append(f"X-Mailer: mailsync-corpus {seed}")

        n_att = 0
        body = _body_text(rng, phrase, names.get(corr, "there"), user_name, sent)
        att_size = 0
        if big_every and i % big_every == big_every - 1:
            att_size = rng.randint(300_000, 700_000)
        elif rng.random() < attachment_ratio:
            att_size = rng.randint(20_000, 60_000)
        cte, _ = CHARSETS[charset]

        if malformed:
            ctype_lines, payload = _malformed(malformed, rng, body, charset, subject, corr, user)
            n_att = 1 if malformed in ("bad_base64", "nested_rfc822") else 0
        else:
            ctype_lines, payload, n_att = _structure(rng, body, charset, cte, att_size, i)
        if malformed == "header_only":
            raw = ("\r\n".join(headers + ctype_lines) + "\r\n").encode("ascii")
        else:
            raw = ("\r\n".join(headers + ctype_lines) + "\r\n\r\n").encode("ascii") + payload
        if malformed == "no_message_id":
            mid = synthesize_message_id(from_h, to_h, cc_h or None, date_h, subject_h, body_of(raw))
        if not malformed:
            threads.setdefault(corr, []).append((mid, subject))
        addrs = addresses.extract([from_h, to_h] + ([cc_h] if cc_h else []))
        out.append(
            CorpusMessage(
                raw=raw,
                folder="Sent" if sent else "INBOX",
                message_id=mid,
                direction=DIRECTION_SENT if sent else DIRECTION_RECEIVED,
                addrs=addrs,
                date=when,
                subject=clean_line(subject),
                in_reply_to=in_reply_to,
                references=refs,
                correspondent=None if bulk else corr,
                attachments=n_att,
                malformed=malformed,
                charset=charset,
            )
        )
    return out


def _body_text(rng, phrase, their_name, my_name, sent) -> str:
    greet = their_name.split()[0] if sent else my_name.split()[0]
    sign = my_name if sent else their_name
    filler = " ".join(
        rng.choice(
            [
                "Thanks for your time.",
                "As discussed, please find the details below.",
                "Let me know if you have questions.",
                "We can adjust the scope.",
                "The team is available next week.",
                "Pricing is valid until the end of the month.",
            ]
        )
        for _ in range(rng.randint(1, 6))
    )
    return f"Hello {greet},\n\n{phrase}\n\n{filler}\n\nBest regards,\n{sign}\n"


def _html(text: str) -> str:
    import html

    paras = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in text.split("\n\n"))
    return f"<html><body>{paras}</body></html>"


def _boundary(rng, tag) -> str:
    return f"==_{tag}_" + "".join(rng.choices(string.ascii_letters + string.digits, k=20))


def _alternative(rng, body, charset, cte) -> tuple[list[str], bytes]:
    b = _boundary(rng, "alt")
    parts = []
    for sub, text in (("plain", body), ("html", _html(body))):
        parts.append(
            (
                f'--{b}\r\nContent-Type: text/{sub}; charset="{charset}"\r\n'
                f"Content-Transfer-Encoding: {cte}\r\n\r\n"
            ).encode("ascii")
            + _encode_body(text, charset, cte)
            + b"\r\n"
        )
    return [f'Content-Type: multipart/alternative; boundary="{b}"'], b"".join(
        parts
    ) + f"--{b}--\r\n".encode("ascii")


def _structure(rng, body, charset, cte, att_size, i):
    style = rng.random()
    if not att_size:
        if style < 0.35:
            return (
                [
                    f'Content-Type: text/plain; charset="{charset}"',
                    f"Content-Transfer-Encoding: {cte}",
                ],
                _encode_body(body, charset, cte),
                0,
            )
        lines, payload = _alternative(rng, body, charset, cte)
        return lines, payload, 0
    ctype, ext = rng.choice(_ATTACH_TYPES)
    data = rng.randbytes(att_size)
    if ext == "csv":
        data = base64.b64encode(data)[:att_size]
    outer = _boundary(rng, "mixed")
    inner_lines, inner_payload = _alternative(rng, body, charset, cte)
    fname = f"{rng.choice(['offer', 'invoice', 'scan', 'report', 'Präsentation'])}-{i}.{ext}"
    fname_param = (
        f'filename="{fname}"'
        if fname.isascii()
        else "filename*=utf-8''"
        + "".join(
            c
            if c.isascii() and c.isalnum() or c in ".-"
            else "".join(f"%{b:02X}" for b in c.encode("utf-8"))
            for c in fname
        )
    )
    inline = ctype.startswith("image/") and rng.random() < 0.3
    disp = "inline" if inline else "attachment"
    cid = f"\r\nContent-ID: <img{i}@corpus>" if inline else ""
    name = fname if fname.isascii() else "file." + ext
    payload = (
        (f"--{outer}\r\n{inner_lines[0]}\r\n\r\n").encode("ascii")
        + inner_payload
        + (
            f'\r\n--{outer}\r\nContent-Type: {ctype}; name="{name}"'
            f"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: {disp}; {fname_param}"
            f"{cid}\r\n\r\n"
        ).encode("ascii")
        + _b64(data)
        + f"--{outer}--\r\n".encode("ascii")
    )
    return [f'Content-Type: multipart/mixed; boundary="{outer}"'], payload, 1


def _malformed(kind, rng, body, charset, subject, corr, user):
    body = body.replace("\n", "\r\n")
    if kind == "missing_boundary":
        return (
            ["Content-Type: multipart/mixed"],
            b"--xyz\r\nContent-Type: text/plain\r\n\r\n"
            + body.encode("utf-8")
            + b"\r\n--xyz--\r\n",
        )
    if kind == "bad_base64":
        b = _boundary(rng, "bad")
        return (
            [f'Content-Type: multipart/mixed; boundary="{b}"'],
            (f"--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n").encode("ascii")
            + body.encode("utf-8")
            + (
                f'\r\n--{b}\r\nContent-Type: application/pdf; name="broken.pdf"\r\n'
                f"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; "
                f'filename="broken.pdf"\r\n\r\n'
            ).encode("ascii")
            + b"JVBERi0xLjQK!!!not*base64***\r\nQUJDR\r\n"
            + f"--{b}--\r\n".encode("ascii"),
        )
    if kind == "undeclared_8bit":
        return (
            ["Content-Type: text/plain"],
            ("Bonjour, voici le devis: 1 200 € — à bientôt\r\n" + body).encode("cp1252", "replace"),
        )
    if kind == "unknown_charset":
        return (
            ['Content-Type: text/plain; charset="x-unknown"', "Content-Transfer-Encoding: 8bit"],
            ("Prix spécial: " + body).encode("latin-1", "replace"),
        )
    if kind == "header_only":
        return [], b""
    if kind == "nested_rfc822":
        b = _boundary(rng, "fwd")
        inner = (
            f"From: {corr}\r\nTo: {user}\r\nSubject: Original message\r\n"
            f"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <inner.{rng.getrandbits(32)}"
            f"@corpus>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe original "
            f"text.\r\n"
        ).encode("ascii")
        return (
            [f'Content-Type: multipart/mixed; boundary="{b}"'],
            (
                f"--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nForwarded below."
                f"\r\n--{b}\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment"
                f"\r\n\r\n"
            ).encode("ascii")
            + inner
            + f"\r\n--{b}--\r\n".encode("ascii"),
        )
    # no_message_id: an ordinary plain message
    return (
        ['Content-Type: text/plain; charset="utf-8"', "Content-Transfer-Encoding: 8bit"],
        body.encode("utf-8"),
    )
