"""The admin API's share of the wire rules (the visitor wire, edge.wire.http1, applies them itself).

One middleware, placed inside the JSON error middleware: requests with unsound
framing (:mod:`edge.wire.framing`) are answered with the JSON error and the
connection closed; content-coded request bodies are refused with 415 (edge never
inflates a request body); a handler whose client went away mid-body (for example
closed by ``body_timeout``) ends quietly instead of logging a traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11

from edge.errors import UnsupportedMediaType
from edge.wire.framing import encoded_body, framing_error
from edge.wire.protocol import refusal

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def wire_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    headers = request.headers
    transfer_encoding = headers.get(hdrs.TRANSFER_ENCODING)
    if transfer_encoding is not None or request.version != HttpVersion11:
        error = framing_error(request.version, transfer_encoding)
        if error is not None:
            response = web.json_response(error.body(), status=error.status)
            response.force_close()
            return response
    if request.body_exists and encoded_body(headers.get(hdrs.CONTENT_ENCODING)):
        raise UnsupportedMediaType("request bodies must not be content-coded (Content-Encoding)")
    try:
        return await handler(request)
    except ConnectionResetError:
        if request.transport is not None:
            raise
        return refusal(408)  # never sent: the client is gone
