"""Request size limits on both listeners, over raw sockets.

The server runs with limits well under aiohttp's defaults (8190-byte lines, 128
fields), so these tests also prove the ``[server]`` keys reach the parser.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.integration.conftest import PRODUCTION_HOST, STAGING_HOST, EdgeServer
from tests.security.wire_support import (
    connect,
    first_response,
    new_server,
    publish_site,
    read_response,
    read_until_closed,
)

MAX_LINE = 1024
MAX_FIELD = 1024
MAX_HEADERS = 20
TEN_GB = 10 * 1024**3
# 16 MiB of zeros: about 16 KiB once gzipped (a decompression bomb in miniature).
BOMB = gzip.compress(b"\0" * (16 * 1024 * 1024), compresslevel=9)


class _Echo(BaseHTTPRequestHandler):
    """Reports the body it received: its size, sha256 and Content-Encoding."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        doc = {
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "encoding": self.headers.get("Content-Encoding"),
        }
        out = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, upstream: str) -> Iterator[EdgeServer]:
    srv = new_server(
        tmp_path_factory.mktemp("limits"),
        extra_config=(
            f"max_request_line = {MAX_LINE}\nmax_header_size = {MAX_FIELD}\n"
            f"max_headers = {MAX_HEADERS}\nmax_request_bytes = 1048576\n"
            'allow_private_targets = ["127.0.0.0/8"]\n'
        ),
        env_extra={
            "acme.staging": f'upstreams = [{{ prefix = "/api/", origin = "{upstream}" }}]',
        },
    )
    srv.start()
    try:
        publish_site(
            srv,
            {"/index.html": b"<html><head></head><body>home</body></html>"},
            settings={"forms": {"contact": {"max_bytes": 1024}}},
        )
        yield srv
    finally:
        srv.stop()


def _port(srv: EdgeServer, listener: str) -> int:
    return srv.port if listener == "visitor" else srv.admin_port


def _send(port: int, data: bytes, *, trickle: bool) -> int | None:
    """The status of the first answer, sending ``data`` at once or 7 bytes at a time."""
    with connect(port) as sock:
        if trickle:
            for i in range(0, len(data), 7):
                try:
                    sock.sendall(data[i : i + 7])
                except (BrokenPipeError, ConnectionResetError):
                    break  # refused before the end: the answer is waiting
                time.sleep(0.001)
        else:
            sock.sendall(data)
        response = read_response(sock)
    return None if response is None else response.status


LISTENERS = ["visitor", "admin"]
TRICKLE = [pytest.param(False, id="at-once"), pytest.param(True, id="trickled")]


def _head(target: str = "/", extra: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {PRODUCTION_HOST}\r\n{extra}\r\n".encode()


@pytest.mark.parametrize("listener", LISTENERS)
@pytest.mark.parametrize("trickle", TRICKLE)
def test_a_long_request_target_gets_414(edge: EdgeServer, listener: str, trickle: bool) -> None:
    long_target = "/" + "a" * (MAX_LINE + 10)
    assert _send(_port(edge, listener), _head(long_target), trickle=trickle) == 414
    assert _send(_port(edge, listener), _head("/" + "a" * (MAX_LINE - 10)), trickle=trickle) == 404


@pytest.mark.parametrize("listener", LISTENERS)
@pytest.mark.parametrize("trickle", TRICKLE)
def test_a_long_header_field_gets_431(edge: EdgeServer, listener: str, trickle: bool) -> None:
    port = _port(edge, listener)
    assert _send(port, _head(extra=f"X-Long: {'v' * (MAX_FIELD + 10)}\r\n"), trickle=trickle) == 431
    assert _send(port, _head(extra=f"X-{'n' * (MAX_FIELD + 10)}: v\r\n"), trickle=trickle) == 431
    ok = _send(
        port, _head("/nowhere", extra=f"X-Long: {'v' * (MAX_FIELD - 100)}\r\n"), trickle=trickle
    )
    assert ok == 404


def _endless(port: int, start: bytes) -> tuple[int | None, bool]:
    """Send ``start``, then up to 64 times the field limit with no line end; the status
    of the answer and whether the connection then closed."""
    with connect(port) as sock:
        sock.sendall(start)
        for _ in range(64 * MAX_FIELD // 4096):
            try:
                sock.sendall(b"v" * 4096)
            except (BrokenPipeError, ConnectionResetError):
                break  # refused before the end: the answer is waiting
        response = read_response(sock)
        _, closed = read_until_closed(sock)
    return (None if response is None else response.status), closed


@pytest.mark.parametrize("listener", LISTENERS)
@pytest.mark.parametrize(
    "start",
    [
        pytest.param(_head()[:-2] + b"X-Long: ", id="value"),
        pytest.param(_head()[:-2] + b"X-", id="name"),
    ],
)
def test_a_header_line_that_never_ends_gets_431_without_waiting_for_its_end(
    edge: EdgeServer, listener: str, start: bytes
) -> None:
    """The parser buffers a field until its line ends: a line that never ends is refused
    once it is past the limit, not held in memory (it was, without bound, on the visitor
    wire) until the head deadline."""
    assert _endless(_port(edge, listener), start) == (431, True)


def test_a_request_after_a_body_is_no_endless_line(edge: EdgeServer) -> None:
    """A Content-Length body (no line end in it, longer than the line limit) and the
    start of the next request in one read: the body's bytes are no part of that
    request's first line (counted with it, they got 431)."""
    body = b"q" * (4 * MAX_FIELD)
    post = (
        f"POST /api/echo HTTP/1.1\r\nHost: {STAGING_HOST}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    after = _head()
    with connect(edge.port) as sock:
        sock.sendall(post + body + after[:7])
        echoed = read_response(sock)
        assert echoed is not None and echoed.status == 200
        assert json.loads(echoed.body)["size"] == len(body)
        sock.sendall(after[7:])
        page = read_response(sock)
    assert page is not None and page.status == 200, page


_CHUNKED_FORM = (
    f"POST /_edge/forms/contact HTTP/1.1\r\nHost: {PRODUCTION_HOST}\r\n"
    "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
).encode()


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(_CHUNKED_FORM + b"3\r\na=1\r\n0\r\nX-Trailer: ", id="trailer"),
        # In the same read as the head: refused before the form's task started.
        pytest.param(_CHUNKED_FORM + b"1;" + b"e" * 4 * MAX_FIELD, id="chunk-extension"),
    ],
)
def test_a_framing_line_of_a_body_that_never_ends_gets_431(edge: EdgeServer, start: bytes) -> None:
    """Not the 500 of a form whose body failed under it."""
    assert _endless(edge.port, start) == (431, True)


@pytest.mark.parametrize(
    ("head", "status", "code"),
    [
        (_head("/" + "a" * (MAX_LINE + 10)), 414, "uri_too_long"),
        (_head(extra=f"X-Long: {'v' * (MAX_FIELD + 10)}\r\n"), 431, "headers_too_large"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nBad\x00Name: v\r\n\r\n", 400, "bad_request"),
    ],
)
def test_parser_refusals_on_the_admin_listener_are_json_errors(
    edge: EdgeServer, head: bytes, status: int, code: str
) -> None:
    """Refused before the admin app sees it, still the API's error format; visitors get text."""
    with connect(edge.admin_port) as sock:
        sock.sendall(head)
        response = read_response(sock)
    assert response is not None and response.status == status
    assert response.headers["content-type"].startswith("application/json")
    assert json.loads(response.body)["error"]["code"] == code
    with connect(edge.port) as sock:
        sock.sendall(head)
        response = read_response(sock)
    assert response is not None and response.status == status
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("listener", LISTENERS)
def test_too_many_header_fields_get_431(edge: EdgeServer, listener: str) -> None:
    port = _port(edge, listener)
    many = "".join(f"X-F{i}: v\r\n" for i in range(MAX_HEADERS + 5))
    assert _send(port, _head(extra=many), trickle=False) == 431
    few = "".join(f"X-F{i}: v\r\n" for i in range(MAX_HEADERS - 2))
    assert _send(port, _head("/nowhere", extra=few), trickle=False) == 404


# -- bodies: refused from the announced length, before any of it is sent ------------


def _announce(target: str, host: str, extra: str = "", method: str = "POST") -> bytes:
    return (
        f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {TEN_GB}\r\n{extra}\r\n"
    ).encode()


def test_a_form_announcing_ten_gigabytes_gets_413_before_sending_it(edge: EdgeServer) -> None:
    request = _announce(
        "/_edge/forms/contact",
        PRODUCTION_HOST,
        "Content-Type: application/x-www-form-urlencoded\r\n",
    )
    assert first_response(edge.port, request).status == 413


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/v1/sites/acme/blobs/" + "0" * 64),
        ("POST", "/v1/sites/acme/snapshots"),
        ("POST", "/v1/sites/acme/blobs/missing"),
        ("POST", "/v1/sites/acme/publish"),
    ],
)
def test_an_admin_body_announcing_ten_gigabytes_gets_413_before_sending_it(
    edge: EdgeServer, method: str, path: str
) -> None:
    auth = f"Authorization: Bearer {edge.tokens['admin']}\r\nContent-Type: application/json\r\n"
    answer = first_response(edge.admin_port, _announce(path, "admin", auth, method))
    assert answer.status == 413, answer.body
    assert json.loads(answer.body)["error"]["code"] == "too_large"


# -- compressed request bodies: never inflated -----------------------------------------


def _coded(method: str, target: str, host: str, body: bytes, extra: str = "") -> bytes:
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
        f"Content-Encoding: gzip\r\nConnection: close\r\n{extra}\r\n"
    )
    return head.encode() + body


def test_a_compressed_form_body_gets_415(edge: EdgeServer) -> None:
    ctype = "Content-Type: application/x-www-form-urlencoded\r\n"
    for body in (BOMB, gzip.compress(b"name=x")):
        answer = first_response(
            edge.port, _coded("POST", "/_edge/forms/contact", PRODUCTION_HOST, body, ctype)
        )
        assert answer.status == 415, answer.body


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/v1/sites/acme/blobs/" + hashlib.sha256(b"\0" * (16 * 1024 * 1024)).hexdigest()),
        ("POST", "/v1/sites/acme/snapshots"),
        ("POST", "/v1/sites/acme/blobs/missing"),
    ],
)
def test_a_compressed_admin_body_gets_415(edge: EdgeServer, method: str, path: str) -> None:
    auth = f"Authorization: Bearer {edge.tokens['admin']}\r\nContent-Type: application/json\r\n"
    answer = first_response(edge.admin_port, _coded(method, path, "admin", BOMB, auth))
    assert answer.status == 415, answer.body
    assert json.loads(answer.body)["error"]["code"] == "unsupported_media_type"


def test_a_compressed_body_reaches_an_upstream_as_sent(edge: EdgeServer) -> None:
    answer = first_response(edge.port, _coded("POST", "/api/echo", STAGING_HOST, BOMB))
    assert answer.status == 200, answer.body
    seen = json.loads(answer.body)
    assert seen == {
        "size": len(BOMB),
        "sha256": hashlib.sha256(BOMB).hexdigest(),
        "encoding": "gzip",
    }


def test_controls_the_same_requests_uncompressed_are_served(edge: EdgeServer) -> None:
    form = b"name=x"
    request = (
        f"POST /_edge/forms/contact HTTP/1.1\r\nHost: {PRODUCTION_HOST}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(form)}\r\n\r\n"
    ).encode() + form
    assert first_response(edge.port, request).status == 204
    body = json.dumps({"sha256": ["0" * 64]}).encode()
    missing = (
        f"POST /v1/sites/acme/blobs/missing HTTP/1.1\r\nHost: admin\r\n"
        f"Authorization: Bearer {edge.tokens['admin']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    assert first_response(edge.admin_port, missing).status == 200
