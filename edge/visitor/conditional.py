"""Request header parsing for conditional and partial responses. Pure functions."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache


def _weights(accept_encoding: str) -> Iterator[tuple[str, float]]:
    """Each listed coding of an ``Accept-Encoding`` value (lower case) with its q-value:
    1 when absent, 0 when unreadable."""
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        yield name.strip().lower(), q


@lru_cache(maxsize=512)
def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value admits gzip (``q=0`` refuses it)."""
    if not accept_encoding:
        return False
    star: bool | None = None
    for name, q in _weights(accept_encoding):
        if name == "*":
            star = q > 0
        elif name in ("gzip", "x-gzip"):
            return q > 0
    return bool(star)


# Preference among equal q-values: zstd, then br, then gzip (edge.cache.keys indexes).
_CODING_INDEX = {"zstd": 3, "br": 2, "gzip": 1, "x-gzip": 1}
_PREFERENCE = (3, 2, 1)


@lru_cache(maxsize=1024)
def choose_coding(accept_encoding: str | None) -> int:
    """The content coding to send for an ``Accept-Encoding`` value, as an index of
    :data:`edge.cache.keys.CODINGS` (0: identity).

    RFC 9110 §12.5.3: a listed coding takes its q-value (1 when absent), ``*`` gives
    its q-value to codings not listed, ``q=0`` refuses. The highest q wins; among
    equal ones zstd, then br, then gzip (they compress in that order of ratio and
    speed of decoding).
    """
    if not accept_encoding:
        return 0
    q: dict[int, float] = {}
    star: float | None = None
    for name, weight in _weights(accept_encoding):
        index = _CODING_INDEX.get(name)
        if index is not None:
            q[index] = max(q[index], weight) if index in q else weight
        elif name == "*":
            star = weight
    best, best_q = 0, 0.0
    for index in _PREFERENCE:
        weight = q.get(index, star if star is not None else 0.0)
        if weight > best_q:
            best, best_q = index, weight
    return best


def etag_matches(if_none_match: str, etag: str) -> bool:
    """``If-None-Match`` weak comparison: any listed tag (or ``*``) equals ``etag``."""
    if if_none_match.strip() == "*":
        return True
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False


UNSATISFIABLE = (-1, -1)


def _digits(text: str) -> bool:
    # str.isdigit() alone admits "²", which int() refuses; and no file is larger
    # than 18 digits of bytes, while int() of thousands of digits raises.
    return text.isascii() and text.isdigit() and len(text) <= 18


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range -> inclusive ``(first, last)``.

    ``None`` means "ignore the header and send the whole body" (syntax errors and
    multiple ranges, as RFC 9110 allows); :data:`UNSATISFIABLE` means 416.
    """
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    if not dash:
        return None
    first_s, last_s = first_s.strip(), last_s.strip()
    if not (_digits(first_s) or first_s == "") or not (_digits(last_s) or last_s == ""):
        return None
    if first_s == "":
        if last_s == "":
            return None
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return (max(size - suffix, 0), size - 1)
    first = int(first_s)
    last = size - 1 if last_s == "" else min(int(last_s), size - 1)
    if last_s != "" and int(last_s) < first:
        return None
    if first >= size:
        return UNSATISFIABLE
    return (first, last)
