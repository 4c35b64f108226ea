"""HTTP/1.1 done right on the visitor wire, over raw sockets against a real ``edge serve``.

Pipelining (answers in order, even behind a slow one), HTTP/1.0 with and without
keep-alive, ``Expect: 100-continue``, HEAD, and a client that stops reading
(edge's memory stays bounded and the connection is dropped).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import PRODUCTION_HOST, EdgeServer
from tests.security.wire_support import (
    WAIT,
    connect,
    exchange,
    get,
    new_server,
    parse_responses,
    publish_site,
    read_response,
    read_until_closed,
)

pytestmark = pytest.mark.timeout(180)

PAGE = b"<html><head></head><body>" + b"page " * 400 + b"</body></html>"
BIG = os.urandom(2 * 1024 * 1024)
FORM = {"forms": {"contact": {"max_bytes": 4096}}}
SEND_TIMEOUT = 2.0


class _Slow(BaseHTTPRequestHandler):
    """``/api/slow`` answers only once the test sets :data:`RELEASE`."""

    release = threading.Event()
    arrived = threading.Event()

    def do_GET(self) -> None:
        type(self).arrived.set()
        type(self).release.wait(WAIT)
        body = b"slow answer"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        _Slow.release.set()
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, upstream: str) -> Iterator[EdgeServer]:
    srv = new_server(
        tmp_path_factory.mktemp("wire"),
        extra_config=(
            'allow_private_targets = ["127.0.0.0/8"]\n'
            f"send_timeout = {SEND_TIMEOUT}\nkeepalive_timeout = 60\n"
        ),
        env_extra={
            "acme.production": f'upstreams = [{{ prefix = "/api/", origin = "{upstream}" }}]'
        },
    )
    srv.start()
    try:
        publish_site(
            srv,
            {"/index.html": PAGE, "/a.txt": b"first\n", "/b.txt": b"second\n", "/big.bin": BIG},
            settings=FORM,
        )
        yield srv
    finally:
        srv.stop()


def _get(path: str, extra: str = "") -> bytes:
    return get(PRODUCTION_HOST, path, extra=extra, close=False)


# -- pipelining ---------------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order(edge: EdgeServer) -> None:
    # Twice: the first round fills the cache (tasks), the second is all cache hits.
    for _ in range(2):
        got = exchange(
            edge.port,
            _get("/a.txt") + _get("/nowhere") + _get("/b.txt")
            + get(PRODUCTION_HOST, "/index.html"),
        )  # fmt: skip
        assert [r.status for r in got.responses] == [200, 404, 200, 200], got.raw[:500]
        assert [r.body for r in got.responses[::2]] == [b"first\n", b"second\n"]
        assert got.responses[3].body == PAGE
        assert got.closed  # the last one said Connection: close


def test_nothing_after_connection_close_is_read_and_the_close_is_answered(edge: EdgeServer) -> None:
    got = exchange(edge.port, get(PRODUCTION_HOST, "/a.txt") + _get("/b.txt"))
    assert [(r.status, r.body) for r in got.responses] == [(200, b"first\n")], got.raw[:400]
    assert got.closed


def test_a_slow_pipelined_predecessor_keeps_its_place(edge: EdgeServer) -> None:
    """The cached page behind a slow upstream request waits for it, then follows it."""
    _Slow.release.clear()
    _Slow.arrived.clear()
    with connect(edge.port) as sock:
        sock.sendall(_get("/api/slow") + get(PRODUCTION_HOST, "/a.txt"))
        assert _Slow.arrived.wait(WAIT)
        early, closed = read_until_closed(sock, 1.0)
        assert early == b"" and not closed, "an answer overtook the slow one"
        _Slow.release.set()
        raw, closed = read_until_closed(sock)
    responses = parse_responses(raw)
    assert [(r.status, r.body) for r in responses] == [(200, b"slow answer"), (200, b"first\n")]
    assert closed


# -- HTTP/1.0 -------------------------------------------------------------------------


def test_http_1_0_without_keep_alive_is_answered_and_closed(edge: EdgeServer) -> None:
    for _ in range(2):  # a miss, then a hit
        got = exchange(
            edge.port, f"GET /a.txt HTTP/1.0\r\nHost: {PRODUCTION_HOST}\r\n\r\n".encode()
        )
        assert [r.status for r in got.responses] == [200]
        assert got.first.body == b"first\n"
        assert got.first.status_line.startswith(b"HTTP/1.1 200")
        assert got.closed


def test_http_1_0_with_keep_alive_keeps_the_connection(edge: EdgeServer) -> None:
    request = (
        f"GET /a.txt HTTP/1.0\r\nHost: {PRODUCTION_HOST}\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    with connect(edge.port) as sock:
        for _ in range(3):
            sock.sendall(request)
            answer = read_response(sock)
            assert answer is not None and answer.status == 200
            assert answer.body == b"first\n"
            assert answer.headers["connection"].lower() == "keep-alive"
        sock.sendall(f"GET /b.txt HTTP/1.0\r\nHost: {PRODUCTION_HOST}\r\n\r\n".encode())
        raw, closed = read_until_closed(sock)
    assert [r.body for r in parse_responses(raw)] == [b"second\n"]
    assert closed


# -- Expect: 100-continue ---------------------------------------------------------------


def _form_head(length: int) -> bytes:
    return (
        f"POST /_edge/forms/contact HTTP/1.1\r\nHost: {PRODUCTION_HOST}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()


def test_expect_100_continue_gets_continue_then_the_answer(edge: EdgeServer) -> None:
    body = b"name=ada"
    with connect(edge.port) as sock:
        sock.sendall(_form_head(len(body)))
        interim = b""
        while b"\r\n\r\n" not in interim:
            chunk = sock.recv(1024)
            assert chunk, "closed before 100 Continue"
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body + _get("/a.txt"))
        rest = interim.partition(b"\r\n\r\n")[2]
        raw, _ = read_until_closed(sock, 2.0)
    assert [r.status for r in parse_responses(rest + raw)] == [204, 200]


def test_expect_100_continue_refused_before_the_body_is_sent(edge: EdgeServer) -> None:
    with connect(edge.port) as sock:
        sock.sendall(_form_head(10 * 1024 * 1024))
        raw, closed = read_until_closed(sock)
    assert b"100 Continue" not in raw
    assert [r.status for r in parse_responses(raw)] == [413]
    assert closed  # the body was never read: nothing after it can be


# -- HEAD ---------------------------------------------------------------------------------


def test_head_has_the_length_and_no_body(edge: EdgeServer) -> None:
    for _ in range(2):  # a miss, then a hit
        head = f"HEAD /index.html HTTP/1.1\r\nHost: {PRODUCTION_HOST}\r\n\r\n".encode()
        got = exchange(edge.port, head + head + get(PRODUCTION_HOST, "/a.txt"))
        # Two heads with no body each, then the GET's answer: had a body followed a
        # HEAD answer, the GET's status line would not come right after the heads.
        heads = got.raw.split(b"\r\n\r\n", 2)
        assert len(heads) == 3, got.raw[:400]
        for one in heads[:2]:
            assert one.startswith(b"HTTP/1.1 200 OK\r\n"), got.raw[:400]
            assert f"Content-Length: {len(PAGE)}".encode() in one
        rest = parse_responses(heads[2])
        assert [(r.status, r.body) for r in rest] == [(200, b"first\n")], heads[2][:300]


# -- a client that stops reading ----------------------------------------------------------


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0])


def test_a_client_that_stops_reading_costs_bounded_memory(edge: EdgeServer) -> None:
    """200 pipelined requests for a 2 MiB file, never read: edge writes one answer at a
    time as the socket takes it, holds no 400 MiB of answers, and drops the client."""
    assert edge.process is not None
    (pid,) = edge.worker_pids()  # the visitor worker (beside it, the admin process)
    exchange(edge.port, get(PRODUCTION_HOST, "/big.bin"))  # cached now
    before = _rss_kib(pid)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", edge.port))
    with raw:
        raw.sendall(b"".join(_get("/big.bin") for _ in range(200)))
        peak = before
        deadline = time.monotonic() + 3 * SEND_TIMEOUT
        while time.monotonic() < deadline:
            peak = max(peak, _rss_kib(pid))
            time.sleep(0.05)
        received, closed = read_until_closed(raw, WAIT)
    assert closed, "a client that never reads must be dropped (send_timeout)"
    assert len(received) < 20 * len(BIG)
    assert peak - before < 64 * 1024, f"RSS grew by {peak - before} KiB"
