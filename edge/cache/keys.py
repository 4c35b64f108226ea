"""Cache keys.

How this works: a key is ``(snapshot id, manifest path, variant)``. Snapshots never
change, so a key's value never goes stale and nothing is ever invalidated: moving
a pointer makes requests build keys with the new snapshot id. The variant names
the representation: which environment's rules shaped it (staging injects
noindex, production does not) and the content coding. A staging representation
therefore can never answer a production request, whatever the cache holds.
"""

from __future__ import annotations

from enum import StrEnum

from edge.router import Env


class Variant(StrEnum):
    PRODUCTION = "p"
    PRODUCTION_GZIP = "pz"
    STAGING = "s"
    STAGING_GZIP = "sz"

    @property
    def env(self) -> Env:
        return "staging" if self.value[0] == "s" else "production"

    @property
    def gzip(self) -> bool:
        return self.value.endswith("z")


_VARIANTS = {
    ("production", False): Variant.PRODUCTION,
    ("production", True): Variant.PRODUCTION_GZIP,
    ("staging", False): Variant.STAGING,
    ("staging", True): Variant.STAGING_GZIP,
}

CacheKey = tuple[str, str, Variant]


def variant_for(env: Env, gzip: bool) -> Variant:
    """The variant a request for ``env`` wants, with or without gzip."""
    return _VARIANTS[(env, gzip)]
