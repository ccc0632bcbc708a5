"""Malformed mail (engine level).

The test mails of the ``mail-parser`` sdist (fetched at test time, see
``mailsync.testing.public_corpus``) plus generated broken ones: ``parse_message`` never raises
and returns what it could read, with defects listed; loaded into Dovecot between good messages,
one ``sync_mailbox`` run records every one of them. The 25 MB message's parse stays under 3x its
size in peak memory (measured in a subprocess).
"""

from __future__ import annotations

import base64
import os
import random
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, new_mail_user
from mailsync.parse import parse_message
from mailsync.sync import sync_mailbox
from mailsync.testing import corpus
from mailsync.testing.public_corpus import MAIL_PARSER_VERSION, CorpusUnavailable, mail_parser_mails
from mailsync.types import FolderState, ParsedMessage

HEAD = (
    "From: Ann Sender <ann@broken.test>\r\nTo: lead@acme.test\r\n"
    "Date: Mon, 3 Jun 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
)
BIG_ATTACHMENT = 25 * 1024 * 1024


def _m(name, headers, body=b"", *, mid=True):
    subject = f"Subject: {name} MARKER-{name}\r\n"
    h = HEAD + subject + (f"Message-ID: <{name}@broken.test>\r\n" if mid else "") + headers
    return h.encode("utf-8", "surrogateescape") + b"\r\n" + body


def _deep_multipart(levels):
    """(top-level Content-Type header, body) of ``levels`` multiparts nested in each other."""
    head = [
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(levels)
    ]
    tail = [f"\r\n--b{i}--\r\n" for i in reversed(range(levels))]
    inner = "Content-Type: text/plain\r\n\r\nMARKER-deep_multipart innermost\r\n"
    first, rest = head[0].split("\r\n\r\n", 1)
    return first + "\r\n", (rest + "".join(head[1:]) + inner + "".join(tail)).encode()


def _nested_rfc822(levels):
    msg = b"From: x@y.test\r\nSubject: level 0\r\n\r\nMARKER-nested_rfc822_deep innermost\r\n"
    for i in range(1, levels + 1):
        msg = (
            (
                f"From: x@y.test\r\nSubject: level {i}\r\nContent-Type: multipart/mixed; "
                f'boundary="n{i}"\r\n\r\n--n{i}\r\nContent-Type: message/rfc822\r\n\r\n'
            ).encode()
            + msg
            + f"\r\n--n{i}--\r\n".encode()
        )
    return msg


def generated():
    """[(name, raw, expects_defects)] of hand-made broken messages (bodies carry MARKER-name)."""
    rng = random.Random(7)
    out = [
        (
            "missing_boundary",
            _m(
                "missing_boundary",
                "Content-Type: multipart/mixed\r\n",
                b"--xyz\r\nContent-Type: text/plain\r\n\r\nMARKER-missing_boundary\r\n--xyz--\r\n",
            ),
            True,
        ),
        (
            "wrong_unterminated_boundary",
            _m(
                "wrong_unterminated_boundary",
                'Content-Type: multipart/mixed; boundary="AAA"\r\n',
                b"--BBB\r\nContent-Type: text/plain\r\n\r\nMARKER-wrong_unterminated_boundary\r\n",
            ),
            True,
        ),
        (
            "bad_base64",
            _m(
                "bad_base64",
                'Content-Type: multipart/mixed; boundary="q"\r\n',
                b"--q\r\nContent-Type: text/plain\r\n\r\nMARKER-bad_base64 readable\r\n"
                b"--q\r\nContent-Type: application/pdf; name=x.pdf\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0x!!!*not*base64\r\nQUJ"
                b"\r\n--q\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64"
                b"\r\n\r\nTUFSS0VS===garbage\r\n--q--\r\n",
            ),
            True,
        ),
        (
            "undeclared_8bit",
            _m(
                "undeclared_8bit",
                "Content-Type: text/plain\r\nX-Note: caf\xe9\r\n",
                "MARKER-undeclared_8bit devis: 1 200 € — à bientôt\r\n".encode("cp1252"),
            ),
            True,
        ),
        (
            "unknown_charset",
            _m(
                "unknown_charset",
                'Content-Type: text/plain; charset="x-foobar-9"\r\n'
                "Content-Transfer-Encoding: 8bit\r\n",
                "MARKER-unknown_charset prix spécial\r\n".encode("latin-1"),
            ),
            True,
        ),
        ("header_only", _m("header_only", "Content-Type: text/plain\r\n")[:-2], False),
        (
            "nested_rfc822",
            _m(
                "nested_rfc822",
                'Content-Type: multipart/mixed; boundary="f"\r\n',
                b"--f\r\nContent-Type: text/plain\r\n\r\nMARKER-nested_rfc822 fwd\r\n"
                b"--f\r\nContent-Type: message/rfc822\r\n\r\nFrom: o@x.test\r\n"
                b"Subject: original\r\nContent-Type: multipart/alternative; "
                b'boundary="g"\r\n\r\n--g\r\nContent-Type: text/plain\r\n\r\ninner\r\n'
                b"--g--\r\n\r\n--f--\r\n",
            ),
            False,
        ),
        (
            "nested_rfc822_deep",
            _m("nested_rfc822_deep", "Content-Type: message/rfc822\r\n", _nested_rfc822(60)),
            False,
        ),
        (
            "nul_byte",
            _m(
                "nul_byte",
                "Content-Type: text/plain\r\nX-Nul: a\x00b\r\n",
                b"MARKER-nul_byte before\x00after\r\n",
            ),
            False,
        ),
        ("deep_multipart", _m("deep_multipart", *_deep_multipart(1000)), True),
        (
            "overlong_headers",
            _m(
                "overlong_headers",
                "X-Long: "
                + "x" * 200_000
                + "\r\nReferences: "
                + " ".join(f"<r{i}@x.test>" for i in range(5000))
                + "\r\nCc: "
                + ", ".join(f"c{i}@x.test" for i in range(2000))
                + "\r\nContent-Type: text/plain\r\n",
                b"MARKER-overlong_headers\r\n",
            ),
            False,
        ),
        (
            "bad_quoted_printable",
            _m(
                "bad_quoted_printable",
                "Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n",
                b"MARKER-bad_quoted_printable =ZZ =E9=\r\n=C3=\r\n",
            ),
            False,
        ),
        (
            "bad_encoded_words",
            _m(
                "bad_encoded_words",
                "X-A: =?utf-8?B?!!!invalid?=\r\nX-B: =?x-unknown?Q?caf=E9?=\r\n"
                "Content-Type: text/plain\r\n",
                b"MARKER-bad_encoded_words\r\n",
            ),
            False,
        ),
        (
            "bad_date_no_ids",
            (
                "Subject: bad_date_no_ids MARKER-bad_date_no_ids\r\n"
                "Date: 31 Feb 99999 25:61:00 +9999\r\nTo: lead@acme.test\r\n\r\n"
                "MARKER-bad_date_no_ids\r\n"
            ).encode(),
            True,
        ),
        (
            "lf_only",
            _m("lf_only", "Content-Type: text/plain\r\n", b"MARKER-lf_only\r\n").replace(
                b"\r\n", b"\n"
            ),
            False,
        ),
        (
            "bogus_transfer_encoding",
            _m(
                "bogus_transfer_encoding",
                "Content-Type: text/plain\r\nContent-Transfer-Encoding: x-weird-9\r\n",
                b"MARKER-bogus_transfer_encoding\r\n",
            ),
            False,
        ),
        (
            "broken_rfc2231",
            _m(
                "broken_rfc2231",
                'Content-Type: multipart/mixed; boundary="r"\r\n',
                b"--r\r\nContent-Type: text/plain\r\n\r\nMARKER-broken_rfc2231\r\n"
                b"--r\r\nContent-Type: application/pdf; name*=utf-8''%ZZ%E9.pdf\r\n"
                b"Content-Disposition: attachment; filename*0*=x-bad''%FF%FE;"
                b' filename*1="..\\\\..\\\\evil"\r\n\r\nPDF\r\n--r--\r\n',
            ),
            False,
        ),
        (
            "garbage_content_type",
            _m(
                "garbage_content_type", "Content-Type: ;;;/\r\n", b"MARKER-garbage_content_type\r\n"
            ),
            False,
        ),
        ("empty", b"\r\n", False),
        ("binary_garbage", bytes(rng.getrandbits(8) for _ in range(3000)), False),
    ]
    for m in corpus.generate(
        "malformed",
        "me@crm.test",
        ["lead@acme.test", "x@y.test"],
        len(corpus.MALFORMED_KINDS),
        malformed_ratio=1.0,
        big_every=0,
    ):
        out.append(
            (
                f"corpus_{m.malformed}",
                m.raw,
                m.malformed
                in (
                    "missing_boundary",
                    "bad_base64",
                    "undeclared_8bit",
                    "unknown_charset",
                    "no_message_id",
                ),
            )
        )
    return out


def big_message(size=BIG_ATTACHMENT) -> bytes:
    data = random.Random(25).randbytes(size)
    b64 = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return _m(
        "big_25mb",
        'Content-Type: multipart/mixed; boundary="BB"\r\n',
        b"--BB\r\nContent-Type: text/plain\r\n\r\nMARKER-big_25mb see attached\r\n--BB\r\n"
        b"Content-Type: application/octet-stream; name=big.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; "
        b"filename=big.bin\r\n\r\n" + b64 + b"--BB--\r\n",
    )


_PUBLIC = None


def public_mails():
    """The mail-parser corpus, or ``(None, reason)``-style empty list + reason."""
    global _PUBLIC
    if _PUBLIC is None:
        try:
            _PUBLIC = (mail_parser_mails(), None)
        except CorpusUnavailable as e:
            _PUBLIC = ([], str(e))
    return _PUBLIC


def _readable(p: ParsedMessage) -> str:
    parts = [p.subject or "", p.body or "", p.body_text or "", p.body_html or ""]
    parts += [a.data.decode("latin-1") for a in p.attachments]
    return "\n".join(parts)


def _check(name, raw, p):
    assert isinstance(p, ParsedMessage), name
    assert p.message_id.startswith("<") and p.message_id.endswith(">"), name
    assert p.size == len(raw), name
    assert isinstance(p.defects, list) and all(isinstance(d, str) for d in p.defects), name


@pytest.mark.parametrize("name,raw,expects_defects", generated(), ids=[g[0] for g in generated()])
def test_generated_malformed_parse(name, raw, expects_defects):
    p = parse_message(raw)
    _check(name, raw, p)
    if expects_defects:
        assert p.defects, f"{name}: no defect listed"
    if name not in ("empty", "binary_garbage") and not name.startswith("corpus_"):
        text = _readable(p)
        if name == "deep_multipart" and "MARKER-deep_multipart innermost" not in text:
            assert any("deep" in d.lower() or "recursion" in d.lower() for d in p.defects)
        else:
            assert f"MARKER-{name}" in text, (name, text[:300], p.defects)
    if name == "nested_rfc822":  # the forwarded message shown inline, in a quote
        assert "<blockquote" in p.body and "inner" in p.body and "original" in p.body
    if name == "bad_base64":
        assert "readable" in (p.body_text or "")


def test_public_corpus_parses():
    mails, reason = public_mails()
    if not mails:
        pytest.skip(f"mail-parser {MAIL_PARSER_VERSION} corpus unavailable: {reason}")
    assert len(mails) >= 20
    for name, raw in mails:
        _check(name, raw, parse_message(raw))


def test_malformed_mailbox_syncs_whole(dovecot, capsys):
    """Every broken message between good ones: one sync records them all, none stops the rest."""
    mails, reason = public_mails()
    good = [
        m.raw
        for m in corpus.generate(
            "good",
            "me@crm.test",
            ["lead@acme.test"],
            8,
            malformed_ratio=0,
            big_every=0,
            attachment_ratio=0.3,
        )
    ]
    bad = [raw for _n, raw, _e in generated()] + [raw for _n, raw in mails] + [big_message()]
    load = []
    for i, raw in enumerate(bad):
        load.append(raw)
        if i % 5 == 0 and good:
            load.append(good.pop())
    load += good
    user = new_mail_user(dovecot, prefix="malformed")
    uids = dovecot.append_many(user.login, "INBOX", load)
    assert len(set(uids)) == len(load)

    seen = {}

    def matcher(headers):
        return {h.uid: "lead" for h in headers}

    def recorder(fs, items, new_last_uid):
        for h, parsed, _match in items:
            assert isinstance(parsed, ParsedMessage)
            seen[h.uid] = seen.get(h.uid, 0) + 1
        fs_state[fs.name] = new_last_uid

    fs_state = {}
    folders, report = sync_mailbox(
        user.config("none", timeout=60.0),
        [FolderState("INBOX", "inbox")],
        matcher=matcher,
        recorder=recorder,
        batch_size=25,
    )
    assert not report.errors, [str(e) for e in report.errors]
    assert set(seen) == set(uids), sorted(set(uids) - set(seen))
    assert all(v == 1 for v in seen.values())
    assert fs_state["INBOX"] == max(uids)
    with capsys.disabled():
        print(
            f"\n[malformed] malformed messages tried: {len(bad)} "
            f"(public corpus mail-parser {MAIL_PARSER_VERSION}: {len(mails)}"
            f"{'' if mails else ' — ' + str(reason)}; generated: {len(bad) - len(mails)}), "
            f"synced among {len(load) - len(bad)} good ones: {len(seen)}/{len(load)} recorded"
        )


def test_big_message_memory(tmp_path):
    """Peak RSS growth while parsing the 25 MB message stays under 3x its size."""
    raw = big_message()
    path = tmp_path / "big.eml"
    path.write_bytes(raw)
    del raw
    script = textwrap.dedent(f"""
        import sys

        def hwm():  # VmHWM: this process's peak RSS (ru_maxrss survives exec: the parent's)
            with open("/proc/self/status") as fh:
                return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM"))

        sys.path.insert(0, {ROOT!r})
        from mailsync.parse import parse_message
        raw = open({str(path)!r}, "rb").read()
        base = hwm()
        p = parse_message(raw)
        peak = hwm()
        sizes = [len(a.data) for a in p.attachments]
        print(len(raw), (peak - base) * 1024, max(sizes or [0]), len(p.defects))
    """)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    size, growth, biggest, _ndefects = (int(x) for x in out.stdout.split())
    assert biggest == BIG_ATTACHMENT
    assert growth < 3 * size, f"peak RSS grew {growth / size:.2f}x the message size"
