"""Cache hits answered inside the parser's callbacks (edge.wire.http1), over raw sockets.

A plain GET/HEAD with nothing earlier pending on its connection is answered as
soon as its head is parsed, and the hits of one read are written together once
the read parsed cleanly. What must hold: order with the full path mixed in, a
read that fails to parse answers only its refusal, HEAD and 304 on the quick
path, Connection: close after a run of hits. (A client that does not read
pipelined hits: tests/security/test_http1_wire.py, bounded memory.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import PRODUCTION_HOST, EdgeServer
from tests.security.wire_support import (
    exchange,
    get,
    new_server,
    publish_site,
)

pytestmark = pytest.mark.timeout(180)

PAGE = b"<html><head></head><body>" + b"hit " * 2000 + b"</body></html>"


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeServer]:
    srv = new_server(
        tmp_path_factory.mktemp("hits"),
        extra_config="keepalive_timeout = 60\n",
    )
    srv.start()
    try:
        publish_site(srv, {"/index.html": PAGE, "/a.txt": b"first\n", "/b.txt": b"second\n"})
        for path in ("/a.txt", "/b.txt", "/"):  # every one is a cache hit from now on
            assert exchange(srv.port, get(PRODUCTION_HOST, path)).first.status == 200
        yield srv
    finally:
        srv.stop()


def _get(path: str, extra: str = "") -> bytes:
    return get(PRODUCTION_HOST, path, extra=extra, close=False)


def test_hits_and_misses_in_one_read_keep_their_order(edge: EdgeServer) -> None:
    requests = [_get("/a.txt"), _get("/b.txt"), _get("/nowhere"), _get("/a.txt")]
    requests += [_get("/b.txt")] * 3 + [get(PRODUCTION_HOST, "/a.txt")]
    got = exchange(edge.port, b"".join(requests))
    assert [r.status for r in got.responses] == [200, 200, 404, 200, 200, 200, 200, 200]
    bodies = [r.body for i, r in enumerate(got.responses) if i != 2]
    assert bodies == [b"first\n", b"second\n", b"first\n"] + [b"second\n"] * 3 + [b"first\n"]
    assert got.closed  # the last one said Connection: close


def test_a_read_that_fails_to_parse_answers_only_its_refusal(edge: EdgeServer) -> None:
    # The hit before the garbage arrived in the same read: the bytes are suspect,
    # nothing of that read is answered but the 400.
    got = exchange(edge.port, _get("/a.txt") + b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    assert [r.status for r in got.responses] == [400], got.raw[:300]
    assert got.closed


def test_head_and_not_modified_on_the_quick_path(edge: EdgeServer) -> None:
    first = exchange(edge.port, get(PRODUCTION_HOST, "/")).first
    etag = first.headers["etag"]
    # HEAD, then a 304, in one read: the HEAD answer has the length and no body.
    head = f"HEAD / HTTP/1.1\r\nHost: {PRODUCTION_HOST}\r\n\r\n".encode()
    conditional = get(PRODUCTION_HOST, "/", extra=f"If-None-Match: {etag}\r\n")
    got = exchange(edge.port, head + conditional)
    head_answer, _, rest = got.raw.partition(b"\r\n\r\n")
    assert head_answer.startswith(b"HTTP/1.1 200 ")
    assert f"Content-Length: {len(PAGE)}".encode() in head_answer
    assert rest.startswith(b"HTTP/1.1 304 ")
    assert rest.endswith(b"\r\n\r\n")  # no body after either
    assert got.closed


def test_connection_close_on_a_hit_closes_after_it(edge: EdgeServer) -> None:
    got = exchange(edge.port, _get("/a.txt") + get(PRODUCTION_HOST, "/b.txt") + _get("/a.txt"))
    assert [r.body for r in got.responses] == [b"first\n", b"second\n"]
    assert got.closed


def test_many_pipelined_hits_all_arrive_for_a_reading_client(edge: EdgeServer) -> None:
    got = exchange(edge.port, _get("/a.txt") * 100 + get(PRODUCTION_HOST, "/b.txt"))
    assert [r.body for r in got.responses] == [b"first\n"] * 100 + [b"second\n"]
