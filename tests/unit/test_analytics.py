"""Page views the store refuses are kept (bounded) or said lost (issue 19)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

import pytest

from edge.errors import StoreFull
from edge.router import Env, Route
from edge.snapshots.reserve import DiskReserve
from edge.snapshots.store import Store
from edge.visitor.analytics import PageViewCounter

ROUTE = Route("acme", "production")


class FakeStore:
    def __init__(self) -> None:
        self.refuse = True
        self.rows: list[tuple[str, Env, str, str, int]] = []

    async def add_page_views(self, counts: Sequence[tuple[str, Env, str, str, int]]) -> None:
        if self.refuse:
            raise StoreFull("disk full")
        self.rows.extend(counts)


def as_store(fake: FakeStore) -> Store:
    return cast(Store, fake)


async def test_a_refused_flush_keeps_the_counts_for_the_next() -> None:
    fake, views = FakeStore(), PageViewCounter()
    for _ in range(3):
        views.count(ROUTE, "/a.html")
    with pytest.raises(StoreFull):
        await views.flush(as_store(fake))
    assert views.pending == 3
    fake.refuse = False
    await views.flush(as_store(fake))
    assert [r[4] for r in fake.rows] == [3]
    assert views.pending == 0 and views.lost == 0


async def test_what_waits_is_bounded_and_the_loss_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, views = FakeStore(), PageViewCounter(max_pending=10)
    for n in range(25):
        views.count(ROUTE, f"/{n}.html")
    with caplog.at_level(logging.ERROR, "edge.analytics"), pytest.raises(StoreFull):
        await views.flush(as_store(fake))
    assert views.pending == 10
    assert views.lost == 15
    assert "15 page views lost" in caplog.text


async def test_below_the_reserve_counts_wait_in_memory() -> None:
    fake, views = FakeStore(), PageViewCounter()
    fake.refuse = False
    reserve = DiskReserve(lambda: 0, 1)
    views.count(ROUTE, "/a.html")
    await views.flush(as_store(fake), reserve)
    assert fake.rows == [] and views.pending == 1
    await views.flush(as_store(fake), DiskReserve(lambda: 10, 1))
    assert len(fake.rows) == 1


async def test_the_last_flush_says_what_is_lost(caplog: pytest.LogCaptureFixture) -> None:
    fake, views = FakeStore(), PageViewCounter()
    for _ in range(4):
        views.count(ROUTE, "/a.html")
    with caplog.at_level(logging.ERROR, "edge.analytics"):
        await views.flush_last(as_store(fake))
    assert views.lost == 4
    assert "4 page views lost" in caplog.text
    fake.refuse = False
    fresh = PageViewCounter()
    fresh.count(ROUTE, "/a.html")
    await fresh.flush_last(as_store(fake))
    assert fresh.lost == 0
