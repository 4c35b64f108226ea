"""Per-connection defences: a deadline on every phase of a request, clean refusals.

How this works: the admin listener serves connections with
:class:`GuardedRequestHandler`, aiohttp's ``RequestHandler`` plus a few timers
per connection, each armed when its phase starts and cancelled when it ends.
Nothing is armed or re-armed per read on the hot path: a request head that
arrives in one read costs two integer comparisons and one cancelled timer per
connection.

- **Head** (``header_timeout``): armed when the connection is made and when the
  first bytes of a later request arrive; cancelled when the parser has the whole
  head. On expiry the connection is closed, after a ``408`` if part of a head
  had arrived (slowloris). aiohttp itself has no such deadline.
- **Body** (``body_timeout``): while the parser waits for the rest of a body, a
  timer checks how long ago the last bytes came (the time of the last read is
  one float per read of a body). A silence longer than the timeout closes the
  connection, after a ``408`` when nothing of the answer was sent yet. Time in
  which edge itself stopped reading (flow control) does not count.
- **Send** (``send_timeout``): armed when the transport's write buffer passes
  its high-water mark (``pause_writing``), cancelled when it drains. If the
  buffer has not shrunk at all by the deadline, the client is not reading: the
  connection is aborted (``close()`` would wait for a flush that never comes).
  The same deadline runs from the moment a connection is closed (keep-alive
  over, ``Connection: close``, any refusal) until the socket is really gone.
  That second timer is what frees a TLS connection whose client stopped reading
  after one large answer: the TLS transport hands everything at once to the
  socket's buffer, and the protocol never sees any backpressure.

Idle time between requests is aiohttp's own ``keepalive_timeout``, also armed
when the connection is made. TLS handshakes get ``header_timeout`` as well
(:class:`GuardedSite`). Before any deadline counts as missed, the kernel is
asked whether bytes are waiting unread or were acknowledged meanwhile
(:func:`_kernel_queue`), so a busy edge does not blame its clients.

Requests the parser refuses (aiohttp answers those with a generic 400 and a log
line with a traceback each) are answered here with a short body, ``414`` for
a request target over ``max_request_line``, ``431`` for a header field over
``max_header_size`` or more than ``max_headers`` fields, ``400`` otherwise,
logged at debug level only, and the connection is closed.

This subclasses aiohttp internals (``_messages``, ``_request_count``,
``_current_request``, ``_ErrInfo``, the flow-control flags, ``TCPSite`` fields);
pyproject pins aiohttp's minor version and tests/security/test_protocol_rules.py
fails loudly if any of them moves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from edge.wire.limits import WireLimits
from edge.wire.sockets import UNREAD as _UNREAD
from edge.wire.sockets import SendDeadline
from edge.wire.sockets import kernel_queue as _kernel_queue

__all__ = ["GuardedAppRunner", "GuardedRequestHandler", "GuardedSite", "WireLimits", "refusal"]

log = logging.getLogger("edge.wire")

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 16\r\n\r\nRequest Timeout\n"
)
_TOO_MANY_HEADERS = "Too many headers"  # aiohttp's message for more than max_headers fields
BACKLOG = 1024  # pending connections per listener socket (aiohttp's default is 128)


def aiohttp_kwargs(limits: WireLimits) -> dict[str, Any]:
    """aiohttp ``RequestHandler`` arguments for ``limits``."""
    return {
        "keepalive_timeout": limits.keepalive_timeout,
        "max_line_size": limits.max_request_line,
        "max_field_size": limits.max_header_size,
        "max_headers": limits.max_headers,
        # Request bodies are never inflated: no decompression bomb can reach
        # edge; a coded body is passed on as sent or refused (edge.wire.framing).
        "auto_decompress": False,
    }


def refusal(status: int) -> web.Response:
    """A short plain-text answer that closes the connection."""
    phrase = HTTPStatus(status).phrase
    response = web.Response(status=status, text=f"{status} {phrase}\n")
    response.force_close()
    return response


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection protocol with head, body and send deadlines."""

    __slots__ = (
        "_body",
        "_body_last",
        "_body_timer",
        "_close_deadline",
        "_error_status",
        "_head_bytes",
        "_head_reprieve",
        "_head_timer",
        "_limits",
        "_line_end",
        "_raw",
        "_refuse",
        "_send_deadline",
    )

    def __init__(
        self,
        manager: web.Server,
        *,
        limits: WireLimits,
        refuse: Callable[[int], web.Response] = refusal,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self._limits = limits
        self._refuse = refuse  # the answer to a request the parser refused
        # The socket's transport, kept after aiohttp drops its reference on close
        # (a close waits for the write buffer to drain; only abort ends a stuck one).
        self._raw: asyncio.Transport | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # bytes of the current unfinished head seen so far
        self._line_end = -1  # offset of the head's first LF, -1 until seen
        self._body: StreamReader | None = None  # a body the parser is still waiting for
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_last = 0.0
        send_timeout = limits.send_timeout
        self._send_deadline = SendDeadline(self._loop, send_timeout, "client stopped reading")
        self._head_reprieve = False
        self._close_deadline = SendDeadline(self._loop, send_timeout, "close did not complete")
        self._error_status = 400

    # -- connection ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._raw = transport  # type: ignore[assignment]  # a stream transport
        self._head_timer = self._loop.call_later(self._limits.header_timeout, self._head_expired)
        if self._task_handler is not None:
            # aiohttp's loop over requests ends when it closes the connection.
            self._task_handler.add_done_callback(self._closing)

    def connection_lost(self, exc: BaseException | None) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
        self._send_deadline.cancel()
        self._close_deadline.cancel()
        self._raw = None
        self._body = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._force_close or self._close:
            return
        count = self._request_count
        body = self._body
        super().data_received(data)
        if self._request_count != count:
            self._heads_parsed(data)
        elif body is not None:
            if body.is_eof():
                self._body = None
            else:
                self._body_last = self._loop.time()
        elif data:
            self._head_progress(data)

    # -- the request head ----------------------------------------------------------

    def _heads_parsed(self, data: bytes) -> None:
        """One or more heads are complete: stop the head deadline, watch a pending body."""
        timer = self._head_timer
        if timer is not None:
            timer.cancel()
            self._head_timer = None
        self._body = None
        if self._messages:
            message, payload = self._messages[-1]
            if type(message) is _ErrInfo:
                self._error_status = self._status_for(message.exc, data)
                # The answer to this error ends the connection; whatever follows is
                # not parsed (a broken parser would only report a vaguer error).
                self.close()
            elif payload is not EMPTY_PAYLOAD and not payload.is_eof():
                self._body = payload
                self._body_last = self._loop.time()
                if self._body_timer is None:
                    self._body_timer = self._loop.call_later(
                        self._limits.body_timeout, self._body_expired
                    )
        self._head_bytes = 0
        self._line_end = -1
        self._head_reprieve = False

    def _head_progress(self, data: bytes) -> None:
        """Part of a head arrived (slowly, or just split over reads)."""
        if self._head_timer is None:
            self._head_timer = self._loop.call_later(
                self._limits.header_timeout, self._head_expired
            )
        if self._line_end < 0:
            pos = data.find(b"\n")
            if pos >= 0:
                self._line_end = self._head_bytes + pos
        self._head_bytes += len(data)

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._raw is None or self._force_close or self._body is not None:
            return
        if self._messages or self._request_in_progress:
            # A request is being answered; the next head may wait for that.
            self._head_timer = self._loop.call_later(
                self._limits.header_timeout, self._head_expired
            )
            return
        if not self._head_reprieve and _kernel_queue(self._raw, _UNREAD) > 0:
            # Bytes are waiting that edge has not read yet: one short second look.
            self._head_reprieve = True
            self._head_timer = self._loop.call_later(
                min(1.0, self._limits.header_timeout), self._head_expired
            )
            return
        if self._head_bytes and self.transport is not None:
            self.transport.write(_REQUEST_TIMEOUT)
        log.debug("closing a connection whose request head did not arrive in time")
        self.force_close()

    def _status_for(self, exc: BaseException, data: bytes) -> int:
        """414 or 431 for a head over the limits, 400 for anything else the parser refused."""
        if isinstance(exc, LineTooLong):
            line_end = self._line_end
            if line_end < 0:
                pos = data.find(b"\n")
                line_end = self._head_bytes + (pos if pos >= 0 else len(data))
            return 414 if line_end > self._limits.max_request_line else 431
        if isinstance(exc, BadHttpMessage) and exc.message.startswith(_TOO_MANY_HEADERS):
            return 431
        return 400

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, HttpProcessingError):
            # Refused by the parser: a short answer (never the offending bytes
            # echoed back) and one debug line, not a traceback per hostile request.
            status = self._error_status
            log.debug("refused a request from %s (%d): %s", request.remote, status, exc)
        elif isinstance(exc, ConnectionError):
            log.debug("client %s went away: %r", request.remote, exc)
        else:
            return super().handle_error(request, status, exc, message)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had started; the connection is dropped")
        return self._refuse(status)

    # -- the request body ----------------------------------------------------------

    def _body_expired(self) -> None:
        self._body_timer = None
        body = self._body
        if body is None or body.is_eof() or self._raw is None or self.transport is None:
            self._body = None
            return
        now = self._loop.time()
        if (
            self._reading_paused
            or self._buffer_paused
            or _kernel_queue(self._raw, _UNREAD) > 0  # arrived, edge has not read it yet
        ):
            self._body_last = now  # edge is behind or stopped reading; the client is not silent
        deadline = self._body_last + self._limits.body_timeout
        if now < deadline:
            self._body_timer = self._loop.call_at(deadline, self._body_expired)
            return
        request = self._current_request
        if request is not None and request.content is body and request.writer.output_size == 0:
            self.transport.write(_REQUEST_TIMEOUT)
        log.debug("closing a connection whose request body stalled")
        self._body = None
        self.force_close()

    # -- the answer ----------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._raw is not None:
            self._send_deadline.arm(self._raw)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._send_deadline.cancel()

    def force_close(self) -> None:
        super().force_close()
        self._closing()

    def _closing(self, _: object = None) -> None:
        """The connection is being closed: it must be gone within ``send_timeout``."""
        if self._raw is not None:
            self._close_deadline.arm(self._raw)


class GuardedServer(web.Server):
    """aiohttp's low-level server making :class:`GuardedRequestHandler` connections."""

    def __init__(
        self,
        handler: Any,
        *,
        limits: WireLimits,
        refuse: Callable[[int], web.Response] = refusal,
        request_factory: Any = None,
        loop: asyncio.AbstractEventLoop | None = None,
        **kwargs: Any,
    ) -> None:
        handler_kwargs = {**aiohttp_kwargs(limits), **kwargs}
        super().__init__(handler, request_factory=request_factory, loop=loop, **handler_kwargs)
        self._limits = limits
        self._refuse = refuse
        self._handler_kwargs = handler_kwargs

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(
            self, loop=self._loop, limits=self._limits, refuse=self._refuse, **self._handler_kwargs
        )


class GuardedAppRunner(web.AppRunner):
    """``AppRunner`` whose connections are :class:`GuardedRequestHandler`."""

    def __init__(
        self,
        app: web.Application,
        *,
        limits: WireLimits,
        refuse: Callable[[int], web.Response] = refusal,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self._limits = limits
        self._refuse = refuse

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts and freezes the application
        return GuardedServer(
            plain.request_handler,
            limits=self._limits,
            refuse=self._refuse,
            request_factory=plain.request_factory,
            loop=asyncio.get_running_loop(),
        )


class GuardedSite(web.TCPSite):
    """``TCPSite`` with a larger backlog and TLS handshakes bounded by ``header_timeout``."""

    __slots__ = ("_handshake_timeout",)

    def __init__(self, runner: web.BaseRunner, *args: Any, limits: WireLimits, **kwargs: Any):
        super().__init__(runner, *args, backlog=BACKLOG, **kwargs)
        self._handshake_timeout = limits.header_timeout

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        tls = self._ssl_context is not None
        self._server = await asyncio.get_running_loop().create_server(
            server,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
            ssl_handshake_timeout=self._handshake_timeout if tls else None,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]
