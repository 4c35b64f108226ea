"""Issue 16: what 10,000 ``_redirects`` rules cost a cached hit, and what the codings give.

Two measurements on the generated site (bench/sitegen.py):

1. **Rules on the hit path.** One ``edge serve`` serves two sites with the same
   generated content; one of them also carries a ``_redirects`` of 10,000 rules
   (half exact paths, half ``:placeholder``/splat patterns, none matching the
   pages asked for, as on a site whose old URLs all redirect) and a ``_headers``
   of 100 blocks. Every page is asked for once (cache filled), then rounds of the
   same keep-alive requests alternate between the two sites; each round's cost is
   the CPU seconds ``edge serve`` used per request (user + system of the server,
   read from /proc: the client's own CPU is not counted). Reported: the median of
   the per-round ratios (rules / none); the target is < 1.05.
2. **Codings.** Every text file of the site compressed with gzip (level 6, the
   old default, and 9), Brotli 11 and Zstandard 19, as edge.visitor.codings does
   once per blob: total bytes against the original, and the build time.

    .venv/bin/python bench/site_files.py [--pages 200] [--rounds 7] [--requests 4000] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from bench.harness import (
    Children,
    EdgeServer,
    SiteSpec,
    cpu_seconds,
    push_and_publish,
    run_main,
    start_edge,
)
from bench.sitegen import generate_site
from edge.content_types import content_type_for, is_compressible
from edge.visitor.codings import encode

PLAIN = SiteSpec("plain", "plain.example", "plain-preview.example")
RULED = SiteSpec("ruled", "ruled.example", "ruled-preview.example")


def redirects_file(n: int) -> bytes:
    """``n`` rules: exact old paths and patterns, none matching the site's pages."""
    lines = ["# 10,000 rules: a site whose old URLs all moved"]
    for i in range(n // 2):
        lines.append(f"/old/page-{i}.php  /posts/moved-{i}/  301")
    for i in range(n - n // 2):
        lines.append(f"/archive/{i}/:year/:slug  /posts/:year-:slug/  301")
    return ("\n".join(lines) + "\n").encode()


def headers_file(n: int) -> bytes:
    blocks = [f"/section-{i}/*\n  X-Section: {i}\n" for i in range(n - 1)]
    return ("/*\n  X-Frame-Options: DENY\n" + "".join(blocks)).encode()


def site_paths(root: Path) -> list[str]:
    paths = []
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        url = "/" + file.relative_to(root).as_posix()
        if url.startswith("/_"):
            continue
        paths.append(url.removesuffix("index.html"))
    return paths


async def one_round(
    session: aiohttp.ClientSession, url: str, host: str, paths: Sequence[str], n: int
) -> None:
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            async with session.get(
                url + paths[i % len(paths)], headers={"Host": host, "Accept-Encoding": "gzip, br"}
            ) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{paths[i % len(paths)]}: {resp.status}")

    await asyncio.gather(*(worker() for _ in range(4)))


async def measure_rules(
    edge: EdgeServer, paths: list[str], rounds: int, n: int
) -> dict[str, object]:
    pid = edge.child.process.pid
    per_request: dict[str, list[float]] = {PLAIN.id: [], RULED.id: []}
    async with aiohttp.ClientSession() as session:
        for spec in (PLAIN, RULED):  # fill the caches (and the hit path's targets)
            await one_round(session, edge.url, spec.production, paths, len(paths) * 2)
        for _ in range(rounds):
            for spec in (PLAIN, RULED):
                before = cpu_seconds(pid)
                await one_round(session, edge.url, spec.production, paths, n)
                per_request[spec.id].append((cpu_seconds(pid) - before) / n)
    ratios = [r / p for p, r in zip(per_request[PLAIN.id], per_request[RULED.id], strict=True)]
    return {
        "cpu_us_per_request_none": statistics.median(per_request[PLAIN.id]) * 1e6,
        "cpu_us_per_request_10k_rules": statistics.median(per_request[RULED.id]) * 1e6,
        "ratio_median_of_rounds": statistics.median(ratios),
        "ratios": ratios,
    }


def measure_codings(root: Path) -> dict[str, dict[str, float]]:
    texts = [
        p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and is_compressible(content_type_for(p.name))
    ]
    original = sum(len(t) for t in texts)
    results: dict[str, dict[str, float]] = {"original": {"bytes": original}}
    for name, fn in (
        ("gzip-6", lambda b: gzip.compress(b, compresslevel=6, mtime=0)),
        ("gzip-9", lambda b: encode(b, "gzip")),
        ("br-11", lambda b: encode(b, "br")),
        ("zstd-19", lambda b: encode(b, "zstd")),
    ):
        start = time.perf_counter()
        size = sum(len(fn(t)) for t in texts)
        seconds = time.perf_counter() - start
        results[name] = {
            "bytes": size,
            "ratio": size / original,
            "seconds": seconds,
            "ms_per_mib": seconds * 1000 / (original / 2**20),
        }
    return results


def body(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    plain_dir, ruled_dir = workdir / "plain", workdir / "ruled"
    generate_site(plain_dir, args.pages, 0)
    generate_site(ruled_dir, args.pages, 0)
    (ruled_dir / "_redirects").write_bytes(redirects_file(10_000))
    (ruled_dir / "_headers").write_bytes(headers_file(100))
    print("compressing the site's text files...", file=sys.stderr)
    codings = measure_codings(plain_dir)
    edge = start_edge(children, workdir / "edge", None, sites=(PLAIN, RULED))
    asyncio.run(push_and_publish(edge, plain_dir, PLAIN.id))
    asyncio.run(push_and_publish(edge, ruled_dir, RULED.id))
    paths = site_paths(plain_dir)
    print(
        f"timing {args.rounds} rounds of {args.requests} cached hits per site...", file=sys.stderr
    )
    rules = asyncio.run(measure_rules(edge, paths, args.rounds, args.requests))
    print(f"{'coding':>8} {'bytes':>10} {'ratio':>7} {'build s':>8} {'ms/MiB':>8}")
    for name, row in codings.items():
        if name == "original":
            print(f"{'none':>8} {int(row['bytes']):>10}")
            continue
        print(
            f"{name:>8} {int(row['bytes']):>10} {row['ratio']:>7.3f}"
            f" {row['seconds']:>8.3f} {row['ms_per_mib']:>8.1f}"
        )
    ratio = float(rules["ratio_median_of_rounds"])  # type: ignore[arg-type]
    print(
        f"cached hit, edge CPU per request: none {rules['cpu_us_per_request_none']:.1f} µs,"
        f" 10,000 rules {rules['cpu_us_per_request_10k_rules']:.1f} µs;"
        f" median ratio of rounds {ratio:.3f}"
    )
    print(f"target: 10,000 rules cost a cached hit < 5%: {'ok' if ratio < 1.05 else 'MISSED'}")
    doc = {"codings": codings, "rules": rules, "pages": args.pages}
    print(json.dumps(doc))
    if args.json:
        Path(args.json).write_text(json.dumps(doc))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=4000, help="requests per round")
    parser.add_argument("--json", help="also write the JSON document here")
    return run_main("site-files", parser.parse_args(argv), body)


if __name__ == "__main__":
    raise SystemExit(main())
