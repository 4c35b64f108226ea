"""Shared fixtures of the unit tests."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.snapshots.sqlite import SqliteStore

PAGE = b"<html><head></head><body>home</body></html>"
DIGEST = hashlib.sha256(PAGE).hexdigest()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A real SQLite store holding one blob for site ``acme``: :data:`PAGE`."""
    opened = await SqliteStore.open(tmp_path / "edge.sqlite3")
    try:
        await opened.put_blob("acme", DIGEST, PAGE)
        yield opened
    finally:
        await opened.close()
