"""Memory: edge's resident size while serving a site three times its cache budget.

One command, from the repository root (needs wrk: ``apt-get install -y wrk``)::

    .venv/bin/python bench/memory.py [--budget-mib 16] [--large-mib 48] [--duration 20]

SPEC §6: resident size stays within the cache budget plus a fixed overhead while
serving a site larger than the budget.

How it works, for two sites in two fresh ``edge serve`` processes with the same
``cache_max_bytes`` (``--budget-mib``):

- a SMALL site (``--small-mib``, below the budget): every page fits in the cache, so
  after the load its resident size is the fixed overhead plus the whole site;
- a LARGE site (``--large-mib``, three times the budget): the cache must evict.

Each site (``bench/sitegen.py``, ~20 KB HTML pages) is pushed and published; edge is
then restarted on the same data (unless ``--no-restart``), so the figures describe a
server that serves, not one that just received 50 MB of uploads. Some pages are
fetched and checked (status, snapshot, bytes) before anything is measured. Then wrk
requests random paths of the site (a Lua script picks one per request) for
``--duration`` seconds while this script samples the resident size of the server
process and every process it started (``VmRSS`` and ``Pss`` from ``/proc``), before
the load, every ``--sample`` seconds during it, and after it.

Figures: the fixed overhead is the small run's resident size at the end minus the
cache bytes its site needs (each page's body plus edge's 1 KiB per-entry allowance,
per worker process); the bound is that overhead plus the budget. The large run's peak
must stay within the bound, and must not keep growing through the second half of
the load. The table and a JSON document go to stdout (the JSON also to ``--json``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script (python bench/memory.py): make the ``bench`` package importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import json
import random
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench import wrk
from bench.harness import (
    BenchError,
    Children,
    EdgeServer,
    MiB,
    pick_cpus,
    pinned,
    push_and_publish,
    restart_edge,
    run_main,
    start_edge,
)
from bench.report import Target, finish, fmt, log, machine, table
from bench.sitegen import PRODUCTION_HOST, generate_site

PAGE_BYTES = 20 * 1024  # the generated pages average about this
ENTRY_OVERHEAD = 1024  # what edge counts per cache entry on top of the body
CHECKED_PAGES = 40
SETTLE_S = 1.0
GROWTH_LIMIT = 0.10  # of the budget: "not growing" over the second half of the load

WRK_SCRIPT = """
-- One random path per request, from every file of the site.
local paths = %s
wrk.headers["Host"] = "%s"
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
function init(args)
  math.randomseed(id * 7919 + %d)
end
function request()
  return wrk.format(nil, paths[math.random(#paths)])
end
"""


# -- resident size -------------------------------------------------------------------


def _kib(path: Path, key: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # seconds since the load started (negative: before)
    rss: int  # bytes, summed over the server's processes
    pss: int | None
    processes: int


def sample(edge: EdgeServer, t: float) -> Sample:
    rss, pss, count = 0, 0, 0
    have_pss = True
    for pid in edge.pids():
        r = _kib(Path(f"/proc/{pid}/status"), "VmRSS:")
        if r is None:
            continue  # exited meanwhile
        count += 1
        rss += r
        p = _kib(Path(f"/proc/{pid}/smaps_rollup"), "Pss:")
        have_pss = have_pss and p is not None
        pss += p or 0
    return Sample(round(t, 2), rss, pss if have_pss else None, count)


# -- one run -------------------------------------------------------------------------


def site_files(root: Path) -> dict[str, Path]:
    """URL path -> file, for every file of the generated site (no pretty aliases)."""
    return {"/" + f.relative_to(root).as_posix(): f for f in sorted(root.rglob("*")) if f.is_file()}


async def check_pages(edge: EdgeServer, files: Mapping[str, Path], snapshot: str) -> None:
    rng = random.Random(3)
    problems = []
    async with aiohttp.ClientSession(skip_auto_headers=["Accept-Encoding"]) as session:
        for path in rng.sample(sorted(files), min(CHECKED_PAGES, len(files))):
            async with session.get(edge.url + path, headers={"Host": PRODUCTION_HOST}) as resp:
                body = await resp.read()
                got = resp.headers.get("X-Edge-Snapshot")
                if resp.status != 200 or got != snapshot or body != files[path].read_bytes():
                    problems.append(f"{path}: status {resp.status}, snapshot {got!r}")
    if problems:
        raise BenchError("wrong responses, nothing measured:\n  " + "\n  ".join(problems))


def run_one(
    name: str,
    site_mib: float,
    args: argparse.Namespace,
    workdir: Path,
    children: Children,
    cpus: tuple[int, int] | None,
) -> dict[str, Any]:
    root = workdir / f"site-{name}"
    pages = max(round(site_mib * MiB / PAGE_BYTES), 3)
    generate_site(root, pages, timed=0)
    files = site_files(root)
    site_bytes = sum(f.stat().st_size for f in files.values())
    cache_bytes = site_bytes + ENTRY_OVERHEAD * len(files)
    log(f"{name}: {len(files):,} files, {site_bytes / MiB:.1f} MiB")

    server_cpu, wrk_cpu = cpus if cpus else (None, None)
    edge = start_edge(
        children,
        workdir / f"edge-{name}",
        server_cpu,
        cache_max_bytes=args.budget_mib * MiB,
        workers=args.workers,
    )
    snapshot = asyncio.run(push_and_publish(edge, root))
    if not args.no_restart:
        edge = restart_edge(children, edge)
    time.sleep(SETTLE_S)
    idle = sample(edge, -SETTLE_S)
    asyncio.run(check_pages(edge, files, snapshot))

    script = workdir / f"random-{name}.lua"
    script.write_text(WRK_SCRIPT % (_lua_list(files), PRODUCTION_HOST, args.seed))
    cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
    cmd += ["--timeout", "5s", "-s", str(script), edge.url + "/"]
    log(f"{name}: wrk for {args.duration} s, random paths; sampling every {args.sample:g} s")
    samples = [idle]
    start = time.monotonic()
    with subprocess.Popen(
        pinned(wrk_cpu, cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            while proc.poll() is None:
                time.sleep(args.sample)
                samples.append(sample(edge, time.monotonic() - start))
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}):\n{err}")
    load = wrk.parse(out)
    children.check_alive()
    time.sleep(SETTLE_S)
    end = sample(edge, time.monotonic() - start)
    samples.append(end)
    workers = edge.processes()["workers"]
    children.stop(edge.child)

    during = [s for s in samples if 0 <= s.t <= args.duration]
    mid = [s for s in during if s.t >= args.duration / 2]
    peak = max(samples, key=lambda s: s.rss)
    per_worker = args.budget_mib * MiB // workers
    return {
        "site": {
            "files": len(files),
            "bytes": site_bytes,
            "cache_bytes_needed": cache_bytes,
            "snapshot": snapshot,
        },
        "workers": workers,
        "cache_bytes_expected": workers * min(cache_bytes, per_worker),
        "fits_per_worker_budget": cache_bytes <= per_worker,
        "rss": {
            "idle_before": idle.rss,
            "peak": peak.rss,
            "end": end.rss,
            "growth": end.rss - idle.rss,
            "growth_second_half": (mid[-1].rss - mid[0].rss) if len(mid) >= 2 else None,
        },
        "pss": {
            "idle_before": idle.pss,
            "peak": max((s.pss or 0) for s in samples),
            "end": end.pss,
        },
        "load": {
            "requests_per_s": load.requests_per_s,
            "requests": load.requests,
            "p99_ms": load.p99_ms,
            "errors": load.errors,
        },
        "samples": [[s.t, s.rss, s.pss] for s in samples],
    }


def _lua_list(files: Mapping[str, Path]) -> str:
    return "{" + ", ".join(json.dumps(p) for p in files) + "}"


# -- report --------------------------------------------------------------------------


def mib(value: float | None) -> str:
    return "-" if value is None else f"{value / MiB:,.1f}"


def render(doc: Mapping[str, Any]) -> str:
    s, d = doc["settings"], doc["derived"]
    rows = [
        [
            "run",
            "site MiB",
            "files",
            "RSS idle",
            "RSS peak",
            "RSS end",
            "growth",
            "2nd half",
            "PSS end",
            "req/s",
            "errors",
        ]
    ]
    for name in ("small", "large"):
        r = doc["runs"][name]
        rows.append(
            [
                f"{name} site",
                mib(r["site"]["bytes"]),
                f"{r['site']['files']:,}",
                mib(r["rss"]["idle_before"]),
                mib(r["rss"]["peak"]),
                mib(r["rss"]["end"]),
                mib(r["rss"]["growth"]),
                mib(r["rss"]["growth_second_half"]),
                mib(r["pss"]["end"]),
                fmt(r["load"]["requests_per_s"], 0),
                str(r["load"]["errors"]),
            ]
        )
    head = (
        f"memory: cache_max_bytes {s['budget_mib']} MiB; wrk -c{s['connections']}"
        f" {s['duration_s']} s of random GETs per run; edge: {doc['runs']['large']['workers']}"
        f" worker(s); sizes in MiB, summed over edge's processes"
        f"{'' if s['restart'] else '; no restart after the push'}"
    )
    lines = [
        f"fixed overhead (small run's RSS at the end - its cached bytes):"
        f" {mib(d['fixed_overhead'])} MiB",
        f"bound (fixed overhead + budget): {mib(d['bound'])} MiB;"
        f" large run's peak {mib(doc['runs']['large']['rss']['peak'])} MiB"
        f" ({fmt(d['large_peak_over_bound'], 3)}x the bound,"
        f" {mib(d['large_peak_minus_bound'])} MiB over)",
        f"large - small at the end: {mib(d['large_minus_small_end'])} MiB;"
        f" expected from the cache alone: {mib(d['expected_cache_difference'])} MiB",
        f"resident bytes per cache byte (growth under load, large - small):"
        f" {fmt(d['resident_per_cache_byte'])}",
    ]
    if not doc["runs"]["small"]["fits_per_worker_budget"]:
        lines.append(
            "note: the small site does not fit each worker's share of the budget;"
            " use a smaller --small-mib for a clean overhead estimate"
        )
    return "\n".join([head, "", table(rows), "", *lines])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget-mib", type=int, default=16, help="cache_max_bytes (16 MiB)")
    parser.add_argument("--large-mib", type=float, default=48, help="large site (48 MiB)")
    parser.add_argument("--small-mib", type=float, default=4, help="small site (4 MiB)")
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per run (20)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--sample", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--no-restart", action="store_true", help="measure right after the push")
    parser.add_argument("--workers", type=int, help="edge serve --workers N (edge's default)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.budget_mib < 1 or args.duration < 2 or args.connections < 1 or args.sample <= 0:
        parser.error("--budget-mib, --connections >= 1, --duration >= 2, --sample > 0")
    if not 0 < args.small_mib < args.budget_mib < args.large_mib:
        parser.error("need 0 < --small-mib < --budget-mib < --large-mib")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be >= 1")
    return args


def body(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    if not wrk.available():
        print(f"error: {wrk.INSTALL_HINT}", file=sys.stderr)
        return 2
    cpus = pick_cpus()
    small = run_one("small", args.small_mib, args, workdir, children, cpus)
    large = run_one("large", args.large_mib, args, workdir, children, cpus)
    budget = args.budget_mib * MiB
    overhead = small["rss"]["end"] - small["cache_bytes_expected"]
    bound = overhead + budget
    peak = large["rss"]["peak"]
    expected_difference = large["cache_bytes_expected"] - small["cache_bytes_expected"]
    derived = {
        "fixed_overhead": overhead,
        "bound": bound,
        "large_peak_over_bound": round(peak / bound, 3),
        "large_peak_minus_bound": peak - bound,
        "large_minus_small_end": large["rss"]["end"] - small["rss"]["end"],
        "expected_cache_difference": expected_difference,
        # Resident bytes per byte the cache accounts for: growth under load, large run
        # minus small run (which also cancels the larger manifest loaded at start).
        "resident_per_cache_byte": round(
            (large["rss"]["growth"] - small["rss"]["growth"]) / expected_difference, 3
        ),
        "large_growth_second_half_of_budget": (
            round(large["rss"]["growth_second_half"] / budget, 3)
            if large["rss"]["growth_second_half"] is not None
            else None
        ),
    }
    doc: dict[str, Any] = {
        "benchmark": "memory",
        "settings": {
            "budget_mib": args.budget_mib,
            "small_mib": args.small_mib,
            "large_mib": args.large_mib,
            "duration_s": args.duration,
            "connections": args.connections,
            "restart": not args.no_restart,
            "workers": args.workers,
        },
        "generator": wrk.version(),
        "pinning": {"server_cpu": cpus[0], "wrk_cpu": cpus[1]} if cpus else None,
        "machine": machine(),
        "runs": {"small": small, "large": large},
        "derived": derived,
    }
    targets = [
        Target(
            "large site: peak RSS / (overhead + budget)",
            derived["large_peak_over_bound"],
            1.0,
            "x",
            "speed",
        ),
        Target(
            "large site: RSS growth, 2nd half of load / budget",
            derived["large_growth_second_half_of_budget"],
            GROWTH_LIMIT,
            "x",
            "speed",
        ),
        Target(
            "wrk errors", small["load"]["errors"] + large["load"]["errors"], 0, "", "correctness"
        ),
    ]
    return finish(doc, targets, render(doc), args.json)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("memory", parse_args(argv), body)


if __name__ == "__main__":
    sys.exit(main())
