"""One request and its answer on the visitor wire: what the application sees.

:class:`Request` is filled by the parser's callbacks (:mod:`edge.wire.http1`);
:class:`Body` is its body as it arrives (bounded, with flow control and ``100
Continue``); :class:`Responder` writes the answer, whole or streamed, and decides
what the connection does after it (keep-alive, ``Connection: close``). The bytes
helpers here are also what representations are prebuilt with
(:mod:`edge.visitor.representation`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Iterable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Protocol

from multidict import CIMultiDict, CIMultiDictProxy

log = logging.getLogger("edge.wire")

BODY_HIGH_WATER = 256 * 1024  # request body bytes buffered before reading pauses


class Connection(Protocol):
    """What a request's body and answer need from their connection."""

    draining: bool

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...

    def hold_reading(self) -> None: ...

    def release_reading(self) -> None: ...

    def send_continue(self) -> None: ...


# -- ready-made pieces of answers ------------------------------------------------------

_REASONS = {s.value: s.phrase for s in HTTPStatus}


def reason(status: int) -> str:
    """The standard reason phrase of ``status``."""
    return _REASONS.get(status, "Unknown")


def status_line(status: int, reason: str | None = None) -> bytes:
    phrase = reason if reason is not None else _REASONS.get(status, "Unknown")
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1", "replace")


def header_block(headers: Iterable[tuple[str, str]]) -> bytes:
    """``Name: value\\r\\n`` lines; a field holding CR or LF is left out, never sent."""
    lines = []
    for name, value in headers:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            log.warning("left out a response header with a line break: %r", name)
            continue
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1", "replace")


class _Clock:
    """The ``Date`` line, formatted at most once a second.

    :meth:`date` reads the clock; while a listener runs, :meth:`tick` also keeps
    :attr:`line` current from the event loop, once a second, so that a cache hit
    reads an attribute instead of the clock.
    """

    __slots__ = ("_loop", "end", "line", "second")

    def __init__(self) -> None:
        self.second = -1
        self.line = b""
        self.end = b""  # the Date line and the blank line that ends a head
        self._loop: asyncio.AbstractEventLoop | None = None
        self.date()

    def date(self) -> bytes:
        now = time.time()
        second = int(now)
        if second != self.second:
            self.second = second
            self.line = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
            self.end = self.line + b"\r\n"
        return self.line

    def tick(self, loop: asyncio.AbstractEventLoop) -> None:
        """Keep :attr:`line` current from ``loop`` (once per loop; idempotent)."""
        if self._loop is not loop:
            self._loop = loop
            self._tick(loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not loop or loop.is_closed():
            return
        self.date()
        loop.call_at(loop.time() + (self.second + 1 - time.time()), self._tick, loop)


CLOCK = _Clock()


def refusal_bytes(status: int, text: str | None = None) -> bytes:
    """A short plain-text answer that says the connection closes."""
    if text is None:
        text = f"{status} {_REASONS.get(status, 'Error')}"
    body = (text + "\n").encode()
    return (
        status_line(status)
        + b"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
        + b"Content-Length: %d\r\n" % len(body)
        + CLOCK.date()
        + b"\r\n"
        + body
    )


# -- a request ---------------------------------------------------------------------------


class Body:
    """A request body as it arrives: bounded buffer, flow control, ``100 Continue``."""

    __slots__ = ("_chunks", "_conn", "_continue", "_error", "_waiter", "done", "size")

    def __init__(self, conn: Connection, expect_continue: bool) -> None:
        self._conn = conn
        self._chunks: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._continue = expect_continue
        self._error: BaseException | None = None
        self.size = 0  # buffered bytes
        self.done = False

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self.size += len(data)
        if self.size > BODY_HIGH_WATER:
            self._conn.hold_reading()
        self._wake()

    def finish(self) -> None:
        self.done = True
        self._wake()

    @property
    def gone(self) -> bool:
        """The client went away (or stalled) before the body was complete."""
        return self._error is not None

    def fail(self, exc: BaseException) -> None:
        if not self.done:
            self._error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self) -> bytes:
        """The next chunk, ``b""`` at the end; ConnectionResetError if the client went away."""
        while not self._chunks:
            if self.done:
                return b""
            if self._error is not None:
                raise ConnectionResetError("the client went away in the middle of the body")
            if self._continue:
                self._continue = False
                self._conn.send_continue()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk = self._chunks.popleft()
        self.size -= len(chunk)
        if self.size <= BODY_HIGH_WATER // 2:
            self._conn.release_reading()
        return chunk

    def __aiter__(self) -> Body:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.read()
        if not chunk:
            raise StopAsyncIteration
        return chunk


class Request:
    """One parsed request head (and its body, when it has one).

    Every field but the header containers is a class-level default, so that making
    one per request (a cache hit included) sets only what the parser found.
    """

    method: str = "GET"
    target: str = "/"
    version: tuple[int, int] = (1, 1)
    _headers: CIMultiDictProxy[str] | None = None
    body: Body | None = None
    complete: bool = False  # the whole message (body included) has arrived
    keep_alive: bool = True
    head: bool = False
    peer: str | None = None
    tls: bool = False
    route: Any = None  # what the application says the request was for (metrics)
    started: float = 0.0
    # The answer, once written: status, body bytes, the snapshot it came from.
    status: int = 0
    nbytes: int = 0
    snapshot: str | None = None
    refusal: bytes | None = None  # refused at the wire: answer this and close
    asked: bool = False  # the application's hit path was asked already (and had nothing)
    again: Any = None  # set by the hit path: how to answer the same head's bytes again

    def __init__(self) -> None:
        self.raw: list[tuple[bytes, bytes]] = []  # header fields as sent
        self.fields: dict[bytes, bytes] = {}  # lower-case name -> last value

    def header(self, name: bytes) -> str | None:
        """One field by lower-case name (the last one sent), decoded."""
        value = self.fields.get(name)
        return None if value is None else value.decode("latin-1")

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """Every field, decoded, case-insensitive (built on first use: not on cache hits)."""
        if self._headers is None:
            self._headers = CIMultiDictProxy(
                CIMultiDict((n.decode("latin-1"), v.decode("latin-1")) for n, v in self.raw)
            )
        return self._headers

    @property
    def path(self) -> str:
        """The target without its query."""
        return self.target.partition("?")[0]

    @property
    def query_string(self) -> str:
        return self.target.partition("?")[2]


# -- answering ---------------------------------------------------------------------------


class Responder:
    """How :meth:`App.serve` answers one request: whole, or streamed."""

    __slots__ = ("_chunked", "_conn", "_no_body", "_request")

    def __init__(self, conn: Connection, request: Request) -> None:
        self._conn = conn
        self._request = request
        self._chunked = False
        self._no_body = False

    @property
    def started(self) -> bool:
        return self._request.status != 0

    def _head(
        self, status: int, headers: Iterable[tuple[str, str]], reason: str | None, tail: bytes
    ) -> bytes:
        request = self._request
        conn = self._conn
        if not request.complete or conn.draining:
            request.keep_alive = False  # the rest of a body is never read: close after this
        if request.keep_alive:
            connection = b"Connection: keep-alive\r\n" if request.version == (1, 0) else b""
        else:
            connection = b"Connection: close\r\n"
        return status_line(status, reason) + header_block(headers) + tail + connection

    def answer(
        self,
        status: int,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        reason: str | None = None,
    ) -> None:
        """A whole answer: Content-Length, and no body for HEAD, 1xx, 204 and 304."""
        assert not self.started, "the answer has started already"
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        request = self._request
        request.status = status
        request.snapshot = _snapshot_of(pairs)
        bodiless = status in (204, 304) or status < 200
        tail = b"" if bodiless else b"Content-Length: %d\r\n" % len(body)
        head = self._head(status, pairs, reason, tail) + CLOCK.date() + b"\r\n"
        if bodiless or request.head:
            body = b""
        request.nbytes = len(body)
        self._conn.write(head + body if body else head)

    def prebuilt(self, status: int, head: bytes, body: bytes, snapshot: str | None = None) -> None:
        """A whole answer made beforehand: ``head`` is its status line and headers
        (Content-Length included), up to the ``Date`` line."""
        assert not self.started, "the answer has started already"
        request = self._request
        request.status = status
        request.snapshot = snapshot
        conn = self._conn
        if not request.complete or conn.draining:
            request.keep_alive = False
        if request.keep_alive:
            connection = b"Connection: keep-alive\r\n" if request.version == (1, 0) else b""
        else:
            connection = b"Connection: close\r\n"
        if request.head or status == 304:
            body = b""
        request.nbytes = len(body)
        conn.write(b"".join((head, connection, CLOCK.date(), b"\r\n", body)))

    def start(
        self,
        status: int,
        headers: Iterable[tuple[str, str]],
        *,
        reason: str | None = None,
    ) -> None:
        """Start a streamed answer: ``headers`` as given (a Content-Length among them is
        kept), otherwise chunked (HTTP/1.1) or delimited by the close (HTTP/1.0)."""
        assert not self.started, "the answer has started already"
        pairs = [(n, v) for n, v in headers if n.lower() not in ("transfer-encoding", "connection")]
        self._request.status = status
        self._request.snapshot = _snapshot_of(pairs)
        sized = any(n.lower() == "content-length" for n, _ in pairs)
        self._no_body = self._request.head or status in (204, 304) or status < 200
        tail = b""
        if not sized and not self._no_body:
            if self._request.version >= (1, 1):
                self._chunked = True
                tail = b"Transfer-Encoding: chunked\r\n"
            else:
                self._request.keep_alive = False
        self._conn.write(self._head(status, pairs, reason, tail) + CLOCK.date() + b"\r\n")

    async def write(self, chunk: bytes) -> None:
        """One piece of a streamed body; waits while the client is not taking them."""
        if not chunk or self._no_body:
            return
        self._request.nbytes += len(chunk)
        conn = self._conn
        if self._chunked:
            conn.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        else:
            conn.write(chunk)
        await conn.drain()

    async def end(self) -> None:
        """The end of a streamed body."""
        if self._chunked:
            self._conn.write(b"0\r\n\r\n")
        await self._conn.drain()

    def cut(self) -> None:
        """The body cannot be completed: close, so the client sees it cut off."""
        self._request.keep_alive = False
        self._conn.close()


def _snapshot_of(pairs: list[tuple[str, str]]) -> str | None:
    for name, value in pairs:
        if name == "X-Edge-Snapshot":
            return value
    return None


class App(Protocol):
    """What a listener serves: ready-made bytes when it has them, else a coroutine."""

    def hit(self, request: Request) -> tuple[bytes, ...] | None: ...

    def again(self, head: bytes) -> tuple[bytes, ...] | None:
        """The answer to a whole read that repeats a head :meth:`remember` was given;
        ``None``: parse it."""
        ...

    def again_written(self, elapsed: float) -> None:
        """The answer :meth:`again` gave last is written: count it."""
        ...

    def remember(self, head: bytes, again: Any) -> None:
        """``head`` was one read holding exactly one request, which :meth:`hit`
        answered and marked ``request.again``."""
        ...

    def serve(self, request: Request, responder: Responder) -> Awaitable[None]: ...

    def answered(self, request: Request) -> None: ...
