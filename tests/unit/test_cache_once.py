"""edge.cache.once.Once: one maker per key; waiters share its value or its error."""

from __future__ import annotations

import asyncio

import pytest

from edge.cache.once import Once


async def test_callers_arriving_meanwhile_share_one_making() -> None:
    once: Once[str, int] = Once()
    release = asyncio.Event()
    made = 0

    async def make() -> int:
        nonlocal made
        made += 1
        await release.wait()
        return 42

    callers = [asyncio.create_task(once.get_or_make("k", make)) for _ in range(5)]
    await asyncio.sleep(0)
    assert "k" in once and len(once) == 1
    release.set()
    assert await asyncio.gather(*callers) == [42] * 5
    assert made == 1
    assert "k" not in once


async def test_a_failure_reaches_every_waiter_and_is_not_remembered() -> None:
    once: Once[str, int] = Once()
    release = asyncio.Event()

    async def fail() -> int:
        await release.wait()
        raise OSError("disk")

    callers = [asyncio.create_task(once.get_or_make("k", fail)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)

    async def succeed() -> int:
        return 7

    assert await once.get_or_make("k", succeed) == 7  # the next caller tries again


async def test_a_cancelled_waiter_does_not_cancel_the_making() -> None:
    once: Once[str, int] = Once()
    release = asyncio.Event()

    async def make() -> int:
        await release.wait()
        return 1

    maker = asyncio.create_task(once.get_or_make("k", make))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(once.get_or_make("k", make))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    assert await maker == 1
