"""Ready-to-send representations: noindex, gzip, headers and ETags per variant."""

from __future__ import annotations

import gzip
import hashlib
import itertools
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from edge.cache.keys import Variant
from edge.noindex import ROBOTS_META, STAGING_ROBOTS_TXT
from edge.snapshots.model import ManifestEntry
from edge.visitor.representation import build, staging_robots_txt

SNAP = "01hsnapshot00001"
HTML = (
    b"<!doctype html><html><head><title>Acme</title></head><body>"
    + b"<p>Welcome to Acme, the place for everything.</p>" * 40
    + b"</body></html>"
)
CSS = b"body { color: #333; margin: 0 auto; }\n" * 40
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
ROBOTS = "noindex, nofollow"


def entry(blob: bytes, content_type: str, *, noindex: bool = False) -> ManifestEntry:
    return ManifestEntry(
        sha256=hashlib.sha256(blob).hexdigest(),
        content_type=content_type,
        size=len(blob),
        noindex=noindex,
    )


HTML_ENTRY = entry(HTML, "text/html; charset=utf-8")
HTML_NOINDEX_ENTRY = entry(HTML, "text/html; charset=utf-8", noindex=True)
CSS_ENTRY = entry(CSS, "text/css; charset=utf-8")
PNG_ENTRY = entry(PNG, "image/png")


def identity(body: bytes, headers: Mapping[str, str]) -> bytes:
    """The decoded body of a representation."""
    return gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body


@pytest.mark.parametrize("variant", [Variant.STAGING, Variant.STAGING_GZIP])
def test_staging_html_gets_meta_header_and_no_store(variant: Variant) -> None:
    rep = build(HTML, HTML_ENTRY, snapshot_id=SNAP, variant=variant)
    body = identity(rep.body, rep.headers)
    assert body.count(ROBOTS_META) == 1
    head = body[body.index(b"<head>") : body.index(b"</head>")]
    assert ROBOTS_META in head
    assert rep.headers["X-Robots-Tag"] == ROBOTS
    assert rep.headers["Cache-Control"] == "no-store"
    assert rep.headers["X-Edge-Env"] == "staging"
    assert rep.headers["X-Edge-Snapshot"] == SNAP
    assert rep.headers["Content-Type"] == "text/html; charset=utf-8"
    assert rep.headers["ETag"] == rep.etag
    # a 304 of a staging page carries the same noindex and caching rules
    assert rep.not_modified_headers["X-Robots-Tag"] == ROBOTS
    assert rep.not_modified_headers["Cache-Control"] == "no-store"
    assert rep.not_modified_headers["ETag"] == rep.etag


@pytest.mark.parametrize("variant", [Variant.PRODUCTION, Variant.PRODUCTION_GZIP])
def test_production_html_is_indexable(variant: Variant) -> None:
    rep = build(HTML, HTML_ENTRY, snapshot_id=SNAP, variant=variant)
    assert identity(rep.body, rep.headers) == HTML
    assert b"robots" not in identity(rep.body, rep.headers)
    assert "X-Robots-Tag" not in rep.headers
    assert "X-Robots-Tag" not in rep.not_modified_headers
    assert rep.headers["Cache-Control"] != "no-store"
    assert "no-store" not in rep.headers["Cache-Control"]
    assert rep.headers["X-Edge-Env"] == "production"
    assert rep.headers["X-Edge-Snapshot"] == SNAP


@pytest.mark.parametrize("variant", [Variant.PRODUCTION, Variant.PRODUCTION_GZIP])
def test_production_entry_marked_noindex_gets_header_and_meta(variant: Variant) -> None:
    rep = build(HTML, HTML_NOINDEX_ENTRY, snapshot_id=SNAP, variant=variant)
    body = identity(rep.body, rep.headers)
    assert body.count(ROBOTS_META) == 1
    assert rep.headers["X-Robots-Tag"] == ROBOTS
    assert rep.not_modified_headers["X-Robots-Tag"] == ROBOTS
    assert rep.headers["X-Edge-Env"] == "production"


@pytest.mark.parametrize("variant", [Variant.PRODUCTION, Variant.PRODUCTION_GZIP])
def test_production_non_html_marked_noindex_gets_the_header(variant: Variant) -> None:
    rep = build(PNG, entry(PNG, "image/png", noindex=True), snapshot_id=SNAP, variant=variant)
    assert rep.body == PNG
    assert rep.headers["X-Robots-Tag"] == ROBOTS


@pytest.mark.parametrize("variant", [Variant.STAGING, Variant.STAGING_GZIP])
def test_staging_non_html_gets_the_header_and_an_untouched_body(variant: Variant) -> None:
    rep = build(CSS, CSS_ENTRY, snapshot_id=SNAP, variant=variant)
    assert identity(rep.body, rep.headers) == CSS
    assert rep.headers["X-Robots-Tag"] == ROBOTS
    assert rep.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("blob", "item", "plain", "packed"),
    [
        (HTML, HTML_ENTRY, Variant.PRODUCTION, Variant.PRODUCTION_GZIP),
        (HTML, HTML_ENTRY, Variant.STAGING, Variant.STAGING_GZIP),
        (CSS, CSS_ENTRY, Variant.PRODUCTION, Variant.PRODUCTION_GZIP),
        (CSS, CSS_ENTRY, Variant.STAGING, Variant.STAGING_GZIP),
    ],
)
def test_gzip_variant_of_text_decodes_to_the_identity_body(
    blob: bytes, item: ManifestEntry, plain: Variant, packed: Variant
) -> None:
    ident = build(blob, item, snapshot_id=SNAP, variant=plain)
    zipped = build(blob, item, snapshot_id=SNAP, variant=packed)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in ident.headers
    assert "Content-Encoding" not in zipped.not_modified_headers
    assert gzip.decompress(zipped.body) == ident.body
    assert len(zipped.body) < len(ident.body)
    for rep in (ident, zipped):
        assert rep.headers["Vary"] == "Accept-Encoding"
        assert rep.not_modified_headers["Vary"] == "Accept-Encoding"
        assert not rep.rangeable
        assert "Accept-Ranges" not in rep.headers
    assert zipped.etag != ident.etag


def test_gzip_is_deterministic() -> None:
    """Compressed once per cache entry: the same input gives the same bytes (mtime=0)."""
    a = build(HTML, HTML_ENTRY, snapshot_id=SNAP, variant=Variant.PRODUCTION_GZIP)
    b = build(HTML, HTML_ENTRY, snapshot_id=SNAP, variant=Variant.PRODUCTION_GZIP)
    assert a.body == b.body
    assert a.etag == b.etag


@pytest.mark.parametrize("variant", list(Variant))
def test_media_gets_ranges_and_is_never_gzipped(variant: Variant) -> None:
    rep = build(PNG, PNG_ENTRY, snapshot_id=SNAP, variant=variant)
    assert rep.body == PNG
    assert rep.rangeable
    assert rep.headers["Accept-Ranges"] == "bytes"
    assert "Content-Encoding" not in rep.headers
    assert "Vary" not in rep.headers
    assert rep.headers["Content-Type"] == "image/png"


def test_representation_nbytes_counts_the_body() -> None:
    rep = build(PNG, PNG_ENTRY, snapshot_id=SNAP, variant=Variant.PRODUCTION)
    assert rep.nbytes >= len(rep.body)


def test_etags_are_strong_and_differ_between_variants_whose_bodies_differ() -> None:
    reps = [
        build(blob, item, snapshot_id=SNAP, variant=v)
        for blob, item in [(HTML, HTML_ENTRY), (HTML, HTML_NOINDEX_ENTRY), (CSS, CSS_ENTRY)]
        for v in Variant
    ]
    for rep in reps:
        assert rep.etag.startswith('"') and rep.etag.endswith('"')
        assert not rep.etag.startswith("W/")
    for a, b in itertools.combinations(reps, 2):
        if a.body != b.body:
            assert a.etag != b.etag, (a.headers, b.headers)
    # staging vs production HTML: different bodies, so different tags
    prod = build(HTML, HTML_ENTRY, snapshot_id=SNAP, variant=Variant.PRODUCTION)
    stag = build(HTML, HTML_ENTRY, snapshot_id=SNAP, variant=Variant.STAGING)
    assert prod.body != stag.body and prod.etag != stag.etag


_CONTENT_TYPES = st.sampled_from(
    [
        "text/html; charset=utf-8",
        "text/css; charset=utf-8",
        "application/json",
        "image/svg+xml",
        "image/png",
        "application/octet-stream",
    ]
)


@given(
    blobs=st.lists(
        st.binary(max_size=600) | st.text(max_size=600).map(str.encode), min_size=1, max_size=3
    ),
    content_type=_CONTENT_TYPES,
    noindex=st.booleans(),
)
def test_equal_etags_mean_equal_bodies(
    blobs: list[bytes], content_type: str, noindex: bool
) -> None:
    """A strong ETag names exactly one body, across variants and blobs."""
    reps = [
        build(blob, entry(blob, content_type, noindex=noindex), snapshot_id=SNAP, variant=v)
        for blob in blobs
        for v in Variant
    ]
    by_tag: dict[str, bytes] = {}
    for rep in reps:
        assert by_tag.setdefault(rep.etag, rep.body) == rep.body
    # each gzip variant decodes to its environment's identity variant
    for i in range(0, len(reps), len(Variant)):
        group = dict(zip(Variant, reps[i : i + len(Variant)], strict=True))
        for plain, packed in [
            (Variant.PRODUCTION, Variant.PRODUCTION_GZIP),
            (Variant.STAGING, Variant.STAGING_GZIP),
        ]:
            assert identity(group[packed].body, group[packed].headers) == group[plain].body


@given(body=st.binary(max_size=2000), variant=st.sampled_from(list(Variant)))
def test_identity_body_of_text_is_the_blob_unless_noindex_applies(
    body: bytes, variant: Variant
) -> None:
    item = entry(body, "text/css; charset=utf-8")
    rep = build(body, item, snapshot_id=SNAP, variant=variant)
    assert identity(rep.body, rep.headers) == body


def test_staging_robots_txt() -> None:
    rep = staging_robots_txt(SNAP)
    assert rep.body == STAGING_ROBOTS_TXT
    assert rep.headers["Content-Type"].startswith("text/plain")
    assert rep.headers["X-Robots-Tag"] == ROBOTS
    assert rep.headers["Cache-Control"] == "no-store"
    assert rep.headers["X-Edge-Env"] == "staging"
    assert rep.headers["X-Edge-Snapshot"] == SNAP
    assert rep.headers["ETag"] == rep.etag
    assert b"sitemap" not in rep.body.lower()
    assert b"disallow" not in rep.body.lower()
    assert not rep.rangeable


def test_a_snapshot_header_never_undoes_stagings_no_store() -> None:
    entry = ManifestEntry(sha256="a" * 64, content_type="text/html; charset=utf-8", size=5)
    rep = build(
        b"<html><head></head></html>",
        entry,
        snapshot_id="s1",
        variant=Variant.STAGING,
        extra_headers={"cache-control": "public, max-age=31536000", "X-Frame-Options": "DENY"},
    )
    assert CIMultiDict(rep.headers).getall("Cache-Control") == ["no-store"]
    assert CIMultiDict(rep.headers)["X-Frame-Options"] == "DENY"
