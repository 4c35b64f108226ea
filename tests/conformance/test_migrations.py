"""A store written by an older edge opens in a newer one; a newer one is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest

from edge.snapshots import pg_schema, sqlite
from edge.snapshots.postgres import PostgresStore
from edge.snapshots.sqlite import SqliteStore


def test_sqlite_versions_are_a_chain() -> None:
    assert sqlite.SCHEMA_VERSION == len(sqlite._MIGRATIONS) >= 3


async def test_sqlite_store_at_schema_v1_opens_and_migrates(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(sqlite._MIGRATIONS[0])
    db.execute(
        "INSERT INTO pointers (site, env, snapshot, base, updated_at, actor)"
        " VALUES ('alpha', 'production', 'snap1', NULL, '2020-01-01T00:00:00.000Z', 'old')"
    )
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()

    store = await SqliteStore.open(path)
    try:
        pointers = await store.get_pointers("alpha")
        assert pointers["production"].snapshot == "snap1"
        # Tables of later versions exist and work.
        assert await store.pending_schedules() == []
        await store.add_form_submission("alpha", "production", "f", {"a": "1"})
    finally:
        await store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == sqlite.SCHEMA_VERSION
    db.close()


async def test_sqlite_store_from_a_newer_edge_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite3"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {sqlite.SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer edge"):
        await SqliteStore.open(path)


async def test_postgres_store_at_schema_v1_opens_and_migrates(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await pg_schema.migrate(conn, upto=1) == 0
        await conn.execute(
            "INSERT INTO pointers (site, env, snapshot, base, updated_at, actor)"
            " VALUES ('alpha', 'production', 'snap1', NULL, '2020-01-01T00:00:00.000Z', 'old')"
        )
    finally:
        await conn.close()

    store = await PostgresStore.open(pg_dsn)
    try:
        assert (await store.get_pointers("alpha"))["production"].snapshot == "snap1"
        assert await store.generation() == 0
        assert await store.live_nodes(60) == {}
    finally:
        await store.close()
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT version FROM edge_schema") == pg_schema.SCHEMA_VERSION
        # Opening again finds it current and changes nothing.
        assert await pg_schema.migrate(conn) == pg_schema.SCHEMA_VERSION
    finally:
        await conn.close()


async def test_postgres_store_from_a_newer_edge_is_refused(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await pg_schema.migrate(conn)
        await conn.execute("UPDATE edge_schema SET version = version + 1")
    finally:
        await conn.close()
    with pytest.raises(RuntimeError, match="newer edge"):
        await PostgresStore.open(pg_dsn)
