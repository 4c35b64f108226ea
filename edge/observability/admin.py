"""The admin listener's part: ``GET /metrics`` and the log of refused calls.

``/metrics`` needs a bearer token that may see every site (an admin, or any
role with ``sites = ["*"]``: the figures are labelled by site, so a token scoped
to some sites would read the others' traffic; it gets 403), unless
``[server] metrics_public = true`` opens it to anyone who can reach the admin
listener. Prometheus sends the token with ``authorization: {credentials: ...}``.
Every worker listens on the admin port, so whichever one answers
reads the metrics of all of them (:meth:`Metrics.render`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from edge.admin_api.auth import TokenBook
from edge.cache import ByteLRU
from edge.errors import EdgeError, Forbidden, Unauthorized
from edge.observability.metrics import CONTENT_TYPE
from edge.observability.observer import Observer
from edge.snapshots.store import Store

METRICS_PATH = "/metrics"


def refusal_logger(observer: Observer, tokens: TokenBook) -> Middleware:
    """A middleware that records every 401 and 403 (then lets the error middleware answer).

    The line names the token that was refused by its configured *name* when it
    is a known token lacking a role or site; the token itself is never written.
    """

    @web.middleware
    async def log_refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except (Unauthorized, Forbidden) as exc:
            _record(observer, tokens, request, exc)
            raise

    return log_refusals


def _record(observer: Observer, tokens: TokenBook, request: web.Request, exc: EdgeError) -> None:
    name = None
    if isinstance(exc, Forbidden):
        try:
            name = tokens.authenticate(request.headers.get(hdrs.AUTHORIZATION)).name
        except Unauthorized:
            pass
    resource = request.match_info.route.resource
    observer.admin_refused(
        status=exc.status,
        method=request.method,
        route=resource.canonical if resource is not None else request.path,
        site=request.match_info.get("site"),
        reason=exc.message,
        token=name,
        remote=request.remote,
    )


class MetricsEndpoint:
    """``GET /metrics``: the Prometheus text exposition of the whole edge."""

    def __init__(
        self,
        observer: Observer,
        tokens: TokenBook,
        store: Store,
        cache: ByteLRU[Any, Any],
        *,
        public: bool,
    ) -> None:
        self._observer = observer
        self._tokens = tokens
        self._store = store
        self._cache = cache
        self._public = public

    async def handle(self, request: web.Request) -> web.Response:
        if not self._public:
            principal = self._tokens.authenticate(request.headers.get(hdrs.AUTHORIZATION))
            if not principal.sees_every_site:
                raise Forbidden(
                    "metrics show every site's figures: use a token for all sites"
                    ' (sites = ["*"] or the admin role), or set metrics_public'
                )
        self._observer.sync(self._cache)  # this worker's figures, fresh
        outbox = await self._store.outbox_depth()
        # Reading every worker's files is disk work: off the event loop.
        body = await asyncio.to_thread(self._observer.metrics.render, outbox)
        return web.Response(body=body, headers={hdrs.CONTENT_TYPE: CONTENT_TYPE})


def install(
    app: web.Application,
    observer: Observer,
    tokens: TokenBook,
    store: Store,
    cache: ByteLRU[Any, Any],
    *,
    metrics_public: bool,
) -> None:
    """Add ``/metrics`` and the refusal log to the admin application (before it starts)."""
    app.middlewares.append(refusal_logger(observer, tokens))
    endpoint = MetricsEndpoint(observer, tokens, store, cache, public=metrics_public)
    app.router.add_get(METRICS_PATH, endpoint.handle)
