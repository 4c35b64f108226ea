"""Content operations: create snapshots and move pointers, durably, then swap.

This is the IO shell around :mod:`edge.snapshots.promotion`: it reads pointers,
loads every snapshot a move needs (build, validate), commits the moves in one
store transaction, and only then swaps the live pointers with no ``await``
between the commit returning and the swap, so the API answers after both.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

from edge.content_types import content_type_for
from edge.errors import BadRequest, Conflict, Drift, MissingBlobs, NotFound
from edge.router import Env
from edge.snapshots.live import LivePointers, SnapshotLoader
from edge.snapshots.manifest import apply_changes, bad_paths
from edge.snapshots.model import (
    HistoryEntry,
    ManifestEntry,
    Pointer,
    PointerMove,
    Snapshot,
    new_snapshot_id,
    utc_now,
)
from edge.snapshots.promotion import is_fast_forward, plan_promote, plan_set
from edge.snapshots.store import Store


class NewFile:
    """A file of a snapshot request: blob hash plus optional type and noindex."""

    __slots__ = ("content_type", "noindex", "sha256")

    def __init__(self, sha256: str, content_type: str | None, noindex: bool) -> None:
        self.sha256 = sha256
        self.content_type = content_type
        self.noindex = noindex


class Control:
    """Snapshot creation and pointer moves for every site of this process."""

    def __init__(self, store: Store, live: LivePointers, loader: SnapshotLoader) -> None:
        self._store = store
        self._live = live
        self._loader = loader
        # One pointer-moving operation per site at a time in this process; the
        # store's compare-and-swap guards against other processes.
        self._site_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def snapshot(self, site: str, snapshot_id: str) -> Snapshot:
        found = await self._loader.load(site, snapshot_id)
        if found is None:
            raise NotFound(f"site {site!r} has no snapshot {snapshot_id!r}")
        return found

    async def create_snapshot(
        self,
        site: str,
        *,
        files: dict[str, NewFile],
        parent: str | None,
        delete: Sequence[str],
        settings: dict[str, object] | None,
        message: str,
        actor: str,
    ) -> Snapshot:
        """Create a snapshot whole (on top of ``parent`` when given) or not at all."""
        bad = bad_paths([*files, *delete])
        if bad:
            raise BadRequest(
                "paths must be clean absolute URL paths of files (no '..', '//',"
                " backslash, control characters or trailing '/')",
                paths=bad[:100],
            )
        base_files: dict[str, ManifestEntry] = {}
        base_settings: dict[str, object] = {}
        if parent is not None:
            parent_snapshot = await self._loader.load(site, parent)
            if parent_snapshot is None:
                raise BadRequest(f"parent snapshot {parent!r} does not exist", parent=parent)
            base_files, base_settings = parent_snapshot.files, parent_snapshot.settings
        sizes = await self._store.blob_sizes(site, [f.sha256 for f in files.values()])
        upserts = {}
        missing: dict[str, None] = {}
        for path, f in files.items():
            size = sizes.get(f.sha256)
            if size is None:
                missing[f.sha256] = None
                continue
            upserts[path] = ManifestEntry(
                sha256=f.sha256,
                content_type=f.content_type or content_type_for(path),
                size=size,
                noindex=f.noindex,
            )
        if missing:
            raise MissingBlobs(f"{len(missing)} blob(s) are not uploaded", missing=list(missing))
        snapshot = Snapshot(
            id=new_snapshot_id(),
            site=site,
            files=apply_changes(base_files, upserts, delete),
            settings=dict(base_settings if settings is None else settings),
            parent=parent,
            message=message,
            created_at=utc_now(),
            actor=actor,
        )
        await self._store.create_snapshot(snapshot)
        self._loader.remember(snapshot)
        return snapshot

    async def pointers(self, site: str) -> dict[Env, Pointer]:
        return await self._store.get_pointers(site)

    async def set_environment(
        self,
        site: str,
        env: Env,
        snapshot_id: str,
        *,
        expect: str | None,
        check_expect: bool,
        action: str,
        actor: str,
    ) -> list[HistoryEntry]:
        """Point ``env`` at a snapshot; with ``check_expect``, only if it is at ``expect``."""
        target = await self.snapshot(site, snapshot_id)
        async with self._site_locks[site]:
            pointers = await self._store.get_pointers(site)
            if check_expect and pointers[env].snapshot != expect:
                raise Conflict(
                    f"{env} points at {pointers[env].snapshot!r}, not {expect!r}",
                    current=pointers[env].snapshot,
                )
            moves = plan_set(pointers, env, target.id)
            return await self._commit(site, moves, {target.id: target}, action, actor)

    async def publish(self, site: str, *, actor: str) -> tuple[str, str | None]:
        """Whole publish: production := staging when production has not drifted."""
        async with self._site_locks[site]:
            pointers = await self._store.get_pointers(site)
            staging, production = pointers["staging"], pointers["production"]
            if staging.snapshot is None:
                raise Conflict("staging has no snapshot to publish")
            if staging.snapshot == production.snapshot:
                return staging.snapshot, production.snapshot
            if not is_fast_forward(pointers):
                raise Drift(
                    "production moved since staging's base; refresh staging first",
                    conflicts=[],
                )
            target = await self.snapshot(site, staging.snapshot)
            moves = plan_promote(pointers, target.id)
            await self._commit(site, moves, {target.id: target}, "publish", actor)
            return target.id, production.snapshot

    async def _commit(
        self,
        site: str,
        moves: Sequence[PointerMove],
        loaded: dict[str, Snapshot],
        action: str,
        actor: str,
    ) -> list[HistoryEntry]:
        entries = await self._store.move_pointers(site, moves, action=action, actor=actor)
        # Swap right after the durable commit, before anything else can run.
        self._live.swap((m.env, loaded[m.to]) for m in moves)
        return entries
