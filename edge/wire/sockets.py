"""What the kernel knows about a socket's queues (on deadline expiry paths only)."""

from __future__ import annotations

import asyncio
import sys

try:
    import fcntl
    import termios

    UNREAD: int | None = termios.FIONREAD  # bytes received by the kernel, not yet read
    UNSENT: int | None = getattr(termios, "TIOCOUTQ", None)  # not yet acknowledged (Linux)
except ImportError:  # pragma: no cover - no such ioctls (Windows): deadlines alone decide
    UNREAD = UNSENT = None


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
