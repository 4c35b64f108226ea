"""The store core both backends share: the SQL adapter and the transactions' steps.

How this works: a backend hands these functions an :class:`Sql` — its connection (or
transaction) behind a few methods — and the one place where the dialects differ is
the adapter: :class:`edge.snapshots.sqlite` passes statements through, the
PostgreSQL adapter (:class:`PgSql`) numbers the placeholders ``$1, $2...``; each
says how it tests membership in a list (``IN (?, ?...)`` in chunks or
``= ANY(?)``), names a blob's byte length and locks a row it reads. The steps here
(a pointer move's compare-and-swap and history, a collection, webhook events) run
inside the backend's own transaction: what differs around them (SQLite's write
lock versus PostgreSQL's advisory locks, the cluster generation and NOTIFY) stays
in the backend. The store methods made of one statement or transaction each are
:class:`edge.snapshots.sqlstore.SqlStore`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import msgspec

from edge.errors import Conflict
from edge.router import ENVS, Env
from edge.snapshots.model import (
    HistoryEntry,
    ManifestEntry,
    OutboxEvent,
    Pointer,
    PointerMove,
    utc_now,
)
from edge.snapshots.retention import (
    Collected,
    Retention,
    collected_refusal,
    kept_snapshots,
    rfc3339,
)
from edge.snapshots.rows import POINTER_COLUMNS, pointer_from_row
from edge.snapshots.store import check_expected

_manifest_decoder = msgspec.json.Decoder(dict[str, ManifestEntry])


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
