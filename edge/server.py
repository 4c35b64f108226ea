"""``edge serve``: the visitor and admin listeners around one runtime.

Lifecycle: the runtime (store, live pointers, cache, timers) is opened first and
closed last through one ``AsyncExitStack``, so a failure at any point of start-up
tears down exactly what was started. The visitor side is aiohttp's low-level
server (no router or middleware between the socket and the handler: every
request goes to :class:`VisitorHandler`); the admin side is a regular application
whose runtime is reached through a typed ``AppKey``.

With several workers (:mod:`edge.supervisor`) every worker runs all of this on
the same ports (``SO_REUSEPORT``); only worker 0 runs the schedule timer.
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
from edge.snapshots.generation import SharedCounters
from edge.snapshots.live import LivePointers, SnapshotLoader
from edge.snapshots.scheduler import Scheduler
from edge.snapshots.sqlite import open_sqlite_store
from edge.snapshots.store import Store
from edge.visitor.handler import VisitorHandler
from edge.visitor.representation import Representation

log = logging.getLogger("edge")

# How often a worker looks at the shared counters between requests, so that it
# catches up with another worker's publish (and re-arms the schedule timer)
# before a visitor has to wait for it.
WATCH_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything one edge process serves from."""

    settings: Settings
    store: Store
    counters: SharedCounters
    live: LivePointers
    loader: SnapshotLoader
    cache: ByteLRU[CacheKey, Representation]
    visitor: VisitorHandler
    control: Control
    scheduler: Scheduler | None


RUNTIME = web.AppKey("runtime", Runtime)


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, worker: int = 0, workers: int = 1
) -> AsyncIterator[Runtime]:
    """Open the store and load every pointer's snapshot before serving anything.

    ``cache_max_bytes`` is the budget of the whole edge: each of ``workers``
    processes gets its share.
    """
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(open_sqlite_store(settings.data_dir))
        counters = SharedCounters.for_data_dir(settings.data_dir)
        stack.callback(counters.close)
        loader = SnapshotLoader(store)
        live = LivePointers(store, loader, counters)
        cache: ByteLRU[CacheKey, Representation] = ByteLRU(
            max(settings.config.server.cache_max_bytes // workers, 1)
        )
        visitor = VisitorHandler(settings.routes, live, store, cache)
        live.prepare = visitor.warm
        await live.catch_up()
        control = Control(store, live, loader)
        scheduler = Scheduler(store, control) if worker == 0 else None

        def schedules_changed() -> None:
            counters.bump_schedules()
            if scheduler is not None:
                scheduler.poke()

        control.schedules_changed = schedules_changed
        yield Runtime(
            settings=settings,
            store=store,
            counters=counters,
            live=live,
            loader=loader,
            cache=cache,
            visitor=visitor,
            control=control,
            scheduler=scheduler,
        )


async def watch(runtime: Runtime) -> None:
    """Catch up with other workers' moves and schedule changes between requests."""
    seen_schedules = runtime.counters.schedules()
    while True:
        await asyncio.sleep(WATCH_SECONDS)
        try:
            if not runtime.live.is_current():
                await runtime.live.catch_up()
        except Exception:
            log.exception("catching up with the store failed; retrying")
        schedules = runtime.counters.schedules()
        if schedules != seen_schedules:
            seen_schedules = schedules
            if runtime.scheduler is not None:
                runtime.scheduler.poke()


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
    if runtime.settings.config.server.access_log:
        return web.Server(runtime.visitor)
    return web.Server(runtime.visitor, access_log=None)


def _background(stack: AsyncExitStack, coro: Awaitable[None], name: str) -> None:
    task = asyncio.ensure_future(coro)
    task.set_name(name)
    stack.push_async_callback(_cancel, task)


async def _cancel(task: asyncio.Future[None]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


@asynccontextmanager
async def running(
    settings: Settings, *, worker: int = 0, workers: int = 1
) -> AsyncIterator[Runtime]:
    """Both listeners up, serving ``settings``; everything torn down on exit."""
    reuse_port = workers > 1
    async with AsyncExitStack() as stack:
        runtime = await stack.enter_async_context(
            open_runtime(settings, worker=worker, workers=workers)
        )

        visitor = web.ServerRunner(build_visitor_server(runtime), handle_signals=False)
        await visitor.setup()
        stack.push_async_callback(visitor.cleanup)
        await web.TCPSite(
            visitor,
            settings.listen.host,
            settings.listen.port,
            reuse_address=True,
            reuse_port=reuse_port,
        ).start()

        admin = web.AppRunner(build_admin_app(runtime), handle_signals=False)
        await admin.setup()
        stack.push_async_callback(admin.cleanup)
        await web.TCPSite(
            admin,
            settings.admin_listen.host,
            settings.admin_listen.port,
            reuse_address=True,
            reuse_port=reuse_port,
        ).start()
        log.info(
            "worker %d/%d: visitors on http://%s, admin API on http://%s",
            worker + 1,
            workers,
            settings.listen,
            settings.admin_listen,
        )
        _background(stack, watch(runtime), "edge-watch")
        if runtime.scheduler is not None:
            # Overdue schedules (due while edge was down) fire as soon as this runs.
            _background(stack, runtime.scheduler.run(), "edge-scheduler")
        yield runtime


async def serve(
    settings: Settings,
    *,
    worker: int = 0,
    workers: int = 1,
    ready: Callable[[Runtime], Awaitable[None]] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM; ``ready`` runs once both listeners are up."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings, worker=worker, workers=workers) as runtime:
        if ready is not None:
            await ready(runtime)
        await stop.wait()
        log.info("worker %d: shutting down", worker + 1)
