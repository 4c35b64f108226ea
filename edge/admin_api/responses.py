"""How the admin API answers: JSON bodies, and every failure as the JSON error body."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import msgspec
from aiohttp import hdrs, web

from edge.errors import (
    BadRequest,
    EdgeError,
    HeadersTooLarge,
    PayloadTooLarge,
    UriTooLong,
)

log = logging.getLogger("edge.admin")

ENCODER = msgspec.json.Encoder()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=ENCODER.encode(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _error_response(error: EdgeError) -> web.Response:
    # An error that names a wait (503 busy) says it in the header too (RFC 9110).
    retry_after = error.extra.get("retry_after")
    headers = None if retry_after is None else {"Retry-After": str(retry_after)}
    return json_response(error.body(), status=error.status, headers=headers)


# What the parser refuses (edge.wire.protocol), as the API's errors.
_WIRE_ERRORS: dict[int, type[EdgeError]] = {
    400: BadRequest,
    413: PayloadTooLarge,
    414: UriTooLong,
    431: HeadersTooLarge,
}


def wire_refusal(status: int) -> web.Response:
    """A request aiohttp's parser refused before this app saw it, in the API's error format."""
    error = _WIRE_ERRORS.get(status, BadRequest)(
        f"the request could not be read ({HTTPStatus(status).phrase.lower()})"
    )
    response = _error_response(error)
    response.force_close()
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as ``{"error": {"code", "message"}}`` with its status."""
    try:
        return await handler(request)
    except EdgeError as exc:
        return _error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        resp = json_response({"error": {"code": code, "message": exc.reason}}, status=exc.status)
        if exc.status == 405 and hdrs.ALLOW in exc.headers:
            resp.headers[hdrs.ALLOW] = exc.headers[hdrs.ALLOW]
        return resp
    except Exception:
        log.exception("admin request %s %s failed", request.method, request.path)
        return json_response(
            {"error": {"code": "internal", "message": "internal error, see the server log"}},
            status=500,
        )
