"""What only the shared PostgreSQL store has: cluster secrets, outage errors."""

from __future__ import annotations

import asyncpg
import pytest

from edge.errors import StoreUnavailable
from edge.snapshots.postgres import PostgresStore


async def test_postgres_shared_secret_is_made_once_for_every_node(pg_dsn: str) -> None:
    one, two = await PostgresStore.open(pg_dsn), await PostgresStore.open(pg_dsn)
    try:
        first = await one.shared_secret("preview-key", 32)
        assert len(first) == 32
        assert await two.shared_secret("preview-key", 32) == first
        assert await two.shared_secret("other", 32) != first
    finally:
        await one.close()
        await two.close()


async def test_a_lost_database_is_a_503_not_a_crash(pg_dsn: str) -> None:
    store = await PostgresStore.open(pg_dsn)
    await store.close()
    with pytest.raises(StoreUnavailable) as caught:
        await store.get_pointers("alpha")
    assert caught.value.status == 503


async def test_reads_survive_terminated_connections(pg_dsn: str) -> None:
    store = await PostgresStore.open(pg_dsn, application_name="edge victim")
    admin = await asyncpg.connect(pg_dsn)
    try:
        await store.get_pointers("alpha")
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'edge victim'"
        )
        assert killed >= 1
        # Reads retry once on a fresh connection: the blip costs no request.
        for _ in range(3):
            pointers = await store.get_pointers("alpha")
            assert pointers["production"].snapshot is None
    finally:
        await admin.close()
        await store.close()
