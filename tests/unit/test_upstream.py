"""Upstream table lookup and what the proxy sends either way (pure parts of the proxy)."""

from __future__ import annotations

from pathlib import Path

import pytest
from multidict import CIMultiDict

from edge.config import parse_config
from edge.router import Route
from edge.visitor.upstream import (
    Upstream,
    UpstreamTable,
    request_headers,
    response_headers,
    upstream_target,
)

PROD = Route("acme", "production").key
STAGING = Route("acme", "staging").key
OTHER = Route("other", "production").key

CONFIG = """
[[sites]]
id = "acme"
[sites.production]
hosts = ["acme.example"]
upstreams = [
    {prefix = "/api/", origin = "https://api.acme.example"},
    {prefix = "/api/v2/", origin = "https://v2.acme.example:8443/"},
    {prefix = "/shop/", origin = "http://shop.acme.example"},
]
[sites.staging]
hosts = ["acme-preview.example"]
upstreams = [{prefix = "/api/", origin = "https://api-staging.acme.example"}]

[[sites]]
id = "other"
[sites.production]
hosts = ["other.example"]
"""


@pytest.fixture(scope="module")
def table() -> UpstreamTable:
    return UpstreamTable.build(parse_config(CONFIG, Path(".")))


@pytest.mark.parametrize(
    ("route", "path", "expected"),
    [
        (PROD, "/api/users", Upstream("/api/", "https://api.acme.example")),
        (PROD, "/api/", Upstream("/api/", "https://api.acme.example")),
        # longest prefix wins, whatever the order in the config
        (PROD, "/api/v2/users", Upstream("/api/v2/", "https://v2.acme.example:8443")),
        (PROD, "/api/v2/", Upstream("/api/v2/", "https://v2.acme.example:8443")),
        (PROD, "/api/v2", Upstream("/api/", "https://api.acme.example")),
        (PROD, "/shop/cart?x=1", Upstream("/shop/", "http://shop.acme.example")),
        # a prefix is a path prefix: /api/ does not take /api or /apiary
        (PROD, "/api", None),
        (PROD, "/apiary/", None),
        (PROD, "/", None),
        (PROD, "/index.html", None),
        (PROD, "/x/api/", None),
        # each environment has its own upstreams
        (STAGING, "/api/users", Upstream("/api/", "https://api-staging.acme.example")),
        (STAGING, "/api/v2/users", Upstream("/api/", "https://api-staging.acme.example")),
        (STAGING, "/shop/cart", None),
        # a route without upstreams, and an unknown one
        (OTHER, "/api/users", None),
        (Route("other", "staging").key, "/api/users", None),
        (Route("nobody", "production").key, "/api/users", None),
    ],
)
def test_match(table: UpstreamTable, route: str, path: str, expected: Upstream | None) -> None:
    assert table.match(route, path) == expected


def test_table_counts_upstreams(table: UpstreamTable) -> None:
    assert len(table) == 4
    assert len(UpstreamTable.build(parse_config("", Path(".")))) == 0


def test_table_from_mapping_orders_by_prefix_length() -> None:
    short, long = Upstream("/a/", "http://a"), Upstream("/a/b/c/", "http://c")
    table = UpstreamTable({PROD: [short, long], STAGING: []})
    assert table.match(PROD, "/a/b/c/d") == long
    assert table.match(PROD, "/a/b/") == short
    assert table.match(STAGING, "/a/") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/api/users", "/api/users"),
        ("/api/", "/api/"),
        ("/api/search?q=a%20b&x=..", "/api/search?q=a%20b&x=.."),
        ("/api/a%20b/c%2Fd", "/api/a%20b/c%2Fd"),  # encoded slashes inside a name are fine
        ("/api/file.v1..tar", "/api/file.v1..tar"),
        ("/api/x#frag", "/api/x"),
        # not under the prefix as sent
        ("/api", None),
        ("/other/", None),
        ("//api/x", None),
        ("/%61pi/x", None),
        ("http://evil.example/api/x", None),
        # dot segments, plain or hidden behind percent-encoding, / or \
        ("/api/../admin", None),
        ("/api/./x", None),
        ("/api/%2e%2e/admin", None),
        ("/api/%2E%2e/admin", None),
        ("/api/..%2fadmin", None),
        ("/api/x/..%5c..%5cadmin", None),
        ("/api/..\\admin", None),
        ("/api/..", None),
    ],
)
def test_upstream_target(raw: str, expected: str | None) -> None:
    assert upstream_target(raw, "/api/") == expected


def test_request_headers() -> None:
    incoming = CIMultiDict(
        [
            ("Host", "acme.example"),
            ("Accept", "text/html"),
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic eDp5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "X-Checksum"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "websocket"),
            ("Expect", "100-continue"),
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-For", "198.51.100.2"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "spoofed.example"),
            ("Forwarded", "for=203.0.113.7;proto=https"),
            ("Via", "1.1 cdn"),
            ("Cookie", "a=1"),
            ("Cookie", "b=2"),
        ]
    )
    # From an untrusted peer the claims about earlier hops are not passed on.
    out = request_headers(incoming, peer="192.0.2.10", tls=False, via="1.1 edge")
    assert list(out.items()) == [
        ("Accept", "text/html"),
        ("Cookie", "a=1"),
        ("Cookie", "b=2"),
        ("X-Forwarded-For", "192.0.2.10"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "acme.example"),
        ("Via", "1.1 cdn, 1.1 edge"),
    ]
    # From a trusted proxy they are, and the host and scheme are the ones it reported.
    out = request_headers(
        incoming,
        peer="192.0.2.10",
        tls=True,
        via="1.1 edge",
        trusted=True,
        host="www.acme.example",
    )
    assert list(out.items()) == [
        ("Accept", "text/html"),
        ("Forwarded", "for=203.0.113.7;proto=https"),
        ("Cookie", "a=1"),
        ("Cookie", "b=2"),
        ("X-Forwarded-For", "203.0.113.7, 198.51.100.2, 192.0.2.10"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "www.acme.example"),
        ("Via", "1.1 cdn, 1.1 edge"),
    ]


def test_request_headers_minimal_and_tls() -> None:
    out = request_headers(CIMultiDict(), peer=None, tls=True, via="1.0 edge")
    assert dict(out) == {"X-Forwarded-Proto": "https", "Via": "1.0 edge"}
    out = request_headers(CIMultiDict(Host="a.example"), peer="::1", tls=True, via="1.1 edge")
    assert out["X-Forwarded-For"] == "::1"
    assert out["X-Forwarded-Host"] == "a.example"
    assert "Host" not in out


def test_response_headers() -> None:
    upstream = CIMultiDict(
        [
            ("Content-Type", "application/json"),
            ("Content-Length", "17"),
            ("Connection", "close, X-Internal"),
            ("X-Internal", "db-3"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authenticate", "Basic"),
            ("Transfer-Encoding", "chunked"),
            ("Trailer", "X-Checksum"),
            ("Upgrade", "h2c"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("X-Robots-Tag", "all"),
            ("x-edge-env", "production"),
            ("Cache-Control", "public, max-age=600"),
            ("Via", "1.0 backend"),
        ]
    )
    env = {
        "X-Edge-Env": "staging",
        "X-Robots-Tag": "noindex, nofollow",
        "Cache-Control": "no-store",
    }
    out = response_headers(upstream, env_headers=env, via="1.1 edge")
    assert list(out.items()) == [
        ("Content-Type", "application/json"),
        ("Content-Length", "17"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Via", "1.0 backend, 1.1 edge"),
        ("X-Edge-Env", "staging"),
        ("X-Robots-Tag", "noindex, nofollow"),
        ("Cache-Control", "no-store"),
    ]


def test_response_headers_production_keeps_upstream_caching() -> None:
    upstream = CIMultiDict([("Cache-Control", "max-age=60"), ("X-Edge-Env", "staging")])
    out = response_headers(upstream, env_headers={"X-Edge-Env": "production"}, via="1.1 edge")
    assert out.getall("X-Edge-Env") == ["production"]
    assert out["Cache-Control"] == "max-age=60"
