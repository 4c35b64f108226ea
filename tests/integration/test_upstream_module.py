"""The upstream proxy over real sockets.

Each test starts a real aiohttp upstream application and edge's visitor wire
(:class:`edge.wire.http1.Http1Server`) whose application calls
:func:`edge.visitor.upstream.forward` with a :func:`edge.netguard.guarded_session`,
both on loopback ports, and talks HTTP to the proxy.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from edge.netguard import guarded_session
from edge.visitor.representation import env_headers
from edge.visitor.upstream import Upstream, forward
from edge.wire.exchange import Request, Responder
from edge.wire.http1 import Http1Server
from edge.wire.limits import WireLimits
from tests.wire_app import FullPathApp

VISITOR_HOST = "acme-preview.example"
ENV_HEADERS = env_headers("staging", "snap-1")
# Generous ceiling so that a proxy that waits forever fails the test instead of hanging it.
CEILING = aiohttp.ClientTimeout(total=20)
WAIT = 10.0  # seconds an upstream or a visitor waits for the other side before giving up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class UpstreamServer:
    """The upstream application and what it saw."""

    port: int = 0
    seen: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    first_chunk_in: asyncio.Event = field(default_factory=asyncio.Event)
    first_chunk_out: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _upstream_app(state: UpstreamServer) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        state.seen.append(request.raw_path)
        body = await request.read()
        headers: CIMultiDict[str] = CIMultiDict(
            [
                ("Connection", "X-Hop-Resp"),
                ("X-Hop-Resp", "secret"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Authenticate", "Basic realm=x"),
                ("Trailer", "X-Checksum"),
                ("Upgrade", "h2c"),
                ("X-Upstream", "yes"),
                ("X-Robots-Tag", "all"),
                ("X-Edge-Env", "production"),
                ("Cache-Control", "public, max-age=600"),
                ("Set-Cookie", "a=1; Path=/"),
                ("Set-Cookie", "b=2; Path=/"),
                ("Via", "1.0 backend"),
            ]
        )
        return web.json_response(
            {
                "method": request.method,
                "target": request.raw_path,
                "headers": list(request.headers.items()),
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "body_len": len(body),
            },
            headers=headers,
        )

    async def upload(request: web.Request) -> web.Response:
        state.seen.append(request.raw_path)
        digest = hashlib.sha256()
        first = await request.content.readany()
        digest.update(first)
        state.first_chunk_in.set()
        total = len(first)
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            total += len(chunk)
        return web.json_response({"body_sha256": digest.hexdigest(), "body_len": total})

    async def fixed(request: web.Request) -> web.Response:
        state.seen.append(request.raw_path)
        return web.Response(text="a fixed body of 29 characters")

    async def redirect(request: web.Request) -> web.Response:
        state.seen.append(request.raw_path)
        return web.Response(status=302, headers={"Location": "/api/echo?from=redirect"})

    async def slow(request: web.Request) -> web.Response:
        state.seen.append(request.raw_path)
        await state.release.wait()
        return web.Response(text="too late")

    async def stream(request: web.Request) -> web.StreamResponse:
        state.seen.append(request.raw_path)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        await response.write(b"first|")
        # Only once the visitor has the first part, through the proxy, comes the rest.
        await asyncio.wait_for(state.first_chunk_out.wait(), WAIT)
        await response.write(b"second|")
        await response.write(b"third")
        await response.write_eof()
        return response

    async def stall(request: web.Request) -> web.StreamResponse:
        state.seen.append(request.raw_path)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.content_length = 100
        await response.prepare(request)
        await response.write(b"x" * 10)
        await state.release.wait()
        return response

    app = web.Application()
    app.router.add_route("*", "/api/echo{tail:.*}", echo)
    app.router.add_post("/api/upload", upload)
    app.router.add_get("/api/fixed", fixed)
    app.router.add_get("/api/redirect", redirect)
    app.router.add_get("/api/slow", slow)
    app.router.add_get("/api/stream", stream)
    app.router.add_get("/api/stall", stall)
    return app


@pytest.fixture
async def upstream() -> AsyncIterator[UpstreamServer]:
    state = UpstreamServer()
    runner = web.AppRunner(_upstream_app(state), shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state.port = runner.addresses[0][1]
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


StartProxy = Callable[..., Awaitable[str]]


@pytest.fixture
async def start_proxy() -> AsyncIterator[StartProxy]:
    """Start a proxy for ``/api/`` -> ``origin``; returns its base URL."""
    async with AsyncExitStack() as stack:

        async def start(
            origin: str,
            *,
            allow: Sequence[str] = ("127.0.0.0/8",),
            read_timeout: float = WAIT,
        ) -> str:
            session = guarded_session(allow, connect_timeout=WAIT, read_timeout=read_timeout)
            stack.push_async_callback(session.close)
            target = Upstream("/api/", origin)

            class Proxy(FullPathApp):
                async def serve(self, request: Request, responder: Responder) -> None:
                    await forward(
                        request, responder, target, session, env_headers=ENV_HEADERS, tls=False
                    )

            server = Http1Server(Proxy(), WireLimits())
            await server.listen("127.0.0.1", 0)
            stack.push_async_callback(server.close)
            return f"http://127.0.0.1:{server.port}"

        yield start


@pytest.fixture
async def visitor() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=CEILING, auto_decompress=False) as session:
        yield session


def _names(pairs: list[list[str]]) -> set[str]:
    return {name.lower() for name, _ in pairs}


def _header(pairs: list[list[str]], name: str) -> list[str]:
    return [value for key, value in pairs if key.lower() == name.lower()]


async def test_forwards_path_query_and_headers(
    upstream: UpstreamServer, start_proxy: StartProxy, visitor: aiohttp.ClientSession
) -> None:
    proxy = await start_proxy(upstream.origin)
    target = "/api/echo/deep/path?x=1&y=a%20b&z=%2F"
    request_headers = CIMultiDict(
        [
            ("Host", VISITOR_HOST),
            ("Connection", "keep-alive, X-Hop-Req"),
            ("X-Hop-Req", "secret"),
            ("Keep-Alive", "300"),
            ("Proxy-Authorization", "Basic eDp5"),
            ("TE", "trailers"),
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-Proto", "https"),
            ("Via", "1.0 client-proxy"),
            ("X-Custom", "kept"),
        ]
    )
    async with visitor.get(URL(proxy + target, encoded=True), headers=request_headers) as resp:
        assert resp.status == 200
        seen: dict[str, Any] = await resp.json()
        response_headers = resp.headers

    # what the upstream got
    assert seen["method"] == "GET"
    assert seen["target"] == target
    got = seen["headers"]
    assert _header(got, "Host") == [f"127.0.0.1:{upstream.port}"]
    for name in ("Connection", "X-Hop-Req", "Keep-Alive", "Proxy-Authorization", "TE"):
        assert name.lower() not in _names(got), name
    # not a trusted proxy: the visitor's own X-Forwarded-For is not passed on
    assert _header(got, "X-Forwarded-For") == ["127.0.0.1"]
    assert _header(got, "X-Forwarded-Proto") == ["http"]
    assert _header(got, "X-Forwarded-Host") == [VISITOR_HOST]
    assert _header(got, "Via") == ["1.0 client-proxy, 1.1 edge"]
    assert _header(got, "X-Custom") == ["kept"]

    # what the visitor got back
    for name in ("X-Hop-Resp", "Keep-Alive", "Proxy-Authenticate", "Trailer", "Upgrade"):
        assert name not in response_headers, name
    assert response_headers.getall("Via") == ["1.0 backend, 1.1 edge"]
    assert response_headers["X-Upstream"] == "yes"
    assert response_headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    # environment headers win over the upstream's
    assert response_headers.getall("X-Robots-Tag") == ["noindex, nofollow"]
    assert response_headers.getall("X-Edge-Env") == ["staging"]
    assert response_headers.getall("Cache-Control") == ["no-store"]
    assert response_headers["X-Edge-Snapshot"] == "snap-1"


async def test_streams_the_request_body(
    upstream: UpstreamServer, start_proxy: StartProxy, visitor: aiohttp.ClientSession
) -> None:
    proxy = await start_proxy(upstream.origin)
    first, rest = b"a" * 1000, b"b" * (512 * 1024)

    async def body() -> AsyncIterator[bytes]:
        yield first
        # The rest is sent only once the upstream has the first part: a proxy that
        # buffered the whole body before forwarding it would never get there.
        await asyncio.wait_for(upstream.first_chunk_in.wait(), WAIT)
        yield rest

    async with visitor.post(proxy + "/api/upload", data=body()) as resp:
        assert resp.status == 200
        result = await resp.json()
    assert result == {
        "body_sha256": hashlib.sha256(first + rest).hexdigest(),
        "body_len": len(first) + len(rest),
    }


async def test_forwards_a_sized_body_and_answers_expect_continue(
    upstream: UpstreamServer, start_proxy: StartProxy, visitor: aiohttp.ClientSession
) -> None:
    proxy = await start_proxy(upstream.origin)
    payload = bytes(range(256)) * 64
    async with visitor.put(proxy + "/api/echo", data=payload, expect100=True) as resp:
        assert resp.status == 200
        seen = await resp.json()
    assert seen["method"] == "PUT"
    assert seen["body_sha256"] == hashlib.sha256(payload).hexdigest()
    assert _header(seen["headers"], "Content-Length") == [str(len(payload))]
    assert "expect" not in _names(seen["headers"])


async def test_streams_the_response(
    upstream: UpstreamServer, start_proxy: StartProxy, visitor: aiohttp.ClientSession
) -> None:
    proxy = await start_proxy(upstream.origin)
    async with visitor.get(proxy + "/api/stream") as resp:
        assert resp.status == 200
        assert await resp.content.readexactly(len(b"first|")) == b"first|"
        # The upstream sends the rest only now: a buffering proxy would never get here.
        upstream.first_chunk_out.set()
        assert await resp.read() == b"second|third"
        assert resp.headers["X-Edge-Env"] == "staging"


async def test_head_keeps_the_length_and_sends_no_body(
    upstream: UpstreamServer, start_proxy: StartProxy, visitor: aiohttp.ClientSession
) -> None:
    proxy = await start_proxy(upstream.origin)
    async with visitor.head(proxy + "/api/fixed") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == "29"
        assert await resp.read() == b""
    assert upstream.seen == ["/api/fixed"]


async def test_redirect_is_passed_through_not_followed(
    upstream: UpstreamServer, start_proxy: StartProxy, visitor: aiohttp.ClientSession
) -> None:
    proxy = await start_proxy(upstream.origin)
    async with visitor.get(proxy + "/api/redirect", allow_redirects=False) as resp:
        assert resp.status == 302
        assert resp.headers["Location"] == "/api/echo?from=redirect"
        assert resp.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert upstream.seen == ["/api/redirect"]


async def test_path_that_could_leave_the_prefix_is_refused(
    upstream: UpstreamServer, start_proxy: StartProxy, visitor: aiohttp.ClientSession
) -> None:
    proxy = await start_proxy(upstream.origin)
    for target in ("/api/%2e%2e/admin", "/api/..%2fadmin", "/elsewhere/"):
        async with visitor.get(URL(proxy + target, encoded=True)) as resp:
            assert resp.status == 400, target
            assert resp.headers["X-Edge-Env"] == "staging"
    assert upstream.seen == []


def _assert_clean_error(body: str, upstream: UpstreamServer | None, port: int) -> None:
    """The visitor learns nothing about the upstream: no address, no port, no exception."""
    assert "127.0.0.1" not in body
    assert "localhost" not in body
    assert str(port) not in body
    assert "Error" not in body
    assert len(body) < 100
    if upstream is not None:
        assert upstream.seen == []


async def test_upstream_slower_than_the_read_timeout_gives_504(
    upstream: UpstreamServer, start_proxy: StartProxy, visitor: aiohttp.ClientSession
) -> None:
    proxy = await start_proxy(upstream.origin, read_timeout=0.3)
    async with visitor.get(proxy + "/api/slow") as resp:
        assert resp.status == 504
        assert resp.headers["X-Edge-Env"] == "staging"
        assert resp.headers["X-Robots-Tag"] == "noindex, nofollow"
        body = await resp.text()
    assert upstream.seen == ["/api/slow"]
    _assert_clean_error(body, None, upstream.port)


async def test_upstream_stalling_mid_body_cuts_the_response_off(
    upstream: UpstreamServer, start_proxy: StartProxy, visitor: aiohttp.ClientSession
) -> None:
    proxy = await start_proxy(upstream.origin, read_timeout=0.3)
    async with visitor.get(proxy + "/api/stall") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == "100"
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_closed_port_gives_502(
    start_proxy: StartProxy, visitor: aiohttp.ClientSession
) -> None:
    port = free_port()
    proxy = await start_proxy(f"http://127.0.0.1:{port}")
    async with visitor.get(proxy + "/api/echo") as resp:
        assert resp.status == 502
        assert resp.headers["X-Edge-Env"] == "staging"
        _assert_clean_error(await resp.text(), None, port)


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:{port}",  # refused by check_url
        "http://[::ffff:127.0.0.1]:{port}",  # the same, IPv4-mapped
        "http://localhost:{port}",  # refused by the resolver
        "http://0x7f.1:{port}",  # a name to aiohttp, 127.0.0.1 to getaddrinfo
    ],
)
async def test_loopback_upstream_without_allow_list_gives_502(
    origin: str,
    upstream: UpstreamServer,
    start_proxy: StartProxy,
    visitor: aiohttp.ClientSession,
) -> None:
    proxy = await start_proxy(origin.format(port=upstream.port), allow=())
    async with visitor.get(proxy + "/api/echo") as resp:
        assert resp.status == 502
        assert resp.headers["X-Edge-Env"] == "staging"
        _assert_clean_error(await resp.text(), upstream, upstream.port)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",  # aiohttp skips the resolver: only the connect-time check sees it
        "[::ffff:127.0.0.1]",
        "localhost",
        "0x7f.1",
        "2130706433",
    ],
)
async def test_guarded_session_refuses_internal_addresses_without_check_url(
    host: str, upstream: UpstreamServer
) -> None:
    async with guarded_session((), connect_timeout=WAIT, read_timeout=WAIT) as session:
        with pytest.raises(aiohttp.ClientError):
            await session.get(f"http://{host}:{upstream.port}/api/echo")
    assert upstream.seen == []


async def test_connect_time_refusal_says_why(upstream: UpstreamServer) -> None:
    async with guarded_session((), connect_timeout=WAIT, read_timeout=WAIT) as session:
        with pytest.raises(aiohttp.ClientConnectorError, match="private address"):
            await session.get(f"http://127.0.0.1:{upstream.port}/api/echo")


async def test_guarded_session_reaches_allowed_networks(upstream: UpstreamServer) -> None:
    async with (
        guarded_session(["127.0.0.0/8"], connect_timeout=WAIT, read_timeout=WAIT) as session,
        session.get(f"http://localhost:{upstream.port}/api/echo", allow_redirects=False) as resp,
    ):
        assert resp.status == 200
    assert upstream.seen == ["/api/echo"]
