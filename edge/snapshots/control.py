"""Content operations: create snapshots and move pointers, durably, then swap.

This is the IO shell around :mod:`edge.snapshots.promotion`: it reads pointers,
loads every snapshot a move needs (build, validate), commits the moves in one
store transaction, and only then swaps the live pointers, with no ``await``
between the commit returning and the swap, so the API answers after both.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge.content_types import content_type_for
from edge.errors import (
    BadRequest,
    Conflict,
    Drift,
    EmptyEnvironment,
    MissingBlobs,
    NotFound,
    PreconditionFailed,
    TooManyPaths,
)
from edge.router import Env
from edge.snapshots.fromfiles import with_site_files, without_derived
from edge.snapshots.live import LivePointers, SnapshotLoader
from edge.snapshots.manifest import apply_changes, bad_paths
from edge.snapshots.merge import changed_paths, fixes_kept, unpublished_changes
from edge.snapshots.model import (
    HistoryEntry,
    ManifestEntry,
    OutboxEvent,
    Pointer,
    PointerMove,
    Schedule,
    Snapshot,
    new_snapshot_id,
    utc_now,
)
from edge.snapshots.promotion import (
    EMPTY,
    Composition,
    Content,
    Piece,
    compose,
    environments_etag,
    if_match_holds,
    is_fast_forward,
    plan_production,
    plan_promote,
    plan_refresh,
    plan_set,
    same_content,
)
from edge.snapshots.retention import Collected, Retention, collected_refusal
from edge.snapshots.servable import check_servable
from edge.snapshots.settings import validate_settings
from edge.snapshots.store import Store

log = logging.getLogger("edge.control")
EventBuilder = Callable[[str, Env, str, dict[str, Any]], list[OutboxEvent]]
MovedHook = Callable[[str, Sequence[HistoryEntry], float], None]
WaitAll = Callable[[float], Awaitable[list[str]]]
_HISTORY_SCAN = 10_000  # how far back rollback looks for "was production before"
DEFAULT_MAX_PATHS = 200_000  # [server] max_snapshot_paths
_LINEAGE_DEPTH = 50  # ancestors a drift check looks through for production's version


def _same_at(key: str, a: Content, b: Content) -> bool:
    """Whether two contents agree on one path or ``settings.<key>``."""
    if key.startswith("settings."):
        name = key.removeprefix("settings.")
        return bool(a[1].get(name, _MISSING) == b[1].get(name, _MISSING))
    return a[0].get(key) == b[0].get(key)


_MISSING = object()


@dataclass(frozen=True, slots=True)
class NewFile:
    """A file of a snapshot request: blob hash plus optional type and noindex."""

    sha256: str
    content_type: str | None = None
    noindex: bool = False


@dataclass(frozen=True, slots=True)
class Moved:
    """The outcome of a pointer-moving action."""

    env: Env
    to: str | None
    previous: str | None
    action: str | None  # None: nothing had to move


@dataclass(frozen=True, slots=True)
class DiffSides:
    """What a diff compares: the two manifests, before their paths are listed."""

    from_: str | None  # the snapshot ids compared (None: an empty environment)
    to: str | None
    old: Mapping[str, ManifestEntry]
    new: Mapping[str, ManifestEntry]
    settings_changed: bool


@dataclass(frozen=True, slots=True)
class PublishPreview:
    """A publish's dry run: what production would become, against production now."""

    production: str | None  # production's snapshot now
    staging: str  # the staging snapshot the publish would take
    action: str | None  # what the real publish would record; None: nothing would move
    added: list[str]
    removed: list[str]
    changed: list[str]
    settings_changed: bool
    kept: list[str]  # production's own fixes (paths, settings.<key>) the publish keeps
    conflicts: list[str]  # changed on both sides: refused unless forced (staging wins)

    def doc(self) -> dict[str, Any]:
        """The preview as JSON-ready data (also carried by a dry run's drift refusal)."""
        return {
            "dry_run": True,
            "production": self.production,
            "staging": self.staging,
            "action": self.action,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "settings_changed": self.settings_changed,
            "kept": self.kept,
            "conflicts": self.conflicts,
        }


@dataclass(frozen=True, slots=True)
class _PublishPlan:
    staging: Snapshot
    production: Snapshot | None
    content: Content | None  # production's content after the publish; None: no move
    action: str  # "publish" (fast-forward or paths) or "merge-publish"
    built: Composition | None = None  # the new content, when it is not staging's own
    conflicts: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


DRIFT_MESSAGE = (
    "production changed since staging's base, and the same paths changed on"
    " staging: refresh staging, publish selected paths, or force"
)


async def _nobody_lags(_timeout: float) -> list[str]:
    return []


def _no_events(_site: str, _env: Env, _event: str, _data: dict[str, Any]) -> list[OutboxEvent]:
    return []


def _content(snapshot: Snapshot | None) -> Content:
    # Without settings.from_files: derived from the files, remade by every _derive.
    if snapshot is None:
        return EMPTY
    return (snapshot.files, without_derived(snapshot.settings))


class Control:
    """Snapshot creation and pointer moves for every site of this process."""

    def __init__(
        self,
        store: Store,
        live: LivePointers,
        loader: SnapshotLoader,
        *,
        max_paths: int = DEFAULT_MAX_PATHS,
        retention: Retention | None = None,
        events: EventBuilder | None = None,
        on_moved: MovedHook | None = None,
        schedules_changed: Callable[[], None] | None = None,
        wait_all: WaitAll | None = None,
    ) -> None:
        self._store = store
        self.retention = retention or Retention()
        # Paths a snapshot may hold, whatever built it (a request's files on top
        # of a parent, a merge, a partial publish): the limit is on the result.
        self._max_paths = max_paths
        self._live = live
        self._loader = loader
        # One pointer-moving operation per site at a time in this process; the
        # store's compare-and-swap guards against other processes.
        self._site_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Builds webhook outbox rows for an event in one environment (none by default).
        self._events: EventBuilder = events or _no_events
        # Told about every committed swap right after it (metrics, the event log):
        # the site, its pointer moves, and the seconds from taking the swap lock to the swap.
        self._on_moved = on_moved
        # Told when a schedule was added or cancelled (re-arms the schedule timer).
        self._schedules_changed = schedules_changed
        self._wait_all: WaitAll = wait_all or _nobody_lags

    async def wait_all(self, timeout: float) -> list[str]:
        """Wait (at most ``timeout`` seconds) until every node of the cluster serves what
        was just committed; the names of those that do not. One machine: the commit
        already swapped every process's pointers, nobody lags."""
        return await self._wait_all(timeout)

    # -- snapshots -----------------------------------------------------------------

    async def snapshot(self, site: str, snapshot_id: str) -> Snapshot:
        found = await self._loader.load(site, snapshot_id)
        if found is None:
            raise NotFound(f"site {site!r} has no snapshot {snapshot_id!r}")
        return found

    async def _maybe(self, site: str, snapshot_id: str | None) -> Snapshot | None:
        return None if snapshot_id is None else await self.snapshot(site, snapshot_id)

    async def create_snapshot(
        self,
        site: str,
        *,
        files: dict[str, NewFile],
        parent: str | None,
        delete: Sequence[str],
        settings: dict[str, Any] | None,
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
        if settings is not None:
            validate_settings(settings)
        base: Content = EMPTY
        if parent is not None:
            parent_snapshot = await self._loader.load(site, parent)
            if parent_snapshot is None:
                raise BadRequest(f"parent snapshot {parent!r} does not exist", parent=parent)
            base = _content(parent_snapshot)
        sizes = await self._store.blob_sizes(site, [f.sha256 for f in files.values()])
        missing = [h for h in dict.fromkeys(f.sha256 for f in files.values()) if h not in sizes]
        if missing:
            raise MissingBlobs(f"{len(missing)} blob(s) are not uploaded", missing=missing)
        upserts = {
            path: ManifestEntry(
                sha256=f.sha256,
                content_type=f.content_type or content_type_for(path),
                size=sizes[f.sha256],
                noindex=f.noindex,
            )
            for path, f in files.items()
        }
        manifest = apply_changes(base[0], upserts, delete)
        new_settings = dict(base[1]) if settings is None else settings
        self._check_size(manifest)
        new_settings = await self._from_files(site, manifest, new_settings)
        check_servable(manifest, new_settings)
        return await self._derive(
            site,
            manifest,
            new_settings,
            parent=parent,
            message=message,
            actor=actor,
        )

    async def _derive(
        self,
        site: str,
        files: dict[str, ManifestEntry],
        settings: dict[str, Any],
        *,
        parent: str | None,
        message: str,
        actor: str,
    ) -> Snapshot:
        self._check_size(files)
        settings = await self._from_files(site, files, settings)
        snapshot = Snapshot(
            id=new_snapshot_id(),
            site=site,
            files=files,
            settings=settings,
            parent=parent,
            message=message,
            created_at=utc_now(),
            actor=actor,
        )
        await self._store.create_snapshot(snapshot)
        self._loader.remember(snapshot)
        return snapshot

    async def _from_files(
        self, site: str, files: dict[str, ManifestEntry], settings: dict[str, Any]
    ) -> dict[str, Any]:
        async def read(sha256: str) -> bytes | None:
            return await self._store.get_blob(site, sha256)

        return await with_site_files(files, settings, read)

    def _check_size(self, files: dict[str, ManifestEntry]) -> None:
        if len(files) > self._max_paths:
            raise TooManyPaths(
                f"the snapshot would hold {len(files)} paths; at most {self._max_paths}"
                " (the server's max_snapshot_paths, counted after parent and delete)"
            )

    async def diff_sides(self, site: str, from_: str, to: str) -> DiffSides:
        """The two manifests a diff compares (environments or snapshot ids), unlisted."""
        pointers = await self._store.get_pointers(site)

        async def resolve(ref: str) -> Snapshot | None:
            if ref in pointers:
                return await self._maybe(site, pointers[ref].snapshot)
            return await self.snapshot(site, ref)

        old, new = await resolve(from_), await resolve(to)
        return DiffSides(
            from_=None if old is None else old.id,
            to=None if new is None else new.id,
            old=_content(old)[0],
            new=_content(new)[0],
            settings_changed=_content(old)[1] != _content(new)[1],
        )

    async def diff(self, site: str, from_: str, to: str) -> dict[str, Any]:
        """Paths added, removed and changed from one environment or snapshot to another."""
        sides = await self.diff_sides(site, from_, to)
        added, removed, changed = changed_paths(sides.old, sides.new)
        return {
            "from": sides.from_,
            "to": sides.to,
            "added": added,
            "removed": removed,
            "changed": changed,
            "settings_changed": sides.settings_changed,
        }

    # -- pointers ------------------------------------------------------------------

    async def pointers(self, site: str) -> dict[Env, Pointer]:
        return await self._store.get_pointers(site)

    async def _locked_pointers(self, site: str, if_match: str | None) -> dict[Env, Pointer]:
        pointers = await self._store.get_pointers(site)
        if not if_match_holds(if_match, environments_etag(pointers)):
            raise PreconditionFailed(
                "the environments changed since you read them (If-Match does not match)",
                etag=environments_etag(pointers),
            )
        return pointers

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
        allow_empty: bool = False,
    ) -> list[HistoryEntry]:
        """Point ``env`` at a snapshot; with ``check_expect``, only if it is at ``expect``.

        A snapshot without files would make the environment answer 404 for every
        path: refused unless ``allow_empty`` (a typo'd directory must not take a site down).
        """
        target = await self.snapshot(site, snapshot_id)
        if not target.files and not allow_empty:
            raise EmptyEnvironment(
                f"snapshot {target.id} has no files: {env} would answer 404 for every path;"
                " set allow_empty (edge push --allow-empty) if that is what you mean"
            )
        async with self._site_locks[site]:
            pointers = await self._store.get_pointers(site)
            if check_expect and pointers[env].snapshot != expect:
                raise Conflict(
                    f"{env} points at {pointers[env].snapshot!r}, not {expect!r}",
                    current=pointers[env].snapshot,
                )
            moves = plan_set(pointers, env, target.id)
            return await self._commit(site, moves, [target], action, actor)

    async def publish(
        self,
        site: str,
        *,
        actor: str,
        paths: Sequence[str] | None = None,
        settings: bool = False,
        force: bool = False,
        if_match: str | None = None,
    ) -> Moved:
        """Publish staging to production, whole (drift-safe) or only ``paths``."""
        async with self._site_locks[site]:
            pointers = await self._locked_pointers(site, if_match)
            plan = await self._plan_publish(site, pointers, paths, settings)
            previous = pointers["production"].snapshot
            staging = plan.staging
            if plan.content is None:
                return Moved("production", previous, previous, None)
            if paths is not None:
                assert plan.built is not None
                published = await self._derive(
                    site,
                    plan.built.files,
                    plan.built.settings,
                    parent=previous,
                    message=f"publish of {len(paths)} path(s) from staging {staging.id}",
                    actor=actor,
                )
                piece = Piece(_content(staging), paths=paths, settings=settings)
                moves = [
                    *plan_production(pointers, published.id),
                    await self._sync_base(site, pointers, [piece], published),
                ]
                await self._commit(site, moves, [published], "publish", actor)
                return Moved("production", published.id, previous, "publish")
            if plan.action == "publish":  # a fast-forward: staging's snapshot itself
                await self._commit(
                    site, plan_promote(pointers, staging.id), [staging], "publish", actor
                )
                return Moved("production", staging.id, previous, "publish")
            if plan.conflicts and not force:
                raise Drift(DRIFT_MESSAGE, conflicts=plan.conflicts)
            assert plan.built is not None
            merged = await self._derive(
                site,
                plan.built.files,
                plan.built.settings,
                parent=staging.id,
                message=f"merge of production {previous} into staging {staging.id}",
                actor=actor,
            )
            await self._commit(
                site, plan_promote(pointers, merged.id), [merged], "merge-publish", actor
            )
            return Moved("production", merged.id, previous, "merge-publish")

    async def preview_publish(
        self,
        site: str,
        *,
        paths: Sequence[str] | None = None,
        settings: bool = False,
        force: bool = False,
        if_match: str | None = None,
    ) -> PublishPreview:
        """What :meth:`publish` with these options would make production; nothing moves.

        The same plan as the real publish (the drift merge included), compared with
        production as it is now. Refused exactly as the real publish would be; a
        drift refusal also carries the preview of the forced publish (``if_forced``).
        """
        async with self._site_locks[site]:
            pointers = await self._locked_pointers(site, if_match)
            plan = await self._plan_publish(site, pointers, paths, settings)
        now = _content(plan.production)
        after = now if plan.content is None else plan.content
        added, removed, changed = changed_paths(now[0], after[0])
        preview = PublishPreview(
            production=pointers["production"].snapshot,
            staging=plan.staging.id,
            action=None if plan.content is None else plan.action,
            added=added,
            removed=removed,
            changed=changed,
            settings_changed=now[1] != after[1],
            kept=plan.kept,
            conflicts=plan.conflicts,
        )
        if plan.conflicts and not force:
            raise Drift(
                DRIFT_MESSAGE, conflicts=plan.conflicts, dry_run=True, if_forced=preview.doc()
            )
        return preview

    async def _plan_publish(
        self,
        site: str,
        pointers: dict[Env, Pointer],
        paths: Sequence[str] | None,
        settings: bool,
    ) -> _PublishPlan:
        """What a publish would make production, with no write: shared by publish and preview."""
        staging_ptr, production_ptr = pointers["staging"], pointers["production"]
        if staging_ptr.snapshot is None:
            raise Conflict("staging has no snapshot to publish")
        staging = await self.snapshot(site, staging_ptr.snapshot)
        production = await self._maybe(site, production_ptr.snapshot)
        if paths is not None:
            unknown = [
                p
                for p in paths
                if p not in staging.files and (production is None or p not in production.files)
            ]
            if bad_paths(paths) or unknown:
                raise BadRequest(
                    "paths must be paths of staging's or production's snapshot",
                    paths=sorted(set(bad_paths(paths)) | set(unknown))[:100],
                )
            result = compose(
                _content(production), [Piece(_content(staging), paths=paths, settings=settings)]
            )
            content: Content | None = (result.files, result.settings)
            if production is not None and same_content(
                (result.files, result.settings), _content(production)
            ):
                content = None
            return _PublishPlan(staging, production, content, "publish", result)
        if staging.id == production_ptr.snapshot:
            return _PublishPlan(staging, production, None, "publish")
        if is_fast_forward(pointers):
            return _PublishPlan(staging, production, _content(staging), "publish")
        base = await self._maybe(site, staging_ptr.base)
        result = compose(_content(production), [Piece(_content(staging), base=_content(base))])
        conflicts = await self._real_conflicts(site, result.conflicts, production, [staging])
        merged: Content = (result.files, result.settings)
        kept = fixes_kept(_content(base), _content(production), _content(staging), merged)
        return _PublishPlan(staging, production, merged, "merge-publish", result, conflicts, kept)

    async def _real_conflicts(
        self,
        site: str,
        conflicts: Sequence[str],
        production: Snapshot | None,
        sources: Sequence[Snapshot],
    ) -> list[str]:
        """The conflicts that are not just staging's own older work on production.

        A path changed on both sides is no conflict when production's version
        appears in the lineage (``parent`` chain) of the snapshot being published:
        its author had that version and replaced it (a launch or partial publish of
        an earlier staging state, then a later edit). Walks at most
        :data:`_LINEAGE_DEPTH` ancestors, and only when there are conflicts.
        """
        remaining = list(conflicts)
        ours = _content(production)
        for source in sources:
            ancestor_id = source.parent
            for _ in range(_LINEAGE_DEPTH):
                if not remaining or ancestor_id is None:
                    break
                ancestor = await self._loader.load(site, ancestor_id)
                if ancestor is None:
                    break
                remaining = [c for c in remaining if not _same_at(c, ours, _content(ancestor))]
                ancestor_id = ancestor.parent
        return remaining

    async def _sync_base(
        self,
        site: str,
        pointers: dict[Env, Pointer],
        pieces: Sequence[Piece],
        published: Snapshot,
    ) -> PointerMove:
        """Staging's base after production took ``pieces`` of staging's work.

        Those pieces are in sync now, so staging's base takes them too: a later edit
        of a published path is then staging's own change, not a conflict, while
        production fixes elsewhere stay production's. The move also guards staging:
        if it moved meanwhile, the whole operation fails instead of publishing
        content staging no longer has.
        """
        staging = pointers["staging"]
        assert staging.snapshot is not None
        base = await self._maybe(site, staging.base)
        synced = compose(_content(base), pieces)
        content = (synced.files, synced.settings)
        if same_content(content, _content(published)):
            base_id = published.id
        elif base is not None and same_content(content, _content(base)):
            base_id = base.id
        else:
            base_id = (
                await self._derive(
                    site,
                    synced.files,
                    synced.settings,
                    parent=staging.base,
                    message=f"staging's sync base after production {published.id}",
                    actor="edge",
                )
            ).id
        return PointerMove(
            env="staging", expect=staging.snapshot, to=staging.snapshot, base=base_id
        )

    async def refresh(
        self, site: str, *, actor: str, force: bool = False, if_match: str | None = None
    ) -> Moved:
        """Staging := production; 409 listing staging's unpublished work unless forced."""
        async with self._site_locks[site]:
            pointers = await self._locked_pointers(site, if_match)
            moves = plan_refresh(pointers)
            staging_ptr, production_ptr = pointers["staging"], pointers["production"]
            previous = staging_ptr.snapshot
            if previous == production_ptr.snapshot and staging_ptr.base == previous:
                return Moved("staging", previous, previous, None)
            production = await self.snapshot(site, moves[0].to)
            if previous is not None and not force:
                staging = await self.snapshot(site, previous)
                base = await self._maybe(site, staging_ptr.base)
                lost = unpublished_changes(_content(base), _content(production), _content(staging))
                if lost:
                    raise Conflict(
                        "staging holds changes production lacks; publish them first or"
                        " force the refresh (the old staging snapshot stays in history)",
                        paths=lost,
                    )
            await self._commit(site, moves, [production], "refresh", actor)
            return Moved("staging", production.id, previous, "refresh")

    async def rollback(
        self, site: str, *, actor: str, to: str | None = None, if_match: str | None = None
    ) -> Moved:
        """Production := its previous snapshot, or ``to`` if it was production before."""
        async with self._site_locks[site]:
            pointers = await self._locked_pointers(site, if_match)
            current = pointers["production"].snapshot
            history = await self._store.history(site, env="production", limit=_HISTORY_SCAN)
            if to is None:
                target_id = history[0].from_ if history else None
                if target_id is None:
                    raise Conflict("production has no previous snapshot to roll back to")
            else:
                if await self._store.was_collected(site, to):
                    raise collected_refusal(to)
                await self.snapshot(site, to)  # 404 for an unknown id
                if not any(to in (h.from_, h.to) for h in history):
                    raise Conflict(f"snapshot {to} was never production")
                target_id = to
            if target_id == current:
                return Moved("production", current, current, None)
            if await self._store.was_collected(site, target_id):
                raise collected_refusal(target_id)
            target = await self.snapshot(site, target_id)
            moves = plan_production(pointers, target.id)
            staging = pointers["staging"]
            if staging.snapshot is not None and staging.base == current:
                # A rollback undoes a publish: staging's work since the rolled-back
                # snapshot is staging's to publish again, not a production fix to keep.
                moves.append(
                    PointerMove(
                        env="staging", expect=staging.snapshot, to=staging.snapshot, base=target.id
                    )
                )
            await self._commit(site, moves, [target], "rollback", actor)
            return Moved("production", target.id, current, "rollback")

    # -- retention -----------------------------------------------------------------

    async def collect(self, site: str, *, dry_run: bool) -> Collected:
        """Remove (or count) what the retention policy no longer keeps."""
        async with self._site_locks[site]:
            result = await self._store.collect(
                site, self.retention, dry_run=dry_run, now=time.time()
            )
        if not dry_run:
            self._loader.forget(site, result.snapshots)
        return result

    # -- schedules -----------------------------------------------------------------

    async def add_schedule(
        self, site: str, *, at: str, paths: Sequence[str] | None, settings: bool, actor: str
    ) -> Schedule:
        """Capture staging now, to go live at ``at`` (canonical UTC)."""
        pointers = await self._store.get_pointers(site)
        staging_ptr = pointers["staging"]
        if staging_ptr.snapshot is None:
            raise Conflict("staging has no snapshot to schedule")
        if paths is not None and bad_paths(paths):
            raise BadRequest("paths must be clean absolute URL paths", paths=bad_paths(paths))
        schedule = Schedule(
            id=new_snapshot_id(),
            site=site,
            at=at,
            snapshot=staging_ptr.snapshot,
            base=staging_ptr.base,
            paths=None if paths is None else list(paths),
            settings=settings,
            created_at=utc_now(),
            actor=actor,
        )
        await self._store.add_schedule(schedule)
        if self._schedules_changed is not None:
            self._schedules_changed()
        return schedule

    async def cancel_schedule(self, site: str, schedule_id: str) -> None:
        await self._store.cancel_schedule(site, schedule_id)
        if self._schedules_changed is not None:
            self._schedules_changed()

    async def fire(self, group: Sequence[Schedule]) -> Moved:
        """Fire schedules of one site due at one moment as ONE pointer swap.

        On drift conflicts nothing goes live and every schedule of the group is
        marked failed with the conflicting paths: never half a launch.
        """
        site = group[0].site
        ids = [s.id for s in group]
        async with self._site_locks[site]:
            pointers = await self._store.get_pointers(site)
            production = await self._maybe(site, pointers["production"].snapshot)
            previous = None if production is None else production.id
            pieces = []
            captured: list[Snapshot] = []
            for s in group:
                snap = await self.snapshot(site, s.snapshot)
                captured.append(snap)
                base = await self._maybe(site, s.base)
                pieces.append(
                    Piece(_content(snap), base=_content(base), paths=s.paths, settings=s.settings)
                )
            whole_ff = len(group) == 1 and group[0].paths is None and group[0].base == previous
            if whole_ff:
                target = captured[0]  # a fast-forward: the reviewed snapshot itself
            else:
                result = compose(_content(production), pieces)
                whole = [c for c, s in zip(captured, group, strict=True) if s.paths is None]
                conflicts = await self._real_conflicts(site, result.conflicts, production, whole)
                if conflicts:
                    error = "drift: " + ", ".join(conflicts[:50])
                    events = self._events(
                        site,
                        "production",
                        "publish.failed",
                        {"schedules": ids, "at": group[0].at, "conflicts": conflicts},
                    )
                    await self._store.fail_schedules(site, ids, error, events)
                    log.warning("schedules %s of %s failed: %s", ids, site, error)
                    return Moved("production", previous, previous, None)
                same = next(
                    (
                        c
                        for c in captured
                        if same_content((result.files, result.settings), _content(c))
                    ),
                    None,
                )
                target = same or await self._derive(
                    site,
                    result.files,
                    result.settings,
                    parent=previous,
                    message=f"scheduled launch at {group[0].at} ({len(group)} schedule(s))",
                    actor=group[0].actor,
                )
            moves: list[PointerMove] = []
            if target.id != previous:
                moves.extend(plan_production(pointers, target.id))
            if pointers["staging"].snapshot is not None:
                moves.append(await self._sync_base(site, pointers, pieces, target))
            await self._commit(site, moves, [target], "schedule", group[0].actor, complete=ids)
            action = "schedule" if target.id != previous else None
            return Moved("production", target.id, previous, action)

    # -- commit --------------------------------------------------------------------

    async def _commit(
        self,
        site: str,
        moves: Sequence[PointerMove],
        loaded: Sequence[Snapshot],
        action: str,
        actor: str,
        complete: Sequence[str] = (),
    ) -> list[HistoryEntry]:
        by_id = {s.id: s for s in loaded}
        changes = [(m.env, by_id[m.to]) for m in moves if m.to != m.expect]
        events = [
            event
            for m in moves
            if m.to != m.expect
            for event in self._events(
                site,
                m.env,
                "environment.updated",
                {"from": m.expect, "to": m.to, "action": action, "actor": actor},
            )
        ]

        async def commit_and_swap() -> list[HistoryEntry]:
            async with self._live.lock:
                started = time.perf_counter()
                await self._live.prepare_swap(changes)
                entries = await self._store.move_pointers(
                    site, moves, action=action, actor=actor, complete=complete, events=events
                )
                # Swap right after the durable commit, before anything else can run,
                # then tell the other processes (before the caller answers).
                self._live.swap(changes)
                self._live.committed()
                if self._on_moved is not None:
                    self._on_moved(site, entries, time.perf_counter() - started)
                return entries

        # Shielded: a cancelled caller must not leave a committed move unswapped.
        return await asyncio.shield(asyncio.ensure_future(commit_and_swap()))
