"""Answered visitor requests as the visitor wire hands them to the observer."""

from __future__ import annotations

from collections.abc import Mapping

from edge.router import Route
from edge.wire.exchange import Request


def answered(
    target: str = "/",
    headers: Mapping[str, str] | None = None,
    *,
    status: int = 200,
    method: str = "GET",
    route: Route | None = None,
    snapshot: str | None = None,
) -> Request:
    request = Request()
    request.method = method
    request.target = target
    for name, value in (headers or {}).items():
        request.raw.append((name.encode(), value.encode()))
        request.fields[name.lower().encode()] = value.encode()
    request.peer = "127.0.0.1"
    request.route = route
    request.status = status
    request.snapshot = snapshot
    return request
