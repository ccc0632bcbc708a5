"""Clean text at the door: whatever bytes a stranger puts in any header, or in a body, what the
engine hands out is storable by PostgreSQL and readable by an XML/HTML parser, one-line fields
are on one line and within their limits."""

import dataclasses
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailsync.parse import HEADER_FIELDS, parse_headers, parse_message
from mailsync.text import (
    ELLIPSIS,
    FILENAME_MAX,
    ID_MAX,
    NAME_MAX,
    SUBJECT_MAX,
    clean,
    clean_id,
    clean_line,
)

XML_BAD = {chr(c) for c in range(32) if c not in (9, 10, 13)} | {"\ufffe", "\uffff"}


def test_clean_removes_what_postgres_and_xml_refuse():
    assert clean("a\x00b\x01c\x1bd\tx\ny\rz") == "abcd\tx\ny\rz"
    assert clean("a\ud800b\udcffc") == "a\ufffdb\ufffdc"
    assert clean(b"caf\xc3\xa9 \xff") == "café \ufffd"
    assert clean(None) == "" and clean(12) == "12"
    assert clean("\ufffe\uffff ok") == " ok"


def test_clean_line_folds_and_cuts():
    assert clean_line(" first\r\nsecond\n\tthird\x0bfourth\u2028fifth ") == (
        "first second third fourth fifth"
    )
    assert clean_line("x" * 10, 10) == "x" * 10
    cut = clean_line("x" * 11, 10)
    assert len(cut) == 10 and cut.endswith(ELLIPSIS)


def test_clean_id_keeps_ids_apart_and_short():
    assert clean_id("<a@b>") == "<a@b>"
    assert clean_id(" <a\x00@b>\r\n") == "<a@b>"
    long_a, long_b = "<" + "a" * 3000 + "@x>", "<" + "a" * 3000 + "@y>"
    ida, idb = clean_id(long_a), clean_id(long_b)
    assert ida != idb and len(ida) <= ID_MAX and len(ida.encode()) <= ID_MAX + 2
    assert ida == clean_id(long_a)  # stable: the header fetch and the full parse agree
    wide = clean_id("<" + "é" * 900 + "@x>")  # 900 characters, 1,800 bytes
    assert len(wide.encode()) <= ID_MAX + 2 and ELLIPSIS in wide


# --- properties ----------------------------------------------------------------------------------


def _strings(value, path="p"):
    """Every str inside a dataclass / tuple / list, with where it was found."""
    if isinstance(value, str):
        yield path, value
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            yield from _strings(getattr(value, f.name), f"{path}.{f.name}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, item in value.items():
            yield from _strings(item, f"{path}[{k!r}]")


SINGLE_LINE = (
    "subject",
    "from_display",
    "message_id",
    "in_reply_to",
    "references",
    "filename",
    "content_type",
    "content_id",
    "defects",
    "flags",
    "from_addrs",
    "to_addrs",
    "cc_addrs",
    "from_addr",
)


def assert_storable(result):
    for path, text in _strings(result):
        assert "\x00" not in text, path
        text.encode("utf-8")  # no lone surrogate
        assert not (set(text) & XML_BAD), (path, text[:80])
        leaf = path.rsplit(".", 1)[-1].split("[")[0]
        if leaf in SINGLE_LINE:
            assert "\n" not in text and "\r" not in text, (path, text[:80])
    assert len(result.subject) <= SUBJECT_MAX
    assert len(result.message_id) <= ID_MAX
    for ref in getattr(result, "references", ()):
        assert len(ref) <= ID_MAX
    if hasattr(result, "from_display"):
        name = result.from_display.split(" <")[0]
        assert len(name) <= NAME_MAX + 320
    for att in getattr(result, "attachments", ()):
        assert len(att.filename) <= FILENAME_MAX


_FIELDS = list(HEADER_FIELDS) + ["CONTENT-TYPE", "CONTENT-DISPOSITION", "X-ANYTHING"]
header_value = st.binary(max_size=300)


def _message(headers, body):
    lines = [
        name.title().encode() + b": " + value.replace(b"\r", b"").replace(b"\n", b"\r\n ")
        for name, value in headers
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@given(
    st.lists(st.tuples(st.sampled_from(_FIELDS), header_value), max_size=14),
    st.binary(max_size=600),
)
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_bytes_in_any_header_give_storable_values(headers, body):
    raw = _message(headers, body)
    assert_storable(parse_message(raw))
    head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    assert_storable(parse_headers(head, folder="INBOX", uid=1, flags=(b"\\Seen\x00",)))


encoded_word = st.builds(
    lambda charset, enc, payload: f"=?{charset}?{enc}?{payload}?=".encode(),
    st.sampled_from(["utf-8", "iso-8859-1", "x-bogus", "utf-16"]),
    st.sampled_from("qQbB"),
    st.text(alphabet="=0123456789ABCDEFabcdef_?", max_size=40),
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["SUBJECT", "FROM", "TO", "MESSAGE-ID", "REFERENCES", "CONTENT-DISPOSITION"]
            ),
            encoded_word,
        ),
        min_size=1,
        max_size=8,
    )
)
@settings(max_examples=300, deadline=None)
def test_encoded_words_with_any_payload_give_storable_values(headers):
    raw = _message(headers + [("CONTENT-TYPE", b'text/plain; name="=?utf-8?q?a=00b?="')], b"x\x00y")
    assert_storable(parse_message(raw))


def _pg_connection():
    try:
        import psycopg2
    except ImportError:
        return None
    try:
        return psycopg2.connect(dbname="postgres", host=os.environ.get("PGHOST") or None)
    except Exception:  # noqa: BLE001
        return None


@pytest.fixture(scope="module")
def pg():
    conn = _pg_connection()
    if conn is None:
        pytest.skip("no PostgreSQL reachable with psycopg2")
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("CREATE TEMP TABLE parsed (path text, value text)")
    yield cur
    conn.close()


@given(
    st.lists(st.tuples(st.sampled_from(_FIELDS), header_value), max_size=10),
    st.binary(max_size=300),
)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_postgresql_stores_every_value(pg, headers, body):
    raw = _message(headers, body)
    rows = list(_strings(parse_message(raw)))
    rows += list(_strings(parse_headers(raw, folder="INBOX", uid=1)))
    pg.executemany("INSERT INTO parsed VALUES (%s, %s)", rows)
    pg.execute("TRUNCATE parsed")
