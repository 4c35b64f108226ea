"""Fixtures shared by every test folder: a real PostgreSQL, started only when asked for."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from tests.pgserver import create_database, drop_database, postgres_server, with_database


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    with postgres_server() as dsn:
        yield dsn


T = TypeVar("T")


def run_aside(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a loop of its own (from sync code, any thread)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=60)


@pytest.fixture
def pg_dsn(pg_admin_dsn: str) -> Iterator[str]:
    """A fresh, empty database of its own for one test (sync: usable from any fixture)."""
    name = run_aside(create_database(pg_admin_dsn))
    try:
        yield with_database(pg_admin_dsn, name)
    finally:
        run_aside(drop_database(pg_admin_dsn, name))
