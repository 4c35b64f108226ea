"""A failure in the application's hit path is not the client's fault (edge.wire.http1).

The hit is asked inside the parser's callback; an exception there must not come out
as the parser's 400. The request goes the full way instead (App.serve).
"""

from __future__ import annotations

import asyncio

import pytest

from edge.wire.exchange import Request, Responder
from edge.wire.http1 import Http1Server
from edge.wire.limits import WireLimits
from tests.wire_app import FullPathApp


class _BrokenHit(FullPathApp):
    def hit(self, request: Request) -> tuple[bytes, ...] | None:
        raise RuntimeError("a bug in the hit path")

    async def serve(self, request: Request, responder: Responder) -> None:
        responder.answer(200, {"Content-Type": "text/plain"}, b"served\n")


async def test_a_failing_hit_falls_back_to_the_full_path(caplog: pytest.LogCaptureFixture) -> None:
    app = _BrokenHit()
    server = Http1Server(app, WireLimits())
    await server.listen("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        get = b"GET / HTTP/1.1\r\nHost: a.example\r\n"
        writer.write(get + b"\r\n" + get + b"Connection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 20)
        writer.close()
    finally:
        await server.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert answer.count(b"HTTP/1.1 200 ") == 2
    assert answer.endswith(b"served\n")
    assert "the cache hit path failed" in caplog.text
