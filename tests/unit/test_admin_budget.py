"""Large admin work a few at a time (edge.admin_api.budget), large answers in pieces."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from edge.admin_api import budget as budget_module
from edge.admin_api.budget import LIGHT_BYTES, Busy, WorkBudget
from edge.admin_api.streaming import file_pieces, split_at_files

MB = 1024 * 1024


async def test_two_large_at_once_and_light_work_never_waits() -> None:
    budget = WorkBudget(100 * MB)
    running = 0
    peak = 0

    async def large() -> None:
        nonlocal running, peak
        async with budget.admit(10 * MB):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.05)
            running -= 1

    tasks = [asyncio.ensure_future(large()) for _ in range(6)]
    await asyncio.sleep(0.01)
    async with budget.admit(LIGHT_BYTES - 1):  # not held up by the six
        assert budget.running == 2
    await asyncio.gather(*tasks)
    assert peak == 2


async def test_the_byte_budget_holds_a_second_large_one_back() -> None:
    budget = WorkBudget(100 * MB)
    async with budget.admit(80 * MB):
        second = asyncio.ensure_future(_admit(budget, 30 * MB))
        await asyncio.sleep(0.01)
        assert not second.done()  # 110 MB together: it waits
    await second
    async with budget.admit(500 * MB):  # over the budget alone: it runs by itself
        pass


async def _admit(budget: WorkBudget, cost: int) -> None:
    async with budget.admit(cost):
        pass


async def test_a_request_that_waits_too_long_is_told_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget_module, "ADMIT_SECONDS", 0.01)
    budget = WorkBudget(100 * MB, slots=1)
    async with budget.admit(10 * MB):
        with pytest.raises(Busy) as caught:
            await _admit(budget, 10 * MB)
    assert caught.value.status == 503 and caught.value.code == "busy"
    await _admit(budget, 10 * MB)  # the slot was given back


def test_a_manifest_sent_in_pieces_is_the_same_document() -> None:
    files = {f"/p/{i}.html": {"sha256": "a" * 64, "size": i} for i in range(12_345)}
    doc = {"id": "x", "files": {}, "file_count": len(files), "settings": {"files": {}}}
    head = msgspec.json.encode(doc)
    before, after = split_at_files(head)
    streamed = before + b"".join(file_pieces(files)) + after
    assert msgspec.json.decode(streamed) == {**doc, "files": files}
    empty = before + b"".join(file_pieces({})) + after
    assert msgspec.json.decode(empty) == doc
