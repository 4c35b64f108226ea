"""The store core both backends share: their SQL, written once, with ``?`` placeholders.

How this works: a backend hands these functions an :class:`Sql` — its connection (or
transaction) behind a few methods — and the one place where the dialects differ is
the adapter: :class:`edge.snapshots.sqlite` passes statements through, the
PostgreSQL adapter (:class:`PgSql`) numbers the placeholders ``$1, $2...``; each
says how it tests membership in a list (``IN (?, ?...)`` in chunks or
``= ANY(?)``), names a blob's byte length and locks a row it reads. What else
differs (SQLite's write lock versus PostgreSQL's advisory lock, the cluster
generation and NOTIFY) stays in the backend, around these calls; the store methods
made of these calls alone are :class:`edge.snapshots.sqlstore.SqlStore`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import msgspec

from edge.errors import Conflict
from edge.router import ENVS, Env
from edge.snapshots.inbox import page_ids
from edge.snapshots.model import (
    FormSubmission,
    HistoryEntry,
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
from edge.snapshots.retention import (
    Collected,
    Retention,
    collected_refusal,
    kept_snapshots,
    rfc3339,
)
from edge.snapshots.rows import (
    OUTBOX_COLUMNS,
    POINTER_COLUMNS,
    SCHEDULE_COLUMNS,
    outbox_item_from_row,
    pointer_from_row,
    schedule_from_row,
)
from edge.snapshots.store import check_expected

_manifest_decoder = msgspec.json.Decoder(dict[str, ManifestEntry])
_settings_decoder = msgspec.json.Decoder(dict[str, Any])
_fields_decoder = msgspec.json.Decoder(dict[str, str | list[str]])


class Sql(Protocol):
    """One connection or transaction, statements written with ``?`` placeholders."""

    byte_length: str  # the SQL function giving a BLOB's size in bytes
    for_update: str  # appended to a SELECT whose rows the transaction then changes

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        """Every row of a query."""
        ...

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    async def fetch_in(self, sql: str, args: Sequence[Any], values: Sequence[str]) -> list[Any]:
        """The rows of ``sql`` (ending in the text column compared) for any of ``values``."""
        ...

    async def execute_in(self, sql: str, args: Sequence[Any], values: Sequence[str]) -> int:
        """:meth:`execute` ``sql`` (ending in the text column compared) for any of
        ``values``; the number of rows it changed."""
        ...


class PgSql:
    """:class:`Sql` on an asyncpg connection or pool (duck-typed: no asyncpg import)."""

    byte_length = "octet_length"
    for_update = " FOR UPDATE"

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return list(await self._conn.fetch(numbered(sql), *args))

    async def execute(self, sql: str, *args: Any) -> int:
        status = await self._conn.execute(numbered(sql), *args)
        tail = str(status).rpartition(" ")[2]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(numbered(sql), rows)

    async def fetch_in(self, sql: str, args: Sequence[Any], values: Sequence[str]) -> list[Any]:
        if not values:
            return []
        return await self.fetch(sql + " = ANY(?::text[])", *args, list(values))

    async def execute_in(self, sql: str, args: Sequence[Any], values: Sequence[str]) -> int:
        if not values:
            return 0
        return await self.execute(sql + " = ANY(?::text[])", *args, list(values))


@functools.lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2...`` (no statement quotes a ``?``)."""
    parts = sql.split("?")
    out = [parts[0]]
    for i, part in enumerate(parts[1:], start=1):
        out.append(f"${i}{part}")
    return "".join(out)


def page(
    select: str, site: str, filters: Sequence[tuple[str, Any]], *, order: str, limit: int
) -> tuple[str, list[Any]]:
    """``select`` for one site, with each ``(clause, value)`` whose value is set."""
    query, args = select + " WHERE site = ?", [site]
    for clause, value in filters:
        if value is not None:
            query += " AND " + clause
            args.append(value)
    return query + f" ORDER BY {order} LIMIT ?", [*args, limit]


async def enqueue(db: Sql, events: Sequence[OutboxEvent], *, now: float) -> None:
    """Webhook deliveries, in the transaction of what they announce."""
    if not events:
        return
    created = utc_now()
    await db.executemany(
        "INSERT INTO outbox (site, env, event, url, secret_env, payload, status, next_at,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
        [(e.site, e.env, e.event, e.url, e.secret_env, e.payload, now, created) for e in events],
    )


async def read_pointers(db: Sql, site: str) -> dict[Env, Pointer]:
    pointers: dict[Env, Pointer] = {env: Pointer(site=site, env=env) for env in ENVS}
    for row in await db.fetch(f"SELECT {POINTER_COLUMNS} FROM pointers WHERE site = ?", site):
        p = pointer_from_row(row)
        pointers[p.env] = p
    return pointers


async def apply_moves(
    db: Sql,
    site: str,
    moves: Sequence[PointerMove],
    *,
    action: str,
    actor: str,
    complete: Sequence[str],
    at: str,
) -> list[HistoryEntry]:
    """The body of ``move_pointers``, inside the backend's serialized transaction."""
    for schedule_id in complete:
        # Row-locked on PostgreSQL: a node firing the same schedule waits here,
        # then finds it done (0 rows) and rolls back.
        changed = await db.execute(
            "UPDATE schedules SET status = 'done', fired_at = ?"
            " WHERE id = ? AND site = ? AND status = 'pending'",
            at,
            schedule_id,
            site,
        )
        if changed != 1:
            raise Conflict(f"schedule {schedule_id} is no longer pending")
    current = await read_pointers(db, site)
    check_expected(current, moves)
    entries: list[HistoryEntry] = []
    for move in moves:
        if move.to == move.expect:
            # No pointer move: a guard, and perhaps a new sync base.
            if move.base != current[move.env].base:
                await db.execute(
                    "UPDATE pointers SET base = ? WHERE site = ? AND env = ?",
                    move.base,
                    site,
                    move.env,
                )
            continue
        # Serialized with collections (same lock): a snapshot collected after the
        # caller loaded it is refused here, never pointed at.
        if await was_collected(db, site, move.to):
            raise collected_refusal(move.to)
        await db.execute(
            "INSERT INTO pointers (site, env, snapshot, base, updated_at, actor)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site, env) DO UPDATE SET"
            " snapshot = excluded.snapshot, base = excluded.base,"
            " updated_at = excluded.updated_at, actor = excluded.actor",
            site,
            move.env,
            move.to,
            move.base,
            at,
            actor,
        )
        rows = await db.fetch(
            "INSERT INTO history (site, env, at, from_snapshot, to_snapshot, action,"
            " actor) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            site,
            move.env,
            at,
            move.expect,
            move.to,
            action,
            actor,
        )
        entries.append(
            HistoryEntry(
                id=int(rows[0][0]),
                at=at,
                env=move.env,
                from_=move.expect,
                to=move.to,
                action=action,
                actor=actor,
            )
        )
    return entries


async def add_preview_link(db: Sql, site: str, snapshot: str, expires: float) -> None:
    await db.execute(
        "INSERT INTO preview_links (site, snapshot, expires) VALUES (?, ?, ?)"
        " ON CONFLICT (site, snapshot) DO UPDATE SET expires ="
        " CASE WHEN excluded.expires > preview_links.expires THEN excluded.expires"
        " ELSE preview_links.expires END",
        site,
        snapshot,
        expires,
    )


async def was_collected(db: Sql, site: str, snapshot_id: str) -> bool:
    rows = await db.fetch(
        "SELECT 1 FROM collected_snapshots WHERE site = ? AND id = ?", site, snapshot_id
    )
    return bool(rows)


async def collect(
    db: Sql,
    site: str,
    policy: Retention,
    *,
    dry_run: bool,
    now: float,
    lock_blobs: Callable[[list[str]], Awaitable[None]] | None = None,
) -> tuple[Collected, list[str]]:
    """Remove what ``policy`` does not keep, inside the backend's serialized transaction.

    Returns what went and the hashes whose rows went (their bytes may now be
    unreferenced: the backend removes those no site holds any more). ``lock_blobs``
    is called with those hashes (sorted) before any row goes: PostgreSQL takes the
    per-blob locks uploads take, in the same order they would be waited on.
    """
    young = rfc3339(now - policy.grace_seconds)
    snapshots = await db.fetch("SELECT id, created_at FROM snapshots WHERE site = ?", site)
    pointers = await db.fetch("SELECT snapshot, base FROM pointers WHERE site = ?", site)
    schedules = await db.fetch(
        "SELECT snapshot, base FROM schedules WHERE site = ? AND status = 'pending'", site
    )
    previews = await db.fetch(
        "SELECT snapshot FROM preview_links WHERE site = ? AND expires > ?", site, now
    )
    moves = await db.fetch(
        "SELECT from_snapshot, to_snapshot FROM history WHERE site = ? AND env = 'production'"
        " ORDER BY id DESC LIMIT ?",
        site,
        policy.keep_production_moves,
    )
    kept = kept_snapshots(
        pointers=[i for row in pointers for i in row],
        schedules=[i for row in schedules for i in row],
        previews=[row[0] for row in previews],
        production_moves=[i for row in moves for i in row],
        young=[row[0] for row in snapshots if row[1] >= young],
    )
    doomed = sorted(row[0] for row in snapshots if row[0] not in kept)
    referenced: set[str] = set()
    for snapshot_id in kept:
        rows = await db.fetch(
            "SELECT manifest FROM snapshots WHERE site = ? AND id = ?", site, snapshot_id
        )
        if rows:
            files = _manifest_decoder.decode(bytes(rows[0][0]))
            referenced.update(entry.sha256 for entry in files.values())
    blobs = await db.fetch(
        "SELECT sha256, size FROM blobs WHERE site = ? AND touched_at < ?",
        site,
        now - policy.grace_seconds,
    )
    unreferenced = [(row[0], int(row[1])) for row in blobs if row[0] not in referenced]
    if dry_run:
        return Collected(
            dry_run=True,
            snapshots=doomed,
            blobs=len(unreferenced),
            bytes=sum(size for _, size in unreferenced),
        ), []
    if lock_blobs is not None:
        await lock_blobs(sorted(sha256 for sha256, _ in unreferenced))
    at = utc_now()
    for snapshot_id in doomed:
        await db.execute("DELETE FROM snapshots WHERE site = ? AND id = ?", site, snapshot_id)
        await db.execute(
            "INSERT INTO collected_snapshots (site, id, at) VALUES (?, ?, ?)"
            " ON CONFLICT (site, id) DO NOTHING",
            site,
            snapshot_id,
            at,
        )
    released: list[tuple[str, int]] = []
    for sha256, size in unreferenced:
        # Touched again meanwhile (an upload that waited for nothing, or committed
        # while lock_blobs waited): it stays.
        deleted = await db.execute(
            "DELETE FROM blobs WHERE site = ? AND sha256 = ? AND touched_at < ?",
            site,
            sha256,
            now - policy.grace_seconds,
        )
        if deleted:
            released.append((sha256, size))
    await db.execute("DELETE FROM preview_links WHERE site = ? AND expires <= ?", site, now)
    result = Collected(
        dry_run=False,
        snapshots=doomed,
        blobs=len(released),
        bytes=sum(size for _, size in released),
    )
    return result, [sha256 for sha256, _ in released]


async def unheld(db: Sql, hashes: Sequence[str]) -> list[str]:
    """Those of ``hashes`` no site holds a row for (their bytes may go)."""
    gone: list[str] = []
    for sha256 in hashes:
        if not await db.fetch("SELECT 1 FROM blobs WHERE sha256 = ? LIMIT 1", sha256):
            gone.append(sha256)
    return gone


# -- reads both backends answer alike ---------------------------------------------------


async def get_snapshot(db: Sql, site: str, snapshot_id: str) -> Snapshot | None:
    rows = await db.fetch(
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
    db: Sql, site: str, *, limit: int, before: str | None
) -> list[SnapshotInfo]:
    query, args = page(
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
        for r in await db.fetch(query, *args)
    ]


async def all_pointers(db: Sql) -> list[Pointer]:
    return [pointer_from_row(r) for r in await db.fetch(f"SELECT {POINTER_COLUMNS} FROM pointers")]


async def history(
    db: Sql, site: str, *, env: Env | None, limit: int, before: int | None
) -> list[HistoryEntry]:
    query, args = page(
        "SELECT id, at, env, from_snapshot, to_snapshot, action, actor FROM history",
        site,
        [("env = ?", env), ("id < ?", before)],
        order="id DESC",
        limit=limit,
    )
    return [
        HistoryEntry(id=int(r[0]), at=r[1], env=r[2], from_=r[3], to=r[4], action=r[5], actor=r[6])
        for r in await db.fetch(query, *args)
    ]


async def list_schedules(db: Sql, site: str, *, status: str | None, limit: int) -> list[Schedule]:
    query, args = page(
        f"SELECT {SCHEDULE_COLUMNS} FROM schedules",
        site,
        [("status = ?", status)],
        order="at DESC, id DESC",
        limit=limit,
    )
    return [schedule_from_row(r) for r in await db.fetch(query, *args)]


async def get_schedule(db: Sql, site: str, schedule_id: str) -> Schedule | None:
    rows = await db.fetch(
        f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE site = ? AND id = ?", site, schedule_id
    )
    return schedule_from_row(rows[0]) if rows else None


async def pending_schedules(db: Sql, *, due_by: str | None = None) -> list[Schedule]:
    """Pending schedules, earliest first; only those due by ``due_by`` when given."""
    if due_by is None:
        rows = await db.fetch(
            f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE status = 'pending' ORDER BY at, id"
        )
    else:
        rows = await db.fetch(
            f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE status = 'pending' AND at <= ?"
            " ORDER BY at, id",
            due_by,
        )
    return [schedule_from_row(r) for r in rows]


async def next_schedule_moment(db: Sql) -> str | None:
    """The earliest pending moment, from the ``(status, at)`` index alone."""
    rows = await db.fetch("SELECT MIN(at) FROM schedules WHERE status = 'pending'")
    moment: str | None = rows[0][0] if rows else None
    return moment


async def list_form_submissions(
    db: Sql, site: str, env: Env, *, form: str | None, limit: int, before: int | None
) -> list[FormSubmission]:
    query, args = page(
        "SELECT id, env, form, at, fields FROM form_submissions",
        site,
        [("env = ?", env), ("form = ?", form), ("id < ?", before)],
        order="id DESC",
        limit=limit,
    )
    return [_submission(site, r) for r in await db.fetch(query, *args)]


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


async def inbox_usage(db: Sql, site: str, env: Env) -> InboxUsage:
    rows = await db.fetch(
        "SELECT submissions, bytes FROM inbox_usage WHERE site = ? AND env = ?", site, env
    )
    if not rows:
        return InboxUsage(submissions=0, bytes=0)
    return InboxUsage(submissions=int(rows[0][0]), bytes=int(rows[0][1]))


async def page_views(
    db: Sql, site: str, env: Env, *, first_day: str, last_day: str, limit: int
) -> list[PageViews]:
    rows = await db.fetch(
        "SELECT path, day, views FROM page_views WHERE site = ? AND env = ?"
        " AND day >= ? AND day <= ? ORDER BY day, views DESC, path LIMIT ?",
        site,
        env,
        first_day,
        last_day,
        limit,
    )
    return [PageViews(path=r[0], day=r[1], views=int(r[2])) for r in rows]


async def list_outbox(
    db: Sql, site: str, env: Env, *, limit: int, before: int | None
) -> list[OutboxItem]:
    query, args = page(
        f"SELECT {OUTBOX_COLUMNS} FROM outbox",
        site,
        [("env = ?", env), ("id < ?", before)],
        order="id DESC",
        limit=limit,
    )
    return [outbox_item_from_row(r) for r in await db.fetch(query, *args)]


async def blob_sizes(db: Sql, site: str, hashes: Sequence[str]) -> dict[str, int]:
    rows = await db.fetch_in(
        "SELECT sha256, size FROM blobs WHERE site = ? AND sha256",
        [site],
        list(dict.fromkeys(hashes)),
    )
    return {row[0]: int(row[1]) for row in rows}


async def snapshot_messages(db: Sql, site: str, ids: Sequence[str]) -> dict[str, str]:
    rows = await db.fetch_in(
        "SELECT id, message FROM snapshots WHERE site = ? AND id", [site], sorted(set(ids))
    )
    return {r[0]: r[1] for r in rows}


async def inbox_page(
    db: Sql,
    site: str,
    env: Env,
    *,
    form: str | None,
    limit: int,
    before: int | None,
    max_bytes: int,
) -> InboxPage:
    """Sizes first (one more than a page, to know whether more follow), then only the
    rows that fit in ``max_bytes`` read whole."""
    filters = [("env = ?", env), ("form = ?", form), ("id < ?", before)]
    query, args = page(
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
    query, args = page(
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


async def outbox_depth(db: Sql) -> dict[tuple[str, str], int]:
    rows = await db.fetch(
        "SELECT site, env, COUNT(*) FROM outbox WHERE status = 'pending' GROUP BY site, env"
    )
    return {(r[0], r[1]): int(r[2]) for r in rows}
