"""The visitor request handler: the thin IO shell around the pure core.

Two ways in, both from the visitor wire (:mod:`edge.wire.http1`):

- :meth:`VisitorHandler.hit`, synchronous, for a request the same route already
  answered from the cache: raw Host -> compiled route policy (one lookup), raw
  target -> where it led last time (one lookup, valid while the live snapshot is
  the same), the cached representation (one lookup), and its ready-made bytes.
  Anything it cannot decide that way (a new target, a password, a cookie on
  staging, a range, a trusted proxy) returns ``None``.
- :meth:`VisitorHandler.serve`, a coroutine, for everything: in order, HTTPS
  redirects, staging's preview gate (:mod:`edge.visitor.gate`), edge's own
  endpoints under ``/_edge/`` (forms: :mod:`edge.visitor.submission`), the
  environment's upstreams (:mod:`edge.visitor.upstream`), the snapshot's
  redirects (``settings.redirects``, then ``_redirects``: :mod:`edge.snapshots.rules`,
  whose 200 rewrites are remembered for :meth:`hit` like any content answer),
  content from the representation cache
  (:mod:`edge.visitor.repcache`), staging's read-through to production's media,
  then the 404 page. Every content answer it sends through the cache is
  remembered for :meth:`hit`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache

from edge.cache import CacheKey, Variant, variant_for
from edge.cache.keys import CODINGS
from edge.errors import ContentUnavailable, StoreUnavailable
from edge.paths import directory_redirect, request_path, split_target
from edge.router import Route, normalize_host
from edge.snapshots.headers import UnwritableHeaders
from edge.snapshots.model import ManifestEntry, Snapshot
from edge.snapshots.rules import Redirected, with_query
from edge.visitor.again import HEAD_MAX, Again, AgainBook
from edge.visitor.answers import Answer, empty, plain
from edge.visitor.bodyfile import send_file
from edge.visitor.conditional import UNSATISFIABLE, choose_coding, etag_matches, parse_range
from edge.visitor.gate import preview_gate
from edge.visitor.hosts import HostPolicy, https_location
from edge.visitor.policy import Found, Policies, RoutePolicy, malformed_host
from edge.visitor.preview import COOKIE, LINK_PATH
from edge.visitor.repcache import ROBOTS_TXT, resolve
from edge.visitor.representation import Representation, compressible, env_headers, html, rangeable
from edge.visitor.services import Services
from edge.visitor.submission import RETRY_AFTER_SECONDS, submit
from edge.visitor.upstream import Upstream, forward
from edge.wire.exchange import CLOCK, Request, Responder
from edge.wire.proxies import first_value, forwarded_https

__all__ = ["ContentUnavailable", "Services", "VisitorHandler"]

log = logging.getLogger("edge.visitor")

NOT_FOUND_PAGE = "/404.html"
FORMS_PREFIX = "/_edge/forms/"
_COOKIE_BYTES = COOKIE.encode()
_REASONS = {404: "Not Found", 410: "Gone"}
_TARGETS_KEEP = 4096  # raw targets remembered per route; a flood of new ones clears them


@lru_cache(maxsize=1024)
def _coding(accept_encoding: bytes) -> int:
    """The coding index (edge.cache.keys.CODINGS) for an Accept-Encoding value's bytes."""
    return choose_coding(accept_encoding.decode("latin-1"))


class VisitorHandler:
    """Serves visitors from the live snapshots on one listener (plain or HTTPS)."""

    def __init__(self, policy: HostPolicy, services: Services, *, tls: bool = False) -> None:
        self._tls = tls
        self._services = services
        self._live = services.live
        self._lru = services.cache
        self._content = services.content
        self._views = services.views
        observer = services.observer
        # What the wire calls once per answered request (an attribute, not a method
        # that would call it: one Python call less per cache hit).
        recorder = observer.recorder() if observer is not None else None
        self.answered: Callable[[Request], None] = (
            recorder.record if recorder is not None else _ignore
        )
        self._count: Callable[[Route, int, float], None] = (
            recorder.count if recorder is not None else _ignore_count
        )
        # Whole request heads answered before (edge.visitor.again); not while the
        # access log is on: its lines want the parsed request.
        self._book: AgainBook | None = (
            AgainBook() if observer is None or observer.access is None else None
        )
        self._written: Again  # what again() answered last, for again_written()
        self.policy = policy

    @property
    def policy(self) -> HostPolicy:
        return self._host_policy

    @policy.setter
    def policy(self, policy: HostPolicy) -> None:
        """Swap the host policy whole (``edge reload``)."""
        upstreams = self._services.upstreams
        plain_view = Policies.build(policy, upstreams, tls=False)
        secure_view = Policies.build(policy, upstreams, tls=True)
        self._host_policy = policy
        self._views_by_tls = {False: plain_view, True: secure_view}
        self._own = secure_view if self._tls else plain_view
        if self._book is not None:
            self._book.clear()  # decided under the old policy

    def over_tls(self) -> VisitorHandler:
        """The handler for the HTTPS listener: same state, HSTS, no HTTPS redirect."""
        return VisitorHandler(self._host_policy, self._services, tls=True)

    # -- the hit path ---------------------------------------------------------------

    def hit(self, request: Request) -> tuple[bytes, ...] | None:
        """Ready-made buffers for a request answered before, or ``None``.

        The wire writes them with one ``writelines`` (one ``writev``): the body is
        never copied into a joined answer.
        """
        fields = request.fields
        own = self._own
        if own.proxies is not None:
            return None
        policy = own.by_raw_host[fields.get(b"host")]
        if policy is None or not policy.simple:
            return None
        method = request.method
        if method != "GET" and method != "HEAD":
            return None
        found = policy.targets.get(request.target)
        if found is None:
            return None
        if policy.staging and _COOKIE_BYTES in fields.get(b"cookie", b""):
            return None
        snapshot_id = found.snapshot_id
        if not self._live.serves(policy.key, snapshot_id):
            return None
        coding = 0
        if found.compressible:
            accept = fields.get(b"accept-encoding")
            if accept is not None:
                coding = _coding(accept)
        rep = self._lru.get(found.keys[coding])
        if rep is None or rep.source is not None:  # a large file streams: serve()
            return None
        if found.rangeable and b"range" in fields:
            return None
        wire = rep.wires.get(policy.hsts)
        if wire is None:
            return None
        request.route = policy.route
        request.snapshot = snapshot_id
        if_none_match = fields.get(b"if-none-match")
        body: bytes | None = None
        view: tuple[str, str] | None = None
        if if_none_match is not None and etag_matches(if_none_match.decode("latin-1"), rep.etag):
            status, head = 304, wire.not_modified
        else:
            status, head = 200, wire.ok
            if method != "HEAD":
                body = rep.body
                request.nbytes = len(body)
                if found.html:
                    view = found.view
                    self._views.count_key(view)
        request.status = status
        if self._book is not None:
            key = found.keys[coding]
            sends, size = body is not None, len(rep.body)
            request.again = Again(
                policy.key,
                policy.route,
                snapshot_id,
                key,
                rep.etag,
                size,
                status,
                head,
                sends,
                view,
            )
        if body is None:
            return (head + CLOCK.end,)
        return (head, CLOCK.end, body)

    def remember(self, head: bytes, again: Again) -> None:
        """``head`` was one read holding exactly the request :meth:`hit` answered as ``again``."""
        if self._book is not None:
            self._book.remember(head, again)

    def again(self, head: bytes) -> tuple[bytes, ...] | None:
        """The answer to a whole request head answered before (:mod:`edge.visitor.again`),
        or ``None``: parse it. The wire calls :meth:`again_written` once it is written."""
        book = self._book
        if book is None or len(head) > HEAD_MAX:
            return None
        again = book.get(head)
        if again is None:
            return None
        if not self._live.serves(again.key, again.snapshot_id):
            return None
        lru = self._lru
        rep = lru.peek(again.cache_key)
        if rep is None or rep.etag != again.etag or len(rep.body) != again.size:
            return None  # the full path decides (and counts the cache's hit or miss)
        lru.get(again.cache_key)  # a hit: counted, and recent again
        if again.view is not None:
            self._views.count_key(again.view)
        self._written = again
        if not again.body:
            return (again.head + CLOCK.end,)
        return (again.head, CLOCK.end, rep.body)

    def again_written(self, elapsed: float) -> None:
        """The answer :meth:`again` gave last is written, ``elapsed`` after its read."""
        again = self._written
        self._count(again.route, again.status, elapsed)

    # -- everything -----------------------------------------------------------------

    async def serve(self, request: Request, responder: Responder) -> None:
        https, forwarded = self._tls, False
        host = request.header(b"host")
        own = self._own
        if own.proxies is not None and own.proxies.trusts(request.peer):
            # A trusted proxy's word on the original host and scheme (edge.wire.proxies).
            forwarded = True
            host = first_value(request.header(b"x-forwarded-host")) or host
            proto = forwarded_https(request.header(b"x-forwarded-proto"))
            https = https if proto is None else proto
        raw = request.target
        if not raw.startswith("/"):
            target = split_target(raw)
            if target is None:
                return _send(responder, plain(400, "Bad Request: unsupported request target"))
            # RFC 9112 §3.2.2: an absolute-form target's authority wins over Host.
            host, raw = target[0] or host, target[1]
        view = self._views_by_tls[https]
        policy = view.resolve(host)
        if policy is None:
            if malformed_host(host):
                return _send(responder, plain(400, "Bad Request: malformed Host"))
            return _send(
                responder, plain(421, "Misdirected Request: no site is served at this host")
            )
        request.route = policy.route
        if policy.redirect_to_https and view.https_port is not None:
            # The target host is the configured one the request resolved to (normalised),
            # never the raw Host header.
            location = https_location(normalize_host(host) or "", view.https_port, raw)
            # Like every answer: which environment and snapshot (staging's noindex).
            served = self._live.get(policy.key)
            headers = env_headers(policy.env, None if served is None else served.id)
            headers["Location"] = location
            return _send(responder, empty(308, headers))
        try:
            await self._serve(request, responder, policy, host, raw, https, forwarded)
        except StoreUnavailable as exc:
            # A cache miss while the store is away (a database outage): what is cached
            # keeps serving; this one asks the visitor to come back, not a 500.
            log.warning("visitor request %s %s: %s", request.method, raw, exc.message)
            headers = env_headers(policy.env, None)
            headers["Retry-After"] = RETRY_AFTER_SECONDS
            self._fail(
                responder,
                policy,
                plain(503, "Service Unavailable: please try again shortly", headers),
            )
        except UnwritableHeaders as exc:
            # A response no writer could send (issue 19): a counted 500, never a cut connection.
            log.error("visitor request %s %s: unwritable response: %s", request.method, raw, exc)
            observer = self._services.observer
            if observer is not None:
                observer.response_unwritable(policy.route, raw, str(exc))
            self._fail(
                responder,
                policy,
                plain(500, "Internal Server Error", env_headers(policy.env, None)),
            )
        except ConnectionError:
            raise
        except Exception:
            # Whatever failed, the answer still says which environment it is from
            # (staging's noindex included) and shows nothing of the failure.
            log.exception("visitor request %s %s failed", request.method, raw)
            self._fail(
                responder,
                policy,
                plain(500, "Internal Server Error", env_headers(policy.env, None)),
            )

    def _fail(self, responder: Responder, policy: RoutePolicy, answer: Answer) -> None:
        if responder.started:
            responder.cut()  # too late for an error answer: the client sees it cut off
        else:
            self._send(responder, policy, answer)

    def _send(self, responder: Responder, policy: RoutePolicy, answer: Answer) -> None:
        headers = answer.headers
        if policy.hsts is not None:
            headers = {**headers, "Strict-Transport-Security": policy.hsts}
        responder.answer(answer.status, headers, answer.body)

    async def _serve(
        self,
        request: Request,
        responder: Responder,
        policy: RoutePolicy,
        host: str | None,
        raw: str,
        https: bool,
        forwarded: bool,
    ) -> None:
        live = self._live
        if not live.is_current():
            await live.catch_up()  # another process moved a pointer
        snapshot = live.get(policy.key)
        route = policy.route
        path = request_path(raw)
        pinned = False
        if policy.staging and (
            policy.password is not None
            or COOKIE in (request.header(b"cookie") or "")  # no cookie parsing per request
            or path == LINK_PATH
        ):
            gate = await preview_gate(
                route,
                path,
                query=raw.partition("?")[2],
                cookie_header=request.header(b"cookie"),
                authorization=request.header(b"authorization"),
                password=policy.password,
                https=https,
                signer=self._services.signer,
                loader=self._services.loader,
            )
            if isinstance(gate, Answer):
                return self._send(responder, policy, gate)
            if gate is not None:
                snapshot, pinned = gate, True
        if snapshot is None:
            headers = env_headers(route.env, None)
            headers["Retry-After"] = RETRY_AFTER_SECONDS
            return self._send(
                responder, policy, plain(503, "This environment has no content yet", headers)
            )
        if path is None:
            return self._send(
                responder,
                policy,
                plain(400, "Bad Request: malformed path", env_headers(route.env, snapshot.id)),
            )
        if path.startswith("/_edge/"):
            return self._send(
                responder, policy, await self._edge_endpoint(request, route, snapshot, path)
            )
        upstream = _match(policy.upstreams, path)
        if upstream is not None:
            return await self._forward(
                request, responder, policy, snapshot, upstream, https, forwarded, host
            )
        if request.method not in ("GET", "HEAD"):
            headers = env_headers(route.env, snapshot.id)
            headers["Allow"] = "GET, HEAD"
            return self._send(responder, policy, plain(405, "Method Not Allowed", headers))
        settings = self._content.settings(snapshot)
        if settings.redirects:
            redirect = settings.redirects.get(path)
            if redirect is not None:
                headers = env_headers(route.env, snapshot.id)
                headers["Location"] = redirect[0]
                return self._send(responder, policy, empty(redirect[1], headers))
        # Remembered for the hit path only when nothing but this target decided it.
        remember = not pinned and raw is request.target
        if route.env == "staging" and path == ROBOTS_TXT:
            rep = self._content.staging_robots(snapshot.id)
            if remember:
                key: CacheKey = (snapshot.id, ROBOTS_TXT, Variant.STAGING)
                robots = (route.key, ROBOTS_TXT)
                keys = (key, key, key, key)
                found = Found(snapshot.id, ROBOTS_TXT, keys, False, False, False, robots)
                self._remember(policy, raw, found)
            return await self._respond(request, responder, policy, rep, 200)
        files = snapshot.files
        found_key = resolve(path, files)
        table = settings.file_redirects
        if table is not None:
            # _redirects (edge.snapshots.rules): over an existing file only a forced rule.
            exists = found_key is not None or path + "/index.html" in files
            redirected = table.match(path, exists)
            if redirected is not None:
                return await self._redirected(
                    request, responder, policy, snapshot, redirected, raw, remember
                )
        if found_key is not None:
            entry = files[found_key]
            found = _found(route, snapshot.id, found_key, entry)
            rep = await self._representation(request, snapshot, entry, found)
            if request.method == "GET" and found.html:
                self._views.count_key(found.view)
            if remember:
                self._remember(policy, raw, found)
            return await self._respond(request, responder, policy, rep, 200)
        # -- issue 15: /blog held only as /blog/index.html -> 301 /blog/ (edge.paths) --
        location = directory_redirect(path, raw, files)
        if location is not None:
            headers = env_headers(route.env, snapshot.id)  # staging keeps its noindex
            headers["Location"] = location
            return self._send(responder, policy, empty(301, headers))
        # -- end issue 15 --
        if route.env == "staging" and path.startswith(settings.media_prefix):
            if await self._production_media(request, responder, policy, path):
                return None
        return await self._not_found(request, responder, policy, snapshot)

    async def _redirected(
        self,
        request: Request,
        responder: Responder,
        policy: RoutePolicy,
        snapshot: Snapshot,
        redirected: Redirected,
        raw: str,
        remember: bool,
    ) -> None:
        """Answer by a ``_redirects`` rule: a redirect, or a rewrite (200, 404, 410)."""
        route = policy.route
        query = raw.partition("#")[0].partition("?")[2]
        target = redirected.target
        if not redirected.rewrite:
            headers = env_headers(route.env, snapshot.id)
            headers["Location"] = with_query(target, query)
            return self._send(responder, policy, empty(redirected.rule.status, headers))
        if not target.startswith("/"):
            return await self._rewrite_upstream(request, responder, policy, snapshot, target, query)
        status = redirected.rule.status
        files = snapshot.files
        target_path = request_path(target)
        key = None if target_path is None else resolve(target_path, files)
        if key is None:
            if status == 200:
                return await self._not_found(request, responder, policy, snapshot)
            headers = env_headers(route.env, snapshot.id)
            return self._send(responder, policy, plain(status, _REASONS[status], headers))
        entry = files[key]
        found = _found(route, snapshot.id, key, entry)
        rep = await self._representation(request, snapshot, entry, found)
        if status == 200:
            if request.method == "GET" and found.html:
                self._views.count_key(found.view)
            if remember:
                self._remember(policy, raw, found)  # the rewrite, decided once per snapshot
        return await self._respond(request, responder, policy, rep, status)

    async def _rewrite_upstream(
        self,
        request: Request,
        responder: Responder,
        policy: RoutePolicy,
        snapshot: Snapshot,
        url: str,
        query: str,
    ) -> None:
        """A 200 rule to an absolute URL: proxied only to an upstream of this environment."""
        scheme, _, rest = url.partition("://")
        authority, slash, tail = rest.partition("/")
        origin = f"{scheme.lower()}://{authority.lower()}"
        for upstream in policy.upstreams:
            if upstream.origin.rstrip("/").lower() == origin:
                request.target = with_query(slash + tail if slash else "/", query)
                return await self._forward(
                    request,
                    responder,
                    policy,
                    snapshot,
                    Upstream(prefix="/", origin=upstream.origin.rstrip("/")),
                    self._tls,
                    False,
                    request.header(b"host"),
                )
        headers = env_headers(policy.env, snapshot.id)
        return self._send(
            responder,
            policy,
            plain(502, "Bad Gateway: this rewrite's origin is not an upstream here", headers),
        )

    async def _not_found(
        self, request: Request, responder: Responder, policy: RoutePolicy, snapshot: Snapshot
    ) -> None:
        route = policy.route
        not_found = snapshot.files.get(NOT_FOUND_PAGE)
        if not_found is not None:
            found = _found(route, snapshot.id, NOT_FOUND_PAGE, not_found)
            rep = await self._representation(request, snapshot, not_found, found)
            return await self._respond(request, responder, policy, rep, 404)
        return self._send(
            responder, policy, plain(404, "Not Found", env_headers(route.env, snapshot.id))
        )

    def _remember(self, policy: RoutePolicy, raw: str, found: Found) -> None:
        targets = policy.targets
        if len(targets) >= _TARGETS_KEEP:
            targets.clear()
        targets[raw] = found

    async def _representation(
        self, request: Request, snapshot: Snapshot, entry: ManifestEntry, found: Found
    ) -> Representation:
        coding = 0
        if found.compressible:
            accept = request.fields.get(b"accept-encoding")
            if accept is not None:
                coding = _coding(accept)
        return await self._content.get(snapshot, entry, found.keys[coding])

    async def _production_media(
        self, request: Request, responder: Responder, policy: RoutePolicy, path: str
    ) -> bool:
        """Staging lacks a media file: serve production's, with staging's headers.

        Only ever in this direction: production never reads staging.
        """
        route = policy.route
        production = self._live.get(Route(route.site, "production").key)
        entry = None if production is None else production.files.get(path)
        if production is None or entry is None:
            return False
        found = _found(route, production.id, path, entry)
        rep = await self._representation(request, production, entry, found)
        await self._respond(request, responder, policy, rep, 200)
        return True

    async def _forward(
        self,
        request: Request,
        responder: Responder,
        policy: RoutePolicy,
        snapshot: Snapshot,
        upstream: Upstream,
        https: bool,
        forwarded: bool,
        host: str | None,
    ) -> None:
        session = self._services.session
        assert session is not None, "upstreams need the outbound session"
        observer = self._services.observer
        route = policy.route

        def failed(kind: str, detail: str) -> None:
            if observer is not None:
                observer.upstream_error(
                    route, upstream.origin, kind, detail, request.method, request.path
                )

        headers = env_headers(route.env, snapshot.id)
        if policy.hsts is not None:
            headers["Strict-Transport-Security"] = policy.hsts
        await forward(
            request,
            responder,
            upstream,
            session,
            env_headers=headers,
            tls=https,
            trusted=forwarded,
            host=host,
            on_error=failed,
        )

    async def _edge_endpoint(
        self, request: Request, route: Route, snapshot: Snapshot, path: str
    ) -> Answer:
        headers = env_headers(route.env, snapshot.id)
        if path.startswith(FORMS_PREFIX) and len(path) > len(FORMS_PREFIX):
            if request.method != "POST":
                headers["Allow"] = "POST"
                return plain(405, "Method Not Allowed", headers)
            return await submit(
                request,
                route,
                snapshot.id,
                self._content.settings(snapshot),
                path[len(FORMS_PREFIX) :],
                store=self._services.store,
                webhooks=self._services.webhooks,
                guard=self._services.forms_guard,
            )
        return plain(404, "Not Found", headers)

    # -- content answers ------------------------------------------------------------

    async def _respond(
        self,
        request: Request,
        responder: Responder,
        policy: RoutePolicy,
        rep: Representation,
        status: int,
    ) -> None:
        """A representation as the answer: for a 200, a 304 or a range if asked; a large
        file from its blob file (HEAD and 304 read nothing, a range only its bytes, the
        rest in bounded chunks at the client's pace)."""
        span = None
        if status == 200:
            wire = rep.wire(policy.hsts)
            snapshot = rep.headers.get("X-Edge-Snapshot")
            if_none_match = request.header(b"if-none-match")
            if if_none_match is not None and etag_matches(if_none_match, rep.etag):
                return responder.prebuilt(304, wire.not_modified, b"", snapshot)
            span = _requested_range(request, rep)
            if span == UNSATISFIABLE:
                short = dict(rep.not_modified_headers)
                short["Content-Range"] = f"bytes */{rep.size}"
                return self._send(responder, policy, Answer(416, short))
            if span is None and (rep.source is None or request.head):
                return responder.prebuilt(200, wire.ok, rep.body, snapshot)
        if span is not None:
            first, last = span
            length, status = last - first + 1, 206
            content_range = ("Content-Range", f"bytes {first}-{last}/{rep.size}")
        else:
            first, length = 0, rep.size
        if rep.source is None:
            headers, body = dict(rep.headers), rep.body
            if span is not None:
                headers[content_range[0]] = content_range[1]
                body = body[first : first + length]
            return self._send(responder, policy, Answer(status, headers, body))
        streamed = list(rep.headers.items())
        if policy.hsts is not None:
            streamed.append(("Strict-Transport-Security", policy.hsts))
        if span is not None:
            streamed.append(content_range)
        if request.head:
            responder.start(status, [*streamed, ("Content-Length", str(length))])
            return await responder.end()
        await send_file(responder, status, streamed, rep.source, first=first, length=length)


def _ignore(request: Request) -> None:
    pass


def _ignore_count(route: Route, status: int, elapsed: float) -> None:
    pass


def _send(responder: Responder, answer: Answer) -> None:
    responder.answer(answer.status, answer.headers, answer.body)


def _match(upstreams: tuple[Upstream, ...], path: str) -> Upstream | None:
    for upstream in upstreams:
        if path.startswith(upstream.prefix):
            return upstream
    return None


def _found(route: Route, snapshot_id: str, path: str, entry: ManifestEntry) -> Found:
    env = route.env
    content_type = entry.content_type
    return Found(
        snapshot_id,
        path,
        tuple((snapshot_id, path, variant_for(env, coding)) for coding in range(len(CODINGS))),
        compressible(content_type),
        rangeable(content_type),
        html(content_type),
        (route.key, path),
    )


def _requested_range(request: Request, rep: Representation) -> tuple[int, int] | None:
    """The byte range a request asks of ``rep`` (:data:`UNSATISFIABLE`: 416), or ``None``
    for the whole: no ``Range``, an ``If-Range`` for another version, or a type edge
    does not serve in ranges (media and large files only)."""
    if rep.source is None and not rep.rangeable:
        return None
    range_header = request.header(b"range")
    if range_header is None:
        return None
    if_range = request.header(b"if-range")
    if if_range is not None and if_range.strip() != rep.etag:
        return None
    return parse_range(range_header, rep.size)
