"""Compressed bodies (gzip, br, zstd), made once per blob and kept by bytes. IO-light.

How this works: a text body is compressed for a coding the first time a
representation of it is built, in a worker thread (``asyncio.to_thread``: never
on the event loop), and kept keyed by ``(blob hash, noindex injected, coding)``:
not per request, and not per snapshot either: every snapshot (and both
environments, when no noindex is injected) holding the blob reuses the bytes.
Concurrent builds of the same body share one compression. Levels are chosen for
ratio since this runs once per blob: gzip 9, Brotli 11, Zstandard 19 (lower
above :data:`LARGE_BYTES`, where those would cost seconds).
"""

from __future__ import annotations

import asyncio
import gzip as gzip_codec
import logging
from collections import OrderedDict

import brotli
import zstandard

from edge.cache.once import Once

log = logging.getLogger("edge.visitor")

CodedKey = tuple[str, bool, str]  # (blob sha256, noindex injected, coding)
MIN_BYTES = 256  # below this a coding saves nothing worth a header
LARGE_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def encode(body: bytes, coding: str) -> bytes:
    """``body`` in ``coding`` (``gzip``, ``br``, ``zstd``). Pure, CPU-bound."""
    large = len(body) > LARGE_BYTES
    if coding == "gzip":
        return gzip_codec.compress(body, compresslevel=6 if large else 9, mtime=0)
    if coding == "br":
        return bytes(brotli.compress(body, quality=9 if large else 11))
    if coding == "zstd":
        level = 12 if large else 19
        return zstandard.ZstdCompressor(level=level, write_content_size=True).compress(body)
    raise ValueError(f"unknown coding {coding!r}")


class CodedBodies:
    """Compressed bodies by :data:`CodedKey`, least recently used dropped past ``max_bytes``."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._data: OrderedDict[CodedKey, bytes] = OrderedDict()
        self._size = 0
        self._max = max_bytes
        self._pending: Once[CodedKey, bytes] = Once()
        self._background: set[asyncio.Task[bytes]] = set()
        self.encoded = 0  # compressions run (each body and coding once while kept)

    def __len__(self) -> int:
        return len(self._data)

    def ready(self, key: CodedKey) -> bool:
        """Whether ``key``'s bytes are made (a :meth:`get` would not wait)."""
        return key in self._data

    def start(self, key: CodedKey, body: bytes) -> None:
        """Make ``key``'s bytes in the background (once), for the requests to come."""
        if key in self._data or key in self._pending:
            return
        task = asyncio.ensure_future(self.get(key, body))
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[bytes]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("compressing a body failed", exc_info=task.exception())

    async def get(self, key: CodedKey, body: bytes) -> bytes:
        """``body`` (whose identity is ``key``) in ``key``'s coding, compressed at most once."""
        found = self._data.get(key)
        if found is not None:
            self._data.move_to_end(key)
            return found

        async def make() -> bytes:
            coded = await asyncio.to_thread(encode, body, key[2])
            self.encoded += 1
            self._put(key, coded)
            return coded

        return await self._pending.get_or_make(key, make)

    def _put(self, key: CodedKey, coded: bytes) -> None:
        if len(coded) > self._max:
            return
        self._data[key] = coded
        self._size += len(coded)
        while self._size > self._max:
            _, dropped = self._data.popitem(last=False)
            self._size -= len(dropped)
