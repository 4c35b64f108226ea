"""Pointer moves reaching every node: PostgreSQL LISTEN/NOTIFY, no protocol of our own.

How this works (PostgreSQL store only; one :class:`Fanout` per node, in worker 0):
- Every transaction that moves a pointer bumps the cluster generation and sends
  ``NOTIFY edge_pointers, '<generation> <site>'`` (:mod:`edge.snapshots.postgres`).
  PostgreSQL delivers notifications at commit, in commit order.
- This node LISTENs on a connection of its own. On a notification it re-reads that
  site's pointers, loads and warms the new snapshots (:meth:`LivePointers.refresh`),
  swaps them in, then bumps the machine-local pointer generation
  (:mod:`edge.snapshots.generation`) so the node's other workers catch up before
  their next request, exactly as after a local publish. The per-request path does
  not change.
- On (re)connect it LISTENs first, then reads the cluster generation and every
  pointer: a notification missed while disconnected never leaves the node stale.
  While disconnected the node keeps serving what it has, and retries with
  exponential backoff (0.1 s doubling up to ``reconnect_max_seconds``).
- Heartbeat: the node's row in ``nodes`` says which generation it serves (after the
  swap) and when it was last seen; a publish with ``wait: "all"`` waits for every
  node seen within three heartbeats (:func:`wait_for_nodes`). A node stopping
  cleanly removes its row. Each beat also reads the cluster generation: one that
  stays ahead of the node's for a whole heartbeat with no notification on the way
  (lost, or stuck somewhere) makes the node re-read every pointer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from edge.config import Settings
from edge.snapshots.backends import node_name, postgres_password
from edge.snapshots.cachesweep import CACHE_IDLE_SECONDS, CacheSweeper
from edge.snapshots.live import LivePointers
from edge.snapshots.model import NodeState
from edge.snapshots.pg_schema import BLOBS_CHANNEL, POINTERS_CHANNEL, SCHEDULES_CHANNEL
from edge.snapshots.store import ClusterStore, Store

log = logging.getLogger("edge.fanout")

FIRST_RETRY_SECONDS = 0.1
STALE_HEARTBEATS = 3  # a node silent this many heartbeats is not waited for
WAIT_POLL_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class Notice:
    """One ``edge_pointers`` notification: the generation a move committed as, and its site."""

    generation: int
    site: str


def parse_notice(payload: str) -> Notice | None:
    generation, _, site = payload.partition(" ")
    if not generation.isdigit() or not site:
        return None
    return Notice(int(generation), site)


def backoff(attempt: int, maximum: float) -> float:
    """Seconds before reconnect attempt ``attempt`` (0-based)."""
    return float(min(FIRST_RETRY_SECONDS * 2 ** min(attempt, 30), maximum))


class Fanout:
    """This node's LISTEN loop and heartbeat."""

    def __init__(
        self,
        *,
        dsn: str,
        password: str | None,
        node: str,
        live: LivePointers,
        connect_timeout: float = 5.0,
        reconnect_max_seconds: float = 5.0,
        heartbeat_seconds: float = 1.0,
        schedules_changed: Callable[[], None] = lambda: None,
        sweeper: CacheSweeper | None = None,
    ) -> None:
        self._dsn = dsn
        self._password = password
        self.node = node
        self._live = live
        self._connect_timeout = connect_timeout
        self._reconnect_max = reconnect_max_seconds
        self._heartbeat = heartbeat_seconds
        self._schedules_changed = schedules_changed
        self._sweeper = sweeper
        self.generation = 0  # every move up to this one is swapped in here
        self.connects = 0  # successful (re)connects

    async def run(self) -> None:
        """Listen until cancelled; reconnect with backoff whenever the connection drops."""
        if self._sweeper is not None:
            sweeping = asyncio.ensure_future(self._sweeper.run())
            try:
                await self._run()
            finally:
                sweeping.cancel()
        else:
            await self._run()

    async def _run(self) -> None:
        attempt = 0
        while True:
            connects = self.connects
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("node %s: LISTEN connection lost or refused: %s", self.node, exc)
            if self.connects != connects:
                attempt = 0  # it had connected: the backoff starts afresh
            delay = backoff(attempt, self._reconnect_max)
            attempt += 1
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        import asyncpg  # only on the PostgreSQL store

        conn = await asyncpg.connect(
            self._dsn,
            password=self._password,
            timeout=self._connect_timeout,
            server_settings={
                "application_name": f"edge {self.node} listen"[:63],
                # Only heartbeats are written here: they need no fsync, and must not
                # queue behind one on a busy disk.
                "synchronous_commit": "off",
            },
        )
        notices: asyncio.Queue[Notice] = asyncio.Queue()
        lost = asyncio.Event()

        def on_pointers(_c: object, _pid: int, _channel: str, payload: str) -> None:
            notice = parse_notice(payload)
            if notice is not None:
                notices.put_nowait(notice)

        def on_schedules(_c: object, _pid: int, _channel: str, _payload: str) -> None:
            self._schedules_changed()

        def on_blobs(_c: object, _pid: int, _channel: str, _payload: str) -> None:
            if self._sweeper is not None:
                self._sweeper.poke()

        try:
            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(POINTERS_CHANNEL, on_pointers)
            await conn.add_listener(SCHEDULES_CHANNEL, on_schedules)
            await conn.add_listener(BLOBS_CHANNEL, on_blobs)
            # Listening first, then reading: nothing committed from here on is missed.
            generation = int(await conn.fetchval("SELECT generation FROM cluster_state"))
            await self._live.refresh(None)
            self._live.committed()  # this machine's other workers catch up
            self.generation = max(self.generation, generation)
            await self._beat(conn)
            self._schedules_changed()  # schedules added while we were away
            if self._sweeper is not None:
                self._sweeper.poke()  # blobs collected while we were away
            self.connects += 1
            log.info("node %s: listening, serving generation %d", self.node, self.generation)
            await self._listen(conn, notices, lost)
        except asyncio.CancelledError:
            # Stopping cleanly: leave the registry, nobody waits for this node.
            if not conn.is_closed():
                await asyncio.shield(_quietly(_leave(conn, self.node, self._connect_timeout)))
            raise
        finally:
            if not conn.is_closed():
                conn.terminate()

    async def _listen(self, conn: Any, notices: asyncio.Queue[Notice], lost: asyncio.Event) -> None:
        next_beat = time.monotonic() + self._heartbeat
        behind: int | None = None  # a cluster generation seen ahead of ours at a beat
        while True:
            if lost.is_set() or conn.is_closed():
                raise ConnectionError("the LISTEN connection was closed")
            timeout = max(next_beat - time.monotonic(), 0.0)
            try:
                first = await asyncio.wait_for(_first_of(notices.get(), lost.wait()), timeout)
            except TimeoutError:
                cluster = await self._beat(conn)
                next_beat = time.monotonic() + self._heartbeat
                if cluster <= self.generation or not notices.empty():
                    behind = None
                elif behind is None or behind <= self.generation:
                    behind = cluster  # perhaps still in flight: look again next beat
                else:
                    # A whole heartbeat later it has still not arrived: do not trust
                    # the notifications, re-read everything.
                    log.warning(
                        "node %s: generation %d committed but not notified after %.1fs;"
                        " re-reading every pointer", self.node, behind, self._heartbeat
                    )  # fmt: skip
                    await self._live.refresh(None)
                    self._live.committed()
                    self.generation = max(self.generation, cluster)
                    behind = None
                    await self._beat(conn)
                continue
            if first is None:
                continue  # lost: raised at the top of the loop
            batch = [first]
            while not notices.empty():
                batch.append(notices.get_nowait())
            sites = list(dict.fromkeys(n.site for n in batch))
            await self._live.refresh(sites)
            # Always, also when this worker had it already: it may have caught up
            # (from a sibling's bump) later than its siblings did.
            self._live.committed()
            self.generation = max(self.generation, *(n.generation for n in batch))
            await self._beat(conn)
            next_beat = time.monotonic() + self._heartbeat

    async def _beat(self, conn: Any) -> int:
        """Record the generation this node serves; the cluster's current generation.

        The latter is a safety net under LISTEN/NOTIFY: a move committed but not
        notified within a heartbeat (a notification delayed or lost on the way) is
        caught by re-reading every pointer.
        """
        cluster = await conn.fetchval(
            "WITH beat AS (INSERT INTO nodes (name, generation) VALUES ($1, $2)"
            " ON CONFLICT (name) DO UPDATE SET generation = excluded.generation,"
            " seen_at = now()) SELECT generation FROM cluster_state",
            self.node,
            self.generation,
            timeout=max(self._heartbeat * STALE_HEARTBEATS, 1.0),
        )
        return int(cluster)


async def _first_of(
    get: Coroutine[Any, Any, Notice], lost: Coroutine[Any, Any, Any]
) -> Notice | None:
    """The next notice, or ``None`` when the connection was lost first."""
    getting = asyncio.ensure_future(get)
    losing = asyncio.ensure_future(lost)
    try:
        await asyncio.wait([getting, losing], return_when=asyncio.FIRST_COMPLETED)
    finally:
        getting.cancel()
        losing.cancel()
    if getting.done() and not getting.cancelled():
        return getting.result()
    return None


async def _leave(conn: Any, node: str, timeout: float) -> None:
    await conn.execute("DELETE FROM nodes WHERE name = $1", node, timeout=timeout)


async def _quietly(coro: Coroutine[Any, Any, None]) -> None:
    try:
        await coro
    except Exception as exc:
        log.debug("closing the LISTEN connection: %s", exc)


async def wait_for_nodes(store: ClusterStore, *, timeout: float, stale_after: float) -> list[str]:
    """Wait until every live node serves the current generation; the laggards if not.

    Called right after a commit: the cluster generation read now is at least the
    commit's, so a node at or past it serves the move.
    """
    target = await store.generation()
    deadline = time.monotonic() + timeout
    while True:
        nodes = await store.live_nodes(stale_after)
        laggards = sorted(name for name, generation in nodes.items() if generation < target)
        if not laggards or time.monotonic() >= deadline:
            return laggards
        await asyncio.sleep(min(WAIT_POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))


def attach(
    settings: Settings,
    store: Store,
    live: LivePointers,
    schedules_changed: Callable[[], None] = lambda: None,
) -> Fanout | None:
    """The node's fan-out, when the store is the shared PostgreSQL one."""
    cluster = store.cluster()
    if cluster is None:
        return None
    config = settings.config.store
    assert config.dsn is not None

    async def sweep() -> int:
        idle_before = time.time() - CACHE_IDLE_SECONDS
        return await cluster.sweep_cache(live.served_blobs(), idle_before=idle_before)

    return Fanout(
        dsn=config.dsn,
        password=postgres_password(config),
        node=node_name(settings),
        live=live,
        connect_timeout=config.connect_timeout,
        reconnect_max_seconds=config.reconnect_max_seconds,
        heartbeat_seconds=config.heartbeat_seconds,
        schedules_changed=schedules_changed,
        sweeper=CacheSweeper(sweep),
    )


def propagation_wait(
    settings: Settings, store: Store
) -> Callable[[float], Awaitable[list[str]]] | None:
    """``wait_for_nodes`` bound to this store, for ``wait: "all"`` (PostgreSQL only)."""
    cluster = store.cluster()
    if cluster is None:
        return None
    stale_after = settings.config.store.heartbeat_seconds * STALE_HEARTBEATS

    async def wait(timeout: float) -> list[str]:
        return await wait_for_nodes(cluster, timeout=timeout, stale_after=stale_after)

    return wait


def cluster_view(
    settings: Settings, store: Store
) -> Callable[[], Awaitable[tuple[int, list[NodeState]]]] | None:
    """The cluster generation and every registered node, for ``GET /v1/nodes`` (PostgreSQL)."""
    cluster = store.cluster()
    if cluster is None:
        return None
    stale_after = settings.config.store.heartbeat_seconds * STALE_HEARTBEATS

    async def view() -> tuple[int, list[NodeState]]:
        generation = await cluster.generation()
        return generation, await cluster.nodes(stale_after)

    return view
