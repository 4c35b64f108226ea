"""The in-memory pointers the proxy serves from.

How this works: the store holds the truth; this process keeps, per (site, env), a
reference to the fully loaded :class:`Snapshot` its pointer names. A move is
"build, validate, swap": the new snapshot is loaded (manifest decoded) and its
hottest representations prepared before the durable commit; after the commit the
references are replaced by plain assignments with no ``await`` in between, so a
request sees either the old or the new snapshot, never a mix, and a request that
starts after the API answered sees the new one. A request takes its snapshot
reference once and finishes on it.

Several processes share one store: each compares the shared pointer generation
(:mod:`edge.snapshots.generation`) with the one it last synced at, and catches up
from the store when they differ, before serving the request that noticed. Before
a move becomes visible the other processes are asked to load its snapshots
(:mod:`edge.snapshots.readiness`), so that catch-up finds them already decoded.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from edge.router import Env, Route
from edge.snapshots.generation import SharedCounters
from edge.snapshots.model import Pointer, Snapshot
from edge.snapshots.store import Store

Prepare = Callable[[Env, Snapshot | None, Snapshot], Awaitable[None]]
AskOthers = Callable[[Sequence[tuple[Env, Snapshot]]], Awaitable[None]]

# What the loader keeps decoded beyond the live snapshots, by estimated size: a
# manifest entry costs about this much once decoded (path, digest, type, struct).
ENTRY_BYTES = 320
LOADER_KEEP_BYTES = 256 * 1024 * 1024
# Snapshots swapped out are released this much later, off the request that swapped.
RETIRE_SECONDS = 1.0


def estimated_bytes(snapshot: Snapshot) -> int:
    """About how much memory a decoded snapshot holds."""
    return 1024 + len(snapshot.files) * ENTRY_BYTES


# How long a swap waits for its new blobs to reach this node's disk (networked store).
PREFETCH_SECONDS = 5.0


def pointer_key(site: str, env: Env) -> str:
    """The key of a (site, env) slot; equal to :attr:`Route.key`, which is built once."""
    return Route(site, env).key


class SnapshotLoader:
    """Loads snapshots from the store once and keeps the recently used ones decoded.

    Concurrent loads of the same snapshot share one store read. What is kept is
    bounded by estimated bytes (:func:`estimated_bytes`), not by count: the most
    recent snapshot is always kept, older ones only within ``keep_bytes``.
    ``loads`` counts the snapshots this process decoded from the store.
    """

    def __init__(
        self,
        store: Store,
        keep_bytes: int = LOADER_KEEP_BYTES,
        *,
        on_loaded: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._keep_bytes = keep_bytes
        self._bytes = 0
        self._loaded: OrderedDict[tuple[str, str], Snapshot] = OrderedDict()
        self._loading: dict[tuple[str, str], asyncio.Future[Snapshot | None]] = {}
        self.loads = 0
        # Told after each snapshot this process decoded from the store (metrics).
        self._on_loaded = on_loaded

    @property
    def kept_bytes(self) -> int:
        return self._bytes

    def remember(self, snapshot: Snapshot) -> None:
        """Keep a snapshot this process just created or loaded."""
        key = (snapshot.site, snapshot.id)
        old = self._loaded.pop(key, None)
        if old is not None:
            self._bytes -= estimated_bytes(old)
        self._loaded[key] = snapshot
        self._bytes += estimated_bytes(snapshot)
        while self._bytes > self._keep_bytes and len(self._loaded) > 1:
            _, dropped = self._loaded.popitem(last=False)
            self._bytes -= estimated_bytes(dropped)

    def forget(self, site: str, snapshot_ids: Sequence[str]) -> None:
        """Drop snapshots a collection removed."""
        for snapshot_id in snapshot_ids:
            self._loaded.pop((site, snapshot_id), None)

    async def load(self, site: str, snapshot_id: str) -> Snapshot | None:
        key = (site, snapshot_id)
        found = self._loaded.get(key)
        if found is not None:
            self._loaded.move_to_end(key)
            return found
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Snapshot | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            snapshot = await self._store.get_snapshot(site, snapshot_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it twice
            raise
        finally:
            del self._loading[key]
        if snapshot is not None:
            self.loads += 1
            if self._on_loaded is not None:
                self._on_loaded()
            self.remember(snapshot)
        future.set_result(snapshot)
        return snapshot


@dataclass(frozen=True, slots=True)
class SwapHooks:
    """What the live pointers ask and tell around a swap; each is optional."""

    # Warms what a snapshot serves first before it is swapped in (the visitor
    # side's representation cache).
    prepare: Prepare | None = None
    # Asks this machine's other processes to load a move's snapshots and waits
    # (boundedly) until they hold them (edge.snapshots.readiness).
    ask_others: AskOthers | None = None
    # Told how many snapshots a catch-up had to decode (none when the process
    # that moved the pointers had this one load them first).
    on_late_loads: Callable[[int], None] | None = None


class LivePointers:
    """Per (site, env): the snapshot being served right now, kept in step with the store."""

    def __init__(
        self,
        store: Store,
        loader: SnapshotLoader,
        counters: SharedCounters | None = None,
        hooks: SwapHooks = SwapHooks(),
    ) -> None:
        self._store = store
        self._loader = loader
        self._counters = counters
        self._hooks = hooks
        self._current: dict[str, Snapshot] = {}
        self._generation = -1 if counters is not None else 0
        self._catching_up: asyncio.Task[None] | None = None
        # Held while pointers are read from the store and swapped in, and while this
        # process commits a move, so a catch-up never swaps in pointers it read
        # before a local commit.
        self.lock = asyncio.Lock()
        # Per pointer key: the (old, new) snapshot ids a preload warmed the cache for.
        self._preloaded: dict[str, tuple[str | None, str]] = {}
        self._retired: list[list[Snapshot]] = []  # swapped out, freed shortly after

    # -- the hot path --------------------------------------------------------------

    def get(self, key: str) -> Snapshot | None:
        """The snapshot a route serves, by :func:`pointer_key`."""
        return self._current.get(key)

    def served_blobs(self) -> set[str]:
        """Every blob hash the snapshots served right now name."""
        return {e.sha256 for s in self._current.values() for e in s.files.values()}

    def serves(self, key: str, snapshot_id: str) -> bool:
        """This process is caught up and route ``key`` serves ``snapshot_id``: what an
        answer remembered from that snapshot needs to be given again (the hit paths)."""
        counters = self._counters
        if counters is not None and counters.pointers() != self._generation:
            return False
        snapshot = self._current.get(key)
        return snapshot is not None and snapshot.id == snapshot_id

    def is_current(self) -> bool:
        """No other process moved a pointer since this one last caught up."""
        return self._counters is None or self._counters.pointers() == self._generation

    # -- changes -------------------------------------------------------------------

    def current(self, site: str, env: Env) -> Snapshot | None:
        return self._current.get(pointer_key(site, env))

    async def prepare_swap(
        self, changes: Iterable[tuple[Env, Snapshot]], *, tell_others: bool = True
    ) -> None:
        """Warm what the new snapshots will serve first (before the commit).

        With ``tell_others`` (a move this process makes visible), the other
        processes are asked first to load and warm the same snapshots, and this
        returns once they hold them (or the bounded wait ran out). On a networked
        store this starts with the new blobs: brought to this node's disk cache
        (for at most :data:`PREFETCH_SECONDS`, the rest in the background), so the
        first visitor here does not wait for the database. What a preload already
        did (:meth:`preload`) is not done again on a visitor's time.
        """
        fresh = [
            (env, snapshot)
            for env, snapshot in changes
            if (old := self.current(snapshot.site, env)) is None or old.id != snapshot.id
        ]
        ask = self._hooks.ask_others
        others = ask(fresh) if tell_others and ask is not None and fresh else None
        try:
            for env, snapshot in fresh:
                old = self.current(snapshot.site, env)
                if self._preloaded.get(pointer_key(snapshot.site, env)) == (
                    None if old is None else old.id,
                    snapshot.id,
                ):
                    continue  # the process that moved it prefetched; we warmed on preload
                before = set() if old is None else {e.sha256 for e in old.files.values()}
                new = sorted({e.sha256 for e in snapshot.files.values()} - before)
                if new:
                    await self._store.prefetch_blobs(snapshot.site, new, seconds=PREFETCH_SECONDS)
                if self._hooks.prepare is not None:
                    await self._hooks.prepare(env, old, snapshot)
        finally:
            if others is not None:
                await others

    async def preload(self, site: str, env: Env, snapshot_id: str) -> None:
        """Another process is about to point ``env`` at ``snapshot_id``: load and warm it.

        The snapshot stays in the loader, so the catch-up after the move finds it
        (the asking process brings its blobs to this node's disk).
        """
        snapshot = await self._loader.load(site, snapshot_id)
        if snapshot is None:
            return
        old = self.current(site, env)
        prepare = self._hooks.prepare
        if prepare is not None and (old is None or old.id != snapshot.id):
            await prepare(env, old, snapshot)
            self._preloaded[pointer_key(site, env)] = (None if old is None else old.id, snapshot.id)

    def swap(self, changes: Iterable[tuple[Env, Snapshot]]) -> None:
        """Point environments at already loaded snapshots. Synchronous by design.

        The snapshots swapped out are kept a moment longer: freeing a large manifest
        takes milliseconds, which must not fall on the request that caught up.
        """
        retired = []
        for env, snapshot in changes:
            key = pointer_key(snapshot.site, env)
            old = self._current.get(key)
            if old is not None and old is not snapshot:
                retired.append(old)
            self._current[key] = snapshot
            self._preloaded.pop(key, None)
        if retired:
            self._retired.append(retired)
            try:
                asyncio.get_running_loop().call_later(RETIRE_SECONDS, self._retired.pop, 0)
            except RuntimeError:  # no loop (tests): freed at once
                self._retired.clear()

    def committed(self) -> None:
        """This process committed (and swapped) a move: tell the other processes."""
        if self._counters is None:
            return
        generation = self._counters.bump_pointers()
        if generation == self._generation + 1:
            # Nobody else moved anything since we caught up: we are current.
            self._generation = generation

    async def catch_up(self) -> None:
        """Re-read every pointer from the store and swap in what changed.

        Concurrent callers share one catch-up, and each returns only once the
        pointers it was told about (the shared generation when it called) are in.
        """
        wanted = self._counters.pointers() if self._counters is not None else 0
        while True:
            task = self._catching_up
            if task is None or task.done():
                task = self._catching_up = asyncio.ensure_future(self._catch_up())
            await asyncio.shield(task)
            # A catch-up already under way may have read the pointers before the
            # move this caller must see: then it takes another one.
            if self._generation >= wanted:
                return

    async def _catch_up(self) -> None:
        async with self.lock:
            generation = self._counters.pointers() if self._counters is not None else 0
            starting = self._generation == -1
            decoded = self._loader.loads
            loaded: list[tuple[Env, Snapshot]] = []
            for p in await self._store.all_pointers():
                snapshot = await self._load(p)
                if snapshot is not None:
                    loaded.append((p.env, snapshot))
            late = self._loader.loads - decoded
            told = self._hooks.on_late_loads
            if late and not starting and told is not None:
                told(late)
            await self.prepare_swap(loaded, tell_others=False)  # they catch up themselves
            self.swap(loaded)
            self._generation = generation

    async def refresh(self, sites: Iterable[str] | None = None) -> bool:
        """Re-read the pointers of ``sites`` (every site: ``None``) and swap them in.

        Each new snapshot is loaded (manifest decoded) and warmed before its swap.
        Used when another machine moved a pointer (:mod:`edge.snapshots.fanout`);
        the caller then tells this machine's other processes with :meth:`committed`.
        Whether anything changed here.
        """
        async with self.lock:
            if sites is None:
                pointers = await self._store.all_pointers()
            else:
                pointers = []
                for site in sites:
                    pointers.extend((await self._store.get_pointers(site)).values())
            loaded: list[tuple[Env, Snapshot]] = []
            for p in pointers:
                snapshot = await self._load(p)
                if snapshot is not None and snapshot is not self.current(p.site, p.env):
                    loaded.append((p.env, snapshot))
            await self.prepare_swap(loaded)
            self.swap(loaded)
            return bool(loaded)

    async def _load(self, p: Pointer) -> Snapshot | None:
        if p.snapshot is None:
            return None
        current = self.current(p.site, p.env)
        if current is not None and current.id == p.snapshot:
            return current
        return await self._loader.load(p.site, p.snapshot)
