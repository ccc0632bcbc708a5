"""The corpus generator: deterministic, realistic mix, fast."""

import time
from collections import Counter

from mailsync.parse import parse_message
from mailsync.testing.corpus import MALFORMED_KINDS, generate

USER = "sam@acme.test"
PEOPLE = ["ann@client.org", "bob@client.org", "chloe@other.fr", "dmitri@ru.test", "hiro@jp.test"]


def test_deterministic():
    a = generate(11, USER, PEOPLE, 200)
    b = generate(11, USER, PEOPLE, 200)
    c = generate(12, USER, PEOPLE, 200)
    assert [m.raw for m in a] == [m.raw for m in b]
    assert [m.raw for m in a] != [m.raw for m in c]


def test_mix_of_directions_replies_attachments_charsets_and_malformed():
    msgs = generate(5, USER, PEOPLE, 2000)
    assert len(msgs) == 2000
    n = len(msgs)
    sent = sum(m.direction == "sent" for m in msgs)
    assert 0.33 * n < sent < 0.47 * n
    assert all((m.folder == "Sent") == (m.direction == "sent") for m in msgs)
    replies = [m for m in msgs if m.in_reply_to]
    assert 0.35 * n < len(replies) < 0.55 * n
    ids = {m.message_id for m in msgs}
    assert len(ids) == n
    assert all(m.in_reply_to in ids for m in replies)
    assert all(m.references[-1] == m.in_reply_to for m in replies)
    with_att = [m for m in msgs if m.attachments and not m.malformed]
    assert 0.18 * n < len(with_att) < 0.32 * n
    big = [m for m in msgs if m.size > 300_000]
    assert 3 <= len(big) <= 40 and max(m.size for m in msgs) < 1_100_000
    medium = [m for m in with_att if m.size < 300_000]
    assert min(m.size for m in medium) > 20_000
    assert set(Counter(m.charset for m in msgs)) == {
        "utf-8",
        "iso-8859-1",
        "windows-1252",
        "koi8-r",
        "iso-2022-jp",
        "shift_jis",
    }
    assert set(m.malformed for m in msgs if m.malformed) == set(MALFORMED_KINDS)
    assert 0.01 * n < sum(bool(m.malformed) for m in msgs) < 0.06 * n
    dates = [m.date for m in msgs]
    assert dates == sorted(dates)
    for m in msgs:
        assert USER in m.addrs
        if m.direction == "sent":
            assert m.raw.startswith(b"From: Sam Seller <sam@acme.test>")
        assert m.correspondent in m.addrs


def test_bulk_mail_from_strangers():
    msgs = generate(5, USER, PEOPLE, 300, bulk_ratio=0.3)
    bulk = [m for m in msgs if m.correspondent is None]
    assert 40 < len(bulk) < 130
    assert all(b"List-Id:" in m.raw and not set(m.addrs) & set(PEOPLE) for m in bulk)


def test_fast_enough():
    t = time.perf_counter()
    generate(99, USER, PEOPLE, 2000)
    assert time.perf_counter() - t < 3.0


def test_malformed_messages_still_parse():
    msgs = generate(8, USER, PEOPLE, 400, malformed_ratio=0.1)
    for m in msgs:
        if m.malformed:
            p = parse_message(m.raw)
            assert p.message_id == m.message_id
            if m.malformed not in ("header_only", "no_message_id", "nested_rfc822"):
                assert p.defects, m.malformed


def test_crlf_only_so_imap_sizes_match():
    import re

    for m in generate(4, USER, PEOPLE, 600, malformed_ratio=0.1):
        assert not re.search(rb"(?<!\r)\n|\r(?!\n)", m.raw), (m.malformed, m.charset)
