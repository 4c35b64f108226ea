"""Waiting for an event in tests: poll a probe until its value is what the test wants.

Tests wait for something observable (a log line, an answer, a counter) and never
for an amount of time. ``eventually`` (async) and ``eventually_sync`` call ``probe``
until ``until(value)`` holds and return that value. The deadline is generous: it
only bounds a test that would otherwise hang, it measures nothing. On a timeout the
failure names what was awaited and shows the last value seen, or chains the last
exception the probe raised (a probe may assert; an ``AssertionError`` counts as
"not yet").
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["TIMEOUT", "eventually", "eventually_sync"]

T = TypeVar("T")

TIMEOUT = 30.0
INTERVAL = 0.05

_NOTHING: Any = object()


def _truthy(value: object) -> bool:
    return bool(value)


class _Tries:
    """What the probes returned so far, for the failure message."""

    def __init__(self, what: str, timeout: float) -> None:
        self.what = what
        self.timeout = timeout
        self.last: Any = _NOTHING
        self.error: BaseException | None = None

    def saw(self, value: object) -> None:
        self.last, self.error = value, None

    def failure(self) -> AssertionError:
        head = f"timed out after {self.timeout}s waiting for {self.what}"
        if self.error is not None:
            return AssertionError(f"{head}; last error: {self.error!r}")
        shown = "no value" if self.last is _NOTHING else repr(self.last)
        if len(shown) > 2000:
            shown = shown[:2000] + "…"
        return AssertionError(f"{head}; last value: {shown}")


async def eventually(
    probe: Callable[[], Awaitable[T] | T],
    until: Callable[[T], bool] = _truthy,
    *,
    what: str = "the condition",
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    ignoring: tuple[type[BaseException], ...] = (AssertionError,),
) -> T:
    """The first value of ``probe()`` (awaited if need be) for which ``until`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    tries = _Tries(what, timeout)
    while True:
        try:
            value = probe()
            if inspect.isawaitable(value):
                value = await value
            tries.saw(value)
            if until(value):
                return value  # type: ignore[return-value]
        except ignoring as exc:
            tries.error = exc
        if loop.time() >= deadline:
            raise tries.failure() from tries.error
        await asyncio.sleep(interval)


def eventually_sync(
    probe: Callable[[], T],
    until: Callable[[T], bool] = _truthy,
    *,
    what: str = "the condition",
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    ignoring: tuple[type[BaseException], ...] = (AssertionError,),
) -> T:
    """``eventually`` for code outside an event loop (blocking between probes)."""
    deadline = time.monotonic() + timeout
    tries = _Tries(what, timeout)
    while True:
        try:
            tries.saw(value := probe())
            if until(value):
                return value
        except ignoring as exc:
            tries.error = exc
        if time.monotonic() >= deadline:
            raise tries.failure() from tries.error
        time.sleep(interval)
