"""Graceful stop of one edge process: refuse new connections, drain, cut, exit.

How this works: on SIGTERM or SIGINT every listening socket (visitors, HTTPS,
admin) is closed at once, so from then on a connection attempt is refused and
the kernel hands no further connection to this process. Idle keep-alive
connections are closed; requests in flight, a slow upstream response included,
run to completion for up to ``[server] shutdown_grace`` seconds, and their
connections close after the answer. Whatever still runs then is cancelled and its
connection cut, so the process always goes on to flush analytics, close the
store and exit.

Both kinds of listener take part through :class:`Listener`: the visitor wire
(:class:`edge.wire.http1.Http1Server`) and the admin API's aiohttp runner
(:class:`AiohttpListener`, aiohttp's public runner and server API).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from aiohttp import web

log = logging.getLogger("edge.lifecycle")

# After the grace period, aiohttp's per-connection shutdown waits this long before
# it cancels the handler and closes the connection (0 would mean "no limit").
CUT_SECONDS = 0.01


class Listener(Protocol):
    async def stop_accepting(self) -> None: ...

    def begin_drain(self) -> None: ...

    def busy(self) -> int: ...

    async def wait_idle(self) -> None: ...

    async def cut(self) -> int: ...


class AiohttpListener:
    """An aiohttp runner (the admin API) as a :class:`Listener`."""

    def __init__(self, runner: web.BaseRunner) -> None:
        self.runner = runner

    async def stop_accepting(self) -> None:
        for site in list(self.runner.sites):
            await site.stop()

    def begin_drain(self) -> None:
        server = self.runner.server
        if server is not None:
            server.pre_shutdown()

    def busy(self) -> int:
        server = self.runner.server
        return 0 if server is None else len(server.connections)

    async def wait_idle(self) -> None:
        server = self.runner.server
        if server is not None:
            await server.shutdown(None)

    async def cut(self) -> int:
        server = self.runner.server
        if server is None:
            return 0
        cut = len(server.connections)
        await server.shutdown(CUT_SECONDS)  # cancels each handler, closes its connection
        return cut


async def close_listeners(listeners: Sequence[Listener]) -> None:
    """Stop accepting on every listener now (open connections stay)."""
    for listener in listeners:
        await listener.stop_accepting()


async def drain(listeners: Sequence[Listener], grace: float) -> int:
    """Close the listeners, let requests in flight finish within ``grace`` seconds.

    Returns how many connections were still busy after the grace period and were
    cut.
    """
    await close_listeners(listeners)
    # Requests whose bytes arrived before the listeners closed start first; then
    # idle connections close and busy ones close after their answer.
    await asyncio.sleep(0)
    for listener in listeners:
        listener.begin_drain()
    if not any(listener.busy() for listener in listeners):
        return 0
    try:
        async with asyncio.timeout(grace):
            await asyncio.gather(*(listener.wait_idle() for listener in listeners))
        return 0
    except TimeoutError:
        pass
    cut = sum(listener.busy() for listener in listeners)
    log.warning("cutting %d connection(s) still busy after shutdown_grace (%.1fs)", cut, grace)
    for listener in listeners:
        await listener.cut()
    return cut
