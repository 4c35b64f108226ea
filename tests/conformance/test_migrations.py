"""A store written by an older edge opens in a newer one; a newer one is refused."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from edge.snapshots import pg_schema, sqlite
from edge.snapshots.postgres import PostgresStore
from edge.snapshots.sqlite import SqliteStore
from tests.legacy_store import write_release_store


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


async def test_sqlite_store_of_the_release_with_blobs_in_rows_moves_them_to_files(
    tmp_path: Path,
) -> None:
    files = {"/index.html": b"<h1>old</h1>", "/big.bin": bytes(range(256)) * 5000}
    snapshot_id = write_release_store(tmp_path, "alpha", files)
    store = await SqliteStore.open(tmp_path / "edge.sqlite3")
    try:
        assert (await store.get_pointers("alpha"))["production"].snapshot == snapshot_id
        snapshot = await store.get_snapshot("alpha", snapshot_id)
        assert snapshot is not None
        for path, data in files.items():
            digest = snapshot.files[path].sha256
            assert await store.get_blob("alpha", digest) == data
            on_disk = tmp_path / "blobs" / digest[:2] / digest[2:]
            assert on_disk.read_bytes() == data
        assert await store.missing_blobs("alpha", [s.sha256 for s in snapshot.files.values()]) == []
    finally:
        await store.close()
    db = sqlite3.connect(tmp_path / "edge.sqlite3")
    columns = [row[1] for row in db.execute("PRAGMA table_info(blobs)")]
    db.close()
    assert "data" not in columns  # only metadata stays in the database
    # Opening again (already migrated) changes nothing.
    store = await SqliteStore.open(tmp_path / "edge.sqlite3")
    await store.close()


def test_asyncpg_is_imported_only_with_the_postgres_store() -> None:
    code = (
        "import sys, edge.server, edge.cli.main, edge.supervisor, edge.snapshots.backends;"
        " assert 'asyncpg' not in sys.modules, 'asyncpg imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_postgres_store_of_the_release_with_blobs_in_rows_serves_them(
    pg_dsn: str, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 9000  # over one chunk of the new layout
    digest = hashlib.sha256(data).hexdigest()
    conn = await asyncpg.connect(pg_dsn)
    try:
        await pg_schema.migrate(conn, upto=pg_schema.SCHEMA_VERSION - 1)
        for site in ("alpha", "beta"):  # the same bytes held by two sites
            await conn.execute(
                "INSERT INTO blobs (site, sha256, size, data, created_at)"
                " VALUES ($1, $2, $3, $4, '2026-01-01T00:00:00.000Z')",
                site,
                digest,
                len(data),
                data,
            )
    finally:
        await conn.close()
    store = await PostgresStore.open(pg_dsn, blob_cache=tmp_path / "cache")
    try:
        assert await store.get_blob("alpha", digest) == data
        assert await store.get_blob("beta", digest) == data
        assert (tmp_path / "cache" / digest[:2] / digest[2:]).read_bytes() == data
    finally:
        await store.close()
