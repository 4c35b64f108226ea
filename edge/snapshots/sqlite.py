"""The embedded store: one SQLite file in ``data_dir``, through aiosqlite.

How this works:
- WAL journal with ``synchronous=FULL``: a commit is on disk before it returns, and
  readers never block the writer.
- Two connections. Writes go through one connection under an asyncio lock, each
  a single ``BEGIN IMMEDIATE`` ... ``COMMIT`` so coroutines never interleave
  statements inside another's transaction. Reads (blob fetches on a cache miss,
  listings) use the second connection and see only committed state.
- The schema is versioned with ``PRAGMA user_version``; ``_MIGRATIONS[i]`` takes a
  store from version ``i`` to ``i + 1``, so a file written by an older edge opens in
  a newer one.
- Blob bytes live as files in ``data_dir/blobs`` (:mod:`edge.snapshots.blobfiles`);
  the ``blobs`` table holds which site has which blob. Schema 4 kept the bytes in
  the table: migrating to 5 writes each one to its file (durably) before the column
  goes, in the migration's transaction, so a crash halfway re-runs it whole.
- An upload's file is renamed into place and its row written in one write
  transaction; a collection removes rows in one and, in a second, the files no row
  names any more. Both hold the write lock (across processes: ``BEGIN IMMEDIATE``),
  so an upload racing a collection of the same blob ends with the blob present.
- A write the disk cannot take (full, read-only) is rolled back whole and raised
  as :class:`StoreFull` (507) or :class:`StoreReadOnly` (503): the caller answers
  with that, and what is being served stays as it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from edge.errors import StoreFull, StoreReadOnly, StoreUnavailable
from edge.snapshots import core
from edge.snapshots.blobfiles import BlobDir
from edge.snapshots.model import OutboxItem, utc_now
from edge.snapshots.retention import Collected, Retention
from edge.snapshots.rows import OUTBOX_COLUMNS, outbox_item_from_row
from edge.snapshots.sqlstore import SqlStore
from edge.snapshots.store import ClusterStore

_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE blobs (
        site TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        data BLOB NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (site, sha256)
    );
    CREATE TABLE snapshots (
        site TEXT NOT NULL,
        id TEXT NOT NULL,
        parent TEXT,
        message TEXT NOT NULL,
        created_at TEXT NOT NULL,
        actor TEXT NOT NULL,
        files_count INTEGER NOT NULL,
        manifest BLOB NOT NULL,
        settings BLOB NOT NULL,
        PRIMARY KEY (site, id)
    );
    CREATE TABLE pointers (
        site TEXT NOT NULL,
        env TEXT NOT NULL CHECK (env IN ('staging', 'production')),
        snapshot TEXT NOT NULL,
        base TEXT,
        updated_at TEXT NOT NULL,
        actor TEXT NOT NULL,
        PRIMARY KEY (site, env)
    );
    CREATE TABLE history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        site TEXT NOT NULL,
        env TEXT NOT NULL,
        at TEXT NOT NULL,
        from_snapshot TEXT,
        to_snapshot TEXT NOT NULL,
        action TEXT NOT NULL,
        actor TEXT NOT NULL
    );
    CREATE INDEX history_by_site ON history (site, id);
    """,
    """
    CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        site TEXT NOT NULL,
        at TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        base TEXT,
        paths BLOB,
        settings INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed', 'cancelled')),
        error TEXT,
        created_at TEXT NOT NULL,
        actor TEXT NOT NULL,
        fired_at TEXT
    );
    CREATE INDEX schedules_pending ON schedules (status, at);
    CREATE INDEX schedules_by_site ON schedules (site, id);
    """,
    """
    CREATE TABLE form_submissions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        site TEXT NOT NULL,
        env TEXT NOT NULL,
        form TEXT NOT NULL,
        at TEXT NOT NULL,
        fields BLOB NOT NULL
    );
    CREATE INDEX form_submissions_inbox ON form_submissions (site, env, id);
    CREATE TABLE page_views (
        site TEXT NOT NULL,
        env TEXT NOT NULL,
        path TEXT NOT NULL,
        day TEXT NOT NULL,
        views INTEGER NOT NULL,
        PRIMARY KEY (site, env, day, path)
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        site TEXT NOT NULL,
        env TEXT NOT NULL,
        event TEXT NOT NULL,
        url TEXT NOT NULL,
        secret_env TEXT NOT NULL,
        payload BLOB NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,
        lease_until REAL NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        delivered_at TEXT,
        last_error TEXT
    );
    CREATE INDEX outbox_due ON outbox (status, next_at);
    CREATE INDEX outbox_by_site ON outbox (site, env, id);
    """,
    """
    CREATE TABLE inbox_usage (
        site TEXT NOT NULL,
        env TEXT NOT NULL,
        submissions INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (site, env)
    );
    INSERT INTO inbox_usage (site, env, submissions, bytes)
        SELECT site, env, COUNT(*), COALESCE(SUM(length(fields)), 0)
        FROM form_submissions GROUP BY site, env;
    """,
    # Blob bytes move to files (_export_blobs runs first, in the same transaction).
    """
    CREATE TABLE blob_rows (
        site TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        touched_at REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (site, sha256)
    );
    INSERT INTO blob_rows (site, sha256, size, created_at)
        SELECT site, sha256, size, created_at FROM blobs;
    DROP TABLE blobs;
    ALTER TABLE blob_rows RENAME TO blobs;
    CREATE INDEX blobs_by_hash ON blobs (sha256);
    CREATE TABLE preview_links (
        site TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        expires REAL NOT NULL,
        PRIMARY KEY (site, snapshot)
    );
    CREATE TABLE collected_snapshots (
        site TEXT NOT NULL,
        id TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (site, id)
    );
    """,
)
log = logging.getLogger("edge.store")
_BLOBS_TO_FILES = 4  # the migration before which blob bytes are written out
SCHEMA_VERSION = len(_MIGRATIONS)

_SQL_VARS = 500  # hashes per IN (...) query, below SQLite's variable limit
# Test-only fault injection, read once when the store opens (never per request):
# every write then fails as on a read-only file, with SQLite's own SQLITE_READONLY.
TEST_READONLY_ENV = "EDGE_TEST_STORE_READONLY"


def unwritable(exc: sqlite3.Error) -> StoreUnavailable | None:
    """The error to answer for a write SQLite refused for lack of disk, else ``None``."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # primary code of an extended one
    if code == sqlite3.SQLITE_FULL:
        return StoreFull(
            "the store's disk is full: nothing was written and the current snapshots"
            " keep serving; free space and retry"
        )
    if code == sqlite3.SQLITE_READONLY:
        return StoreReadOnly(
            "the store is read-only: nothing was written and the current snapshots keep"
            " serving; make the data directory writable and retry"
        )
    return None


class _Sql:
    """:class:`edge.snapshots.core.Sql` on an aiosqlite connection."""

    byte_length = "length"  # of a BLOB: its bytes
    for_update = ""  # the write lock already keeps every other writer out

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return await _rows(self._conn, sql, args)

    async def execute(self, sql: str, *args: Any) -> int:
        cur = await self._conn.execute(sql, args)
        return int(cur.rowcount)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)

    async def fetch_in(self, sql: str, args: Sequence[Any], values: Sequence[str]) -> list[Any]:
        rows: list[Any] = []
        for chunk in _chunks(values):
            rows += await self.fetch(f"{sql} IN ({','.join('?' * len(chunk))})", *args, *chunk)
        return rows

    async def execute_in(self, sql: str, args: Sequence[Any], values: Sequence[str]) -> int:
        changed = 0
        for chunk in _chunks(values):
            changed += await self.execute(f"{sql} IN ({','.join('?' * len(chunk))})", *args, *chunk)
        return changed


def _chunks(values: Sequence[str]) -> list[Sequence[str]]:
    """``values`` in lists of at most :data:`_SQL_VARS`, below SQLite's variable limit."""
    return [values[i : i + _SQL_VARS] for i in range(0, len(values), _SQL_VARS)]


class SqliteStore(SqlStore):
    """:class:`edge.snapshots.store.Store` on one SQLite file and a blob directory."""

    def __init__(
        self,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        path: Path | None = None,
        blobs: BlobDir | None = None,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        self._path = path
        assert blobs is not None or path is not None
        self._blobs = blobs if blobs is not None else BlobDir(Path(str(path)).parent / "blobs")

    # -- lifecycle -----------------------------------------------------------------

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        """Open (creating and migrating as needed) the store file at ``path``; its blob
        files live in ``blobs/`` beside it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        blobs = BlobDir(path.parent / "blobs")
        await asyncio.to_thread(blobs.prepare)
        writer = await aiosqlite.connect(path, isolation_level=None)
        try:
            await writer.execute("PRAGMA busy_timeout=10000")
            await writer.execute("PRAGMA journal_mode=WAL")
            await writer.execute("PRAGMA synchronous=FULL")
            await _migrate(writer, blobs)
            if os.environ.get(TEST_READONLY_ENV) == "1":
                await writer.execute("PRAGMA query_only=ON")
            reader = await aiosqlite.connect(path, isolation_level=None)
        except BaseException:
            await writer.close()
            raise
        await reader.execute("PRAGMA busy_timeout=10000")
        await reader.execute("PRAGMA query_only=ON")
        return cls(writer, reader, path, blobs)

    def cluster(self) -> ClusterStore | None:
        return None  # one machine: no node registry, no notifications

    async def close(self) -> None:
        try:
            await self._reader.close()
        finally:
            await self._writer.close()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._write_lock:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
                yield self._writer
                await self._writer.execute("COMMIT")
            except BaseException as exc:
                # Also on cancellation: aiosqlite runs statements in order on its own
                # thread, so this ROLLBACK runs after whatever was already submitted
                # (a BEGIN, a failed COMMIT) and the connection never stays inside
                # an open transaction.
                await asyncio.shield(self._rollback())
                refused = unwritable(exc) if isinstance(exc, sqlite3.Error) else None
                if refused is not None:
                    raise refused from exc
                raise

    async def _rollback(self) -> None:
        try:
            await self._writer.execute("ROLLBACK")
        except sqlite3.OperationalError:
            pass  # no transaction was open (the COMMIT went through, or BEGIN never did)

    @asynccontextmanager
    async def _write(self, site: str | None = None) -> AsyncIterator[core.Sql]:
        # One writer at a time, whatever the site: the write lock serializes it all.
        async with self._transaction() as db:
            yield _Sql(db)

    def _reads(self) -> core.Sql:
        return _Sql(self._reader)

    async def _pointers_moved(self, db: core.Sql, site: str) -> None:
        return None  # one machine: no other node to tell

    async def _schedules_changed(self, db: core.Sql, site: str) -> None:
        return None

    # -- blobs ---------------------------------------------------------------------

    async def receive_blob(
        self, site: str, sha256: str, chunks: AsyncIterable[bytes], *, limit: int
    ) -> tuple[bool, int]:
        upload = await self._blobs.receive(sha256, chunks, limit=limit)
        try:
            async with self._transaction() as db:
                rows = await _rows(
                    db, "SELECT 1 FROM blobs WHERE site = ? AND sha256 = ?", (site, sha256)
                )
                # Under the write lock: a collection cannot remove the file between
                # this rename and the row that keeps it.
                await self._blobs.place(upload)
                await db.execute(
                    "INSERT INTO blobs (site, sha256, size, created_at, touched_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (site, sha256)"
                    " DO UPDATE SET touched_at = excluded.touched_at",
                    (site, sha256, upload.size, utc_now(), time.time()),
                )
        finally:
            self._blobs.discard(upload)  # gone already once published
        return not rows, upload.size

    async def blob_file(self, site: str, sha256: str) -> Path | None:
        rows = await _rows(
            self._reader, "SELECT 1 FROM blobs WHERE site = ? AND sha256 = ?", (site, sha256)
        )
        if not rows:
            return None
        path = self._blobs.path(sha256)
        return path if path.is_file() else None

    async def prefetch_blobs(self, site: str, hashes: Sequence[str], *, seconds: float) -> None:
        return None  # the files are the store: always local

    # -- retention -----------------------------------------------------------------

    async def collect(
        self, site: str, policy: Retention, *, dry_run: bool, now: float
    ) -> Collected:
        if dry_run:
            result, _ = await core.collect(self._reads(), site, policy, dry_run=True, now=now)
            return result
        async with self._transaction() as db:
            result, released = await core.collect(_Sql(db), site, policy, dry_run=False, now=now)
        async with self._transaction() as db:
            for sha256 in await core.unheld(_Sql(db), released):
                await asyncio.to_thread(self._blobs.remove, sha256)
            # Files no row names (an upload whose row the disk refused, a database
            # restored from an older backup): under the write lock, so never the file
            # of an upload between its rename and its row.
            held = {row[0] for row in await _rows(db, "SELECT DISTINCT sha256 FROM blobs")}
            orphans = await asyncio.to_thread(
                self._blobs.orphans, held, older_than=now - policy.grace_seconds
            )
            for sha256, _ in orphans:
                await asyncio.to_thread(self._blobs.remove, sha256)
        if orphans:
            log.info("removed %d blob file(s) no site held", len(orphans))
        return result

    def free_bytes(self) -> int | None:
        if self._path is None:
            return None
        stat = os.statvfs(self._path.parent)
        return stat.f_bavail * stat.f_frsize

    # -- webhook outbox ------------------------------------------------------------

    async def claim_outbox(self, *, now: float, lease: float, limit: int) -> list[OutboxItem]:
        async with self._transaction() as db:
            rows = await _rows(
                db,
                f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'pending'"
                " AND next_at <= ? AND lease_until <= ? ORDER BY next_at, id LIMIT ?",
                (now, now, limit),
            )
            items = [outbox_item_from_row(r) for r in rows]
            await db.executemany(
                "UPDATE outbox SET lease_until = ? WHERE id = ?",
                [(now + lease, item.id) for item in items],
            )
        return items

    async def next_outbox_due(self) -> float | None:
        rows = await _rows(
            self._reader,
            "SELECT MIN(MAX(next_at, lease_until)) FROM outbox WHERE status = 'pending'",
        )
        row = rows[0] if rows else None
        return None if row is None or row[0] is None else float(row[0])


async def _rows(db: aiosqlite.Connection, sql: str, args: Sequence[Any] = ()) -> list[Any]:
    """Run one query to completion in one step.

    Never iterate a cursor across awaits: on the shared reader connection another
    coroutine's statement would start meanwhile, and SQLite keeps one read
    transaction open while any statement is active, so later reads would go on
    seeing data from before commits that were already acknowledged.
    """
    return list(await db.execute_fetchall(sql, args))


async def _export_blobs(db: aiosqlite.Connection, blobs: BlobDir) -> None:
    """Schema 4 -> 5: every blob's bytes to its file, durably, one blob in memory at a time."""
    hashes = [row[0] for row in await _rows(db, "SELECT DISTINCT sha256 FROM blobs")]
    for sha256 in hashes:
        if blobs.has(sha256):
            continue  # written by an earlier, interrupted run of this migration
        rows = await _rows(db, "SELECT data FROM blobs WHERE sha256 = ? LIMIT 1", (sha256,))
        data = bytes(rows[0][0])
        if hashlib.sha256(data).hexdigest() != sha256:
            raise RuntimeError(f"the store's blob {sha256} is damaged (its bytes hash otherwise)")
        await asyncio.to_thread(blobs.write_durably, sha256, data)


async def _migrate(db: aiosqlite.Connection, blobs: BlobDir) -> None:
    # The version is read inside the write transaction: several processes opening
    # a new store at once migrate it exactly once.
    await db.execute("BEGIN IMMEDIATE")
    try:
        rows = await _rows(db, "PRAGMA user_version")
        row = rows[0] if rows else None
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"the store was written by a newer edge (schema {version} > {SCHEMA_VERSION})"
            )
        for target in range(version, SCHEMA_VERSION):
            if target == _BLOBS_TO_FILES:
                await _export_blobs(db, blobs)
            for statement in _MIGRATIONS[target].split(";"):
                if statement.strip():
                    await db.execute(statement)
        if version != SCHEMA_VERSION:
            # Only then: a current store opens without writing, even on a full disk
            # (a worker restarted there must come up and serve).
            await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    await db.execute("COMMIT")


@asynccontextmanager
async def open_sqlite_store(data_dir: Path) -> AsyncIterator[SqliteStore]:
    """The store in ``data_dir/edge.sqlite3``, closed on exit."""
    store = await SqliteStore.open(data_dir / "edge.sqlite3")
    try:
        yield store
    finally:
        await store.close()
