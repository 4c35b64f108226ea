"""The store Protocol's contract, run against SQLite and PostgreSQL alike.

Handlers never know which backend they have; these tests are what lets them not
care. The concurrency tests open two store instances on one database, as two
processes or two nodes would.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest

from edge.errors import Conflict, MissingBlobs, NotFound, PointerMoved
from edge.snapshots.model import (
    ManifestEntry,
    OutboxEvent,
    PointerMove,
    Schedule,
    Snapshot,
    new_snapshot_id,
    utc_now,
)
from edge.snapshots.store import Store
from tests.conformance.conftest import OpenStore

SITE = "alpha"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def make_snapshot(store: Store, files: dict[str, bytes], *, site: str = SITE) -> Snapshot:
    for data in files.values():
        await store.put_blob(site, sha(data), data)
    snapshot = Snapshot(
        id=new_snapshot_id(),
        site=site,
        files={
            path: ManifestEntry(sha256=sha(data), content_type="text/html", size=len(data))
            for path, data in files.items()
        },
        settings={"redirects": []},
        message="m",
        created_at=utc_now(),
        actor="t",
    )
    await store.create_snapshot(snapshot)
    return snapshot


def event(n: int = 0) -> OutboxEvent:
    return OutboxEvent(
        site=SITE,
        env="production",
        event="environment.updated",
        url="https://hooks.example/x",
        secret_env="SECRET",
        payload=b'{"n":%d}' % n,
    )


def schedule(snapshot: Snapshot, *, at: str = "2020-01-01T00:00:00.000Z") -> Schedule:
    return Schedule(
        id=new_snapshot_id(),
        site=SITE,
        at=at,
        snapshot=snapshot.id,
        base=None,
        created_at=utc_now(),
        actor="t",
    )


# -- blobs and snapshots -----------------------------------------------------------


async def test_blobs_are_content_addressed_per_site(store: Store) -> None:
    data = b"hello"
    assert await store.missing_blobs(SITE, [sha(data), sha(b"x"), sha(data)]) == [
        sha(data),
        sha(b"x"),
    ]
    assert await store.put_blob(SITE, sha(data), data) is True
    assert await store.put_blob(SITE, sha(data), bytearray(data)) is False
    assert await store.get_blob(SITE, sha(data)) == data
    assert await store.get_blob("other", sha(data)) is None
    assert await store.blob_sizes(SITE, [sha(data), sha(b"x")]) == {sha(data): 5}
    assert await store.missing_blobs(SITE, [sha(data), sha(b"x")]) == [sha(b"x")]
    assert await store.blob_sizes(SITE, []) == {}


async def test_large_binary_blob_round_trips(store: Store) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB with every byte value
    await store.put_blob(SITE, sha(data), data)
    assert await store.get_blob(SITE, sha(data)) == data


async def test_snapshot_round_trip_and_listing(store: Store) -> None:
    first = await make_snapshot(store, {"/index.html": b"one", "/a.html": b"two"})
    second = await make_snapshot(store, {"/index.html": b"three"})
    loaded = await store.get_snapshot(SITE, first.id)
    assert loaded == first
    assert await store.get_snapshot(SITE, "nope") is None
    assert await store.get_snapshot("other", first.id) is None
    listing = await store.list_snapshots(SITE, limit=10)
    assert [s.id for s in listing] == [second.id, first.id]
    assert listing[1].files == 2
    assert [s.id for s in await store.list_snapshots(SITE, limit=10, before=second.id)] == [
        first.id
    ]
    assert len(await store.list_snapshots(SITE, limit=1)) == 1


async def test_snapshot_messages_without_manifests(store: Store) -> None:
    first = await make_snapshot(store, {"/index.html": b"one"})
    assert await store.snapshot_messages(SITE, [first.id, first.id, "nope"]) == {first.id: "m"}
    assert await store.snapshot_messages("other", [first.id]) == {}
    assert await store.snapshot_messages(SITE, []) == {}


async def test_snapshot_with_missing_blobs_is_refused_whole(store: Store) -> None:
    await store.put_blob(SITE, sha(b"here"), b"here")
    snapshot = Snapshot(
        id=new_snapshot_id(),
        site=SITE,
        files={
            "/a": ManifestEntry(sha256=sha(b"here"), content_type="text/plain", size=4),
            "/b": ManifestEntry(sha256=sha(b"gone"), content_type="text/plain", size=4),
        },
        settings={},
        created_at=utc_now(),
    )
    with pytest.raises(MissingBlobs) as caught:
        await store.create_snapshot(snapshot)
    assert caught.value.extra["missing"] == [sha(b"gone")]
    assert await store.get_snapshot(SITE, snapshot.id) is None


async def test_blob_and_snapshot_lists_longer_than_one_query_chunk(store: Store) -> None:
    """More hashes than SQLite takes variables in one statement (500 a chunk there,
    one array on PostgreSQL): every one is answered, in the order given."""
    held = [b"one", b"two", b"three"]
    for data in held:
        await store.put_blob(SITE, sha(data), data)
    absent = [sha(b"absent %d" % i) for i in range(1_234)]
    asked = [*absent[:600], sha(b"two"), *absent[600:], sha(b"one"), sha(b"three")]
    assert await store.missing_blobs(SITE, asked) == absent
    sizes = await store.blob_sizes(SITE, asked)
    assert sizes == {sha(b"one"): 3, sha(b"two"): 3, sha(b"three"): 5}
    files = {
        f"/{i}": ManifestEntry(sha256=h, content_type="text/plain", size=1)
        for i, h in enumerate(asked)
    }
    snapshot = Snapshot(
        id=new_snapshot_id(), site=SITE, files=files, settings={}, created_at=utc_now()
    )
    with pytest.raises(MissingBlobs) as caught:
        await store.create_snapshot(snapshot)
    assert caught.value.extra["missing"] == sorted(absent)
    ids = [new_snapshot_id() + str(i) for i in range(700)]
    kept = await make_snapshot(store, {"/": b"one"})
    assert await store.snapshot_messages(SITE, [*ids, kept.id]) == {kept.id: "m"}


# -- pointers ----------------------------------------------------------------------


async def test_pointer_moves_compare_and_swap_with_history(store: Store) -> None:
    a = await make_snapshot(store, {"/": b"a"})
    b = await make_snapshot(store, {"/": b"b"})
    pointers = await store.get_pointers(SITE)
    assert pointers["staging"].snapshot is None and pointers["production"].snapshot is None
    assert await store.all_pointers() == []

    entries = await store.move_pointers(
        SITE,
        [
            PointerMove(env="staging", expect=None, to=a.id, base=None),
            PointerMove(env="production", expect=None, to=a.id, base=None),
        ],
        action="publish",
        actor="ann",
    )
    assert [(e.env, e.from_, e.to, e.action, e.actor) for e in entries] == [
        ("staging", None, a.id, "publish", "ann"),
        ("production", None, a.id, "publish", "ann"),
    ]
    with pytest.raises(PointerMoved) as caught:
        await store.move_pointers(
            SITE,
            [
                PointerMove(env="staging", expect=a.id, to=b.id, base=None),
                PointerMove(env="production", expect=None, to=b.id, base=None),
            ],
            action="set",
            actor="bob",
        )
    assert caught.value.extra == {"env": "production", "current": a.id}
    # Nothing of the refused transaction happened, not even the valid half.
    assert (await store.get_pointers(SITE))["staging"].snapshot == a.id

    # A guard move (to == expect) only changes the base, and records no history.
    assert (
        await store.move_pointers(
            SITE,
            [PointerMove(env="staging", expect=a.id, to=a.id, base=b.id)],
            action="set",
            actor="bob",
        )
        == []
    )
    pointers = await store.get_pointers(SITE)
    assert pointers["staging"].base == b.id and pointers["staging"].actor == "ann"

    await store.move_pointers(
        SITE,
        [PointerMove(env="production", expect=a.id, to=b.id, base=None)],
        action="rollback",
        actor="cy",
    )
    assert {(p.env, p.snapshot) for p in await store.all_pointers()} == {
        ("staging", a.id),
        ("production", b.id),
    }
    history = await store.history(SITE, env=None, limit=10)
    assert [(h.env, h.to, h.action) for h in history] == [
        ("production", b.id, "rollback"),
        ("production", a.id, "publish"),
        ("staging", a.id, "publish"),
    ]
    assert history[0].id > history[1].id > history[2].id
    production = await store.history(SITE, env="production", limit=10)
    assert [h.to for h in production] == [b.id, a.id]
    older = await store.history(SITE, env=None, limit=10, before=history[0].id)
    assert [h.id for h in older] == [h.id for h in history[1:]]
    assert await store.history("other", env=None, limit=10) == []


async def test_racing_moves_from_two_instances_one_wins(open_store: OpenStore) -> None:
    one, two = await open_store(), await open_store()
    a = await make_snapshot(one, {"/": b"a"})
    b = await make_snapshot(one, {"/": b"b"})
    c = await make_snapshot(one, {"/": b"c"})

    async def move(store: Store, to: str) -> str:
        try:
            await store.move_pointers(
                SITE,
                [PointerMove(env="production", expect=None, to=to, base=None)],
                action="set",
                actor="t",
            )
        except PointerMoved:
            return "lost"
        return "won"

    results = await asyncio.gather(move(one, b.id), move(two, c.id), move(one, a.id))
    assert sorted(results) == ["lost", "lost", "won"]
    assert len(await two.history(SITE, env="production", limit=10)) == 1


# -- schedules ---------------------------------------------------------------------


async def test_schedule_lifecycle(store: Store) -> None:
    a = await make_snapshot(store, {"/": b"a"})
    s1 = schedule(a, at="2030-01-01T00:00:00.000Z")
    s2 = schedule(a, at="2031-01-01T00:00:00.000Z")
    s3 = schedule(a, at="2029-01-01T00:00:00.000Z")
    for s in (s1, s2, s3):
        await store.add_schedule(s)
    assert await store.get_schedule(SITE, s1.id) == s1
    assert await store.get_schedule("other", s1.id) is None
    assert [s.id for s in await store.pending_schedules()] == [s3.id, s1.id, s2.id]
    # The timer reads only what is due, and the next moment without any schedule.
    due = await store.pending_schedules(due_by="2030-01-01T00:00:00.000Z")
    assert [s.id for s in due] == [s3.id, s1.id]
    assert await store.next_schedule_moment() == s3.at
    assert [s.id for s in await store.list_schedules(SITE)] == [s2.id, s1.id, s3.id]

    await store.cancel_schedule(SITE, s2.id)
    with pytest.raises(Conflict):
        await store.cancel_schedule(SITE, s2.id)
    with pytest.raises(NotFound):
        await store.cancel_schedule(SITE, "nope")
    await store.fail_schedules(SITE, [s3.id], "drift: /x", [event()])
    failed = await store.get_schedule(SITE, s3.id)
    assert failed is not None and failed.status == "failed" and failed.error == "drift: /x"
    assert failed.fired_at is not None

    await store.move_pointers(
        SITE,
        [PointerMove(env="production", expect=None, to=a.id, base=None)],
        action="schedule",
        actor="t",
        complete=[s1.id],
    )
    done = await store.get_schedule(SITE, s1.id)
    assert done is not None and done.status == "done"
    assert [s.id for s in await store.list_schedules(SITE, status="cancelled")] == [s2.id]
    assert await store.pending_schedules() == []
    assert await store.next_schedule_moment() is None
    # Completing it again fails and moves nothing.
    with pytest.raises(Conflict):
        await store.move_pointers(
            SITE,
            [PointerMove(env="staging", expect=None, to=a.id, base=None)],
            action="schedule",
            actor="t",
            complete=[s1.id],
        )
    assert (await store.get_pointers(SITE))["staging"].snapshot is None


async def test_schedule_with_paths_round_trips(store: Store) -> None:
    a = await make_snapshot(store, {"/": b"a"})
    s = Schedule(
        id=new_snapshot_id(),
        site=SITE,
        at="2030-01-01T00:00:00.000Z",
        snapshot=a.id,
        base=a.id,
        paths=["/a", "/b"],
        settings=True,
        created_at=utc_now(),
        actor="t",
    )
    await store.add_schedule(s)
    assert await store.get_schedule(SITE, s.id) == s


async def test_two_schedulers_never_fire_one_schedule_twice(open_store: OpenStore) -> None:
    stores = [await open_store(), await open_store()]
    a = await make_snapshot(stores[0], {"/": b"a"})
    due = schedule(a)
    await stores[0].add_schedule(due)

    async def fire(store: Store) -> str:
        try:
            # Each fires with the pointer it read: one moves it, the other fails
            # on the schedule (or the pointer) and changes nothing.
            await store.move_pointers(
                SITE,
                [PointerMove(env="production", expect=None, to=a.id, base=None)],
                action="schedule",
                actor="t",
                complete=[due.id],
            )
        except Conflict:
            return "lost"
        return "fired"

    results = await asyncio.gather(*(fire(s) for s in stores * 3))
    assert sorted(results) == ["fired"] + ["lost"] * 5
    assert len(await stores[1].history(SITE, env="production", limit=10)) == 1


async def test_failing_a_schedule_is_announced_once(open_store: OpenStore) -> None:
    one, two = await open_store(), await open_store()
    a = await make_snapshot(one, {"/": b"a"})
    due = schedule(a)
    await one.add_schedule(due)
    await asyncio.gather(
        one.fail_schedules(SITE, [due.id], "drift: /a", [event(1)]),
        two.fail_schedules(SITE, [due.id], "drift: /a", [event(2)]),
    )
    await one.fail_schedules(SITE, [due.id], "drift: /a", [event(3)])
    assert len(await two.list_outbox(SITE, "production", limit=10, before=None)) == 1
    failed = await two.get_schedule(SITE, due.id)
    assert failed is not None and failed.status == "failed"


async def test_failing_several_schedules_fails_the_pending_ones(store: Store) -> None:
    a = await make_snapshot(store, {"/": b"a"})
    first, second, cancelled = schedule(a), schedule(a), schedule(a)
    for s in (first, second, cancelled):
        await store.add_schedule(s)
    await store.cancel_schedule(SITE, cancelled.id)
    await store.fail_schedules(SITE, [first.id, second.id, cancelled.id], "drift: /", [event()])
    statuses = {s.id: (s.status, s.error) for s in await store.list_schedules(SITE)}
    assert statuses == {
        first.id: ("failed", "drift: /"),
        second.id: ("failed", "drift: /"),
        cancelled.id: ("cancelled", None),
    }
    assert len(await store.list_outbox(SITE, "production", limit=10, before=None)) == 1
    # Nothing pending among them any more: nothing failed, nothing announced.
    await store.fail_schedules(SITE, [first.id, cancelled.id], "again", [event(1)])
    assert len(await store.list_outbox(SITE, "production", limit=10, before=None)) == 1
    await store.fail_schedules(SITE, [], "none", [event(2)])
    assert len(await store.list_outbox(SITE, "production", limit=10, before=None)) == 1


# -- forms, analytics ----------------------------------------------------------------


async def test_form_inbox(open_store: OpenStore) -> None:
    one, two = await open_store(), await open_store()
    first = await one.add_form_submission(SITE, "production", "contact", {"a": "1"})
    second = await two.add_form_submission(
        SITE, "production", "news", {"tags": ["x", "y"]}, [event(1)]
    )
    await one.add_form_submission(SITE, "staging", "contact", {"a": "2"})
    inbox = await one.list_form_submissions(SITE, "production", form=None, limit=10, before=None)
    assert [s.id for s in inbox] == [second.id, first.id]
    assert inbox[0].fields == {"tags": ["x", "y"]}
    assert inbox[1] == first
    contact = await two.list_form_submissions(
        SITE, "production", form="contact", limit=10, before=None
    )
    assert [s.id for s in contact] == [first.id]
    assert await one.list_form_submissions(
        SITE, "production", form=None, limit=10, before=second.id
    ) == [first]
    assert [o.event for o in await one.list_outbox(SITE, "production", limit=10, before=None)] == [
        "environment.updated"
    ]


async def test_page_views_add_up_across_instances(open_store: OpenStore) -> None:
    one, two = await open_store(), await open_store()
    await one.add_page_views([(SITE, "production", "/", "2026-01-01", 2)])
    await asyncio.gather(
        one.add_page_views(
            [
                (SITE, "production", "/", "2026-01-01", 3),
                (SITE, "production", "/a", "2026-01-01", 1),
            ]
        ),
        two.add_page_views([(SITE, "production", "/", "2026-01-01", 5)]),
    )
    await two.add_page_views([])
    # The same page twice in one batch (PostgreSQL sums first: one row once a statement).
    await two.add_page_views(
        [(SITE, "production", "/a", "2026-01-01", 1), (SITE, "production", "/a", "2026-01-01", 1)]
    )
    views = await one.page_views(
        SITE, "production", first_day="2026-01-01", last_day="2026-01-31", limit=10
    )
    assert [(v.path, v.day, v.views) for v in views] == [
        ("/", "2026-01-01", 10),
        ("/a", "2026-01-01", 3),
    ]
    assert (
        await one.page_views(
            SITE, "staging", first_day="2026-01-01", last_day="2026-01-31", limit=10
        )
        == []
    )


# -- webhook outbox ------------------------------------------------------------------


async def test_outbox_claim_lease_and_record(store: Store) -> None:
    a = await make_snapshot(store, {"/": b"a"})
    await store.move_pointers(
        SITE,
        [PointerMove(env="production", expect=None, to=a.id, base=None)],
        action="publish",
        actor="t",
        events=[event(1), event(2)],
    )
    now = time.time() + 1
    assert await store.next_outbox_due() is not None
    assert await store.outbox_depth() == {(SITE, "production"): 2}
    items = await store.claim_outbox(now=now, lease=60, limit=10)
    assert [i.payload for i in items] == [b'{"n":1}', b'{"n":2}']
    assert items[0].attempts == 0 and items[0].status == "pending"
    # Leased: nobody else gets them until the lease ends.
    assert await store.claim_outbox(now=now, lease=60, limit=10) == []
    due = await store.next_outbox_due()
    assert due is not None and due >= now + 59

    await store.record_delivery(items[0].id, delivered=True, error=None, retry_at=None)
    await store.record_delivery(items[1].id, delivered=False, error="HTTP 500", retry_at=now + 5)
    assert await store.outbox_depth() == {(SITE, "production"): 1}  # waiting for its retry
    assert await store.claim_outbox(now=now + 1, lease=60, limit=10) == []
    retried = await store.claim_outbox(now=now + 6, lease=60, limit=10)
    assert [(i.id, i.attempts, i.last_error) for i in retried] == [(items[1].id, 1, "HTTP 500")]
    await store.record_delivery(items[1].id, delivered=False, error="HTTP 502", retry_at=None)
    assert await store.next_outbox_due() is None
    assert await store.outbox_depth() == {}
    log = await store.list_outbox(SITE, "production", limit=10, before=None)
    assert [(i.status, i.attempts) for i in log] == [("failed", 2), ("delivered", 1)]
    assert log[1].delivered_at is not None and log[1].last_error is None
    assert await store.list_outbox(SITE, "production", limit=10, before=log[0].id) == [log[1]]


async def test_two_claimers_never_get_the_same_item(open_store: OpenStore) -> None:
    one, two = await open_store(), await open_store()
    for n in range(6):
        await one.add_form_submission(SITE, "production", "f", {"n": str(n)}, [event(n)])
    now = time.time() + 1
    claims = await asyncio.gather(
        *(s.claim_outbox(now=now, lease=60, limit=2) for s in (one, two, one, two, one))
    )
    ids = [item.id for claim in claims for item in claim]
    assert len(ids) == len(set(ids)) == 6
