"""Running wrk and reading its ``--latency`` report."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.harness import BenchError, pinned

INSTALL_HINT = "wrk is not installed; on Debian/Ubuntu: apt-get install -y wrk"

_TIME_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_SIZE = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_RE_TOTAL = re.compile(r"^\s*(\d+) requests in [\d.]+\w+, ([\d.]+)([KMGTP]?)B read", re.M)
_RE_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_RE_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
# wrk counts a response as an error when its status is 400 or more (304 is fine).
_RE_STATUS = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_SOCKET_KINDS = ("connect", "read", "write", "timeout")


def available() -> bool:
    return shutil.which("wrk") is not None


def version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    lines = (done.stdout or done.stderr).splitlines()
    return lines[0].split(" [")[0].strip() if lines else "wrk"


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    bytes_per_response: float
    bad_status: int
    socket_errors: dict[str, int]

    @property
    def errors(self) -> int:
        return self.bad_status + sum(self.socket_errors.values())


def _percentile_ms(text: str, pct: int) -> float:
    m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
    if m is None:
        raise BenchError(f"no {pct}% latency in wrk's output (run with --latency):\n{text}")
    return float(m.group(1)) * _TIME_MS[m.group(2)]


def parse(text: str) -> WrkResult:
    """wrk's ``--latency`` report -> figures (latencies in milliseconds)."""
    total, rps = _RE_TOTAL.search(text), _RE_RPS.search(text)
    if total is None or rps is None:
        raise BenchError(f"cannot read wrk's output:\n{text}")
    requests = int(total.group(1))
    read = float(total.group(2)) * _SIZE[total.group(3)]
    socket_m, status_m = _RE_SOCKET.search(text), _RE_STATUS.search(text)
    counts = [int(g) for g in socket_m.groups()] if socket_m else [0] * len(_SOCKET_KINDS)
    return WrkResult(
        requests_per_s=float(rps.group(1)),
        p50_ms=_percentile_ms(text, 50),
        p99_ms=_percentile_ms(text, 99),
        requests=requests,
        bytes_per_response=read / requests if requests else 0.0,
        bad_status=int(status_m.group(1)) if status_m else 0,
        socket_errors=dict(zip(_SOCKET_KINDS, counts, strict=True)),
    )


@dataclass(frozen=True, slots=True)
class Wrk:
    """One load shape (threads, connections, CPU), the same for every scenario."""

    threads: int
    connections: int
    cpu: int | None

    def command(
        self,
        url: str,
        headers: Sequence[tuple[str, str]],
        seconds: int,
        script: Path | None = None,
    ) -> list[str]:
        cmd = ["wrk", f"-t{self.threads}", f"-c{self.connections}", f"-d{seconds}s"]
        cmd += ["--latency", "--timeout", "5s"]
        for name, value in headers:
            cmd += ["-H", f"{name}: {value}"]
        if script is not None:
            cmd += ["-s", str(script)]
        return pinned(self.cpu, [*cmd, url])

    def run(
        self,
        url: str,
        headers: Sequence[tuple[str, str]],
        seconds: int,
        script: Path | None = None,
    ) -> WrkResult:
        cmd = self.command(url, headers, seconds, script)
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
        return parse(done.stdout)
