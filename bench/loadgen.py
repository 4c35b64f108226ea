"""Fixed-rate visitor load from an asyncio aiohttp client, in a process of its own.

``bench/swap.py`` starts it as a subprocess (so its event loop and GIL never delay
the admin client that times publishes) with a JSON spec, and reads every request
back from the file it writes::

    python bench/loadgen.py SPEC.json

How it works: request ``i`` is due at ``t0 + i / rate`` (an open-loop schedule, so
a slow server does not lower the offered load); ``connections`` coroutines, each on
its own keep-alive connection, take the next due slot, sleep until it and send.
When all of them are busy a slot is sent late, and the record shows it (``sent -
due``), so a saturated client is visible rather than hidden. Paths are picked at
random (seeded). Every response's body is hashed and compared with the file of the
snapshot its ``X-Edge-Snapshot`` names: a response that mixes snapshots, or serves
another snapshot's bytes, fails that check.

It writes ``ready_file`` (its ``t0``) once connected and stops at ``stop_file`` or
after ``max_seconds``. Times are ``time.monotonic()``, which on Linux is one clock
for every process of the machine, so the parent can line them up with its own.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import random
import sys
import time
from pathlib import Path

import aiohttp
import msgspec
import uvloop

STOP_POLL_S = 0.02


class Spec(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    host: str
    paths: list[str]
    rate: float
    connections: int
    max_seconds: float
    ready_file: str
    stop_file: str
    out: str
    # snapshot id -> URL path -> sha256 of the body a visitor must get.
    expected: dict[str, dict[str, str]]
    timeout_s: float = 5.0
    seed: int = 1


class Record(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One request: when it was due, sent and answered (monotonic seconds), and what."""

    due: float
    sent: float
    received: float
    status: int  # 0: no answer (see error)
    snapshot: str
    path: int  # index into Spec.paths
    body_ok: bool | None  # None: the snapshot is not one of Spec.expected
    error: str = ""


class Result(msgspec.Struct, frozen=True):
    t0: float
    records: list[Record]


async def _request(
    session: aiohttp.ClientSession, spec: Spec, path_index: int, due: float
) -> Record:
    path = spec.paths[path_index]
    sent = time.monotonic()
    try:
        async with session.get(spec.url + path, headers={"Host": spec.host}) as resp:
            body = await resp.read()
            received = time.monotonic()
            snapshot = resp.headers.get("X-Edge-Snapshot", "")
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Record(due, sent, time.monotonic(), 0, "", path_index, None, type(exc).__name__)
    digests = spec.expected.get(snapshot)
    body_ok = None if digests is None else digests.get(path) == hashlib.sha256(body).hexdigest()
    return Record(due, sent, received, status, snapshot, path_index, body_ok)


async def run(spec: Spec) -> Result:
    rng = random.Random(spec.seed)
    records: list[Record] = []
    slots = itertools.count()
    stop_at = [float("inf")]
    connector = aiohttp.TCPConnector(limit=spec.connections)
    timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        skip_auto_headers=["Accept-Encoding", "User-Agent"],
        auto_decompress=False,
    ) as session:
        # Open every connection before the clock starts (and check the target answers).
        opened = await asyncio.gather(
            *(_request(session, spec, 0, time.monotonic()) for _ in range(spec.connections))
        )
        if any(r.status != 200 for r in opened):
            raise SystemExit(f"loadgen: the target does not answer 200: {opened[0]}")
        # No collector pauses in the measured latencies: what the run allocates is
        # mostly records (untracked) and short-lived request objects (freed by their
        # reference counts); a run is bounded, so the few cycles can wait.
        gc.collect()
        gc.freeze()
        gc.disable()
        t0 = time.monotonic() + 0.05
        deadline = t0 + spec.max_seconds
        Path(spec.ready_file).write_text(repr(t0))

        async def watch_stop() -> None:
            stop_file = Path(spec.stop_file)
            while time.monotonic() < deadline:
                if stop_file.exists():
                    break
                await asyncio.sleep(STOP_POLL_S)
            stop_at[0] = time.monotonic()

        async def worker() -> None:
            for i in slots:
                due = t0 + i / spec.rate
                if due >= min(stop_at[0], deadline):
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                records.append(await _request(session, spec, rng.randrange(len(spec.paths)), due))

        watcher = asyncio.create_task(watch_stop())
        await asyncio.gather(*(worker() for _ in range(spec.connections)))
        watcher.cancel()
    records.sort(key=lambda r: r.sent)
    return Result(t0, records)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    spec = msgspec.json.decode(Path(argv[0]).read_bytes(), type=Spec)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(run(spec))
    Path(spec.out).write_bytes(msgspec.json.encode(result))
    return 0


def load_result(path: Path) -> Result:
    return msgspec.json.decode(path.read_bytes(), type=Result)


def spec_json(spec: Spec) -> bytes:
    return msgspec.json.encode(spec)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
