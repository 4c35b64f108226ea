"""Work that must happen once happens once, whichever node does it.

Schedules: every node's scheduler races for a due schedule; the row lock taken by
the pointer move's transaction lets one win. Outbox: deliveries are leased with
``FOR UPDATE SKIP LOCKED``. Forms and page views land in the shared database,
whichever node received them.
"""

from __future__ import annotations

import functools
import os
import signal
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg

from tests.cluster.conftest import Api, MakeCluster, Visitor
from tests.integration.conftest import PRODUCTION_HOST, EdgeServer
from tests.integration.test_isolation import (
    FORMS,
    SECRET_PRODUCTION,
    Receiver,
    post_form,
    receivers,
)
from tests.waiting import eventually

__all__ = ["receivers"]  # the fixture, used below


def page(text: str) -> bytes:
    return f"<html><body>{text}</body></html>".encode()


def moment(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def serves(visitor: Visitor, text: str) -> bool:
    status, _, body = await visitor.get(PRODUCTION_HOST, "/")
    return status == 200 and body == page(text)


async def production_actions(api: Api) -> list[str]:
    status, doc = await api.call("GET", "/v1/sites/acme/history?env=production")
    assert status == 200, doc
    return [h["action"] for h in doc["history"]]


async def schedule_launch(api: Api, seconds: float) -> str:
    await api.push("acme", {"/index.html": page("before")})
    status, doc = await api.publish()
    assert status == 200, doc
    await api.push("acme", {"/index.html": page("launch")})
    status, doc = await api.call("POST", "/v1/sites/acme/schedules", json={"at": moment(seconds)})
    assert status == 201, doc
    return str(doc["id"])


async def fence_schedule(api: Api, seconds: float) -> None:
    """Stage a page of its own and schedule just that page ``seconds`` from now."""
    await api.push("acme", {"/index.html": page("launch"), "/fence.html": page("fence")})
    status, doc = await api.call(
        "POST", "/v1/sites/acme/schedules", json={"at": moment(seconds), "paths": ["/fence.html"]}
    )
    assert status == 201, doc


async def serves_fence(visitor: Visitor) -> bool:
    status, _, body = await visitor.get(PRODUCTION_HOST, "/fence.html")
    return status == 200 and body == page("fence")


async def test_one_schedule_fires_once_across_three_nodes(
    make_cluster: MakeCluster, session: aiohttp.ClientSession
) -> None:
    nodes = make_cluster(("a", "b", "c"))
    apis = {name: Api(node, session) for name, node in nodes.items()}
    schedule_id = await schedule_launch(apis["a"], 2.0)
    # A later schedule is the fence: every node's timer passes the launch's moment
    # before this one's, so a node firing the launch late shows up before the fence.
    await fence_schedule(apis["a"], 3.0)
    for name, node in nodes.items():
        await eventually(
            functools.partial(serves_fence, Visitor(node, session)),
            what=f"node {name} serving the fence",
        )
    assert await production_actions(apis["c"]) == ["schedule", "schedule", "publish"]
    _, doc = await apis["b"].call("GET", f"/v1/sites/acme/schedules/{schedule_id}")
    assert doc["status"] == "done"


async def test_a_node_dying_mid_fire_leaves_the_schedule_to_another(
    make_cluster: MakeCluster, session: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    nodes = make_cluster(("a", "b", "c"))
    apis = {name: Api(node, session) for name, node in nodes.items()}
    schedule_id = await schedule_launch(apis["a"], 5.0)

    # Hold the schedule's row, so the node that wins the site lock blocks inside
    # its firing transaction; then kill that node, mid-fire.
    holder = db.transaction()
    await holder.start()
    status = await db.fetchval("SELECT status FROM schedules WHERE id = $1 FOR UPDATE", schedule_id)
    assert status == "pending", "the schedule fired before the test could hold it"
    firing: list[str] = []

    async def a_node_is_firing() -> bool:
        rows = await db.fetch(
            "SELECT application_name FROM pg_stat_activity"
            " WHERE wait_event = 'transactionid' AND application_name LIKE 'edge node-%'"
        )
        firing[:] = [r[0] for r in rows]
        return bool(rows)

    await eventually(a_node_is_firing, what="a node blocked inside its firing transaction")
    victim = firing[0].split()[1].removeprefix("node-")
    killed: EdgeServer = nodes.pop(victim)
    assert killed.process is not None
    os.kill(killed.process.pid, signal.SIGKILL)
    killed.process.wait(timeout=15)
    await holder.rollback()  # the row is free again

    survivor = next(iter(nodes.values()))
    await eventually(
        lambda: serves(Visitor(survivor, session), "launch"),
        timeout=30,
        what="a surviving node firing the schedule",
    )
    api = Api(survivor, session)
    await fence_schedule(api, 1.0)
    for name, node in nodes.items():
        await eventually(
            functools.partial(serves_fence, Visitor(node, session)),
            what=f"node {name} serving the fence",
        )
    assert await production_actions(api) == ["schedule", "schedule", "publish"]
    _, doc = await api.call("GET", f"/v1/sites/acme/schedules/{schedule_id}")
    assert doc["status"] == "done"


async def test_forms_views_and_webhooks_from_any_node_without_double_delivery(
    make_cluster: MakeCluster,
    session: aiohttp.ClientSession,
    receivers: tuple[Receiver, Receiver],
) -> None:
    _, hook = receivers
    events = '["form.submitted", "environment.updated"]'
    nodes = make_cluster(
        ("a", "b", "c"),
        extra_config='allow_private_targets = ["127.0.0.0/8"]\nanalytics_flush_seconds = 0.2',
        env_extra={
            "acme.production": f'webhooks = [{{ url = "http://127.0.0.1:{hook.port}/hook",'
            f' events = {events}, secret_env = "HOOK_PRODUCTION" }}]'
        },
        environ={"HOOK_PRODUCTION": SECRET_PRODUCTION},
    )
    a = Api(nodes["a"], session)
    snap = await a.snapshot("acme", {"/index.html": page("home")}, settings={"forms": FORMS})
    await a.set_env("acme", "staging", snap)
    status, doc = await a.publish(wait="all", wait_timeout=30)
    assert status == 200, doc

    posted = 0
    for round_ in range(3):
        for name in ("b", "c", "a"):
            status, _, _ = await post_form(
                session, nodes[name], PRODUCTION_HOST, "signup", json={"from": f"{name}{round_}"}
            )
            assert status == 204
            posted += 1
    for name in ("b", "c"):
        for _ in range(2):
            status, _, _ = await Visitor(nodes[name], session).get(PRODUCTION_HOST, "/")
            assert status == 200

    # The inbox read through a holds what b and c received.
    status, doc = await a.call("GET", "/v1/sites/acme/forms/production")
    assert status == 200
    assert sorted(s["fields"]["from"] for s in doc["submissions"]) == sorted(
        f"{n}{r}" for n in "abc" for r in range(3)
    )

    def delivered(event: str) -> list[str]:
        return [
            h["X-Edge-Delivery"]
            for h, _, status in hook.calls
            if status == 200 and h["X-Edge-Event"] == event
        ]

    await eventually(lambda: len(delivered("form.submitted")) >= posted, what="all deliveries")
    await eventually(lambda: len(delivered("environment.updated")) >= 1, what="publish event")
    # Later deliveries, one queued through each node, twice (the second round once the
    # first arrived): the outbox is claimed in queue order and a node finishes a pass
    # before claiming again, so a second copy of an earlier event would be here by now.
    for round_ in range(2):
        for name in ("a", "b", "c"):
            status, _, _ = await post_form(
                session, nodes[name], PRODUCTION_HOST, "signup", json={"from": f"later{round_}"}
            )
            assert status == 204
        posted += 3
        await eventually(
            lambda n=posted: len(delivered("form.submitted")) >= n, what="the later deliveries"
        )
    assert len(delivered("form.submitted")) == posted
    assert len(set(delivered("form.submitted"))) == posted
    assert len(delivered("environment.updated")) == 1

    async def views_counted() -> bool:
        _, doc = await a.call("GET", "/v1/sites/acme/analytics/production")
        return bool(doc["total"] == 4)

    await eventually(views_counted, what="page views of b and c counted once, read through a")
