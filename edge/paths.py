"""URL path handling shared by the proxy and the admin API. Pure functions.

The proxy percent-decodes a request path exactly once, then normalises it (dot
segments resolved inside the root, repeated slashes collapsed). Manifest lookups
are dictionary lookups, so nothing here can reach a filesystem; ``None`` means
"no such path" and is never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, unquote_to_bytes

_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")
# A raw path that needs the slow path: percent escapes, dot segments, empty
# segments or characters that are never in a clean path. Checked with one regex
# so the common case ("/about.html") costs a single scan.
_NEEDS_WORK = re.compile(r"[%\\\x00-\x20\x7f]|/\.|//")
MAX_PATH = 2048


def decode_path(raw: str) -> str | None:
    """Percent-decode a raw request target's path once; ``None`` if not UTF-8."""
    path = raw.partition("?")[0].partition("#")[0]
    if "%" not in path:
        return path
    try:
        return unquote_to_bytes(path).decode("utf-8", "strict")
    except UnicodeError:  # not UTF-8 once decoded, or undecodable bytes in the target
        return None


def normalize_path(path: str) -> str | None:
    """Resolve ``.``/``..`` within the root and collapse ``//``; ``None`` if unusable.

    Idempotent: ``normalize_path(normalize_path(p)) == normalize_path(p)``.
    Paths with NUL, control characters or backslashes are refused outright.
    """
    if not path.startswith("/") or len(path) > MAX_PATH or _CONTROL.search(path):
        return None
    parts: list[str] = []
    segments = path.split("/")[1:]
    for seg in segments:
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts:
                parts.pop()
            continue
        parts.append(seg)
    trailing = segments[-1] in ("", ".", "..")
    if not parts:
        return "/"
    return "/" + "/".join(parts) + ("/" if trailing else "")


def split_target(raw: str) -> tuple[str | None, str] | None:
    """A request target -> ``(authority from absolute-form or None, origin-form target)``.

    RFC 9112: a server must accept ``GET http://host/path``, and then the target's
    authority, not the Host header, names the host. ``None``: neither form.
    """
    if raw.startswith("/"):
        return None, raw
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return None
    authority, slash, path = rest.partition("/")
    authority = authority.partition("?")[0]
    if not authority or "@" in authority:
        return None
    return authority, slash + path if slash else "/" + path


def request_path(raw: str) -> str | None:
    """A raw request target -> the normalised, decoded path (``None``: bad request)."""
    path = raw.partition("?")[0].partition("#")[0]
    if not _NEEDS_WORK.search(path):
        return path if path.startswith("/") and len(path) <= MAX_PATH else None
    decoded = decode_path(path)
    return None if decoded is None else normalize_path(decoded)


def lookup_candidates(path: str) -> tuple[str, ...]:
    """Manifest keys to try, in order: exact, ``/index.html`` (after a slash), ``.html``.

    ``/blog`` does not resolve to ``/blog/index.html``: served at ``/blog``, that
    page's relative links would resolve against ``/``. :func:`directory_redirect`
    sends the visitor to ``/blog/`` instead.
    """
    if path == "/":
        return ("/index.html",)
    if path.endswith("/"):
        return (path + "index.html", path[:-1] + ".html")
    return (path, path + ".html")


def manifest_key(path: str, files: Mapping[str, object]) -> str | None:
    """The manifest key a normalised request path resolves to (first candidate held), or None.

    Only ever a key of ``files``: resolution is dictionary lookups, never a filesystem.
    """
    for candidate in lookup_candidates(path):
        if candidate in files:
            return candidate
    return None


# What stays literal in a Location's path: RFC 3986 pchar and "/".
_LOCATION_SAFE = "/!$&'()*+,;=:@-._~"


def directory_redirect(path: str, raw_target: str, files: Mapping[str, object]) -> str | None:
    """The ``Location`` of a 301 when ``path`` resolves only through ``path/index.html``.

    As nginx and the static hosts do: ``/blog`` -> ``/blog/`` (query string kept),
    so the page's relative links work. ``None`` when no redirect is due (the path
    resolves as it is, or not at all). The location is built from the normalised
    path, so it is always a path on this host (never ``//elsewhere``).
    """
    if path.endswith("/") or path + "/index.html" not in files:
        return None
    if manifest_key(path, files) is not None:
        return None
    query = raw_target.partition("#")[0].partition("?")[2]
    location = quote(path, safe=_LOCATION_SAFE) + "/"
    return f"{location}?{query}" if query else location


def is_manifest_path(path: str) -> bool:
    """A path a snapshot may hold: absolute, normalised, a file (no trailing slash)."""
    return (
        len(path) > 1
        and normalize_path(path) == path
        and not path.endswith("/")
        and "?" not in path
        and "#" not in path
    )
