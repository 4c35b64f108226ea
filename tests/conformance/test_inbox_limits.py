"""Inbox caps, byte-bounded pages and deletion, on both stores (issue 19)."""

from __future__ import annotations

import asyncio

import pytest

from edge.errors import InboxFull
from edge.router import Env
from edge.snapshots.model import InboxLimits
from edge.snapshots.store import Store
from tests.conformance.conftest import OpenStore

SITE = "acme"


def size_of(value: str) -> int:
    """Stored bytes of ``{"m": value}`` (the JSON the stores keep)."""
    return len(b'{"m":""}') + len(value)


async def fill(store: Store, n: int, env: Env = "production", value: str = "x") -> list[int]:
    ids = []
    for _ in range(n):
        s = await store.add_form_submission(SITE, env, "contact", {"m": value})
        ids.append(s.id)
    return ids


async def test_the_count_cap_refuses_the_next_post_and_stores_nothing(store: Store) -> None:
    cap = InboxLimits(max_submissions=3, max_bytes=10_000)
    for n in range(3):
        await store.add_form_submission(SITE, "production", "contact", {"n": str(n)}, limits=cap)
    with pytest.raises(InboxFull) as refused:
        await store.add_form_submission(SITE, "production", "contact", {"n": "3"}, limits=cap)
    assert refused.value.status == 507
    assert refused.value.code == "inbox_full"
    usage = await store.inbox_usage(SITE, "production")
    assert usage.submissions == 3
    inbox = await store.list_form_submissions(SITE, "production", form=None, limit=10, before=None)
    assert [s.fields["n"] for s in inbox] == ["2", "1", "0"]
    # The cap is per environment (and per site): staging and another site still take posts.
    await store.add_form_submission(SITE, "staging", "contact", {"n": "s"}, limits=cap)
    await store.add_form_submission("other", "production", "contact", {"n": "o"}, limits=cap)


async def test_the_byte_cap_counts_stored_bytes(store: Store) -> None:
    cap = InboxLimits(max_submissions=100, max_bytes=3 * size_of("a" * 50))
    for _ in range(3):
        await store.add_form_submission(SITE, "production", "f", {"m": "a" * 50}, limits=cap)
    assert (await store.inbox_usage(SITE, "production")).bytes == 3 * size_of("a" * 50)
    with pytest.raises(InboxFull):
        await store.add_form_submission(SITE, "production", "f", {"m": "a"}, limits=cap)
    # One post larger than the whole cap is refused even into an empty inbox.
    with pytest.raises(InboxFull):
        await store.add_form_submission(SITE, "staging", "f", {"m": "a" * 1000}, limits=cap)
    assert (await store.inbox_usage(SITE, "staging")).submissions == 0


async def test_concurrent_posts_never_overshoot_the_cap(open_store: OpenStore) -> None:
    one, two = await open_store(), await open_store()
    cap = InboxLimits(max_submissions=5, max_bytes=1_000_000)

    async def post(store: Store, n: int) -> bool:
        try:
            await store.add_form_submission(SITE, "production", "f", {"n": str(n)}, limits=cap)
        except InboxFull:
            return False
        return True

    results = await asyncio.gather(*(post(one if n % 2 else two, n) for n in range(20)))
    assert sum(results) == 5
    assert (await one.inbox_usage(SITE, "production")).submissions == 5
    inbox = await two.list_form_submissions(SITE, "production", form=None, limit=50, before=None)
    assert len(inbox) == 5


async def test_delete_empties_an_inbox_and_frees_its_cap(store: Store) -> None:
    cap = InboxLimits(max_submissions=2, max_bytes=10_000)
    for n in range(2):
        await store.add_form_submission(SITE, "production", "f", {"n": str(n)}, limits=cap)
    await store.add_form_submission(SITE, "staging", "f", {"n": "s"})
    assert await store.delete_form_submissions(SITE, "production") == 2
    assert (
        await store.list_form_submissions(SITE, "production", form=None, limit=10, before=None)
        == []
    )
    usage = await store.inbox_usage(SITE, "production")
    assert (usage.submissions, usage.bytes) == (0, 0)
    await store.add_form_submission(SITE, "production", "f", {"n": "again"}, limits=cap)
    # Staging's inbox was not touched.
    assert (await store.inbox_usage(SITE, "staging")).submissions == 1
    assert await store.delete_form_submissions(SITE, "production") == 1
    assert await store.delete_form_submissions(SITE, "production") == 0


async def test_delete_one_submission_or_those_of_one_form(store: Store) -> None:
    first = await store.add_form_submission(SITE, "production", "a", {"m": "1"})
    second = await store.add_form_submission(SITE, "production", "b", {"m": "22"})
    third = await store.add_form_submission(SITE, "production", "a", {"m": "333"})
    assert await store.delete_form_submissions(SITE, "production", submission=second.id) == 1
    assert await store.delete_form_submissions(SITE, "production", submission=second.id) == 0
    # An id of another environment or site is not deleted through this one.
    assert await store.delete_form_submissions(SITE, "staging", submission=first.id) == 0
    assert await store.delete_form_submissions("other", "production", submission=first.id) == 0
    usage = await store.inbox_usage(SITE, "production")
    assert (usage.submissions, usage.bytes) == (2, size_of("1") + size_of("333"))
    assert await store.delete_form_submissions(SITE, "production", form="a") == 2
    assert third.id > first.id


async def test_delete_before_a_time(store: Store) -> None:
    old = await store.add_form_submission(SITE, "production", "f", {"m": "old"})
    await asyncio.sleep(0.01)  # ordering of two stored times, not a timing assertion
    new = await store.add_form_submission(SITE, "production", "f", {"m": "new"})
    assert old.at < new.at
    assert await store.delete_form_submissions(SITE, "production", before=new.at) == 1
    left = await store.list_form_submissions(SITE, "production", form=None, limit=10, before=None)
    assert [s.id for s in left] == [new.id]


async def test_pages_stop_at_their_byte_budget(store: Store) -> None:
    big = "b" * 1000
    ids = await fill(store, 5, value=big)
    budget = 2 * size_of(big)
    page = await store.inbox_page(
        SITE, "production", form=None, limit=10, before=None, max_bytes=budget
    )
    assert [s.id for s in page.submissions] == ids[::-1][:2]
    assert page.more
    seen = [s.id for s in page.submissions]
    while page.more:
        page = await store.inbox_page(
            SITE, "production", form=None, limit=10, before=seen[-1], max_bytes=budget
        )
        seen += [s.id for s in page.submissions]
    assert seen == ids[::-1]
    # A submission larger than the budget still comes, alone.
    page = await store.inbox_page(SITE, "production", form=None, limit=10, before=None, max_bytes=1)
    assert [s.id for s in page.submissions] == [ids[-1]] and page.more


async def test_pages_by_count_and_form(store: Store) -> None:
    ids = await fill(store, 3)
    other = await store.add_form_submission(SITE, "production", "other", {"m": "y"})
    page = await store.inbox_page(
        SITE, "production", form="contact", limit=3, before=None, max_bytes=1 << 20
    )
    assert [s.id for s in page.submissions] == ids[::-1]
    assert not page.more
    page = await store.inbox_page(
        SITE, "production", form=None, limit=2, before=None, max_bytes=1 << 20
    )
    assert [s.id for s in page.submissions] == [other.id, ids[-1]] and page.more
    empty = await store.inbox_page(
        SITE, "staging", form=None, limit=2, before=None, max_bytes=1 << 20
    )
    assert empty.submissions == [] and not empty.more


async def test_free_bytes_is_known_for_a_local_file_only(backend: str, store: Store) -> None:
    free = store.free_bytes()
    if backend == "sqlite":
        assert isinstance(free, int) and free > 0
    else:
        assert free is None
