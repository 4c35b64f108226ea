"""The visitor wire: one ``asyncio.Protocol`` per connection, httptools' C parser.

How this works (uvicorn's ``httptools_impl.py`` is the model; h11 says what
correct HTTP/1.1 framing means): the parser's callbacks fill a small
:class:`Request` per message. Requests are answered one at a time, in the order
they arrived, however many a client pipelines. For each one the application is
first asked for ready-made buffers (:meth:`App.hit`, a cache hit: dictionary
lookups, no task, no coroutine); only when it has none does a task run
:meth:`App.serve`, which answers through a :class:`Responder` (whole answers, or
streamed ones with backpressure through ``pause_writing``/``resume_writing``).

A plain GET or HEAD (HTTP/1.1, keep-alive, no body) with nothing earlier waiting
on its connection is asked inside ``on_message_complete`` itself, without going
through the pipeline; the hits of one read are written together with one
``transport.writelines`` once the whole read has parsed (a read that fails to
parse answers only its refusal), at most :data:`PIPELINE_MAX` of them per read.

Defences, each with the behaviour edge had on aiohttp (docs/running.md):

- **Framing.** What llhttp refuses (CL with TE, duplicate CL, bad chunk sizes,
  bare LF, obs-fold, control bytes, ...) and what edge refuses on top of it
  (:mod:`edge.wire.framing`: TE in HTTP/1.0, codings before ``chunked``, other
  major versions; two Host fields; HTTP/1.1 without Host; framing fields in
  trailers) is answered with a short text and the connection closed. Nothing
  after a refused request is read; the requests before it are answered first.
  Requests completed in the same read as a parser error are dropped with it, as
  aiohttp did: the bytes are suspect.
- **Sizes.** A request target over ``max_request_line`` is 414; a field over
  ``max_header_size`` or more than ``max_headers`` fields is 431; counted as the
  bytes arrive, so a trickled head is refused as soon as it passes a limit.
- **Deadlines** (each armed when its phase starts, never per read):
  ``header_timeout`` for a head (408 if part of it came), ``body_timeout`` for
  silence inside a body (time edge itself stopped reading does not count),
  ``send_timeout`` for a write buffer that does not drain and for a close that
  does not complete (abort), ``keepalive_timeout`` between requests. Before a
  deadline counts as missed the kernel is asked whether bytes were waiting or
  acknowledged meanwhile (:func:`kernel_queue`), so a busy edge does not blame
  its clients.
- **Memory.** A body is buffered up to :data:`BODY_HIGH_WATER` before reading
  pauses; at most :data:`PIPELINE_MAX` requests wait behind the one being
  answered; no request is started while the transport's write buffer is over
  its high-water mark.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections import deque
from time import perf_counter as _now

import httptools

from edge.wire.exchange import (
    BODY_HIGH_WATER,
    CLOCK,
    App,
    Body,
    Request,
    Responder,
    reason,
    refusal_bytes,
)
from edge.wire.framing import framing_error
from edge.wire.limits import WireLimits
from edge.wire.sockets import UNREAD as _UNREAD
from edge.wire.sockets import SendDeadline, kernel_queue

log = logging.getLogger("edge.wire")

BACKLOG = 1024  # pending connections per listener socket
PIPELINE_MAX = 32  # requests parsed ahead of the one being answered before reading pauses
_FRAMING_FIELDS = frozenset({b"content-length", b"transfer-encoding", b"host"})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_REQUEST_TIMEOUT = 408
_LINE_SLACK = 256  # a line's bytes besides its counted part (method, version, ": ", OWS)
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}


def _line_tail(data: bytes) -> int:
    """How many bytes of ``data`` follow its last line end (all of them without one)."""
    return len(data) - data.rfind(b"\n") - 1


class _Refused(Exception):
    """Raised from a parser callback: stop parsing, answer ``status`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- the connection ----------------------------------------------------------------------


class Http1Protocol(asyncio.Protocol):
    """One visitor connection (see the module docstring)."""

    def __init__(self, server: Http1Server) -> None:
        self._server = server
        self._app = server.app
        self._limits = server.limits
        self._loop = server.loop
        self._tls = server.tls
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._raw: asyncio.Transport | None = None  # kept until the socket is really gone
        self._peer: str | None = None
        self._pipeline: deque[Request] = deque()
        # Cache hits answered inside the parser's callbacks during one read, written
        # together once the read has parsed cleanly (one writev for pipelined hits).
        self._ready: list[bytes] = []
        self._hits: list[Request] = []
        self._current: Request | None = None  # being answered by a task
        self._task: asyncio.Task[None] | None = None
        self._parsing: Request | None = None  # the message the parser is inside
        self._responder: Responder | None = None  # of the request a task answers
        self._in_body = False  # the parser is past the head of ``_parsing``
        self._quick = False  # ``_parsing`` may be answered inside on_message_complete
        self._last_data = 0.0
        self._url = b""
        self._max_request_line = self._limits.max_request_line
        self._max_header_size = self._limits.max_header_size
        self._max_headers = self._limits.max_headers
        # httptools hands a header field over only once its line has ended, and buffers
        # it until then: an unfinished line (head or trailer) is measured here instead.
        self._max_open_line = max(self._max_request_line, self._max_header_size) + _LINE_SLACK
        self._open_line = 0  # bytes of the unfinished line at the end of the last read
        self._fed: bytes | None = None  # the last body bytes of the read being parsed
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_reprieve = False
        self._idle_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_last = 0.0
        send_timeout = self._limits.send_timeout
        self._send_deadline = SendDeadline(self._loop, send_timeout, "client stopped reading")
        self._close_deadline = SendDeadline(self._loop, send_timeout, "close did not complete")
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._holds = 0  # reasons reading is paused (body buffer, pipeline depth)
        self._read_paused = False
        self._closing = False
        self._stopped = False  # nothing more is parsed (refused, closing)
        self.draining = False

    # -- connection -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = self._raw = transport  # type: ignore[assignment]  # a stream one
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) and peer else None
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self._server.connections.add(self)
        loop = self._loop
        self._head_timer = loop.call_later(self._limits.header_timeout, self._head_expired)
        self._idle_timer = loop.call_later(self._limits.keepalive_timeout, self._idle_expired)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._server.connections.discard(self)
        for timer in (self._head_timer, self._idle_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._idle_timer = self._body_timer = None
        self._send_deadline.cancel()
        self._close_deadline.cancel()
        self.transport = self._raw = None
        self._stopped = self._closing = True
        gone = ConnectionResetError("the client went away")
        for request in (self._current, self._parsing, *self._pipeline):
            if request is not None and request.body is not None:
                request.body.fail(gone)
        self._pipeline.clear()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(gone)
        # A task still answering notices at its next write (ConnectionResetError); one
        # waiting on an upstream that never answers is the drain's to cut.

    def data_received(self, data: bytes) -> None:
        if self._stopped:
            return
        # The idle timer is not cancelled per read: it looks at this when it fires.
        self._last_data = self._loop.time()
        fresh = self._parsing is None  # the read starts a new message
        if (
            fresh
            and self._idle_timer is not None
            and self._task is None
            and not self._pipeline
            and not self._write_paused
            and not self._read_paused
            and not self._closing
            and not self.draining
        ):
            # Between requests, with nothing waiting: a read that repeats a whole head
            # answered from the cache before is answered again (edge.visitor.again).
            started = _now()
            ready = self._app.again(data)
            if ready is not None:
                timer = self._head_timer
                if timer is not None:  # the head is whole: as on_headers_complete does
                    timer.cancel()
                    self._head_timer = None
                self.transport.writelines(ready)  # type: ignore[union-attr]
                self._app.again_written(_now() - started)
                return
        before = len(self._pipeline)
        try:
            self._parser.feed_data(data)
        except _Refused as refused:
            # The hits of this read are requests before the refused one, and so are the
            # requests waiting in the pipeline behind them: all are answered, in order.
            self._refuse(refused.status, refused.message)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refused):
                self._refuse(cause.status, cause.message)
            else:
                self._hits.clear()
                self._ready.clear()
                self._drop_since(before)
                self._refuse(400, "Bad Request")
        except httptools.HttpParserUpgrade:
            # No protocol upgrades here: answer what was asked, then close.
            if self._quick and self._parsing is not None:
                self._pipeline.append(self._parsing)  # its head ended the read
                self._parsing = None
            if self._pipeline:
                self._pipeline[-1].keep_alive = False
            elif self._hits:
                self._hits[-1].keep_alive = False  # closes once written
            self._stopped = True
        except httptools.HttpParserError as exc:
            pipeline = self._pipeline
            if self._parsing is None and pipeline and not pipeline[-1].keep_alive:
                # Bytes after a request that said Connection: close (llhttp stops
                # there): that request is answered, the rest is never read.
                self._stopped = True
            else:
                log.debug("refused a request from %s: %s", self._peer, exc)
                self._hits.clear()
                self._ready.clear()
                self._drop_since(before)
                self._refuse(400, "Bad Request")
        else:
            if fresh and len(self._hits) == 1 and self._parsing is None and not self._pipeline:
                again = self._hits[0].again
                if again is not None:  # the read was exactly this one request, parsed clean
                    self._app.remember(data, again)
            if self._parsing is None:
                self._open_line = 0
                self._fed = None  # (None again for the next read; no body kept alive)
            else:
                self._measure_line(data)  # may refuse it: answered after those before it
            if self._parsing is not None and not self._in_body and self._head_timer is None:
                # Part of a head arrived: its deadline runs from now. (A head that
                # arrives whole in one read never arms a timer.)
                self._head_timer = self._loop.call_later(
                    self._limits.header_timeout, self._head_expired
                )
                self._head_reprieve = False
        if self._hits:
            self._write_hits()
        if self._pipeline or self._read_paused or self._idle_timer is None or self.draining:
            self._advance()

    def _measure_line(self, data: bytes) -> None:
        """Refuse (431) a message whose unfinished line passed the limits: a header or
        trailer field that never ends would otherwise grow in the parser's buffer."""
        fed, self._fed = self._fed, None
        parsing = self._parsing
        if self._in_body and fed is not None and parsing is not None:
            # A body's bytes are no line. Past them a chunked body's framing (size lines,
            # extensions, trailers) is measured like a head's lines.
            if (
                b"transfer-encoding" not in parsing.fields
                or data.endswith(fed)
                or data.endswith(fed, 0, len(data) - 1)  # the CR after a chunk's data
            ):
                self._open_line = 0
                return
            tail = _line_tail(data)
            self._open_line = 0 if tail == len(data) else tail
        elif fed is not None:
            # This message began after the last bytes of a body in this read: those are
            # no part of its line. Where they end is not known (searching for them costs
            # quadratic time): their bytes after their own last line end are taken off,
            # never more than the line holds (so it is measured a read late at worst).
            self._open_line = max(0, _line_tail(data) - _line_tail(fed))
        else:
            tail = _line_tail(data)
            self._open_line = tail if tail < len(data) else self._open_line + tail
        if self._open_line > self._max_open_line:
            self._refuse(431, "Request Header Fields Too Large")

    def _write_hits(self) -> None:
        """Write the cache hits answered during this read, in order, then count them."""
        ready, hits = self._ready, self._hits
        self.transport.writelines(ready)  # type: ignore[union-attr]
        answered = self._app.answered
        for request in hits:
            answered(request)
        last = hits[-1]
        ready.clear()
        hits.clear()
        if not last.keep_alive or self.draining:
            self.close()

    def _drop_since(self, count: int) -> None:
        """Requests completed in the read that failed to parse are not answered."""
        while len(self._pipeline) > count:
            self._pipeline.pop()

    # -- parser callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        request = self._parsing = Request()
        request.peer = self._peer
        if self._tls:
            request.tls = True
        request.started = _now()
        self._url = b""
        self._in_body = False
        self._quick = False

    def on_url(self, url: bytes) -> None:
        # Mostly one call per request; a target split across reads comes in pieces.
        self._url = url if not self._url else self._url + url
        if len(self._url) > self._max_request_line:
            raise _Refused(414, "URI Too Long")

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self._parsing
        assert request is not None
        if self._in_body:
            # A trailer field (after a chunked body): never framing.
            if name.lower() in _FRAMING_FIELDS:
                raise _Refused(400, "Bad Request: framing field in a trailer")
            return
        if len(name) + len(value) > self._max_header_size:
            raise _Refused(431, "Request Header Fields Too Large")
        raw = request.raw
        if len(raw) >= self._max_headers:
            raise _Refused(431, "Request Header Fields Too Large")
        lower = name.lower()
        if lower == b"host":
            if lower in request.fields:
                raise _Refused(400, "Bad Request: two Host fields")
            # llhttp drops the whitespace before a value, not after it; neither is part
            # of the value (RFC 9110 §5.5), and routing reads this one raw.
            value = value.rstrip(b" \t")
        raw.append((name, value))
        request.fields[lower] = value

    def on_headers_complete(self) -> None:
        request = self._parsing
        assert request is not None
        parser = self._parser
        timer = self._head_timer
        if timer is not None:
            timer.cancel()
            self._head_timer = None
        self._in_body = True
        # Request's class defaults are GET, HTTP/1.1, keep-alive: set only what differs.
        method = parser.get_method()
        if method != b"GET":
            request.method = _METHODS.get(method) or method.decode("ascii", "replace")
            request.head = request.method == "HEAD"
        request.target = self._url.decode("latin-1")
        version = parser.get_http_version()
        eleven = version == "1.1"
        if not eleven:
            request.version = _version(version)
        if not parser.should_keep_alive():
            request.keep_alive = False
        fields = request.fields
        te = fields.get(b"transfer-encoding")
        if not eleven or te is not None:
            if te is not None and eleven and not _chunked_last(te):
                # Not chunked at the end: the body's length is unknowable (llhttp
                # would refuse it a moment later; answer as it would).
                raise _Refused(400, "Bad Request: Transfer-Encoding must end with chunked")
            error = framing_error(request.version, None if te is None else te.decode("latin-1"))
            if error is not None:
                raise _Refused(error.status, error.message)
        if eleven and b"host" not in fields:
            raise _Refused(400, "Bad Request: no Host")
        if te is not None or b"content-length" in fields:
            length = fields.get(b"content-length")
            if te is not None or (length is not None and length != b"0"):
                expect = fields.get(b"expect", b"").lower() == b"100-continue"
                request.body = Body(self, expect and eleven)
                self._body_last = self._loop.time()
                if self._body_timer is None:
                    self._body_timer = self._loop.call_later(
                        self._limits.body_timeout, self._body_expired
                    )
        if (
            eleven
            and request.keep_alive
            and request.body is None
            and not self._pipeline
            and len(self._hits) < PIPELINE_MAX
            and self._task is None
            and not self._write_paused
            and not self._closing
        ):
            # Nothing earlier is waiting: a cache hit can be answered right here
            # (on_message_complete), without a trip through the pipeline.
            self._quick = True
            return
        self._pipeline.append(request)
        if len(self._pipeline) > PIPELINE_MAX:
            self.hold_reading()

    def on_body(self, body: bytes) -> None:
        request = self._parsing
        if request is not None and request.body is not None:
            self._fed = body
            self._body_last = self._loop.time()
            request.body.feed(body)

    def on_message_complete(self) -> None:
        request = self._parsing
        if request is None:
            return
        request.complete = True
        if self._quick:
            self._quick = False
            self._parsing = None
            ready = self._ask(request)
            if ready is None:
                self._pipeline.append(request)  # the full path, in order
            else:
                self._ready += ready
                self._hits.append(request)
            return
        if request.body is not None:
            request.body.finish()
        timer = self._body_timer
        if timer is not None:
            timer.cancel()
            self._body_timer = None
        self._parsing = None

    # -- answering in order -----------------------------------------------------------

    def _ask(self, request: Request) -> tuple[bytes, ...] | None:
        """The application's ready-made answer to ``request``, asked once, or ``None``."""
        request.asked = True
        try:
            return self._app.hit(request)
        except Exception:  # a bug, not the client's fault: the full path answers
            log.exception("the cache hit path failed on %s %s", request.method, request.path)
            return None

    def _advance(self) -> None:
        """Answer waiting requests in order: hits at once, the rest one task at a time."""
        pipeline = self._pipeline
        answered = self._app.answered
        while pipeline and self._task is None and not self._write_paused and not self._closing:
            request = pipeline.popleft()
            if request.refusal is not None:
                self.write(request.refusal)
                self.close()
                return
            if (
                request.complete
                and request.keep_alive
                and request.version == (1, 1)
                and not request.asked
            ):
                ready = self._ask(request)
                if ready is not None:
                    self.transport.writelines(ready)  # type: ignore[union-attr]
                    answered(request)
                    if self.draining:
                        self.close()
                    continue
            self._current = request
            responder = self._responder = Responder(self, request)
            task = self._loop.create_task(self._run(request, responder))
            self._task = task
            return
        if self._read_paused and len(pipeline) <= PIPELINE_MAX // 2:
            self.release_reading()
        # (Checked here rather than in _settle: this runs after every cache hit.)
        if not pipeline and self._task is None and (self._idle_timer is None or self.draining):
            self._settle()

    async def _run(self, request: Request, responder: Responder) -> None:
        try:
            await self._app.serve(request, responder)
        except (ConnectionError, asyncio.CancelledError):
            request.keep_alive = False
        except Exception:
            log.exception("visitor request %s %s failed", request.method, request.path)
            request.keep_alive = False
        finally:
            self._task = None
            self._current = None
            self._responder = None
            if request.status == 0:
                # Nothing was answered (a failure, or a bug): the client must not wait.
                self.write(refusal_bytes(500, "Internal Server Error"))
                request.status = 500
                request.keep_alive = False
            self._done(request)
            if self.transport is not None:
                self._advance()

    def _done(self, request: Request) -> None:
        """One answer is written: count it; close if the connection ends with it."""
        self._app.answered(request)
        if not request.keep_alive or self.draining:
            self.close()

    def _settle(self) -> None:
        """Nothing to answer: wait for the next head, or close when draining."""
        if self.draining:
            if self._parsing is None:
                self.close()
            return
        if self._idle_timer is None and not self._closing:
            self._idle_timer = self._loop.call_later(
                self._limits.keepalive_timeout, self._idle_expired
            )

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` after the requests before it, then close; parse nothing more."""
        self._stopped = True
        log.debug("refused a request from %s (%d): %s", self._peer, status, message)
        refusal = refusal_bytes(status, _short(status, message))
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
        parsing = self._parsing
        self._parsing = None
        responder = self._responder
        if parsing is not None and parsing.body is not None:
            parsing.body.fail(ConnectionResetError("the request was refused"))
            if self._current is parsing and responder is not None and not responder.started:
                # Refused in the part of its body that arrived after its task began (a
                # trailer): the refusal is its answer (as _body_expired's 408 is), not
                # the 500 of a task that failed with nothing sent.
                self.write(refusal)
                parsing.status = status
                if self._task is not None:
                    self._task.cancel()
                return
            if self._pipeline and self._pipeline[-1] is parsing:
                self._pipeline.pop()  # refused before its turn: the refusal answers it
        refused = Request()
        refused.refusal = refusal
        refused.keep_alive = False
        self._pipeline.append(refused)

    # -- writing ----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def send_continue(self) -> None:
        if self._current is not None and self.transport is not None:
            self.transport.write(_CONTINUE)

    async def drain(self) -> None:
        if self.transport is None:
            raise ConnectionResetError("the client went away")
        if not self._write_paused:
            return
        waiter = self._drain_waiter
        if waiter is None or waiter.done():
            waiter = self._drain_waiter = self._loop.create_future()
        await asyncio.shield(waiter)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._raw is not None:
            self._send_deadline.arm(self._raw)

    def resume_writing(self) -> None:
        self._write_paused = False
        self._send_deadline.cancel()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._drain_waiter = None
        if self._task is None and self._pipeline:
            self._advance()

    # -- reading flow control ---------------------------------------------------------

    def hold_reading(self) -> None:
        if not self._read_paused and self.transport is not None:
            self._read_paused = True
            try:
                self.transport.pause_reading()
            except RuntimeError:
                pass

    def release_reading(self) -> None:
        if self._read_paused and self.transport is not None:
            body = self._parsing.body if self._parsing is not None else None
            if body is not None and body.size > BODY_HIGH_WATER // 2:
                return
            if len(self._pipeline) > PIPELINE_MAX // 2:
                return
            self._read_paused = False
            self._body_last = self._loop.time()
            try:
                self.transport.resume_reading()
            except RuntimeError:
                pass

    # -- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Close after what is written has gone; within ``send_timeout``, or abort."""
        self._stopped = True
        if self._closing:
            return
        self._closing = True
        for timer in (self._head_timer, self._idle_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._idle_timer = self._body_timer = None
        raw = self._raw
        if raw is None:
            return
        self._close_deadline.arm(raw)
        raw.close()

    def abort(self) -> None:
        raw = self._raw
        if raw is not None:
            raw.abort()

    def begin_drain(self) -> None:
        """Stop at the end of the answer in progress; close now when idle."""
        self.draining = True
        if self._task is None and not self._pipeline and self._parsing is None:
            self.close()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.abort()

    # -- deadlines --------------------------------------------------------------------

    def _idle_expired(self) -> None:
        self._idle_timer = None
        if self._closing or self._task is not None or self._pipeline or self._parsing is not None:
            return  # busy: _settle arms it again once idle
        due = self._last_data + self._limits.keepalive_timeout
        if due > self._loop.time():
            self._idle_timer = self._loop.call_at(due, self._idle_expired)
            return
        log.debug("closing an idle keep-alive connection")
        self.close()

    def _head_expired(self) -> None:
        self._head_timer = None
        raw = self._raw
        if raw is None or self._closing:
            return
        parsing = self._parsing
        if parsing is not None and parsing.body is not None:
            return  # the head is complete; the body has its own deadline
        if self._task is not None or self._pipeline:
            # A request is being answered; the next head may wait for that.
            self._head_timer = self._loop.call_later(
                self._limits.header_timeout, self._head_expired
            )
            return
        if not self._head_reprieve and kernel_queue(raw, _UNREAD) > 0:
            # Bytes are waiting that edge has not read yet: one short second look.
            self._head_reprieve = True
            self._head_timer = self._loop.call_later(
                min(1.0, self._limits.header_timeout), self._head_expired
            )
            return
        if parsing is not None:
            self.write(refusal_bytes(_REQUEST_TIMEOUT, "Request Timeout"))
        log.debug("closing a connection whose request head did not arrive in time")
        self._stopped = True
        self.close()

    def _body_expired(self) -> None:
        self._body_timer = None
        parsing = self._parsing
        raw = self._raw
        if parsing is None or parsing.body is None or raw is None or self._closing:
            return
        now = self._loop.time()
        if self._read_paused or kernel_queue(raw, _UNREAD) > 0:
            self._body_last = now  # edge is behind or stopped reading; the client is not silent
        deadline = self._body_last + self._limits.body_timeout
        if now < deadline:
            self._body_timer = self._loop.call_at(deadline, self._body_expired)
            return
        log.debug("closing a connection whose request body stalled")
        responder = self._responder
        if self._current is parsing and responder is not None and not responder.started:
            self.write(refusal_bytes(_REQUEST_TIMEOUT, "Request Timeout"))
            parsing.status = _REQUEST_TIMEOUT
        parsing.body.fail(ConnectionResetError("the request body stalled"))
        if self._task is not None:
            self._task.cancel()
        self.close()


def _chunked_last(transfer_encoding: bytes) -> bool:
    return transfer_encoding.rpartition(b",")[2].strip(b" \t").lower() == b"chunked"


def _version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    try:
        return int(major), int(minor)
    except ValueError:
        return (0, 0)


def _short(status: int, message: str) -> str:
    phrase = reason(status)
    return message if message.startswith(phrase) else f"{phrase}: {message}"


# -- the listener ------------------------------------------------------------------------


class Http1Server:
    """One listening socket serving :class:`Http1Protocol` connections of ``app``."""

    def __init__(
        self,
        app: App,
        limits: WireLimits,
        *,
        tls: bool = False,
    ) -> None:
        self.app = app
        self.limits = limits
        self.tls = tls
        self.loop = asyncio.get_running_loop()
        self.connections: set[Http1Protocol] = set()
        self._server: asyncio.Server | None = None

    async def listen(
        self,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        CLOCK.tick(self.loop)  # cache hits read the Date line, never the clock
        self._server = await self.loop.create_server(
            lambda: Http1Protocol(self),
            host,
            port,
            ssl=ssl_context,
            backlog=BACKLOG,
            reuse_address=True,
            reuse_port=reuse_port or None,
            ssl_handshake_timeout=self.limits.header_timeout if ssl_context else None,
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    # -- the drain (edge.lifecycle) ---------------------------------------------------

    async def stop_accepting(self) -> None:
        server = self._server
        if server is not None:
            server.close()

    def begin_drain(self) -> None:
        for conn in list(self.connections):
            conn.begin_drain()

    def busy(self) -> int:
        return len(self.connections)

    async def wait_idle(self) -> None:
        while self.connections:
            await asyncio.sleep(0.05)

    async def cut(self) -> int:
        cut = len(self.connections)
        for conn in list(self.connections):
            conn.cancel()
        await asyncio.sleep(0)  # the cancelled answers end
        return cut

    async def close(self) -> None:
        """Stop listening and cut whatever is left (after the drain, normally nothing)."""
        await self.stop_accepting()
        await self.cut()
