"""Where a read ends is the client's network's choice, not the client's (edge.wire.http1).

The reads are handed to the connection one by one, exactly as given, so a boundary that
TCP may or may not produce is tested every time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edge.wire.exchange import Request, Responder
from edge.wire.http1 import Http1Protocol, Http1Server
from edge.wire.limits import WireLimits
from tests.wire_app import FullPathApp

LIMITS = WireLimits(max_request_line=256, max_header_size=256)


class _Echo(FullPathApp):
    """Answers the method, target and body size; ``/hit`` is a ready-made answer."""

    def __init__(self) -> None:
        self.counted: list[tuple[str, int]] = []

    def hit(self, request: Request) -> tuple[bytes, ...] | None:
        if request.target != "/hit":
            return None
        request.status = 200
        return (b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nhit\n",)

    async def serve(self, request: Request, responder: Responder) -> None:
        size = 0
        if request.body is not None:
            while chunk := await request.body.read():
                size += len(chunk)
        answer = f"{request.method} {request.target} {size}\n".encode()
        responder.answer(200, {"Content-Type": "text/plain"}, answer)

    def answered(self, request: Request) -> None:
        self.counted.append((request.target, request.status))


class _Transport:
    def __init__(self) -> None:
        self.out = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out += data

    def writelines(self, data: Any) -> None:
        for part in data:
            self.out += part

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def _answers(reads: list[bytes]) -> tuple[list[bytes], _Echo]:
    """The status lines and bodies written for ``reads``, each one ``data_received``."""
    app = _Echo()
    conn = Http1Protocol(Http1Server(app, LIMITS))
    transport = _Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    for data in reads:
        conn.data_received(data)
        for _ in range(10):
            await asyncio.sleep(0)  # let the answering task run
    conn.connection_lost(None)
    answers = [
        part.split(b"\r\n", 1)[0] + b" | " + part.rpartition(b"\r\n\r\n")[2]
        for part in bytes(transport.out).split(b"HTTP/1.1 ")[1:]
    ]
    return answers, app


BODY = b"q" * 1500  # no line end in it, longer than the line limit
NEXT = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"


@pytest.mark.parametrize("version", ["1.1", "1.0"])
async def test_a_request_after_a_body_is_not_refused_wherever_the_read_ends(version: str) -> None:
    """The bytes of a Content-Length body are no part of the next request's first line;
    the read ending inside that line got 431."""
    keep = "Connection: keep-alive\r\n" if version == "1.0" else ""
    post = f"POST /up HTTP/{version}\r\nHost: a\r\n{keep}Content-Length: {len(BODY)}\r\n\r\n"
    stream = post.encode() + BODY + NEXT
    start = len(post) + len(BODY)
    for cut in range(start - 2, start + len(NEXT)):
        answers, _ = await _answers([stream[:cut], stream[cut:]])
        assert answers == [b"200 OK | POST /up 1500\n", b"200 OK | GET /next 0\n"], cut


@pytest.mark.parametrize("body", [b"q", b"q" * 1500, b"q\nq"])
async def test_a_line_that_never_ends_after_a_body_is_still_refused(body: bytes) -> None:
    """Taking the body's bytes off the next request's line leaves that line measured
    (from the next read on at worst, when the body's end cannot be told apart)."""
    post = f"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    endless = b"GET /next HTTP/1.1\r\nHost: a\r\nX-Long: " + b"v" * 600
    for reads in ([post + body + endless], [post, body + endless], [post, body + endless[:40]]):
        reads.append(b"v" * 600)  # the line goes on
        answers, _ = await _answers(reads)
        assert answers[0] == b"200 OK | POST /up %d\n" % len(body), answers
        assert [a[:4] for a in answers[1:]] == [b"431 "], answers


async def test_a_refusal_is_answered_after_the_hits_of_its_read() -> None:
    """A hit answered in the read that ends in a refused request is still that hit's
    answer: dropping it sent the next request's answer in its place."""
    head = b"GET /hit HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"
    for refused, status in [
        (b"GET /c HTTP/1.1\r\nX-Long: " + b"v" * 1000, b"431 "),  # the unfinished line
        (b"GET /" + b"c" * 1000, b"414 "),  # a parser callback's refusal
    ]:
        answers, app = await _answers([head + refused])
        assert answers[:2] == [b"200 OK | hit\n", b"200 OK | GET /b 0\n"], answers
        assert answers[2].startswith(status) and len(answers) == 3, answers
        assert app.counted == [("/hit", 200), ("/b", 200)]
