"""Response header rules every writer can honour. Pure.

A snapshot's settings and manifest put names and values into response headers
(``settings.headers``, each file's ``content_type``); one that an HTTP/1.1 writer
refuses would take every page of the environment offline once it is live. So
every rule here is a full-string match (``fullmatch`` / ``\\Z``: ``$`` also
matches before a final newline), names are compared after normalisation, and
header values that carry a URL follow the rules of redirect targets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# RFC 9110 §5.6.2 token.
HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
# Any text but control characters (CR, LF, NUL, ...); a tab is allowed.
HEADER_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
# type "/" subtype *( OWS ";" OWS parameter ), printable ASCII only.
CONTENT_TYPE = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,254}")
MAX_HEADER_VALUE = 2048
_UNSAFE_TARGET = re.compile(r"[\x00-\x20\x7f]")
# Refresh: "5" or "5; url=/next" (RFC-less but universal; quotes allowed around the URL).
_REFRESH = re.compile(
    r"\s*[0-9]+(?:\.[0-9]*)?\s*(?:[;,]\s*(?:url\s*=\s*)?(?P<url>.*?))?\s*", re.IGNORECASE
)
_LINK_TARGET = re.compile(r"<([^>]*)>")


def normal_name(name: str) -> str:
    """A header name as it is compared: surrounding whitespace gone, lower case."""
    return name.strip(" \t\r\n").lower()


def is_safe_target(target: str) -> bool:
    """A redirect target: a local path (never ``//host`` or ``/\\host``) or an http(s) URL."""
    # Browsers drop tabs and newlines from URLs ("/\t/evil" is "//evil"): no
    # whitespace or control character at all.
    if not target or _UNSAFE_TARGET.search(target) or "\\" in target:
        return False
    if target.startswith("/"):
        return not target.startswith("//")
    scheme, sep, rest = target.partition("://")
    return bool(sep) and scheme.lower() in ("http", "https") and bool(rest) and rest[0] != "/"


def url_targets(name: str, value: str) -> list[str] | None:
    """The URLs a header value sends a browser to (``None``: malformed for its name).

    Only ``Refresh``, ``Link`` and ``Content-Location`` carry URLs; other names
    give an empty list.
    """
    lowered = normal_name(name)
    if lowered == "refresh":
        match = _REFRESH.fullmatch(value)
        if match is None:
            return None
        url = (match.group("url") or "").strip("'\"")
        return [url] if url else []
    if lowered == "link":
        targets = _LINK_TARGET.findall(value)
        return targets or None
    if lowered == "content-location":
        return [value]
    return []


def header_problem(name: str, value: str) -> str | None:
    """Why a response cannot carry ``name: value`` (``None``: it can)."""
    if not HEADER_NAME.fullmatch(name):
        return "not a valid header name"
    if len(value) > MAX_HEADER_VALUE:
        return f"value longer than {MAX_HEADER_VALUE} characters"
    if not HEADER_VALUE.fullmatch(value):
        return "value must not contain control characters (CR, LF, NUL, ...)"
    targets = url_targets(name, value)
    if targets is None:
        return "malformed value for this header"
    for target in targets:
        if not is_safe_target(target):
            return f"URL {target!r} must be a path like '/new' or an http(s) URL"
    return None


def settable_problem(name: str, value: str, refused: frozenset[str]) -> str | None:
    """Why a snapshot may not set ``name: value`` on its responses (``None``: it may):
    a name edge decides itself (in ``refused``, lower case, or any ``X-Edge-*``), or
    what :func:`header_problem` says."""
    normal = normal_name(name)
    if normal in refused or normal.startswith("x-edge-"):
        return "this header cannot be set (edge decides it)"
    return header_problem(name, value)


def content_type_problem(content_type: str) -> str | None:
    """Why ``content_type`` cannot be a response's ``Content-Type`` (``None``: it can)."""
    if not CONTENT_TYPE.fullmatch(content_type) or content_type != content_type.strip():
        return "a content type is printable ASCII (no control characters), 1 to 255 long"
    return None


def first_unwritable(headers: Iterable[tuple[str, str]]) -> str | None:
    """The first ``name: problem`` of headers a writer would refuse, or ``None``.

    The last check before bytes go out: what edge adds itself passes it by
    construction, so this fails only for what slipped past validation.
    """
    for name, value in headers:
        if not HEADER_NAME.fullmatch(name) or not HEADER_VALUE.fullmatch(value):
            return f"{name!r}: not writable"
    return None


class UnwritableHeaders(ValueError):
    """A response's headers break :func:`first_unwritable`; it is answered as a 500."""


def check_writable(headers: Iterable[tuple[str, str]]) -> None:
    """Raise :class:`UnwritableHeaders` unless every header can be written."""
    problem = first_unwritable(headers)
    if problem is not None:
        raise UnwritableHeaders(problem)
