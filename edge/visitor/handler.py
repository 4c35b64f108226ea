"""The visitor request handler: the thin IO shell around the pure core.

Per request: Host -> route (dict), route -> live snapshot (dict), raw path ->
manifest entry (dict), then the cached representation for
``(snapshot id, path, variant)``. SQLite is touched only on a cache miss, to read
the blob, and concurrent misses for the same representation share that read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from aiohttp import hdrs, web

from edge.cache import ByteLRU, CacheKey, Variant, variant_for
from edge.paths import lookup_candidates, request_path
from edge.router import Env, Route, normalize_host
from edge.snapshots.live import LivePointers
from edge.snapshots.model import ManifestEntry, Snapshot
from edge.snapshots.store import Store
from edge.visitor.conditional import UNSATISFIABLE, accepts_gzip, etag_matches, parse_range
from edge.visitor.hosts import HostPolicy, https_location
from edge.visitor.representation import (
    Representation,
    build,
    compressible,
    env_headers,
    staging_robots_txt,
)

log = logging.getLogger("edge.visitor")

NOT_FOUND_PAGE = "/404.html"
ROBOTS_TXT = "/robots.txt"
RETRY_AFTER_SECONDS = "10"
# Representations bigger than this are built off the event loop (gzip of a large
# text file would otherwise stall every other request).
_BUILD_IN_THREAD_BYTES = 256 * 1024
_SERVED_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD})
# How long a swap may spend rebuilding changed pages for the new snapshot before
# the commit (unchanged pages are copied, which costs next to nothing).
WARM_BUILD_SECONDS = 0.003


def _plain(status: int, text: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=headers)


class VisitorHandler:
    """Serves visitors from the live snapshots; an aiohttp low-level handler."""

    def __init__(
        self,
        policy: HostPolicy,
        live: LivePointers,
        store: Store,
        cache: ByteLRU[CacheKey, Representation],
        *,
        tls: bool = False,
    ) -> None:
        self.policy = policy
        self._tls = tls
        self._live = live
        self._store = store
        self._cache = cache
        self._building: dict[CacheKey, asyncio.Future[Representation]] = {}

    def over_tls(self) -> VisitorHandler:
        """The handler for the HTTPS listener: same state, HSTS, no HTTPS redirect."""
        return TlsVisitorHandler(self.policy, self._live, self._store, self._cache, tls=True)

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        policy = self.policy
        route = policy.routes.resolve(request.headers.get(hdrs.HOST))
        if route is None:
            return _plain(421, "Misdirected Request: no site is served at this host")
        if policy.https_port is not None and not self._tls and route.key in policy.https_only:
            return _to_https(request, policy.https_port)
        if not self._live.is_current():
            await self._live.catch_up()  # another process moved a pointer
        snapshot = self._live.get(route.key)
        if snapshot is None:
            headers = env_headers(route.env, None)
            headers["Retry-After"] = RETRY_AFTER_SECONDS
            return _plain(503, "This environment has no content yet", headers)
        if request.method not in _SERVED_METHODS:
            headers = env_headers(route.env, snapshot.id)
            headers["Allow"] = "GET, HEAD"
            return _plain(405, "Method Not Allowed", headers)
        path = request_path(request.raw_path)
        if path is None:
            return _plain(400, "Bad Request: malformed path", env_headers(route.env, snapshot.id))

        if route.env == "staging" and path == ROBOTS_TXT:
            return self._respond(request, self._staging_robots(snapshot.id), 200)
        files = snapshot.files
        for candidate in lookup_candidates(path):
            entry = files.get(candidate)
            if entry is not None:
                rep = await self._representation(request, route, snapshot, candidate, entry)
                return self._respond(request, rep, 200)
        entry = files.get(NOT_FOUND_PAGE)
        if entry is not None:
            rep = await self._representation(request, route, snapshot, NOT_FOUND_PAGE, entry)
            return self._respond(request, rep, 404)
        return _plain(404, "Not Found", env_headers(route.env, snapshot.id))

    async def warm(self, env: Env, old: Snapshot | None, new: Snapshot) -> None:
        """Before ``env`` moves from ``old`` to ``new``: fill the cache for ``new``.

        Every representation of ``old`` still cached (the LRU holds what visitors
        asked for lately) is made for ``new`` too: copied with a new snapshot header
        when the entry is unchanged, rebuilt from the store when it changed, for as
        long as :data:`WARM_BUILD_SECONDS` allows. The first visitors after a swap
        then hit a warm cache.
        """
        if old is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WARM_BUILD_SECONDS
        for key in self._cache.keys():
            snapshot_id, path, variant = key
            if snapshot_id != old.id or variant.env != env:
                continue
            new_key: CacheKey = (new.id, path, variant)
            rep = self._cache.peek(key)
            if rep is None or new_key in self._cache:
                continue
            entry = new.files.get(path)
            if entry == old.files.get(path) or (env == "staging" and path == ROBOTS_TXT):
                self._cache.put(new_key, rep.for_snapshot(new.id))
            elif entry is not None and loop.time() < deadline:
                self._cache.put(new_key, await self._build(new, entry, new_key))

    def _staging_robots(self, snapshot_id: str) -> Representation:
        # Staging never serves the snapshot's own robots.txt, so this key is free.
        key: CacheKey = (snapshot_id, ROBOTS_TXT, Variant.STAGING)
        rep = self._cache.get(key)
        if rep is None:
            rep = staging_robots_txt(snapshot_id)
            self._cache.put(key, rep)
        return rep

    async def _representation(
        self,
        request: web.BaseRequest,
        route: Route,
        snapshot: Snapshot,
        path: str,
        entry: ManifestEntry,
    ) -> Representation:
        gzip = compressible(entry.content_type) and accepts_gzip(
            request.headers.get(hdrs.ACCEPT_ENCODING)
        )
        key: CacheKey = (snapshot.id, path, variant_for(route.env, gzip))
        rep = self._cache.get(key)
        if rep is not None:
            return rep
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
        self._cache.put(key, rep)
        future.set_result(rep)
        return rep

    async def _build(
        self, snapshot: Snapshot, entry: ManifestEntry, key: CacheKey
    ) -> Representation:
        blob = await self._store.get_blob(snapshot.site, entry.sha256)
        if blob is None:
            log.error("blob %s of %s:%s is missing from the store", entry.sha256, *key[:2])
            raise web.HTTPInternalServerError(text="content unavailable\n")
        if len(blob) > _BUILD_IN_THREAD_BYTES:
            return await asyncio.to_thread(
                build, blob, entry, snapshot_id=snapshot.id, variant=key[2]
            )
        return build(blob, entry, snapshot_id=snapshot.id, variant=key[2])

    @staticmethod
    def _respond(request: web.BaseRequest, rep: Representation, status: int) -> web.Response:
        headers = request.headers
        if status == 200:
            if_none_match = headers.get(hdrs.IF_NONE_MATCH)
            if if_none_match is not None and etag_matches(if_none_match, rep.etag):
                return web.Response(status=304, headers=rep.not_modified_headers)
            if rep.rangeable:
                range_header = headers.get(hdrs.RANGE)
                if range_header is not None:
                    if_range = headers.get(hdrs.IF_RANGE)
                    if if_range is None or if_range.strip() == rep.etag:
                        return _partial(rep, range_header)
        return web.Response(body=rep.body, status=status, headers=rep.headers)


class TlsVisitorHandler(VisitorHandler):
    """Adds Strict-Transport-Security where the environment asks for it."""

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        response = await super().__call__(request)
        route = self.policy.routes.resolve(request.headers.get(hdrs.HOST))
        if route is not None:
            hsts = self.policy.hsts.get(route.key)
            if hsts is not None:
                response.headers["Strict-Transport-Security"] = hsts
        return response


def _to_https(request: web.BaseRequest, port: int) -> web.Response:
    # The target host is the configured one the request resolved to (normalised),
    # never the raw Host header.
    host = normalize_host(request.headers.get(hdrs.HOST)) or ""
    location = https_location(host, port, request.raw_path)
    return web.Response(status=308, headers={hdrs.LOCATION: location})


def _partial(rep: Representation, range_header: str) -> web.Response:
    size = len(rep.body)
    span = parse_range(range_header, size)
    if span is None:
        return web.Response(body=rep.body, status=200, headers=rep.headers)
    if span == UNSATISFIABLE:
        headers = dict(rep.not_modified_headers)
        headers["Content-Range"] = f"bytes */{size}"
        return web.Response(status=416, headers=headers)
    first, last = span
    headers = dict(rep.headers)
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return web.Response(body=rep.body[first : last + 1], status=206, headers=headers)
