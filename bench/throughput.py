"""Requests/s of edge's cached hot path against a bare aiohttp handler (SPEC §6).

One command, from the repository root (needs wrk: ``apt-get install -y wrk``)::

    .venv/bin/python bench/throughput.py [--duration 5] [--connections 32] [--rounds 2]

How it works:

1. A site is generated in a temporary directory (``bench/sitegen.py``): 200 HTML
   pages of ~20 KB, a stylesheet, a few PNG files and a robots.txt.
2. ``edge serve`` starts as a subprocess on free loopback ports with a temporary data
   directory and a fresh admin token; the site is pushed with the real push code
   (``edge.cli.push.push`` over ``AdminClient``) and published.
3. ``bench/baseline_server.py`` starts in the same run: a bare aiohttp app on uvloop
   whose one handler returns the same bytes from a dict.
4. Every scenario's exact request is sent once and its response checked (bodies,
   noindex, 304, gzip) before anything is timed; this also fills edge's cache.
5. wrk drives every scenario with the same threads, connections and duration, in
   alternating rounds (baseline, then each edge scenario, repeated) so that drift of
   the machine hits all of them alike; each figure is the median over the rounds.
   With two or more CPUs the servers and wrk are pinned to different ones.
6. A table and a JSON document go to stdout (the JSON also to ``--json PATH``). A
   non-2xx/3xx response or a socket error during timing fails the run (exit 1).

Figures to compare are ratios to the baseline measured in the same run; absolute
requests/s say more about the machine than about edge.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script (python bench/throughput.py): make the ``bench`` package importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import gzip
import json
import os
import platform
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench import wrk
from bench.harness import (
    STAGING_HOST,
    BenchError,
    Children,
    pick_cpus,
    push_and_publish,
    start_baseline,
    start_edge,
    stop_on_sigterm,
)
from bench.sitegen import PRODUCTION_HOST, generate_site

ROBOTS_HEADER = "noindex, nofollow"
ROBOTS_META = b'<meta name="robots" content="noindex, nofollow">'
TIMED_PAGE = 42
# Above this spread of the baseline's rounds the machine was too busy to trust ratios.
NOISY_SPREAD = 0.10


# -- scenarios and their checks ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    label: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    # SPEC §6: minimum requests/s as a fraction of the baseline's.
    target: float | None = None


def build_scenarios(baseline: str, edge: str, path: str, etag: str) -> list[Scenario]:
    prod = ("Host", PRODUCTION_HOST)
    return [
        Scenario("baseline", "baseline (bare aiohttp, dict)", baseline + path),
        Scenario("production", "production cached hit", edge + path, (prod,), target=0.9),
        Scenario(
            "staging",
            "staging cached hit (noindex)",
            edge + path,
            (("Host", STAGING_HOST),),
            target=0.9,
        ),
        Scenario("revalidate", "304 revalidation", edge + path, (prod, ("If-None-Match", etag))),
        Scenario(
            "gzip", "gzip (Accept-Encoding)", edge + path, (prod, ("Accept-Encoding", "gzip"))
        ),
    ]


def response_problems(
    scenario: str, status: int, headers: Mapping[str, str], body: bytes, page: bytes
) -> list[str]:
    """What is wrong with a scenario's response, from a visitor's point of view."""
    problems: list[str] = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    robots = headers.get("X-Robots-Tag")
    if scenario == "revalidate":
        expect(status == 304, f"status {status}, expected 304")
        expect(body == b"", "a 304 with a body")
        return problems
    expect(status == 200, f"status {status}, expected 200")
    if scenario in ("baseline", "production"):
        expect(body == page, "body differs from the file")
    if scenario == "production":
        expect(robots is None, f"X-Robots-Tag {robots!r} on production")
        expect(headers.get("X-Edge-Env") == "production", "X-Edge-Env is not production")
    if scenario == "staging":
        expect(robots == ROBOTS_HEADER, f"X-Robots-Tag {robots!r}, expected {ROBOTS_HEADER!r}")
        meta_at = body.find(ROBOTS_META)
        expect(0 <= meta_at < body.find(b"</head>"), "no noindex robots meta in <head>")
        expect(b'content="index, follow"' not in body, "the page's own robots meta survived")
        expect(headers.get("X-Edge-Env") == "staging", "X-Edge-Env is not staging")
    if scenario == "gzip":
        expect(headers.get("Content-Encoding") == "gzip", "not gzip-encoded")
        expect("Accept-Encoding" in headers.get("Vary", ""), "no Vary: Accept-Encoding")
        try:
            expect(gzip.decompress(body) == page, "gzip body does not decode to the page")
        except (OSError, EOFError) as exc:
            problems.append(f"gzip body does not decode: {exc}")
    return problems


async def production_etag(edge: str, path: str) -> str:
    async with (
        aiohttp.ClientSession(skip_auto_headers=["Accept-Encoding"]) as session,
        session.get(edge + path, headers={"Host": PRODUCTION_HOST}) as resp,
    ):
        etag = resp.headers.get("ETag")
        if resp.status != 200 or not etag:
            raise BenchError(f"production {path}: status {resp.status}, ETag {etag!r}")
        return etag


async def check_scenarios(scenarios: Sequence[Scenario], page: bytes) -> None:
    """Send each scenario's exact request once and check the answer; fills edge's cache."""
    failures: list[str] = []
    content_types: dict[str, str] = {}
    # Like wrk: no Accept-Encoding or User-Agent unless the scenario sets them.
    async with aiohttp.ClientSession(
        skip_auto_headers=["Accept-Encoding", "User-Agent"], auto_decompress=False
    ) as session:
        for s in scenarios:
            async with session.get(s.url, headers=dict(s.headers)) as resp:
                body = await resp.read()
                problems = response_problems(s.name, resp.status, resp.headers, body, page)
                content_types[s.name] = resp.headers.get("Content-Type", "")
            failures += [f"{s.name}: {p}" for p in problems]
    if content_types["baseline"] != content_types["production"]:
        failures.append(
            f"baseline Content-Type {content_types['baseline']!r} differs from edge's"
            f" {content_types['production']!r}"
        )
    if failures:
        raise BenchError("responses are wrong, nothing timed:\n  " + "\n  ".join(failures))


# -- report --------------------------------------------------------------------------


def summarize(
    scenarios: Sequence[Scenario], results: Mapping[str, list[wrk.WrkResult]]
) -> dict[str, Any]:
    """Medians over the rounds, ratios to the baseline's median, errors summed."""
    base_rps = statistics.median(r.requests_per_s for r in results["baseline"])
    out: dict[str, Any] = {}
    for s in scenarios:
        runs = results[s.name]
        rps = statistics.median(r.requests_per_s for r in runs)
        ratio = rps / base_rps if base_rps else 0.0
        spread = (max(r.requests_per_s for r in runs) - min(r.requests_per_s for r in runs)) / rps
        socket_errors = {
            kind: sum(r.socket_errors[kind] for r in runs) for kind in runs[0].socket_errors
        }
        out[s.name] = {
            "label": s.label,
            "requests_per_s": round(rps, 1),
            "ratio": round(ratio, 3),
            "target": s.target,
            "meets_target": None if s.target is None else ratio >= s.target,
            "p50_ms": round(statistics.median(r.p50_ms for r in runs), 3),
            "p99_ms": round(statistics.median(r.p99_ms for r in runs), 3),
            "spread": round(spread, 3),
            "bytes_per_response": round(statistics.median(r.bytes_per_response for r in runs)),
            "errors": {
                "total": sum(r.errors for r in runs),
                "non_2xx_3xx": sum(r.bad_status for r in runs),
                "socket": socket_errors,
            },
            "rounds": [
                {"requests_per_s": r.requests_per_s, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms}
                for r in runs
            ],
        }
    return out


def render_table(doc: Mapping[str, Any]) -> str:
    rows = [
        ["scenario", "req/s", "x baseline", "p50 ms", "p99 ms", "spread", "bytes/resp", "errors"]
    ]
    for s in doc["scenarios"].values():
        ratio = f"{s['ratio']:.2f}"
        if s["target"] is not None:
            ratio += f" (>= {s['target']:.2f} {'ok' if s['meets_target'] else 'BELOW'})"
        errors = s["errors"]["total"]
        rows.append(
            [
                s["label"],
                f"{s['requests_per_s']:,.0f}",
                ratio,
                f"{s['p50_ms']:.2f}",
                f"{s['p99_ms']:.2f}",
                f"{100 * s['spread']:.0f}%",
                f"{s['bytes_per_response']:,}",
                f"{errors} !!" if errors else "0",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        )
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    settings, pin = doc["settings"], doc["pinning"]
    where = (
        f"servers on CPU {pin['server_cpu']}, wrk on CPU {pin['wrk_cpu']}" if pin else "unpinned"
    )
    header = (
        f"{doc['generator']} -t{settings['threads']} -c{settings['connections']}"
        f" -d{settings['duration_s']}s; median of {settings['rounds']} alternating rounds;"
        f" {where}\nGET {settings['path']} ({settings['page_bytes']:,} bytes);"
        " spread = (max - min) / median over the rounds"
    )
    notes = []
    if doc["scenarios"]["baseline"]["spread"] > NOISY_SPREAD:
        notes.append(
            "note: the baseline varied by more than"
            f" {100 * NOISY_SPREAD:.0f}% between rounds (a busy machine?);"
            " try more --rounds or a longer --duration"
        )
    return "\n".join([header, "", *lines, *notes])


def error_banner(doc: Mapping[str, Any]) -> str:
    lines = []
    for name, s in doc["scenarios"].items():
        errors = s["errors"]
        if errors["total"]:
            socket_part = ", ".join(f"{k} {v}" for k, v in errors["socket"].items() if v)
            lines.append(
                f"!! {name}: {errors['non_2xx_3xx']} non-2xx/3xx responses"
                + (f", socket errors: {socket_part}" if socket_part else "")
            )
    if not lines:
        return ""
    rule = "!" * 72
    return "\n".join([rule, "!! ERRORS DURING TIMING: these figures are not valid", *lines, rule])


# -- main ----------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (2)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds per scenario (1)")
    parser.add_argument("--pages", type=int, default=200, help="HTML pages in the site (200)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the JSON here")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="edge workers (1: one process on the server core, like the baseline)",
    )
    args = parser.parse_args(argv)
    if min(args.duration, args.connections, args.threads, args.rounds) < 1:
        parser.error("--duration, --connections, --threads and --rounds must be >= 1")
    if args.pages < 3:
        parser.error("--pages must be >= 3")
    if args.connections < args.threads:
        parser.error("--connections must be >= --threads (each wrk thread needs one)")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    return args


def run(args: argparse.Namespace, workdir: Path, children: Children) -> dict[str, Any]:
    cpus = pick_cpus()
    server_cpu, wrk_cpu = cpus if cpus else (None, None)
    load_at_start = os.getloadavg()[0]

    site_dir = workdir / "site"
    path = generate_site(site_dir, args.pages, timed=TIMED_PAGE)
    page = (site_dir / path.lstrip("/") / "index.html").read_bytes()
    log(f"site: {args.pages} HTML pages; timed page {path} ({len(page)} bytes)")

    edge = start_edge(children, workdir / "edge", server_cpu, workers=args.workers)
    snapshot = asyncio.run(push_and_publish(edge, site_dir))
    log(f"edge serve: pushed and published snapshot {snapshot}")
    baseline_url = start_baseline(children, workdir / "baseline", site_dir, server_cpu)

    etag = asyncio.run(production_etag(edge.url, path))
    scenarios = build_scenarios(baseline_url, edge.url, path, etag)
    asyncio.run(check_scenarios(scenarios, page))
    log("responses checked: baseline, production, staging (noindex), 304, gzip")

    load = wrk.Wrk(args.threads, args.connections, wrk_cpu)
    if args.warmup:
        for s in scenarios:
            load.run(s.url, s.headers, args.warmup)
        children.check_alive()
    results: dict[str, list[wrk.WrkResult]] = {s.name: [] for s in scenarios}
    for round_no in range(1, args.rounds + 1):
        for s in scenarios:
            result = load.run(s.url, s.headers, args.duration)
            children.check_alive()
            results[s.name].append(result)
            flag = f"  !! {result.errors} errors" if result.errors else ""
            log(
                f"round {round_no}/{args.rounds}  {s.name:<10} {result.requests_per_s:>10,.0f}"
                f" req/s  p99 {result.p99_ms:.2f} ms{flag}"
            )

    return {
        "benchmark": "throughput",
        "generator": wrk.version(),
        "settings": {
            "threads": args.threads,
            "connections": args.connections,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "warmup_s": args.warmup,
            "path": path,
            "page_bytes": len(page),
        },
        "pinning": {"server_cpu": server_cpu, "wrk_cpu": wrk_cpu} if cpus else None,
        "platform": {
            "python": platform.python_version(),
            "aiohttp": aiohttp.__version__,
            "cpus": os.cpu_count(),
            "loadavg_1m_at_start": round(load_at_start, 2),
        },
        "scenarios": summarize(scenarios, results),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not wrk.available():
        print(f"error: {wrk.INSTALL_HINT}", file=sys.stderr)
        return 2
    children = Children()
    try:
        with stop_on_sigterm(), tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
            try:
                doc = run(args, Path(tmp), children)
            finally:
                children.stop_all()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    banner = error_banner(doc)
    doc["ok"] = not banner
    text = json.dumps(doc, indent=2)
    print(render_table(doc))
    if banner:
        print("\n" + banner)
        print(banner, file=sys.stderr)
    print("\n" + text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 1 if banner else 0


if __name__ == "__main__":
    sys.exit(main())
