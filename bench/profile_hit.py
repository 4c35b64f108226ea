"""Profile edge's cached hit: edge serving the generated site under wrk, py-spy recording.

    .venv/bin/pip install py-spy       # not a dependency of edge
    .venv/bin/python bench/profile_hit.py [--seconds 10] [--scenario production] [--out DIR]

Starts ``edge serve`` (one worker, pinned as in ``throughput.py``), pushes and
publishes the generated site, fills the cache with the scenario's request, then runs
wrk for ``--seconds`` while ``py-spy record`` samples the serving process. Writes
``profile.txt`` (py-spy's raw sample counts) and prints the top lines by self time
and by line. Also prints edge's CPU time per request over the run. Needs wrk (see
throughput.py) and py-spy; no baseline is involved, so there is no verdict.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import collections
import shutil
import signal
import subprocess
import time

from bench import wrk
from bench.harness import (
    STAGING_HOST,
    Children,
    cpu_seconds,
    descendants,
    pick_cpus,
    push_and_publish,
    run_main,
    start_baseline,
    start_edge,
)
from bench.sitegen import PRODUCTION_HOST, generate_site
from bench.throughput import DISTINCT_HEADS

IDLE_SECONDS = 3
HEADERS = {
    "production": [("Host", PRODUCTION_HOST)],
    "staging": [("Host", STAGING_HOST)],
    "gzip": [("Host", PRODUCTION_HOST), ("Accept-Encoding", "gzip")],
    # Production with a head that never repeats: the parsed hit path, not the
    # remembered one (throughput.py's ``distinct`` scenario, same wrk script).
    "distinct": [("Host", PRODUCTION_HOST)],
}


def _top(samples: dict[str, int], total: int, count: int) -> list[str]:
    ranked = sorted(samples.items(), key=lambda kv: -kv[1])[:count]
    return [f"{100 * n / total:5.1f}%  {name}" for name, n in ranked]


def summarize(raw: Path, count: int = 15) -> str:
    """Top frames of py-spy's ``--format raw`` output, by self time (line and function)."""
    by_line: collections.Counter[str] = collections.Counter()
    total = 0
    for row in raw.read_text().splitlines():
        stack, _, n = row.rpartition(" ")
        if not stack:
            continue
        samples = int(n)
        total += samples
        leaf = stack.split(";")[-1]
        by_line[leaf] += samples
    functions: collections.Counter[str] = collections.Counter()
    for leaf, n in by_line.items():
        functions[leaf.split(" (")[0]] += n
    lines = [f"{total} samples", "by line (self):", *_top(by_line, total, count)]
    lines += ["by function (self):", *_top(functions, total, count)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--scenario", choices=sorted(HEADERS), default="production")
    parser.add_argument("--out", type=Path, default=None, help="keep profile.txt here")
    parser.add_argument(
        "--perf", action="store_true", help="perf record instead (native frames, kernel too)"
    )
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="profile bench/ceiling_server.py instead of edge, for comparison",
    )
    parser.add_argument(
        "--strace", action="store_true", help="strace -c instead: system calls per request"
    )
    parser.add_argument(
        "--count",
        action="store_true",
        help="perf stat instead: instructions per request (user and kernel), robust to a busy CPU",
    )
    args = parser.parse_args()
    if not Path(_py_spy()).exists() or shutil.which("wrk") is None:
        print("needs py-spy (pip install py-spy) and wrk (apt-get install -y wrk)")
        return 2
    return run_main("profile", args, _profile)


def _py_spy() -> str:
    return shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


def _profile(args: argparse.Namespace, work: Path, children: Children) -> int:
    spy = _py_spy()
    cpus = pick_cpus()
    server_cpu, wrk_cpu = cpus if cpus else (None, None)
    path = generate_site(work / "site", 200, timed=42)
    if args.ceiling:
        base = start_baseline(
            children, work / "ceiling", work / "site", server_cpu, script="ceiling_server.py"
        )
        pid = children.children[-1].process.pid
    else:
        edge = start_edge(children, work / "edge", server_cpu, workers=1)
        asyncio.run(push_and_publish(edge, work / "site"))
        base, pid = edge.url, edge.child.process.pid
    load = wrk.Wrk(1, args.connections, wrk_cpu)
    url, headers = base + path, HEADERS[args.scenario]
    script: Path | None = None
    if args.scenario == "distinct":
        script = work / "distinct.lua"
        script.write_text(DISTINCT_HEADS)
    load.run(url, headers, 2, script)  # fills the cache, warms up
    idle = cpu_seconds(pid)
    time.sleep(IDLE_SECONDS)
    idle = (cpu_seconds(pid) - idle) / IDLE_SECONDS
    out = (args.out or work) / "profile.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    pids = ",".join(str(p) for p in (pid, *descendants(pid)))
    if args.strace:
        spy_cmd = ["strace", "-c", "-f", "-o", str(out) + ".strace"]
        spy_cmd += [f"-p{p}" for p in pids.split(",")]
    elif args.count:
        spy_cmd = ["perf", "stat", "-x,", "-e", "instructions:u,instructions:k", "-p", pids]
        spy_cmd += ["-o", str(out) + ".stat", "--", "sleep", str(args.seconds)]
    elif args.perf:
        spy_cmd = ["perf", "record", "-F", "1999", "-p", pids, "-o", str(out) + ".perf"]
        spy_cmd += ["--", "sleep", str(args.seconds)]
    else:
        spy_cmd = [
            spy,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--subprocesses",
            "--rate",
            "400",
        ]
        spy_cmd += ["--duration", str(args.seconds), "--output", str(out)]
    recorder = subprocess.Popen(spy_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    before = cpu_seconds(pid)
    result = load.run(url, headers, args.seconds, script)
    spent = cpu_seconds(pid) - before
    if args.strace:
        recorder.send_signal(signal.SIGINT)  # strace detaches and writes its summary
    recorder.wait()
    print(f"{args.scenario}: {result.requests / args.seconds:,.0f} req/s under py-spy, ")
    print(f"{1e6 * spent / max(result.requests, 1):.1f} us CPU/request, errors {result.errors}")
    print(f"idle before the load: {100 * idle:.1f}% of a CPU (edge's processes, no requests)")
    if args.strace:
        for row in (out.parent / (out.name + ".strace")).read_text().splitlines()[2:]:
            fields = row.split()
            if len(fields) >= 5 and fields[3].isdigit():
                per = int(fields[3]) / max(result.requests, 1)
                print(f"{fields[-1]:>16}: {per:.2f} per request")
    elif args.count:
        for row in (out.parent / (out.name + ".stat")).read_text().splitlines():
            fields = row.split(",")
            if len(fields) > 2 and fields[0].isdigit():
                per = int(fields[0]) / max(result.requests, 1)
                print(f"{fields[2]}: {per:,.0f} per request")
    elif args.perf:
        report = ["perf", "report", "-i", str(out) + ".perf", "--stdio", "--no-children"]
        report += ["--sort", "dso,sym", "--percent-limit", "0.7"]
        done = subprocess.run(report, capture_output=True, text=True, check=False)
        print("\n".join(line for line in done.stdout.splitlines() if line and line[0] != "#"))
    else:
        print(summarize(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
