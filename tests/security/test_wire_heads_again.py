"""A request head repeated byte for byte is answered again from memory (edge.visitor.again).

Over raw sockets against a real ``edge serve``. What must hold for the second and
later sends of the same head: the same answer (staging's noindex, 304, HEAD without
a body), counted in the metrics like any request; a publish in between is seen at
once; a head that ended the connection (an upgrade) is never remembered; two heads
in one read are parsed as before.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import PRODUCTION_HOST, STAGING_HOST, EdgeServer
from tests.security.wire_support import (
    WAIT,
    Response,
    connect,
    exchange,
    get,
    new_server,
    publish_site,
    read_response,
    read_until_closed,
)
from tests.waiting import eventually_sync

pytestmark = pytest.mark.timeout(180)

PAGE = b"<html><head></head><body>" + b"again " * 1000 + b"</body></html>"


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeServer]:
    srv = new_server(tmp_path_factory.mktemp("again"), extra_config="keepalive_timeout = 60\n")
    srv.start()
    try:
        publish_site(srv, {"/index.html": PAGE, "/a.txt": b"first\n"})
        yield srv
    finally:
        srv.stop()


def _head(host: str, path: str, extra: str = "", method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


def _ask(sock: socket.socket, head: bytes) -> Response:
    """One request, its answer read whole before the next one is sent (one read each)."""
    sock.sendall(head)
    response = read_response(sock)
    assert response is not None, "no answer in time"
    return response


def _without_date(response: Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k != "date"}


@pytest.mark.parametrize("host", [PRODUCTION_HOST, STAGING_HOST])
def test_a_repeated_head_gets_the_same_answer(edge: EdgeServer, host: str) -> None:
    head = _head(host, "/", "Accept-Encoding: identity\r\n")
    with connect(edge.port) as sock:
        answers = [_ask(sock, head) for _ in range(6)]
    first = answers[0]
    assert first.status == 200
    # Staging's page carries its robots meta, injected when the page was cached.
    assert first.body == PAGE if host == PRODUCTION_HOST else b"noindex" in first.body
    for answer in answers[1:]:
        assert (answer.status, answer.body) == (200, first.body)
        assert _without_date(answer) == _without_date(first)
        assert "date" in answer.headers
    if host == STAGING_HOST:
        assert all("noindex" in a.headers["x-robots-tag"] for a in answers)
    else:
        assert all("x-robots-tag" not in a.headers for a in answers)


def test_repeated_revalidations_and_heads(edge: EdgeServer) -> None:
    etag = exchange(edge.port, get(PRODUCTION_HOST, "/")).first.headers["etag"]
    conditional = _head(PRODUCTION_HOST, "/", f"If-None-Match: {etag}\r\n")
    head = _head(PRODUCTION_HOST, "/", method="HEAD")
    with connect(edge.port) as sock:
        assert [_ask(sock, conditional).status for _ in range(4)] == [304] * 4
        for _ in range(4):
            sock.sendall(head)
            data = b""
            while not data.endswith(b"\r\n\r\n"):
                chunk = sock.recv(65536)
                assert chunk, "closed after a HEAD"
                data += chunk
            assert data.startswith(b"HTTP/1.1 200 ")
            assert f"Content-Length: {len(PAGE)}".encode() in data  # and no body follows
        # Nothing was written after the last HEAD's head: the next answer starts clean.
        assert _ask(sock, _head(PRODUCTION_HOST, "/a.txt")).body == b"first\n"


def test_a_publish_is_seen_by_the_next_repeated_head(edge: EdgeServer) -> None:
    head = _head(PRODUCTION_HOST, "/news.txt")
    publish_site(edge, {"/index.html": PAGE, "/a.txt": b"first\n", "/news.txt": b"old\n"})
    with connect(edge.port) as sock:
        assert [_ask(sock, head).body for _ in range(3)] == [b"old\n"] * 3
        publish_site(edge, {"/index.html": PAGE, "/a.txt": b"first\n", "/news.txt": b"new\n"})
        assert _ask(sock, head).body == b"new\n"
        assert _ask(sock, head).body == b"new\n"


def _requests_2xx(srv: EdgeServer) -> float:
    request = (
        f"GET /metrics HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {srv.tokens['admin']}"
        "\r\nConnection: close\r\n\r\n"
    ).encode()
    text = exchange(srv.admin_port, request).first.body.decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "edge_visitor_requests_total"
        and sample.labels.get("site") == "acme"
        and sample.labels.get("env") == "production"
        and sample.labels.get("status") == "2xx"
    )


def test_every_repeated_request_is_counted(edge: EdgeServer) -> None:
    head = _head(PRODUCTION_HOST, "/a.txt", "X-Probe: count\r\n")
    with connect(edge.port) as sock:
        _ask(sock, head)  # answered by the hit path (remembered), or the full path
        before = eventually_sync(
            lambda: (_requests_2xx(edge), _requests_2xx(edge)),
            lambda pair: pair[0] == pair[1],  # the worker's last flush is in
            what="settled request counts",
        )[0]
        for _ in range(25):
            assert _ask(sock, head).status == 200
    eventually_sync(
        lambda: _requests_2xx(edge), lambda n: n == before + 25, what="25 more 2xx counted"
    )


def test_an_upgrade_request_is_never_answered_from_memory(edge: EdgeServer) -> None:
    upgrade = _head(PRODUCTION_HOST, "/a.txt", "Connection: Upgrade\r\nUpgrade: websocket\r\n")
    for _ in range(3):
        with connect(edge.port) as sock:
            sock.sendall(upgrade)
            raw, closed = read_until_closed(sock, WAIT)
        assert raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"first\n")
        assert closed  # every time: no upgrade here, the connection ends after the answer


def test_two_heads_in_one_read_are_parsed_as_before(edge: EdgeServer) -> None:
    head = _head(PRODUCTION_HOST, "/a.txt")
    with connect(edge.port) as sock:
        _ask(sock, head)
        _ask(sock, head)  # one head per read: remembered by now
        # Two heads in one read, twice: never one remembered answer for both.
        for _ in range(2):
            sock.sendall(head + head)
            data = b""
            while data.count(b"first\n") < 2:
                chunk = sock.recv(65536)
                assert chunk, "closed"
                data += chunk
            assert data.count(b"HTTP/1.1 200 ") == 2
        # A head and the start of the next in one read: the first is answered, the
        # second once its head is whole.
        sock.sendall(head + head[:10])
        assert read_response(sock) is not None
        sock.sendall(head[10:])
        second = read_response(sock)
        assert second is not None and second.body == b"first\n"
        # The same head, then a broken one, in one read: nothing but the 400.
        sock.sendall(head + b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
        raw, closed = read_until_closed(sock, WAIT)
    assert raw.startswith(b"HTTP/1.1 400 ") and raw.count(b"HTTP/1.1 ") == 1
    assert closed


@pytest.fixture(scope="module")
def quick_heads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeServer]:
    srv = new_server(
        tmp_path_factory.mktemp("again-deadline"),
        extra_config="header_timeout = 1\nkeepalive_timeout = 60\n",
    )
    srv.start()
    try:
        publish_site(srv, {"/a.txt": b"first\n"})
        yield srv
    finally:
        srv.stop()


def test_a_connection_answered_from_memory_outlives_the_head_deadline(
    quick_heads: EdgeServer,
) -> None:
    # The head deadline runs from a connection's start until its first head is whole.
    # A first read answered from memory is a whole head too: the deadline must end
    # there, or a busy keep-alive connection is cut every header_timeout.
    head = _head(PRODUCTION_HOST, "/a.txt")
    with connect(quick_heads.port) as teacher:
        _ask(teacher, head)
        _ask(teacher, head)  # remembered
    with connect(quick_heads.port) as sock:
        assert _ask(sock, head).body == b"first\n"  # its first read: from memory
        # Past the one-second head deadline (time is this test's input, not its
        # measurement): the same connection still answers.
        for _ in range(5):
            time.sleep(0.4)
            answer = read_response_after(sock, head)
            assert answer is not None and answer.body == b"first\n", "connection cut"


def read_response_after(sock: socket.socket, data: bytes) -> Response | None:
    try:
        sock.sendall(data)
    except OSError:
        return None
    return read_response(sock)
