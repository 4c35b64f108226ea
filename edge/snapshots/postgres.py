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
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import asyncpg

from edge.errors import StoreUnavailable
from edge.snapshots import core
from edge.snapshots.blobfiles import BlobDir, Upload
from edge.snapshots.cachesweep import sweepable
from edge.snapshots.core import PgSql
from edge.snapshots.model import NodeState, OutboxItem, utc_now
from edge.snapshots.pg_schema import BLOBS_CHANNEL, POINTERS_CHANNEL, SCHEDULES_CHANNEL, migrate
from edge.snapshots.retention import Collected, Retention
from edge.snapshots.rows import OUTBOX_COLUMNS, outbox_item_from_row
from edge.snapshots.sqlstore import SqlStore
from edge.snapshots.store import ClusterStore

log = logging.getLogger("edge.store")
CHUNK_BYTES = 1024 * 1024  # one blob_chunks row
SWEEP_BATCH = 1000  # cached files asked about in one query of a cache sweep

# Transaction-level advisory locks: a site's (pointer moves, snapshots, collections)
# and a blob's (its upload against its collection).
_SITE_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"
_BLOB_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 1))"


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
# turns out to be dead, so a blip costs no request. A dead connection usually means
# the server restarted or an operator terminated edge's backends, so every pooled
# connection is suspect: the pool replaces them all before the retry, or a pool of
# several dead connections would hand the retry another one.
_READS = frozenset(
    {
        "generation",
        "blob_file",
        "_held_chunks",
        "next_outbox_due",
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
        store: PostgresStore = args[0]  # type: ignore[assignment]
        return await _attempts(tries, store._pool, method, *args, **kwargs)

    return guarded


async def _attempts(
    tries: int,
    pool: Any,
    call: Callable[_P, Awaitable[_T]],
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> _T:
    """``call``, tried ``tries`` times while the database is unreachable; each failure
    expires every connection of ``pool``, so the next try connects afresh."""
    for attempt in range(tries):
        try:
            return await call(*args, **kwargs)
        except _UNAVAILABLE as exc:
            await pool.expire_connections()
            if attempt + 1 == tries:
                raise _unavailable(exc) from exc
    raise AssertionError("unreachable")  # pragma: no cover


class _PoolReads(PgSql):
    """Reads on the pool, each on a connection of its own: tried once more on a fresh
    connection when the first turns out to be dead, so a blip costs no request."""

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return await _attempts(2, self._conn, super().fetch, sql, *args)


def _unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"the PostgreSQL store is unavailable: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    """An error's message, or its type when it has none (a timeout)."""
    return str(exc) or type(exc).__name__


class PostgresStore(SqlStore):
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

    @asynccontextmanager
    async def _write(self, site: str | None = None) -> AsyncIterator[core.Sql]:
        try:
            async with self._transaction() as conn:
                if site is not None:  # the site's pointer lock
                    await conn.execute(_SITE_LOCK, site)
                yield PgSql(conn)
        except _UNAVAILABLE as exc:
            # Not retried (the write may have reached the database), but the pool
            # connects afresh for whatever comes next.
            await self._pool.expire_connections()
            raise _unavailable(exc) from exc

    def _reads(self) -> core.Sql:
        return _PoolReads(self._pool)

    async def _pointers_moved(self, db: core.Sql, site: str) -> None:
        rows = await db.fetch(
            "UPDATE cluster_state SET generation = generation + 1 RETURNING generation"
        )
        await db.execute("SELECT pg_notify(?, ?)", POINTERS_CHANNEL, f"{rows[0][0]} {site}")

    async def _schedules_changed(self, db: core.Sql, site: str) -> None:
        await db.execute("SELECT pg_notify(?, ?)", SCHEDULES_CHANNEL, site)

    @_reachable
    async def generation(self) -> int:
        """The cluster's pointer generation (every committed move is at or below it)."""
        value = await self._pool.fetchval("SELECT generation FROM cluster_state")
        return int(value)

    # -- blobs ---------------------------------------------------------------------

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
            await db.execute(_BLOB_LOCK, upload.sha256)
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

    # -- retention -----------------------------------------------------------------

    @_reachable
    async def collect(
        self, site: str, policy: Retention, *, dry_run: bool, now: float
    ) -> Collected:
        # The site's lock: no move or snapshot races the reading of what is referenced.
        async with self._write(site) as db:

            async def lock_blobs(hashes: list[str]) -> None:
                # Before any row goes, in sorted order: an upload of one of these
                # blobs holds its lock until it commits, and takes no other.
                for sha256 in hashes:
                    await db.execute(_BLOB_LOCK, sha256)

            result, released = await core.collect(
                db, site, policy, dry_run=dry_run, now=now, lock_blobs=lock_blobs
            )
            gone: list[str] = []
            for sha256 in await core.unheld(db, sorted(released)):
                await db.execute("DELETE FROM blob_chunks WHERE sha256 = ?", sha256)
                gone.append(sha256)
            if gone:  # delivered at commit: the other nodes sweep their caches
                await db.execute("SELECT pg_notify(?, ?)", BLOBS_CHANNEL, site)
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

    def free_bytes(self) -> int | None:
        return None  # the database's disk is on its own machine: watched there

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


async def _cursor_chunks(db: Any, sha256: str) -> AsyncIterator[bytes]:
    async for row in db.cursor(
        "SELECT data FROM blob_chunks WHERE sha256 = $1 ORDER BY seq", sha256, prefetch=2
    ):
        yield bytes(row[0])
