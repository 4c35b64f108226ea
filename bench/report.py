"""What every benchmark prints: percentiles, targets, a plain table, the JSON document.

A benchmark builds one JSON-able document. Its ``targets`` list holds the SPEC §6
figures, each with the measured value, the target and whether it was met. Two kinds:

- ``speed`` targets (latency, ratios) are reported as ``ok`` or ``MISSED`` and never
  change the exit status (machines differ; the figure is the result).
- ``correctness`` targets (failed requests, stale responses, blobs uploaded) are what
  edge promises whatever the machine: a miss prints a ``!!`` banner and exits 1.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp

REPO = Path(__file__).resolve().parents[1]


# Above this many CPUs' worth of work by processes that are not the benchmark's own
# (averaged over the run), the run says the machine was busy.
BUSY_OTHER_CPUS = 0.2
_TICK = os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float:
    """CPU seconds every CPU of the machine spent busy since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / _TICK


def _own_busy_s() -> float:
    """CPU seconds used by this process and everything it started (alive or reaped)."""
    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    todo, seen = [os.getpid()], set()
    parents: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        stats[int(entry.name)] = fields
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    while todo:
        for kid in parents.get(todo.pop(), []):
            if kid not in seen:
                seen.add(kid)
                todo.append(kid)
                # utime, stime, cutime, cstime: a live process's own time plus that of
                # the children it reaped (a reaped process is counted by its parent).
                total += sum(int(x) for x in stats[kid][11:15]) / _TICK
    return total


class _Meter:
    """Other processes' CPU use since this module was imported (the run's start)."""

    def __init__(self) -> None:
        self.wall = time.monotonic()
        self.machine = _machine_busy_s()
        self.own = _own_busy_s()

    def others_cpus(self) -> float | None:
        """Average number of CPUs kept busy by processes that are not this run's."""
        try:
            others = (_machine_busy_s() - self.machine) - (_own_busy_s() - self.own)
        except (OSError, ValueError):
            return None
        wall = time.monotonic() - self.wall
        return max(others, 0.0) / wall if wall > 0 else None


_METER = _Meter()


def log(message: str) -> None:
    """Progress goes to stderr; stdout holds only the table and the JSON."""
    print(message, file=sys.stderr, flush=True)


def percentile(values: Iterable[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(math.ceil(pct / 100 * len(ordered)), 1)
    return ordered[min(rank, len(ordered)) - 1]


def rounded(value: float, digits: int = 3) -> float | None:
    """JSON-friendly: NaN (no data) becomes null."""
    return None if math.isnan(value) else round(value, digits)


def fmt(value: float | None, digits: int = 2, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}{unit}"


def number(value: float) -> str:
    """Whole numbers with thousands separators, others with 3 significant digits."""
    if math.isfinite(value) and float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.3g}"


Kind = Literal["speed", "correctness"]


@dataclass(frozen=True, slots=True)
class Target:
    """One SPEC §6 figure against its target."""

    name: str
    value: float | None
    limit: float
    unit: str
    kind: Kind
    # "max": met when value <= limit; "min": value >= limit; "eq": value == limit.
    direction: Literal["max", "min", "eq"] = "max"

    @property
    def met(self) -> bool:
        if self.value is None or math.isnan(self.value):
            return False
        if self.direction == "eq":
            return self.value == self.limit
        return self.value <= self.limit if self.direction == "max" else self.value >= self.limit

    @property
    def wanted(self) -> str:
        sign = {"max": "<=", "min": ">=", "eq": "=="}[self.direction]
        return f"{sign} {number(self.limit)}{self.unit}"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "target": self.wanted,
            "kind": self.kind,
            "met": self.met,
        }


def table(rows: Sequence[Sequence[str]]) -> str:
    """First row is the header; first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        )
        for r in rows
    ]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def targets_table(targets: Sequence[Target]) -> str:
    rows = [["SPEC §6 target", "measured", "target", "verdict"]]
    for t in targets:
        verdict = "ok" if t.met else ("MISSED" if t.kind == "speed" else "FAILED !!")
        value = "-" if t.value is None else f"{number(t.value)}{t.unit}"
        rows.append([t.name, value, t.wanted, verdict])
    return table(rows)


def machine() -> dict[str, Any]:
    """The machine and software the figures describe."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_total = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "mem_total_bytes": mem_total,
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
        "edge_source": _source_state(),
    }


def _source_state() -> dict[str, Any]:
    """Which edge was measured: the commit, and whether edge/ had local changes."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=10
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "edge")
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {"commit": commit or None, "edge_locally_modified": bool(dirty)}


def finish(
    doc: dict[str, Any], targets: Sequence[Target], text: str, json_path: Path | None
) -> int:
    """Print the table and the JSON (stdout, and ``json_path``); the exit status."""
    doc["targets"] = [t.as_json() for t in targets]
    others = _METER.others_cpus()
    where = doc.setdefault("machine", {})
    where["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    where["other_processes_cpus"] = None if others is None else round(others, 3)
    if others is not None and others > BUSY_OTHER_CPUS:
        text += (
            f"\nnote: the machine was busy: other processes kept {others:.2f} of its"
            f" {os.cpu_count()} CPUs busy on average during the run; timings are less"
            " reliable, run again on a quiet machine"
        )
    failed = [t for t in targets if t.kind == "correctness" and not t.met]
    doc["ok"] = not failed
    doc["all_targets_met"] = all(t.met for t in targets)
    out = json.dumps(doc, indent=2)
    print(text)
    if targets:
        print("\n" + targets_table(targets))
    if failed:
        rule = "!" * 72
        lines = [f"!! {t.name}: {t.value}" for t in failed]
        banner = "\n".join([rule, "!! CORRECTNESS TARGETS FAILED", *lines, rule])
        print("\n" + banner)
        print(banner, file=sys.stderr)
    print("\n" + out)
    if json_path is not None:
        json_path.write_text(out + "\n")
    return 1 if failed else 0


def summary(values: Sequence[float], digits: int = 3) -> dict[str, float | int | None]:
    """count, p50, p99, max (and mean) of a list of milliseconds."""
    return {
        "count": len(values),
        "p50": rounded(percentile(values, 50), digits),
        "p99": rounded(percentile(values, 99), digits),
        "max": rounded(max(values), digits) if values else None,
        "mean": rounded(sum(values) / len(values), digits) if values else None,
    }
