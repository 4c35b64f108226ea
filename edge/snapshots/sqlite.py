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
import msgspec

from edge.errors import (
    Conflict,
    MissingBlobs,
    NotFound,
    StoreFull,
    StoreReadOnly,
    StoreUnavailable,
)
from edge.router import Env
from edge.snapshots import core
from edge.snapshots.blobfiles import BlobDir
from edge.snapshots.inbox import inbox_cap, inbox_full, page_ids
from edge.snapshots.model import (
    FormSubmission,
    HistoryEntry,
    InboxLimits,
    InboxPage,
    InboxUsage,
    ManifestEntry,
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
from edge.snapshots.retention import Collected, Retention
from edge.snapshots.rows import (
    OUTBOX_COLUMNS,
    SCHEDULE_COLUMNS,
    outbox_item_from_row,
)
from edge.snapshots.store import ClusterStore

_page = core.page

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

_manifest_encoder = msgspec.json.Encoder()
_manifest_decoder = msgspec.json.Decoder(dict[str, ManifestEntry])
_settings_decoder = msgspec.json.Decoder(dict[str, Any])
_fields_decoder = msgspec.json.Decoder(dict[str, str | list[str]])
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

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return await _rows(self._conn, sql, args)

    async def execute(self, sql: str, *args: Any) -> int:
        cur = await self._conn.execute(sql, args)
        return int(cur.rowcount)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)


class SqliteStore:
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

    # -- blobs ---------------------------------------------------------------------

    async def blob_sizes(self, site: str, hashes: Sequence[str]) -> dict[str, int]:
        sizes: dict[str, int] = {}
        unique = list(dict.fromkeys(hashes))
        for i in range(0, len(unique), _SQL_VARS):
            chunk = unique[i : i + _SQL_VARS]
            marks = ",".join("?" * len(chunk))
            rows = await _rows(
                self._reader,
                f"SELECT sha256, size FROM blobs WHERE site = ? AND sha256 IN ({marks})",
                (site, *chunk),
            )
            sizes.update({row[0]: row[1] for row in rows})
        return sizes

    async def missing_blobs(self, site: str, hashes: Sequence[str]) -> list[str]:
        present = await self.blob_sizes(site, hashes)
        return [h for h in dict.fromkeys(hashes) if h not in present]

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

    async def put_blob(self, site: str, sha256: str, data: bytes | bytearray) -> bool:
        new, _ = await self.receive_blob(site, sha256, _one(bytes(data)), limit=len(data))
        return new

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

    async def get_blob(self, site: str, sha256: str) -> bytes | None:
        path = await self.blob_file(site, sha256)
        if path is None:
            return None
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:  # collected meanwhile
            return None

    # -- retention -----------------------------------------------------------------

    async def add_preview_link(self, site: str, snapshot: str, expires: float) -> None:
        async with self._transaction() as db:
            await core.add_preview_link(_Sql(db), site, snapshot, expires)

    async def was_collected(self, site: str, snapshot_id: str) -> bool:
        return await core.was_collected(_Sql(self._reader), site, snapshot_id)

    async def collect(
        self, site: str, policy: Retention, *, dry_run: bool, now: float
    ) -> Collected:
        if dry_run:
            result, _ = await core.collect(_Sql(self._reader), site, policy, dry_run=True, now=now)
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

    # -- snapshots -----------------------------------------------------------------

    async def create_snapshot(self, snapshot: Snapshot) -> None:
        manifest = _manifest_encoder.encode(snapshot.files)
        settings = _manifest_encoder.encode(snapshot.settings)
        hashes = sorted({e.sha256 for e in snapshot.files.values()})
        async with self._transaction() as db:
            # Checked inside the write transaction: blobs are never deleted while it
            # holds the lock, so what is checked here is what the snapshot gets.
            present: set[str] = set()
            for i in range(0, len(hashes), _SQL_VARS):
                chunk = hashes[i : i + _SQL_VARS]
                marks = ",".join("?" * len(chunk))
                rows = await _rows(
                    db,
                    f"SELECT sha256 FROM blobs WHERE site = ? AND sha256 IN ({marks})",
                    (snapshot.site, *chunk),
                )
                present.update([row[0] for row in rows])
            missing = [h for h in hashes if h not in present]
            if missing:
                raise MissingBlobs(f"{len(missing)} blob(s) are not uploaded", missing=missing)
            await db.execute(
                "INSERT INTO snapshots (site, id, parent, message, created_at, actor,"
                " files_count, manifest, settings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    snapshot.site,
                    snapshot.id,
                    snapshot.parent,
                    snapshot.message,
                    snapshot.created_at,
                    snapshot.actor,
                    len(snapshot.files),
                    manifest,
                    settings,
                ),
            )

    async def get_snapshot(self, site: str, snapshot_id: str) -> Snapshot | None:
        return await core.get_snapshot(_Sql(self._reader), site, snapshot_id)

    async def list_snapshots(
        self, site: str, *, limit: int, before: str | None = None
    ) -> list[SnapshotInfo]:
        return await core.list_snapshots(_Sql(self._reader), site, limit=limit, before=before)

    async def snapshot_messages(self, site: str, ids: Sequence[str]) -> dict[str, str]:
        wanted = sorted(set(ids))
        found: dict[str, str] = {}
        for i in range(0, len(wanted), _SQL_VARS):
            chunk = wanted[i : i + _SQL_VARS]
            rows = await _rows(
                self._reader,
                f"SELECT id, message FROM snapshots WHERE site = ? AND id IN"
                f" ({', '.join('?' * len(chunk))})",
                [site, *chunk],
            )
            found.update((r[0], r[1]) for r in rows)
        return found

    # -- pointers ------------------------------------------------------------------

    async def get_pointers(self, site: str) -> dict[Env, Pointer]:
        return await core.read_pointers(_Sql(self._reader), site)

    async def all_pointers(self) -> list[Pointer]:
        return await core.all_pointers(_Sql(self._reader))

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
            sql = _Sql(db)
            await core.enqueue(sql, events, now=time.time())
            return await core.apply_moves(
                sql, site, moves, action=action, actor=actor, complete=complete, at=utc_now()
            )

    async def history(
        self, site: str, *, env: Env | None, limit: int, before: int | None = None
    ) -> list[HistoryEntry]:
        return await core.history(_Sql(self._reader), site, env=env, limit=limit, before=before)

    # -- schedules -----------------------------------------------------------------

    async def add_schedule(self, schedule: Schedule) -> None:
        async with self._transaction() as db:
            await db.execute(
                f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    schedule.id,
                    schedule.site,
                    schedule.at,
                    schedule.snapshot,
                    schedule.base,
                    None if schedule.paths is None else _manifest_encoder.encode(schedule.paths),
                    int(schedule.settings),
                    schedule.status,
                    schedule.error,
                    schedule.created_at,
                    schedule.actor,
                    schedule.fired_at,
                ),
            )

    async def list_schedules(
        self, site: str, *, status: str | None = None, limit: int = 100
    ) -> list[Schedule]:
        return await core.list_schedules(_Sql(self._reader), site, status=status, limit=limit)

    async def get_schedule(self, site: str, schedule_id: str) -> Schedule | None:
        return await core.get_schedule(_Sql(self._reader), site, schedule_id)

    async def pending_schedules(self, *, due_by: str | None = None) -> list[Schedule]:
        return await core.pending_schedules(_Sql(self._reader), due_by=due_by)

    async def next_schedule_moment(self) -> str | None:
        return await core.next_schedule_moment(_Sql(self._reader))

    async def cancel_schedule(self, site: str, schedule_id: str) -> None:
        async with self._transaction() as db:
            rows = await _rows(
                db, "SELECT status FROM schedules WHERE site = ? AND id = ?", (site, schedule_id)
            )
            row = rows[0] if rows else None
            if row is None:
                raise NotFound(f"site {site!r} has no schedule {schedule_id!r}")
            if row[0] != "pending":
                raise Conflict(f"schedule {schedule_id} is {row[0]}, not pending")
            await db.execute(
                "UPDATE schedules SET status = 'cancelled' WHERE id = ?", (schedule_id,)
            )

    async def fail_schedules(
        self,
        site: str,
        schedule_ids: Sequence[str],
        error: str,
        events: Sequence[OutboxEvent] = (),
    ) -> None:
        at = utc_now()
        async with self._transaction() as db:
            failed = 0
            for schedule_id in schedule_ids:
                cur = await db.execute(
                    "UPDATE schedules SET status = 'failed', error = ?, fired_at = ?"
                    " WHERE id = ? AND site = ? AND status = 'pending'",
                    (error, at, schedule_id, site),
                )
                failed += cur.rowcount
            if failed:  # announced once, by whoever failed them first
                await core.enqueue(_Sql(db), events, now=time.time())

    # -- forms, analytics ------------------------------------------------------------

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
        encoded = _manifest_encoder.encode(fields)
        cap = inbox_cap(limits, len(encoded), site, env)
        async with self._transaction() as db:
            # One statement counts the submission in and checks the cap: no row
            # back means the inbox is full (and the transaction rolls back).
            usage = await _rows(
                db,
                "INSERT INTO inbox_usage (site, env, submissions, bytes) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (site, env) DO UPDATE SET submissions = submissions + 1,"
                " bytes = bytes + excluded.bytes"
                " WHERE submissions + 1 <= ? AND bytes + excluded.bytes <= ? RETURNING submissions",
                (site, env, len(encoded), cap.max_submissions, cap.max_bytes),
            )
            if not usage:
                raise inbox_full(site, env, cap)
            cur = await db.execute(
                "INSERT INTO form_submissions (site, env, form, at, fields) VALUES (?, ?, ?, ?, ?)",
                (site, env, form, at, encoded),
            )
            assert cur.lastrowid is not None
            await core.enqueue(_Sql(db), events, now=time.time())
        return FormSubmission(id=cur.lastrowid, site=site, env=env, form=form, at=at, fields=fields)

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
        filters = [("env = ?", env), ("form = ?", form), ("id < ?", before)]
        query, args = _page(
            "SELECT id, length(fields) FROM form_submissions",
            site,
            filters,
            order="id DESC",
            limit=limit + 1,
        )
        sizes = await _rows(self._reader, query, args)
        ids = page_ids([(int(r[0]), int(r[1])) for r in sizes], limit, max_bytes)
        if not ids:
            return InboxPage(submissions=[], more=False)
        query, args = _page(
            "SELECT id, env, form, at, fields FROM form_submissions",
            site,
            [*filters, ("id >= ?", ids[-1]), ("id <= ?", ids[0])],
            order="id DESC",
            limit=len(ids),
        )
        rows = await _rows(self._reader, query, args)
        submissions = [
            FormSubmission(
                id=r[0],
                site=site,
                env=r[1],
                form=r[2],
                at=r[3],
                fields=_fields_decoder.decode(r[4]),
            )
            for r in rows
        ]
        return InboxPage(submissions=submissions, more=len(sizes) > len(ids))

    async def delete_form_submissions(
        self,
        site: str,
        env: Env,
        *,
        submission: int | None = None,
        before: str | None = None,
        form: str | None = None,
    ) -> int:
        where = "site = ? AND env = ?"
        args: list[Any] = [site, env]
        for clause, value in (("id = ?", submission), ("at < ?", before), ("form = ?", form)):
            if value is not None:
                where += " AND " + clause
                args.append(value)
        async with self._transaction() as db:
            cur = await db.execute(f"DELETE FROM form_submissions WHERE {where}", args)
            deleted = cur.rowcount
            if deleted:
                await db.execute(
                    "UPDATE inbox_usage SET"
                    " submissions = (SELECT COUNT(*) FROM form_submissions f"
                    "  WHERE f.site = inbox_usage.site AND f.env = inbox_usage.env),"
                    " bytes = (SELECT COALESCE(SUM(length(fields)), 0) FROM form_submissions f"
                    "  WHERE f.site = inbox_usage.site AND f.env = inbox_usage.env)"
                    " WHERE site = ? AND env = ?",
                    (site, env),
                )
        return deleted

    async def inbox_usage(self, site: str, env: Env) -> InboxUsage:
        return await core.inbox_usage(_Sql(self._reader), site, env)

    def free_bytes(self) -> int | None:
        if self._path is None:
            return None
        stat = os.statvfs(self._path.parent)
        return stat.f_bavail * stat.f_frsize

    async def list_form_submissions(
        self, site: str, env: Env, *, form: str | None, limit: int, before: int | None
    ) -> list[FormSubmission]:
        return await core.list_form_submissions(
            _Sql(self._reader), site, env, form=form, limit=limit, before=before
        )

    async def add_page_views(self, counts: Sequence[tuple[str, Env, str, str, int]]) -> None:
        if not counts:
            return
        async with self._transaction() as db:
            await db.executemany(
                "INSERT INTO page_views (site, env, path, day, views) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (site, env, day, path) DO UPDATE SET views = views + excluded.views",
                counts,
            )

    async def page_views(
        self, site: str, env: Env, *, first_day: str, last_day: str, limit: int
    ) -> list[PageViews]:
        return await core.page_views(
            _Sql(self._reader), site, env, first_day=first_day, last_day=last_day, limit=limit
        )

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

    async def outbox_depth(self) -> dict[tuple[str, str], int]:
        rows = await _rows(
            self._reader,
            "SELECT site, env, COUNT(*) FROM outbox WHERE status = 'pending' GROUP BY site, env",
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}

    async def record_delivery(
        self, item_id: int, *, delivered: bool, error: str | None, retry_at: float | None
    ) -> None:
        async with self._transaction() as db:
            if delivered:
                await db.execute(
                    "UPDATE outbox SET status = 'delivered', attempts = attempts + 1,"
                    " delivered_at = ?, last_error = NULL, lease_until = 0 WHERE id = ?",
                    (utc_now(), item_id),
                )
            elif retry_at is None:
                await db.execute(
                    "UPDATE outbox SET status = 'failed', attempts = attempts + 1,"
                    " last_error = ?, lease_until = 0 WHERE id = ?",
                    (error, item_id),
                )
            else:
                await db.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_at = ?,"
                    " lease_until = 0 WHERE id = ?",
                    (error, retry_at, item_id),
                )

    async def list_outbox(
        self, site: str, env: Env, *, limit: int, before: int | None
    ) -> list[OutboxItem]:
        return await core.list_outbox(_Sql(self._reader), site, env, limit=limit, before=before)


async def _rows(db: aiosqlite.Connection, sql: str, args: Sequence[Any] = ()) -> list[Any]:
    """Run one query to completion in one step.

    Never iterate a cursor across awaits: on the shared reader connection another
    coroutine's statement would start meanwhile, and SQLite keeps one read
    transaction open while any statement is active, so later reads would go on
    seeing data from before commits that were already acknowledged.
    """
    return list(await db.execute_fetchall(sql, args))


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


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
