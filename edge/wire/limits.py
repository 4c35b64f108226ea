"""Sizes and deadlines of a listener's connections: the ``[server]`` wire keys."""

from __future__ import annotations

from dataclasses import dataclass

from edge.config import ServerConfig


@dataclass(frozen=True, slots=True)
class WireLimits:
    """Sizes and deadlines of one listener's connections (``[server]`` keys)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 15.0
    send_timeout: float = 30.0
    max_request_line: int = 8190
    max_header_size: int = 8190
    max_headers: int = 100

    @classmethod
    def from_config(cls, server: ServerConfig) -> WireLimits:
        return cls(
            header_timeout=server.header_timeout,
            body_timeout=server.body_timeout,
            keepalive_timeout=server.keepalive_timeout,
            send_timeout=server.send_timeout,
            max_request_line=server.max_request_line,
            max_header_size=server.max_header_size,
            max_headers=server.max_headers,
        )
