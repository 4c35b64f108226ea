"""What both stores are: every store method whose logic is the same on SQLite and
on PostgreSQL, written once over :class:`edge.snapshots.core.Sql`.

How this works: a backend subclasses :class:`SqlStore` and supplies only what
differs. :meth:`~SqlStore._read` runs a read on its read connection (PostgreSQL
tries a dead pooled connection once more); :meth:`~SqlStore._write` is one
serialized write transaction (SQLite's write lock; PostgreSQL's transaction, with
the site's advisory lock when a ``site`` is named); its :class:`Sql` adapter holds
the dialect; :meth:`~SqlStore._pointers_moved` and
:meth:`~SqlStore._schedules_changed` tell the other nodes, where there are any.
Blob bytes, collection and the outbox's leases differ too much to share: the
backends keep those whole.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import msgspec

from edge.errors import Conflict, MissingBlobs, NotFound
from edge.router import Env
from edge.snapshots import core
from edge.snapshots.core import Sql
from edge.snapshots.inbox import inbox_cap, inbox_full
from edge.snapshots.model import (
    FormSubmission,
    HistoryEntry,
    InboxLimits,
    InboxPage,
    InboxUsage,
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
from edge.snapshots.rows import SCHEDULE_COLUMNS

_P = ParamSpec("_P")
_T = TypeVar("_T")
_encoder = msgspec.json.Encoder()


class SqlStore(abc.ABC):
    """The :class:`edge.snapshots.store.Store` methods both backends answer alike."""

    # -- what a backend supplies -------------------------------------------------------

    @abc.abstractmethod
    async def _read(
        self,
        query: Callable[Concatenate[Sql, _P], Awaitable[_T]],
        /,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """``query(sql, *args, **kwargs)`` on the connection reads use."""

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
        return await self._read(core.blob_sizes, site, hashes)

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
            await core.add_preview_link(db, site, snapshot, expires)

    async def was_collected(self, site: str, snapshot_id: str) -> bool:
        return await self._read(core.was_collected, site, snapshot_id)

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
        return await self._read(core.get_snapshot, site, snapshot_id)

    async def list_snapshots(
        self, site: str, *, limit: int, before: str | None = None
    ) -> list[SnapshotInfo]:
        return await self._read(core.list_snapshots, site, limit=limit, before=before)

    async def snapshot_messages(self, site: str, ids: Sequence[str]) -> dict[str, str]:
        return await self._read(core.snapshot_messages, site, ids)

    # -- pointers ----------------------------------------------------------------------

    async def get_pointers(self, site: str) -> dict[Env, Pointer]:
        return await self._read(core.read_pointers, site)

    async def all_pointers(self) -> list[Pointer]:
        return await self._read(core.all_pointers)

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
        return await self._read(core.history, site, env=env, limit=limit, before=before)

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
        return await self._read(core.list_schedules, site, status=status, limit=limit)

    async def get_schedule(self, site: str, schedule_id: str) -> Schedule | None:
        return await self._read(core.get_schedule, site, schedule_id)

    async def pending_schedules(self, *, due_by: str | None = None) -> list[Schedule]:
        return await self._read(core.pending_schedules, due_by=due_by)

    async def next_schedule_moment(self) -> str | None:
        return await self._read(core.next_schedule_moment)

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
        return await self._read(
            core.list_form_submissions, site, env, form=form, limit=limit, before=before
        )

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
        return await self._read(
            core.inbox_page,
            site,
            env,
            form=form,
            limit=limit,
            before=before,
            max_bytes=max_bytes,
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
        return await self._read(core.inbox_usage, site, env)

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
        return await self._read(
            core.page_views, site, env, first_day=first_day, last_day=last_day, limit=limit
        )

    # -- webhook outbox ----------------------------------------------------------------

    async def outbox_depth(self) -> dict[tuple[str, str], int]:
        return await self._read(core.outbox_depth)

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
        return await self._read(core.list_outbox, site, env, limit=limit, before=before)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data
