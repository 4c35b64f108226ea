"""A byte-bounded LRU, indexed by group (the snapshot id of a key).

An ``OrderedDict`` keeps recency: a hit is one C-level ``get`` and one
``move_to_end``, where cachetools' ``LRUCache`` ran a few Python frames per hit
(and its ``get`` moved the key, so :meth:`ByteLRU.peek` could not be a peek).
Each key also sits in its group's set, so everything cached for one snapshot
is found without scanning the whole cache (the pre-swap warm-up).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


K = TypeVar("K", bound=Hashable)
V = TypeVar("V", bound=Sized)


def _no_group(key: object) -> object:
    return None


class ByteLRU(Generic[K, V]):
    """Least-recently-used entries go first once their bytes pass ``max_bytes``.

    An entry larger than the whole budget is served but not kept. ``group`` names
    the group of a key (default: one group for all).
    """

    __slots__ = ("_data", "_group", "_groups", "_max", "_size", "evictions", "hits", "misses")

    def __init__(self, max_bytes: int, group: Callable[[K], Hashable] = _no_group) -> None:
        self._data: OrderedDict[K, V] = OrderedDict()
        self._groups: dict[Hashable, set[K]] = {}
        self._group = group
        self._max = max_bytes
        self._size = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: K) -> V | None:
        """The value (now the most recently used), counting a hit or a miss."""
        value = self._data.get(key)
        if value is None:
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return value

    def peek(self, key: K) -> V | None:
        """A value without counting a hit or a miss and without changing its recency."""
        return self._data.get(key)

    def keys(self) -> list[K]:
        """A copy of the keys, least recently used first."""
        return list(self._data)

    def group(self, name: Hashable) -> list[K]:
        """A copy of the keys of one group (in no particular order)."""
        members = self._groups.get(name)
        return [] if members is None else list(members)

    def put(self, key: K, value: V) -> bool:
        """Keep ``value``; ``False`` when it alone exceeds the budget."""
        size = value.nbytes
        if size > self._max:
            return False
        data = self._data
        old = data.pop(key, None)
        if old is not None:
            self._size -= old.nbytes
        else:
            self._groups.setdefault(self._group(key), set()).add(key)
        data[key] = value
        self._size += size
        while self._size > self._max:
            evicted, gone = data.popitem(last=False)
            self._size -= gone.nbytes
            self._forget(evicted)
            self.evictions += 1
        return True

    def _forget(self, key: K) -> None:
        name = self._group(key)
        members = self._groups.get(name)
        if members is not None:
            members.discard(key)
            if not members:
                del self._groups[name]

    @property
    def max_bytes(self) -> int:
        return self._max

    @property
    def current_bytes(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data
