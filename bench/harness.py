"""What every benchmark needs: servers as subprocesses, CPU pinning, clean exits.

``edge serve`` runs exactly as an operator runs it (``python -m edge serve
--config ...``) with a temporary configuration, data directory and admin token;
content goes in through the real push code and the admin API. Every subprocess is
registered in a :class:`Children`, which stops them all on the way out, including
on Ctrl-C and SIGTERM (see :func:`stop_on_sigterm`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
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
MiB = 1024 * 1024


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

    def stop(self, child: Child) -> None:
        """Stop one child (and what it started) the way :meth:`stop_all` does."""
        self._stop([child])
        self.children.remove(child)

    def stop_all(self) -> None:
        """SIGTERM to each (both servers shut down gracefully on it), SIGKILL after 10 s.

        A child that had to be killed may leave its own children (``edge serve
        --workers N``) behind: those are killed too, by pid.
        """
        self._stop(list(reversed(self.children)))
        self.children.clear()

    @staticmethod
    def _stop(children: Sequence[Child]) -> None:
        # (pid, start time) of what each child started: a pid alone may be reused.
        offspring = {
            c.process.pid: [(pid, _started_at(pid)) for pid in descendants(c.process.pid)]
            for c in children
        }
        for child in children:
            if child.process.poll() is None:
                child.process.terminate()
        for child in children:
            try:
                child.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
                for pid, started in offspring[child.process.pid]:
                    if started is not None and _started_at(pid) == started:
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so ``finally`` blocks stop every subprocess.

    Ctrl-C raises ``KeyboardInterrupt`` at once, also inside ``asyncio.run`` (whose
    own handler would only cancel the running task, which a client library may turn
    into another error while the servers, which got the same Ctrl-C, go away).
    """

    def on_sigterm(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    def on_sigint(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous_term = signal.signal(signal.SIGTERM, on_sigterm)
    previous_int = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on; ``None`` when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    return text[text.rfind(")") + 2 :].split()


def _started_at(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return None if fields is None else fields[19]  # field 22, starttime


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and every process below it, in seconds."""
    total = 0
    for one in (pid, *descendants(pid)):
        fields = _stat_fields(one)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


# -- edge serve ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """A site of the generated configuration: its id and its hosts."""

    id: str
    production: str
    staging: str


DEFAULT_SITES = (SiteSpec(SITE, PRODUCTION_HOST, STAGING_HOST),)


@dataclass(frozen=True, slots=True)
class EdgeServer:
    child: Child
    url: str
    admin_url: str
    token: str
    # What started it, so that :func:`restart_edge` can start it again on the same data.
    command: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    workdir: Path = Path()

    def pids(self) -> list[int]:
        """The server process and every process it started (its workers)."""
        return [self.child.process.pid, *descendants(self.child.process.pid)]

    def processes(self) -> dict[str, int]:
        """How edge runs: its processes, and how many of them serve (workers)."""
        pids = self.pids()
        return {"processes": len(pids), "workers": max(len(pids) - 1, 1)}


def write_edge_config(
    workdir: Path,
    port: int,
    admin_port: int,
    token_sha256: str,
    *,
    cache_max_bytes: int = 64 * MiB,
    sites: Sequence[SiteSpec] = DEFAULT_SITES,
) -> Path:
    config = workdir / "edge.toml"
    site_ids = ", ".join(f'"{s.id}"' for s in sites)
    site_blocks = "".join(
        f"""
[[sites]]
id = "{s.id}"
[sites.production]
hosts = ["{s.production}"]
[sites.staging]
hosts = ["{s.staging}"]
"""
        for s in sites
    )
    config.write_text(
        f"""
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"
data_dir = "data"
cache_max_bytes = {cache_max_bytes}

[[tokens]]
name = "bench"
sha256 = "{token_sha256}"
role = "admin"
sites = [{site_ids}]
{site_blocks}"""
    )
    return config


@functools.cache
def serve_supports_workers() -> bool:
    """Whether this edge's ``edge serve`` takes ``--workers`` (read from its ``--help``)."""
    done = subprocess.run(
        [sys.executable, "-m", "edge", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return "--workers" in done.stdout


def check_workers_option(workers: int | None) -> None:
    """Refuse ``--workers`` when this edge cannot take it (rather than silently ignore it)."""
    if workers is not None and not serve_supports_workers():
        raise BenchError("--workers was given but this edge's 'edge serve' has no --workers option")


def start_edge(
    children: Children,
    workdir: Path,
    cpu: int | None,
    *,
    cache_max_bytes: int = 64 * MiB,
    sites: Sequence[SiteSpec] = DEFAULT_SITES,
    workers: int | None = None,
) -> EdgeServer:
    """``edge serve`` on free loopback ports, serving ``sites``; its log in workdir.

    ``workers`` is passed as ``edge serve --workers N`` only when given (and refused
    when this edge has no such option); otherwise edge runs its own default. The log
    holds what ``edge serve`` prints (its access log when the configuration turns it
    on): writing it is part of what is measured, as it is in production.
    """
    check_workers_option(workers)
    workdir.mkdir(parents=True, exist_ok=True)
    token, digest = new_token()
    port, admin_port = free_port(), free_port()
    config = write_edge_config(
        workdir, port, admin_port, digest, cache_max_bytes=cache_max_bytes, sites=sites
    )
    cmd = [sys.executable, "-m", "edge", "serve", "--config", str(config)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    cmd = pinned(cpu, cmd)
    child = children.start("edge serve", cmd, workdir / "edge.log")
    children.wait_listening(child, port, admin_port)
    return EdgeServer(
        child,
        f"http://127.0.0.1:{port}",
        f"http://127.0.0.1:{admin_port}",
        token,
        command=tuple(cmd),
        ports=(port, admin_port),
        workdir=workdir,
    )


def restart_edge(children: Children, edge: EdgeServer) -> EdgeServer:
    """Stop ``edge`` and start it again on the same configuration and data."""
    children.stop(edge.child)
    child = children.start("edge serve", edge.command, edge.workdir / "edge.log")
    children.wait_listening(child, *edge.ports)
    return EdgeServer(
        child,
        edge.url,
        edge.admin_url,
        edge.token,
        command=edge.command,
        ports=edge.ports,
        workdir=edge.workdir,
    )


async def push_and_publish(edge: EdgeServer, site_dir: Path, site: str = SITE) -> str:
    """Push ``site_dir`` to staging with the CLI's own code, publish; production's id."""
    async with AdminClient(edge.admin_url, edge.token) as client:
        await push(client, site, site_dir, message="bench site", show_progress=False)
        answer = await client.call("POST", f"/v1/sites/{site}/publish", json={})
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


def start_baseline(
    children: Children,
    workdir: Path,
    site_dir: Path,
    cpu: int | None,
    script: str = "baseline_server.py",
) -> str:
    """``bench/<script>`` (the bare aiohttp baseline, or ``ceiling_server.py``) serving
    ``site_dir`` from a dict; its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    pages = workdir / "pages.json"
    pages.write_text(json.dumps(baseline_pages(site_dir)))
    port = free_port()
    path = BENCH_DIR / script
    cmd = [sys.executable, str(path), "--port", str(port), "--pages", str(pages)]
    child = children.start(script, pinned(cpu, cmd), workdir / "baseline.log")
    children.wait_listening(child, port)
    return f"http://127.0.0.1:{port}"


# -- one command per benchmark -------------------------------------------------------


def run_main(
    name: str,
    args: argparse.Namespace,
    body: Callable[[argparse.Namespace, Path, Children], int],
) -> int:
    """Run ``body(args, workdir, children)`` in a temporary directory; its exit status.

    Every subprocess is stopped on the way out, also on Ctrl-C and SIGTERM. A
    :class:`BenchError` prints its message and exits 1; Ctrl-C exits 130.
    """
    children = Children()
    try:
        with stop_on_sigterm(), tempfile.TemporaryDirectory(prefix=f"edge-{name}-") as tmp:
            try:
                return body(args, Path(tmp), children)
            finally:
                children.stop_all()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
