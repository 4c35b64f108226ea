"""Rows of the stores' tables as model objects: one mapping for SQLite and PostgreSQL.

Both stores select the same columns in the same order (the ``*_COLUMNS`` strings),
so a row is read the same way whichever database it came from.
"""

from __future__ import annotations

from typing import Any

import msgspec

from edge.snapshots.model import OutboxItem, Pointer, Schedule

SCHEDULE_COLUMNS = (
    "id, site, at, snapshot, base, paths, settings, status, error, created_at, actor, fired_at"
)
OUTBOX_COLUMNS = (
    "id, site, env, event, url, secret_env, payload, attempts, status, created_at, last_error,"
    " delivered_at"
)
POINTER_COLUMNS = "site, env, snapshot, base, updated_at, actor"

_paths_decoder = msgspec.json.Decoder(list[str])


def schedule_from_row(row: Any) -> Schedule:
    return Schedule(
        id=row[0],
        site=row[1],
        at=row[2],
        snapshot=row[3],
        base=row[4],
        paths=None if row[5] is None else _paths_decoder.decode(row[5]),
        settings=bool(row[6]),
        status=row[7],
        error=row[8],
        created_at=row[9],
        actor=row[10],
        fired_at=row[11],
    )


def pointer_from_row(row: Any) -> Pointer:
    return Pointer(
        site=row[0], env=row[1], snapshot=row[2], base=row[3], updated_at=row[4], actor=row[5]
    )


def outbox_item_from_row(row: Any) -> OutboxItem:
    return OutboxItem(
        id=int(row[0]),
        site=row[1],
        env=row[2],
        event=row[3],
        url=row[4],
        secret_env=row[5],
        payload=bytes(row[6]),
        attempts=row[7],
        status=row[8],
        created_at=row[9],
        last_error=row[10],
        delivered_at=row[11],
    )
