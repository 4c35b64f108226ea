"""Large files are represented by their blob file: headers in the cache, bytes on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

from edge.cache.keys import Variant
from edge.snapshots.model import ManifestEntry
from edge.visitor.representation import build, build_streamed, streams

MiB = 1024 * 1024


def entry(data: bytes, content_type: str, *, noindex: bool = False) -> ManifestEntry:
    return ManifestEntry(
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=content_type,
        size=len(data),
        noindex=noindex,
    )


def test_which_files_stream() -> None:
    big, small = entry(b"x" * (2 * MiB), "video/mp4"), entry(b"x" * 100, "video/mp4")
    assert streams(big, Variant.PRODUCTION, MiB)
    assert not streams(small, Variant.PRODUCTION, MiB)
    page = entry(b"<p>" * MiB, "text/html; charset=utf-8")
    assert streams(page, Variant.PRODUCTION, MiB)  # served as stored, no gzip variant
    assert streams(page, Variant.PRODUCTION_GZIP, MiB)
    # HTML that gets the robots meta tag is rewritten: built in memory whatever its size.
    assert not streams(page, Variant.STAGING, MiB)
    noindex = entry(b"<p>" * MiB, "text/html", noindex=True)
    assert not streams(noindex, Variant.PRODUCTION, MiB)


def test_a_streamed_representation_costs_the_cache_its_headers_only(tmp_path: Path) -> None:
    data = bytes(range(256)) * (8 * 1024)  # 2 MiB
    blob = tmp_path / "blob"
    blob.write_bytes(data)
    e = entry(data, "application/octet-stream")
    rep = build_streamed(blob, e, snapshot_id="s1", variant=Variant.PRODUCTION)
    assert rep.source == blob and rep.body == b"" and rep.size == len(data)
    assert rep.nbytes < 4096
    assert b"Content-Length: %d\r\n" % len(data) in rep.wire(None).ok
    assert rep.headers["Accept-Ranges"] == "bytes"
    # The validator is the one the same bytes get in memory: no spurious refetch
    # when the threshold changes.
    assert rep.etag == build(data, e, snapshot_id="s1", variant=Variant.PRODUCTION).etag
    moved = rep.for_snapshot("s2")
    assert (moved.source, moved.size, moved.headers["X-Edge-Snapshot"]) == (blob, len(data), "s2")
