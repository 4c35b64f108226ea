"""Scheduled launch precision: how late a scheduled publish reaches visitors (SPEC §6).

One command, from the repository root::

    .venv/bin/python bench/schedule_precision.py [--repeats 5] [--lead 2]

SPEC §6: a scheduled launch fires within 50 ms of its moment.

How it works:

1. Two snapshots of a generated site, A and B (every HTML page differs), are pushed;
   A is published and checked from the production host.
2. Each repeat moves staging to the other snapshot and schedules its publish
   ``--lead`` seconds ahead (``POST .../schedules {"at": ...}``, RFC 3339 with a
   +02:00 offset, milliseconds). Shortly before the moment, ``--pollers`` concurrent
   clients start GETting a page of the production host in a tight loop (each on its
   own keep-alive connection) and record, for every response, when it was sent and
   received (wall clock, the clock the schedule is in) and its ``X-Edge-Snapshot``.
3. Lateness = the receive time of the first response carrying the new snapshot
   minus the scheduled moment (an upper bound: the swap happened at or before it).
   The lower bound is the send time of the last response that still carried the
   old snapshot. The server's own ``fired_at`` (ms) is read back too.
4. Correctness: every response is 200 and names A or B; after the first response of
   the new snapshot, no request sent later may get the old one again.

The table and a JSON document go to stdout (the JSON also to ``--json PATH``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script (python bench/schedule_precision.py): make ``bench`` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp

from bench.harness import (
    SITE,
    BenchError,
    Children,
    EdgeServer,
    pick_cpus,
    run_main,
    start_edge,
)
from bench.report import Target, finish, fmt, log, machine, rounded, table
from bench.sitegen import PRODUCTION_HOST, generate_site, variant_site
from edge.cli.client import AdminClient
from edge.cli.push import push

LATE_MS = 50.0  # SPEC §6
POLL_BEFORE_S = 0.3  # start polling this long before the moment
POLL_AFTER_NEW_S = 0.2  # keep polling this long after the first new response
GIVE_UP_S = 5.0  # no new snapshot this long after the moment: the launch failed
OFFSET = timezone(timedelta(hours=2))  # schedule in a non-UTC offset, as an operator might


@dataclass(frozen=True, slots=True)
class Poll:
    sent: float  # wall clock, seconds
    received: float
    status: int
    snapshot: str


async def poll(url: str, path: str, pollers: int, start: float, give_up: float) -> list[Poll]:
    """GET ``path`` in a tight loop from ``pollers`` clients from ``start`` (wall clock).

    Stops :data:`POLL_AFTER_NEW_S` after the snapshot changed, or at ``give_up``.
    """
    await asyncio.sleep(max(start - time.time(), 0.0))
    seen: list[Poll] = []
    stop_at = [give_up]
    first: list[str] = []
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=pollers),
        skip_auto_headers=["Accept-Encoding", "User-Agent"],
        timeout=aiohttp.ClientTimeout(total=5),
    ) as session:

        async def client() -> None:
            while time.time() < stop_at[0]:
                sent = time.time()
                try:
                    async with session.get(url + path, headers={"Host": PRODUCTION_HOST}) as r:
                        await r.read()
                        got = Poll(
                            sent, time.time(), r.status, r.headers.get("X-Edge-Snapshot", "")
                        )
                except (aiohttp.ClientError, TimeoutError):
                    got = Poll(sent, time.time(), 0, "")
                seen.append(got)
                if got.status == 200:
                    if not first:
                        first.append(got.snapshot)
                    elif got.snapshot != first[0] and stop_at[0] == give_up:
                        stop_at[0] = min(time.time() + POLL_AFTER_NEW_S, give_up)

        await asyncio.gather(*(client() for _ in range(pollers)))
    return seen


def analyse(polls: Sequence[Poll], old: str, new: str, moment: float) -> dict[str, Any]:
    ok = [p for p in polls if p.status == 200]
    failed = len(polls) - len(ok)
    foreign = sum(1 for p in ok if p.snapshot not in (old, new))
    news = [p for p in ok if p.snapshot == new]
    olds = [p for p in ok if p.snapshot == old]
    if not news:
        return {
            "fired": False,
            "requests": len(polls),
            "failed": failed,
            "foreign": foreign,
            "flip_backs": 0,
        }
    first_new = min(p.received for p in news)
    flip_backs = sum(1 for p in olds if p.sent > first_new)
    last_old_sent = max((p.sent for p in olds), default=None)
    polled_s = max(p.received for p in polls) - min(p.sent for p in polls)
    return {
        "fired": True,
        "late_ms": round((first_new - moment) * 1e3, 3),
        "late_lower_bound_ms": None
        if last_old_sent is None
        else round((last_old_sent - moment) * 1e3, 3),
        "requests": len(polls),
        "polls_per_s": round(len(polls) / polled_s, 1) if polled_s > 0 else None,
        "failed": failed,
        "foreign": foreign,
        "flip_backs": flip_backs,
    }


async def setup(edge: EdgeServer, site_a: Path, site_b: Path, path: str) -> tuple[str, str]:
    async with AdminClient(edge.admin_url, edge.token) as client:
        a = (await push(client, SITE, site_a, message="A", show_progress=False)).snapshot
        await client.call("POST", f"/v1/sites/{SITE}/publish", json={})
        b = (await push(client, SITE, site_b, message="B", show_progress=False)).snapshot
    expected = (site_a / path.lstrip("/") / "index.html").read_bytes()
    async with (
        aiohttp.ClientSession(skip_auto_headers=["Accept-Encoding"]) as session,
        session.get(edge.url + path, headers={"Host": PRODUCTION_HOST}) as resp,
    ):
        body = await resp.read()
        got = resp.headers.get("X-Edge-Snapshot")
        if resp.status != 200 or got != a or body != expected:
            raise BenchError(f"production {path}: status {resp.status}, snapshot {got!r}")
    return a, b


async def one_launch(
    edge: EdgeServer, path: str, target: str, old: str, lead: float, pollers: int
) -> dict[str, Any]:
    async with AdminClient(edge.admin_url, edge.token) as client:
        await client.call(
            "PUT", f"/v1/sites/{SITE}/environments/staging", json={"snapshot": target}
        )
        at = (datetime.now(OFFSET) + timedelta(seconds=lead)).isoformat(timespec="milliseconds")
        answer = await client.call("POST", f"/v1/sites/{SITE}/schedules", json={"at": at})
        if answer.get("snapshot") != target:
            raise BenchError(f"schedule for {target} answered {answer}")
        moment = datetime.fromisoformat(str(answer["at"])).timestamp()
        if abs(moment - datetime.fromisoformat(at).timestamp()) > 0.001:
            raise BenchError(f"scheduled {at}, the server stored {answer['at']}")
        polls = await poll(edge.url, path, pollers, moment - POLL_BEFORE_S, moment + GIVE_UP_S)
        result = analyse(polls, old, target, moment)
        record = await client.call("GET", f"/v1/sites/{SITE}/schedules/{answer['id']}")
    fired_at = record.get("fired_at")
    result["at"] = answer["at"]
    result["status"] = record.get("status")
    result["server_fired_late_ms"] = (
        round((datetime.fromisoformat(fired_at).timestamp() - moment) * 1e3, 3)
        if fired_at
        else None
    )
    if not result["fired"]:
        raise BenchError(
            f"the schedule at {answer['at']} did not reach visitors within {GIVE_UP_S:g} s"
            f" (server says: {record.get('status')}, {record.get('error')})"
        )
    return result


def render(doc: Mapping[str, Any]) -> str:
    s = doc["settings"]
    rows = [
        [
            "launch",
            "at (UTC)",
            "late ms",
            "lower bound",
            "server fired_at",
            "polls/s",
            "failed",
            "flip-backs",
        ]
    ]
    for i, r in enumerate(doc["launches"], 1):
        rows.append(
            [
                str(i),
                r["at"],
                fmt(r["late_ms"]),
                fmt(r["late_lower_bound_ms"]),
                fmt(r["server_fired_late_ms"], 0),
                fmt(r["polls_per_s"], 0),
                str(r["failed"] + r["foreign"]),
                str(r["flip_backs"]),
            ]
        )
    head = (
        f"scheduled launch precision: {s['repeats']} launches, each scheduled {s['lead_s']:g} s"
        f" ahead; {s['pollers']} pollers in a tight loop on GET {s['path']};"
        f" edge: {doc['edge']['workers']} worker(s)\n"
        "late = first response with the new snapshot (received) - scheduled moment;"
        " lower bound = last old response (sent) - moment"
    )
    foot = f"max lateness {fmt(doc['max_late_ms'])} ms"
    return "\n".join([head, "", table(rows), "", foot])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="scheduled launches (5)")
    parser.add_argument("--lead", type=float, default=2.0, help="seconds ahead to schedule (2)")
    parser.add_argument("--pollers", type=int, default=4, help="concurrent polling clients (4)")
    parser.add_argument("--pages", type=int, default=20, help="HTML pages in the site (20)")
    parser.add_argument("--workers", type=int, help="edge serve --workers N (edge's default)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.pollers < 1 or args.pages < 3:
        parser.error("--repeats and --pollers must be >= 1, --pages >= 3")
    if args.lead < 1:
        parser.error("--lead must be >= 1 second (the poll starts before the moment)")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be >= 1")
    return args


def body(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    cpus = pick_cpus()
    site_a, site_b = workdir / "site-a", workdir / "site-b"
    path = generate_site(site_a, args.pages, timed=3)
    variant_site(site_a, site_b, "variant B")
    edge = start_edge(children, workdir / "edge", cpus[0] if cpus else None, workers=args.workers)
    if cpus:
        os.sched_setaffinity(0, {cpus[1]})  # the pollers on the other CPU
    a, b = asyncio.run(setup(edge, site_a, site_b, path))
    log(f"snapshots A={a} (production, checked) B={b}")
    launches = []
    production = a
    for k in range(args.repeats):
        target = b if production == a else a
        result = asyncio.run(one_launch(edge, path, target, production, args.lead, args.pollers))
        children.check_alive()
        production = target
        launches.append(result)
        log(
            f"launch {k + 1}/{args.repeats}: {result['late_ms']:.1f} ms late"
            f" ({result['requests']} polls)"
        )
    late = [r["late_ms"] for r in launches]
    doc: dict[str, Any] = {
        "benchmark": "schedule_precision",
        "settings": {
            "repeats": args.repeats,
            "lead_s": args.lead,
            "pollers": args.pollers,
            "path": path,
            "workers": args.workers,
        },
        "edge": edge.processes(),
        "pinning": {"server_cpu": cpus[0], "client_cpu": cpus[1]} if cpus else None,
        "machine": machine(),
        "launches": launches,
        "max_late_ms": max(late),
        "median_late_ms": rounded(statistics.median(late)),
        "clock": f"wall clock (time.time), scheduled with offset {OFFSET}, compared in UTC",
    }
    failed = sum(r["failed"] + r["foreign"] for r in launches)
    flips = sum(r["flip_backs"] for r in launches)
    targets = [
        Target("max lateness", max(late), LATE_MS, " ms", "speed"),
        Target("failed or foreign responses", failed, 0, "", "correctness"),
        Target("old snapshot after the new one", flips, 0, "", "correctness"),
    ]
    return finish(doc, targets, render(doc), args.json)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("schedule", parse_args(argv), body)


if __name__ == "__main__":
    sys.exit(main())
