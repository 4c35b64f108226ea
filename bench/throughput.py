"""Requests/s of edge's cached hot path against nginx and a bare aiohttp handler (SPEC §6).

One command, from the repository root (needs wrk and nginx:
``apt-get install -y wrk nginx-light``)::

    .venv/bin/python bench/throughput.py [--duration 5] [--connections 32] [--rounds 2]

How it works:

1. A site is generated in a temporary directory (``bench/sitegen.py``): 200 HTML
   pages of ~20 KB, a stylesheet, a few PNG files and a robots.txt.
2. ``edge serve`` starts as a subprocess on free loopback ports with a temporary data
   directory and a fresh admin token; the site is pushed with the real push code
   (``edge.cli.push.push`` over ``AdminClient``) and published.
3. Three baselines start in the same run, serving the same files: nginx
   (``bench/nginx.py``: one worker, sendfile, open_file_cache, access log off,
   gzip_static) from the directory; ``bench/baseline_server.py``, a bare aiohttp
   app on uvloop whose one handler returns the same bytes from a dict; and
   ``bench/ceiling_server.py``, a bare forty-line uvloop protocol on httptools
   writing answers made at start-up (what Python costs per request before any of
   edge's work: the ceiling of edge's design on this machine).
4. Every scenario's exact request is sent once to each server and its response
   checked (bodies, noindex, 304, gzip) before anything is timed; this also fills
   edge's cache.
5. wrk drives every scenario on every server with the same threads, connections
   and duration, in alternating rounds (nginx, aiohttp, uvloop, edge per scenario,
   repeated) so that drift of the machine hits all of them alike; each figure is
   the median over the rounds. With two or more CPUs the servers and wrk are
   pinned to different ones. Then edge with ``--workers N`` against nginx with N
   workers on the production hit (``--workers``, default 2; 1 skips it; nothing
   pinned: on a 2-core machine wrk shares the cores with them).
6. A table and a JSON document go to stdout (the JSON also to ``--json PATH``). A
   non-2xx/3xx response or a socket error during timing fails the run (exit 1).

Figures to compare are ratios to the baselines measured in the same run; absolute
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
import shutil
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench import nginx, wrk
from bench.harness import (
    STAGING_HOST,
    BenchError,
    Children,
    cpu_seconds,
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
# Above this spread of a baseline's rounds the machine was too busy to trust ratios.
NOISY_SPREAD = 0.10
SERVERS = ("nginx", "aiohttp", "uvloop", "edge")


# -- scenarios and their checks ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    label: str
    # SPEC §6: minimum requests/s of edge as a fraction of nginx's.
    target: float | None = None
    # A wrk Lua script that changes every request (None: wrk repeats one request).
    lua: str | None = None


# Every request's head differs from the last (a counter in a header), so none is a
# byte-for-byte repeat of one answered before: edge parses each one and takes the
# hit path, where a repeated head is answered from memory (edge.visitor.again).
DISTINCT_HEADS = """
local n = 0
request = function()
  n = n + 1
  wrk.headers["X-Request-Id"] = tostring(n)
  return wrk.format(nil, nil)
end
"""

SCENARIOS = [
    Scenario("production", "production cached hit", target=0.75),
    Scenario("staging", "staging cached hit (noindex)", target=0.75),
    Scenario("revalidate", "304 revalidation"),
    Scenario("gzip", "gzip hit (Accept-Encoding)"),
    Scenario("distinct", "production hit, every head distinct", lua=DISTINCT_HEADS),
]


@dataclass(frozen=True, slots=True)
class Target:
    """One server's URL for the timed page and its ETag (for the 304 scenario)."""

    server: str
    url: str
    etag: str


def request_for(scenario: str, target: Target) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The exact request (URL, headers) of ``scenario`` on ``target``'s server."""
    headers: list[tuple[str, str]] = []
    if target.server == "edge":
        headers.append(("Host", STAGING_HOST if scenario == "staging" else PRODUCTION_HOST))
    if scenario == "revalidate":
        headers.append(("If-None-Match", target.etag))
    elif scenario == "gzip":
        headers.append(("Accept-Encoding", "gzip"))
    return target.url, tuple(headers)


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


async def etag_of(url: str, headers: Mapping[str, str]) -> str:
    async with (
        aiohttp.ClientSession(skip_auto_headers=["Accept-Encoding"]) as session,
        session.get(url, headers=dict(headers)) as resp,
    ):
        etag = resp.headers.get("ETag")
        if resp.status != 200 or not etag:
            raise BenchError(f"{url}: status {resp.status}, ETag {etag!r}")
        return etag


async def check_scenarios(targets: Sequence[Target], page: bytes) -> None:
    """Send each scenario's exact request once to each server and check the answer;
    fills edge's cache."""
    failures: list[str] = []
    # Like wrk: no Accept-Encoding or User-Agent unless the scenario sets them.
    async with aiohttp.ClientSession(
        skip_auto_headers=["Accept-Encoding", "User-Agent"], auto_decompress=False
    ) as session:
        for s in SCENARIOS:
            for t in targets:
                url, headers = request_for(s.name, t)
                async with session.get(url, headers=dict(headers)) as resp:
                    body = await resp.read()
                    name = "production" if s.name == "distinct" else s.name
                    if t.server != "edge" and name in ("production", "staging"):
                        name = "baseline"
                    problems = response_problems(name, resp.status, resp.headers, body, page)
                failures += [f"{t.server} {s.name}: {p}" for p in problems]
    if failures:
        raise BenchError("responses are wrong, nothing timed:\n  " + "\n  ".join(failures))


# -- report --------------------------------------------------------------------------


def _figures(runs: Sequence[wrk.WrkResult], cpu: Sequence[float]) -> dict[str, Any]:
    rps = statistics.median(r.requests_per_s for r in runs)
    spread = (max(r.requests_per_s for r in runs) - min(r.requests_per_s for r in runs)) / rps
    return {
        "requests_per_s": round(rps, 1),
        "p50_ms": round(statistics.median(r.p50_ms for r in runs), 3),
        "p99_ms": round(statistics.median(r.p99_ms for r in runs), 3),
        "spread": round(spread, 3),
        "bytes_per_response": round(statistics.median(r.bytes_per_response for r in runs)),
        "errors": {
            "total": sum(r.errors for r in runs),
            "non_2xx_3xx": sum(r.bad_status for r in runs),
            "socket": {
                kind: sum(r.socket_errors[kind] for r in runs) for kind in runs[0].socket_errors
            },
        },
        "rounds": [r.requests_per_s for r in runs],
        "cpu_us_per_request": round(statistics.median(cpu), 2),
        "cpu_rounds": [round(c, 2) for c in cpu],
    }


def summarize(
    scenarios: Sequence[Scenario],
    results: Mapping[tuple[str, str], list[wrk.WrkResult]],
    cpu: Mapping[tuple[str, str], list[float]],
) -> dict[str, Any]:
    """Per scenario: each server's medians, edge's ratios to nginx and to aiohttp."""
    out: dict[str, Any] = {}
    for s in scenarios:
        servers = {name: _figures(results[(s.name, name)], cpu[(s.name, name)]) for name in SERVERS}
        edge_rps = servers["edge"]["requests_per_s"]
        vs_nginx = edge_rps / servers["nginx"]["requests_per_s"]
        vs_aiohttp = edge_rps / servers["aiohttp"]["requests_per_s"]
        # Each round's edge figure over the same round's baseline (measured seconds
        # apart, so a machine that drifts between rounds moves both): the median of
        # those is the steadier estimate on a shared machine.
        paired = {
            name: round(
                statistics.median(
                    e.requests_per_s / b.requests_per_s
                    for e, b in zip(results[(s.name, "edge")], results[(s.name, name)], strict=True)
                ),
                3,
            )
            for name in SERVERS[:-1]
        }
        out[s.name] = {
            "label": s.label,
            "servers": servers,
            "edge_vs_nginx": round(vs_nginx, 3),
            "edge_vs_aiohttp": round(vs_aiohttp, 3),
            "edge_vs_uvloop": round(edge_rps / servers["uvloop"]["requests_per_s"], 3),
            "paired_ratios": paired,
            # Requests one fully busy core would serve, edge over nginx: CPU time per
            # request is what other processes on a shared machine disturb least.
            "cpu_vs_nginx": round(
                servers["nginx"]["cpu_us_per_request"] / servers["edge"]["cpu_us_per_request"], 3
            ),
            "uvloop_vs_nginx": round(
                servers["uvloop"]["requests_per_s"] / servers["nginx"]["requests_per_s"], 3
            ),
            "target_vs_nginx": s.target,
            "meets_target": None if s.target is None else vs_nginx >= s.target,
        }
    return out


def render_table(doc: Mapping[str, Any]) -> str:
    rows = [
        ["scenario", "nginx req/s", "aiohttp req/s", "uvloop req/s", "edge req/s", "x nginx",
         "paired n/a/u", "x aiohttp", "x uvloop", "CPU us/req n/a/u/e", "x nginx by CPU",
         "edge p99 ms", "spreads n/a/u/e", "errors"],
    ]  # fmt: skip
    for s in doc["scenarios"].values():
        servers = s["servers"]
        ratio = f"{s['edge_vs_nginx']:.2f}"
        if s["target_vs_nginx"] is not None:
            ratio += f" (>= {s['target_vs_nginx']:.2f} {'ok' if s['meets_target'] else 'BELOW'})"
        errors = sum(servers[n]["errors"]["total"] for n in SERVERS)
        spreads = "/".join(f"{100 * servers[n]['spread']:.0f}%" for n in SERVERS)
        rows.append(
            [
                s["label"],
                *(f"{servers[n]['requests_per_s']:,.0f}" for n in SERVERS),
                ratio,
                "/".join(f"{s['paired_ratios'][n]:.2f}" for n in SERVERS[:-1]),
                f"{s['edge_vs_aiohttp']:.2f}",
                f"{s['edge_vs_uvloop']:.2f}",
                "/".join(f"{servers[n]['cpu_us_per_request']:.1f}" for n in SERVERS),
                f"{s['cpu_vs_nginx']:.2f}",
                f"{servers['edge']['p99_ms']:.2f}",
                spreads,
                f"{errors} !!" if errors else "0",
            ]
        )
    workers = doc.get("workers")
    if workers is not None:
        rows.append(
            [
                f"production hit, {workers['workers']} workers each",
                f"{workers['nginx']['requests_per_s']:,.0f}",
                "-",
                "-",
                f"{workers['edge']['requests_per_s']:,.0f}",
                f"{workers['edge_vs_nginx']:.2f}",
                "-",
                "-",
                "-",
                f"{workers['nginx']['cpu_us_per_request']:.1f}/-/-/"
                f"{workers['edge']['cpu_us_per_request']:.1f}",
                f"{workers['cpu_vs_nginx']:.2f}",
                f"{workers['edge']['p99_ms']:.2f}",
                f"{100 * workers['nginx']['spread']:.0f}%/-/-/"
                f"{100 * workers['edge']['spread']:.0f}%",
                "0",
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
        f" {where}; {doc['platform']['cpus']} CPUs\nGET {settings['path']}"
        f" ({settings['page_bytes']:,} bytes); spread = (max - min) / median over the rounds"
        " (nginx/aiohttp/uvloop/edge); paired = median of each round's edge / baseline;"
        " uvloop = bench/ceiling_server.py"
    )
    notes = []
    for s in doc["scenarios"].values():
        noisy = [n for n in SERVERS[:-1] if s["servers"][n]["spread"] > NOISY_SPREAD]
        if noisy:
            notes.append(
                f"note: {s['label']}: {', '.join(noisy)} varied by"
                f" more than {100 * NOISY_SPREAD:.0f}% between rounds (a busy machine?)"
            )
    return "\n".join([header, "", *lines, *notes])


def error_banner(doc: Mapping[str, Any]) -> str:
    lines = []
    for name, s in doc["scenarios"].items():
        for server, figures in s["servers"].items():
            errors = figures["errors"]
            if errors["total"]:
                socket_part = ", ".join(f"{k} {v}" for k, v in errors["socket"].items() if v)
                lines.append(
                    f"!! {server} {name}: {errors['non_2xx_3xx']} non-2xx/3xx responses"
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
        default=2,
        help="then edge --workers N against nginx with N workers, unpinned (2; 1: skip)",
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


def _time(
    load: wrk.Wrk,
    children: Children,
    jobs: Sequence[tuple[tuple[str, str], str, tuple[tuple[str, str], ...]]],
    args: argparse.Namespace,
    pids: Mapping[str, int],
    scripts: Mapping[str, Path] | None = None,
) -> tuple[dict[tuple[str, str], list[wrk.WrkResult]], dict[tuple[str, str], list[float]]]:
    """Each job (key, url, headers) once per round, rounds alternating; results by key,
    and the CPU each server spent per request (microseconds) in each run. ``scripts``:
    the wrk Lua script of a scenario that has one, by scenario name."""
    scripts = scripts or {}
    if args.warmup:
        for (scenario, _), url, headers in jobs:
            load.run(url, headers, args.warmup, scripts.get(scenario))
        children.check_alive()
    results: dict[tuple[str, str], list[wrk.WrkResult]] = {key: [] for key, _, _ in jobs}
    cpu: dict[tuple[str, str], list[float]] = {key: [] for key, _, _ in jobs}
    for round_no in range(1, args.rounds + 1):
        for key, url, headers in jobs:
            before = cpu_seconds(pids[key[1]])
            result = load.run(url, headers, args.duration, scripts.get(key[0]))
            spent = cpu_seconds(pids[key[1]]) - before
            children.check_alive()
            results[key].append(result)
            cpu[key].append(1e6 * spent / max(result.requests, 1))
            flag = f"  !! {result.errors} errors" if result.errors else ""
            log(
                f"round {round_no}/{args.rounds}  {key[0]:<10} {key[1]:<8}"
                f" {result.requests_per_s:>10,.0f} req/s  p99 {result.p99_ms:.2f} ms"
                f"  {cpu[key][-1]:.1f} us CPU/request{flag}"
            )
    return results, cpu


def run(args: argparse.Namespace, workdir: Path, children: Children) -> dict[str, Any]:
    cpus = pick_cpus()
    server_cpu, wrk_cpu = cpus if cpus else (None, None)
    load_at_start = os.getloadavg()[0]

    site_dir = workdir / "site"
    path = generate_site(site_dir, args.pages, timed=TIMED_PAGE)
    page = (site_dir / path.lstrip("/") / "index.html").read_bytes()
    log(f"site: {args.pages} HTML pages; timed page {path} ({len(page)} bytes)")

    edge = start_edge(children, workdir / "edge", server_cpu, workers=1)
    pids = {"edge": edge.child.process.pid}
    snapshot = asyncio.run(push_and_publish(edge, site_dir))
    log(f"edge serve: pushed and published snapshot {snapshot}")
    aiohttp_url = start_baseline(children, workdir / "baseline", site_dir, server_cpu)
    pids["aiohttp"] = children.children[-1].process.pid
    uvloop_url = start_baseline(
        children, workdir / "ceiling", site_dir, server_cpu, script="ceiling_server.py"
    )
    pids["uvloop"] = children.children[-1].process.pid
    nginx_dir = workdir / "nginx-site"
    shutil.copytree(site_dir, nginx_dir, dirs_exist_ok=True)
    nginx.precompress(nginx_dir)
    nginx_url = nginx.start_nginx(children, workdir / "nginx", nginx_dir, server_cpu)
    pids["nginx"] = children.children[-1].process.pid

    bases = {"edge": edge.url, "nginx": nginx_url, "aiohttp": aiohttp_url, "uvloop": uvloop_url}
    targets = [
        Target(
            name,
            bases[name] + path,
            asyncio.run(
                etag_of(bases[name] + path, {"Host": PRODUCTION_HOST} if name == "edge" else {})
            ),
        )
        for name in SERVERS
    ]
    asyncio.run(check_scenarios(targets, page))
    log("responses checked on every server: production, staging (noindex), 304, gzip")

    load = wrk.Wrk(args.threads, args.connections, wrk_cpu)
    jobs = [((s.name, t.server), *request_for(s.name, t)) for s in SCENARIOS for t in targets]
    scripts: dict[str, Path] = {}
    for s in SCENARIOS:
        if s.lua is not None:
            scripts[s.name] = workdir / f"{s.name}.lua"
            scripts[s.name].write_text(s.lua)
    results, cpu = _time(load, children, jobs, args, pids, scripts)

    doc: dict[str, Any] = {
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
        "scenarios": summarize(SCENARIOS, results, cpu),
        "workers": None,
    }
    if args.workers > 1:
        children.stop_all()
        doc["workers"] = _several_workers(args, workdir, children, site_dir, nginx_dir, path)
    return doc


def _several_workers(
    args: argparse.Namespace,
    workdir: Path,
    children: Children,
    site_dir: Path,
    nginx_dir: Path,
    path: str,
) -> dict[str, Any]:
    """edge --workers N against nginx with N workers, production hit, nothing pinned."""
    n = args.workers
    edge = start_edge(children, workdir / "edge-workers", None, workers=n)
    asyncio.run(push_and_publish(edge, site_dir))
    nginx_url = nginx.start_nginx(children, workdir / "nginx-workers", nginx_dir, None, workers=n)
    pids = {"edge": edge.child.process.pid, "nginx": children.children[-1].process.pid}
    edge_target = Target("edge", edge.url + path, "")
    nginx_target = Target("nginx", nginx_url + path, "")
    log(f"{n} workers each: edge and nginx, production hit, unpinned")
    load = wrk.Wrk(max(args.threads, 2), args.connections, None)
    jobs = [
        (("production", t.server), *request_for("production", t))
        for t in (nginx_target, edge_target)
    ]
    results, cpu = _time(load, children, jobs, args, pids)
    figures = {
        server: _figures(results[("production", server)], cpu[("production", server)])
        for server in ("nginx", "edge")
    }
    return {
        "workers": n,
        **figures,
        "edge_vs_nginx": round(
            figures["edge"]["requests_per_s"] / figures["nginx"]["requests_per_s"], 3
        ),
        "cpu_vs_nginx": round(
            figures["nginx"]["cpu_us_per_request"] / figures["edge"]["cpu_us_per_request"], 3
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not wrk.available():
        print(f"error: {wrk.INSTALL_HINT}", file=sys.stderr)
        return 2
    if not nginx.available():
        print(f"error: {nginx.INSTALL_HINT}", file=sys.stderr)
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
