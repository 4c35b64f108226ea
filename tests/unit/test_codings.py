"""Compressed bodies are made once per blob and coding, off the event loop (issue 16)."""

from __future__ import annotations

import asyncio
import gzip

import brotli
import zstandard

from edge.cache.keys import Variant
from edge.snapshots.model import ManifestEntry
from edge.visitor.codings import CodedBodies, encode
from edge.visitor.representation import build
from tests.waiting import eventually

BODY = b"body { color: red; margin: 0 auto; }\n" * 200


def test_each_coding_round_trips() -> None:
    assert gzip.decompress(encode(BODY, "gzip")) == BODY
    assert brotli.decompress(encode(BODY, "br")) == BODY
    assert zstandard.ZstdDecompressor().decompress(encode(BODY, "zstd")) == BODY


async def test_one_compression_per_blob_and_coding_however_many_ask() -> None:
    bodies = CodedBodies()
    key = ("a" * 64, False, "br")
    results = await asyncio.gather(*(bodies.get(key, BODY) for _ in range(5)))
    assert len(set(results)) == 1 and bodies.encoded == 1
    await bodies.get(key, BODY)
    assert bodies.encoded == 1 and bodies.ready(key)
    await bodies.get(("a" * 64, False, "zstd"), BODY)
    assert bodies.encoded == 2


async def test_start_compresses_in_the_background_once() -> None:
    bodies = CodedBodies()
    key = ("b" * 64, True, "zstd")
    bodies.start(key, BODY)
    bodies.start(key, BODY)
    await eventually(lambda: bodies.ready(key), what="the coded body")
    assert bodies.encoded == 1


def test_the_etag_names_the_coding() -> None:
    entry = ManifestEntry(sha256="c" * 64, content_type="text/css", size=len(BODY))
    tags = {
        build(BODY, entry, snapshot_id="s", variant=v).etag
        for v in (
            Variant.PRODUCTION,
            Variant.PRODUCTION_GZIP,
            Variant.PRODUCTION_BR,
            Variant.PRODUCTION_ZSTD,
        )
    }
    assert len(tags) == 4


def test_the_byte_budget_drops_the_least_recently_used() -> None:
    bodies = CodedBodies(max_bytes=100)
    bodies._put(("x", False, "br"), b"1" * 60)
    bodies._put(("y", False, "br"), b"2" * 60)
    assert not bodies.ready(("x", False, "br")) and bodies.ready(("y", False, "br"))
