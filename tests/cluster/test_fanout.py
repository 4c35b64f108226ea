"""Pointer moves reach every node: NOTIFY, LISTEN, reconnect, ``wait: "all"``."""

from __future__ import annotations

import functools
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from edge.admin_api.auth import new_token
from tests.cluster.conftest import Api, MakeCluster, Visitor
from tests.integration.conftest import PRODUCTION_HOST, ROLES, STAGING_HOST, EdgeServer
from tests.pgserver import with_database
from tests.waiting import eventually

# How long a publish with ``wait: "all"`` waits for a frozen node: a bound for the
# other nodes to swap, not a speed claim (the 504 comes only after all of it).
LAGGARD_WAIT = 5.0


def page(text: str) -> bytes:
    return f"<html><body>{text}</body></html>".encode()


async def serves(visitor: Visitor, text: str) -> bool:
    status, _, body = await visitor.get(PRODUCTION_HOST, "/")
    return status == 200 and body == page(text)


async def all_registered(db: asyncpg.Connection, count: int) -> bool:
    return bool(await db.fetchval("SELECT count(*) FROM nodes") == count)


async def all_current(api: Api, names: set[str]) -> bool:
    """``GET /v1/nodes`` lists exactly ``names``, each live and serving the cluster generation."""
    status, doc = await api.call("GET", "/v1/nodes")
    assert status == 200, doc
    nodes = doc["nodes"]
    return {n["name"] for n in nodes} == names and all(n["live"] and n["current"] for n in nodes)


async def listed_nodes(api: Api) -> dict[str, Any]:
    """``GET /v1/nodes`` of a PostgreSQL node."""
    status, doc = await api.call("GET", "/v1/nodes")
    assert status == 200 and doc["backend"] == "postgres", doc
    return dict(doc)


async def push_and_publish(api: Api, text: str, **publish: object) -> tuple[int, dict[str, object]]:
    await api.push("acme", {"/index.html": page(text)})
    status, doc = await api.publish(**publish)
    return status, doc


async def test_publish_through_a_is_served_by_b(
    make_cluster: MakeCluster, session: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    # Node b runs two workers: the fan-out (worker 0) tells its sibling through the
    # machine-local generation counter, as after a local publish.
    nodes = make_cluster(("a", "b"), workers={"b": 2})
    a, b = Api(nodes["a"], session), Api(nodes["b"], session)
    status, doc = await push_and_publish(a, "one")
    assert status == 200, doc
    visitor_b = Visitor(nodes["b"], session)
    await eventually(lambda: serves(visitor_b, "one"), what="node b serving the publish")
    for _ in range(6):  # every worker of b, whichever the kernel picks
        assert await serves(visitor_b, "one")
    # Staging moves reach b as well (the push went to staging through a).
    draft = await a.push("acme", {"/index.html": page("draft")})

    async def b_staging_serves_draft() -> bool:
        status, headers, _ = await visitor_b.get(STAGING_HOST, "/")
        return status == 200 and headers.get("X-Edge-Snapshot") == draft

    await eventually(b_staging_serves_draft, what="node b serving a's staging push")
    assert await serves(visitor_b, "one")  # production did not move
    _, envs_a = await a.call("GET", "/v1/sites/acme/environments")
    _, envs_b = await b.call("GET", "/v1/sites/acme/environments")
    assert envs_a == envs_b
    assert envs_b["production"]["snapshot"] == doc["production"]

    # And the other way round, with a rollback through b.
    status, _ = await push_and_publish(b, "two")
    assert status == 200
    visitor_a = Visitor(nodes["a"], session)
    await eventually(lambda: serves(visitor_a, "two"), what="node a serving b's publish")
    status, _ = await b.call("POST", "/v1/sites/acme/rollback", json={})
    assert status == 200
    await eventually(lambda: serves(visitor_a, "one"), what="node a serving b's rollback")
    await eventually(lambda: all_registered(db, 2), what="both nodes registered")
    await eventually(lambda: all_current(a, {"node-a", "node-b"}), what="both nodes current")
    # A node that stops cleanly leaves the registry: nobody waits for it.
    assert nodes["b"].stop() == 0
    await eventually(lambda: all_registered(db, 1), what="node b leaving the registry")
    status, listed = await a.call("GET", "/v1/nodes")
    assert status == 200 and [n["name"] for n in listed["nodes"]] == ["node-a"]
    for node in nodes.values():
        assert "Traceback" not in node.log()


def signal_node(node: EdgeServer, sig: int) -> None:
    """Every process of a node: its supervisor, visitor workers and admin process."""
    assert node.process is not None
    admin = node.admin_pid()
    for pid in [node.process.pid, *node.worker_pids(), *([admin] if admin else [])]:
        os.kill(pid, sig)


async def test_wait_all_answers_after_every_node_flipped(
    make_cluster: MakeCluster, session: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    # Long heartbeats: a frozen node stays "live" (and so waited for) for 60 s.
    nodes = make_cluster(("a", "b", "c"), store_extra="heartbeat_seconds = 20.0")
    await eventually(lambda: all_registered(db, 3), what="three nodes registered")
    a = Api(nodes["a"], session)
    visitors = {name: Visitor(node, session) for name, node in nodes.items()}

    status, doc = await push_and_publish(a, "one", wait="all", wait_timeout=30)
    assert status == 200, doc
    assert set(doc) == {"production", "previous", "action"}
    # No polling: the answer came only after b and c had swapped.
    assert await serves(visitors["b"], "one")
    assert await serves(visitors["c"], "one")

    # The same through the CLI.
    await a.push("acme", {"/index.html": page("cli")})
    result = nodes["a"].cli("publish", "--site", "acme", "--wait-all", "30")
    assert result.returncode == 0, result.stderr
    assert await serves(visitors["b"], "cli")
    assert await serves(visitors["c"], "cli")

    # A node that cannot catch up (frozen) makes the publish answer 504, naming it;
    # the publish itself is committed and served everywhere else. The wait is a
    # bound, not a speed claim: a and b swap within it, however busy the machine, so
    # only c is named (with one second, a b busy for longer was named too).
    c = nodes["c"]
    assert c.process is not None
    signal_node(c, signal.SIGSTOP)
    try:
        status, doc = await push_and_publish(a, "two", wait="all", wait_timeout=LAGGARD_WAIT)
        assert status == 504, doc
        assert doc["error"]["code"] == "not_propagated"
        assert doc["laggards"] == ["node-c"]
        assert doc["action"] == "publish" and doc["production"]
        assert await serves(visitors["a"], "two")
        await eventually(lambda: serves(visitors["b"], "two"), what="node b serving")
        await a.push("acme", {"/index.html": page("three")})
        result = nodes["a"].cli("publish", "--site", "acme", "--wait-all", "0.5")
        assert result.returncode != 0 and "node-c" in result.stderr
        # The node list says the same: c is live (its heartbeat is recent) but behind.
        # a and b swap "three" in their own time (the CLI waited only half a second).
        listed = await eventually(
            lambda: listed_nodes(a),
            lambda doc: all(n["current"] for n in doc["nodes"] if n["name"] != "node-c"),
            what="nodes a and b current",
        )
        by_name = {n["name"]: n for n in listed["nodes"]}
        assert set(by_name) == {"node-a", "node-b", "node-c"}
        assert by_name["node-c"]["live"] and not by_name["node-c"]["current"]
        assert by_name["node-c"]["generation"] < listed["generation"]
        assert by_name["node-a"]["current"]
        result = nodes["a"].cli("nodes")  # the CLI says so too, and fails
        assert result.returncode == 1, result.stderr
        assert any(
            line.split()[:1] == ["node-c"] and "behind" in line
            for line in result.stdout.splitlines()
        ), result.stdout
    finally:
        signal_node(c, signal.SIGCONT)
    await eventually(lambda: serves(visitors["c"], "three"), what="node c catching up")
    await eventually(
        lambda: all_current(a, {"node-a", "node-b", "node-c"}), what="node c current again"
    )
    result = nodes["a"].cli("nodes")
    assert result.returncode == 0 and result.stdout.count("current") == 3, result.stdout


async def test_lost_database_connection_recovers_with_the_right_snapshot(
    make_cluster: MakeCluster, session: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    nodes = make_cluster(("a", "b"))
    await eventually(lambda: all_registered(db, 2), what="both nodes registered")
    a, b = nodes["a"], nodes["b"]
    api_a = Api(a, session)
    visitor_b = Visitor(b, session)
    await push_and_publish(api_a, "one")
    await eventually(lambda: serves(visitor_b, "one"), what="node b serving")

    # Freeze b, cut every connection it has, publish meanwhile: b can only learn of
    # this publish by re-reading the pointers after it reconnects.
    assert b.process is not None
    signal_node(b, signal.SIGSTOP)
    try:
        killed = await db.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name LIKE 'edge node-b %'"
        )
        assert killed >= 2  # the LISTEN connection and the pool
        await push_and_publish(api_a, "two")
    finally:
        signal_node(b, signal.SIGCONT)
    # b keeps answering (from memory) while it reconnects, then serves "two".
    seen: list[bool] = []

    async def caught_up() -> bool:
        status, _, body = await visitor_b.get(PRODUCTION_HOST, "/")
        assert status == 200, body
        seen.append(body == page("two"))
        return seen[-1]

    await eventually(caught_up, what="node b re-reading the pointers after reconnecting")
    assert "LISTEN connection lost" in b.log()
    # And it listens again: the next publish reaches it through NOTIFY.
    await push_and_publish(api_a, "three")
    await eventually(lambda: serves(visitor_b, "three"), what="node b listening again")


async def test_a_preview_link_made_through_a_opens_on_b(
    make_cluster: MakeCluster, session: aiohttp.ClientSession
) -> None:
    """Behind a load balancer the link's next request lands on any node."""
    nodes = make_cluster(("a", "b"))
    a, b = nodes["a"], nodes["b"]
    api_a = Api(a, session)
    first = await api_a.push("acme", {"/index.html": page("first")})
    status, link = await api_a.call("POST", "/v1/sites/acme/preview-links", json={"ttl": 600})
    assert status == 201, link
    url = link["url"].replace(f"http://{STAGING_HOST}:{a.port}", b.url)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        async with browser.get(url, headers={"Host": STAGING_HOST}, allow_redirects=False) as r:
            assert r.status == 303
        async with browser.get(b.url + "/", headers={"Host": STAGING_HOST}) as r:
            assert r.status == 200 and r.headers["X-Edge-Snapshot"] == first


def test_an_unreachable_database_stops_start_up_with_a_message(
    tmp_path: Path, pg_admin_dsn: str
) -> None:
    missing = with_database(pg_admin_dsn, "edge_no_such_database")
    node = EdgeServer(
        root=tmp_path,
        tokens={name: new_token()[0] for name in ROLES},
        workers=2,
        store_config=f'backend = "postgres"\ndsn = "{missing}"\nconnect_timeout = 5.0',
    )
    node.start_nowait()
    assert node.process is not None
    assert node.process.wait(timeout=60) != 0
    assert "cannot open the PostgreSQL store" in node.log()
    assert "Traceback" not in node.log()


async def test_a_reload_cannot_change_the_store(
    make_cluster: MakeCluster, session: aiohttp.ClientSession
) -> None:
    nodes = make_cluster(("a",))
    a = nodes["a"]
    a.store_config += "\nheartbeat_seconds = 3.0"
    a.write_config()
    result = a.cli("reload", "--config", str(a.config_path))
    assert result.returncode == 0, result.stderr
    await eventually(lambda: "[store] changed: restart edge" in a.log(), what="reload refused")
    status, _ = await push_and_publish(Api(a, session), "still serving")
    assert status == 200


async def test_a_move_that_was_never_notified_is_caught_by_the_heartbeat(
    make_cluster: MakeCluster, session: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    """A notification lost on the way (say, by a pooler) leaves no node stale for long."""
    nodes = make_cluster(("a", "b"), store_extra="heartbeat_seconds = 0.3")
    api = Api(nodes["a"], session)
    await push_and_publish(api, "one")
    two = await api.snapshot("acme", {"/index.html": page("two")})
    # Commit a move exactly as edge does, but send no NOTIFY.
    async with db.transaction():
        await db.execute(
            "UPDATE pointers SET snapshot = $1 WHERE site = 'acme' AND env = 'production'", two
        )
        await db.execute("UPDATE cluster_state SET generation = generation + 1")
    for name, node in nodes.items():
        visitor = Visitor(node, session)
        await eventually(
            functools.partial(serves, visitor, "two"), what=f"node {name} re-reading the pointers"
        )
        # A visitor worker that had not served yet reads the pointers on its first
        # request, so it may serve "two" before its node's admin process (which holds
        # the LISTEN connection) notices: the heartbeat's catch-up is the event to wait for.
        await eventually(
            lambda node=node: "committed but not notified" in node.log(),
            what=f"node {name}'s heartbeat noticing the silent move",
        )


async def test_wait_all_on_one_machine_answers_after_the_commit(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """SQLite: one machine, every worker swapped by the time the commit answers."""
    node = EdgeServer(root=tmp_path, tokens={name: new_token()[0] for name in ROLES})
    node.start()
    try:
        status, doc = await push_and_publish(Api(node, session), "one", wait="all")
        assert status == 200 and set(doc) == {"production", "previous", "action"}
        assert await serves(Visitor(node, session), "one")
        status, doc = await Api(node, session).publish(wait="sometimes")
        assert status == 400, doc
    finally:
        node.stop()
