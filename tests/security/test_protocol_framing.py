"""Request smuggling and framing, on both listeners, over raw sockets.

Each hostile request is followed, in the same write, by a second request. The
server must answer the first with the expected status, then close the
connection without answering the second (a smuggled request hidden where a
front proxy would have seen a body).

Most of these are refused by aiohttp's C parser (edge refuses to start without
it: test_protocol_parser.py); ``EDGE_CASES`` are refused by edge's own rules
(edge/wire/framing.py) because the parser lets them through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.integration.conftest import PRODUCTION_HOST, EdgeServer
from tests.security.wire_support import (
    connect,
    exchange,
    get,
    new_server,
    parse_responses,
    publish_site,
    read_until_closed,
)

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: acme.example\r\n\r\n"


def _post(headers: str, body: bytes = b"", version: str = "1.1") -> Callable[[str], bytes]:
    def build(host: str) -> bytes:
        head = f"POST / HTTP/{version}\r\nHost: {host}\r\n{headers}\r\n"
        return head.encode("latin-1") + body

    return build


def _raw(template: bytes) -> Callable[[str], bytes]:
    return lambda host: template.replace(b"{host}", host.encode())


CHUNKED_EMPTY = b"0\r\n\r\n"

# (id, request builder, expected status, refused by)
CASES: list[tuple[str, Callable[[str], bytes], int, str]] = [
    (
        "content-length-and-transfer-encoding",
        _post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", CHUNKED_EMPTY),
        400,
        "parser",
    ),
    (
        "transfer-encoding-and-content-length",
        _post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", CHUNKED_EMPTY),
        400,
        "parser",
    ),
    (
        "te-chunked-chunked",
        _post("Transfer-Encoding: chunked, chunked\r\n", CHUNKED_EMPTY),
        400,
        "parser",
    ),
    ("te-xchunked", _post("Transfer-Encoding: xchunked\r\n", CHUNKED_EMPTY), 400, "parser"),
    ("te-chunked-tab", _post("Transfer-Encoding: chunked\t\r\n", CHUNKED_EMPTY), 400, "parser"),
    ("te-identity", _post("Transfer-Encoding: identity\r\n", b"abc"), 400, "parser"),
    (
        "te-identity-with-length",
        _post("Transfer-Encoding: identity\r\nContent-Length: 3\r\n", b"abc"),
        400,
        "parser",
    ),
    (
        "te-two-fields",
        _post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", CHUNKED_EMPTY),
        400,
        "parser",
    ),
    (
        "te-space-before-colon",
        _post("Transfer-Encoding : chunked\r\n", CHUNKED_EMPTY),
        400,
        "parser",
    ),
    (
        "te-chunked-then-gzip",
        _post("Transfer-Encoding: chunked, gzip\r\n", CHUNKED_EMPTY),
        400,
        "parser",
    ),
    ("content-length-plus", _post("Content-Length: +5\r\n", b"hello"), 400, "parser"),
    ("content-length-minus-zero", _post("Content-Length: -0\r\n"), 400, "parser"),
    ("content-length-hex", _post("Content-Length: 0x5\r\n", b"hello"), 400, "parser"),
    ("content-length-list", _post("Content-Length: 5, 5\r\n", b"hello"), 400, "parser"),
    (
        "content-length-twice-different",
        _post("Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
        400,
        "parser",
    ),
    (
        "content-length-twice-same",
        _post("Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
        400,
        "parser",
    ),
    ("cr-in-value", _post("X-A: b\rTransfer-Encoding: chunked\r\n", CHUNKED_EMPTY), 400, "parser"),
    ("nul-in-value", _post("X-A: b\x00c\r\nContent-Length: 0\r\n"), 400, "parser"),
    ("bare-lf-request", _raw(b"GET / HTTP/1.1\nHost: {host}\n\n"), 400, "parser"),
    ("bare-lf-header", _raw(b"GET / HTTP/1.1\r\nHost: {host}\nX-A: b\r\n\r\n"), 400, "parser"),
    ("obs-fold", _post("X-A: b\r\n c\r\nContent-Length: 0\r\n"), 400, "parser"),
    (
        "obs-fold-hiding-te",
        _post("Transfer-Encoding: x\r\n chunked\r\n", CHUNKED_EMPTY),
        400,
        "parser",
    ),
    (
        "chunk-size-overflow",
        _post("Transfer-Encoding: chunked\r\n", b"FFFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n"),
        400,
        "parser",
    ),
    (
        "chunk-size-garbage",
        _post("Transfer-Encoding: chunked\r\n", b"3 x\r\nabc\r\n0\r\n\r\n"),
        400,
        "parser",
    ),
    (
        "lf-in-chunk-extension",
        _post("Transfer-Encoding: chunked\r\n", b"3;a\nb\r\nabc\r\n0\r\n\r\n"),
        400,
        "parser",
    ),
    (
        "transfer-encoding-in-trailer",
        _post("Transfer-Encoding: chunked\r\n", b"0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        400,
        "parser",
    ),
    ("http-1.2", _raw(b"GET / HTTP/1.2\r\nHost: {host}\r\n\r\n"), 400, "parser"),
    ("no-host-in-http-1.1", _raw(b"GET / HTTP/1.1\r\n\r\n"), 400, "parser"),
]


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeServer]:
    srv = new_server(tmp_path_factory.mktemp("framing"))
    srv.start()
    try:
        publish_site(
            srv,
            {"/index.html": b"<html><head></head><body>home</body></html>"},
            settings={"forms": {"contact": {}}},
        )
        yield srv
    finally:
        srv.stop()


@pytest.mark.parametrize("listener", ["visitor", "admin"])
@pytest.mark.parametrize(
    ("build", "status", "refused_by"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_refused_and_closed_and_nothing_smuggled(
    edge: EdgeServer,
    listener: str,
    build: Callable[[str], bytes],
    status: int,
    refused_by: str,
) -> None:
    port = edge.port if listener == "visitor" else edge.admin_port
    got = exchange(port, build(PRODUCTION_HOST) + SMUGGLED)
    assert [r.status for r in got.responses] == [status], (refused_by, got.raw[:400])
    assert got.closed, "the connection must be closed after a refused request"
    assert got.first.headers.get("connection", "").lower() == "close" or b"HTTP/1.0" in (
        got.first.status_line
    )
    assert b"smuggled" not in got.raw


# Whitespace around a field value is not part of it (RFC 9110 §5.5) and codings are
# case-insensitive: these are plain "chunked", read the same by any compliant proxy.
LEGAL_CHUNKED = [
    "Transfer-Encoding:\tchunked\r\n",
    "Transfer-Encoding: chunked \r\n",
    "Transfer-Encoding: Chunked\r\n",
]


@pytest.mark.parametrize("listener", ["visitor", "admin"])
@pytest.mark.parametrize("header", LEGAL_CHUNKED)
def test_control_a_sound_chunked_request_and_a_pipelined_one_are_both_answered(
    edge: EdgeServer, listener: str, header: str
) -> None:
    """The harness does see a second answer when there is one."""
    port = edge.port if listener == "visitor" else edge.admin_port
    first = _post(header, b"3\r\nabc\r\n0\r\n\r\n")(PRODUCTION_HOST)
    second = b"GET /pipelined HTTP/1.1\r\nHost: acme.example\r\nConnection: close\r\n\r\n"
    got = exchange(port, first + second)
    assert len(got.responses) == 2, got.raw[:400]
    assert got.responses[0].status in (404, 405)
    assert got.responses[1].status == 404
    assert got.closed


# What the parser lets through and edge refuses (edge/wire/framing.py): sent alone,
# and followed by a smuggled request (after which the parser itself may object).
EDGE_CASES = [
    (
        "te-in-http-1.0",
        _post("Transfer-Encoding: chunked\r\n", CHUNKED_EMPTY, version="1.0"),
        400,
        400,
    ),
    ("te-gzip-chunked", _post("Transfer-Encoding: gzip, chunked\r\n", CHUNKED_EMPTY), 501, 501),
    (
        "te-deflate-chunked",
        _post("Transfer-Encoding: deflate,chunked\r\n", CHUNKED_EMPTY),
        501,
        501,
    ),
    # llhttp parses HTTP/2.0 in an HTTP/1 request line; aiohttp would answer "HTTP/2.0 200".
    # Followed by more bytes, llhttp objects too ("data after Connection: close"): the
    # admin listener (aiohttp) then answers that 400, the visitor wire its own 505 first.
    ("http-2.0", _raw(b"GET / HTTP/2.0\r\nHost: {host}\r\n\r\n"), 505, (400, 505)),
]


@pytest.mark.parametrize("listener", ["visitor", "admin"])
@pytest.mark.parametrize(
    ("build", "alone", "followed"), [c[1:] for c in EDGE_CASES], ids=[c[0] for c in EDGE_CASES]
)
def test_edge_refuses_what_the_parser_lets_through(
    edge: EdgeServer,
    listener: str,
    build: Callable[[str], bytes],
    alone: int,
    followed: int | tuple[int, ...],
) -> None:
    port = edge.port if listener == "visitor" else edge.admin_port
    request = build(PRODUCTION_HOST)
    got = exchange(port, request)
    assert [r.status for r in got.responses] == [alone], got.raw[:300]
    assert got.closed
    got = exchange(port, request + SMUGGLED)
    statuses = followed if isinstance(followed, tuple) else (followed,)
    assert len(got.responses) == 1 and got.first.status in statuses, got.raw[:300]
    assert got.closed
    assert b"smuggled" not in got.raw


@pytest.mark.parametrize(
    "rest",
    [
        b"3\r\na=1\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"3\r\na=1\r\n0\r\nContent-Length: 5\r\n\r\n",
        b"3\r\na=1\r\n0\r\nHost: acme.example\r\n\r\n",
        b"3\r\na=1\r\nzz\r\n",  # a chunk size that is not one
    ],
    ids=["te-trailer", "cl-trailer", "host-trailer", "bad-chunk-size"],
)
def test_bad_framing_in_a_body_being_read_is_refused_not_a_500(
    edge: EdgeServer, rest: bytes
) -> None:
    """The form's task is reading the body (it asked for it: 100 Continue) when the bad
    framing arrives; the refusal is still its answer, and nothing after it is read."""
    head = _post(
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n"
    )(PRODUCTION_HOST).replace(b"POST / ", b"POST /_edge/forms/contact ")
    with connect(edge.port) as sock:
        sock.sendall(head)
        seen = b""
        while b"\r\n\r\n" not in seen:
            chunk = sock.recv(1024)
            assert chunk, "closed before 100 Continue"
            seen += chunk
        assert seen.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), seen
        sock.sendall(rest + SMUGGLED)
        raw, closed = read_until_closed(sock)
    raw = seen[len(b"HTTP/1.1 100 Continue\r\n\r\n") :] + raw
    assert [r.status for r in parse_responses(raw)] == [400], raw[:300]
    assert closed
    assert b"smuggled" not in raw


@pytest.mark.parametrize(
    ("refused", "status"),
    [
        (b"GET /" + b"c" * 9000 + b" HTTP/1.1\r\n", 414),
        (b"GET / HTTP/1.1\r\nX-Long: " + b"v" * 9000, 431),
    ],
    ids=["uri", "endless-line"],
)
def test_a_refusal_leaves_the_answers_before_it_in_order(
    edge: EdgeServer, refused: bytes, status: int
) -> None:
    """A cache hit, a form and a refused request in one read: the hit's answer, the
    form's, then the refusal. The hit's was dropped, and the form's 204 went out as
    the answer to the GET."""
    for _ in range(2):  # the page is a cache hit from here on
        assert exchange(edge.port, get(PRODUCTION_HOST)).first.status == 200
    form = (
        f"POST /_edge/forms/contact HTTP/1.1\r\nHost: {PRODUCTION_HOST}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=1"
    ).encode()
    got = exchange(edge.port, get(PRODUCTION_HOST, close=False) + form + refused)
    assert [r.status for r in got.responses] == [200, 204, status], got.raw[:300]
    assert b"home" in got.responses[0].body


def test_refusals_do_not_echo_the_request(edge: EdgeServer) -> None:
    """aiohttp's own 400 repeats the offending bytes; edge's says only what failed."""
    got = exchange(edge.port, _post("X-Evil: <script>\x00</script>\r\n")(PRODUCTION_HOST))
    assert got.first.status == 400
    assert b"script" not in got.raw
