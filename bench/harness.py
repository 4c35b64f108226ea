"""What every benchmark needs: servers as subprocesses, CPU pinning, clean exits.

``edge serve`` runs exactly as an operator runs it (``python -m edge serve
--config ...``) with a temporary configuration, data directory and admin token;
content goes in through the real push code and the admin API. Every subprocess is
registered in a :class:`Children`, which stops them all on the way out, including
on Ctrl-C and SIGTERM (see :func:`stop_on_sigterm`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.sitegen import PRODUCTION_HOST
from edge.admin_api.auth import new_token
from edge.cli.client import AdminClient
from edge.cli.push import push
from edge.content_types import content_type_for

BENCH_DIR = Path(__file__).resolve().parent
SITE = "bench"
STAGING_HOST = "bench-preview.example"
START_TIMEOUT_S = 20.0


class BenchError(Exception):
    """The benchmark cannot produce a valid result; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pick_cpus() -> tuple[int, int] | None:
    """(server CPU, load generator CPU) when pinning is possible, else ``None``."""
    if shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


def pinned(cpu: int | None, cmd: Sequence[str]) -> list[str]:
    """``cmd`` run on ``cpu`` only (``taskset``), or as it is when ``cpu`` is ``None``."""
    return ["taskset", "-c", str(cpu), *cmd] if cpu is not None else list(cmd)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Children:
    """Every subprocess a benchmark started; :meth:`stop_all` stops them."""

    children: list[Child] = field(default_factory=list)

    def start(self, name: str, cmd: Sequence[str], log: Path) -> Child:
        with log.open("ab") as out:
            process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        child = Child(name, process, log)
        self.children.append(child)
        return child

    def wait_listening(self, child: Child, *ports: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise BenchError(f"{child.name} exited early:\n{child.tail()}")
            try:
                for port in ports:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise BenchError(f"{child.name} did not start listening:\n{child.tail()}")

    def check_alive(self) -> None:
        for child in self.children:
            if child.process.poll() is not None:
                raise BenchError(
                    f"{child.name} died (exit {child.process.returncode}):\n{child.tail()}"
                )

    def stop_all(self) -> None:
        """SIGTERM to each (both servers shut down gracefully on it), SIGKILL after 10 s."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.terminate()
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        self.children.clear()


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so ``finally`` blocks stop every subprocess."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- edge serve ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EdgeServer:
    child: Child
    url: str
    admin_url: str
    token: str


def write_edge_config(workdir: Path, port: int, admin_port: int, token_sha256: str) -> Path:
    config = workdir / "edge.toml"
    config.write_text(
        f"""
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"
data_dir = "data"
cache_max_bytes = 67108864

[[tokens]]
name = "bench"
sha256 = "{token_sha256}"
role = "admin"
sites = ["{SITE}"]

[[sites]]
id = "{SITE}"
[sites.production]
hosts = ["{PRODUCTION_HOST}"]
[sites.staging]
hosts = ["{STAGING_HOST}"]
"""
    )
    return config


def start_edge(children: Children, workdir: Path, cpu: int | None) -> EdgeServer:
    """``edge serve`` on free loopback ports, serving site :data:`SITE`; its log in workdir.

    The log holds what ``edge serve`` prints, access log included: writing it is part
    of what is measured, as it is in production.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    token, digest = new_token()
    port, admin_port = free_port(), free_port()
    config = write_edge_config(workdir, port, admin_port, digest)
    cmd = [sys.executable, "-m", "edge", "serve", "--config", str(config)]
    child = children.start("edge serve", pinned(cpu, cmd), workdir / "edge.log")
    children.wait_listening(child, port, admin_port)
    return EdgeServer(child, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}", token)


async def push_and_publish(edge: EdgeServer, site_dir: Path) -> str:
    """Push ``site_dir`` to staging with the CLI's own code, publish; production's id."""
    async with AdminClient(edge.admin_url, edge.token) as client:
        await push(client, SITE, site_dir, message="bench site", show_progress=False)
        answer = await client.call("POST", f"/v1/sites/{SITE}/publish", json={})
    return str(answer["production"])


# -- the baseline --------------------------------------------------------------------


def baseline_pages(root: Path) -> dict[str, tuple[str, str]]:
    """What the baseline serves: URL path -> (file, the content type edge gives it).

    Pretty URLs (``/posts/x/``) map to their ``index.html``, as edge resolves them.
    """
    table: dict[str, tuple[str, str]] = {}
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        url_path = "/" + file.relative_to(root).as_posix()
        entry = (str(file), content_type_for(url_path))
        table[url_path] = entry
        if url_path.endswith("/index.html"):
            table[url_path.removesuffix("index.html")] = entry
    return table


def start_baseline(children: Children, workdir: Path, site_dir: Path, cpu: int | None) -> str:
    """``bench/baseline_server.py`` serving ``site_dir`` from a dict; its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    pages = workdir / "pages.json"
    pages.write_text(json.dumps(baseline_pages(site_dir)))
    port = free_port()
    script = BENCH_DIR / "baseline_server.py"
    cmd = [sys.executable, str(script), "--port", str(port), "--pages", str(pages)]
    child = children.start("baseline server", pinned(cpu, cmd), workdir / "baseline.log")
    children.wait_listening(child, port)
    return f"http://127.0.0.1:{port}"
