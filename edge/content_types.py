"""Content types by extension, and which of them are text (gzip) or media (ranges).

A fixed table, so a snapshot gets the same types on every machine (the stdlib
``mimetypes`` reads the host's /etc/mime.types).
"""

from __future__ import annotations

from pathlib import PurePosixPath

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".wav": "audio/wav",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".wasm": "application/wasm",
}
DEFAULT_TYPE = "application/octet-stream"

_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/manifest+json",
        "application/xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/javascript",
        "application/wasm",
        "image/svg+xml",
    }
)


def content_type_for(path: str) -> str:
    """The default content type for a manifest path."""
    return _TYPES.get(PurePosixPath(path).suffix.lower(), DEFAULT_TYPE)


def media_type(content_type: str) -> str:
    """``text/html; charset=utf-8`` -> ``text/html``."""
    return content_type.partition(";")[0].strip().lower()


def is_html(content_type: str) -> bool:
    return media_type(content_type) in ("text/html", "application/xhtml+xml")


def is_compressible(content_type: str) -> bool:
    """Text types (and wasm) are served zstd-, br- or gzip-encoded to clients that accept it."""
    mt = media_type(content_type)
    return mt.startswith("text/") or mt in _TEXT_TYPES


def is_media(content_type: str) -> bool:
    """Media types are served with byte ranges."""
    return not is_compressible(content_type)
