"""The representation cache: grouped by snapshot, the warm-up touches one snapshot only."""

from __future__ import annotations

from typing import Any, cast

import pytest

from edge.cache import ByteLRU, CacheKey, Variant
from edge.snapshots.model import ManifestEntry, Snapshot
from edge.snapshots.store import Store
from edge.visitor.repcache import RepresentationCache, snapshot_of
from edge.visitor.representation import Representation, build

PAGE = b"<html><head></head><body>hello</body></html>"


class _Blobs:
    """A store that only serves blobs, and counts what it was asked for."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.asked: list[str] = []

    async def get_blob(self, site: str, sha256: str) -> bytes | None:
        self.asked.append(sha256)
        return self.blobs.get(sha256)


def _entry(sha: str) -> ManifestEntry:
    return ManifestEntry(sha256=sha * 64, content_type="text/html; charset=utf-8", size=1)


def _snapshot(snapshot_id: str, files: dict[str, ManifestEntry]) -> Snapshot:
    return Snapshot(id=snapshot_id, site="acme", files=files, settings={}, created_at="now")


def _rep(snapshot: Snapshot, path: str, variant: Variant) -> Representation:
    return build(PAGE, snapshot.files[path], snapshot_id=snapshot.id, variant=variant)


async def test_warm_makes_the_outgoing_snapshots_entries_for_the_new_one() -> None:
    old = _snapshot("old", {"/a.html": _entry("a"), "/b.html": _entry("b")})
    new = _snapshot("new", {"/a.html": _entry("a"), "/b.html": _entry("c")})
    other = _snapshot("other", {"/a.html": _entry("a")})
    store = _Blobs({"c" * 64: PAGE})
    lru: ByteLRU[CacheKey, Representation] = ByteLRU(10**6, group=snapshot_of)
    content = RepresentationCache(lru, cast(Store, store))
    for snap in (old, other):
        for path in snap.files:
            lru.put((snap.id, path, Variant.PRODUCTION), _rep(snap, path, Variant.PRODUCTION))
    lru.put(("old", "/a.html", Variant.STAGING), _rep(old, "/a.html", Variant.STAGING))
    await content.warm("production", old, new)
    copied = lru.peek(("new", "/a.html", Variant.PRODUCTION))
    assert copied is not None and copied.headers["X-Edge-Snapshot"] == "new"
    assert b"X-Edge-Snapshot: new\r\n" in copied.wire(None).ok
    rebuilt = lru.peek(("new", "/b.html", Variant.PRODUCTION))
    assert rebuilt is not None and rebuilt.etag.startswith('"' + "c" * 40)
    assert store.asked == ["c" * 64]  # only the changed entry was read
    assert ("new", "/a.html", Variant.STAGING) not in lru  # another environment's variant
    assert sorted(k[1] for k in lru.group("new")) == ["/a.html", "/b.html"]


@pytest.mark.parametrize("hsts", [None, "max-age=31536000"])
def test_a_representations_answers_are_ready_made_bytes(hsts: Any) -> None:
    snap = _snapshot("s1", {"/a.html": _entry("a")})
    rep = _rep(snap, "/a.html", Variant.STAGING)
    wire = rep.wire(hsts)
    assert wire.ok.startswith(b"HTTP/1.1 200 OK\r\n")
    assert f"Content-Length: {len(rep.body)}\r\n".encode() in wire.ok
    assert b"X-Robots-Tag: noindex, nofollow\r\n" in wire.ok
    assert f"ETag: {rep.etag}\r\n".encode() in wire.not_modified
    assert wire.not_modified.startswith(b"HTTP/1.1 304 Not Modified\r\n")
    assert b"Content-Length" not in wire.not_modified
    assert (b"Strict-Transport-Security" in wire.ok) is (hsts is not None)
    assert rep.wire(hsts) is wire  # made once
