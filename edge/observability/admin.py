"""The admin listener's part: what ``GET /metrics`` answers and the log of refused calls.

``/metrics`` needs a bearer token that may see every site (an admin, or any
role with ``sites = ["*"]``: the figures are labelled by site, so a token scoped
to some sites would read the others' traffic; it gets 403), unless
``[server] metrics_public = true`` opens it to anyone who can reach the admin
listener (both enforced by the admin API's gate, from its table of operations).
Prometheus sends the token with ``authorization: {credentials: ...}``.
Every worker listens on the admin port, so whichever one answers
reads the metrics of all of them (:meth:`Metrics.render`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from edge.admin_api.auth import TokenBook
from edge.cache import ByteLRU
from edge.errors import EdgeError, Forbidden, Unauthorized
from edge.observability.observer import Observer
from edge.snapshots.store import Store


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Scrape:
    """The Prometheus text exposition of the whole edge, as ``GET /metrics`` answers it."""

    observer: Observer
    store: Store
    cache: ByteLRU[Any, Any]
    # The admin process has the visitor workers publish their figures first.
    before_scrape: Callable[[], Awaitable[None]] | None = None

    async def __call__(self) -> bytes:
        self.observer.sync(self.cache)  # this worker's figures, fresh
        if self.before_scrape is not None:
            await self.before_scrape()
        outbox = await self.store.outbox_depth()
        # Reading every worker's files is disk work: off the event loop.
        return await asyncio.to_thread(self.observer.metrics.render, outbox)
