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
import functools
import logging
from collections.abc import Mapping

from edge.cache import ByteLRU, CacheKey, Variant, variant_for
from edge.cache.keys import IDENTITY
from edge.cache.once import Once
from edge.errors import ContentUnavailable
from edge.paths import manifest_key
from edge.router import Env
from edge.snapshots.headers import UnwritableHeaders
from edge.snapshots.model import ManifestEntry, Snapshot
from edge.snapshots.settings import EMPTY_SETTINGS, CompiledSettings, compile_settings
from edge.snapshots.sitefiles import SITE_FILES
from edge.snapshots.store import Store
from edge.visitor.codings import CodedBodies
from edge.visitor.representation import (
    Representation,
    build,
    build_streamed,
    content_body,
    staging_robots_txt,
    streams,
    wants_coding,
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
# A body up to this size is compressed before its first answer (Brotli 11 takes
# about 0.1 s here); a larger one is answered uncompressed while a thread does it.
AWAIT_CODING_BYTES = 64 * 1024
_COMPILED_KEEP = 64  # compiled settings kept per process (a few per site)


def snapshot_of(key: CacheKey) -> str:
    return key[0]


def resolve(path: str, files: Mapping[str, ManifestEntry]) -> str | None:
    """The manifest key a request path serves (the one place paths are resolved).

    ``/_redirects`` and ``/_headers`` are rules (edge.snapshots.sitefiles), never served.
    """
    key = manifest_key(path, files)
    return None if key in SITE_FILES else key


class RepresentationCache:
    """Representations by cache key, filled from the store on a miss."""

    def __init__(
        self,
        cache: ByteLRU[CacheKey, Representation],
        store: Store,
        codings: CodedBodies | None = None,
        *,
        stream_threshold: int = STREAM_THRESHOLD_BYTES,
    ) -> None:
        self.lru = cache
        self._store = store
        self.codings = codings if codings is not None else CodedBodies()
        self._stream_threshold = stream_threshold
        self._building: Once[CacheKey, Representation] = Once()
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

        async def make() -> Representation:
            rep, keep = await self._build(snapshot, entry, key)
            if keep:
                self.lru.put(key, rep)
            return rep

        return await self._building.get_or_make(key, make)

    async def _build(
        self, snapshot: Snapshot, entry: ManifestEntry, key: CacheKey
    ) -> tuple[Representation, bool]:
        """The representation for ``key`` and whether to keep it.

        A large file is sent from its blob file (only its headers are kept). A large
        body whose compressed bytes are not made yet is answered as it is (not kept)
        while a thread compresses it: the next request gets the coding.
        """
        settings = self.settings(snapshot)
        path, variant = key[1], key[2]
        extra = settings.headers_for(path)
        immutable = settings.immutable(path)
        if streams(entry, variant, self._stream_threshold):
            source = await self._store.blob_file(snapshot.site, entry.sha256)
            if source is None:
                log.error("blob %s of %s:%s is missing from the store", entry.sha256, *key[:2])
                raise ContentUnavailable(f"blob {entry.sha256} of {snapshot.site} is missing")
            streamed = build_streamed(
                source,
                entry,
                snapshot_id=snapshot.id,
                variant=variant,
                extra_headers=extra,
                immutable=immutable,
            )
            return streamed, True
        blob = await self._store.get_blob(snapshot.site, entry.sha256)
        if blob is None:
            log.error("blob %s of %s:%s is missing from the store", entry.sha256, *key[:2])
            raise ContentUnavailable(f"blob {entry.sha256} of {snapshot.site} is missing")
        coded, keep = None, True
        if wants_coding(entry, variant):
            # Compressed once per blob, in a thread (edge.visitor.codings).
            body, injected = content_body(blob, entry, variant.env)
            coded_key = (entry.sha256, injected, variant.coding)
            if len(body) <= AWAIT_CODING_BYTES or self.codings.ready(coded_key):
                coded = await self.codings.get(coded_key, body)
            else:
                self.codings.start(coded_key, body)
                variant, keep = variant_for(variant.env, IDENTITY), False
        make = functools.partial(
            build,
            blob,
            entry,
            snapshot_id=snapshot.id,
            variant=variant,
            extra_headers=extra,
            immutable=immutable,
            coded=coded,
        )
        # A large body is built in a thread: the loop keeps serving meanwhile.
        rep = await asyncio.to_thread(make) if len(blob) > BUILD_IN_THREAD_BYTES else make()
        return rep, keep

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
                    rep, keep = await self._build(new, entry, new_key)
                    if keep:
                        lru.put(new_key, rep)
                except UnwritableHeaders:
                    continue  # answered (a counted 500) when asked for, never a failed swap
