"""``GET /metrics`` of a real ``edge serve``: auth, totals across workers, bounded labels."""

from __future__ import annotations

import os
import random
import signal
import string
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.admin_api.auth import new_token
from edge.observability.metrics import shared_metrics_dir
from tests.integration.conftest import (
    PRODUCTION_HOST,
    ROLES,
    STAGING_HOST,
    Api,
    EdgeServer,
    Visitor,
    free_port,
)
from tests.waiting import eventually

Series = dict[str, dict[tuple[tuple[str, str], ...], float]]
PAGE = b"<html><head><title>t</title></head><body>hello</body></html>"


def parse(text: str) -> Series:
    """Sample name -> {sorted labels -> value}."""
    found: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(series: Series, name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist)."""
    return series.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def total(series: Series, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for k, v in series.get(name, {}).items() if wanted <= set(k))


async def scrape(server: EdgeServer, session: aiohttp.ClientSession, as_: str = "admin") -> Series:
    headers = {"Authorization": f"Bearer {server.tokens[as_]}"}
    async with session.get(server.admin_url + "/metrics", headers=headers) as resp:
        text = await resp.text()
        assert resp.status == 200, text
    return parse(text)


async def scraped(
    server: EdgeServer, session: aiohttp.ClientSession, check: Callable[[Series], bool]
) -> Series:
    """Scrape until ``check`` holds (workers publish cache figures every second)."""
    return await eventually(lambda: scrape(server, session), check, what="the metrics")


def moment(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def test_metrics_needs_a_token_that_sees_every_site(
    server: EdgeServer, fresh: aiohttp.ClientSession
) -> None:
    url = server.admin_url + "/metrics"
    for headers in ({}, {"Authorization": "Bearer edge_not-a-token"}):
        async with fresh.get(url, headers=headers) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "unauthorized"
    # Issue 19: figures are labelled by site, so a token scoped to some sites would
    # read the others' traffic.
    for name in ("editor", "publisher", "other"):
        async with fresh.get(
            url, headers={"Authorization": f"Bearer {server.tokens[name]}"}
        ) as resp:
            assert resp.status == 403, name
            assert (await resp.json())["error"]["code"] == "forbidden"
    for name in ("admin",):
        async with fresh.get(
            url, headers={"Authorization": f"Bearer {server.tokens[name]}"}
        ) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            series = parse(await resp.text())
    assert "edge_visitor_requests_total" in series
    assert "edge_cache_hits_total" in series


async def test_requests_per_environment_add_up_across_workers(
    server: EdgeServer, api: Api, fresh: aiohttp.ClientSession
) -> None:
    assert len(server.worker_pids()) == 2
    await api.push("acme", {"/index.html": PAGE})
    await api.publish()
    visitor = Visitor(server, fresh)
    n, m = 24, 11
    for _ in range(n):
        assert (await visitor.get(PRODUCTION_HOST, "/"))[0] == 200
    for _ in range(m):
        assert (await visitor.get(STAGING_HOST, "/"))[0] == 200
    for _ in range(3):
        assert (await visitor.get("nobody.example", "/"))[0] == 421

    def counted(s: Series) -> bool:
        return (
            total(s, "edge_visitor_requests_total", site="acme", env="production") == n
            and total(s, "edge_visitor_requests_total", site="acme", env="staging") == m
            and total(s, "edge_visitor_requests_total", site="_unknown") == 3
        )

    series = await scraped(server, fresh, counted)
    name = "edge_visitor_requests_total"
    assert value(series, name, site="acme", env="production", status="2xx") == n
    assert value(series, name, site="_unknown", env="_unknown", status="4xx") == 3
    assert total(series, name, site="other") == 0
    assert value(series, "edge_visitor_request_duration_seconds_count", env="production") == n
    assert value(series, "edge_visitor_request_duration_seconds_count", env="staging") == m
    # Whichever worker answers the scrape (a new connection each time), it sums them all.
    for _ in range(6):
        assert counted(await scrape(server, fresh))


async def test_a_publish_counts_a_swap_by_action(
    server: EdgeServer, api: Api, fresh: aiohttp.ClientSession
) -> None:
    first = await api.push("acme", {"/index.html": PAGE})
    before = await scrape(server, fresh)
    assert (
        value(before, "edge_pointer_swaps_total", site="acme", env="production", action="publish")
        == 0
    )
    status, doc = await api.publish()
    assert status == 200 and doc["production"] == first
    await api.push("acme", {"/index.html": PAGE + b"2"})
    assert (await api.publish())[0] == 200
    assert (await api.call("POST", "/v1/sites/acme/rollback", json={}))[0] == 200
    series = await scrape(server, fresh)
    swaps = "edge_pointer_swaps_total"
    assert value(series, swaps, site="acme", env="production", action="publish") == 2
    assert value(series, swaps, site="acme", env="production", action="rollback") == 1
    assert value(series, swaps, site="acme", env="staging", action="set") == 2
    duration = "edge_pointer_swap_duration_seconds_count"
    assert value(series, duration, action="publish") == 2
    assert value(series, duration, action="rollback") == 1


async def test_random_hosts_and_paths_add_no_series(
    server: EdgeServer, api: Api, fresh: aiohttp.ClientSession
) -> None:
    await api.push("acme", {"/index.html": PAGE})
    await api.publish()
    visitor = Visitor(server, fresh)
    assert (await visitor.get(PRODUCTION_HOST, "/"))[0] == 200
    before = await scrape(server, fresh)
    rng = random.Random()
    words = ["".join(rng.choices(string.ascii_lowercase, k=16)) for _ in range(200)]
    for word in words[:100]:
        assert (await visitor.get(f"{word}.example", f"/{word}"))[0] == 421
    for word in words[100:]:
        assert (await visitor.get(PRODUCTION_HOST, f"/{word}/{word}.html"))[0] == 404

    def settled(s: Series) -> bool:
        unknown = value(
            s, "edge_visitor_requests_total", site="_unknown", env="_unknown", status="4xx"
        )
        missing = value(
            s, "edge_visitor_requests_total", site="acme", env="production", status="4xx"
        )
        return unknown == 100 and missing == 100

    after = await scraped(server, fresh, settled)
    assert {k: set(v) for k, v in after.items()} == {k: set(v) for k, v in before.items()}
    labels = {v for series in after.values() for key in series for _, v in key}
    assert not labels & set(words)


async def test_cache_figures_move(server: EdgeServer, api: Api, visitor: Visitor) -> None:
    await api.push("acme", {"/index.html": PAGE, "/about.html": PAGE + b"about"})
    await api.publish()
    async with aiohttp.ClientSession() as scraper:
        before = await scrape(server, scraper)
        for _ in range(5):  # one connection: one worker's cache
            assert (await visitor.get(PRODUCTION_HOST, "/about.html"))[0] == 200
        series = await scraped(
            server,
            scraper,
            lambda s: (
                value(s, "edge_cache_hits_total") >= value(before, "edge_cache_hits_total") + 4
                and value(s, "edge_workers") == 2  # the second worker may still be starting
            ),
        )
    assert value(series, "edge_cache_bytes") > 0
    assert value(series, "edge_cache_entries") >= 1
    assert value(series, "edge_cache_max_bytes") == 4194304  # the configured budget, all workers


async def test_schedule_lateness_is_observed_when_a_schedule_fires(
    server: EdgeServer, api: Api, fresh: aiohttp.ClientSession
) -> None:
    await api.push("acme", {"/index.html": PAGE})
    await api.publish()
    launch = await api.push("acme", {"/index.html": PAGE + b"launch"})
    status, doc = await api.call("POST", "/v1/sites/acme/schedules", json={"at": moment(1.0)})
    assert status == 201, doc
    series = await scraped(
        server, fresh, lambda s: value(s, "edge_schedule_lateness_seconds_count") == 1
    )
    assert (
        value(series, "edge_pointer_swaps_total", site="acme", env="production", action="schedule")
        == 1
    )
    assert value(series, "edge_schedule_lateness_seconds_bucket", le="+Inf") == 1
    status, envs = await api.call("GET", "/v1/sites/acme/environments")
    assert envs["production"]["snapshot"] == launch


HOOK_PORT, UPSTREAM_PORT = free_port(), free_port()  # nothing listens on either


@pytest.fixture
def failing(tmp_path: Path) -> Iterator[EdgeServer]:
    """An edge whose production webhook and upstream are both unreachable."""
    srv = EdgeServer(root=tmp_path, tokens={name: new_token()[0] for name in ROLES})
    srv.extra_config = 'allow_private_targets = ["127.0.0.1/32"]\nevent_log_file = "events.log"'
    srv.env_extra = {
        "acme.production": (
            f'webhooks = [{{ url = "http://127.0.0.1:{HOOK_PORT}/hook?key=s3cret",'
            ' events = ["environment.updated"], secret_env = "HOOK_SECRET" }]\n'
            f'upstreams = [{{ prefix = "/api/", origin = "http://127.0.0.1:{UPSTREAM_PORT}" }}]'
        )
    }
    srv.environ = {"HOOK_SECRET": "hook-secret-value"}
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def test_webhook_failures_outbox_depth_and_upstream_errors(
    failing: EdgeServer, fresh: aiohttp.ClientSession
) -> None:
    api = Api(failing, fresh)
    await api.push("acme", {"/index.html": PAGE})
    await api.publish()
    assert (await Visitor(failing, fresh).get(PRODUCTION_HOST, "/api/items"))[0] == 502

    def failed(s: Series) -> bool:
        return (
            value(
                s, "edge_webhook_deliveries_total", site="acme", env="production", result="retrying"
            )
            >= 1
        )

    series = await scraped(failing, fresh, failed)
    assert value(series, "edge_webhook_outbox_pending", site="acme", env="production") == 1
    assert value(series, "edge_webhook_outbox_pending", site="acme", env="staging") == 0
    assert (
        value(
            series, "edge_upstream_errors_total", site="acme", env="production", kind="unreachable"
        )
        == 1
    )


async def test_one_worker_serves_its_own_metrics(tmp_path: Path) -> None:
    srv = EdgeServer(root=tmp_path, tokens={name: new_token()[0] for name in ROLES}, workers=1)
    srv.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(srv, session)
            await api.push("acme", {"/index.html": PAGE})
            await api.publish()
            for _ in range(7):
                assert (await Visitor(srv, session).get(PRODUCTION_HOST, "/"))[0] == 200
            series = await scrape(srv, session)
    finally:
        srv.stop()
    assert (
        value(series, "edge_visitor_requests_total", site="acme", env="production", status="2xx")
        == 7
    )
    # no multiprocess files with one worker
    assert not shared_metrics_dir(srv.root / "data").exists()


async def test_a_restarted_worker_keeps_the_totals_and_drops_its_gauges(
    server: EdgeServer, api: Api, fresh: aiohttp.ClientSession
) -> None:
    await api.push("acme", {"/index.html": PAGE})
    await api.publish()
    visitor = Visitor(server, fresh)
    for _ in range(20):
        assert (await visitor.get(PRODUCTION_HOST, "/"))[0] == 200
    await scraped(
        server, fresh, lambda s: total(s, "edge_visitor_requests_total", env="production") == 20
    )
    # A worker logs this once its listeners are up (its gauges are set before that).
    await eventually(lambda: server.log().count("/2: visitors on") >= 2, what="both workers")
    old = server.worker_pids()
    os.kill(old[0], signal.SIGKILL)
    await eventually(lambda: server.log().count("/2: visitors on") >= 3, what="a new worker")
    assert len(server.worker_pids()) == 2 and old[0] not in server.worker_pids()
    series = await scrape(server, fresh)
    # The dead worker's requests still count; its gauges are no longer added in.
    assert total(series, "edge_visitor_requests_total", env="production") == 20
    assert value(series, "edge_workers") == 2
    assert value(series, "edge_cache_max_bytes") == 4194304


async def test_metrics_public_needs_no_token(tmp_path: Path) -> None:
    srv = EdgeServer(root=tmp_path, tokens={name: new_token()[0] for name in ROLES})
    srv.extra_config = "metrics_public = true"
    srv.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(srv.admin_url + "/metrics") as resp:
                assert resp.status == 200
                assert "edge_visitor_requests_total" in parse(await resp.text())
            # The rest of the admin API still needs its token.
            async with session.get(srv.admin_url + "/v1/sites/acme/environments") as resp:
                assert resp.status == 401
    finally:
        srv.stop()


async def test_worker_metric_files_live_in_memory_and_go_when_edge_stops(
    tmp_path: Path,
) -> None:
    srv = EdgeServer(root=tmp_path, tokens={name: new_token()[0] for name in ROLES})
    shared = shared_metrics_dir(srv.root / "data")
    srv.start()
    try:
        assert shared.is_dir() and any(shared.iterdir())
        assert srv.root not in shared.parents  # not on the data disk
    finally:
        srv.stop()
    assert not shared.exists()
