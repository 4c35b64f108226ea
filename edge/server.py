"""``edge serve``: the visitor and admin listeners around one runtime.

Lifecycle: the runtime (store, live pointers, cache, timers) is opened first and
closed last through one ``AsyncExitStack``, so a failure at any point of start-up
tears down exactly what was started. On SIGTERM/SIGINT the first thing torn down
is the listeners: :func:`edge.lifecycle.drain` closes them all at once and lets
requests in flight finish within ``shutdown_grace``. The visitor side is edge's own
wire (:mod:`edge.wire.http1`: an ``asyncio.Protocol`` on httptools' parser, nothing
between the socket and :class:`VisitorHandler`); the admin side is a regular aiohttp
application whose runtime is reached through a typed ``AppKey``.

Roles: ``edge serve`` runs under :mod:`edge.supervisor`, as N visitor workers
(``role="visitors"``: the visitor listeners on the same ports, ``SO_REUSEPORT``,
and nothing else on their event loops) and one admin process (``role="admin"``:
the admin listener, the schedule timer, webhook delivery, other nodes' moves).
``role="all"`` runs both sides in one process (``edge demo``, in-process tests).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Literal

from aiohttp import web

from edge.admin_api.application import admin_application
from edge.admin_api.responses import wire_refusal
from edge.admin_api.sites import preview_url, site_directory
from edge.cache import ByteLRU, CacheKey
from edge.config import ListenAddress, Settings, load_config
from edge.errors import ConfigError
from edge.integrations.webhooks import Deliverer, Webhooks
from edge.lifecycle import AiohttpListener, Listener, drain
from edge.netguard import check_url, guarded_session, parse_networks
from edge.observability.observer import Observer, open_observer
from edge.snapshots.backends import open_store, preview_key
from edge.snapshots.collector import collector_for
from edge.snapshots.control import Control
from edge.snapshots.fanout import Fanout, cluster_view, propagation_wait
from edge.snapshots.fanout import attach as attach_fanout
from edge.snapshots.generation import SharedCounters
from edge.snapshots.live import LivePointers, SnapshotLoader, SwapHooks
from edge.snapshots.readiness import Responder, RollCall
from edge.snapshots.reserve import DiskReserve
from edge.snapshots.scheduler import Scheduler
from edge.snapshots.store import Store
from edge.timer import PokeableLoop
from edge.tls import Certificates, SniSelector, load_certificates
from edge.visitor.formguard import FormGuard
from edge.visitor.handler import Services, VisitorHandler
from edge.visitor.hosts import host_policy
from edge.visitor.preview import PreviewSigner
from edge.visitor.repcache import RepresentationCache, snapshot_of
from edge.visitor.representation import Representation
from edge.visitor.upstream import UpstreamTable
from edge.wire.http1 import Http1Server
from edge.wire.parser import check_http_parser
from edge.wire.protocol import GuardedAppRunner, GuardedSite, WireLimits

log = logging.getLogger("edge")

# How often a worker looks at the shared counters between requests, so that it
# catches up with another worker's publish (and re-arms the schedule timer)
# before a visitor has to wait for it.
WATCH_SECONDS = 0.02
# On the way out, how long a background step in progress may take to finish.
STEP_FINISH_SECONDS = 3.0


@dataclass(slots=True)
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
    services: Services
    deliverer: Deliverer | None
    observer: Observer
    # Applies a re-read configuration to the visitor handlers (plain, then HTTPS).
    reloader: Reloader
    sni: SniSelector | None = None  # the HTTPS listener's certificates, by SNI
    fanout: Fanout | None = None  # other nodes' pointer moves (PostgreSQL store)
    roll_call: RollCall | None = None  # the admin process asks the workers (readiness)


RUNTIME = web.AppKey("runtime", Runtime)

Role = Literal["all", "visitors", "admin"]
# The admin process's share of the cache: it serves no visitor.
ADMIN_CACHE_BYTES = 1


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    worker: int = 0,
    workers: int = 1,
    role: Role = "all",
    certificates: Certificates | None = None,
) -> AsyncIterator[Runtime]:
    """Open the store and load every pointer's snapshot before serving anything.

    ``cache_max_bytes`` is the budget of the whole edge: each of ``workers``
    visitor processes gets its share. Every object is built with what it talks
    to, so it is built after them: the order below is the dependency order.
    """
    serves_visitors = role != "admin"
    control_plane = role == "admin" or (role == "all" and worker == 0)
    server = settings.config.server
    async with AsyncExitStack() as stack:
        observer = stack.enter_context(open_observer(settings, serves_visitors=serves_visitors))
        store = await stack.enter_async_context(open_store(settings))
        counters = SharedCounters.for_data_dir(settings.data_dir)
        stack.callback(counters.close)
        cache: ByteLRU[CacheKey, Representation] = ByteLRU(
            max(server.cache_max_bytes // workers, 1) if serves_visitors else ADMIN_CACHE_BYTES,
            group=snapshot_of,
        )
        # What visitors are answered from; the live pointers warm it before a swap.
        content = RepresentationCache(cache, store, stream_threshold=server.stream_threshold_bytes)
        loader = SnapshotLoader(store, on_loaded=lambda: observer.snapshot_loaded(worker))
        # The admin process has every visitor worker hold a move's snapshots before
        # it is visible (edge.snapshots.readiness); a worker answers (below).
        roll_call = None
        if role == "admin":
            roll_call = RollCall(settings.data_dir, worker, asks=range(workers))
            roll_call.open()
            stack.push_async_callback(roll_call.close)
        live = LivePointers(
            store,
            loader,
            counters,
            SwapHooks(
                prepare=content.warm if serves_visitors else None,
                ask_others=roll_call.ask if roll_call is not None else None,
                on_late_loads=lambda count: observer.snapshot_loaded_late(worker, count),
            ),
        )
        session = guarded_session(
            server.allow_private_targets,
            connect_timeout=server.upstream_connect_timeout,
            read_timeout=server.upstream_read_timeout,
        )
        stack.push_async_callback(session.close)
        webhooks = Webhooks(settings)
        reserve = DiskReserve(store.free_bytes, server.disk_reserve_bytes)
        services = Services(
            live=live,
            loader=loader,
            store=store,
            cache=cache,
            webhooks=webhooks,
            upstreams=UpstreamTable.build(settings) or None,  # none: skipped per request
            session=session,
            signer=PreviewSigner(await preview_key(settings, store)),
            observer=observer,
            stream_threshold=server.stream_threshold_bytes,
            forms_guard=FormGuard.from_config(
                server, reserve=reserve, on_refused=observer.form_refused
            ),
            reserve=reserve,
            representations=content,
        )
        # Registered after the store: on the way out, counts are written before it closes
        # (what the store refuses then is said in the log with the count lost).
        stack.push_async_callback(services.views.flush_last, store)
        visitor = VisitorHandler(host_policy(settings), services)
        handlers = [visitor] if serves_visitors else []
        sni = None
        if serves_visitors and certificates is not None and settings.listen_tls is not None:
            sni = SniSelector(certificates)
            handlers.append(visitor.over_tls())
        await live.catch_up()
        if role == "visitors":
            # Every visitor worker holds a move's snapshots before it is visible: the
            # first visitor after a publish, in any worker, waits for no decode.
            responder = Responder(settings.data_dir, worker, preload=live.preload,
                                  flush=lambda: observer.sync(cache))  # fmt: skip
            responder.open()
            stack.push_async_callback(responder.close)
        # Control tells the schedule timer of new schedules, and the timer fires them
        # through Control: the event that wakes the timer is the one thing built first.
        schedules_wake = asyncio.Event()

        def schedules_changed() -> None:
            counters.bump_schedules()  # other processes re-arm theirs (watch)
            schedules_wake.set()

        control = Control(
            store,
            live,
            loader,
            max_paths=server.max_snapshot_paths,
            retention=settings.config.retention,
            events=webhooks.events,
            on_moved=observer.pointers_moved,
            schedules_changed=schedules_changed,
            wait_all=propagation_wait(settings, store),
        )
        scheduler = deliverer = fanout = None
        if control_plane:
            scheduler = Scheduler(
                store, control, wake=schedules_wake, on_fired=observer.schedule_fired
            )
            allow = parse_networks(server.allow_private_targets)
            deliverer = Deliverer(store, session, check_url=lambda url: check_url(url, allow),
                                  on_attempt=observer.webhook_attempt)  # fmt: skip
            fanout = attach_fanout(settings, store, live, schedules_changed)
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
            services=services,
            deliverer=deliverer,
            observer=observer,
            reloader=Reloader(settings, handlers, sni),
            sni=sni,
            fanout=fanout,
            roll_call=roll_call,
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
    settings = runtime.settings
    app = admin_application(
        settings.config.server,
        settings.config.tokens,
        settings.site_ids,
        control=runtime.control,
        store=runtime.store,
        observer=runtime.observer,
        cache=runtime.cache,
        signer=runtime.services.signer,
        preview_url=partial(preview_url, settings),
        # The hosts of the configuration in force: a reload may have changed them.
        directory=lambda: site_directory(
            runtime.reloader.settings if runtime.reloader else settings
        ),
        cluster=cluster_view(settings, runtime.store),
        before_scrape=runtime.roll_call.sync_others if runtime.roll_call else None,
    )
    app[RUNTIME] = runtime
    return app


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


def _background_loop(stack: AsyncExitStack, loop: PokeableLoop, name: str) -> None:
    """Like :func:`_background`, but a step in progress may finish on the way out."""
    task = asyncio.create_task(loop.run(), name=name)
    stack.push_async_callback(_finish, loop, task)


async def _finish(loop: PokeableLoop, task: asyncio.Task[None]) -> None:
    """Stop ``loop`` between steps; cancel it if its step outlasts :data:`STEP_FINISH_SECONDS`.

    A webhook POST cut off after the receiver answered would be sent again (its
    lease runs out first) and a cut-off scheduled swap would be retried at the
    next start; letting the step end records the outcome now.
    """
    loop.stop()
    try:
        await asyncio.wait_for(asyncio.shield(task), STEP_FINISH_SECONDS)
    except TimeoutError:
        log.warning("%s still busy after %.0fs on the way out; cutting it", task.get_name(),
                    STEP_FINISH_SECONDS)  # fmt: skip
        await _cancel(task)


class Reloader:
    """Applies a re-read configuration: host tables, HTTPS policy, passwords, certificates.

    Everything new is built and checked first; a bad file, or one that changes
    what only a restart can (listeners, sites, tokens, integrations), is refused
    whole and the old configuration keeps serving.
    """

    def __init__(
        self, settings: Settings, handlers: Sequence[VisitorHandler], sni: SniSelector | None
    ) -> None:
        self._settings = settings
        self.handlers = tuple(handlers)  # the plain listener's, then the HTTPS one's
        self._sni = sni

    @property
    def settings(self) -> Settings:
        """The configuration in force (the last one reloaded)."""
        return self._settings

    def reload(self) -> bool:
        source = self._settings.source
        if source is None:
            log.warning("reload: no configuration file to re-read")
            return False
        try:
            settings = load_config(source)
            certificates = load_certificates(settings)
            policy = host_policy(settings)
            self._check_reloadable(settings, certificates)
        except ConfigError as exc:
            log.error("reload refused, still serving the previous configuration: %s", exc)
            return False
        for handler in self.handlers:
            handler.policy = policy
        if self._sni is not None and certificates is not None:
            self._sni.replace(certificates)
        self._settings = settings
        log.info("reloaded %s", source)
        return True

    def _check_reloadable(self, new: Settings, certificates: Certificates | None) -> None:
        """Refuse what a running edge cannot apply: it needs a restart."""
        old = self._settings
        if (new.listen, new.admin_listen, new.listen_tls) != (
            old.listen,
            old.admin_listen,
            old.listen_tls,
        ) or (certificates is None) != (self._sni is None):
            raise ConfigError("listeners changed: restart edge to apply this configuration")
        if WireLimits.from_config(new.config.server) != WireLimits.from_config(old.config.server):
            raise ConfigError("connection limits or timeouts changed: restart edge to apply them")
        if new.site_ids != old.site_ids or new.config.tokens != old.config.tokens:
            raise ConfigError("sites or tokens changed: restart edge to apply them")
        if new.config.store != old.config.store:
            raise ConfigError("[store] changed: restart edge to apply it")
        for a, b in zip(new.config.sites, old.config.sites, strict=False):
            for env in ("staging", "production"):
                ea, eb = getattr(a, env), getattr(b, env)
                if (ea.webhooks, ea.upstreams) != (eb.webhooks, eb.upstreams):
                    raise ConfigError(
                        f"webhooks or upstreams of {a.id} changed: restart edge to apply them"
                    )


async def _listen_admin(
    stack: AsyncExitStack,
    app: web.Application,
    address: ListenAddress,
    *,
    reuse_port: bool,
    limits: WireLimits,
) -> Listener:
    # aiohttp with edge's deadlines and limits (edge.wire.protocol); even what the
    # parser refuses gets the API's JSON error.
    runner = GuardedAppRunner(app, limits=limits, refuse=wire_refusal, handle_signals=False)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = GuardedSite(
        runner,
        address.host,
        address.port,
        limits=limits,
        reuse_address=True,
        reuse_port=reuse_port,
    )
    await site.start()
    return AiohttpListener(runner)


async def _listen_visitors(
    stack: AsyncExitStack,
    handler: VisitorHandler,
    address: ListenAddress,
    *,
    reuse_port: bool,
    limits: WireLimits,
    ssl_context: ssl.SSLContext | None = None,
) -> Listener:
    # Edge's own wire (edge.wire.http1): cache hits are written from ready-made bytes.
    server = Http1Server(handler, limits, tls=ssl_context is not None)
    await server.listen(address.host, address.port, reuse_port=reuse_port, ssl_context=ssl_context)
    stack.push_async_callback(server.close)
    return server


@asynccontextmanager
async def running(
    settings: Settings, *, worker: int = 0, workers: int = 1, role: Role = "all"
) -> AsyncIterator[Runtime]:
    """This role's listeners up, serving ``settings``; everything torn down on exit."""
    reuse_port = workers > 1
    check_http_parser(settings.config.server.allow_python_http_parser)
    limits = WireLimits.from_config(settings.config.server)
    certificates = load_certificates(settings)  # refuse bad certificates before binding
    async with AsyncExitStack() as stack:
        runtime = await stack.enter_async_context(
            open_runtime(
                settings, worker=worker, workers=workers, role=role, certificates=certificates
            )
        )
        observer = runtime.observer
        observer.sync(runtime.cache)  # set before any scrape can reach this worker
        listeners: list[Listener] = []
        sni = runtime.sni
        if role != "admin":
            handlers = runtime.reloader.handlers
            visitors = await _listen_visitors(
                stack, handlers[0], settings.listen, reuse_port=reuse_port, limits=limits
            )
            listeners.append(visitors)
            if sni is not None and settings.listen_tls is not None:
                https = await _listen_visitors(
                    stack,
                    handlers[1],
                    settings.listen_tls,
                    reuse_port=reuse_port,
                    limits=limits,
                    ssl_context=sni.context,
                )
                listeners.append(https)
            log.info(
                "worker %d/%d: visitors on http://%s%s (event loop: %s)",
                worker + 1,
                workers,
                settings.listen,
                f" and https://{settings.listen_tls}" if sni is not None else "",
                type(asyncio.get_running_loop()).__module__.partition(".")[0],
            )
        if role != "visitors":
            # One admin process: the admin port is not shared (no SO_REUSEPORT).
            admin = await _listen_admin(
                stack, build_admin_app(runtime), settings.admin_listen, reuse_port=False,
                limits=limits,
            )  # fmt: skip
            listeners.append(admin)
            who = "admin process" if role == "admin" else "edge"
            log.info("%s: admin API on http://%s", who, settings.admin_listen)
        _background(stack, watch(runtime), "edge-watch")
        stack.callback(observer.sync, runtime.cache)  # the last figures, on the way out
        _background(stack, observer.run(runtime.cache), "edge-metrics")
        if runtime.scheduler is not None:
            # Overdue schedules (due while edge was down) fire as soon as this runs.
            _background_loop(stack, runtime.scheduler, "edge-scheduler")
        if runtime.deliverer is not None:
            _background_loop(stack, runtime.deliverer, "edge-webhooks")
            # Retention on a timer ([retention] interval_seconds), in worker 0.
            collector = collector_for(runtime.control, sorted(settings.site_ids),
                                      settings.config.retention.interval_seconds)  # fmt: skip
            if collector is not None:
                _background_loop(stack, collector, "edge-gc")
        if runtime.fanout is not None:
            _background(stack, runtime.fanout.run(), "edge-fanout")
        if role != "admin":
            _background(
                stack,
                runtime.services.views.run(
                    runtime.store,
                    settings.config.server.analytics_flush_seconds,
                    runtime.services.reserve,
                ),
                "edge-analytics",
            )
        # Registered last, so it runs first on the way out: every listener closes at
        # once and requests in flight finish (within shutdown_grace) while the
        # store, the outbound session and the background tasks are still there.
        stack.push_async_callback(drain, listeners, settings.config.server.shutdown_grace)
        yield runtime


def _on_hangup(reloader: Reloader, observer: Observer) -> None:
    observer.reopen_logs()  # a rotated log file is written anew, whatever the reload says
    reloader.reload()


_reload_requested = threading.Event()


def hold_reloads() -> None:
    """Until :func:`serve` listens for SIGHUP, a SIGHUP only records that a reload is due.

    Its default action would end the process (an ``edge reload`` from a
    certificate-renewal hook may land while edge is starting).
    """
    signal.signal(signal.SIGHUP, lambda _signum, _frame: _reload_requested.set())


async def serve(
    settings: Settings,
    *,
    worker: int = 0,
    workers: int = 1,
    role: Role = "all",
    ready: Callable[[Runtime], Awaitable[None]] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM; ``ready`` runs once the listeners are up."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings, worker=worker, workers=workers, role=role) as runtime:
        reloader = runtime.reloader
        if reloader is not None:
            loop.add_signal_handler(signal.SIGHUP, _on_hangup, reloader, runtime.observer)
            if _reload_requested.is_set():  # asked for during start-up
                reloader.reload()
        if ready is not None:
            await ready(runtime)
        await stop.wait()
        log.info(
            "%s: shutting down (in-flight requests get up to %.1fs)",
            "admin process" if role == "admin" else f"worker {worker + 1}",
            settings.config.server.shutdown_grace,
        )  # fmt: skip
