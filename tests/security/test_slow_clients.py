"""Slow and silent clients are cut off on every listener, over raw sockets.

``slow`` runs with 2-second head, body and send deadlines and a 120-second
keep-alive, so anything closed within the tests' 20-second wait was closed by
those deadlines, not by keep-alive. ``idle`` has a 1-second keep-alive and longer
deadlines otherwise. Waits are generous; nothing here measures speed.
"""

from __future__ import annotations

import asyncio
import os
import resource
import select
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

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
from tests.waiting import eventually

# Deadlines expire here on purpose and servers carry 32 MiB of content: more time
# than the default per-test timeout on a busy machine (no speed is asserted).
pytestmark = pytest.mark.timeout(180)

DEADLINE = 2.0
BIG = os.urandom(16 * 1024 * 1024)  # far more than socket buffers hold
PAGE = b"<html><head></head><body>other</body></html>"
FORM = {"forms": {"contact": {"max_bytes": 4096}}}


def _write_pair(dir_: Path, name: str, cert: trustme.LeafCert) -> None:
    cert.private_key_pem.write_to_path(str(dir_ / f"{name}.key"))
    (dir_ / f"{name}.crt").write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Iterator[EdgeServer]:
    root = tmp_path_factory.mktemp("slow")
    certs = root / "certs"
    certs.mkdir()
    _write_pair(certs, "default", ca.issue_cert("default.edge.test"))
    _write_pair(certs, "acme", ca.issue_cert(PRODUCTION_HOST, "www.acme.example"))
    srv = new_server(root)
    srv.extra_config = (
        f'listen_tls = "127.0.0.1:{srv.tls_port}"\n'
        'default_tls = { cert = "certs/default.crt", key = "certs/default.key" }\n'
        f"header_timeout = {DEADLINE}\nbody_timeout = {DEADLINE}\nsend_timeout = {DEADLINE}\n"
        "keepalive_timeout = 120\nmax_blob_bytes = 33554432\n"
    )
    srv.env_extra = {"acme.production": 'tls = { cert = "certs/acme.crt", key = "certs/acme.key" }'}
    srv.start()
    try:
        publish_site(srv, {"/index.html": b"<p>acme</p>", "/big.bin": BIG}, settings=FORM)
        publish_site(srv, {"/index.html": PAGE, "/big.bin": BIG}, site="other", settings=FORM)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeServer]:
    srv = new_server(
        tmp_path_factory.mktemp("idle"),
        extra_config="keepalive_timeout = 1\nheader_timeout = 120\nbody_timeout = 5\n",
    )
    srv.start()
    try:
        publish_site(srv, {"/index.html": PAGE}, site="other", settings=FORM)
        yield srv
    finally:
        srv.stop()


def _tls(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def _open(srv: EdgeServer, listener: str, ca: trustme.CA) -> socket.socket:
    if listener == "tls":
        return connect(srv.tls_port, tls=_tls(ca), server_name=PRODUCTION_HOST)
    return connect(srv.port if listener == "visitor" else srv.admin_port)


def _trickle(sock: socket.socket, pieces: list[bytes], every: float) -> tuple[bytes, bool]:
    """Send ``pieces`` one per ``every`` seconds, reading meanwhile; (received, closed)."""
    received = bytearray()
    deadline = time.monotonic() + WAIT + 5
    for piece in pieces:
        if time.monotonic() > deadline:
            break
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            break
        ready, _, _ = select.select([sock], [], [], every)
        if ready or (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            more, closed = read_until_closed(sock, 0.05)
            received += more
            if closed:
                return bytes(received), True
    more, closed = read_until_closed(sock)
    return bytes(received + more), closed


LISTENERS = ["visitor", "admin", "tls"]


# -- the head -----------------------------------------------------------------------


@pytest.mark.parametrize("listener", LISTENERS)
def test_a_connection_that_never_sends_a_request_is_closed(
    slow: EdgeServer, ca: trustme.CA, listener: str
) -> None:
    with _open(slow, listener, ca) as sock:
        data, closed = read_until_closed(sock)
    assert closed and data == b""


def test_a_tls_handshake_that_never_starts_is_closed(slow: EdgeServer) -> None:
    with connect(slow.tls_port) as sock:
        data, closed = read_until_closed(sock)
    assert closed and data == b""


@pytest.mark.parametrize("listener", LISTENERS)
def test_slowloris_gets_408_and_is_closed(slow: EdgeServer, ca: trustme.CA, listener: str) -> None:
    head = [f"GET / HTTP/1.1\r\nHost: {PRODUCTION_HOST}\r\n".encode()]
    head += [f"X-Drip-{i}: {i}\r\n".encode() for i in range(200)]
    with _open(slow, listener, ca) as sock:
        received, closed = _trickle(sock, head, 0.3)
    assert closed
    assert [r.status for r in parse_responses(received)] == [408], received[:300]


def test_slowloris_after_a_first_request_is_closed_too(slow: EdgeServer) -> None:
    """The head deadline starts again with the first bytes of every later request."""
    with connect(slow.port) as sock:
        sock.sendall(get("other.example", close=False))
        first = read_response(sock)
        assert first is not None and first.status == 200
        head = [b"GET / HTTP/1.1\r\n"] + [f"X-Drip-{i}: {i}\r\n".encode() for i in range(200)]
        received, closed = _trickle(sock, head, 0.3)
    assert closed
    assert [r.status for r in parse_responses(received)] == [408]


# -- the body ---------------------------------------------------------------------------


def _stalled_post(target: str, host: str, extra: str = "") -> bytes:
    return (
        f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\n{extra}\r\n"
        "name=just-the-first-bytes"
    ).encode()


@pytest.mark.parametrize("listener", ["visitor", "admin", "tls"])
def test_a_stalled_body_gets_408_and_is_closed(
    slow: EdgeServer, ca: trustme.CA, listener: str
) -> None:
    form = "Content-Type: application/x-www-form-urlencoded\r\n"
    if listener == "admin":
        auth = f"Authorization: Bearer {slow.tokens['admin']}\r\n"
        request = _stalled_post("/v1/sites/acme/blobs/" + "0" * 64, "admin", auth).replace(
            b"POST", b"PUT", 1
        )
    elif listener == "tls":
        request = _stalled_post("/_edge/forms/contact", PRODUCTION_HOST, form)
    else:
        request = _stalled_post("/_edge/forms/contact", "other.example", form)
    with _open(slow, listener, ca) as sock:
        sock.sendall(request)
        received, closed = read_until_closed(sock)
    assert closed
    assert [r.status for r in parse_responses(received)] == [408], received[:300]


def test_a_slow_but_steady_body_is_not_cut(idle: EdgeServer) -> None:
    """The body deadline (5 s here) is for silence, not for the whole body (6 s here)."""
    body = b"name=" + b"x" * 25
    head = (
        "POST /_edge/forms/contact HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with connect(idle.port) as sock:
        received, _ = _trickle(sock, [head] + [body[i : i + 1] for i in range(len(body))], 0.2)
    assert [r.status for r in parse_responses(received)] == [204], received[:300]


# -- idle between requests --------------------------------------------------------------


def test_an_idle_keep_alive_connection_is_closed(idle: EdgeServer) -> None:
    with connect(idle.port) as sock:
        sock.sendall(get("other.example", close=False))
        data, closed = read_until_closed(sock)
    assert closed
    assert [r.status for r in parse_responses(data)] == [200]


def test_the_head_deadline_is_not_the_keep_alive_one(idle: EdgeServer) -> None:
    """``idle`` has a 120 s head deadline: a head sent at once is of course served."""
    got = exchange(idle.port, get("other.example"))
    assert got.first.status == 200


# -- the answer -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listener", "requests"),
    [
        # the answer stays in the write buffer: the send deadline
        pytest.param("visitor", [False], id="visitor"),
        pytest.param("visitor", [True], id="visitor-close"),
        # TLS hands the whole answer to the socket's buffer at once: after it,
        # the close (Connection: close) or the next answer (pipelined) is stuck
        pytest.param("tls", [True], id="tls-close"),
        pytest.param("tls", [False, False], id="tls-pipelined"),
    ],
)
def test_a_client_that_never_reads_is_dropped(
    slow: EdgeServer, ca: trustme.CA, listener: str, requests: list[bool]
) -> None:
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    port = slow.tls_port if listener == "tls" else slow.port
    raw.connect(("127.0.0.1", port))
    sock: socket.socket = raw
    if listener == "tls":
        sock = _tls(ca).wrap_socket(raw, server_hostname=PRODUCTION_HOST)
    host = PRODUCTION_HOST if listener == "tls" else "other.example"
    with sock:
        sock.sendall(b"".join(get(host, "/big.bin", close=close) for close in requests))
        time.sleep(3 * DEADLINE)  # not reading at all
        received, closed = read_until_closed(sock, WAIT + 5)
    assert closed
    assert received.startswith(b"HTTP/1.1 200")
    assert len(received) < len(BIG) * len(requests), "the answer waited for a client not reading"


def test_a_slow_reader_that_keeps_reading_gets_everything(slow: EdgeServer) -> None:
    """Control: reading steadily, however slowly, is progress."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    raw.connect(("127.0.0.1", slow.port))
    with raw:
        raw.sendall(get("other.example", "/big.bin"))
        received, closed = read_until_closed(raw, 60)
    assert closed
    assert parse_responses(received)[0].body == BIG


# -- a thousand of them -----------------------------------------------------------------


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _hold(port: int, drip: bool) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if drip:
            writer.write(b"GET / HTTP/1.1\r\nHost: other.example\r\nX-Drip: 1\r\n")
            await writer.drain()
        return await asyncio.wait_for(reader.read(), WAIT + 20)
    except (ConnectionError, TimeoutError):
        return b""
    finally:
        writer.close()


async def test_a_thousand_idle_and_slowloris_connections_do_not_pile_up(
    slow: EdgeServer,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    assert slow.process is not None
    (pid,) = slow.worker_pids()  # one visitor worker (beside it, the admin process)
    baseline = _fds(pid)
    peak = baseline

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, _fds(pid))
            await asyncio.sleep(0.05)

    watcher = asyncio.ensure_future(watch())
    try:
        holders = [asyncio.ensure_future(_hold(slow.port, i % 2 == 0)) for i in range(1000)]
        await eventually(lambda: peak > baseline + 50, what="the connections reaching the server")
        # a normal visitor is served meanwhile
        answer = await asyncio.to_thread(exchange, slow.port, get("other.example"))
        assert answer.first.status == 200 and answer.first.body == PAGE
        results = await asyncio.wait_for(asyncio.gather(*holders), WAIT + 40)
    finally:
        watcher.cancel()
    assert peak > baseline + 50, "the connections never reached the server"
    dripped = [r for i, r in enumerate(results) if i % 2 == 0]
    assert sum(r.startswith(b"HTTP/1.1 408") for r in dripped) > len(dripped) // 2
    await eventually(
        lambda: _fds(pid), lambda n: n <= baseline + 10, timeout=WAIT, what="the sockets closed"
    )
