"""Metrics of one process: status classes, bounded labels, the visitor recorder, the scrape."""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from edge.cache import ByteLRU
from edge.observability.logs import LineLog
from edge.observability.metrics import (
    SWAP_ACTIONS,
    Metrics,
    bounded,
    prepare_multiprocess_dir,
    shared_metrics_dir,
    status_class,
)
from edge.observability.observer import Observer, VisitorRecorder
from edge.router import Route, RouteTable
from edge.snapshots.model import HistoryEntry, OutboxItem
from tests.unit.visitor_requests import answered


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (100, "2xx"),
        (200, "2xx"),
        (206, "2xx"),
        (299, "2xx"),
        (301, "3xx"),
        (304, "3xx"),
        (308, "3xx"),
        (400, "4xx"),
        (404, "4xx"),
        (421, "4xx"),
        (499, "4xx"),
        (500, "5xx"),
        (502, "5xx"),
        (599, "5xx"),
        (999, "5xx"),
    ],
)
def test_status_class(status: int, cls: str) -> None:
    assert status_class(status) == cls


def test_the_hot_path_row_index_agrees_with_status_class() -> None:
    metrics = Metrics(["acme"])
    row = metrics.request_rows[Route("acme", "production").key]
    for status in range(100, 1000):
        index = status // 100
        child = row[index if index < 6 else 5]
        assert child is metrics.requests.labels("acme", "production", status_class(status))


def test_bounded_labels() -> None:
    assert bounded("publish", SWAP_ACTIONS) == "publish"
    assert bounded("merge-publish", SWAP_ACTIONS) == "merge-publish"
    assert bounded("/etc/passwd", SWAP_ACTIONS) == "other"
    assert bounded("x", {"a"}, "_unknown") == "_unknown"


def families(metrics: Metrics, outbox: dict[tuple[str, str], int] | None = None) -> dict[str, dict]:
    """name -> {labels tuple -> value} of one scrape."""
    found: dict[str, dict] = {}
    for family in text_string_to_metric_families(metrics.render(outbox).decode()):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            found.setdefault(sample.name, {})[labels] = sample.value
    return found


def test_every_bounded_series_exists_from_the_start() -> None:
    scraped = families(Metrics(["acme", "other"]))
    requests = scraped["edge_visitor_requests_total"]
    assert len(requests) == (2 * 2 + 1) * 4  # sites x envs, plus _unknown; 4 classes
    assert all(v == 0 for v in requests.values())
    sites = {dict(k)["site"] for k in requests}
    assert sites == {"acme", "other", "_unknown"}
    envs = {dict(k)["env"] for k in scraped["edge_visitor_request_duration_seconds_count"]}
    assert envs == {"staging", "production", "_unknown"}
    outbox = scraped["edge_webhook_outbox_pending"]
    assert set(outbox) == {
        (("env", e), ("site", s)) for s in ("acme", "other") for e in ("staging", "production")
    }


def test_outbox_depth_of_configured_sites_only() -> None:
    scraped = families(Metrics(["acme"]), {("acme", "production"): 3, ("gone", "production"): 7})[
        "edge_webhook_outbox_pending"
    ]
    assert scraped[(("env", "production"), ("site", "acme"))] == 3
    assert scraped[(("env", "staging"), ("site", "acme"))] == 0
    assert len(scraped) == 2


Record = Callable[[str | None, str, int, float], None]


def recorder(metrics: Metrics, tmp_path: Path) -> tuple[Observer, Record]:
    routes = RouteTable.build(
        [
            ("acme.example", Route("acme", "production")),
            ("acme-preview.example", Route("acme", "staging")),
        ]
    )
    observer = Observer(metrics, LineLog("event", tmp_path / "e.log"))
    record = VisitorRecorder(observer).record

    def recorded(host: str | None, path: str, status: int, elapsed: float) -> None:
        route = routes.resolve(host)  # as the visitor handler does
        record(answered(path, {"Host": host} if host else {}, status=status, route=route), elapsed)

    return observer, recorded


def count(metrics: Metrics, site: str, env: str, status: str) -> float:
    value = metrics.registry.get_sample_value(
        "edge_visitor_requests_total", {"site": site, "env": env, "status": status}
    )
    assert value is not None
    return value


def test_the_recorder_counts_by_route_and_class(tmp_path: Path) -> None:
    metrics = Metrics(["acme"])
    observer, record = recorder(metrics, tmp_path)
    cases = [
        ("acme.example", 200),
        ("ACME.example.:8080", 304),  # normalised like the handler does
        ("acme-preview.example", 404),
        ("acme-preview.example", 503),
        ("nope.example", 421),
        (None, 421),
    ]
    for host, status in cases:
        record(host, "/", status, 0.0002)
    assert count(metrics, "acme", "production", "2xx") == 0  # not flushed yet
    observer.tally.flush(metrics)
    observer.tally.flush(metrics)  # nothing new: nothing added
    assert count(metrics, "acme", "production", "2xx") == 1
    assert count(metrics, "acme", "production", "3xx") == 1
    assert count(metrics, "acme", "staging", "4xx") == 1
    assert count(metrics, "acme", "staging", "5xx") == 1
    assert count(metrics, "_unknown", "_unknown", "4xx") == 2
    record("acme.example", "/", 200, 0.0002)
    observer.tally.flush(metrics)
    assert count(metrics, "acme", "production", "2xx") == 2
    scraped = families(metrics)
    latency = scraped["edge_visitor_request_duration_seconds_count"]
    assert latency[(("env", "production"),)] == 3
    assert latency[(("env", "_unknown"),)] == 2


def test_latency_is_exposed_as_a_cumulative_histogram(tmp_path: Path) -> None:
    metrics = Metrics(["acme"])
    observer, record = recorder(metrics, tmp_path)
    for elapsed in (0.0001, 0.00011, 0.0004, 0.0004, 2.0, 100.0):
        record("acme.example", "/", 200, elapsed)
    observer.tally.flush(metrics)
    text = metrics.render().decode()
    assert "edge_internal" not in text  # the stored form is not exposed
    histogram = next(
        f
        for f in text_string_to_metric_families(text)
        if f.name == "edge_visitor_request_duration_seconds"
    )
    assert histogram.type == "histogram"
    production = {
        (s.name.rsplit("_", 1)[-1], s.labels.get("le")): s.value
        for s in histogram.samples
        if s.labels["env"] == "production"
    }
    assert production[("bucket", "0.0001")] == 1  # "le" includes the bound itself
    assert production[("bucket", "0.00025")] == 2
    assert production[("bucket", "0.0005")] == 4
    assert production[("bucket", "1.0")] == 4
    assert production[("bucket", "2.5")] == 5
    assert production[("bucket", "30.0")] == 5
    assert production[("bucket", "+Inf")] == 6
    assert production[("count", None)] == 6
    assert production[("sum", None)] == pytest.approx(102.00091)


def test_random_hosts_and_paths_add_no_label_values(tmp_path: Path) -> None:
    metrics = Metrics(["acme"])
    before = families(metrics)
    observer, record = recorder(metrics, tmp_path)
    rng = random.Random(7)
    for _ in range(200):
        word = "".join(rng.choices(string.ascii_lowercase, k=12))
        host = rng.choice([f"{word}.example", "acme.example"])
        record(host, f"/{word}/{word}.html", rng.choice([200, 404, 421, 500]), 0.001)
    observer.tally.flush(metrics)
    after = families(metrics)
    assert {name: set(series) for name, series in after.items()} == {
        name: set(series) for name, series in before.items()
    }
    total = sum(after["edge_visitor_requests_total"].values())
    assert total == 200


def test_hooks_record_swaps_schedules_webhooks_and_never_raise(tmp_path: Path) -> None:
    metrics = Metrics(["acme"])
    observer = Observer(metrics, LineLog("event", tmp_path / "e.log"))
    entry = HistoryEntry(
        id=1, at="t", env="production", from_="a", to="b", action="publish", actor="bot"
    )
    observer.pointers_moved("acme", [entry], 0.002)
    observer.pointers_moved("acme", [], 0.002)  # a base-only move: nothing moved
    weird = HistoryEntry(id=2, at="t", env="staging", from_=None, to="c", action="??", actor="x")
    observer.pointers_moved("acme", [weird], 0.001)
    observer.schedule_fired("acme", ["s1"], 0.012)
    item = OutboxItem(
        id=1,
        site="acme",
        env="production",
        event="environment.updated",
        url="https://h.example/x?k=secret",
        secret_env="S",
        payload=b"{}",
        attempts=0,
        status="pending",
        created_at="t",
    )
    observer.webhook_attempt(item, "retrying", "HTTP 500")
    observer.webhook_attempt(item, "delivered", None)
    observer.upstream_error(
        Route("acme", "production"), "http://127.0.0.1:9", "unreachable", "refused", "GET", "/a"
    )
    observer.webhook_attempt(None, "x", None)  # type: ignore[arg-type]  # logged, not raised
    get = metrics.registry.get_sample_value
    assert (
        get("edge_pointer_swaps_total", {"site": "acme", "env": "production", "action": "publish"})
        == 1
    )
    assert (
        get("edge_pointer_swaps_total", {"site": "acme", "env": "staging", "action": "other"}) == 1
    )
    assert get("edge_pointer_swap_duration_seconds_count", {"action": "publish"}) == 1
    assert get("edge_schedule_lateness_seconds_count", {}) == 1
    assert get("edge_schedule_lateness_seconds_bucket", {"le": "0.025"}) == 1
    for result in ("retrying", "delivered"):
        labels = {"site": "acme", "env": "production", "result": result}
        assert get("edge_webhook_deliveries_total", labels) == 1
    assert (
        get(
            "edge_upstream_errors_total",
            {"site": "acme", "env": "production", "kind": "unreachable"},
        )
        == 1
    )


def test_cache_figures_are_published_as_deltas() -> None:
    @dataclass(frozen=True)
    class Blob:
        nbytes: int

    metrics = Metrics(["acme"])
    observer = Observer(metrics, LineLog("event", None))
    cache: ByteLRU[str, Blob] = ByteLRU(100)
    for key in "abcde":
        cache.put(key, Blob(30))  # 30 bytes each: two evictions
    cache.get("e")
    cache.get("a")
    observer.sync(cache)
    observer.sync(cache)  # nothing new: nothing added
    get = metrics.registry.get_sample_value
    assert get("edge_cache_hits_total", {}) == 1
    assert get("edge_cache_misses_total", {}) == 1
    assert get("edge_cache_evictions_total", {}) == 2
    assert get("edge_cache_bytes", {}) == 90
    assert get("edge_cache_entries", {}) == 3
    assert get("edge_cache_max_bytes", {}) == 100


def test_the_multiprocess_directory_starts_empty(tmp_path: Path) -> None:
    shm = tmp_path / "shm"
    stale = shared_metrics_dir(tmp_path / "data", shm) / "counter_123.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old run")
    path = prepare_multiprocess_dir(tmp_path / "data", shm)
    assert path == stale.parent and path.is_dir()
    assert list(path.iterdir()) == []


def test_the_multiprocess_directory_is_off_the_data_disk_and_per_data_dir(tmp_path: Path) -> None:
    """A full data disk must not SIGBUS a worker through its mmap'd metric files."""
    one, two = shared_metrics_dir(tmp_path / "a"), shared_metrics_dir(tmp_path / "b")
    assert one != two
    assert tmp_path not in one.parents
    if Path("/dev/shm").is_dir():
        assert one.parent == Path("/dev/shm")


def test_a_scrape_skips_the_empty_file_of_a_starting_worker(tmp_path: Path) -> None:
    shared = prepare_multiprocess_dir(tmp_path, tmp_path / "shm")
    for pid, value in ((101, 3.0), (102, 4.0)):
        written = MmapedDict(str(shared / f"counter_{pid}.db"))
        key = mmap_key(
            "edge_pointer_swaps",
            "edge_pointer_swaps_total",
            ("site", "env", "action"),
            ("acme", "production", "publish"),
            "Environment pointer moves.",
        )
        written.write_value(key, value, 0.0)
        written.close()
    (shared / "counter_103.db").touch()  # created, not yet sized
    scraped = families(Metrics(["acme"], shared=shared))
    swaps = scraped["edge_pointer_swaps_total"]
    assert swaps == {(("action", "publish"), ("env", "production"), ("site", "acme")): 7.0}
    assert "edge_webhook_outbox_pending" in scraped  # per-scrape figures are still added
