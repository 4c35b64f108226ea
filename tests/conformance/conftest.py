"""One store fixture, two backends: every test here runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from edge.snapshots.postgres import PostgresStore
from edge.snapshots.sqlite import SqliteStore
from edge.snapshots.store import Store

OpenStore = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backing(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The SQLite file, or a fresh PostgreSQL database's DSN."""
    if backend == "sqlite":
        return str(tmp_path / "edge.sqlite3")
    return str(request.getfixturevalue("pg_dsn"))


@pytest.fixture
async def open_store(backend: str, backing: str) -> AsyncIterator[OpenStore]:
    """Opens another store instance on the same backing database (as another node would)."""
    opened: list[Store] = []
    if backend == "sqlite":

        async def open_one() -> Store:
            opened.append(await SqliteStore.open(Path(backing)))
            return opened[-1]
    else:

        async def open_one() -> Store:
            opened.append(await PostgresStore.open(backing, pool_size=4))
            return opened[-1]

    try:
        yield open_one
    finally:
        for store in opened:
            await store.close()


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    return await open_store()
