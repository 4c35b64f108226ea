"""Start-up check: aiohttp must parse requests with its C (llhttp) parser.

aiohttp falls back to a pure-Python parser when its C extension is missing or
``AIOHTTP_NO_EXTENSIONS`` is set. That parser has had request-smuggling bugs
the C one did not (CVE-2023-47627, CVE-2024-52304, CVE-2025-53643,
CVE-2025-69224), and it is several times slower. Edge refuses to start on it
unless ``[server] allow_python_http_parser = true``. This concerns the admin
listener: the visitor listeners parse with httptools (edge.wire.http1), which has
no pure-Python fallback at all.
"""

from __future__ import annotations

import logging

from edge.errors import ConfigError

log = logging.getLogger("edge")


def python_parser_reason() -> str | None:
    """Why aiohttp's server would parse with the pure-Python parser, or ``None`` (C parser)."""
    from aiohttp import helpers, http_parser, web_protocol

    c_parser = getattr(http_parser, "HttpRequestParserC", None)
    if c_parser is not None and getattr(web_protocol, "HttpRequestParser", None) is c_parser:
        return None
    if helpers.NO_EXTENSIONS:
        return "AIOHTTP_NO_EXTENSIONS is set"
    return "aiohttp's C extension is not installed"


def check_http_parser(allow_python: bool) -> None:
    """Refuse (or, when allowed, warn about) aiohttp's pure-Python request parser."""
    reason = python_parser_reason()
    if reason is None:
        return
    if not allow_python:
        raise ConfigError(
            f"server.allow_python_http_parser: aiohttp would parse requests with its"
            f" pure-Python parser ({reason}); install aiohttp with its C extension and"
            " unset AIOHTTP_NO_EXTENSIONS, or set allow_python_http_parser = true"
        )
    log.warning("serving with aiohttp's pure-Python HTTP parser (%s)", reason)
