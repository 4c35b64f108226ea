"""Host headers and absolute-form targets, over raw sockets.

- Two Host fields: 400 (aiohttp's parser).
- A Host that is not a host name (``/``, ``\\``, ``..``, ``@``, spaces, control
  bytes, a bad port): 400 (edge; control bytes already by the parser).
- A well-formed host no site claims: 421 with no site content, never a fallback.
- Absolute-form targets (RFC 9112 §3.2.2): the target's authority names the host
  and the Host field is ignored, whichever of the two is known.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import PRODUCTION_HOST, STAGING_HOST, EdgeServer
from tests.security.wire_support import Response, exchange, get, new_server, publish_site

ACME_PAGE = b"<html><head></head><body>acme home</body></html>"
OTHER_PAGE = b"<html><head></head><body>other home</body></html>"


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeServer]:
    srv = new_server(tmp_path_factory.mktemp("hosts"))
    srv.start()
    try:
        publish_site(srv, {"/index.html": ACME_PAGE, "/404.html": b"acme not found"})
        publish_site(srv, {"/index.html": OTHER_PAGE}, site="other")
        yield srv
    finally:
        srv.stop()


def no_site_content(answer: Response) -> None:
    assert b"acme" not in answer.body and b"other" not in answer.body, answer.body
    assert "x-edge-snapshot" not in answer.headers
    assert "x-edge-env" not in answer.headers


def test_two_host_fields_are_refused(edge: EdgeServer) -> None:
    request = b"GET / HTTP/1.1\r\nHost: acme.example\r\nHost: other.example\r\n\r\n"
    got = exchange(edge.port, request)
    assert [r.status for r in got.responses] == [400]
    assert got.closed
    no_site_content(got.first)


@pytest.mark.parametrize(
    "host",
    [
        "acme.example/",
        "acme.example/index.html",
        "acme.example\\",
        "acme\\example",
        "acme..example",
        "..",
        "user@acme.example",
        "acme.example@other.example",
        "acme example",
        "acme.example extra",
        "acme.example\tx",
        "acme.example:80:80",
        "acme.example:http",
        "[::1",
        "acme.example%00",
        "*",
    ],
)
def test_a_host_that_is_not_a_host_name_is_a_bad_request(edge: EdgeServer, host: str) -> None:
    got = exchange(edge.port, get(host))
    assert got.first.status == 400, (host, got.raw[:300])
    no_site_content(got.first)


@pytest.mark.parametrize("host", ["acme.example ", "acme.example\t", "  ACME.example. \t "])
def test_whitespace_around_the_host_is_not_part_of_it(edge: EdgeServer, host: str) -> None:
    """RFC 9110 §5.5: the field value excludes the whitespace around it (aiohttp, the
    wire before edge's own, and every front proxy read it so)."""
    for _ in range(2):  # the full path, then the hit path (keep-alive) as well
        got = exchange(edge.port, get(host, close=False) + get(host))
        answers = [(r.status, r.body) for r in got.responses]
        assert answers == [(200, ACME_PAGE)] * 2, got.raw[:300]


@pytest.mark.parametrize("host", ["acme.example\x01", "acme.example\x7f", "ac\x00me.example"])
def test_control_bytes_in_host_are_refused_by_the_parser(edge: EdgeServer, host: str) -> None:
    got = exchange(edge.port, get(host))
    assert got.first.status == 400
    assert got.closed
    no_site_content(got.first)


@pytest.mark.parametrize(
    "host",
    [
        "unknown.example",
        "acme.example.evil.example",
        "evil-acme.example",
        "example",
        "127.0.0.1",
        "[::1]",
        "",
    ],
)
def test_an_unknown_host_never_falls_back_to_a_site(edge: EdgeServer, host: str) -> None:
    got = exchange(edge.port, get(host))
    assert got.first.status == 421, (host, got.raw[:300])
    no_site_content(got.first)


def test_http_1_0_without_host_is_misdirected(edge: EdgeServer) -> None:
    got = exchange(edge.port, b"GET / HTTP/1.0\r\n\r\n")
    assert got.first.status == 421
    no_site_content(got.first)


@pytest.mark.parametrize(
    ("target", "host", "status", "body"),
    [
        # the authority names the site; Host is ignored (RFC 9112 §3.2.2)
        ("http://acme.example/", "other.example", 200, ACME_PAGE),
        ("http://other.example/", PRODUCTION_HOST, 200, OTHER_PAGE),
        ("http://ACME.example:80/", "unknown.example", 200, ACME_PAGE),
        ("http://acme.example", "unknown.example", 200, ACME_PAGE),
        ("http://unknown.example/", PRODUCTION_HOST, 421, None),
        ("http://user@acme.example/", PRODUCTION_HOST, 400, None),
        ("http://acme.example@other.example/", PRODUCTION_HOST, 400, None),
        ("http://acme..example/", PRODUCTION_HOST, 400, None),
        ("ftp://acme.example/", PRODUCTION_HOST, 400, None),
        ("acme.example/", PRODUCTION_HOST, 400, None),
    ],
)
def test_absolute_form_targets_are_routed_by_their_authority(
    edge: EdgeServer, target: str, host: str, status: int, body: bytes | None
) -> None:
    got = exchange(edge.port, get(host, target))
    assert got.first.status == status, (target, host, got.raw[:300])
    if body is not None:
        assert got.first.body == body
    else:
        no_site_content(got.first)


def test_staging_and_production_hosts_still_resolve(edge: EdgeServer) -> None:
    """Control: the same server routes well-formed hosts (any case, a trailing dot, a port)."""
    for host in (PRODUCTION_HOST, "ACME.Example.", f"{PRODUCTION_HOST}:{edge.port}"):
        answer = exchange(edge.port, get(host)).first
        assert answer.status == 200 and answer.body == ACME_PAGE, host
    staging = exchange(edge.port, get(STAGING_HOST)).first
    assert staging.status == 200
    assert staging.headers["x-edge-env"] == "staging"


def test_x_forwarded_host_from_an_untrusted_peer_changes_no_route(edge: EdgeServer) -> None:
    spoofed = exchange(
        edge.port, get("unknown.example", extra=f"X-Forwarded-Host: {PRODUCTION_HOST}\r\n")
    )
    assert spoofed.first.status == 421
    no_site_content(spoofed.first)
    other = exchange(edge.port, get(PRODUCTION_HOST, extra="X-Forwarded-Host: other.example\r\n"))
    assert other.first.body == ACME_PAGE
    forwarded = exchange(
        edge.port, get("unknown.example", extra=f"Forwarded: host={PRODUCTION_HOST}\r\n")
    )
    assert forwarded.first.status == 421
