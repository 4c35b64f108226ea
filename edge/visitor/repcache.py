"""The representation cache: ready-made answers per ``(snapshot id, path, variant)``.

How this works: the byte-bounded LRU (:mod:`edge.cache`) holds representations,
grouped by snapshot id. A miss builds the representation once from the store's
blob, however many requests want it meanwhile (they share the build). Before a
pointer moves, :meth:`RepresentationCache.warm` makes the outgoing snapshot's
cached representations for the incoming one (only that snapshot's entries are
looked at): copied with a new snapshot header when the entry is unchanged,
rebuilt when it changed, within :data:`WARM_BUILD_SECONDS`. Compiled settings
are kept per snapshot id, a few per site.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from edge.cache import ByteLRU, CacheKey, Variant
from edge.paths import manifest_key
from edge.router import Env
from edge.snapshots.headers import UnwritableHeaders
from edge.snapshots.model import ManifestEntry, Snapshot
from edge.snapshots.settings import EMPTY_SETTINGS, CompiledSettings, compile_settings
from edge.snapshots.store import Store
from edge.visitor.representation import (
    Representation,
    build,
    build_streamed,
    staging_robots_txt,
    streams,
)

log = logging.getLogger("edge.visitor")

ROBOTS_TXT = "/robots.txt"
# Representations bigger than this are built off the event loop (gzip of a large
# text file would otherwise stall every other request).
BUILD_IN_THREAD_BYTES = 256 * 1024
# Files above this are sent from their blob file, not kept as bytes (configurable:
# server.stream_threshold_bytes).
STREAM_THRESHOLD_BYTES = 1024 * 1024
# How long a swap may spend preparing the new snapshot's cache entries before the
# commit: copying unchanged pages and rebuilding changed ones.
WARM_BUILD_SECONDS = 0.003
_COMPILED_KEEP = 64  # compiled settings kept per process (a few per site)


class ContentUnavailable(Exception):
    """A manifest names a blob the store does not have (a damaged store)."""


def snapshot_of(key: CacheKey) -> str:
    return key[0]


def resolve(path: str, files: Mapping[str, ManifestEntry]) -> str | None:
    """The manifest key a request path serves (the one place paths are resolved)."""
    return manifest_key(path, files)


class RepresentationCache:
    """Representations by cache key, filled from the store on a miss."""

    def __init__(
        self,
        cache: ByteLRU[CacheKey, Representation],
        store: Store,
        *,
        stream_threshold: int = STREAM_THRESHOLD_BYTES,
    ) -> None:
        self.lru = cache
        self._store = store
        self._stream_threshold = stream_threshold
        self._building: dict[CacheKey, asyncio.Future[Representation]] = {}
        self._compiled: dict[str, CompiledSettings] = {}

    def settings(self, snapshot: Snapshot) -> CompiledSettings:
        """The snapshot's settings, compiled once."""
        if not snapshot.settings:
            return EMPTY_SETTINGS
        compiled = self._compiled
        found = compiled.get(snapshot.id)
        if found is None:
            if len(compiled) >= _COMPILED_KEEP:
                compiled.pop(next(iter(compiled)))
            found = compiled[snapshot.id] = compile_settings(snapshot.settings)
        return found

    async def get(self, snapshot: Snapshot, entry: ManifestEntry, key: CacheKey) -> Representation:
        """The representation for ``key``, built (once) when it is not cached."""
        rep = self.lru.get(key)
        if rep is not None and rep.source is not None and not rep.source.is_file():
            rep = None  # its file went (a node's cache emptied): fetched again
        return rep if rep is not None else await self._fill(snapshot, entry, key)

    def staging_robots(self, snapshot_id: str) -> Representation:
        # Staging never serves the snapshot's own robots.txt, so this key is free.
        key: CacheKey = (snapshot_id, ROBOTS_TXT, Variant.STAGING)
        rep = self.lru.get(key)
        if rep is None:
            rep = staging_robots_txt(snapshot_id)
            self.lru.put(key, rep)
        return rep

    async def _fill(
        self, snapshot: Snapshot, entry: ManifestEntry, key: CacheKey
    ) -> Representation:
        """Build a missing representation once, however many requests want it meanwhile."""
        pending = self._building.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Representation] = asyncio.get_running_loop().create_future()
        self._building[key] = future
        try:
            rep = await self._build(snapshot, entry, key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: only the waiters re-raise it
            raise
        finally:
            del self._building[key]
        self.lru.put(key, rep)
        future.set_result(rep)
        return rep

    async def _build(
        self, snapshot: Snapshot, entry: ManifestEntry, key: CacheKey
    ) -> Representation:
        extra = self.settings(snapshot).headers_for(key[1])
        if streams(entry, key[2], self._stream_threshold):
            source = await self._store.blob_file(snapshot.site, entry.sha256)
            if source is None:
                log.error("blob %s of %s:%s is missing from the store", entry.sha256, *key[:2])
                raise ContentUnavailable(f"blob {entry.sha256} of {snapshot.site} is missing")
            return build_streamed(
                source, entry, snapshot_id=snapshot.id, variant=key[2], extra_headers=extra
            )
        blob = await self._store.get_blob(snapshot.site, entry.sha256)
        if blob is None:
            log.error("blob %s of %s:%s is missing from the store", entry.sha256, *key[:2])
            raise ContentUnavailable(f"blob {entry.sha256} of {snapshot.site} is missing")
        if len(blob) > BUILD_IN_THREAD_BYTES:
            return await asyncio.to_thread(
                build, blob, entry, snapshot_id=snapshot.id, variant=key[2], extra_headers=extra
            )
        return build(blob, entry, snapshot_id=snapshot.id, variant=key[2], extra_headers=extra)

    async def warm(self, env: Env, old: Snapshot | None, new: Snapshot) -> None:
        """Before ``env`` moves from ``old`` to ``new``: fill the cache for ``new``.

        Only ``old``'s cached representations are looked at (the cache is grouped by
        snapshot id), for as long as :data:`WARM_BUILD_SECONDS` allows: a swap's cost
        must not grow with the cache (it runs before the commit answers).
        """
        if old is None:
            return
        lru = self.lru
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WARM_BUILD_SECONDS
        same_settings = new.settings == old.settings
        for n, key in enumerate(lru.group(old.id)):
            if n % 64 == 63 and loop.time() >= deadline:
                break
            _, path, variant = key
            if variant.env != env:
                continue
            new_key: CacheKey = (new.id, path, variant)
            rep = lru.peek(key)
            if rep is None or new_key in lru:
                continue
            entry = new.files.get(path)
            if same_settings and (
                entry == old.files.get(path) or (env == "staging" and path == ROBOTS_TXT)
            ):
                lru.put(new_key, rep.for_snapshot(new.id))
            elif entry is not None and loop.time() < deadline:
                try:
                    lru.put(new_key, await self._build(new, entry, new_key))
                except UnwritableHeaders:
                    continue  # answered (a counted 500) when asked for, never a failed swap
