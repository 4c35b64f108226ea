"""Push: a 10,000-file site pushed cold, unchanged, and with one page changed (SPEC §6).

One command, from the repository root::

    .venv/bin/python bench/push.py [--files 10000]

SPEC §6: a push of an unchanged site uploads no blob; one changed page uploads one.

How it works:

1. ``--files`` small HTML pages (1-4 KB, each different) are generated
   (``bench/sitegen.py``). Hashing the tree alone (``edge.cli.push.scan_tree``, what
   every push does first) is timed as the floor a push cannot go below.
2. ``edge serve`` starts with a temporary configuration and data directory, and the
   tree is pushed with the CLI's own code (``edge.cli.push.push`` over
   ``AdminClient``) three times: cold (every blob is new), again unchanged, and after
   one page was edited. Each push is timed end to end, and its result says how many
   blobs and bytes it uploaded; every request body the client sends is counted too
   (blob uploads plus the missing-blobs query and the manifest).
3. Checks: the cold push uploads every file; the unchanged push uploads 0 blobs;
   the one-page push uploads 1 blob of that page's size. The last snapshot is then
   published and the edited page (and a sample of others) fetched from the production
   host: the bytes must be the files' bytes.

The table and a JSON document go to stdout (the JSON also to ``--json PATH``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script (python bench/push.py): make the ``bench`` package importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from bench.harness import (
    SITE,
    BenchError,
    Children,
    EdgeServer,
    pick_cpus,
    run_main,
    start_edge,
)
from bench.report import Target, finish, fmt, log, machine, table
from bench.sitegen import PRODUCTION_HOST, generate_small_site
from edge.cli.client import AdminClient
from edge.cli.push import PushResult, push, scan_tree

CHANGED_MARKER = "<!-- edited by bench/push.py -->\n"
SAMPLE = 50  # pages fetched back from production after the last push


class CountingClient(AdminClient):
    """:class:`AdminClient` that counts the calls and request body bytes it sends."""

    def __init__(self, base_url: str, token: str) -> None:
        super().__init__(base_url, token)
        self.body_bytes = 0
        self.calls: Counter[str] = Counter()

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        # Encoding twice costs about a millisecond per MB of manifest: noise here.
        sent = msgspec.json.encode(json) if json is not None else data or b""
        self.body_bytes += len(sent)
        route = "/".join("{sha256}" if len(s) == 64 else s for s in path.split("/")[4:])
        self.calls[f"{method} {route}"] += 1
        return await super().call(method, path, json=json, data=data, params=params)


@dataclass(frozen=True, slots=True)
class Run:
    name: str
    seconds: float
    result: PushResult
    body_bytes: int
    calls: dict[str, int]


async def timed_push(edge: EdgeServer, root: Path, name: str) -> Run:
    counting = CountingClient(edge.admin_url, edge.token)
    async with counting as client:
        start = time.perf_counter()
        result = await push(client, SITE, root, message=name, show_progress=False)
        seconds = time.perf_counter() - start
    return Run(name, seconds, result, counting.body_bytes, dict(counting.calls))


async def check_production(edge: EdgeServer, root: Path, paths: Sequence[str], snap: str) -> None:
    async with AdminClient(edge.admin_url, edge.token) as client:
        answer = await client.call("POST", f"/v1/sites/{SITE}/publish", json={})
    if answer.get("production") != snap:
        raise BenchError(f"publish answered {answer}, expected production {snap}")
    problems = []
    async with aiohttp.ClientSession(skip_auto_headers=["Accept-Encoding"]) as session:
        for path in paths:
            async with session.get(edge.url + path, headers={"Host": PRODUCTION_HOST}) as resp:
                body = await resp.read()
                got = resp.headers.get("X-Edge-Snapshot")
                if resp.status != 200 or got != snap:
                    problems.append(f"{path}: status {resp.status}, snapshot {got!r}")
                elif body != (root / path.lstrip("/")).read_bytes():
                    problems.append(f"{path}: body is not the file")
    if problems:
        raise BenchError("production is wrong after the pushes:\n  " + "\n  ".join(problems))


def run_doc(run: Run, floor_s: float) -> dict[str, Any]:
    return {
        "seconds": round(run.seconds, 3),
        "x_hashing_only": round(run.seconds / floor_s, 2) if floor_s else None,
        "files": run.result.files,
        "blobs_uploaded": run.result.uploaded,
        "blob_bytes_uploaded": run.result.uploaded_bytes,
        "request_body_bytes": run.body_bytes,
        "calls": run.calls,
        "snapshot": run.result.snapshot,
    }


def render(doc: Mapping[str, Any]) -> str:
    s = doc["settings"]
    rows = [
        [
            "push",
            "wall s",
            "x hashing",
            "blobs up",
            "blob bytes",
            "all request bytes",
            "API calls",
        ]
    ]
    rows.append(
        ["hashing the tree only (floor)", fmt(doc["hashing_only_s"], 3), "1.00", "-", "-", "-", "-"]
    )
    labels = {
        "cold": "cold (empty store)",
        "unchanged": "unchanged",
        "one_changed": "one page changed",
    }
    for key, label in labels.items():
        r = doc["pushes"][key]
        rows.append(
            [
                label,
                fmt(r["seconds"], 3),
                fmt(r["x_hashing_only"]),
                f"{r['blobs_uploaded']:,}",
                f"{r['blob_bytes_uploaded']:,}",
                f"{r['request_body_bytes']:,}",
                f"{sum(r['calls'].values()):,}",
            ]
        )
    head = (
        f"push of a {s['files']:,}-file site ({s['site_bytes'] / 1e6:.1f} MB, files of"
        f" {s['file_bytes_min']:,}-{s['file_bytes_max']:,} bytes) with edge.cli.push.push;"
        f" edge: {doc['edge']['workers']} worker(s)"
    )
    return "\n".join([head, "", table(rows)])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000, help="files in the site (10000)")
    parser.add_argument("--workers", type=int, help="edge serve --workers N (edge's default)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.files < 2:
        parser.error("--files must be >= 2")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be >= 1")
    return args


def body(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    root = workdir / "site"
    paths = generate_small_site(root, args.files)
    sizes = [(root / p.lstrip("/")).stat().st_size for p in paths]
    start = time.perf_counter()
    tree = scan_tree(root)
    floor_s = time.perf_counter() - start
    unique = len({f.sha256 for f in tree.values()})
    log(f"site: {len(paths):,} files, {sum(sizes) / 1e6:.1f} MB; hashing alone {floor_s:.2f} s")

    cpus = pick_cpus()
    edge = start_edge(children, workdir / "edge", cpus[0] if cpus else None, workers=args.workers)
    cold = asyncio.run(timed_push(edge, root, "cold"))
    log(f"cold push: {cold.seconds:.2f} s, {cold.result.uploaded:,} blobs")
    unchanged = asyncio.run(timed_push(edge, root, "unchanged"))
    log(f"unchanged push: {unchanged.seconds:.2f} s, {unchanged.result.uploaded:,} blobs")

    rng = random.Random(5)
    edited = paths[rng.randrange(len(paths))]
    edited_file = root / edited.lstrip("/")
    edited_file.write_text(edited_file.read_text().replace("</body>", CHANGED_MARKER + "</body>"))
    edited_size = edited_file.stat().st_size
    one = asyncio.run(timed_push(edge, root, "one page changed"))
    log(f"one-page push: {one.seconds:.2f} s, {one.result.uploaded:,} blobs ({edited})")
    sample = [edited, *rng.sample(paths, min(SAMPLE, len(paths)))]
    asyncio.run(check_production(edge, root, sample, one.result.snapshot))
    log(f"published; {len(sample)} pages checked on production, the edited one included")
    children.check_alive()

    doc: dict[str, Any] = {
        "benchmark": "push",
        "settings": {
            "files": len(paths),
            "site_bytes": sum(sizes),
            "file_bytes_min": min(sizes),
            "file_bytes_max": max(sizes),
            "distinct_blobs": unique,
            "edited_path": edited,
            "edited_bytes": edited_size,
            "workers": args.workers,
        },
        "edge": edge.processes(),
        "machine": machine(),
        "hashing_only_s": round(floor_s, 3),
        "pushes": {
            "cold": run_doc(cold, floor_s),
            "unchanged": run_doc(unchanged, floor_s),
            "one_changed": run_doc(one, floor_s),
        },
    }
    targets = [
        Target("cold push: blobs uploaded", cold.result.uploaded, unique, "", "correctness", "eq"),
        Target("unchanged push: blobs uploaded", unchanged.result.uploaded, 0, "", "correctness"),
        Target("one page changed: blobs uploaded", one.result.uploaded, 1, "", "correctness", "eq"),
        Target(
            "one page changed: bytes uploaded",
            one.result.uploaded_bytes,
            edited_size,
            " B",
            "correctness",
            "eq",
        ),
    ]
    return finish(doc, targets, render(doc), args.json)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("push", parse_args(argv), body)


if __name__ == "__main__":
    sys.exit(main())
