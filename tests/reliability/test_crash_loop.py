"""Crash loop: SIGKILL edge at random moments under load, restart it, lose nothing.

Each iteration starts ``edge serve``, runs pushes, publishes, scheduled launches
and form submissions concurrently, and kills it at a random moment. While it is
down, the SQLite file is opened read-only (what the crash left, before a restart
could repair anything) and checked: ``PRAGMA integrity_check``; every operation
that got a 2xx answer before the kill is there (operations without an answer may
or may not be); every pointer, pending schedule and snapshot names only complete
data (its snapshot exists, and every blob its manifest names); each pointer is
the last move in its history. After the restart, visitors get the production
snapshot of the last acknowledged state or a later one (a scheduled launch that
came due), and staging exactly as it was.

How edge is killed, chosen per iteration (``--workers 2``):

- ``group``: the supervisor and every worker at once, with SIGKILL (power cut,
  OOM kill of the service);
- ``supervisor``: the supervisor only; its workers get SIGTERM from the kernel
  (parent-death signal), drain, and exit;
- ``worker``: one worker mid-operation; the supervisor replaces it while the
  other keeps serving; then the whole group;
- ``startup``: the whole group while edge is still starting.

With ``--workers 1`` there is one process: ``group`` and ``startup``.

The default run does 8 iterations per worker count; the nightly run does more::

    EDGE_CRASH_ITERATIONS=100 .venv/bin/pytest -m crashloop tests/reliability

The seed is printed; ``EDGE_CRASH_SEED=<seed>`` repeats the same choices (kill
modes, moments, payloads; the interleaving with the server still varies).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import sqlite3
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.reliability.conftest import (
    FORMS,
    PRODUCTION_HOST,
    STAGING_HOST,
    Api,
    GroupedServer,
    live_in_group,
    new_server,
    page,
    wait_gone,
)
from tests.waiting import eventually

ITERATIONS = int(os.environ.get("EDGE_CRASH_ITERATIONS") or 8)
SEED = int(os.environ.get("EDGE_CRASH_SEED") or random.SystemRandom().randrange(2**32))
OPS_PER_TASK = 500  # a bound on each workload loop, besides the kill
REQUEST_TIMEOUT = 20.0
DOWN_TIMEOUT = 30.0  # how long the processes of a killed edge may take to be gone


@dataclass
class Ledger:
    """Everything edge acknowledged (answered 2xx) so far, over all iterations."""

    snapshots: dict[str, dict[str, bytes]] = field(default_factory=dict)
    staging: list[str] = field(default_factory=list)
    production: list[str] = field(default_factory=list)
    schedules: set[str] = field(default_factory=set)
    forms: set[str] = field(default_factory=set)
    # Snapshots naming a blob that was never uploaded, answered other than 422.
    accepted_incomplete: list[tuple[int, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Left:
    """What a killed edge left in its store."""

    staging: str | None
    production: str | None
    last_history_id: int


class Workload:
    """Concurrent pushes, publishes, schedules and form posts; records what was acked."""

    def __init__(self, api: Api, rng: random.Random, ledger: Ledger, tag: str) -> None:
        self.api = api
        self.rng = rng
        self.ledger = ledger
        self.tag = tag

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(
            self._loop(stop, self.push),
            self._loop(stop, self.publish),
            self._loop(stop, self.schedule),
            self._loop(stop, self.submit),
            self._loop(stop, self.submit),
        )

    async def _loop(self, stop: asyncio.Event, op: Any) -> None:
        rng = random.Random(self.rng.random())
        for n in range(OPS_PER_TASK):
            if stop.is_set():
                return
            try:
                await asyncio.wait_for(op(rng, n), REQUEST_TIMEOUT)
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass  # edge died or is dying: no answer, no acknowledgement
            await asyncio.sleep(rng.uniform(0.005, 0.05))

    async def push(self, rng: random.Random, n: int) -> None:
        marker = f"{self.tag}-{n}-{rng.randrange(10**9)}"
        files = {"/index.html": page(marker), "/about.html": page(f"about {marker}")}
        if rng.random() < 0.5:
            files[f"/media/{marker}.bin"] = rng.randbytes(rng.randrange(1, 64 * 1024))
        hashes = {hashlib.sha256(b).hexdigest(): b for b in files.values()}
        status, doc = await self.api.call(
            "POST", "/v1/sites/acme/blobs/missing", json={"sha256": list(hashes)}
        )
        if status != 200:
            return
        # Now and then a bad push: one blob is never uploaded. It must be refused.
        skip = rng.choice(doc["missing"]) if doc["missing"] and rng.random() < 0.1 else None
        for h in doc["missing"]:
            if h == skip:
                continue
            status, _ = await self.api.call("PUT", f"/v1/sites/acme/blobs/{h}", data=hashes[h])
            if status not in (200, 201):
                return
        manifest = {p: {"sha256": hashlib.sha256(b).hexdigest()} for p, b in files.items()}
        status, doc = await self.api.call(
            "POST",
            "/v1/sites/acme/snapshots",
            json={"files": manifest, "settings": FORMS, "message": marker},
        )
        if skip is not None and status != 422:
            self.ledger.accepted_incomplete.append((status, doc))
        if status != 201:
            return
        self.ledger.snapshots[doc["id"]] = files
        status, _ = await self.api.call(
            "PUT", "/v1/sites/acme/environments/staging", json={"snapshot": doc["id"]}
        )
        if status == 200:
            self.ledger.staging.append(doc["id"])

    async def publish(self, rng: random.Random, n: int) -> None:
        await asyncio.sleep(rng.uniform(0.0, 0.15))
        status, doc = await self.api.call("POST", "/v1/sites/acme/publish", json={})
        if status == 200:
            self.ledger.production.append(doc["production"])

    async def schedule(self, rng: random.Random, n: int) -> None:
        await asyncio.sleep(rng.uniform(0.0, 0.25))
        at = datetime.now(UTC) + timedelta(seconds=rng.uniform(-0.5, 1.0))
        status, doc = await self.api.call(
            "POST", "/v1/sites/acme/schedules", json={"at": at.isoformat()}
        )
        if status == 201:
            self.ledger.schedules.add(doc["id"])

    async def submit(self, rng: random.Random, n: int) -> None:
        token = uuid.UUID(int=rng.getrandbits(128)).hex
        async with self.api.session.post(
            self.api.server.url + "/_edge/forms/contact",
            json={"token": token},
            headers={"Host": PRODUCTION_HOST},
            allow_redirects=False,
        ) as resp:
            await resp.read()
            if resp.status == 204:
                self.ledger.forms.add(token)


def inspect(db: Path, ledger: Ledger) -> Left:
    """Check the store a killed edge left, read-only; what it says is current."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        # Blob bytes are files beside the database (written durably before their row).
        files = db.parent / "blobs"
        blobs = {
            sha: (size, (files / sha[:2] / sha[2:]).read_bytes())
            for sha, size in con.execute("SELECT sha256, size FROM blobs WHERE site = 'acme'")
        }
        for sha, (size, data) in blobs.items():
            assert hashlib.sha256(data).hexdigest() == sha and len(data) == size, sha
        snapshots = {
            sid: json.loads(manifest)
            for sid, manifest in con.execute(
                "SELECT id, manifest FROM snapshots WHERE site = 'acme'"
            )
        }
        for sid, manifest in snapshots.items():
            absent = [e["sha256"] for e in manifest.values() if e["sha256"] not in blobs]
            assert not absent, f"snapshot {sid} names blobs the store lacks: {absent}"

        pointers = {
            env: (snapshot, base)
            for env, snapshot, base in con.execute(
                "SELECT env, snapshot, base FROM pointers WHERE site = 'acme'"
            )
        }
        for env, (snapshot, base) in pointers.items():
            assert snapshot in snapshots, f"{env} points at a missing snapshot {snapshot}"
            assert base is None or base in snapshots, f"{env}'s base {base} is missing"
            last = con.execute(
                "SELECT to_snapshot FROM history WHERE site = 'acme' AND env = ?"
                " ORDER BY id DESC LIMIT 1",
                (env,),
            ).fetchone()
            assert last == (snapshot,), f"{env} is {snapshot}, its history ends at {last}"
        moved = set(con.execute("SELECT env, to_snapshot FROM history WHERE site = 'acme'"))
        schedules = {
            sid: (status, snapshot, base)
            for sid, status, snapshot, base in con.execute(
                "SELECT id, status, snapshot, base FROM schedules WHERE site = 'acme'"
            )
        }
        for sid, (status, snapshot, base) in schedules.items():
            if status == "pending":
                assert snapshot in snapshots, f"pending schedule {sid}: no snapshot {snapshot}"
                assert base is None or base in snapshots, f"pending schedule {sid}: no base"
        tokens = {
            json.loads(fields).get("token")
            for (fields,) in con.execute(
                "SELECT fields FROM form_submissions"
                " WHERE site = 'acme' AND env = 'production' AND form = 'contact'"
            )
        }

        lost = {
            "snapshots": sorted(set(ledger.snapshots) - set(snapshots)),
            "staging moves": [s for s in ledger.staging if ("staging", s) not in moved],
            "publishes": [s for s in ledger.production if ("production", s) not in moved],
            "schedules": sorted(ledger.schedules - set(schedules)),
            "form submissions": sorted(ledger.forms - tokens),
        }
        assert not any(lost.values()), f"acknowledged but lost: {lost}"
        assert not ledger.accepted_incomplete, ledger.accepted_incomplete
        (last_id,) = con.execute("SELECT COALESCE(MAX(id), 0) FROM history").fetchone()
        return Left(
            staging=pointers.get("staging", (None, None))[0],
            production=pointers.get("production", (None, None))[0],
            last_history_id=last_id,
        )
    finally:
        con.close()


async def fresh_get(server: GroupedServer, host: str) -> tuple[int, str | None, bytes]:
    """A request on a new connection (the kernel picks the worker per connection)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        async with s.get(
            server.url + "/", headers={"Host": host, "Accept-Encoding": "identity"}
        ) as resp:
            return resp.status, resp.headers.get("X-Edge-Snapshot"), await resp.read()


async def check_restarted(srv: GroupedServer, api: Api, left: Left, ledger: Ledger) -> None:
    """After a restart: visitors get what the store acknowledged (or a later launch)."""

    async def pending() -> list[Any]:
        status, doc = await api.call("GET", "/v1/sites/acme/schedules?status=pending")
        assert status == 200, doc
        return list(doc["schedules"])

    # Overdue schedules fire at start-up: wait for them.
    await eventually(pending, lambda found: not found, what="no schedule pending", ignoring=())
    status, envs = await api.call("GET", "/v1/sites/acme/environments")
    production, staging = envs["production"]["snapshot"], envs["staging"]["snapshot"]
    assert staging == left.staging
    if production != left.production:
        status, doc = await api.call("GET", "/v1/sites/acme/history?env=production&limit=500")
        later = [h for h in doc["history"] if h["id"] > left.last_history_id]
        assert later and later[0]["to"] == production, (left, later)
        assert {h["action"] for h in later} == {"schedule"}, later
    for _ in range(6):
        status, snapshot, body = await fresh_get(srv, PRODUCTION_HOST)
        assert (status, snapshot) == (200, production)
        if production in ledger.snapshots:
            assert body == ledger.snapshots[production]["/index.html"]
        status, snapshot, _ = await fresh_get(srv, STAGING_HOST)
        assert (status, snapshot) == (200, staging)


async def running_workers(srv: GroupedServer) -> list[int]:
    """The supervisor's workers; a moment's grace for one being restarted."""
    assert srv.process is not None
    try:
        return await eventually(srv.worker_pids, timeout=5, what="a worker")
    except AssertionError:
        raise AssertionError(
            f"supervisor {srv.process.pid} (exit status {srv.process.poll()}) has no workers:\n"
            + srv.log()[-4000:]
        ) from None


async def kill(srv: GroupedServer, mode: str, rng: random.Random) -> None:
    """Kill edge as ``mode`` says; returns once none of its processes runs."""
    assert srv.process is not None
    pgid = srv.process.pid
    if mode == "group":
        srv.kill_group()
    elif mode == "supervisor":
        srv.process.kill()
        srv.process.wait()
    elif mode == "worker":
        os.kill(rng.choice(await running_workers(srv)), signal.SIGKILL)
        await asyncio.sleep(rng.uniform(0.1, 1.0))  # load goes on meanwhile
        srv.kill_group()
    await wait_gone(live_in_group(pgid), DOWN_TIMEOUT)


@pytest.mark.crashloop
@pytest.mark.timeout(120 + 60 * ITERATIONS)
@pytest.mark.parametrize("workers", [2, 1])
async def test_crash_loop_loses_nothing_acknowledged(tmp_path: Path, workers: int) -> None:
    print(
        f"crash loop: seed {SEED}, {ITERATIONS} iterations, --workers {workers};"
        f" repeat with EDGE_CRASH_SEED={SEED}"
    )
    rng = random.Random(f"{SEED}-{workers}")
    srv = new_server(tmp_path, workers=workers, cls=GroupedServer)
    assert isinstance(srv, GroupedServer)
    # Many form posts from one address: the rate limit must not hide the writes under test.
    srv.extra_config = (
        "shutdown_grace = 3.0\nanalytics_flush_seconds = 0.2\n"
        "form_burst = 6000\nform_rate_per_minute = 6000"
    )
    db = srv.root / "data" / "edge.sqlite3"
    modes = ["group", "group", "supervisor", "worker", "startup"] if workers > 1 else [
        "group", "group", "group", "startup"
    ]  # fmt: skip
    ledger = Ledger()
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    try:
        srv.start()
        async with aiohttp.ClientSession(timeout=timeout) as session:
            api = Api(srv, session)
            first = await api.snapshot("acme", {"/index.html": page("first")}, settings=FORMS)
            ledger.snapshots[first] = {"/index.html": page("first")}
            await api.set_env("acme", "staging", first)
            status, doc = await api.publish()
            assert status == 200, doc
            ledger.production.append(first)
        assert srv.stop() == 0

        for i in range(ITERATIONS):
            mode = rng.choice(modes)
            print(f"iteration {i}: {mode}")
            if mode == "startup":
                srv.start_nowait()
                await asyncio.sleep(rng.uniform(0.0, 1.5))
                await kill(srv, "group", rng)
            else:
                srv.start()
                async with aiohttp.ClientSession(
                    timeout=timeout, connector=aiohttp.TCPConnector(force_close=True)
                ) as session:
                    stop = asyncio.Event()
                    work = asyncio.ensure_future(
                        Workload(Api(srv, session), rng, ledger, f"{i}").run(stop)
                    )
                    await asyncio.sleep(rng.uniform(0.05, 1.5))
                    await kill(srv, mode, rng)
                    stop.set()
                    await asyncio.wait_for(work, 2 * REQUEST_TIMEOUT)
            left = inspect(db, ledger)
            srv.start()
            async with aiohttp.ClientSession(timeout=timeout) as session:
                await check_restarted(srv, Api(srv, session), left, ledger)
            await kill(srv, "group", rng)

        print(
            f"acknowledged: {len(ledger.snapshots)} snapshots, {len(ledger.staging)} staging"
            f" moves, {len(ledger.production)} publishes, {len(ledger.schedules)} schedules,"
            f" {len(ledger.forms)} form submissions"
        )
        inspect(db, ledger)
        assert len(ledger.forms) > 0 and len(ledger.snapshots) > 1
    finally:
        if srv.process is not None and srv.process.poll() is None:
            srv.kill_group()
        if srv.process is not None:
            for pid in live_in_group(srv.process.pid):
                os.kill(pid, signal.SIGKILL)
