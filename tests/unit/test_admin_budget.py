"""Large admin work a few at a time (edge.admin_api.budget), large answers in pieces."""

from __future__ import annotations

import asyncio
import functools

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from edge.admin_api import budget as budget_module
from edge.admin_api.budget import LIGHT_BYTES, Busy, WorkBudget
from edge.admin_api.responses import error_middleware
from edge.admin_api.schemas import DiffResponse, PublishPreview
from edge.admin_api.streaming import diff_lists, file_pieces, filled_pieces, split_at_files
from edge.snapshots.merge import changed_paths
from edge.snapshots.model import ManifestEntry
from tests.waiting import eventually

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
    await eventually(lambda: budget.running == 2, what="two large ones admitted")
    async with budget.admit(LIGHT_BYTES - 1):  # not held up by the six
        assert budget.running == 2
    await asyncio.gather(*tasks)
    assert peak == 2


async def test_the_byte_budget_holds_a_second_large_one_back() -> None:
    budget = WorkBudget(100 * MB)
    async with budget.admit(80 * MB):
        second = asyncio.ensure_future(_admit(budget, 30 * MB))
        # A later task that fits (90 MB together) goes the same way through the budget
        # and is admitted and done: the second, ahead of it, had its turn and waits.
        await asyncio.ensure_future(_admit(budget, 10 * MB))
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
            await asyncio.ensure_future(_admit(budget, 10 * MB))
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


def _entry(sha: str, ctype: str = "text/html") -> ManifestEntry:
    return ManifestEntry(sha256=sha * 64, size=1, content_type=ctype)


def test_a_diff_sent_in_pieces_is_the_same_bytes_as_one_encoding() -> None:
    old = {f"/p/{i:05}.html": _entry("a") for i in range(20_000)}
    new = {p: e for p, e in old.items() if not p.endswith(("1.html", "2.html"))}
    new.update({f"/q/{i}.html": _entry("b") for i in range(7_000)})
    for i in range(0, 20_000, 3):
        if (p := f"/p/{i:05}.html") in new:
            new[p] = _entry("c") if i % 2 else _entry("a", "text/plain")
    added, removed, changed = changed_paths(old, new)
    assert min(len(added), len(removed), len(changed)) >= 4_000
    whole = DiffResponse(
        from_="x", to=None, added=added, removed=removed, changed=changed, settings_changed=True
    )
    head = msgspec.structs.replace(whole, added=[], removed=[], changed=[])
    pieces = list(filled_pieces(msgspec.json.encode(head), diff_lists(old, new)))
    assert b"".join(pieces) == msgspec.json.encode(whole)
    assert len(pieces) >= 3 + 5  # the head in 4, each list in pieces of 5,000 paths
    no_change = filled_pieces(msgspec.json.encode(head), diff_lists(old, old))
    assert b"".join(no_change) == msgspec.json.encode(head)


async def test_busy_answers_503_with_retry_after_header_and_field() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise Busy("busy", retry_after=5)

    response = await error_middleware(make_mocked_request("GET", "/v1/x"), handler)
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert isinstance(response, web.Response) and response.body is not None
    body = msgspec.json.decode(response.body)  # type: ignore[arg-type]
    assert body["error"]["code"] == "busy" and body["retry_after"] == 5


def test_a_publish_preview_sent_in_pieces_is_the_same_bytes() -> None:
    paths = [f"/p/{i}.html" for i in range(12_000)]
    whole = PublishPreview(
        dry_run=True, production=None, staging="s", action="publish", added=paths[:7_000],
        removed=paths[7_000:9_000], changed=[], settings_changed=False,
        kept=paths[9_000:], conflicts=["/x"],
    )  # fmt: skip
    names = ("added", "removed", "changed", "kept", "conflicts")
    head = msgspec.structs.replace(whole, **{n: [] for n in names})
    lists = [(n, functools.partial(iter, getattr(whole, n))) for n in names]
    assert b"".join(filled_pieces(msgspec.json.encode(head), lists)) == msgspec.json.encode(whole)
