"""The admin side runs in its own process, apart from the visitor workers (issue 19 item 3).

Also with ``--workers 1``: the visitor worker never binds the admin port, heavy
admin work (large creations, a large diff, many pending schedules) leaves
visitors answered, and an admin process that dies is restarted by the
supervisor while visitors keep being served, losing no acknowledged publish.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import msgspec
import pytest

from edge.admin_api.auth import new_token
from tests.integration.conftest import PRODUCTION_HOST, ROLES, Api, EdgeServer
from tests.waiting import eventually


def page(text: str) -> bytes:
    return f"<html><head></head><body>{text}</body></html>".encode()


@pytest.fixture
def one_worker(tmp_path: Path) -> Iterator[EdgeServer]:
    srv = EdgeServer(root=tmp_path, tokens={n: new_token()[0] for n in ROLES}, workers=1)
    try:
        srv.start()
        yield srv
    finally:
        if srv.process is not None:
            srv.stop()


async def get(session: aiohttp.ClientSession, server: EdgeServer) -> tuple[int, str | None]:
    async with session.get(server.url + "/index.html", headers={"Host": PRODUCTION_HOST}) as r:
        await r.read()
        return r.status, r.headers.get("X-Edge-Snapshot")


async def test_one_worker_and_an_admin_process(one_worker: EdgeServer) -> None:
    (worker,) = one_worker.worker_pids()
    admin = one_worker.admin_pid()
    assert admin is not None and admin != worker
    # all_workers_listening (checked at start): the worker holds only the visitor
    # port, the admin process only the admin port.
    assert one_worker.all_workers_listening()


async def test_visitors_are_answered_while_heavy_admin_work_runs(
    one_worker: EdgeServer, session: aiohttp.ClientSession
) -> None:
    api = Api(one_worker, session)
    snap = await api.push("acme", {"/index.html": page("cached")})
    status, doc = await api.publish()
    assert status == 200, doc
    blobs = [page(f"blob {i}") for i in range(4)]
    await api.upload("acme", {f"/{i}": b for i, b in enumerate(blobs)})
    digests = [hashlib.sha256(b).hexdigest() for b in blobs]

    def files(shift: int) -> dict[str, dict[str, str]]:
        return {f"/p/{i}.html": {"sha256": digests[(i + shift) % 4]} for i in range(30_000)}

    async def create(shift: int) -> str:
        body = io.BytesIO(msgspec.json.encode({"files": files(shift)}))  # large: not as bytes
        status, doc = await api.call(
            "POST", "/v1/sites/acme/snapshots", data=body,  # type: ignore[arg-type]
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert status == 201, doc
        return str(doc["id"])

    a, b = await create(0), await create(1)
    paths = [f"/p/{i}.html" for i in range(2_000)]
    for n in range(20):
        status, doc = await api.call(
            "POST", "/v1/sites/acme/schedules",
            json={"at": f"2099-01-01T00:00:{n:02d}Z", "paths": paths},
        )  # fmt: skip
        assert status == 201, doc

    async def diff() -> None:
        status, doc = await api.call("GET", f"/v1/sites/acme/diff?from={a}&to={b}")
        assert status == 200 and len(doc["changed"]) == 30_000

    work = asyncio.ensure_future(asyncio.gather(*(create(s) for s in range(2, 6)), diff()))
    answers = []
    async with aiohttp.ClientSession() as visitor:
        while not work.done():
            answers.append(await get(visitor, one_worker))
    await work
    assert answers and set(answers) == {(200, snap)}


async def test_a_dead_admin_process_is_restarted_and_visitors_keep_being_served(
    server: EdgeServer, api: Api
) -> None:
    snap = await api.push("acme", {"/index.html": page("before")})
    status, doc = await api.publish()
    assert status == 200, doc
    admin = server.admin_pid()
    assert admin is not None
    os.kill(admin, signal.SIGKILL)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for _ in range(20):  # meanwhile, every visitor is answered
            assert await get(s, server) == (200, snap)
    await eventually(
        server.admin_pid,
        lambda pid: pid not in (None, admin) and server.all_workers_listening(),
        what="a new admin process",
    )
    api.session = aiohttp.ClientSession()  # the old keep-alive connection died with it
    try:
        status, envs = await api.call("GET", "/v1/sites/acme/environments")
        assert status == 200 and envs["production"]["snapshot"] == snap
        after = await api.push("acme", {"/index.html": page("after")})
        status, doc = await api.publish()
        assert status == 200, doc
    finally:
        await api.session.close()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        assert {await get(s, server) for _ in range(8)} == {(200, after)}
    assert "the admin process (pid" in server.log()
    assert server.stop() == 0
