"""The visitor request handler: the thin IO shell around the pure core.

Per request: Host -> route (dict), route -> live snapshot (dict), raw path ->
manifest entry (dict), then the cached representation for
``(snapshot id, path, variant)``. SQLite is touched only on a cache miss, to read
the blob, and concurrent misses for the same representation share that read.

Before content come, in order: HTTPS redirects, staging's preview gate, edge's
own endpoints under ``/_edge/`` (forms, preview links), the environment's
upstreams, and the snapshot's redirects. After content: staging's read-through
to production's media, then the 404 page.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11

from edge.cache import ByteLRU, CacheKey, Variant, variant_for
from edge.errors import InboxFull, StoreUnavailable
from edge.integrations.webhooks import Webhooks
from edge.paths import directory_redirect, manifest_key, request_path, split_target
from edge.router import Env, Route, normalize_host
from edge.snapshots.headers import UnwritableHeaders
from edge.snapshots.live import LivePointers, SnapshotLoader
from edge.snapshots.model import ManifestEntry, Snapshot
from edge.snapshots.reserve import DiskReserve
from edge.snapshots.settings import EMPTY_SETTINGS, CompiledSettings, compile_settings
from edge.snapshots.store import Store
from edge.visitor.analytics import PageViewCounter
from edge.visitor.conditional import UNSATISFIABLE, accepts_gzip, etag_matches, parse_range
from edge.visitor.formguard import FormGuard, Refusal
from edge.visitor.forms import FormError, parse_form
from edge.visitor.hosts import HostPolicy, https_location
from edge.visitor.preview import COOKIE, LINK_PATH, PreviewSigner, password_matches
from edge.visitor.representation import (
    Representation,
    build,
    compressible,
    env_headers,
    html,
    staging_robots_txt,
)
from edge.visitor.upstream import Upstream, UpstreamTable, forward
from edge.wire.framing import encoded_body, framing_error
from edge.wire.proxies import first_value, forwarded_https

if TYPE_CHECKING:
    from edge.observability.observer import Observer

log = logging.getLogger("edge.visitor")

# What the visitor metrics read once the answer is written (edge.observability):
# the request's route (absent: no site at its host) and when edge began on it.
ROUTE = web.RequestKey("edge_route", Route)
STARTED = web.RequestKey("edge_started", float)

NOT_FOUND_PAGE = "/404.html"
ROBOTS_TXT = "/robots.txt"
RETRY_AFTER_SECONDS = "10"
# Representations bigger than this are built off the event loop (gzip of a large
# text file would otherwise stall every other request).
_BUILD_IN_THREAD_BYTES = 256 * 1024
_SERVED_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD})
# How long a swap may spend preparing the new snapshot's cache entries before the
# commit: scanning, copying unchanged pages and rebuilding changed ones.
WARM_BUILD_SECONDS = 0.003
FORMS_PREFIX = "/_edge/forms/"
_COMPILED_KEEP = 64  # compiled settings kept per process (a few per site)


def _plain(status: int, text: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=headers)


@dataclass(slots=True)
class Services:
    """What both visitor handlers (plain and HTTPS) serve from."""

    live: LivePointers
    loader: SnapshotLoader
    store: Store
    cache: ByteLRU[CacheKey, Representation]
    views: PageViewCounter = field(default_factory=PageViewCounter)
    webhooks: Webhooks | None = None
    upstreams: UpstreamTable | None = None
    session: aiohttp.ClientSession | None = None
    signer: PreviewSigner | None = None
    building: dict[CacheKey, asyncio.Future[Representation]] = field(default_factory=dict)
    compiled: dict[str, CompiledSettings] = field(default_factory=dict)
    observer: Observer | None = None
    forms_guard: FormGuard | None = None  # abuse limits of form posts (issue 19)
    reserve: DiskReserve | None = None  # free disk kept for operators (issue 19)


class VisitorHandler:
    """Serves visitors from the live snapshots; an aiohttp low-level handler."""

    def __init__(self, policy: HostPolicy, services: Services, *, tls: bool = False) -> None:
        self.policy = policy
        self._tls = tls
        self._services = services
        self._live = services.live
        self._store = services.store
        self._cache = services.cache
        self._building = services.building

    def over_tls(self) -> VisitorHandler:
        """The handler for the HTTPS listener: same state, HSTS, no HTTPS redirect."""
        return VisitorHandler(self.policy, self._services, tls=True)

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        request[STARTED] = perf_counter()
        headers = request.headers
        if request.version != HttpVersion11 or hdrs.TRANSFER_ENCODING in headers:
            error = framing_error(request.version, headers.get(hdrs.TRANSFER_ENCODING))
            if error is not None:
                refused = _plain(error.status, error.message)
                refused.force_close()  # nothing after it on this connection is read
                return refused
        policy = self.policy
        https, forwarded = self._tls, False
        host = headers.get(hdrs.HOST)
        if policy.proxies is not None and policy.proxies.trusts(request.remote):
            # A trusted proxy's word on the original host and scheme (edge.wire.proxies).
            forwarded = True
            host = first_value(headers.get(hdrs.X_FORWARDED_HOST)) or host
            proto = forwarded_https(headers.get(hdrs.X_FORWARDED_PROTO))
            https = https if proto is None else proto
        raw = request.raw_path
        if not raw.startswith("/"):
            target = split_target(raw)
            if target is None:
                return _plain(400, "Bad Request: unsupported request target")
            # RFC 9112 §3.2.2: an absolute-form target's authority wins over Host.
            host, raw = target[0] or host, target[1]
        route = policy.routes.resolve(host)
        if route is None:
            if host and normalize_host(host) is None:
                return _plain(400, "Bad Request: malformed Host")
            return _plain(421, "Misdirected Request: no site is served at this host")
        request[ROUTE] = route
        try:
            response = await self._serve(request, route, host, raw, https, forwarded)
        except StoreUnavailable as exc:
            # A cache miss while the store is away (a database outage): what is cached
            # keeps serving; this one asks the visitor to come back, not a 500.
            log.warning("visitor request %s %s: %s", request.method, raw, exc.message)
            unavailable = env_headers(route.env, None)
            unavailable["Retry-After"] = RETRY_AFTER_SECONDS
            response = _plain(503, "Service Unavailable: please try again shortly", unavailable)
        except UnwritableHeaders as exc:
            # A response no writer could send (issue 19): a counted 500, never a cut connection.
            log.error("visitor request %s %s: unwritable response: %s", request.method, raw, exc)
            if self._services.observer is not None:
                self._services.observer.response_unwritable(route, raw, str(exc))
            response = _plain(500, "Internal Server Error", env_headers(route.env, None))
        except Exception as exc:
            if isinstance(exc, ConnectionResetError) and request.transport is None:
                return _plain(408, "Request Timeout")  # never sent: the client is gone
            # Whatever failed, the answer still says which environment it is from
            # (staging's noindex included) and shows nothing of the failure.
            log.exception("visitor request %s %s failed", request.method, raw)
            response = _plain(500, "Internal Server Error", env_headers(route.env, None))
        if https and not response.prepared:
            hsts = policy.hsts.get(route.key)
            if hsts is not None:
                response.headers["Strict-Transport-Security"] = hsts
        return response

    async def _serve(
        self,
        request: web.BaseRequest,
        route: Route,
        host: str | None,
        raw: str,
        https: bool,
        forwarded: bool,
    ) -> web.StreamResponse:
        policy = self.policy
        if policy.https_port is not None and not https and route.key in policy.https_only:
            return _to_https(host, raw, policy.https_port)
        if not self._live.is_current():
            await self._live.catch_up()  # another process moved a pointer
        snapshot = self._live.get(route.key)
        path = request_path(raw)
        if route.env == "staging" and (
            route.key in policy.passwords
            or COOKIE in request.headers.get(hdrs.COOKIE, "")  # no cookie parsing per request
            or path == LINK_PATH
        ):
            gate = await self._preview_gate(request, route, path, https)
            if isinstance(gate, web.StreamResponse):
                return gate
            snapshot = gate or snapshot
        if snapshot is None:
            headers = env_headers(route.env, None)
            headers["Retry-After"] = RETRY_AFTER_SECONDS
            return _plain(503, "This environment has no content yet", headers)
        if path is None:
            return _plain(400, "Bad Request: malformed path", env_headers(route.env, snapshot.id))
        if path.startswith("/_edge/"):
            return await self._edge_endpoint(request, route, snapshot, path)
        upstreams = self._services.upstreams
        if upstreams is not None:
            upstream = upstreams.match(route.key, path)
            if upstream is not None:
                return await self._forward(
                    request, route, snapshot, upstream, https, forwarded, host
                )
        if request.method not in _SERVED_METHODS:
            headers = env_headers(route.env, snapshot.id)
            headers["Allow"] = "GET, HEAD"
            return _plain(405, "Method Not Allowed", headers)
        settings = self._settings(snapshot)
        if settings.redirects:
            redirect = settings.redirects.get(path)
            if redirect is not None:
                headers = env_headers(route.env, snapshot.id)
                headers[hdrs.LOCATION] = redirect[0]
                return web.Response(status=redirect[1], headers=headers)
        if route.env == "staging" and path == ROBOTS_TXT:
            return self._respond(request, self._staging_robots(snapshot.id), 200)
        files = snapshot.files
        key = manifest_key(path, files)
        if key is not None:
            entry = files[key]
            # The hot path: a cache hit costs no coroutine (see _representation).
            cache_key = self._cache_key(request, route.env, snapshot, key, entry)
            rep = self._cache.get(cache_key)
            if rep is None:
                rep = await self._fill(snapshot, entry, cache_key)
            if request.method == hdrs.METH_GET and html(entry.content_type):
                self._services.views.count(route, key)
            return self._respond(request, rep, 200)
        # -- issue 15: /blog held only as /blog/index.html -> 301 /blog/ (edge.paths) --
        location = directory_redirect(path, raw, files)
        if location is not None:
            headers = env_headers(route.env, snapshot.id)  # staging keeps its noindex
            headers[hdrs.LOCATION] = location
            return web.Response(status=301, headers=headers)
        # -- end issue 15 --
        if route.env == "staging" and path.startswith(settings.media_prefix):
            found = await self._production_media(request, route, path)
            if found is not None:
                return found
        not_found = files.get(NOT_FOUND_PAGE)
        if not_found is not None:
            rep = await self._representation(request, route, snapshot, NOT_FOUND_PAGE, not_found)
            return self._respond(request, rep, 404)
        return _plain(404, "Not Found", env_headers(route.env, snapshot.id))

    # -- settings, media, upstreams --------------------------------------------------

    def _settings(self, snapshot: Snapshot) -> CompiledSettings:
        if not snapshot.settings:
            return EMPTY_SETTINGS
        compiled = self._services.compiled
        found = compiled.get(snapshot.id)
        if found is None:
            if len(compiled) >= _COMPILED_KEEP:
                compiled.pop(next(iter(compiled)))
            found = compiled[snapshot.id] = compile_settings(snapshot.settings)
        return found

    async def _production_media(
        self, request: web.BaseRequest, route: Route, path: str
    ) -> web.Response | None:
        """Staging lacks a media file: serve production's, with staging's headers.

        Only ever in this direction: production never reads staging.
        """
        production = self._live.get(Route(route.site, "production").key)
        entry = None if production is None else production.files.get(path)
        if production is None or entry is None:
            return None
        rep = await self._representation(request, route, production, path, entry)
        return self._respond(request, rep, 200)

    async def _forward(
        self,
        request: web.BaseRequest,
        route: Route,
        snapshot: Snapshot,
        upstream: Upstream,
        https: bool,
        forwarded: bool,
        host: str | None,
    ) -> web.StreamResponse:
        session = self._services.session
        assert session is not None, "upstreams need the outbound session"
        observer = self._services.observer

        def failed(kind: str, detail: str) -> None:
            if observer is not None:
                observer.upstream_error(
                    route, upstream.origin, kind, detail, request.method, request.path
                )

        return await forward(
            request,
            upstream,
            session,
            env_headers=self._env_headers(route, snapshot.id, https),
            tls=https,
            trusted=forwarded,
            host=host,
            on_error=failed,
        )

    def _env_headers(self, route: Route, snapshot_id: str | None, https: bool) -> dict[str, str]:
        headers = env_headers(route.env, snapshot_id)
        if https:
            hsts = self.policy.hsts.get(route.key)
            if hsts is not None:
                headers["Strict-Transport-Security"] = hsts
        return headers

    # -- /_edge/: forms and preview links ------------------------------------------

    async def _edge_endpoint(
        self, request: web.BaseRequest, route: Route, snapshot: Snapshot, path: str
    ) -> web.StreamResponse:
        headers = env_headers(route.env, snapshot.id)
        if path.startswith(FORMS_PREFIX) and len(path) > len(FORMS_PREFIX):
            if request.method != hdrs.METH_POST:
                headers["Allow"] = "POST"
                return _plain(405, "Method Not Allowed", headers)
            return await self._submit_form(request, route, snapshot, path[len(FORMS_PREFIX) :])
        return _plain(404, "Not Found", headers)

    async def _submit_form(
        self, request: web.BaseRequest, route: Route, snapshot: Snapshot, name: str
    ) -> web.Response:
        headers = env_headers(route.env, snapshot.id)
        form = self._settings(snapshot).forms.get(name)
        if form is None:
            return _plain(404, f"No form named {name!r}", headers)
        # -- abuse limits (edge.visitor.formguard): rate, then disk reserve ----------
        guard = self._services.forms_guard
        if guard is not None:
            forwarded_for = request.headers.get(hdrs.X_FORWARDED_FOR)
            refusal = guard.admit(route, name, form, request.remote, forwarded_for)
            if refusal is not None:
                return _refuse(refusal, headers)
        # -- end of abuse limits ---------------------------------------------------------
        if request.body_exists and encoded_body(request.headers.get(hdrs.CONTENT_ENCODING)):
            return _plain(415, "Form bodies must not be content-coded", headers)
        try:
            body = await _read_limited(request, form.max_bytes)
            fields = parse_form(request.headers.get(hdrs.CONTENT_TYPE), body, form)
        except FormError as exc:
            return _plain(exc.status, exc.message, headers)
        webhooks = self._services.webhooks
        events = []
        if webhooks is not None:
            events = webhooks.events(
                route.site, route.env, "form.submitted", {"form": name, "fields": fields}
            )
        try:
            await self._store.add_form_submission(
                route.site,
                route.env,
                name,
                fields,
                events,
                limits=None if guard is None else guard.inbox,
            )
        except InboxFull:
            assert guard is not None  # only a capped write is refused as full
            return _refuse(guard.inbox_full(route, name), headers)
        except StoreUnavailable as exc:
            log.error("form %r of %s could not be stored: %s", name, route.site, exc.message)
            headers["Retry-After"] = RETRY_AFTER_SECONDS
            return _plain(503, "Service Unavailable: please try again later", headers)
        if form.redirect is not None:
            headers[hdrs.LOCATION] = form.redirect
            return web.Response(status=303, headers=headers)
        return web.Response(status=204, headers=headers)

    async def _preview_gate(
        self, request: web.BaseRequest, route: Route, path: str | None, https: bool
    ) -> web.StreamResponse | Snapshot | None:
        """Staging access: a preview link, its cookie, or the password.

        Returns a response to send (refusal, the link's redirect), the pinned
        snapshot of a valid preview cookie, or ``None`` to serve live staging.
        """
        signer = self._services.signer
        headers = env_headers(route.env, None)
        if path == LINK_PATH:
            token = request.query.get("token", "")
            grant = signer.verify(token, route.site) if signer is not None else None
            if grant is None:
                return _plain(403, "This preview link is invalid or has expired", headers)
            headers[hdrs.LOCATION] = "/"
            response = web.Response(status=303, headers=headers)
            response.set_cookie(
                COOKIE,
                token,
                max_age=max(int(grant.expires - time.time()), 1),
                path="/",
                httponly=True,
                samesite="Lax",
                secure=https,
            )
            return response
        cookie = request.cookies.get(COOKIE)
        if cookie:
            grant = signer.verify(cookie, route.site) if signer is not None else None
            if grant is not None:
                pinned = await self._services.loader.load(route.site, grant.snapshot)
                if pinned is not None:
                    return pinned
            if route.key not in self.policy.passwords:
                return None  # a public staging site: an old or foreign cookie changes nothing
        password = self.policy.passwords.get(route.key)
        if password is None or password_matches(request.headers.get(hdrs.AUTHORIZATION), password):
            return None
        headers[hdrs.WWW_AUTHENTICATE] = 'Basic realm="staging preview", charset="UTF-8"'
        return _plain(401, "This staging site needs the preview password", headers)

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
        same_settings = new.settings == old.settings
        for n, key in enumerate(self._cache.keys()):
            # The whole warm-up, scan included, fits the budget: a swap's cost must
            # not grow with the cache (it runs before the commit answers).
            if n % 256 == 255 and loop.time() >= deadline:
                break
            snapshot_id, path, variant = key
            if snapshot_id != old.id or variant.env != env:
                continue
            new_key: CacheKey = (new.id, path, variant)
            rep = self._cache.peek(key)
            if rep is None or new_key in self._cache:
                continue
            entry = new.files.get(path)
            if same_settings and (
                entry == old.files.get(path) or (env == "staging" and path == ROBOTS_TXT)
            ):
                self._cache.put(new_key, rep.for_snapshot(new.id))
            elif entry is not None and loop.time() < deadline:
                try:
                    self._cache.put(new_key, await self._build(new, entry, new_key))
                except UnwritableHeaders:
                    continue  # answered (a counted 500) when asked for, never a failed swap

    def _staging_robots(self, snapshot_id: str) -> Representation:
        # Staging never serves the snapshot's own robots.txt, so this key is free.
        key: CacheKey = (snapshot_id, ROBOTS_TXT, Variant.STAGING)
        rep = self._cache.get(key)
        if rep is None:
            rep = staging_robots_txt(snapshot_id)
            self._cache.put(key, rep)
        return rep

    @staticmethod
    def _cache_key(
        request: web.BaseRequest, env: Env, snapshot: Snapshot, path: str, entry: ManifestEntry
    ) -> CacheKey:
        gzip = compressible(entry.content_type) and accepts_gzip(
            request.headers.get(hdrs.ACCEPT_ENCODING)
        )
        return (snapshot.id, path, variant_for(env, gzip))

    async def _representation(
        self,
        request: web.BaseRequest,
        route: Route,
        snapshot: Snapshot,
        path: str,
        entry: ManifestEntry,
    ) -> Representation:
        key = self._cache_key(request, route.env, snapshot, path, entry)
        rep = self._cache.get(key)
        return rep if rep is not None else await self._fill(snapshot, entry, key)

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
        self._cache.put(key, rep)
        future.set_result(rep)
        return rep

    async def _build(
        self, snapshot: Snapshot, entry: ManifestEntry, key: CacheKey
    ) -> Representation:
        blob = await self._store.get_blob(snapshot.site, entry.sha256)
        if blob is None:
            log.error("blob %s of %s:%s is missing from the store", entry.sha256, *key[:2])
            raise ContentUnavailable(f"blob {entry.sha256} of {snapshot.site} is missing")
        extra = self._settings(snapshot).headers_for(key[1])
        if len(blob) > _BUILD_IN_THREAD_BYTES:
            return await asyncio.to_thread(
                build, blob, entry, snapshot_id=snapshot.id, variant=key[2], extra_headers=extra
            )
        return build(blob, entry, snapshot_id=snapshot.id, variant=key[2], extra_headers=extra)

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


class ContentUnavailable(Exception):
    """A manifest names a blob the store does not have (a damaged store)."""


async def _read_limited(request: web.BaseRequest, limit: int) -> bytes:
    """The whole body, or 413 as soon as it passes ``limit`` (never buffered past it)."""
    if request.content_length is not None and request.content_length > limit:
        raise FormError(413, f"form bodies are limited to {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise FormError(413, f"form bodies are limited to {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse(refusal: Refusal, headers: dict[str, str]) -> web.Response:
    if refusal.retry_after is not None:
        headers["Retry-After"] = refusal.retry_after
    return _plain(refusal.status, refusal.message, headers)


def _to_https(host: str | None, raw_target: str, port: int) -> web.Response:
    # The target host is the configured one the request resolved to (normalised),
    # never the raw Host header.
    location = https_location(normalize_host(host) or "", port, raw_target)
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
