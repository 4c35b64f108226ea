"""Make a value once per key, however many callers ask for it while it is being made."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Once(Generic[K, V]):
    """The values being made, by key: :meth:`get_or_make` awaits one, or makes it."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[K, asyncio.Future[V]] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._pending

    def __len__(self) -> int:
        return len(self._pending)

    async def get_or_make(self, key: K, make: Callable[[], Awaitable[V]]) -> V:
        """``make()``'s value for ``key``; callers arriving meanwhile share it (or its error).

        The key is released before the waiters wake, so that a failure is retried by
        the next caller rather than remembered.
        """
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await make()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: only the waiters re-raise it
            raise
        finally:
            del self._pending[key]
        future.set_result(value)
        return value
