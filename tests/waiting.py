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


def _timed_out(
    what: str, timeout: float, last: object, error: BaseException | None
) -> AssertionError:
    if error is not None:
        return AssertionError(
            f"timed out after {timeout}s waiting for {what}; last error: {error!r}"
        )
    shown = "no value" if last is _NOTHING else repr(last)
    if len(shown) > 2000:
        shown = shown[:2000] + "…"
    return AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {shown}")


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
    last: Any = _NOTHING
    error: BaseException | None = None
    while True:
        try:
            value = probe()
            if inspect.isawaitable(value):
                value = await value
            last, error = value, None
            if until(value):
                return value  # type: ignore[return-value]
        except ignoring as exc:
            error = exc
        if loop.time() >= deadline:
            raise _timed_out(what, timeout, last, error) from error
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
    last: Any = _NOTHING
    error: BaseException | None = None
    while True:
        try:
            value = probe()
            last, error = value, None
            if until(value):
                return value
        except ignoring as exc:
            error = exc
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout, last, error) from error
        time.sleep(interval)
