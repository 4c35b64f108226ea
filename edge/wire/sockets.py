"""What the kernel knows about a socket's queues (on deadline expiry paths only)."""

from __future__ import annotations

import asyncio
import logging
import sys

try:
    import fcntl
    import termios

    UNREAD: int | None = termios.FIONREAD  # bytes received by the kernel, not yet read
    UNSENT: int | None = getattr(termios, "TIOCOUTQ", None)  # not yet acknowledged (Linux)
except ImportError:  # pragma: no cover - no such ioctls (Windows): deadlines alone decide
    UNREAD = UNSENT = None

log = logging.getLogger("edge.wire")


def kernel_queue(transport: asyncio.BaseTransport, request: int | None) -> int:
    """A socket queue's length in bytes (-1 when unknown); a syscall, on expiry paths only.

    A deadline is only declared missed after asking the kernel: when edge itself
    was stalled (a busy machine), the timer can fire before the event loop has
    read what already arrived, or written what the client already took.
    """
    sock = transport.get_extra_info("socket")
    if sock is None or request is None:
        return -1
    try:
        return int.from_bytes(fcntl.ioctl(sock.fileno(), request, b"\0\0\0\0"), sys.byteorder)
    except (OSError, ValueError):
        return -1


class SendDeadline:
    """A deadline for a client to take what edge sends (a full write buffer, a close).

    Armed with the transport's write buffer and the kernel's unacknowledged bytes
    noted; when it expires and either shrank meanwhile, the client is slow but
    reading and gets another period; when neither did, the connection is aborted.
    """

    __slots__ = ("_buffered", "_loop", "_seconds", "_timer", "_transport", "_unsent", "_what")

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float, what: str) -> None:
        self._loop = loop
        self._seconds = seconds
        self._what = what  # for the debug line: "whose <what>"
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None
        self._buffered = 0  # write buffer size at the last look
        self._unsent = -1  # the kernel's unacknowledged bytes then (-1: unknown)

    @property
    def armed(self) -> bool:
        return self._timer is not None

    def arm(self, transport: asyncio.Transport) -> None:
        """Start a period, unless one runs already."""
        if self._timer is None:
            self._transport = transport
            self._progressed()
            self._timer = self._loop.call_later(self._seconds, self._expired)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._transport = None

    def _progressed(self) -> bool:
        """Whether either queue shrank since the last look (then look again from here)."""
        transport = self._transport
        assert transport is not None
        buffered, unsent = transport.get_write_buffer_size(), kernel_queue(transport, UNSENT)
        progressed = buffered < self._buffered or 0 <= unsent < self._unsent
        self._buffered, self._unsent = buffered, unsent
        return progressed

    def _expired(self) -> None:
        self._timer = None
        if self._progressed():  # slow, but reading
            self._timer = self._loop.call_later(self._seconds, self._expired)
            return
        log.debug("aborting a connection whose %s", self._what)
        assert self._transport is not None
        self._transport.abort()
