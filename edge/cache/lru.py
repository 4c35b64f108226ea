"""A byte-bounded LRU (cachetools, sized by each entry's ``nbytes``)."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from cachetools import LRUCache


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


K = TypeVar("K")
V = TypeVar("V", bound=Sized)


def _nbytes(value: Sized) -> int:
    return value.nbytes


class _CountingLRU(LRUCache[K, V]):
    """cachetools' LRU, counting the entries it evicts to make room."""

    evictions = 0

    def popitem(self) -> tuple[K, V]:
        item = super().popitem()
        self.evictions += 1
        return item


class ByteLRU(Generic[K, V]):
    """Least-recently-used entries go first once their bytes pass ``max_bytes``.

    An entry larger than the whole budget is served but not kept.
    """

    def __init__(self, max_bytes: int) -> None:
        self._lru: _CountingLRU[K, V] = _CountingLRU(maxsize=max_bytes, getsizeof=_nbytes)
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        value = self._lru.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def peek(self, key: K) -> V | None:
        """A value without counting a hit or a miss."""
        return self._lru.get(key)

    def keys(self) -> list[K]:
        """A copy of the keys, for a scan that may await between steps."""
        return list(self._lru.keys())

    def put(self, key: K, value: V) -> bool:
        """Keep ``value``; ``False`` when it alone exceeds the budget."""
        if value.nbytes > self._lru.maxsize:
            return False
        self._lru[key] = value
        return True

    @property
    def evictions(self) -> int:
        """Entries evicted so far to keep within the budget."""
        return self._lru.evictions

    @property
    def max_bytes(self) -> int:
        return int(self._lru.maxsize)

    @property
    def current_bytes(self) -> int:
        return int(self._lru.currsize)

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, key: K) -> bool:
        return key in self._lru
