"""Ready-to-send representations of manifest entries. Pure: bytes in, bytes out.

A representation is what the cache holds: the final body (noindex injected for
staging and for production entries marked ``noindex``; for the gzip, br and zstd
variants of text types, the compressed body made once per blob by
:mod:`edge.visitor.codings`) with every response header already computed and already
written out as bytes (:class:`Wire`: the 200, HEAD and 304 answers, with and
without HSTS), so a cache hit costs dictionary lookups and one write; only the
``Date`` line is added per request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from multidict import CIMultiDict

from edge.cache.keys import Variant
from edge.content_types import is_compressible, is_html, is_media
from edge.noindex import ROBOTS_HEADER, STAGING_ROBOTS_TXT, inject_robots_meta
from edge.router import Env
from edge.snapshots.headers import check_writable
from edge.snapshots.immutable import IMMUTABLE_CACHE_CONTROL
from edge.snapshots.model import ManifestEntry
from edge.visitor.codings import MIN_BYTES, encode
from edge.wire.exchange import header_block, status_line

STAGING_CACHE_CONTROL = "no-store"
# Production content may change at any publish, so clients revalidate (cheap: 304).
PRODUCTION_CACHE_CONTROL = "public, max-age=0, must-revalidate"
_ENTRY_OVERHEAD = 1024  # headers, key and object bookkeeping, counted against the budget
_ETAG_SUFFIX = {"identity": "", "gzip": "z", "br": "b", "zstd": "d"}

compressible = lru_cache(maxsize=256)(is_compressible)
html = lru_cache(maxsize=256)(is_html)
rangeable = lru_cache(maxsize=256)(is_media)


@dataclass(frozen=True, slots=True)
class Wire:
    """A representation's answers as bytes, each up to (not including) the ``Date`` line.

    The visitor wire appends the ``Date`` line, the blank line and, for ``ok``,
    the body.
    """

    ok: bytes  # 200 status line and headers, Content-Length included (also HEAD's)
    not_modified: bytes  # 304 status line and headers


@dataclass(frozen=True, slots=True)
class Representation:
    """One cacheable response body with its headers."""

    body: bytes
    etag: str
    headers: Mapping[str, str]
    not_modified_headers: Mapping[str, str]
    rangeable: bool
    # A large file: sent from this blob file in chunks (edge.visitor.bodyfile), never
    # held as bytes; ``body`` is then empty and ``size`` the file's length.
    source: Path | None = None
    size: int = -1
    nbytes: int = field(init=False)
    # HSTS value (None: plain HTTP, or no HSTS) -> the answers as bytes.
    wires: dict[str | None, Wire] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", len(self.body))
        # A streamed file costs the cache its headers only.
        object.__setattr__(self, "nbytes", len(self.body) + _ENTRY_OVERHEAD)
        object.__setattr__(self, "wires", {None: self._wire(None)})

    def wire(self, hsts: str | None) -> Wire:
        """The answers as bytes, with ``Strict-Transport-Security: hsts`` when given."""
        found = self.wires.get(hsts)
        if found is None:
            found = self.wires[hsts] = self._wire(hsts)
        return found

    def _wire(self, hsts: str | None) -> Wire:
        extra = [] if hsts is None else [("Strict-Transport-Security", hsts)]
        ok = (
            status_line(200)
            + header_block([*self.headers.items(), *extra])
            + b"Content-Length: %d\r\n" % self.size
        )
        short = status_line(304) + header_block([*self.not_modified_headers.items(), *extra])
        return Wire(ok, short)

    def for_snapshot(self, snapshot_id: str) -> Representation:
        """The same bytes as served from another snapshot (only the header differs)."""
        headers = CIMultiDict(self.headers)
        headers["X-Edge-Snapshot"] = snapshot_id
        short = CIMultiDict(self.not_modified_headers)
        short["X-Edge-Snapshot"] = snapshot_id
        return Representation(
            body=self.body,
            etag=self.etag,
            headers=headers,
            not_modified_headers=short,
            rangeable=self.rangeable,
            source=self.source,
            size=self.size,
        )


def env_headers(env: Env, snapshot_id: str | None) -> dict[str, str]:
    """Headers every response of an environment carries, whatever its status."""
    headers: dict[str, str] = {"X-Edge-Env": env}
    if snapshot_id is not None:
        headers["X-Edge-Snapshot"] = snapshot_id
    if env == "staging":
        headers["X-Robots-Tag"] = ROBOTS_HEADER
        headers["Cache-Control"] = STAGING_CACHE_CONTROL
    return headers


def content_body(blob: bytes, entry: ManifestEntry, env: Env) -> tuple[bytes, bool]:
    """The identity body of ``entry`` in ``env`` and whether noindex was injected."""
    if (env == "staging" or entry.noindex) and is_html(entry.content_type):
        return inject_robots_meta(blob), True
    return blob, False


def wants_coding(entry: ManifestEntry, variant: Variant) -> bool:
    """Whether ``variant`` of ``entry`` has a compressed body to make."""
    return (
        variant.coding != "identity"
        and compressible(entry.content_type)
        and entry.size >= MIN_BYTES
    )


def build(
    blob: bytes,
    entry: ManifestEntry,
    *,
    snapshot_id: str,
    variant: Variant,
    extra_headers: Mapping[str, str] | None = None,
    immutable: bool = False,
    coded: bytes | None = None,
) -> Representation:
    """The representation of ``entry`` (whose bytes are ``blob``) for ``variant``.

    ``extra_headers`` (from the snapshot's settings) never override what edge
    decides itself: type, validators, noindex, and staging's ``no-store``.
    ``immutable``: production's default ``Cache-Control`` is the immutable one
    (edge.snapshots.immutable); a ``Cache-Control`` in ``extra_headers`` wins.
    ``coded``: the body already in ``variant``'s coding (edge.visitor.codings);
    when absent it is compressed here.
    """
    env = variant.env
    noindex = env == "staging" or entry.noindex
    body, injected = content_body(blob, entry, env)
    can_compress = compressible(entry.content_type)
    coding = variant.coding
    used = "identity"
    if coding != "identity" and can_compress and len(body) >= MIN_BYTES:
        packed = coded if coded is not None else encode(body, coding)
        if len(packed) < len(body):
            body, used = packed, coding
    tag = ("n" if injected else "o") + _ETAG_SUFFIX[used]
    etag = f'"{entry.sha256[:40]}-{tag}"'
    return _assemble(
        body,
        etag=etag,
        content_type=entry.content_type,
        env=env,
        snapshot_id=snapshot_id,
        noindex=noindex,
        vary=can_compress,
        coding=used,
        ranges=rangeable(entry.content_type),
        extra=extra_headers,
        immutable=immutable,
    )


def streams(entry: ManifestEntry, variant: Variant, threshold: int) -> bool:
    """Whether ``entry`` is sent from its blob file rather than built in memory.

    Above ``threshold`` bytes, unless it is HTML that needs the robots meta tag
    (staging, ``noindex``): that one is rewritten, so it is built in memory whatever
    its size. Streamed files are sent as they are stored: no gzip variant.
    """
    if entry.size <= threshold:
        return False
    return not ((variant.env == "staging" or entry.noindex) and is_html(entry.content_type))


def build_streamed(
    source: Path,
    entry: ManifestEntry,
    *,
    snapshot_id: str,
    variant: Variant,
    extra_headers: Mapping[str, str] | None = None,
    immutable: bool = False,
) -> Representation:
    """The representation of a large ``entry`` sent from ``source`` (see :func:`streams`)."""
    return _assemble(
        b"",
        etag=f'"{entry.sha256[:40]}-o"',  # the same validator as the identity body in memory
        content_type=entry.content_type,
        env=variant.env,
        snapshot_id=snapshot_id,
        noindex=variant.env == "staging" or entry.noindex,
        vary=compressible(entry.content_type),
        coding="identity",
        ranges=True,  # any large file: a download resumes, a player seeks
        extra=extra_headers,
        immutable=immutable,
        source=source,
        size=entry.size,
    )


def staging_robots_txt(snapshot_id: str) -> Representation:
    """Staging's synthesized robots.txt (the snapshot's own is never served there)."""
    digest = hashlib.sha256(STAGING_ROBOTS_TXT).hexdigest()
    return _assemble(
        STAGING_ROBOTS_TXT,
        etag=f'"{digest[:40]}-s"',
        content_type="text/plain; charset=utf-8",
        env="staging",
        snapshot_id=snapshot_id,
        noindex=True,
        vary=False,
        coding="identity",
        ranges=False,
    )


def _assemble(
    body: bytes,
    *,
    etag: str,
    content_type: str,
    env: Env,
    snapshot_id: str,
    noindex: bool,
    vary: bool,
    coding: str,
    ranges: bool,
    extra: Mapping[str, str] | None = None,
    immutable: bool = False,
    source: Path | None = None,
    size: int = -1,
) -> Representation:
    # Case-insensitive: a snapshot's "cache-control" must not sit beside (or
    # survive) the Cache-Control edge decides.
    common: CIMultiDict[str] = CIMultiDict()
    for name, value in (extra or {}).items():
        common[name] = value
    common.update(env_headers(env, snapshot_id))
    if noindex:
        common["X-Robots-Tag"] = ROBOTS_HEADER
    common.setdefault(
        "Cache-Control", IMMUTABLE_CACHE_CONTROL if immutable else PRODUCTION_CACHE_CONTROL
    )
    common["ETag"] = etag
    if vary:
        common["Vary"] = "Accept-Encoding"
    full = common.copy()
    full["Content-Type"] = content_type
    if coding != "identity":
        full["Content-Encoding"] = coding
    if ranges:
        full["Accept-Ranges"] = "bytes"
    # Once per representation, never per request: a header no writer would send
    # fails here (a 500 counted in metrics and the event log), not mid-write.
    check_writable(full.items())
    return Representation(
        body=body,
        etag=etag,
        headers=full,
        not_modified_headers=common,
        rangeable=ranges,
        source=source,
        size=size,
    )
