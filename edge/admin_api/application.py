"""The admin aiohttp application, assembled in one place.

:func:`admin_application` builds the handlers (:class:`~edge.admin_api.app.AdminApi`),
registers one route per operation of the table (:mod:`edge.admin_api.operations`)
under the gate that authorizes it (:mod:`edge.admin_api.gate`), adds the
dashboard's static files, and states the middleware order in :data:`middlewares`'
list, outermost first. It refuses to build an application with an operation
that has no handler, or a route that is neither an operation nor the dashboard.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from edge.admin_api.app import DECODED_FACTOR, AdminApi, ClusterView, PreviewUrl
from edge.admin_api.auth import TokenBook
from edge.admin_api.budget import WorkBudget
from edge.admin_api.gate import Gate
from edge.admin_api.operations import OPERATIONS, Operation
from edge.admin_api.responses import error_middleware
from edge.admin_api.schemas import SiteDirectory
from edge.admin_api.ui import UI_PREFIX, add_ui_routes
from edge.cache import ByteLRU
from edge.config import ServerConfig, TokenConfig
from edge.observability.admin import Scrape, refusal_logger
from edge.observability.observer import Observer
from edge.snapshots.control import Control
from edge.snapshots.store import Store
from edge.visitor.preview import PreviewSigner
from edge.wire.guard import wire_guard

# Operations that ``[server] metrics_public = true`` opens to anyone.
_METRICS = "metrics"


def admin_application(
    server: ServerConfig,
    tokens: Sequence[TokenConfig],
    sites: frozenset[str],
    *,
    control: Control,
    store: Store,
    observer: Observer,
    cache: ByteLRU[Any, Any],
    signer: PreviewSigner | None = None,
    preview_url: PreviewUrl | None = None,
    directory: Callable[[], SiteDirectory] | None = None,
    cluster: ClusterView | None = None,
    before_scrape: Callable[[], Awaitable[None]] | None = None,
) -> web.Application:
    """The admin listener's application: every operation's route, its gate, the dashboard."""
    book = TokenBook(tokens)
    api = AdminApi(
        control=control,
        store=store,
        max_blob_bytes=server.max_blob_bytes,
        signer=signer,
        preview_url=preview_url,
        directory=directory,
        cluster=cluster,
        # Large bodies, manifests and diffs: two at a time, within the bytes two
        # of the largest bodies allowed take decoded.
        budget=WorkBudget(2 * server.max_request_bytes * DECODED_FACTOR),
        scrape=Scrape(observer=observer, store=store, cache=cache, before_scrape=before_scrape),
    )
    gate = Gate(book, sites, public=[_METRICS] if server.metrics_public else [])
    middlewares: list[Middleware] = [
        error_middleware,  # every failure below leaves as the JSON error body
        refusal_logger(observer, book),  # logs each 401 and 403, then lets it through
        wire_guard,  # unsound framing, content-coded bodies, clients gone mid-body
        gate.middleware(),  # the operation's token, site and role, before its handler
    ]
    app = web.Application(middlewares=middlewares, client_max_size=server.max_request_bytes)
    for op in OPERATIONS:  # in the table's order
        gate.add(app.router, op, _handler(api, op))
    add_ui_routes(app)  # the operator dashboard, /ui/ (static files, no data, no token)
    for route in app.router.routes():
        template = route.resource.canonical if route.resource is not None else ""
        if not gate.guards(route) and not template.startswith(UI_PREFIX.rstrip("/")):
            raise RuntimeError(f"{route.method} {template} is not an operation of the table")
    return app


def _handler(api: AdminApi, op: Operation) -> Handler:
    """The AdminApi method named after ``op`` (``createSnapshot``: ``create_snapshot``)."""
    handler: Handler | None = getattr(api, op.handler, None)
    if handler is None:
        raise RuntimeError(f"AdminApi has no {op.handler}() for {op.method} {op.path}")
    return handler
