"""The content cache: a byte-bounded LRU of ready-to-send responses."""

from edge.cache.keys import CacheKey, Variant, variant_for
from edge.cache.lru import ByteLRU

__all__ = ["ByteLRU", "CacheKey", "Variant", "variant_for"]
