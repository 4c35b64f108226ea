"""What only the shared PostgreSQL store has: cluster secrets, outage errors."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

from edge.errors import StoreUnavailable
from edge.snapshots.model import PointerMove
from edge.snapshots.postgres import PostgresStore
from tests.conformance.test_blobs_and_gc import NO_GRACE, move, read_file
from tests.conformance.test_store import SITE, make_snapshot, sha
from tests.waiting import eventually


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
    # Writes too, the shared ones (one transaction) and the backend's own.
    with pytest.raises(StoreUnavailable):
        await store.add_form_submission("alpha", "production", "contact", {"a": "1"})
    with pytest.raises(StoreUnavailable):
        await store.move_pointers(
            "alpha",
            [PointerMove(env="staging", expect=None, to="x", base=None)],
            action="set",
            actor="t",
        )
    with pytest.raises(StoreUnavailable):
        await store.inbox_page("alpha", "production", form=None, limit=5, before=None, max_bytes=9)


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
        await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'edge victim'"
        )
        assert await store.history("alpha", env=None, limit=5) == []
        await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'edge victim'"
        )
        page = await store.inbox_page(
            "alpha", "production", form=None, limit=5, before=None, max_bytes=9
        )
        assert page.submissions == [] and not page.more
    finally:
        await admin.close()
        await store.close()


async def test_a_read_survives_every_pooled_connection_terminated(pg_dsn: str) -> None:
    """A server restart kills every pooled connection at once: the retry must not be
    handed another dead one (the CI failure of stop 21)."""
    store = await PostgresStore.open(pg_dsn, application_name="edge crowd")
    admin = await asyncpg.connect(pg_dsn)
    try:
        # Hold three connections at once so the pool keeps three.
        async with store._pool.acquire(), store._pool.acquire(), store._pool.acquire():
            pass
        assert len(await _backends(admin)) == 3
        for read in range(3):
            killed = await _backends(admin)
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", killed
            )
            await eventually(
                lambda: _backends(admin),
                lambda now, killed=killed: not set(killed) & set(now),
                what="the terminated backends gone",
            )
            if read == 0:
                assert await store.history("alpha", env=None, limit=5) == []
            elif read == 1:
                page = await store.inbox_page(
                    "alpha", "production", form=None, limit=5, before=None, max_bytes=9
                )
                assert page.submissions == []
            else:
                assert (await store.get_pointers("alpha"))["production"].snapshot is None
    finally:
        await admin.close()
        await store.close()


class _Hop:
    """A TCP hop in front of the database that can lose every connection through it
    the way a restart behind a load balancer does: the server side is gone, and the
    client learns it only when it next sends (its socket is reset then). A database
    on this machine, by contrast, tells asyncpg at once, and asyncpg's pool replaces
    the connections it was told about before anyone asks for them."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        self._host = query.pop("host", [parts.hostname or "localhost"])[0]
        self._port = int(query.pop("port", [str(parts.port or 5432)])[0])
        self._dsn = parts
        self._query = urlencode(query, doseq=True)
        self._lost: list[asyncio.Event] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        """The DSN through this hop."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        user = self._dsn.netloc.rpartition("@")[0]
        netloc = f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"
        return urlunsplit(self._dsn._replace(netloc=netloc, query=self._query))

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    def lose_all(self) -> None:
        for lost in self._lost:
            lost.set()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._host.startswith("/"):
            socket_path = f"{self._host}/.s.PGSQL.{self._port}"
            up_reader, up_writer = await asyncio.open_unix_connection(socket_path)
        else:
            up_reader, up_writer = await asyncio.open_connection(self._host, self._port)
        lost = asyncio.Event()
        self._lost.append(lost)

        async def to_server() -> None:
            while data := await reader.read(65536):
                if lost.is_set():
                    writer.transport.abort()  # the client finds out now
                    return
                up_writer.write(data)
            up_writer.close()

        async def to_client() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
            if not lost.is_set():
                writer.close()

        async def lose() -> None:
            await lost.wait()
            up_writer.transport.abort()  # the server's side goes; the client's stays open

        tasks = [asyncio.ensure_future(t()) for t in (to_server, to_client, lose)]
        try:
            await asyncio.wait(tasks[:2])
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_read_survives_every_pooled_connection_lost_unnoticed(pg_dsn: str) -> None:
    """Several pooled connections are dead and the pool does not know it: the read's
    retry must not be handed another of them (it was, a 503: the CI failure of stop 21)."""
    hop = _Hop(pg_dsn)
    async with hop as dsn:
        store = await PostgresStore.open(dsn)
        try:
            async with store._pool.acquire(), store._pool.acquire(), store._pool.acquire():
                pass  # three pooled connections, all through the hop
            hop.lose_all()
            assert await store.history("alpha", env=None, limit=5) == []
            hop.lose_all()
            page = await store.inbox_page(
                "alpha", "production", form=None, limit=5, before=None, max_bytes=9
            )
            assert page.submissions == []
            hop.lose_all()
            assert (await store.get_pointers("alpha"))["production"].snapshot is None
            # A write is not retried (it may have reached the database): it answers
            # 503, and the next one is not handed another dead connection.
            async with store._pool.acquire(), store._pool.acquire(), store._pool.acquire():
                pass
            hop.lose_all()
            with pytest.raises(StoreUnavailable):
                await store.add_form_submission("alpha", "production", "contact", {"a": "1"})
            await store.add_form_submission("alpha", "production", "contact", {"a": "2"})
        finally:
            await store.close()


async def _backends(admin: asyncpg.Connection) -> list[int]:
    """The server processes of the store's connections."""
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'edge crowd'"
    )
    return [row["pid"] for row in rows]


async def test_a_nodes_cache_sweep_drops_collected_and_idle_unserved_blobs_only(
    pg_dsn: str, tmp_path: Path
) -> None:
    one = await PostgresStore.open(pg_dsn, blob_cache=tmp_path / "one")
    two = await PostgresStore.open(pg_dsn, blob_cache=tmp_path / "two")
    try:
        gone, served, idle, fresh = (b"collected", b"served", b"idle, unserved", b"fresh")
        await one.put_blob(SITE, sha(gone), gone)
        snapshot = await make_snapshot(one, {"/s": served, "/i": idle, "/f": fresh})
        await move(one, "staging", None, snapshot.id)
        for data in (gone, served, idle, fresh):  # node two caches every one of them
            assert await read_file(two, SITE, sha(data)) == data
        cache = tmp_path / "two"
        past = time.time() - 7200
        for data in (served, idle):
            os.utime(cache / sha(data)[:2] / sha(data)[2:], (past, past))
        result = await one.collect(SITE, NO_GRACE, dry_run=False, now=time.time() + 1)
        assert result.blobs == 1

        removed = await two.sweep_cache({sha(served)}, idle_before=time.time() - 3600)
        assert removed == 2
        left = {p.parent.name + p.name for p in cache.glob("??/*")}
        assert left == {sha(served), sha(fresh)}
        # An idle file is only a copy: the next read fetches it again.
        assert await read_file(two, SITE, sha(idle)) == idle
        assert await read_file(two, SITE, sha(gone)) is None
        assert await two.sweep_cache({sha(served)}, idle_before=time.time() - 3600) == 0
    finally:
        await one.close()
        await two.close()
