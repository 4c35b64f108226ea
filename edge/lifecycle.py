"""Graceful stop of one edge process: refuse new connections, drain, cut, exit.

How this works: on SIGTERM or SIGINT every listening socket (visitors, HTTPS,
admin) is closed at once, so from then on a connection attempt is refused and
the kernel hands no further connection to this process. Idle keep-alive
connections are closed; requests in flight, a slow upstream response included,
run to completion for up to ``[server] shutdown_grace`` seconds, and their
connections close after the answer. Whatever still runs then is cancelled and its
connection cut, so the process always goes on to flush analytics, close the
store and exit. Everything here is aiohttp's public runner and server API.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiohttp import web

log = logging.getLogger("edge.lifecycle")

# After the grace period, aiohttp's per-connection shutdown waits this long before
# it cancels the handler and closes the connection (0 would mean "no limit").
CUT_SECONDS = 0.01


async def close_listeners(runners: Sequence[web.BaseRunner]) -> None:
    """Stop accepting on every listener now (open connections stay)."""
    for runner in runners:
        for site in list(runner.sites):
            await site.stop()


async def drain(runners: Sequence[web.BaseRunner], grace: float) -> int:
    """Close the listeners, let requests in flight finish within ``grace`` seconds.

    Returns how many connections were still busy after the grace period and were
    cut.
    """
    await close_listeners(runners)
    servers = [runner.server for runner in runners if runner.server is not None]
    # Requests whose bytes arrived before the listeners closed start first; then
    # idle connections close and busy ones close after their answer.
    await asyncio.sleep(0)
    for server in servers:
        server.pre_shutdown()
    if not any(server.connections for server in servers):
        return 0
    try:
        async with asyncio.timeout(grace):
            await asyncio.gather(*(server.shutdown(grace) for server in servers))
        return 0
    except TimeoutError:
        pass
    cut = sum(len(server.connections) for server in servers)
    log.warning("cutting %d connection(s) still busy after shutdown_grace (%.1fs)", cut, grace)
    # Cancels each remaining handler and closes its connection.
    await asyncio.gather(*(server.shutdown(CUT_SECONDS) for server in servers))
    return cut
