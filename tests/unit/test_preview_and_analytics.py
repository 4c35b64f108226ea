"""The preview key and page-view flushing, on real files and a real SQLite store."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.router import Route
from edge.snapshots.sqlite import open_sqlite_store
from edge.visitor.analytics import PageViewCounter
from edge.visitor.preview import KEY_BYTES, PreviewSigner, load_key
from tests.waiting import eventually


def test_concurrent_first_starts_share_one_full_key(tmp_path: Path) -> None:
    for attempt in range(20):
        data_dir = tmp_path / str(attempt)
        with ThreadPoolExecutor(8) as pool:
            keys = list(pool.map(load_key, [data_dir] * 8))
        assert len(set(keys)) == 1 and len(keys[0]) == KEY_BYTES


def test_an_empty_or_short_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "preview.key").write_bytes(b"")
    with pytest.raises(ConfigError):
        load_key(tmp_path)


def test_tokens_are_bound_to_site_and_key(tmp_path: Path) -> None:
    signer = PreviewSigner(load_key(tmp_path))
    token = signer.sign("acme", "snap1", ttl=60)
    assert signer.verify(token, "acme") is not None
    assert signer.verify(token, "other") is None
    assert PreviewSigner(b"\0" * KEY_BYTES).verify(token, "acme") is None
    assert signer.verify(signer.sign("acme", "snap1", ttl=-1), "acme") is None


async def test_a_flush_cancelled_at_shutdown_loses_no_counts(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path) as store:
        views = PageViewCounter()
        route = Route("acme", "production")
        for _ in range(100):
            views.count(route, "/index.html")
        flush = asyncio.ensure_future(views.flush(store))
        await asyncio.sleep(0)
        flush.cancel()
        with pytest.raises(asyncio.CancelledError):
            await flush
        await views.flush(store)  # the final flush at shutdown

        async def counted() -> int:
            rows = await store.page_views(
                "acme", "production", first_day="2000-01-01", last_day="2999-12-31", limit=10
            )
            return sum(r.views for r in rows)

        # The shielded write finishes; a count lost or doubled never settles at 100.
        assert await eventually(counted, lambda n: n >= 100, what="the views") == 100


async def test_views_are_counted_per_utc_day_across_midnight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_700_006_400.0 - 2]  # two seconds before a UTC midnight
    monkeypatch.setattr("edge.visitor.analytics.time.time", lambda: now[0])
    views = PageViewCounter()
    production, staging = Route("acme", "production"), Route("acme", "staging")
    views.count(production, "/a.html")
    views.count_key(PageViewCounter.key(production, "/a.html"))
    views.count(staging, "/a.html")
    now[0] += 4  # the next day
    views.count(production, "/a.html")
    async with open_sqlite_store(tmp_path) as store:
        await views.flush(store)
        rows = await store.page_views(
            "acme", "production", first_day="2000-01-01", last_day="2999-12-31", limit=10
        )
        staged = await store.page_views(
            "acme", "staging", first_day="2000-01-01", last_day="2999-12-31", limit=10
        )
    assert sorted((r.day, r.views) for r in rows) == [("2023-11-14", 2), ("2023-11-15", 1)]
    assert [r.views for r in staged] == [1]
