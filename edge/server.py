"""``edge serve``: the visitor and admin listeners around one runtime.

Lifecycle: the runtime (store, live pointers, cache) is opened first and closed
last through one ``AsyncExitStack``, so a failure at any point of start-up tears
down exactly what was started. The visitor side is aiohttp's low-level server (no
router or middleware between the socket and the handler: every request goes to
:class:`VisitorHandler`); the admin side is a regular application whose runtime
is reached through a typed ``AppKey``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from edge.admin_api.app import AdminApi, create_admin_app
from edge.admin_api.auth import TokenBook
from edge.cache import ByteLRU, CacheKey
from edge.config import Settings
from edge.snapshots.control import Control
from edge.snapshots.live import LivePointers, SnapshotLoader
from edge.snapshots.scheduler import Scheduler
from edge.snapshots.sqlite import open_sqlite_store
from edge.snapshots.store import Store
from edge.visitor.handler import VisitorHandler
from edge.visitor.representation import Representation

log = logging.getLogger("edge")


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything one edge process serves from."""

    settings: Settings
    store: Store
    live: LivePointers
    loader: SnapshotLoader
    cache: ByteLRU[CacheKey, Representation]
    control: Control
    scheduler: Scheduler


RUNTIME = web.AppKey("runtime", Runtime)


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Open the store and load every pointer's snapshot before serving anything."""
    async with open_sqlite_store(settings.data_dir) as store:
        live = LivePointers()
        loader = SnapshotLoader(store)
        await live.sync(await store.all_pointers(), loader)
        cache: ByteLRU[CacheKey, Representation] = ByteLRU(settings.config.server.cache_max_bytes)
        control = Control(store, live, loader)
        scheduler = Scheduler(store, control)
        control.schedules_changed = scheduler.poke
        yield Runtime(
            settings=settings,
            store=store,
            live=live,
            loader=loader,
            cache=cache,
            control=control,
            scheduler=scheduler,
        )


def build_admin_app(runtime: Runtime) -> web.Application:
    server = runtime.settings.config.server
    api = AdminApi(
        runtime.control,
        runtime.store,
        TokenBook(runtime.settings.config.tokens),
        runtime.settings.site_ids,
        max_blob_bytes=server.max_blob_bytes,
    )
    app = create_admin_app(api, max_request_bytes=server.max_request_bytes)
    app[RUNTIME] = runtime
    return app


def build_visitor_server(runtime: Runtime) -> web.Server:
    handler = VisitorHandler(runtime.settings.routes, runtime.live, runtime.store, runtime.cache)
    if runtime.settings.config.server.access_log:
        return web.Server(handler)
    return web.Server(handler, access_log=None)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Runtime]:
    """Both listeners up, serving ``settings``; everything torn down on exit."""
    async with AsyncExitStack() as stack:
        runtime = await stack.enter_async_context(open_runtime(settings))

        visitor = web.ServerRunner(build_visitor_server(runtime), handle_signals=False)
        await visitor.setup()
        stack.push_async_callback(visitor.cleanup)
        await web.TCPSite(
            visitor, settings.listen.host, settings.listen.port, reuse_address=True
        ).start()

        admin = web.AppRunner(build_admin_app(runtime), handle_signals=False)
        await admin.setup()
        stack.push_async_callback(admin.cleanup)
        await web.TCPSite(
            admin, settings.admin_listen.host, settings.admin_listen.port, reuse_address=True
        ).start()
        log.info(
            "visitors on http://%s, admin API on http://%s", settings.listen, settings.admin_listen
        )
        # Overdue schedules (due while the process was down) fire as soon as this runs.
        timer = asyncio.create_task(runtime.scheduler.run(), name="edge-scheduler")
        stack.push_async_callback(_cancel, timer)
        yield runtime


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


async def serve(
    settings: Settings, *, ready: Callable[[Runtime], Awaitable[None]] | None = None
) -> None:
    """Serve until SIGINT or SIGTERM; ``ready`` runs once both listeners are up."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings) as runtime:
        if ready is not None:
            await ready(runtime)
        await stop.wait()
        log.info("shutting down")
