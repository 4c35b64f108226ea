"""The in-memory pointers the proxy serves from.

How this works: the store holds the truth; this process keeps, per (site, env), a
reference to the fully loaded :class:`Snapshot` its pointer names. A move is
"build, validate, swap": the new snapshot is loaded (manifest decoded) before the
durable commit, and after the commit the reference is replaced by plain
assignments with no ``await`` in between, so a request sees either the old or the
new snapshot, never a mix, and a request that starts after the API answered sees
the new one. A request takes its snapshot reference once and finishes on it.

Another process or machine that shares the store converges by calling
:meth:`LivePointers.sync` with the pointers it reads (the fan-out that triggers it
comes with the multi-worker work).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable

from edge.router import Env, Route
from edge.snapshots.model import Pointer, Snapshot
from edge.snapshots.store import Store


def pointer_key(site: str, env: Env) -> str:
    """The key of a (site, env) slot; equal to :attr:`Route.key`, which is built once."""
    return Route(site, env).key


class SnapshotLoader:
    """Loads snapshots from the store once and keeps the recently used ones decoded.

    Concurrent loads of the same snapshot share one store read.
    """

    def __init__(self, store: Store, keep: int = 16) -> None:
        self._store = store
        self._keep = keep
        self._loaded: OrderedDict[tuple[str, str], Snapshot] = OrderedDict()
        self._loading: dict[tuple[str, str], asyncio.Future[Snapshot | None]] = {}

    def remember(self, snapshot: Snapshot) -> None:
        """Keep a snapshot this process just created or loaded."""
        key = (snapshot.site, snapshot.id)
        self._loaded[key] = snapshot
        self._loaded.move_to_end(key)
        while len(self._loaded) > self._keep:
            self._loaded.popitem(last=False)

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
            self.remember(snapshot)
        future.set_result(snapshot)
        return snapshot


class LivePointers:
    """Per (site, env): the snapshot being served right now."""

    def __init__(self) -> None:
        self._current: dict[str, Snapshot] = {}

    def get(self, key: str) -> Snapshot | None:
        """The snapshot a route serves, by :func:`pointer_key`; the hot path."""
        return self._current.get(key)

    def current(self, site: str, env: Env) -> Snapshot | None:
        return self._current.get(pointer_key(site, env))

    def swap(self, changes: Iterable[tuple[Env, Snapshot]]) -> None:
        """Point environments at already loaded snapshots. Synchronous by design."""
        for env, snapshot in changes:
            self._current[pointer_key(snapshot.site, env)] = snapshot

    async def sync(self, pointers: Iterable[Pointer], loader: SnapshotLoader) -> None:
        """Converge on the store's pointers: load every snapshot first, then swap."""
        loaded: list[tuple[Env, Snapshot]] = []
        for p in pointers:
            if p.snapshot is None:
                continue
            current = self.current(p.site, p.env)
            if current is not None and current.id == p.snapshot:
                continue
            snapshot = await loader.load(p.site, p.snapshot)
            if snapshot is not None:
                loaded.append((p.env, snapshot))
        self.swap(loaded)
