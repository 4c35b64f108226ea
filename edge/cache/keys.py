"""Cache keys.

How this works: a key is ``(snapshot id, manifest path, variant)``. Snapshots never
change, so a key's value never goes stale and nothing is ever invalidated: moving
a pointer makes requests build keys with the new snapshot id. The variant names
the representation: which environment's rules shaped it (staging injects
noindex, production does not) and the content coding (identity, gzip, br or
zstd: :data:`CODINGS`, in the order a found entry's keys are kept). A staging representation
therefore can never answer a production request, whatever the cache holds.
"""

from __future__ import annotations

from enum import StrEnum

from edge.router import Env

# Content codings by index: a request's choice (edge.visitor.conditional) is an index.
CODINGS = ("identity", "gzip", "br", "zstd")
IDENTITY, GZIP, BR, ZSTD = range(4)
_SUFFIX = {"": "identity", "z": "gzip", "b": "br", "d": "zstd"}


class Variant(StrEnum):
    PRODUCTION = "p"
    PRODUCTION_GZIP = "pz"
    PRODUCTION_BR = "pb"
    PRODUCTION_ZSTD = "pd"
    STAGING = "s"
    STAGING_GZIP = "sz"
    STAGING_BR = "sb"
    STAGING_ZSTD = "sd"

    @property
    def env(self) -> Env:
        return "staging" if self.value[0] == "s" else "production"

    @property
    def coding(self) -> str:
        """``identity``, ``gzip``, ``br`` or ``zstd``."""
        return _SUFFIX[self.value[1:]]

    @property
    def gzip(self) -> bool:
        return self.value.endswith("z")


_VARIANTS = {
    ("production", IDENTITY): Variant.PRODUCTION,
    ("production", GZIP): Variant.PRODUCTION_GZIP,
    ("production", BR): Variant.PRODUCTION_BR,
    ("production", ZSTD): Variant.PRODUCTION_ZSTD,
    ("staging", IDENTITY): Variant.STAGING,
    ("staging", GZIP): Variant.STAGING_GZIP,
    ("staging", BR): Variant.STAGING_BR,
    ("staging", ZSTD): Variant.STAGING_ZSTD,
}

CacheKey = tuple[str, str, Variant]


def variant_for(env: Env, coding: int | bool) -> Variant:
    """The variant a request for ``env`` wants: a coding index (``True``: gzip)."""
    return _VARIANTS[(env, int(coding))]
