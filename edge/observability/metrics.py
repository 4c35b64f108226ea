"""Prometheus metrics of an edge: what each process records, and the scrape of all.

How this works: every process records into prometheus-client metrics. With
several workers the supervisor points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory under ``data_dir`` before it starts them, so each value lives in its
worker's mmap file; whichever worker answers ``/metrics`` reads every worker's
files (``MultiProcessCollector``), so one scrape sums the whole edge. Counters
of a worker that died stay counted; its gauges are dropped
(``mark_process_dead``).

Label values are bounded: site ids come from the configuration (an unknown Host
counts as ``_unknown``), environments, status classes and actions are fixed
sets. No path or Host from a request ever becomes a label.

The visitor hot path touches no prometheus-client object: a request adds one
to a plain list of counts (its (site, env) row, by status class) and to its
latency bucket (:class:`VisitorTally`). Each worker flushes those counts into
the metrics once a second (and the answering worker before a scrape), through
label children bound once at start-up. A prometheus-client increment costs
about a microsecond, and several per request would cost visitors throughput.
The latency histogram is kept as two counters (per-bucket counts and a sum),
which can be increased by a whole batch, and is exposed as a histogram at
scrape time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import disable_created_metrics
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from edge.router import ENVS, Route

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The classic text format: every name and label here is valid in it, and every
# Prometheus version reads it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNKNOWN = "_unknown"
OTHER = "other"
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
# A cached hit answers in ~0.1 ms; an upstream may take seconds (30 s read timeout).
REQUEST_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
SWAP_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# SPEC: a launch fires within 50 ms; after downtime overdue ones fire late, at once.
LATENESS_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 3600.0,
)  # fmt: skip
SWAP_ACTIONS = frozenset({"push", "set", "publish", "merge-publish", "schedule", "refresh",
                          "rollback"})  # fmt: skip
WEBHOOK_RESULTS = frozenset({"delivered", "retrying", "given_up"})
UPSTREAM_ERRORS = frozenset({"refused", "unreachable", "timeout", "cut_off"})
FORM_REFUSALS = frozenset({"rate_limited", "inbox_full", "disk_reserve"})
LOGS = ("access", "event")
LATENCY = "edge_visitor_request_duration_seconds"
# The latency histogram as it is stored: counts per bucket (not cumulative) and the sum.
_LATENCY_COUNTS = "edge_internal_visitor_latency_bucket"
_LATENCY_SUM = "edge_internal_visitor_latency_sum"
_LATENCY_ENVS = (*ENVS, UNKNOWN)
_LE = (*(str(b) for b in REQUEST_BUCKETS), "+Inf")  # as prometheus-client spells them


def status_class(status: int) -> str:
    """``2xx`` .. ``5xx``; informational answers count as 2xx, anything above 5xx as 5xx."""
    if status < 300:
        return "2xx"
    if status < 400:
        return "3xx"
    if status < 500:
        return "4xx"
    return "5xx"


def bounded(value: str, allowed: Iterable[str], fallback: str = OTHER) -> str:
    """``value`` when it is one of ``allowed``, else ``fallback``: a label stays bounded."""
    return value if value in allowed else fallback


def multiprocess_dir() -> Path | None:
    """The directory this process shares its metrics through, if it is one of several."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def shared_metrics_dir(data_dir: Path, root: Path | None = None) -> Path:
    """Where one edge's workers keep their metric files: in memory, not on the data disk.

    prometheus-client maps these files into memory; on a full filesystem a write to
    a new page kills the process with SIGBUS. ``/dev/shm`` (RAM) keeps them off the
    disk that holds the store, so a full data disk costs only refused writes. One
    directory per data_dir, so two edges on one machine never mix their figures.
    """
    if root is None:
        shm = Path("/dev/shm")
        root = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return root / f"edge-metrics-{digest}"


def prepare_multiprocess_dir(data_dir: Path, root: Path | None = None) -> Path:
    """A fresh, empty directory for this run's worker metrics (the last run's are wiped)."""
    path = shared_metrics_dir(data_dir, root)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_multiprocess_dir(path: Path) -> None:
    """Give the memory back when the supervisor exits."""
    shutil.rmtree(path, ignore_errors=True)


def worker_exited(pid: int, path: Path) -> None:
    """Forget a dead worker's gauges; its counters stay part of the totals."""
    mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


Row = tuple[Counter, Counter, Counter, Counter, Counter, Counter]


class Metrics:
    """Every metric of one process, with the visitor rows bound in advance.

    ``sites`` are the configured site ids: the only site label values there are
    (with ``_unknown``). ``shared`` is the multi-process directory, or None when
    this process is the whole edge.
    """

    def __init__(
        self, sites: Iterable[str], *, shared: Path | None = None, serves_visitors: bool = True
    ) -> None:
        # *_created series: noise beside every counter, and absent with several workers.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.shared = shared
        self.sites = tuple(sorted(set(sites)))
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "edge_visitor_requests",
            "Visitor requests answered, by site, environment and status class.",
            ("site", "env", "status"),
            registry=r,
        )
        self.latency_counts = Counter(
            _LATENCY_COUNTS, "(stored form of the latency histogram)", ("env", "le"), registry=r
        )
        self.latency_sum = Counter(
            _LATENCY_SUM, "(stored form of the latency histogram)", ("env",), registry=r
        )
        self.cache_hits = Counter("edge_cache_hits", "Content cache lookups that hit.", registry=r)
        self.cache_misses = Counter(
            "edge_cache_misses", "Content cache lookups that missed.", registry=r
        )
        self.cache_evictions = Counter(
            "edge_cache_evictions", "Entries evicted from the content cache.", registry=r
        )
        self.cache_bytes = Gauge(
            "edge_cache_bytes",
            "Bytes held by the content cache (all workers).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.cache_entries = Gauge(
            "edge_cache_entries",
            "Entries held by the content cache (all workers).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.cache_max_bytes = Gauge(
            "edge_cache_max_bytes",
            "Byte budget of the content cache (all workers).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.workers = Gauge(
            "edge_workers",
            "Worker processes serving (each live one counts itself).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.workers.set(1 if serves_visitors else 0)  # the admin process is no worker
        self.swaps = Counter(
            "edge_pointer_swaps",
            "Environment pointer moves, by site, environment and action.",
            ("site", "env", "action"),
            registry=r,
        )
        self.swap_duration = Histogram(
            "edge_pointer_swap_duration_seconds",
            "Time of one pointer swap: cache warm-up, durable commit and in-memory swap.",
            ("action",),
            buckets=SWAP_BUCKETS,
            registry=r,
        )
        self.snapshot_loads = Counter(
            "edge_snapshot_loads",
            "Snapshots decoded from the store (manifest loaded), by worker index: a"
            " publish loads each new snapshot once per worker, before it answers.",
            ("worker",),
            registry=r,
        )
        self.snapshot_late_loads = Counter(
            "edge_snapshot_late_loads",
            "Snapshots a worker had to decode after another process made them live (its"
            " catch-up), by worker index: its first visitors waited for that decode.",
            ("worker",),
            registry=r,
        )
        self.schedule_lateness = Histogram(
            "edge_schedule_lateness_seconds",
            "How long after its moment a schedule group went live.",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.webhooks = Counter(
            "edge_webhook_deliveries",
            "Webhook delivery attempts, by site, environment and result"
            " (delivered, retrying, given_up).",
            ("site", "env", "result"),
            registry=r,
        )
        self.upstream_errors = Counter(
            "edge_upstream_errors",
            "Upstream requests that failed, by site, environment and kind"
            " (refused, unreachable, timeout, cut_off).",
            ("site", "env", "kind"),
            registry=r,
        )
        self.form_refusals = Counter(
            "edge_form_refusals",
            "Form posts refused by an abuse limit, by site, environment and reason"
            " (rate_limited 429, inbox_full 507, disk_reserve 503).",
            ("site", "env", "reason"),
            registry=r,
        )
        self.unwritable = Counter(
            "edge_visitor_unwritable_responses",
            "Visitor responses that could not be written (answered 500 instead).",
            ("site", "env"),
            registry=r,
        )
        self.admin_refusals = Counter(
            "edge_admin_refusals",
            "Admin API calls refused for a missing or bad token (401) or a lacking role (403).",
            ("status",),
            registry=r,
        )
        self.log_dropped = Counter(
            "edge_log_lines_dropped",
            "Log lines dropped because the writer was behind (access or event log).",
            ("log",),
            registry=r,
        )
        self._bind()

    def _bind(self) -> None:
        """Create every bounded series now: zeros are scraped, the hot path only looks up."""

        def row(site: str, env: str) -> Row:
            c2, c3, c4, c5 = (self.requests.labels(site, env, c) for c in STATUS_CLASSES)
            return (c2, c2, c2, c3, c4, c5)  # indexed by status // 100

        self.request_rows: dict[str, Row] = {
            Route(site, env).key: row(site, env) for site in self.sites for env in ENVS
        }
        self.unknown_row = row(UNKNOWN, UNKNOWN)
        # Per env: a child per bucket (REQUEST_BUCKETS, then +Inf), then the sum's.
        self.latency_children = {
            env: (
                *(self.latency_counts.labels(env, le) for le in _LE),
                self.latency_sum.labels(env),
            )
            for env in _LATENCY_ENVS
        }
        self.dropped_by_log = {name: self.log_dropped.labels(name) for name in LOGS}
        for status in ("401", "403"):
            self.admin_refusals.labels(status)

    def site_label(self, site: str) -> str:
        return site if site in self.sites else UNKNOWN

    # -- the scrape -----------------------------------------------------------------

    def render(self, outbox: Mapping[tuple[str, str], int] | None = None) -> bytes:
        """The text exposition of the whole edge (every worker when shared).

        ``outbox``: pending webhook deliveries per (site, env), read from the
        store for this scrape.
        """
        source: Collector = self.registry if self.shared is None else _SharedFiles(self.shared)
        return generate_latest(_Scrape(source, self._outbox_family(outbox or {})))

    def _outbox_family(self, outbox: Mapping[tuple[str, str], int]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "edge_webhook_outbox_pending",
            "Webhook deliveries waiting in the durable outbox (due or retrying).",
            labels=("site", "env"),
        )
        for site in self.sites:
            for env in ENVS:
                family.add_metric((site, env), float(outbox.get((site, env), 0)))
        return family


class _SharedFiles:
    """Every worker's metric files, summed (``MultiProcessCollector``'s merge).

    A worker that is starting has created its file but not yet sized it: such an
    empty file is skipped (prometheus-client would fail the whole scrape on it).
    """

    def __init__(self, path: Path) -> None:
        self._path = path

    def collect(self) -> Iterable[Metric]:
        files = []
        for path in self._path.glob("*.db"):
            try:
                if path.stat().st_size >= 8:
                    files.append(str(path))
            except FileNotFoundError:  # a dead worker's gauges, just removed
                continue
        merge = MultiProcessCollector.merge
        merged: Iterable[Metric] = merge(files, accumulate=True)  # type: ignore[no-untyped-call]
        return merged


class VisitorTally:
    """Visitor counts of one process since the last flush, as plain lists.

    ``rows[route key]`` (and ``unknown``) count requests by ``status // 100``
    (0..5); ``latency[env]`` holds one count per bucket of
    :data:`REQUEST_BUCKETS` plus +Inf, then the sum of the durations. Only the
    event loop thread touches them.
    """

    __slots__ = ("latency", "rows", "unknown")

    def __init__(self, metrics: Metrics) -> None:
        self.rows: dict[str, list[int]] = {key: [0] * 6 for key in metrics.request_rows}
        self.unknown = [0] * 6
        width = len(REQUEST_BUCKETS) + 2
        self.latency: dict[str, list[float]] = {env: [0.0] * width for env in _LATENCY_ENVS}

    def flush(self, metrics: Metrics) -> None:
        """Add the counts to the metrics and start again from zero."""
        for key, counts in self.rows.items():
            _flush_row(counts, metrics.request_rows[key])
        _flush_row(self.unknown, metrics.unknown_row)
        for env, latency in self.latency.items():
            if not any(latency):
                continue
            for n, (value, child) in enumerate(
                zip(latency, metrics.latency_children[env], strict=True)
            ):
                if value:
                    child.inc(value)
                    latency[n] = 0.0


def _flush_row(counts: list[int], row: Row) -> None:
    for index, value in enumerate(counts):
        if value:
            row[index].inc(value)
            counts[index] = 0


class _Scrape:
    """The collector one scrape reads: the recorded metrics plus per-scrape figures.

    The latency counters are turned into the histogram they stand for.
    """

    def __init__(self, source: Collector, *extra: Metric) -> None:
        self._source = source
        self._extra = extra

    def collect(self) -> Iterator[Metric]:
        counts: dict[str, dict[str, float]] = {env: {} for env in _LATENCY_ENVS}
        sums: dict[str, float] = {}
        for metric in self._source.collect():
            if metric.name == _LATENCY_COUNTS:
                for sample in metric.samples:
                    if sample.name.endswith("_total"):
                        by_env = counts.setdefault(sample.labels["env"], {})
                        by_env[sample.labels["le"]] = sample.value
            elif metric.name == _LATENCY_SUM:
                for sample in metric.samples:
                    if sample.name.endswith("_total"):
                        sums[sample.labels["env"]] = sample.value
            else:
                yield metric
        yield _latency_histogram(counts, sums)
        yield from self._extra


def _latency_histogram(
    counts: Mapping[str, Mapping[str, float]], sums: Mapping[str, float]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        LATENCY,
        "Time from a visitor request's start to its last byte written, by environment.",
        labels=("env",),
    )
    for env, by_le in counts.items():
        cumulative = 0.0
        buckets = []
        for le in _LE:
            cumulative += by_le.get(le, 0.0)
            buckets.append((le, cumulative))
        family.add_metric((env,), buckets, sums.get(env, 0.0))
    return family
