"""Swap under load: publish latency, visitor latency and stale responses (SPEC §4, §6).

One command, from the repository root::

    .venv/bin/python bench/swap.py [--rate 800] [--swaps 50] [--workers N]

How it works:

1. Two snapshots of one generated site (``bench/sitegen.py``): A, and B, a copy in
   which every HTML page differs. Both are pushed with the real push code, and each
   is published once while every path is fetched and checked (status, snapshot id,
   body bytes) before anything is timed. This also warms edge's cache for both.
2. ``bench/loadgen.py`` (a process of its own) sends a fixed rate of GETs for random
   paths on the production host, well below capacity, over several keep-alive
   connections, and records for every request when it was due, sent and answered,
   its status and its ``X-Edge-Snapshot``, and checks its body against that
   snapshot's file.
3. After a warm-up, quiet windows (load, no swaps, ``--quiet`` seconds each) alternate
   with ``--rounds`` phases of swaps, so that drift of a busy machine hits both alike.
   In all, this process moves production back and forth between A and B ``--swaps``
   times, one every ``--interval-ms`` (random in the range): ``PUT
   .../environments/staging {"snapshot": X}``, then ``POST .../publish``, timing the
   POST alone. A quiet window starts one second after a phase's last swap. After
   each phase of swaps comes a control phase (unless ``--no-control``): the same
   number of admin round trips at the same pace, but reads only (``GET
   .../environments`` twice), so the visitors' latency during swaps can be told
   apart from the cost of serving (and sending) admin calls at all.
4. From the records: publish latency; visitor latency without swaps (the quiet
   windows), during swaps, in the first second after each swap, and during the
   control phases; the requests in flight during an admin call; failed requests;
   and stale responses: the old snapshot served to a request SENT after the publish
   that replaced it had ANSWERED (a publish still in flight while the request ran
   makes either snapshot acceptable).

Times are ``time.monotonic()`` in both processes (one clock on Linux). The table and
a JSON document go to stdout (the JSON also to ``--json PATH``). Failed or stale
responses fail the run (exit 1); latency targets are reported, not enforced.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script (python bench/swap.py): make the ``bench`` package importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import bisect
import hashlib
import os
import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from bench import loadgen
from bench.harness import (
    SITE,
    BenchError,
    Children,
    EdgeServer,
    baseline_pages,
    pick_cpus,
    pinned,
    run_main,
    start_edge,
)
from bench.report import Target, finish, fmt, log, machine, percentile, rounded, summary, table
from bench.sitegen import PRODUCTION_HOST, generate_site, variant_site
from edge.cli.client import AdminClient
from edge.cli.push import push

SWAP_P99_MS = 10.0  # SPEC §6: publish p99 including the durable commit
VISITOR_P99_RATIO = 1.2  # SPEC §6: visitor p99 during swaps vs without
AFTER_SWAP_S = 1.0  # "the first second after each swap"
READY_TIMEOUT_S = 30.0

T = TypeVar("T")


# -- setup: two snapshots, checked ---------------------------------------------------


def digests(site_dir: Path) -> dict[str, str]:
    """URL path -> sha256 of the bytes production serves for it (the file itself)."""
    return {
        path: hashlib.sha256(Path(file).read_bytes()).hexdigest()
        for path, (file, _) in baseline_pages(site_dir).items()
    }


async def check_production(
    url: str, expect_id: str, expected: Mapping[str, str], concurrency: int
) -> None:
    """GET every path on the production host: 200, ``expect_id``, the right bytes."""
    problems: list[str] = []
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(
        skip_auto_headers=["Accept-Encoding"], auto_decompress=False
    ) as session:

        async def one(path: str, digest: str) -> None:
            async with gate, session.get(url + path, headers={"Host": PRODUCTION_HOST}) as resp:
                body = await resp.read()
                got = resp.headers.get("X-Edge-Snapshot")
                if resp.status != 200 or got != expect_id:
                    problems.append(f"{path}: status {resp.status}, snapshot {got!r}")
                elif hashlib.sha256(body).hexdigest() != digest:
                    problems.append(f"{path}: body is not snapshot {expect_id}'s file")

        await asyncio.gather(*(one(p, d) for p, d in expected.items()))
    if problems:
        raise BenchError(
            f"production is wrong after publishing {expect_id}, nothing timed:\n  "
            + "\n  ".join(problems[:20])
        )


async def set_staging_and_publish(client: AdminClient, target: str) -> dict[str, Any]:
    await client.call("PUT", f"/v1/sites/{SITE}/environments/staging", json={"snapshot": target})
    answer: dict[str, Any] = await client.call("POST", f"/v1/sites/{SITE}/publish", json={})
    if answer.get("production") != target:
        raise BenchError(f"publish of {target} answered {answer}")
    return answer


async def prepare(
    edge: EdgeServer, site_a: Path, site_b: Path, concurrency: int
) -> tuple[str, str]:
    """Push A and B, publish and check each; production and staging end at A."""
    async with AdminClient(edge.admin_url, edge.token) as client:
        a = (await push(client, SITE, site_a, message="A", show_progress=False)).snapshot
        b = (await push(client, SITE, site_b, message="B", show_progress=False)).snapshot
        for target, site in ((b, site_b), (a, site_a)):
            await set_staging_and_publish(client, target)
            await check_production(edge.url, target, digests(site), concurrency)
    return a, b


# -- the timed part ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Swap:
    index: int
    target: str
    previous: str
    put_sent: float
    post_sent: float
    answered: float

    @property
    def publish_ms(self) -> float:
        return (self.answered - self.post_sent) * 1e3


async def swap_loop(
    edge: EdgeServer,
    a: str,
    b: str,
    indices: range,
    interval_ms: tuple[float, float],
    rng: random.Random,
) -> tuple[list[Swap], list[float]]:
    """Swaps number ``indices`` (even: to B, odd: to A); the swaps and PUT latencies (ms)."""
    done: list[Swap] = []
    put_ms: list[float] = []
    async with AdminClient(edge.admin_url, edge.token) as client:
        # One call first, so the timed calls run on an open keep-alive connection.
        await client.call("GET", f"/v1/sites/{SITE}/environments")
        for k in indices:
            target, previous = (b, a) if k % 2 == 0 else (a, b)
            start = time.monotonic()
            await client.call(
                "PUT", f"/v1/sites/{SITE}/environments/staging", json={"snapshot": target}
            )
            post_sent = time.monotonic()
            answer = await client.call("POST", f"/v1/sites/{SITE}/publish", json={})
            answered = time.monotonic()
            if answer.get("production") != target or answer.get("previous") != previous:
                raise BenchError(f"swap {k}: publish of {target} answered {answer}")
            put_ms.append((post_sent - start) * 1e3)
            done.append(Swap(k, target, previous, start, post_sent, answered))
            pause = rng.uniform(*interval_ms) / 1e3 - (time.monotonic() - start)
            if pause > 0:
                await asyncio.sleep(pause)
    return done, put_ms


async def control_loop(
    edge: EdgeServer, count: int, interval_ms: tuple[float, float], rng: random.Random
) -> list[tuple[float, float]]:
    """The admin traffic of ``count`` swaps without any swap: two reads per step.

    Each step is two ``GET .../environments`` at the pace of the swaps: the same
    number of admin round trips, with no write, no commit and no pointer move. The
    visitors' latency meanwhile separates the cost of a swap from the cost of
    serving admin calls at all (on either side). Returns (start, end) per step.
    """
    steps: list[tuple[float, float]] = []
    async with AdminClient(edge.admin_url, edge.token) as client:
        await client.call("GET", f"/v1/sites/{SITE}/environments")
        for _ in range(count):
            start = time.monotonic()
            await client.call("GET", f"/v1/sites/{SITE}/environments")
            await client.call("GET", f"/v1/sites/{SITE}/environments")
            steps.append((start, time.monotonic()))
            pause = rng.uniform(*interval_ms) / 1e3 - (time.monotonic() - start)
            if pause > 0:
                await asyncio.sleep(pause)
    return steps


def run_load(
    children: Children,
    workdir: Path,
    spec: loadgen.Spec,
    cpu: int | None,
    timeline: Callable[[float], T],
) -> tuple[loadgen.Result, T]:
    """Start the load generator, run ``timeline(t0)`` meanwhile, stop it; both results."""
    Path(spec.ready_file).unlink(missing_ok=True)
    spec_file = workdir / "loadgen.json"
    spec_file.write_bytes(loadgen.spec_json(spec))
    cmd = [sys.executable, str(Path(loadgen.__file__)), str(spec_file)]
    child = children.start("load generator", pinned(cpu, cmd), workdir / "loadgen.log")
    ready = Path(spec.ready_file)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready.exists():
        children.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"the load generator did not start:\n{child.tail()}")
        time.sleep(0.02)
    time.sleep(0.01)  # the file is written in one go, but give it a moment
    t0 = float(ready.read_text())
    outcome = timeline(t0)
    Path(spec.stop_file).touch()
    try:
        child.process.wait(timeout=spec.timeout_s + 30)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"the load generator did not stop:\n{child.tail()}") from exc
    if child.process.returncode != 0:
        raise BenchError(f"the load generator failed:\n{child.tail()}")
    children.children.remove(child)
    return loadgen.load_result(Path(spec.out)), outcome


# -- analysis ------------------------------------------------------------------------


def latency_ms(r: loadgen.Record) -> float:
    return (r.received - r.sent) * 1e3


def is_failure(r: loadgen.Record) -> bool:
    return r.status != 200 or r.body_ok is not True


def failures(records: Sequence[loadgen.Record]) -> dict[str, Any]:
    kinds: Counter[str] = Counter()
    for r in records:
        if r.status == 0:
            kinds[f"exception {r.error}"] += 1
        elif r.status != 200:
            kinds[f"status {r.status}"] += 1
        elif r.body_ok is None:
            kinds[f"unknown snapshot {r.snapshot!r}"] += 1
        elif not r.body_ok:
            kinds["body is not the named snapshot's file"] += 1
    return {"total": sum(kinds.values()), "by_kind": dict(kinds)}


def stale_responses(
    records: Sequence[loadgen.Record], swaps: Sequence[Swap], initial: str
) -> dict[str, Any]:
    """Responses of a replaced snapshot to requests sent after its replacement answered.

    For a request sent at ``s`` and answered at ``r``, the expected snapshot is the
    target of the last publish answered before ``s`` (``initial`` if none); the
    target of any publish whose POST was sent before ``r`` and answered after ``s``
    (in flight during the request) is accepted too.
    """
    answered = [w.answered for w in swaps]
    stale: list[dict[str, Any]] = []
    for rec in records:
        if rec.status != 200:
            continue
        last = bisect.bisect_left(answered, rec.sent) - 1
        expected = swaps[last].target if last >= 0 else initial
        if rec.snapshot == expected:
            continue
        in_flight = {
            w.target
            for w in swaps[last + 1 :]
            if w.post_sent < rec.received and w.answered >= rec.sent
        }
        if rec.snapshot in in_flight:
            continue
        stale.append(
            {
                "sent_after_answer_ms": round((rec.sent - answered[last]) * 1e3, 3)
                if last >= 0
                else None,
                "served": rec.snapshot,
                "expected": expected,
                "swap": last,
            }
        )
    ages = [s["sent_after_answer_ms"] for s in stale if s["sent_after_answer_ms"] is not None]
    return {
        "count": len(stale),
        "max_sent_after_answer_ms": max(ages) if ages else None,
        "examples": stale[:10],
    }


def window(records: Sequence[loadgen.Record], start: float, end: float) -> list[loadgen.Record]:
    return [r for r in records if start <= r.sent < end]


def window_doc(recs: Sequence[loadgen.Record], seconds: float) -> dict[str, Any]:
    ok = [latency_ms(r) for r in recs if not is_failure(r)]
    doc = summary(ok)
    doc["requests"] = len(recs)
    doc["seconds"] = round(seconds, 3)
    doc["req_per_s"] = round(len(recs) / seconds, 1) if seconds > 0 else None
    return doc


def analyse(
    result: loadgen.Result,
    phases: Sequence[Sequence[Swap]],
    controls: Sequence[Sequence[tuple[float, float]]],
    put_ms: Sequence[float],
    initial: str,
    warmup: float,
    settle: float,
) -> dict[str, Any]:
    """Windows: during swaps (each phase, first PUT to last answer), during control
    phases (admin reads only), and quiet (the rest, from ``settle`` seconds after each
    phase to the next)."""
    swaps = [w for phase in phases for w in phase]
    start = result.t0 + warmup
    records = [r for r in result.records if r.sent >= start]
    end = records[-1].sent + 1e-9 if records else start
    busy = sorted(
        [("swaps", p[0].put_sent, p[-1].answered) for p in phases]
        + [("control", c[0][0], c[-1][1]) for c in controls if c],
        key=lambda b: b[1],
    )
    quiet: list[loadgen.Record] = []
    during: list[loadgen.Record] = []
    control: list[loadgen.Record] = []
    quiet_s = during_s = control_s = 0.0
    quiet_from = start
    for kind, first, last in busy:
        quiet += window(records, quiet_from, first)
        quiet_s += max(first - quiet_from, 0.0)
        if kind == "swaps":
            during += window(records, first, last)
            during_s += last - first
        else:
            control += window(records, first, last)
            control_s += last - first
        quiet_from = last + settle
    quiet += window(records, quiet_from, end)
    quiet_s += max(end - quiet_from, 0.0)

    # The first second after each swap (windows overlap when swaps are closer).
    per_swap: list[dict[str, Any]] = []
    pooled: dict[int, loadgen.Record] = {}
    sent_times = [r.sent for r in records]
    for w in swaps:
        lo = bisect.bisect_left(sent_times, w.answered)
        hi = bisect.bisect_left(sent_times, w.answered + AFTER_SWAP_S)
        recs = records[lo:hi]
        pooled.update(zip(range(lo, hi), recs, strict=True))
        lat = [latency_ms(r) for r in recs if not is_failure(r)]
        per_swap.append(
            {
                "swap": w.index,
                "to": w.target,
                "publish_ms": round(w.publish_ms, 3),
                "requests_next_1s": len(recs),
                "p99_next_1s_ms": rounded(percentile(lat, 99)),
            }
        )
    # The windows' union, for the request rate (they overlap when swaps are closer).
    after_swap_s = 0.0
    covered_to = -1.0
    for w in swaps:
        lo_t = max(w.answered, covered_to)
        covered_to = max(covered_to, w.answered + AFTER_SWAP_S)
        after_swap_s += max(covered_to - lo_t, 0.0)
    lag = [(r.sent - r.due) * 1e3 for r in records]
    quiet_doc = window_doc(quiet, quiet_s)
    # Diagnosis: requests in flight while an admin call (PUT or POST) was, against the rest.
    calls = [(w.put_sent, w.answered) for w in swaps]
    starts = [c[0] for c in calls]

    def overlaps(r: loadgen.Record) -> bool:
        i = bisect.bisect_right(starts, r.received) - 1
        return i >= 0 and calls[i][1] >= r.sent

    overlapping = [r for r in during if overlaps(r)]
    apart = [r for r in during if not overlaps(r)]
    # Per second of the run: requests, p50, p99, max, swaps answered (for diagnosis).
    timeline: list[list[float | int | None]] = []
    for second in range(int(end - start) + 1):
        lo_s, hi_s = start + second, start + second + 1
        lat = [latency_ms(r) for r in window(records, lo_s, hi_s) if not is_failure(r)]
        swaps_in = sum(1 for w in swaps if lo_s <= w.answered < hi_s)
        timeline.append(
            [
                second,
                len(lat),
                rounded(percentile(lat, 50)),
                rounded(percentile(lat, 99)),
                rounded(max(lat)) if lat else None,
                swaps_in,
            ]
        )
    doc: dict[str, Any] = {
        "publish_ms": summary([w.publish_ms for w in swaps]),
        "put_staging_ms": summary(list(put_ms)),
        "windows": {
            "no_swaps": quiet_doc,
            "during_swaps": window_doc(during, during_s),
            "first_second_after_swaps": window_doc(list(pooled.values()), after_swap_s),
            "control_admin_reads": window_doc(control, control_s),
        },
        "during_swaps_split": {
            "in_flight_with_an_admin_call": summary(
                [latency_ms(r) for r in overlapping if not is_failure(r)]
            ),
            "the_rest": summary([latency_ms(r) for r in apart if not is_failure(r)]),
        },
        "failures": failures(records),
        "stale": stale_responses(records, swaps, initial),
        "client_lag_ms": {
            "p50": rounded(percentile(lag, 50)),
            "p99": rounded(percentile(lag, 99)),
            "max": rounded(max(lag)) if lag else None,
        },
        "requests_timed": len(records),
        "swaps": per_swap,
        "timeline": {"columns": ["second", "ok", "p50", "p99", "max", "swaps"], "rows": timeline},
    }
    for name in ("during_swaps", "first_second_after_swaps", "control_admin_reads"):
        w = doc["windows"][name]
        for pct in ("p50", "p99"):
            base = quiet_doc[pct]
            w[f"{pct}_ratio"] = round(w[pct] / base, 3) if base and w[pct] is not None else None
    ctl = doc["windows"]["control_admin_reads"]
    doc["during_swaps_p99_over_control"] = (
        round(doc["windows"]["during_swaps"]["p99"] / ctl["p99"], 3) if ctl["p99"] else None
    )
    worst = max(per_swap, key=lambda s: s["p99_next_1s_ms"] or 0.0)
    doc["worst_swap_next_1s"] = worst
    return doc


# -- report --------------------------------------------------------------------------


def render(doc: Mapping[str, Any]) -> str:
    s, r = doc["settings"], doc["results"]
    pub, put = r["publish_ms"], r["put_staging_ms"]
    head = (
        f"swap under load: {s['rate']:g} req/s offered over {s['connections']} connections,"
        f" {s['swaps']} swaps every {s['interval_ms'][0]:g}-{s['interval_ms'][1]:g} ms"
        f" in {s['rounds']} phases between quiet windows of {s['quiet_s']:g} s;"
        f" edge: {doc['edge']['workers']} worker(s)"
        f"{' (--workers ' + str(s['workers']) + ')' if s['workers'] else ''}\n"
        f"{s['paths']} paths, random; latencies are client-side (send to last byte)"
    )
    admin = table(
        [
            ["admin call (ms)", "count", "p50", "p99", "max"],
            *[
                [name, str(x["count"]), fmt(x["p50"]), fmt(x["p99"]), fmt(x["max"])]
                for name, x in (("POST publish", pub), ("PUT staging", put))
            ],
        ]
    )
    rows = [["visitor window", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "p99 ratio"]]
    labels = {
        "no_swaps": "no swaps (quiet windows)",
        "during_swaps": "during swaps",
        "first_second_after_swaps": "first 1 s after each swap",
        "control_admin_reads": "control: admin reads, no swap",
    }
    for key, label in labels.items():
        w = r["windows"][key]
        rows.append(
            [
                label,
                str(w["requests"]),
                fmt(w["req_per_s"], 0),
                fmt(w["p50"]),
                fmt(w["p99"]),
                fmt(w["max"]),
                "1.00" if key == "no_swaps" else fmt(w["p99_ratio"]),
            ]
        )
    worst = r["worst_swap_next_1s"]
    stale, failed, lag = r["stale"], r["failures"], r["client_lag_ms"]
    split = r["during_swaps_split"]
    notes = [
        f"during swaps / control (the swap's own cost): p99"
        f" {fmt(r['during_swaps_p99_over_control'])}x",
        f"worst single swap: #{worst['swap']}, p99 {fmt(worst['p99_next_1s_ms'])} ms in the"
        f" second after it (publish took {worst['publish_ms']:.2f} ms)",
        f"failed requests: {failed['total']}"
        + (f" {failed['by_kind']}" if failed["total"] else ""),
        f"stale responses: {stale['count']}"
        + (
            f" (up to {stale['max_sent_after_answer_ms']} ms after the publish answered)"
            if stale["count"]
            else ""
        ),
        "during swaps, requests in flight with an admin call:"
        f" p99 {fmt(split['in_flight_with_an_admin_call']['p99'])} ms"
        f" ({split['in_flight_with_an_admin_call']['count']} requests);"
        f" the others: p99 {fmt(split['the_rest']['p99'])} ms",
        f"load generator lag behind its schedule: p99 {fmt(lag['p99'])} ms,"
        f" max {fmt(lag['max'])} ms",
    ]
    return "\n".join([head, "", admin, "", table(rows), "", *notes])


# -- main ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=800, help="visitor req/s offered (800)")
    parser.add_argument("--connections", type=int, default=8, help="visitor connections (8)")
    parser.add_argument("--swaps", type=int, default=50, help="publishes (50)")
    parser.add_argument(
        "--interval-ms",
        type=float,
        nargs=2,
        default=(100.0, 200.0),
        metavar=("MIN", "MAX"),
        help="time from one swap to the next, random in [MIN, MAX] (100 200)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="phases of swaps, between quiet windows (3)"
    )
    parser.add_argument("--quiet", type=float, default=3.0, help="seconds of each quiet window (3)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not counted (1)")
    parser.add_argument("--pages", type=int, default=200, help="HTML pages in the site (200)")
    parser.add_argument("--workers", type=int, help="edge serve --workers N (edge's default)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client")
    parser.add_argument(
        "--no-control", action="store_true", help="skip the control phases (admin reads only)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.connections < 1 or args.rounds < 1:
        parser.error("--rate must be > 0, --connections >= 1, --rounds >= 1")
    if args.swaps < 2 * args.rounds:
        parser.error("--swaps must be at least 2 per round")
    lo, hi = args.interval_ms
    if not 0 < lo <= hi:
        parser.error("--interval-ms needs 0 < MIN <= MAX")
    if args.quiet < 1 or args.warmup < 0 or args.pages < 3:
        parser.error("--quiet must be >= 1, --warmup >= 0, --pages >= 3")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be >= 1")
    return args


def body(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    cpus = None if args.no_pin else pick_cpus()
    server_cpu, client_cpu = cpus if cpus else (None, None)
    site_a, site_b = workdir / "site-a", workdir / "site-b"
    generate_site(site_a, args.pages, timed=0)
    variant_site(site_a, site_b, "variant B")
    expected_a, expected_b = digests(site_a), digests(site_b)
    paths = sorted(expected_a)
    log(f"site: {len(paths)} paths; snapshot B differs in every HTML page")

    edge = start_edge(children, workdir / "edge", server_cpu, workers=args.workers)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})  # the admin client off the server's CPU
    a, b = asyncio.run(prepare(edge, site_a, site_b, 2 * args.connections))
    log(f"snapshots A={a} B={b}: published and checked on every path; production is A")
    processes = edge.processes()

    lo, hi = args.interval_ms
    settle = AFTER_SWAP_S
    budget = args.warmup + (2 * args.rounds + 1) * (args.quiet + settle)
    budget += 2 * args.swaps * (hi / 1e3 + 1.0) + 30
    spec = loadgen.Spec(
        url=edge.url,
        host=PRODUCTION_HOST,
        paths=paths,
        rate=args.rate,
        connections=args.connections,
        max_seconds=budget,
        ready_file=str(workdir / "loadgen.ready"),
        stop_file=str(workdir / "loadgen.stop"),
        out=str(workdir / "loadgen.out.json"),
        expected={a: expected_a, b: expected_b},
        seed=args.seed,
    )
    rng = random.Random(args.seed)

    Timeline = tuple[list[list[Swap]], list[list[tuple[float, float]]], list[float]]

    def timeline(t0: float) -> Timeline:
        log(f"load: {args.rate:g} req/s; warm-up {args.warmup:g} s, quiet {args.quiet:g} s")
        time.sleep(max(t0 + args.warmup + args.quiet - time.monotonic(), 0.0))
        phases: list[list[Swap]] = []
        controls: list[list[tuple[float, float]]] = []
        put_ms: list[float] = []
        for n in range(args.rounds):
            children.check_alive()
            indices = range(n * args.swaps // args.rounds, (n + 1) * args.swaps // args.rounds)
            log(f"round {n + 1}/{args.rounds}: {len(indices)} swaps, quiet, control, quiet")
            phase, puts = asyncio.run(swap_loop(edge, a, b, indices, (lo, hi), rng))
            phases.append(phase)
            put_ms += puts
            time.sleep(settle + args.quiet)
            if not args.no_control:
                controls.append(asyncio.run(control_loop(edge, len(indices), (lo, hi), rng)))
                time.sleep(settle + args.quiet)
        children.check_alive()
        return phases, controls, put_ms

    result, (phases, controls, put_ms) = run_load(children, workdir, spec, client_cpu, timeline)
    log(f"load generator: {len(result.records)} requests recorded")
    results = analyse(result, phases, controls, put_ms, a, args.warmup, settle)

    doc: dict[str, Any] = {
        "benchmark": "swap",
        "settings": {
            "rate": args.rate,
            "connections": args.connections,
            "swaps": args.swaps,
            "interval_ms": [lo, hi],
            "rounds": args.rounds,
            "quiet_s": args.quiet,
            "warmup_s": args.warmup,
            "paths": len(paths),
            "workers": args.workers,
        },
        "edge": {**processes, "snapshots": {"A": a, "B": b}},
        "pinning": {"server_cpu": server_cpu, "client_cpu": client_cpu} if cpus else None,
        "machine": machine(),
        "results": results,
    }
    w = results["windows"]
    targets = [
        Target("publish p99", results["publish_ms"]["p99"], SWAP_P99_MS, " ms", "speed"),
        Target(
            "visitor p99 during swaps / without",
            w["during_swaps"]["p99_ratio"],
            VISITOR_P99_RATIO,
            "x",
            "speed",
        ),
        Target("failed requests", results["failures"]["total"], 0, "", "correctness"),
        Target("stale responses", results["stale"]["count"], 0, "", "correctness"),
    ]
    return finish(doc, targets, render(doc), args.json)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("swap", parse_args(argv), body)


if __name__ == "__main__":
    sys.exit(main())
