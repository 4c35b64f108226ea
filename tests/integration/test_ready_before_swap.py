"""Every worker holds a new snapshot before its move is visible (issue 18).

With ``--workers 2`` the admin calls of one session land on one worker; the
other learns of the move through the shared generation. It must have loaded
(decoded) the snapshot before the publish answered, when the publishing worker
asked it to: its catch-up then decodes nothing, so its first visitor waits for
no decode. ``edge_snapshot_late_loads`` counts the decodes a catch-up had to do.
"""

from __future__ import annotations

import asyncio

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import PRODUCTION_HOST, STAGING_HOST, Api, EdgeServer


def page(text: str) -> bytes:
    return f"<html><head></head><body>{text}</body></html>".encode()


async def per_worker(api: Api, name: str) -> dict[str, float]:
    status, body = await api.call("GET", "/metrics")
    assert status == 200
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name:
                found[sample.labels["worker"]] = sample.value
    return found


async def fresh_get(server: EdgeServer, host: str, path: str) -> tuple[int, str | None]:
    """One request on a new connection (the kernel picks the worker per connection)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        async with s.get(server.url + path, headers={"Host": host}) as resp:
            await resp.read()
            return resp.status, resp.headers.get("X-Edge-Snapshot")


async def test_the_other_worker_serves_a_publish_without_loading_it_then(
    server: EdgeServer, api: Api
) -> None:
    assert len(server.worker_pids()) == 2
    await api.push("acme", {f"/p/{i}.html": page(f"start {i}") for i in range(50)})
    status, doc = await api.publish()
    assert status == 200, doc
    late_before = sum((await per_worker(api, "edge_snapshot_late_loads_total")).values())
    for round_ in range(3):
        files = {f"/p/{i}.html": page(f"round {round_} page {i}") for i in range(500)}
        snap = await api.snapshot("acme", files)
        loads = await per_worker(api, "edge_snapshot_loads_total")
        await api.set_env("acme", "staging", snap)
        status, doc = await api.publish()
        assert status == 200, doc
        answers = await asyncio.gather(
            *(fresh_get(server, host, "/p/7.html") for host in (PRODUCTION_HOST, STAGING_HOST)
              for _ in range(8))
        )  # fmt: skip
        # Read-your-publish in every worker: no answer names an older snapshot.
        assert set(answers) == {(200, snap)}
        after = await per_worker(api, "edge_snapshot_loads_total")
        # Each worker decoded the new snapshot at most once (the one that created it
        # kept it), and at least one did: the worker that did not take the calls.
        grown = {w: after.get(w, 0) - loads.get(w, 0) for w in after}
        assert all(n <= 1 for n in grown.values()), grown
        assert sum(grown.values()) >= 1, grown
    late = sum((await per_worker(api, "edge_snapshot_late_loads_total")).values())
    assert late == late_before  # no worker decoded a live snapshot after it went live
