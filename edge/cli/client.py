"""A small admin API client for the CLI (aiohttp)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterable, Mapping
from types import TracebackType
from typing import Any

import aiohttp
import msgspec

_encoder = msgspec.json.Encoder()


class ApiError(Exception):
    """The server refused a call; ``message`` is its own error text."""

    def __init__(self, status: int, code: str, message: str, body: Mapping[str, Any]) -> None:
        super().__init__(f"{message} (HTTP {status}, {code})")
        self.status = status
        self.code = code
        self.body = body


class Unreachable(Exception):
    """No answer from the admin API at all (nothing listens, a wrong URL, a timeout)."""


def unreachable_reason(exc: BaseException) -> str:
    """A few words on why a connection failed: ``connection refused``, ``host not found``."""
    cause = getattr(exc, "os_error", None) or exc.__cause__ or exc
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, socket.gaierror):
        return "host not found"
    if isinstance(cause, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionResetError):
        return "the connection was closed without an answer"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS failed"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror[0].lower() + cause.strerror[1:]
    return type(cause).__name__


class AdminClient:
    """Calls ``/v1`` on one admin listener with one bearer token."""

    def __init__(self, base_url: str, token: str) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AdminClient:
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self._token}"},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | AsyncIterable[bytes] | None = None,
        params: Mapping[str, str] | None = None,
        content_length: int | None = None,
    ) -> Any:
        """One API call; the decoded JSON answer, or :class:`ApiError`.

        ``data`` may be an async iterable (a file streamed from disk), sent with
        ``content_length`` so the server can refuse an oversize body up front.
        """
        assert self._session is not None, "use 'async with AdminClient(...)'"
        headers = {}
        if json is not None:
            data = _encoder.encode(json)
            headers["Content-Type"] = "application/json"
        elif data is not None:
            headers["Content-Type"] = "application/octet-stream"
            if content_length is not None:
                headers["Content-Length"] = str(content_length)
        try:
            async with self._session.request(
                method, self._base + path, data=data, headers=headers, params=params
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Unreachable(
                f"cannot reach the admin API at {self._base}: {unreachable_reason(exc)}"
                " (is edge serve running? EDGE_ADMIN_URL?)"
            ) from None
        except aiohttp.InvalidURL:
            raise Unreachable(
                f"{self._base} is not a URL (--admin-url or EDGE_ADMIN_URL, e.g."
                " http://127.0.0.1:8081)"
            ) from None
        try:
            body = msgspec.json.decode(raw) if raw else None
        except msgspec.DecodeError:
            body = None
        if status >= 400:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            message = error.get("message") or raw.decode("utf-8", "replace")[:200]
            raise ApiError(
                status,
                str(error.get("code", "http_error")),
                str(message),
                body if isinstance(body, dict) else {},
            )
        return body
