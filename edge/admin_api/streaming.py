"""Large admin answers sent in pieces: the same JSON document, never built whole.

A 2,000,000-path manifest encodes to some 320 MB; built at once it doubled the
process's memory and, on the visitors' loop, stalled them for over a second. The
document is encoded without its ``files`` (an empty object), and the files are
then written into that spot :data:`CHUNK_FILES` at a time, each piece encoded and
sent before the next is made, yielding to the event loop in between.
"""

from __future__ import annotations

from collections.abc import Mapping
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
