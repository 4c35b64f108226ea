"""The shared store: one PostgreSQL database for every edge node, through asyncpg.

How this works:
- A connection pool per process; each write is one transaction. Pointer moves of a
  site are serialized by a transaction-level advisory lock on the site, so the
  compare-and-swap reads what the previous move committed (also when the pointer
  row does not exist yet).
- A transaction that moves a pointer also bumps ``cluster_state.generation`` (a
  row lock: generations follow commit order) and sends ``NOTIFY edge_pointers``
  with ``"<generation> <site>"``; PostgreSQL delivers it at commit, to every node
  (:mod:`edge.snapshots.fanout`).
- Exactly-once work across nodes comes from row locks: a schedule is marked done
  by ``UPDATE ... WHERE status = 'pending'`` in the pointer move's transaction (a
  second node blocks on the row, then finds it done and rolls back), and outbox
  rows are leased with ``FOR UPDATE SKIP LOCKED``. A node that dies mid-transaction
  leaves nothing behind: PostgreSQL rolls its transaction back.
- The schema is versioned (:mod:`edge.snapshots.pg_schema`).
- Blob bytes live in ``blob_chunks``, :data:`CHUNK_BYTES` per row, written from the
  upload's temporary file and read through a cursor one chunk at a time: no blob is
  ever whole in memory. Each node serves blobs from its own content-addressed disk
  cache (``data_dir/blobs``), filled from the database on first use (and by the
  pre-warm of a publish). Uploads and collections of the same blob serialize on an
  advisory lock on its hash, so an upload racing a collection ends with the blob
  present; the database is the truth, a cache file is only ever a copy of it.
- A collection that removes blobs sends ``NOTIFY edge_blobs`` at its commit; every
  node then sweeps its cache (:meth:`PostgresStore.sweep_cache`): each cached file
  whose blob has no chunks left in the database goes. Nodes also sweep when they
  (re)connect and every :data:`CACHE_SWEEP_SECONDS`, so a node that was down during
  a collection drops the files as it comes back. A blob a live snapshot serves is
  never collected, so never swept; a file swept just as the same blob is uploaded
  again is fetched from the database on its next use.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import asyncpg
import msgspec

from edge.errors import Conflict, MissingBlobs, NotFound, StoreUnavailable
from edge.router import Env
from edge.snapshots import core
from edge.snapshots.blobfiles import BlobDir, Upload
from edge.snapshots.cachesweep import sweepable
from edge.snapshots.core import PgSql
from edge.snapshots.inbox import inbox_cap, inbox_full, page_ids
from edge.snapshots.model import (
    FormSubmission,
    HistoryEntry,
    InboxLimits,
    InboxPage,
    InboxUsage,
    ManifestEntry,
    NodeState,
    OutboxEvent,
    OutboxItem,
    PageViews,
    Pointer,
    PointerMove,
    Schedule,
    Snapshot,
    SnapshotInfo,
    utc_now,
)
from edge.snapshots.pg_schema import (
    BLOBS_CHANNEL,
    POINTERS_CHANNEL,
    SCHEDULES_CHANNEL,
    migrate,
)
from edge.snapshots.retention import Collected, Retention
from edge.snapshots.rows import (
    OUTBOX_COLUMNS,
    SCHEDULE_COLUMNS,
    outbox_item_from_row,
)
from edge.snapshots.store import ClusterStore

log = logging.getLogger("edge.store")
CHUNK_BYTES = 1024 * 1024  # one blob_chunks row
SWEEP_BATCH = 1000  # cached files asked about in one query of a cache sweep

_encoder = msgspec.json.Encoder()
_manifest_decoder = msgspec.json.Decoder(dict[str, ManifestEntry])
_settings_decoder = msgspec.json.Decoder(dict[str, Any])
_fields_decoder = msgspec.json.Decoder(dict[str, str | list[str]])


_P = ParamSpec("_P")
_T = TypeVar("_T")
# Failures of the database itself, as opposed to what a statement was refused for
# (a connection terminated while idle in the pool shows as InternalClientError).
_UNAVAILABLE = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)
# Methods that only read: tried once more on a fresh connection when the first one
# turns out to be dead (the pool replaces it), so a blip costs no request.
_READS = frozenset(
    {
        "generation",
        "blob_sizes",
        "missing_blobs",
        "get_blob",
        "blob_file",
        "_held_chunks",
        "was_collected",
        "get_snapshot",
        "list_snapshots",
        "get_pointers",
        "all_pointers",
        "history",
        "list_schedules",
        "get_schedule",
        "pending_schedules",
        "next_schedule_moment",
        "list_form_submissions",
        "inbox_page",
        "inbox_usage",
        "page_views",
        "next_outbox_due",
        "list_outbox",
        "live_nodes",
    }
)


def _reachable(
    method: Callable[_P, Coroutine[Any, Any, _T]],
) -> Callable[_P, Coroutine[Any, Any, _T]]:
    """A lost or refused database connection surfaces as :class:`StoreUnavailable` (503)."""
    tries = 2 if method.__name__ in _READS else 1

    @functools.wraps(method)
    async def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        for attempt in range(tries):
            try:
                return await method(*args, **kwargs)
            except _UNAVAILABLE as exc:
                if attempt + 1 == tries:
                    raise StoreUnavailable(
                        f"the PostgreSQL store is unavailable: {_describe(exc)}"
                    ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    return guarded


def _describe(exc: BaseException) -> str:
    """An error's message, or its type when it has none (a timeout)."""
    return str(exc) or type(exc).__name__


class PostgresStore:
    """:class:`edge.snapshots.store.Store` on a PostgreSQL database shared by nodes."""

    def __init__(self, pool: Any, cache: BlobDir) -> None:
        self._pool = pool
        self._cache = cache
        self._fetching: dict[str, asyncio.Future[None]] = {}
        self._background: set[asyncio.Future[None]] = set()

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        password: str | None = None,
        pool_size: int = 4,
        connect_timeout: float = 5.0,
        application_name: str = "edge",
        blob_cache: Path | None = None,
    ) -> PostgresStore:
        """Connect (migrating the schema as needed); ``blob_cache`` is this node's disk
        cache of blobs (a fresh temporary directory when not given)."""
        options: dict[str, Any] = {
            "password": password,
            "timeout": connect_timeout,
            "server_settings": {"application_name": application_name},
        }
        try:
            conn = await asyncpg.connect(dsn, **options)
            try:
                await migrate(conn)
            finally:
                await conn.close()
            pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=pool_size, command_timeout=60, **options
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(
                f"cannot open the PostgreSQL store {dsn}: {_describe(exc)}"
            ) from exc
        cache = BlobDir(blob_cache or Path(tempfile.mkdtemp(prefix="edge-blobs-")))
        await asyncio.to_thread(cache.prepare)
        return cls(pool, cache)

    def cluster(self) -> ClusterStore | None:
        return self

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await self._pool.close()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield conn

    @_reachable
    async def generation(self) -> int:
        """The cluster's pointer generation (every committed move is at or below it)."""
        value = await self._pool.fetchval("SELECT generation FROM cluster_state")
        return int(value)

    # -- blobs ---------------------------------------------------------------------

    @_reachable
    async def blob_sizes(self, site: str, hashes: Sequence[str]) -> dict[str, int]:
        unique = list(dict.fromkeys(hashes))
        if not unique:
            return {}
        rows = await self._pool.fetch(
            "SELECT sha256, size FROM blobs WHERE site = $1 AND sha256 = ANY($2::text[])",
            site,
            unique,
        )
        return {row[0]: int(row[1]) for row in rows}

    @_reachable
    async def missing_blobs(self, site: str, hashes: Sequence[str]) -> list[str]:
        present = await self.blob_sizes(site, hashes)
        return [h for h in dict.fromkeys(hashes) if h not in present]

    async def receive_blob(
        self, site: str, sha256: str, chunks: AsyncIterable[bytes], *, limit: int
    ) -> tuple[bool, int]:
        upload = await self._cache.receive(sha256, chunks, limit=limit)
        try:
            new = await self._store_upload(site, upload)
            await self._cache.place(upload)  # served from here next
        finally:
            self._cache.discard(upload)
        return new, upload.size

    @_reachable
    async def _store_upload(self, site: str, upload: Upload) -> bool:
        async with self._transaction() as db:
            await db.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))", upload.sha256)
            stored = await db.fetchval(
                "SELECT count(*) FROM blob_chunks WHERE sha256 = $1", upload.sha256
            )
            if not stored:
                seq = 0
                with upload.temp.open("rb") as fh:
                    while True:
                        chunk = await asyncio.to_thread(fh.read, CHUNK_BYTES)
                        if not chunk and seq:
                            break
                        await db.execute(
                            "INSERT INTO blob_chunks (sha256, seq, data) VALUES ($1, $2, $3)",
                            upload.sha256,
                            seq,
                            chunk,
                        )
                        seq += 1
                        if not chunk:
                            break
            held = await db.fetchval(
                "SELECT 1 FROM blobs WHERE site = $1 AND sha256 = $2", site, upload.sha256
            )
            await db.execute(
                "INSERT INTO blobs (site, sha256, size, created_at, touched_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (site, sha256)"
                " DO UPDATE SET touched_at = excluded.touched_at",
                site,
                upload.sha256,
                upload.size,
                utc_now(),
                time.time(),
            )
            return held is None

    async def put_blob(self, site: str, sha256: str, data: bytes | bytearray) -> bool:
        new, _ = await self.receive_blob(site, sha256, _one(bytes(data)), limit=len(data))
        return new

    @_reachable
    async def blob_file(self, site: str, sha256: str) -> Path | None:
        held = await self._pool.fetchval(
            "SELECT 1 FROM blobs WHERE site = $1 AND sha256 = $2", site, sha256
        )
        if held is None:
            return None
        path = self._cache.path(sha256)
        if not path.is_file():
            await self._fetch(sha256)
        return path if path.is_file() else None

    async def _fetch(self, sha256: str) -> None:
        """Copy a blob into this node's cache, once however many requests want it."""
        pending = self._fetching.get(sha256)
        if pending is not None:
            await asyncio.shield(pending)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._fetching[sha256] = future
        try:
            async with self._transaction() as db:  # a cursor needs a transaction
                chunks = _cursor_chunks(db, sha256)
                upload = await self._cache.receive(sha256, chunks, limit=1 << 62)
            try:
                await asyncio.to_thread(self._cache.publish, upload)
            finally:
                self._cache.discard(upload)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._fetching[sha256]
        future.set_result(None)

    async def prefetch_blobs(self, site: str, hashes: Sequence[str], *, seconds: float) -> None:
        wanted = [h for h in hashes if not self._cache.has(h)]
        if not wanted:
            return
        task = asyncio.ensure_future(self._prefetch(site, wanted))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        try:
            await asyncio.wait_for(asyncio.shield(task), seconds)
        except TimeoutError:
            log.info("%d blob(s) of %s still coming to this node's cache", len(wanted), site)

    async def _prefetch(self, site: str, hashes: Sequence[str]) -> None:
        for sha256 in hashes:
            try:
                await self.blob_file(site, sha256)
            except Exception as exc:  # a visitor's request fetches it again
                log.warning("prefetching blob %s of %s failed: %s", sha256, site, exc)

    async def get_blob(self, site: str, sha256: str) -> bytes | None:
        path = await self.blob_file(site, sha256)
        if path is None:
            return None
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    # -- retention -----------------------------------------------------------------

    @_reachable
    async def add_preview_link(self, site: str, snapshot: str, expires: float) -> None:
        await core.add_preview_link(PgSql(self._pool), site, snapshot, expires)

    @_reachable
    async def was_collected(self, site: str, snapshot_id: str) -> bool:
        return await core.was_collected(PgSql(self._pool), site, snapshot_id)

    @_reachable
    async def collect(
        self, site: str, policy: Retention, *, dry_run: bool, now: float
    ) -> Collected:
        async with self._transaction() as db:
            # The site's pointer lock: no move or snapshot races the reading of what
            # is referenced.
            await db.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", site)

            async def lock_blobs(hashes: list[str]) -> None:
                # Before any row goes, in sorted order: an upload of one of these
                # blobs holds its lock until it commits, and takes no other.
                for sha256 in hashes:
                    await db.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended($1, 1))", sha256
                    )

            result, released = await core.collect(
                PgSql(db), site, policy, dry_run=dry_run, now=now, lock_blobs=lock_blobs
            )
            gone: list[str] = []
            for sha256 in await core.unheld(PgSql(db), sorted(released)):
                await db.execute("DELETE FROM blob_chunks WHERE sha256 = $1", sha256)
                gone.append(sha256)
            if gone:  # delivered at commit: the other nodes sweep their caches
                await db.execute("SELECT pg_notify($1, $2)", BLOBS_CHANNEL, site)
        for sha256 in gone:
            await asyncio.to_thread(self._cache.remove, sha256)
        return result

    async def sweep_cache(self, served: set[str], *, idle_before: float) -> int:
        """Remove this node's cached files that :func:`sweepable` picks; how many.

        One folder of the cache at a time (memory stays bounded by a folder, 1/256 of
        the cache), one indexed query per :data:`SWEEP_BATCH` files.
        """
        removed = 0
        for prefix in await asyncio.to_thread(self._cache.prefixes):
            cached = await asyncio.to_thread(self._cache.entries, prefix)
            for start in range(0, len(cached), SWEEP_BATCH):
                batch = cached[start : start + SWEEP_BATCH]
                stored = await self._held_chunks([sha256 for sha256, _ in batch])
                picked = sweepable(batch, stored=stored, served=served, idle_before=idle_before)
                for sha256 in picked:
                    if sha256 not in self._fetching:
                        await asyncio.to_thread(self._cache.remove, sha256)
                        removed += 1
        return removed

    @_reachable
    async def _held_chunks(self, hashes: list[str]) -> set[str]:
        rows = await self._pool.fetch(
            "SELECT sha256 FROM blob_chunks WHERE sha256 = ANY($1::text[]) AND seq = 0", hashes
        )
        return {row[0] for row in rows}

    # -- snapshots -----------------------------------------------------------------

    @_reachable
    async def create_snapshot(self, snapshot: Snapshot) -> None:
        hashes = sorted({e.sha256 for e in snapshot.files.values()})
        async with self._transaction() as db:
            # The site's lock keeps a collection out until this commits.
            await db.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", snapshot.site)
            rows = await db.fetch(
                "SELECT sha256 FROM blobs WHERE site = $1 AND sha256 = ANY($2::text[])",
                snapshot.site,
                hashes,
            )
            present = {row[0] for row in rows}
            missing = [h for h in hashes if h not in present]
            if missing:
                raise MissingBlobs(f"{len(missing)} blob(s) are not uploaded", missing=missing)
            await db.execute(
                "INSERT INTO snapshots (site, id, parent, message, created_at, actor,"
                " files_count, manifest, settings) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                snapshot.site,
                snapshot.id,
                snapshot.parent,
                snapshot.message,
                snapshot.created_at,
                snapshot.actor,
                len(snapshot.files),
                _encoder.encode(snapshot.files),
                _encoder.encode(snapshot.settings),
            )

    @_reachable
    async def get_snapshot(self, site: str, snapshot_id: str) -> Snapshot | None:
        return await core.get_snapshot(PgSql(self._pool), site, snapshot_id)

    @_reachable
    async def list_snapshots(
        self, site: str, *, limit: int, before: str | None = None
    ) -> list[SnapshotInfo]:
        return await core.list_snapshots(PgSql(self._pool), site, limit=limit, before=before)

    @_reachable
    async def snapshot_messages(self, site: str, ids: Sequence[str]) -> dict[str, str]:
        rows = await self._pool.fetch(
            "SELECT id, message FROM snapshots WHERE site = $1 AND id = ANY($2::text[])",
            site,
            sorted(set(ids)),
        )
        return {r[0]: r[1] for r in rows}

    # -- pointers ------------------------------------------------------------------

    @_reachable
    async def get_pointers(self, site: str) -> dict[Env, Pointer]:
        return await core.read_pointers(PgSql(self._pool), site)

    @_reachable
    async def all_pointers(self) -> list[Pointer]:
        return await core.all_pointers(PgSql(self._pool))

    @_reachable
    async def move_pointers(
        self,
        site: str,
        moves: Sequence[PointerMove],
        *,
        action: str,
        actor: str,
        complete: Sequence[str] = (),
        events: Sequence[OutboxEvent] = (),
    ) -> list[HistoryEntry]:
        async with self._transaction() as db:
            await db.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", site)
            sql = PgSql(db)
            await core.enqueue(sql, events, now=time.time())
            entries = await core.apply_moves(
                sql, site, moves, action=action, actor=actor, complete=complete, at=utc_now()
            )
            if entries:
                generation = await db.fetchval(
                    "UPDATE cluster_state SET generation = generation + 1 RETURNING generation"
                )
                await db.execute(
                    "SELECT pg_notify($1, $2)", POINTERS_CHANNEL, f"{generation} {site}"
                )
        return entries

    @_reachable
    async def history(
        self, site: str, *, env: Env | None, limit: int, before: int | None = None
    ) -> list[HistoryEntry]:
        return await core.history(PgSql(self._pool), site, env=env, limit=limit, before=before)

    # -- schedules -----------------------------------------------------------------

    @_reachable
    async def add_schedule(self, schedule: Schedule) -> None:
        async with self._transaction() as db:
            await db.execute(
                f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES"
                " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                schedule.id,
                schedule.site,
                schedule.at,
                schedule.snapshot,
                schedule.base,
                None if schedule.paths is None else _encoder.encode(schedule.paths),
                schedule.settings,
                schedule.status,
                schedule.error,
                schedule.created_at,
                schedule.actor,
                schedule.fired_at,
            )
            await db.execute("SELECT pg_notify($1, $2)", SCHEDULES_CHANNEL, schedule.site)

    @_reachable
    async def list_schedules(
        self, site: str, *, status: str | None = None, limit: int = 100
    ) -> list[Schedule]:
        return await core.list_schedules(PgSql(self._pool), site, status=status, limit=limit)

    @_reachable
    async def get_schedule(self, site: str, schedule_id: str) -> Schedule | None:
        return await core.get_schedule(PgSql(self._pool), site, schedule_id)

    @_reachable
    async def pending_schedules(self, *, due_by: str | None = None) -> list[Schedule]:
        return await core.pending_schedules(PgSql(self._pool), due_by=due_by)

    @_reachable
    async def next_schedule_moment(self) -> str | None:
        return await core.next_schedule_moment(PgSql(self._pool))

    @_reachable
    async def cancel_schedule(self, site: str, schedule_id: str) -> None:
        async with self._transaction() as db:
            status = await db.fetchval(
                "SELECT status FROM schedules WHERE site = $1 AND id = $2 FOR UPDATE",
                site,
                schedule_id,
            )
            if status is None:
                raise NotFound(f"site {site!r} has no schedule {schedule_id!r}")
            if status != "pending":
                raise Conflict(f"schedule {schedule_id} is {status}, not pending")
            await db.execute("UPDATE schedules SET status = 'cancelled' WHERE id = $1", schedule_id)
            await db.execute("SELECT pg_notify($1, $2)", SCHEDULES_CHANNEL, site)

    @_reachable
    async def fail_schedules(
        self,
        site: str,
        schedule_ids: Sequence[str],
        error: str,
        events: Sequence[OutboxEvent] = (),
    ) -> None:
        at = utc_now()
        async with self._transaction() as db:
            status = await db.execute(
                "UPDATE schedules SET status = 'failed', error = $1, fired_at = $2"
                " WHERE id = ANY($3::text[]) AND site = $4 AND status = 'pending'",
                error,
                at,
                list(schedule_ids),
                site,
            )
            # Row-locked like firing: when another node failed them first, its
            # transaction announced it; this one must not announce it again.
            if status != "UPDATE 0":
                await core.enqueue(PgSql(db), events, now=time.time())

    # -- forms, analytics ------------------------------------------------------------

    @_reachable
    async def add_form_submission(
        self,
        site: str,
        env: Env,
        form: str,
        fields: dict[str, str | list[str]],
        events: Sequence[OutboxEvent] = (),
        *,
        limits: InboxLimits | None = None,
    ) -> FormSubmission:
        at = utc_now()
        encoded = _encoder.encode(fields)
        cap = inbox_cap(limits, len(encoded), site, env)
        async with self._transaction() as db:
            # Counted in and checked in one statement (the row lock orders
            # concurrent posts from every node): no row back means full.
            counted = await db.fetchval(
                "INSERT INTO inbox_usage (site, env, submissions, bytes) VALUES ($1, $2, 1, $3)"
                " ON CONFLICT (site, env) DO UPDATE SET"
                " submissions = inbox_usage.submissions + 1,"
                " bytes = inbox_usage.bytes + excluded.bytes"
                " WHERE inbox_usage.submissions + 1 <= $4"
                " AND inbox_usage.bytes + excluded.bytes <= $5 RETURNING submissions",
                site,
                env,
                len(encoded),
                cap.max_submissions,
                cap.max_bytes,
            )
            if counted is None:
                raise inbox_full(site, env, cap)
            submission_id = await db.fetchval(
                "INSERT INTO form_submissions (site, env, form, at, fields)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING id",
                site,
                env,
                form,
                at,
                encoded,
            )
            await core.enqueue(PgSql(db), events, now=time.time())
        return FormSubmission(
            id=int(submission_id), site=site, env=env, form=form, at=at, fields=fields
        )

    @_reachable
    async def list_form_submissions(
        self, site: str, env: Env, *, form: str | None, limit: int, before: int | None
    ) -> list[FormSubmission]:
        return await core.list_form_submissions(
            PgSql(self._pool), site, env, form=form, limit=limit, before=before
        )

    @_reachable
    async def inbox_page(
        self,
        site: str,
        env: Env,
        *,
        form: str | None,
        limit: int,
        before: int | None,
        max_bytes: int,
    ) -> InboxPage:
        filters: list[tuple[str, Any]] = [
            ("env = {}", env),
            ("form = {}", form),
            ("id < {}", before),
        ]
        query, args = _page(
            "SELECT id, octet_length(fields) FROM form_submissions",
            site,
            filters,
            order="id DESC",
            limit=limit + 1,
        )
        sizes = await self._pool.fetch(query, *args)
        ids = page_ids([(int(r[0]), int(r[1])) for r in sizes], limit, max_bytes)
        if not ids:
            return InboxPage(submissions=[], more=False)
        query, args = _page(
            "SELECT id, env, form, at, fields FROM form_submissions",
            site,
            [*filters, ("id >= {}", ids[-1]), ("id <= {}", ids[0])],
            order="id DESC",
            limit=len(ids),
        )
        rows = await self._pool.fetch(query, *args)
        submissions = [
            FormSubmission(
                id=int(r[0]),
                site=site,
                env=r[1],
                form=r[2],
                at=r[3],
                fields=_fields_decoder.decode(r[4]),
            )
            for r in rows
        ]
        return InboxPage(submissions=submissions, more=len(sizes) > len(ids))

    @_reachable
    async def delete_form_submissions(
        self,
        site: str,
        env: Env,
        *,
        submission: int | None = None,
        before: str | None = None,
        form: str | None = None,
    ) -> int:
        where = "site = $1 AND env = $2"
        args: list[Any] = [site, env]
        for clause, value in (("id = {}", submission), ("at < {}", before), ("form = {}", form)):
            if value is not None:
                args.append(value)
                where += " AND " + clause.format(f"${len(args)}")
        async with self._transaction() as db:
            # The usage row first: deletes and inserts of one inbox queue on it.
            await db.execute(
                "SELECT 1 FROM inbox_usage WHERE site = $1 AND env = $2 FOR UPDATE", site, env
            )
            status = await db.execute(f"DELETE FROM form_submissions WHERE {where}", *args)
            deleted = int(status.rsplit(" ", 1)[1])
            if deleted:
                await db.execute(
                    "UPDATE inbox_usage SET"
                    " submissions = (SELECT COUNT(*) FROM form_submissions f"
                    "  WHERE f.site = $1 AND f.env = $2),"
                    " bytes = (SELECT COALESCE(SUM(octet_length(fields)), 0)"
                    "  FROM form_submissions f WHERE f.site = $1 AND f.env = $2)"
                    " WHERE site = $1 AND env = $2",
                    site,
                    env,
                )
        return deleted

    @_reachable
    async def inbox_usage(self, site: str, env: Env) -> InboxUsage:
        return await core.inbox_usage(PgSql(self._pool), site, env)

    def free_bytes(self) -> int | None:
        return None  # the database's disk is on its own machine: watched there

    @_reachable
    async def add_page_views(self, counts: Sequence[tuple[str, Env, str, str, int]]) -> None:
        if not counts:
            return
        # Summed first: one row is touched once per statement, in a fixed order
        # (two nodes flushing at once never deadlock).
        summed: dict[tuple[str, str, str, str], int] = {}
        for site, env, path, day, views in counts:
            key = (site, env, day, path)
            summed[key] = summed.get(key, 0) + views
        rows = sorted(summed.items())
        async with self._transaction() as db:
            await db.executemany(
                "INSERT INTO page_views (site, env, day, path, views) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (site, env, day, path) DO UPDATE"
                " SET views = page_views.views + excluded.views",
                [(*key, views) for key, views in rows],
            )

    @_reachable
    async def page_views(
        self, site: str, env: Env, *, first_day: str, last_day: str, limit: int
    ) -> list[PageViews]:
        return await core.page_views(
            PgSql(self._pool), site, env, first_day=first_day, last_day=last_day, limit=limit
        )

    # -- webhook outbox ------------------------------------------------------------

    @_reachable
    async def claim_outbox(self, *, now: float, lease: float, limit: int) -> list[OutboxItem]:
        # SKIP LOCKED: nodes claiming at once each get different rows, none waits.
        rows = await self._pool.fetch(
            f"UPDATE outbox SET lease_until = $1 WHERE id IN (SELECT id FROM outbox"
            " WHERE status = 'pending' AND next_at <= $2 AND lease_until <= $2"
            " ORDER BY next_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)"
            f" RETURNING {OUTBOX_COLUMNS}, next_at",
            now + lease,
            now,
            limit,
        )
        rows = sorted(rows, key=lambda r: (r["next_at"], r["id"]))
        return [outbox_item_from_row(r) for r in rows]

    @_reachable
    async def next_outbox_due(self) -> float | None:
        value = await self._pool.fetchval(
            "SELECT MIN(GREATEST(next_at, lease_until)) FROM outbox WHERE status = 'pending'"
        )
        return None if value is None else float(value)

    @_reachable
    async def outbox_depth(self) -> dict[tuple[str, str], int]:
        rows = await self._pool.fetch(
            "SELECT site, env, COUNT(*) AS n FROM outbox"
            " WHERE status = 'pending' GROUP BY site, env"
        )
        return {(r["site"], r["env"]): int(r["n"]) for r in rows}

    @_reachable
    async def record_delivery(
        self, item_id: int, *, delivered: bool, error: str | None, retry_at: float | None
    ) -> None:
        if delivered:
            await self._pool.execute(
                "UPDATE outbox SET status = 'delivered', attempts = attempts + 1,"
                " delivered_at = $1, last_error = NULL, lease_until = 0 WHERE id = $2",
                utc_now(),
                item_id,
            )
        elif retry_at is None:
            await self._pool.execute(
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1,"
                " last_error = $1, lease_until = 0 WHERE id = $2",
                error,
                item_id,
            )
        else:
            await self._pool.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_at = $2,"
                " lease_until = 0 WHERE id = $3",
                error,
                retry_at,
                item_id,
            )

    @_reachable
    async def list_outbox(
        self, site: str, env: Env, *, limit: int, before: int | None
    ) -> list[OutboxItem]:
        return await core.list_outbox(PgSql(self._pool), site, env, limit=limit, before=before)

    # -- what the nodes share besides content ---------------------------------------

    @_reachable
    async def shared_secret(self, name: str, size: int) -> bytes:
        """The cluster's secret ``name``: ``size`` random bytes, made by the first asker."""
        await self._pool.execute(
            "INSERT INTO cluster_secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            name,
            secrets.token_bytes(size),
        )
        value = await self._pool.fetchval("SELECT value FROM cluster_secrets WHERE name = $1", name)
        return bytes(value)

    # -- the node registry (used by edge.snapshots.fanout) ---------------------------

    @_reachable
    async def live_nodes(self, stale_after: float) -> dict[str, int]:
        """Nodes heard from within ``stale_after`` seconds -> the generation they serve."""
        rows = await self._pool.fetch(
            "SELECT name, generation FROM nodes WHERE seen_at > now() - make_interval(secs => $1)",
            stale_after,
        )
        return {r[0]: int(r[1]) for r in rows}

    @_reachable
    async def nodes(self, stale_after: float) -> list[NodeState]:
        """Every registered node by name; ``live`` when heard from within ``stale_after`` s."""
        rows = await self._pool.fetch(
            f"SELECT name, generation, {_rfc3339('started_at')}, {_rfc3339('seen_at')},"
            " seen_at > now() - make_interval(secs => $1) FROM nodes ORDER BY name",
            stale_after,
        )
        return [
            NodeState(
                name=r[0], generation=int(r[1]), started_at=r[2], seen_at=r[3], live=bool(r[4])
            )
            for r in rows
        ]


def _rfc3339(column: str) -> str:
    """SQL for a TIMESTAMPTZ ``column`` as text, in :func:`utc_now`'s format."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""


def _page(
    select: str, site: str, filters: Sequence[tuple[str, Any]], *, order: str, limit: int
) -> tuple[str, list[Any]]:
    """:func:`edge.snapshots.core.page` with ``{}`` clauses, numbered for PostgreSQL."""
    query, args = core.page(
        select, site, [(c.format("?"), v) for c, v in filters], order=order, limit=limit
    )
    return core.numbered(query), args


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _cursor_chunks(db: Any, sha256: str) -> AsyncIterator[bytes]:
    async for row in db.cursor(
        "SELECT data FROM blob_chunks WHERE sha256 = $1 ORDER BY seq", sha256, prefetch=2
    ):
        yield bytes(row[0])
