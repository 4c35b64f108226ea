"""Host -> (site, environment) resolution: ``normalize_host`` and ``RouteTable``."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from edge.router import Route, RouteTable, normalize_host

PROD = Route("acme", "production")
STAGING = Route("acme", "staging")
OTHER = Route("other", "production")


@pytest.fixture
def table() -> RouteTable:
    return RouteTable.build(
        [
            ("acme.example", PROD),
            ("www.acme.example", PROD),
            ("acme.staging.example", STAGING),
            ("xn--bcher-kva.example", OTHER),
            ("[::1]", Route("local", "production")),
            ("127.0.0.1", Route("local", "staging")),
        ]
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # case-insensitive
        ("acme.example", "acme.example"),
        ("ACME.Example", "acme.example"),
        # port stripped
        ("acme.example:8080", "acme.example"),
        ("acme.example:1", "acme.example"),
        # one trailing dot ignored, not two
        ("acme.example.", "acme.example"),
        ("acme.example.:8080", "acme.example"),
        ("acme.example..", None),
        # IDNA / unicode -> punycode; punycode passes through
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("bücher.example:443", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
        # IP literals
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("[::1]", "[::1]"),
        ("[::1]:8080", "[::1]"),
        ("[0:0:0:0:0:0:0:1]", "[::1]"),
        ("[2001:DB8::1]", "[2001:db8::1]"),
        # label lengths: 63 is the limit
        ("a" * 63 + ".example", "a" * 63 + ".example"),
        ("a" * 64 + ".example", None),
        # whole host: 253 is the limit
        (".".join(["a" * 49] * 5), ".".join(["a" * 49] * 5)),  # 249 chars
        (".".join(["a" * 50] * 5) + "a" * 4, None),  # 258 chars
    ],
)
def test_normalize_host_table(raw: str, expected: str | None) -> None:
    assert normalize_host(raw) == expected


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        "",
        "/",
        "\\",
        ".",
        "..",
        "a..b",
        ".acme.example",
        "acme.example/",
        "acme.example/../x",
        "acme\\example",
        "acme .example",
        " acme.example",
        "acme.example\t",
        "acme\x00.example",
        "acme\x7f.example",
        "acme\r\n.example",
        "acme_site.example",
        "acme@example",
        "user:pass@acme.example",
        "acme.example:",
        "acme.example:port",
        "acme.example:80:80",
        "acme.example:-1",
        "acme.example:\u0661\u0662",  # Arabic-Indic digits are not a port
        ":8080",
        "::1",  # IPv6 without brackets
        "[::1",
        "[::1]x",
        "[::1]:",
        "[::1]:http",
        "[]",
        "[1.2.3.4]",
        "[not-an-ip]",
        "ü..example",
        "a" * 300,
    ],
)
def test_normalize_host_rejects_garbage(garbage: str | None) -> None:
    assert normalize_host(garbage) is None


@pytest.mark.parametrize(
    "raw",
    [
        "[fe80::1%a b]",  # space
        "[fe80::1%\x00]",  # NUL
        "[fe80::1%\\x]",  # backslash
        "[fe80::1%\t]",  # control byte
    ],
)
def test_ipv6_zone_id_cannot_smuggle_garbage_into_a_host(raw: str) -> None:
    """An IPv6 literal's zone id must not carry spaces, control bytes or backslashes."""
    out = normalize_host(raw)
    assert out is None or all(c in "0123456789abcdef:[]%" or c.isalnum() for c in out), out


_LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
_DNS_NAME = st.lists(_LABEL, min_size=1, max_size=5).map(".".join)


@given(st.text())
@example("")
@example("\udcff.example")  # lone surrogate (aiohttp decodes headers with surrogateescape)
@example("[::1]:99999999999999999999")
@example("xn--.example")
def test_normalize_host_never_raises_and_is_idempotent(value: str) -> None:
    out = normalize_host(value)
    assert out is None or isinstance(out, str)
    if out is not None:
        assert out
        assert normalize_host(out) == out


@given(st.text(alphabet=st.characters(codec="utf-8", categories=["Cs", "L", "N", "P", "Zs"])))
def test_normalize_host_never_raises_with_surrogates(value: str) -> None:
    out = normalize_host(value)
    assert out is None or normalize_host(out) == out


@given(
    name=_DNS_NAME,
    upper=st.lists(st.booleans(), min_size=300, max_size=300),
    port=st.none() | st.integers(min_value=0, max_value=65535),
    dot=st.booleans(),
)
def test_spellings_of_a_host_normalise_to_the_same_name(
    name: str, upper: list[bool], port: int | None, dot: bool
) -> None:
    spelled = "".join(c.upper() if u else c for c, u in zip(name, upper, strict=False))
    spelled += "." if dot else ""
    spelled += f":{port}" if port is not None else ""
    assert normalize_host(spelled) == name


# ---- RouteTable ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("acme.example", PROD),
        ("ACME.EXAMPLE", PROD),
        ("acme.example:8080", PROD),
        ("acme.example.", PROD),
        ("www.acme.example", PROD),
        ("acme.staging.example", STAGING),
        ("Acme.Staging.Example.:443", STAGING),
        ("bücher.example", OTHER),
        ("xn--bcher-kva.example", OTHER),
        ("[::1]:8080", Route("local", "production")),
        ("[0::1]", Route("local", "production")),
        ("127.0.0.1:8080", Route("local", "staging")),
        # unknown or malformed: None
        ("evil.example", None),
        ("example", None),
        ("acme.example..", None),
        ("sub.acme.example", None),
        ("/", None),
        ("", None),
        (None, None),
    ],
)
def test_resolve_table(table: RouteTable, header: str | None, expected: Route | None) -> None:
    assert table.resolve(header) == expected


def test_route_equality_and_key() -> None:
    assert Route("acme", "staging") == Route("acme", "staging")
    assert Route("acme", "staging") != Route("acme", "production")
    assert Route("acme", "staging").key != Route("acme", "production").key
    assert Route("a", "staging").key != Route("b", "staging").key


def test_build_refuses_a_host_claimed_twice() -> None:
    with pytest.raises(ValueError, match=r"acme\.example"):
        RouteTable.build([("acme.example", PROD), ("acme.example", STAGING)])


def test_hosts_of_lists_sorted_hosts_of_one_environment(table: RouteTable) -> None:
    assert table.hosts_of("acme", "production") == ["acme.example", "www.acme.example"]
    assert table.hosts_of("acme", "staging") == ["acme.staging.example"]
    assert table.hosts_of("nobody", "staging") == []
    assert len(table) == 6


@given(st.text() | st.none())
@example("ACME.example")
@example("acme.example\x00")
def test_resolve_never_raises_and_agrees_with_normalize_host(header: str | None) -> None:
    table = RouteTable.build([("acme.example", PROD), ("acme.staging.example", STAGING)])
    route = table.resolve(header)
    assert route in (None, PROD, STAGING)
    norm = normalize_host(header)
    if norm is None:
        assert route is None
    else:
        assert route == {"acme.example": PROD, "acme.staging.example": STAGING}.get(norm)


def test_idna_follows_uts46_as_browsers_do() -> None:
    assert normalize_host("faß.example") == "xn--fa-hia.example"
    assert normalize_host("Bücher.example") == "xn--bcher-kva.example"
