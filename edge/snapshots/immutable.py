"""Which paths are immutable assets: a content hash in the file name, or a build tool's
folder of hashed output. Pure.

On production such a path gets ``Cache-Control: public, max-age=31536000,
immutable`` (a new build gives it a new name, so it never needs revalidating);
staging keeps ``no-store``. A site turns this off, or names its own folders,
with ``settings.immutable``; ``_headers`` (or ``settings.headers``) setting
``Cache-Control`` for a path wins over it.

A hashed name: ``name.HASH.ext`` or ``name-HASH.ext`` where ``HASH`` is at
least 8 lower-case hex digits with a digit and a letter among them (webpack,
Hugo, Eleventy, Parcel), or 8 to 12 base64url characters with a digit and a
letter, or with two capitals and a small letter (Vite, Rollup, esbuild:
``index-BvK3x2aZ.css``). Dates and versions (``photo-20240101.jpg``,
``jquery-3.6.0.js``) are not hashes.
"""

from __future__ import annotations

import re

IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"
DEFAULT_PREFIXES = ("/_next/static/", "/_astro/")
_HEX = re.compile(r"[0-9a-f]{8,64}")
_B64URL = re.compile(r"[A-Za-z0-9_-]{8,12}")


def _is_hash(text: str) -> bool:
    if _HEX.fullmatch(text):
        return any(c.isdigit() for c in text) and any(c.isalpha() for c in text)
    if not _B64URL.fullmatch(text):
        return False
    digits = sum(c.isdigit() for c in text)
    upper = sum(c.isupper() for c in text)
    lower = sum(c.islower() for c in text)
    return (digits > 0 and upper + lower > 0) or (upper >= 2 and lower > 0)


def hashed_name(path: str) -> bool:
    """Whether the file name of ``path`` carries a content hash."""
    name = path.rpartition("/")[2]
    stem, dot, _ = name.rpartition(".")
    if not dot or not stem:
        return False
    for i, c in enumerate(stem):
        if c in ".-" and _is_hash(stem[i + 1 :]):
            return True
    return False


def is_immutable(path: str, *, hashed_names: bool, prefixes: tuple[str, ...]) -> bool:
    """Whether ``path`` (a manifest path) is an immutable asset under these settings."""
    return path.startswith(prefixes) or (hashed_names and hashed_name(path))
