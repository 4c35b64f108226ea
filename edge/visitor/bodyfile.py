"""Bodies sent from a blob file in bounded chunks: large files never sit in memory.

How this works: the answer's head goes out first (with its Content-Length), then
the file's bytes ``[first, first + length)`` are read :data:`CHUNK_BYTES` at a time
with ``pread`` off the event loop and written one after the other; each write waits
while the client is not taking them (the transport's backpressure), so a slow
reader holds one chunk plus the transport's buffer, never the file. A file that
ends early (it cannot: blob files are immutable; but a damaged disk can) cuts the
connection rather than send a short body under a longer Content-Length.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

CHUNK_BYTES = 256 * 1024


class Streamer(Protocol):
    """What a streamed answer needs from the wire (:class:`edge.wire.exchange.Responder`)."""

    def start(
        self, status: int, headers: Iterable[tuple[str, str]], *, reason: str | None = None
    ) -> None: ...

    async def write(self, chunk: bytes) -> None: ...

    async def end(self) -> None: ...

    def cut(self) -> None: ...


class FileShrank(Exception):
    """A blob file held fewer bytes than its manifest says."""


async def send_file(
    responder: Streamer,
    status: int,
    headers: Iterable[tuple[str, str]],
    path: Path,
    *,
    first: int,
    length: int,
    chunk_bytes: int = CHUNK_BYTES,
) -> None:
    """Answer ``status`` with ``headers`` and bytes ``[first, first + length)`` of ``path``."""
    fd = await asyncio.to_thread(os.open, path, os.O_RDONLY)
    try:
        responder.start(status, [*headers, ("Content-Length", str(length))])
        offset, end = first, first + length
        while offset < end:
            data = await asyncio.to_thread(os.pread, fd, min(chunk_bytes, end - offset), offset)
            if not data:
                responder.cut()
                raise FileShrank(f"{path} ended at byte {offset}, before {end}")
            offset += len(data)
            await responder.write(data)
        await responder.end()
    finally:
        os.close(fd)
