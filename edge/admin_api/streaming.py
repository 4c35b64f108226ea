"""Large admin answers sent in pieces: the same JSON document, never built whole.

A 2,000,000-path manifest encodes to some 320 MB; built at once it doubled the
process's memory and, on the visitors' loop, stalled them for over a second. The
document is encoded without its ``files`` (an empty object), and the files are
then written into that spot :data:`CHUNK_FILES` at a time, each piece encoded and
sent before the next is made, yielding to the event loop in between.

A diff of two such manifests is sent the same way: its document is encoded with
empty ``added``, ``removed`` and ``changed`` arrays, and each list is made only
when its turn comes (sorted references to the manifests' own path strings, no
set of either manifest) and written :data:`CHUNK_FILES` paths at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

import msgspec
from aiohttp import web

# A manifest with more files than this is streamed (smaller ones are one write).
STREAM_FILES_OVER = 10_000
CHUNK_FILES = 5_000
_EMPTY_FILES = b'"files":{}'
_encoder = msgspec.json.Encoder()


def split_at_files(head: bytes) -> tuple[bytes, bytes]:
    """``head`` (a document with ``"files":{}``) cut where the files go.

    ``files`` precedes every free-form field (``settings``), and a quote inside
    a string is escaped, so the first match is the field itself.
    """
    at = head.index(_EMPTY_FILES) + len(_EMPTY_FILES) - 1
    return head[:at], head[at:]


def file_pieces(files: Mapping[str, Any]) -> Any:
    """The members of the ``files`` object, in pieces of :data:`CHUNK_FILES`."""
    items = iter(files.items())
    first = True
    while chunk := dict(islice(items, CHUNK_FILES)):
        body = _encoder.encode(chunk)[1:-1]  # the members, without the braces
        yield body if first else b"," + body
        first = False


async def stream_with_files(
    request: web.Request, head: bytes, files: Mapping[str, Any]
) -> web.StreamResponse:
    """Send ``head`` with ``files`` written into its empty ``files`` object."""
    before, after = split_at_files(head)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(before)
    for piece in file_pieces(files):
        await response.write(piece)  # waits while the client is slow to read
    await response.write(after)
    await response.write_eof()
    return response


def path_pieces(paths: Iterable[str]) -> Iterator[bytes]:
    """The items of a JSON array of ``paths``, in pieces of :data:`CHUNK_FILES`."""
    items = iter(paths)
    first = True
    while chunk := list(islice(items, CHUNK_FILES)):
        body = _encoder.encode(chunk)[1:-1]  # the items, without the brackets
        yield body if first else b"," + body
        first = False


def added_paths(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Paths of ``new`` not in ``old``, sorted."""
    return sorted(p for p in new if p not in old)


def changed_paths(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Paths in both whose entries differ, sorted."""
    return sorted(p for p, entry in new.items() if p in old and old[p] != entry)


def diff_lists(
    old: Mapping[str, Any], new: Mapping[str, Any]
) -> tuple[tuple[str, Callable[[], list[str]]], ...]:
    """A diff's three lists in document order, each made only when called."""
    return (
        ("added", lambda: added_paths(old, new)),
        ("removed", lambda: added_paths(new, old)),
        ("changed", lambda: changed_paths(old, new)),
    )


def filled_pieces(
    head: bytes, lists: Sequence[tuple[str, Callable[[], Iterable[str]]]]
) -> Iterator[bytes]:
    """``head`` in pieces, each named empty array filled by its list, in order.

    The names must appear in ``head`` as ``"name":[]`` in this order, before any
    free-form string (a quote inside a string is escaped, so none can match).
    Each list is made only when its array is reached.
    """
    at = 0
    for name, make in lists:
        end = head.index(b'"' + name.encode() + b'":[]', at) + len(name) + 4
        yield head[at:end]
        yield from path_pieces(make())
        at = end
    yield head[at:]


async def stream_with_lists(
    request: web.Request,
    head: bytes,
    lists: Sequence[tuple[str, Callable[[], Iterable[str]]]],
) -> web.StreamResponse:
    """Send ``head`` with its named empty arrays filled (:func:`filled_pieces`)."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    for piece in filled_pieces(head, lists):
        await response.write(piece)  # waits while the client is slow to read
    await response.write_eof()
    return response
