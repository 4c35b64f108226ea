"""Blobs streamed in and read back as files, and garbage collection, on both backends."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator

import pytest

from edge.config import RetentionConfig
from edge.errors import Conflict, HashMismatch, PayloadTooLarge
from edge.snapshots.model import PointerMove, Snapshot
from edge.snapshots.store import Store
from tests.conformance.conftest import OpenStore
from tests.conformance.test_store import SITE, make_snapshot, schedule, sha

MiB = 1024 * 1024
NO_GRACE = RetentionConfig(keep_production_moves=1, grace_seconds=0)


def pattern(size: int, seed: bytes = b"x") -> bytes:
    """``size`` bytes that differ along the way (so a misplaced chunk shows)."""
    out = bytearray()
    block = hashlib.sha256(seed).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:size])


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]
        await asyncio.sleep(0)


async def cut_after(data: bytes, limit: int) -> AsyncIterator[bytes]:
    async for chunk in chunks_of(data[:limit]):
        yield chunk
    raise ConnectionResetError("the client went away")


async def read_file(store: Store, site: str, sha256: str) -> bytes | None:
    path = await store.blob_file(site, sha256)
    return None if path is None else path.read_bytes()


# -- streaming in ---------------------------------------------------------------------


async def test_a_streamed_blob_is_stored_whole_and_read_back_as_a_file(store: Store) -> None:
    data = pattern(3 * MiB + 17)
    assert await store.receive_blob(SITE, sha(data), chunks_of(data), limit=4 * MiB) == (
        True,
        len(data),
    )
    assert await read_file(store, SITE, sha(data)) == data
    assert await store.get_blob(SITE, sha(data)) == data
    assert await store.blob_sizes(SITE, [sha(data)]) == {sha(data): len(data)}
    # Again: already there; another site does not see it.
    assert await store.receive_blob(SITE, sha(data), chunks_of(data), limit=4 * MiB) == (
        False,
        len(data),
    )
    assert await store.blob_file("other", sha(data)) is None


async def test_an_empty_blob_round_trips(store: Store) -> None:
    assert await store.put_blob(SITE, sha(b""), b"") is True
    assert await read_file(store, SITE, sha(b"")) == b""


async def test_a_hash_mismatch_stores_nothing(store: Store) -> None:
    data = pattern(MiB + 5)
    wrong = sha(b"something else")
    with pytest.raises(HashMismatch):
        await store.receive_blob(SITE, wrong, chunks_of(data), limit=4 * MiB)
    assert await store.missing_blobs(SITE, [wrong, sha(data)]) == [wrong, sha(data)]
    assert await store.blob_file(SITE, wrong) is None


async def test_an_upload_cut_mid_stream_stores_nothing(store: Store) -> None:
    data = pattern(2 * MiB, b"cut")
    with pytest.raises(ConnectionResetError):
        await store.receive_blob(SITE, sha(data), cut_after(data, MiB), limit=4 * MiB)
    assert await store.missing_blobs(SITE, [sha(data)]) == [sha(data)]
    assert await store.blob_file(SITE, sha(data)) is None


async def test_an_upload_past_the_limit_stores_nothing(store: Store) -> None:
    data = pattern(MiB, b"big")
    with pytest.raises(PayloadTooLarge):
        await store.receive_blob(SITE, sha(data), chunks_of(data), limit=MiB - 1)
    assert await store.missing_blobs(SITE, [sha(data)]) == [sha(data)]


async def test_another_instance_reads_a_blob_written_by_the_first(
    open_store: OpenStore,
) -> None:
    """As another node would: on PostgreSQL from the database into its own cache."""
    first, second = await open_store(), await open_store()
    data = pattern(2 * MiB + MiB // 2, b"node")
    await first.receive_blob(SITE, sha(data), chunks_of(data), limit=4 * MiB)
    reads = await asyncio.gather(*(read_file(second, SITE, sha(data)) for _ in range(4)))
    assert reads == [data] * 4
    assert await read_file(second, SITE, sha(data)) == data


# -- collection -------------------------------------------------------------------------


async def move(store: Store, env: str, expect: str | None, to: str) -> None:
    await store.move_pointers(
        SITE,
        [PointerMove(env=env, expect=expect, to=to, base=None)],  # type: ignore[arg-type]
        action="test",
        actor="t",
    )


async def site_with_every_kind_of_reference(store: Store) -> dict[str, Snapshot]:
    shared = b"<p>shared by every snapshot</p>"
    snaps = {
        name: await make_snapshot(
            store, {"/index.html": shared, f"/{name}.bin": pattern(1000, name.encode())}
        )
        for name in ("p1", "p2", "p3", "staging", "scheduled", "previewed", "expired", "orphan")
    }
    await move(store, "production", None, snaps["p1"].id)
    await move(store, "production", snaps["p1"].id, snaps["p2"].id)
    await move(store, "production", snaps["p2"].id, snaps["p3"].id)
    await move(store, "staging", None, snaps["staging"].id)
    await store.add_schedule(schedule(snaps["scheduled"], at="2999-01-01T00:00:00.000Z"))
    await store.add_preview_link(SITE, snaps["previewed"].id, time.time() + 3600)
    await store.add_preview_link(SITE, snaps["expired"].id, time.time() - 1)
    return snaps


async def test_collection_keeps_what_is_served_scheduled_previewed_or_rollback_eligible(
    store: Store,
) -> None:
    snaps = await site_with_every_kind_of_reference(store)
    doomed = sorted(snaps[n].id for n in ("p1", "expired", "orphan"))
    now = time.time() + 1

    dry = await store.collect(SITE, NO_GRACE, dry_run=True, now=now)
    assert (dry.dry_run, dry.snapshots, dry.blobs, dry.bytes) == (True, doomed, 3, 3000)
    assert all([await store.get_snapshot(SITE, s.id) for s in snaps.values()])

    done = await store.collect(SITE, NO_GRACE, dry_run=False, now=now)
    assert (done.dry_run, done.snapshots, done.blobs, done.bytes) == (False, doomed, 3, 3000)
    for name, snap in snaps.items():
        kept = await store.get_snapshot(SITE, snap.id)
        assert (kept is None) == (snap.id in doomed), name
        unique = snap.files[f"/{name}.bin"].sha256
        assert (await read_file(store, SITE, unique) is None) == (snap.id in doomed), name
        assert await store.was_collected(SITE, snap.id) == (snap.id in doomed)
    assert await read_file(store, SITE, snaps["p1"].files["/index.html"].sha256) is not None
    # History rows stay; nothing can point at a collected snapshot again.
    assert len(await store.history(SITE, env="production", limit=10)) == 3
    with pytest.raises(Conflict, match="garbage collection"):
        await move(store, "production", snaps["p3"].id, snaps["p1"].id)
    # The rollback target within the policy still works.
    await move(store, "production", snaps["p3"].id, snaps["p2"].id)
    again = await store.collect(SITE, NO_GRACE, dry_run=False, now=now)
    assert again.blobs == 0


async def test_the_grace_period_keeps_a_push_in_progress(store: Store) -> None:
    snap = await make_snapshot(store, {"/a.html": b"not pointed at yet"})
    loose = b"uploaded, no snapshot yet"
    await store.put_blob(SITE, sha(loose), loose)
    done = await store.collect(SITE, RetentionConfig(), dry_run=False, now=time.time())
    assert (done.snapshots, done.blobs) == ([], 0)
    assert await store.get_snapshot(SITE, snap.id) is not None
    assert await read_file(store, SITE, sha(loose)) == loose


async def test_an_upload_racing_a_collection_of_the_same_blob_ends_present(
    open_store: OpenStore,
) -> None:
    uploader, collector = await open_store(), await open_store()
    data = pattern(MiB + 3, b"race")
    for _ in range(8):
        await uploader.put_blob(SITE, sha(data), data)
        started = time.time()  # the upload below touches the blob after this
        await asyncio.gather(
            uploader.receive_blob(SITE, sha(data), chunks_of(data), limit=2 * MiB),
            collector.collect(SITE, NO_GRACE, dry_run=False, now=started),
        )
        assert await read_file(uploader, SITE, sha(data)) == data
        assert await read_file(collector, SITE, sha(data)) == data
    # Unreferenced and outside the grace period, it does go.
    await collector.collect(SITE, NO_GRACE, dry_run=False, now=time.time() + 1)
    assert await uploader.missing_blobs(SITE, [sha(data)]) == [sha(data)]


async def test_collection_removes_blob_files_no_row_names(backend: str, backing: str) -> None:
    """SQLite: a file left by an upload whose row the disk refused goes, once old."""
    if backend != "sqlite":
        pytest.skip("the PostgreSQL store's files are only a cache of the database")
    from pathlib import Path

    from edge.snapshots.sqlite import SqliteStore

    store = await SqliteStore.open(Path(backing))
    try:
        blobs = Path(backing).parent / "blobs"
        old, young = sha(b"orphan, old"), sha(b"orphan, young")
        for digest in (old, young):
            (blobs / digest[:2]).mkdir(exist_ok=True)
            (blobs / digest[:2] / digest[2:]).write_bytes(b"left behind")
        past = time.time() - 7200
        os.utime(blobs / old[:2] / old[2:], (past, past))
        kept = b"held by a row"
        await store.put_blob(SITE, sha(kept), kept)
        os.utime(blobs / sha(kept)[:2] / sha(kept)[2:], (past, past))
        await store.collect(SITE, RetentionConfig(), dry_run=False, now=time.time())
        assert not (blobs / old[:2] / old[2:]).exists()
        assert (blobs / young[:2] / young[2:]).exists()
        assert await read_file(store, SITE, sha(kept)) == kept
    finally:
        await store.close()
