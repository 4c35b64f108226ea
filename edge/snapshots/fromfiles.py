"""A snapshot's ``settings.from_files``: its ``/_redirects`` and ``/_headers`` compiled.

Called for every snapshot edge creates (a push, a publish's merge, a sync, a
scheduled publish): the rules are always those of the files the snapshot holds,
so they travel with the content (previewed on staging, published, rolled back)
and a merge of paths can never leave them out of step. The files stay in the
manifest (history, diffs and merges see them) but are never served.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from edge.errors import BadRequest
from edge.snapshots.model import ManifestEntry
from edge.snapshots.settings import REFUSED_HEADERS
from edge.snapshots.sitefiles import (
    HEADERS_FILE,
    REDIRECTS_FILE,
    decode,
    parse_headers,
    parse_redirects,
    site_files_doc,
)

FROM_FILES = "from_files"
BlobReader = Callable[[str], Awaitable[bytes | None]]


def without_derived(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as a person writes them: ``from_files`` is edge's, not theirs."""
    return {k: v for k, v in settings.items() if k != FROM_FILES}


async def with_site_files(
    files: Mapping[str, ManifestEntry], settings: Mapping[str, Any], read: BlobReader
) -> dict[str, Any]:
    """``settings`` with ``from_files`` made from ``files`` (400 on a bad line)."""
    result = without_derived(settings)
    redirects_entry = files.get(REDIRECTS_FILE)
    headers_entry = files.get(HEADERS_FILE)
    redirects = headers = []
    if redirects_entry is not None:
        redirects = parse_redirects(decode("_redirects", await _read(read, redirects_entry)))
    if headers_entry is not None:
        text = decode("_headers", await _read(read, headers_entry))
        headers = parse_headers(text, REFUSED_HEADERS)
    doc = site_files_doc(redirects, headers)
    if doc:
        result[FROM_FILES] = doc
    return result


async def _read(read: BlobReader, entry: ManifestEntry) -> bytes:
    data = await read(entry.sha256)
    if data is None:
        raise BadRequest(f"blob {entry.sha256} is missing from the store")
    return data
