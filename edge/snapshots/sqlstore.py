"""What both stores are: every store method whose logic is the same on SQLite and
on PostgreSQL, written once over :class:`edge.snapshots.core.Sql`.

How this works: a backend subclasses :class:`SqlStore` and supplies only what
differs:

- :meth:`~SqlStore._reads`, the connection reads use (PostgreSQL's tries a statement
  once more on a fresh pooled connection when the first one was dead);
- :meth:`~SqlStore._write`, one serialized write transaction (SQLite's write lock;
  PostgreSQL's transaction, with the site's advisory lock when a ``site`` is named);
- the dialect, in its :class:`Sql` adapter (placeholders, membership in a list, a
  blob's byte length, row locks);
- :meth:`~SqlStore._pointers_moved` and :meth:`~SqlStore._schedules_changed`, which
  tell the other nodes where there are any (PostgreSQL's generation and NOTIFY).

Blob bytes, collection and the outbox's leases differ too much to share: the
backends keep those whole.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import msgspec

from edge.errors import Conflict, MissingBlobs, NotFound
from edge.router import Env
from edge.snapshots import core
from edge.snapshots.core import Sql
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
from edge.snapshots.rows import (
    OUTBOX_COLUMNS,
    POINTER_COLUMNS,
    SCHEDULE_COLUMNS,
    outbox_item_from_row,
    pointer_from_row,
    schedule_from_row,
)

_encoder = msgspec.json.Encoder()
_manifest_decoder = msgspec.json.Decoder(dict[str, ManifestEntry])
_settings_decoder = msgspec.json.Decoder(dict[str, Any])
_fields_decoder = msgspec.json.Decoder(dict[str, str | list[str]])


class SqlStore(abc.ABC):
    """The :class:`edge.snapshots.store.Store` methods both backends answer alike."""

    # -- what a backend supplies -------------------------------------------------------

    @abc.abstractmethod
    def _reads(self) -> Sql:
        """The connection reads use (it sees only committed state)."""

    @abc.abstractmethod
    def _write(self, site: str | None = None) -> AbstractAsyncContextManager[Sql]:
        """One write transaction, serialized with the others that change the same rows;
        naming ``site`` also serializes it with the site's pointer moves and
        collections."""

    @abc.abstractmethod
    async def _pointers_moved(self, db: Sql, site: str) -> None:
        """Inside the transaction that moved ``site``'s pointers: tell other nodes."""

    @abc.abstractmethod
    async def _schedules_changed(self, db: Sql, site: str) -> None:
        """Inside the transaction that added or cancelled a schedule: tell other nodes."""

    @abc.abstractmethod
    async def blob_file(self, site: str, sha256: str) -> Path | None: ...

    @abc.abstractmethod
    async def receive_blob(
        self, site: str, sha256: str, chunks: AsyncIterable[bytes], *, limit: int
    ) -> tuple[bool, int]: ...

    # -- blobs -------------------------------------------------------------------------

    async def blob_sizes(self, site: str, hashes: Sequence[str]) -> dict[str, int]:
        rows = await self._reads().fetch_in(
            "SELECT sha256, size FROM blobs WHERE site = ? AND sha256",
            [site],
            list(dict.fromkeys(hashes)),
        )
        return {row[0]: int(row[1]) for row in rows}

    async def missing_blobs(self, site: str, hashes: Sequence[str]) -> list[str]:
        present = await self.blob_sizes(site, hashes)
        return [h for h in dict.fromkeys(hashes) if h not in present]

    async def put_blob(self, site: str, sha256: str, data: bytes | bytearray) -> bool:
        new, _ = await self.receive_blob(site, sha256, _one(bytes(data)), limit=len(data))
        return new

    async def get_blob(self, site: str, sha256: str) -> bytes | None:
        path = await self.blob_file(site, sha256)
        if path is None:
            return None
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:  # collected meanwhile
            return None

    # -- retention ---------------------------------------------------------------------

    async def add_preview_link(self, site: str, snapshot: str, expires: float) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO preview_links (site, snapshot, expires) VALUES (?, ?, ?)"
                " ON CONFLICT (site, snapshot) DO UPDATE SET expires ="
                " CASE WHEN excluded.expires > preview_links.expires THEN excluded.expires"
                " ELSE preview_links.expires END",
                site,
                snapshot,
                expires,
            )

    async def was_collected(self, site: str, snapshot_id: str) -> bool:
        return await core.was_collected(self._reads(), site, snapshot_id)

    # -- snapshots ---------------------------------------------------------------------

    async def create_snapshot(self, snapshot: Snapshot) -> None:
        hashes = sorted({e.sha256 for e in snapshot.files.values()})
        async with self._write(snapshot.site) as db:
            # Checked inside the site's write transaction: no collection removes a
            # blob meanwhile, so what is checked here is what the snapshot gets.
            rows = await db.fetch_in(
                "SELECT sha256 FROM blobs WHERE site = ? AND sha256", [snapshot.site], hashes
            )
            present = {row[0] for row in rows}
            missing = [h for h in hashes if h not in present]
            if missing:
                raise MissingBlobs(f"{len(missing)} blob(s) are not uploaded", missing=missing)
            await db.execute(
                "INSERT INTO snapshots (site, id, parent, message, created_at, actor,"
                " files_count, manifest, settings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

    async def get_snapshot(self, site: str, snapshot_id: str) -> Snapshot | None:
        rows = await self._reads().fetch(
            "SELECT parent, message, created_at, actor, manifest, settings"
            " FROM snapshots WHERE site = ? AND id = ?",
            site,
            snapshot_id,
        )
        if not rows:
            return None
        parent, message, created_at, actor, manifest, settings = rows[0]
        return Snapshot(
            id=snapshot_id,
            site=site,
            parent=parent,
            message=message,
            created_at=created_at,
            actor=actor,
            files=_manifest_decoder.decode(manifest),
            settings=_settings_decoder.decode(settings),
        )

    async def list_snapshots(
        self, site: str, *, limit: int, before: str | None = None
    ) -> list[SnapshotInfo]:
        query, args = _page(
            "SELECT id, parent, message, created_at, files_count, actor FROM snapshots",
            site,
            [("id < ?", before)],
            order="id DESC",
            limit=limit,
        )
        return [
            SnapshotInfo(
                id=r[0], parent=r[1], message=r[2], created_at=r[3], files=int(r[4]), actor=r[5]
            )
            for r in await self._reads().fetch(query, *args)
        ]

    async def snapshot_messages(self, site: str, ids: Sequence[str]) -> dict[str, str]:
        rows = await self._reads().fetch_in(
            "SELECT id, message FROM snapshots WHERE site = ? AND id", [site], sorted(set(ids))
        )
        return {r[0]: r[1] for r in rows}

    # -- pointers ----------------------------------------------------------------------

    async def get_pointers(self, site: str) -> dict[Env, Pointer]:
        return await core.read_pointers(self._reads(), site)

    async def all_pointers(self) -> list[Pointer]:
        rows = await self._reads().fetch(f"SELECT {POINTER_COLUMNS} FROM pointers")
        return [pointer_from_row(r) for r in rows]

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
        async with self._write(site) as db:
            await core.enqueue(db, events, now=time.time())
            entries = await core.apply_moves(
                db, site, moves, action=action, actor=actor, complete=complete, at=utc_now()
            )
            if entries:
                await self._pointers_moved(db, site)
        return entries

    async def history(
        self, site: str, *, env: Env | None, limit: int, before: int | None = None
    ) -> list[HistoryEntry]:
        query, args = _page(
            "SELECT id, at, env, from_snapshot, to_snapshot, action, actor FROM history",
            site,
            [("env = ?", env), ("id < ?", before)],
            order="id DESC",
            limit=limit,
        )
        return [
            HistoryEntry(
                id=int(r[0]), at=r[1], env=r[2], from_=r[3], to=r[4], action=r[5], actor=r[6]
            )
            for r in await self._reads().fetch(query, *args)
        ]

    # -- schedules ---------------------------------------------------------------------

    async def add_schedule(self, schedule: Schedule) -> None:
        async with self._write() as db:
            await db.execute(
                f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            await self._schedules_changed(db, schedule.site)

    async def list_schedules(
        self, site: str, *, status: str | None = None, limit: int = 100
    ) -> list[Schedule]:
        query, args = _page(
            f"SELECT {SCHEDULE_COLUMNS} FROM schedules",
            site,
            [("status = ?", status)],
            order="at DESC, id DESC",
            limit=limit,
        )
        return [schedule_from_row(r) for r in await self._reads().fetch(query, *args)]

    async def get_schedule(self, site: str, schedule_id: str) -> Schedule | None:
        rows = await self._reads().fetch(
            f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE site = ? AND id = ?", site, schedule_id
        )
        return schedule_from_row(rows[0]) if rows else None

    async def pending_schedules(self, *, due_by: str | None = None) -> list[Schedule]:
        query = f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE status = 'pending'"
        if due_by is None:
            rows = await self._reads().fetch(query + " ORDER BY at, id")
        else:
            rows = await self._reads().fetch(query + " AND at <= ? ORDER BY at, id", due_by)
        return [schedule_from_row(r) for r in rows]

    async def next_schedule_moment(self) -> str | None:
        # From the (status, at) index alone.
        rows = await self._reads().fetch("SELECT MIN(at) FROM schedules WHERE status = 'pending'")
        moment: str | None = rows[0][0] if rows else None
        return moment

    async def cancel_schedule(self, site: str, schedule_id: str) -> None:
        async with self._write() as db:
            rows = await db.fetch(
                f"SELECT status FROM schedules WHERE site = ? AND id = ?{db.for_update}",
                site,
                schedule_id,
            )
            if not rows:
                raise NotFound(f"site {site!r} has no schedule {schedule_id!r}")
            if rows[0][0] != "pending":
                raise Conflict(f"schedule {schedule_id} is {rows[0][0]}, not pending")
            await db.execute("UPDATE schedules SET status = 'cancelled' WHERE id = ?", schedule_id)
            await self._schedules_changed(db, site)

    async def fail_schedules(
        self,
        site: str,
        schedule_ids: Sequence[str],
        error: str,
        events: Sequence[OutboxEvent] = (),
    ) -> None:
        at = utc_now()
        async with self._write() as db:
            failed = await db.execute_in(
                "UPDATE schedules SET status = 'failed', error = ?, fired_at = ?"
                " WHERE site = ? AND status = 'pending' AND id",
                [error, at, site],
                list(schedule_ids),
            )
            # Row-locked like firing: when another process failed them first, its
            # transaction announced it; this one must not announce it again.
            if failed:
                await core.enqueue(db, events, now=time.time())

    # -- forms, analytics --------------------------------------------------------------

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
        async with self._write() as db:
            # Counted in and checked in one statement (the row orders concurrent
            # posts): no row back means the inbox is full, and all rolls back.
            counted = await db.fetch(
                "INSERT INTO inbox_usage (site, env, submissions, bytes) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (site, env) DO UPDATE SET"
                " submissions = inbox_usage.submissions + 1,"
                " bytes = inbox_usage.bytes + excluded.bytes"
                " WHERE inbox_usage.submissions + 1 <= ?"
                " AND inbox_usage.bytes + excluded.bytes <= ? RETURNING submissions",
                site,
                env,
                len(encoded),
                cap.max_submissions,
                cap.max_bytes,
            )
            if not counted:
                raise inbox_full(site, env, cap)
            rows = await db.fetch(
                "INSERT INTO form_submissions (site, env, form, at, fields)"
                " VALUES (?, ?, ?, ?, ?) RETURNING id",
                site,
                env,
                form,
                at,
                encoded,
            )
            await core.enqueue(db, events, now=time.time())
        submission_id = int(rows[0][0])
        return FormSubmission(id=submission_id, site=site, env=env, form=form, at=at, fields=fields)

    async def list_form_submissions(
        self, site: str, env: Env, *, form: str | None, limit: int, before: int | None
    ) -> list[FormSubmission]:
        query, args = _page(
            "SELECT id, env, form, at, fields FROM form_submissions",
            site,
            [("env = ?", env), ("form = ?", form), ("id < ?", before)],
            order="id DESC",
            limit=limit,
        )
        return [_submission(site, r) for r in await self._reads().fetch(query, *args)]

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
        # Sizes first (one more than a page, to know whether more follow), then only
        # the rows that fit in max_bytes read whole.
        db = self._reads()
        filters = [("env = ?", env), ("form = ?", form), ("id < ?", before)]
        query, args = _page(
            f"SELECT id, {db.byte_length}(fields) FROM form_submissions",
            site,
            filters,
            order="id DESC",
            limit=limit + 1,
        )
        sizes = await db.fetch(query, *args)
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
        return InboxPage(
            submissions=[_submission(site, r) for r in await db.fetch(query, *args)],
            more=len(sizes) > len(ids),
        )

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
        async with self._write() as db:
            # The usage row first: deletes and inserts of one inbox queue on it.
            await db.fetch(
                f"SELECT 1 FROM inbox_usage WHERE site = ? AND env = ?{db.for_update}", site, env
            )
            deleted = await db.execute(f"DELETE FROM form_submissions WHERE {where}", *args)
            if deleted:
                await db.execute(
                    "UPDATE inbox_usage SET"
                    " submissions = (SELECT COUNT(*) FROM form_submissions f"
                    "  WHERE f.site = inbox_usage.site AND f.env = inbox_usage.env),"
                    f" bytes = (SELECT COALESCE(SUM({db.byte_length}(fields)), 0)"
                    "  FROM form_submissions f"
                    "  WHERE f.site = inbox_usage.site AND f.env = inbox_usage.env)"
                    " WHERE site = ? AND env = ?",
                    site,
                    env,
                )
        return deleted

    async def inbox_usage(self, site: str, env: Env) -> InboxUsage:
        rows = await self._reads().fetch(
            "SELECT submissions, bytes FROM inbox_usage WHERE site = ? AND env = ?", site, env
        )
        if not rows:
            return InboxUsage(submissions=0, bytes=0)
        return InboxUsage(submissions=int(rows[0][0]), bytes=int(rows[0][1]))

    async def add_page_views(self, counts: Sequence[tuple[str, Env, str, str, int]]) -> None:
        if not counts:
            return
        # Summed first: one row is touched once per statement, in a fixed order
        # (two processes flushing at once never deadlock).
        summed: dict[tuple[str, str, str, str], int] = {}
        for site, env, path, day, views in counts:
            key = (site, env, day, path)
            summed[key] = summed.get(key, 0) + views
        async with self._write() as db:
            await db.executemany(
                "INSERT INTO page_views (site, env, day, path, views) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (site, env, day, path) DO UPDATE"
                " SET views = page_views.views + excluded.views",
                [(*key, views) for key, views in sorted(summed.items())],
            )

    async def page_views(
        self, site: str, env: Env, *, first_day: str, last_day: str, limit: int
    ) -> list[PageViews]:
        rows = await self._reads().fetch(
            "SELECT path, day, views FROM page_views WHERE site = ? AND env = ?"
            " AND day >= ? AND day <= ? ORDER BY day, views DESC, path LIMIT ?",
            site,
            env,
            first_day,
            last_day,
            limit,
        )
        return [PageViews(path=r[0], day=r[1], views=int(r[2])) for r in rows]

    # -- webhook outbox ----------------------------------------------------------------

    async def outbox_depth(self) -> dict[tuple[str, str], int]:
        rows = await self._reads().fetch(
            "SELECT site, env, COUNT(*) FROM outbox WHERE status = 'pending' GROUP BY site, env"
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}

    async def record_delivery(
        self, item_id: int, *, delivered: bool, error: str | None, retry_at: float | None
    ) -> None:
        async with self._write() as db:
            if delivered:
                await db.execute(
                    "UPDATE outbox SET status = 'delivered', attempts = attempts + 1,"
                    " delivered_at = ?, last_error = NULL, lease_until = 0 WHERE id = ?",
                    utc_now(),
                    item_id,
                )
            elif retry_at is None:
                await db.execute(
                    "UPDATE outbox SET status = 'failed', attempts = attempts + 1,"
                    " last_error = ?, lease_until = 0 WHERE id = ?",
                    error,
                    item_id,
                )
            else:
                await db.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_at = ?,"
                    " lease_until = 0 WHERE id = ?",
                    error,
                    retry_at,
                    item_id,
                )

    async def list_outbox(
        self, site: str, env: Env, *, limit: int, before: int | None
    ) -> list[OutboxItem]:
        query, args = _page(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox",
            site,
            [("env = ?", env), ("id < ?", before)],
            order="id DESC",
            limit=limit,
        )
        return [outbox_item_from_row(r) for r in await self._reads().fetch(query, *args)]


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _page(
    select: str, site: str, filters: Sequence[tuple[str, Any]], *, order: str, limit: int
) -> tuple[str, list[Any]]:
    """``select`` for one site, with each ``(clause, value)`` whose value is set."""
    query, args = select + " WHERE site = ?", [site]
    for clause, value in filters:
        if value is not None:
            query += " AND " + clause
            args.append(value)
    return query + f" ORDER BY {order} LIMIT ?", [*args, limit]


def _submission(site: str, row: Any) -> FormSubmission:
    """A ``SELECT id, env, form, at, fields`` row of ``form_submissions``."""
    return FormSubmission(
        id=int(row[0]),
        site=site,
        env=row[1],
        form=row[2],
        at=row[3],
        fields=_fields_decoder.decode(row[4]),
    )
