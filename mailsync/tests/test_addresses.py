"""Address normalisation: what the matcher compares."""

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from mailsync.addresses import extract, normalize


def test_normalize_basic_forms():
    assert normalize("Ann@Example.COM") == "ann@example.com"
    assert normalize("<ann@example.com>") == "ann@example.com"
    assert normalize("Ann Example <Ann@Example.com>") == "ann@example.com"
    assert normalize('"Doe, John" <J.Doe@x.org>') == "j.doe@x.org"
    assert normalize("  mailto:bob@x.org ") == "bob@x.org"
    assert normalize(b"carol@x.org") == "carol@x.org"


def test_normalize_idna_domain():
    assert normalize("ann@Bücher.DE") == "ann@xn--bcher-kva.de"
    assert normalize("ann@xn--bcher-kva.de") == "ann@xn--bcher-kva.de"


def test_normalize_encoded_display_name_and_encoded_address():
    assert normalize("=?utf-8?q?Ren=C3=A9e?= <renee@x.org>") == "renee@x.org"
    assert normalize("=?utf-8?q?ann=40x.org?=") == "ann@x.org"


def test_normalize_rejects_garbage():
    for bad in (
        None,
        "",
        "   ",
        "ann",
        "@x.org",
        "ann@",
        "a@@b.c",
        "ann@-x.org",
        "ann@x..org",
        "a b@x.org",
        "undisclosed-recipients:;",
        "<>",
        "ann@x_y.org",
        "two@x.org, three@y.org",
        "\x00@x.org",
        12,
    ):
        assert normalize(bad) is None, bad


def test_extract_keeps_order_and_deduplicates():
    values = [
        'Ann <ANN@x.org>, "Doe, John" <j@y.org>',
        "bob@z.org; ann@x.org",
        "=?iso-8859-1?q?Andr=E9?= <andre@z.org>",
        None,
        b"raw@bytes.org",
    ]
    assert extract(values) == ("ann@x.org", "j@y.org", "bob@z.org", "andre@z.org", "raw@bytes.org")


def test_extract_group_syntax_and_undisclosed():
    assert extract(["Team: a@x.org, b@x.org;", "undisclosed-recipients:;"]) == (
        "a@x.org",
        "b@x.org",
    )
    assert extract([]) == ()
    assert extract(["garbage <<< >>> ,,,"]) == ()


def test_extract_raw_8bit_header():
    raw = "Andr\udce9 <andre@x.org>"  # surrogate-escaped latin-1 byte, as email's parser gives
    assert extract([raw]) == ("andre@x.org",)


local = st.text(alphabet=string.ascii_letters + string.digits + "._+-", min_size=1, max_size=20)
label = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=10)


@given(
    local,
    st.lists(label, min_size=1, max_size=3),
    st.sampled_from(["com", "org", "de"]),
    st.text(max_size=20),
)
@settings(max_examples=300, deadline=None)
def test_normalize_is_idempotent_and_case_insensitive(lp, labels, tld, name):
    addr = f"{lp}@{'.'.join(labels)}.{tld}"
    norm = normalize(addr)
    if lp.startswith(".") or lp.endswith(".") or ".." in lp:
        assert norm is None
        return
    assert norm == addr.lower()
    assert normalize(norm) == norm
    assert normalize(addr.upper()) == norm
    assert normalize(f"<{addr}>") == norm
    assert extract([f'"{name.replace(chr(34), "")}" <{addr}>']) in ((norm,), ())


@given(st.text(max_size=200))
@settings(max_examples=500, deadline=None)
def test_never_raises_on_any_text(text):
    out = normalize(text)
    assert out is None or (out == out.lower() and out.count("@") == 1)
    for a in extract([text, text]):
        assert normalize(a) == a
