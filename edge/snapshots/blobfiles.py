"""Blob bytes as content-addressed files: ``<data_dir>/blobs/ab/cdef...``.

How this works:
- An upload streams into a temporary file in ``blobs/tmp`` while it is hashed; the
  bytes never sit whole in memory. Writes and fsyncs run off the event loop, a
  buffer of :data:`WRITE_BUFFER` bytes at a time.
- Only a complete upload whose hash matches its address is made visible: fsync the
  file, rename it to its address, fsync the directory. A mismatch, an oversize
  body or a dropped connection removes the temporary file, so nothing is left.
- The same file is the SQLite store's copy of the blob and the PostgreSQL store's
  per-node cache of one (:mod:`edge.snapshots.sqlite`, :mod:`edge.snapshots.postgres`):
  either way the visitor side serves from a local file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import time
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edge.errors import (
    HashMismatch,
    PayloadTooLarge,
    StoreFull,
    StoreReadOnly,
    StoreUnavailable,
)

WRITE_BUFFER = 1024 * 1024  # bytes gathered before one write off the loop
READ_CHUNK = 1024 * 1024
STALE_TEMP_SECONDS = 86_400.0  # a temporary file this old belongs to no live upload


@dataclass(frozen=True, slots=True)
class Upload:
    """A complete, verified upload in a temporary file, not yet visible."""

    sha256: str
    size: int
    temp: Path


class BlobDir:
    """The content-addressed files under one root (``<data_dir>/blobs``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"

    def prepare(self) -> None:
        """Create the directories and drop temporary files no upload can still own."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - STALE_TEMP_SECONDS
        for leftover in self._tmp.iterdir():
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:]

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    async def receive(self, sha256: str, chunks: AsyncIterable[bytes], *, limit: int) -> Upload:
        """Stream ``chunks`` into a temporary file: 413 past ``limit``, 400 on a hash mismatch.

        The caller publishes the result with :meth:`publish` or drops it with
        :meth:`discard`; on any failure here (the client went away included) the
        temporary file is already gone.
        """
        try:
            return await self._receive(sha256, chunks, limit=limit)
        except OSError as exc:
            refusal = disk_refusal(exc)
            if refusal is not None:
                raise refusal from exc
            raise

    async def _receive(self, sha256: str, chunks: AsyncIterable[bytes], *, limit: int) -> Upload:
        self._tmp.mkdir(parents=True, exist_ok=True)
        temp = self._tmp / f"{sha256}.{os.getpid()}.{id(chunks):x}.{time.monotonic_ns()}"
        fd = await asyncio.to_thread(os.open, temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            hasher = hashlib.sha256()
            size = 0
            pending = bytearray()
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"blobs are limited to {limit} bytes")
                hasher.update(chunk)
                pending += chunk
                if len(pending) >= WRITE_BUFFER:
                    await asyncio.to_thread(_write_all, fd, bytes(pending))
                    pending.clear()
            if pending:
                await asyncio.to_thread(_write_all, fd, bytes(pending))
            actual = hasher.hexdigest()
            if actual != sha256:
                raise HashMismatch(f"the bytes hash to {actual}, not {sha256}")
            await asyncio.to_thread(os.fsync, fd)
        except BaseException:
            os.close(fd)
            _unlink(temp)
            raise
        os.close(fd)
        return Upload(sha256=sha256, size=size, temp=temp)

    async def receive_file(self, sha256: str, source: Path, *, limit: int) -> Upload:
        """:meth:`receive` from a local file (a blob fetched or migrated)."""
        return await self.receive(sha256, _file_chunks(source), limit=limit)

    async def place(self, upload: Upload) -> None:
        """:meth:`publish` off the event loop; a refusing disk answers 507 or 503."""
        try:
            await asyncio.to_thread(self.publish, upload)
        except OSError as exc:
            refusal = disk_refusal(exc)
            if refusal is not None:
                raise refusal from exc
            raise

    def publish(self, upload: Upload) -> None:
        """Make ``upload`` visible at its address, durably (blocking: call off the loop)."""
        final = self.path(upload.sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(upload.temp, final)
        _fsync_dir(final.parent)

    def write_durably(self, sha256: str, data: bytes) -> None:
        """Place bytes whose hash the caller verified (blocking: the SQLite migration)."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        temp = self._tmp / f"{sha256}.{os.getpid()}.migrate"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.publish(Upload(sha256=sha256, size=len(data), temp=temp))

    @staticmethod
    def discard(upload: Upload) -> None:
        _unlink(upload.temp)

    def remove(self, sha256: str) -> None:
        """Delete a blob's file (blocking); a missing one is not an error."""
        _unlink(self.path(sha256))

    def orphans(self, held: set[str], *, older_than: float) -> list[tuple[str, int]]:
        """Blob files no row names (``held``) last changed before ``older_than``:
        ``(sha256, size)`` (blocking: a directory walk)."""
        found: list[tuple[str, int]] = []
        for folder in self.root.iterdir():
            if len(folder.name) != 2 or not folder.is_dir():
                continue  # tmp/, anything else
            for file in folder.iterdir():
                sha256 = folder.name + file.name
                if sha256 in held:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    stat = file.stat()
                    if stat.st_mtime < older_than:
                        found.append((sha256, stat.st_size))
        return found

    def prefixes(self) -> list[str]:
        """The two-character folders blob files live in (blocking)."""
        return sorted(f.name for f in self.root.iterdir() if len(f.name) == 2 and f.is_dir())

    def entries(self, prefix: str) -> list[tuple[str, float]]:
        """The blob files of one of :meth:`prefixes`: ``(sha256, mtime)`` (blocking)."""
        found: list[tuple[str, float]] = []
        with contextlib.suppress(FileNotFoundError):
            for file in (self.root / prefix).iterdir():
                with contextlib.suppress(FileNotFoundError):
                    found.append((prefix + file.name, file.stat().st_mtime))
        return found

    def iter_chunks(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``[start, end)`` of a blob, :data:`READ_CHUNK` at a time (blocking reads)."""
        with self.path(sha256).open("rb") as fh:
            fh.seek(start)
            left = None if end is None else end - start
            while left is None or left > 0:
                chunk = fh.read(READ_CHUNK if left is None else min(READ_CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk


def disk_refusal(exc: OSError) -> StoreUnavailable | None:
    """The answer for a blob write the disk refused (507 full, 503 read-only), else ``None``.

    A client going away (``ConnectionResetError``) is an OSError too, and not one of these.
    """
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreFull(
            "the store's disk is full: nothing was written and the current snapshots"
            " keep serving; free space and retry"
        )
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreReadOnly(
            "the store is read-only: nothing was written and the current snapshots keep"
            " serving; make the data directory writable and retry"
        )
    return None


async def _file_chunks(source: Path) -> AsyncIterable[bytes]:
    with source.open("rb") as fh:
        while chunk := await asyncio.to_thread(fh.read, WRITE_BUFFER):
            yield chunk


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
