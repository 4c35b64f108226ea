"""Every node's blob cache follows a collection made through another node: the
collected blobs' files leave each node's disk (also one that was stopped during the
collection, once it is back), and what a node serves stays byte-exact."""

from __future__ import annotations

import hashlib
from pathlib import Path

import aiohttp

from tests.cluster.conftest import Api, MakeCluster, Visitor, wait_for
from tests.integration.conftest import PRODUCTION_HOST, EdgeServer

RETENTION = "[retention]\nkeep_production_moves = 1\ngrace_seconds = 0\n"


def cached(node: EdgeServer, data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    return node.root / "data" / "blobs" / digest[:2] / digest[2:]


def page(version: int) -> bytes:
    return b"<p>version %d</p>" % version + bytes(range(256)) * (version + 1)


async def serves(node: EdgeServer, session: aiohttp.ClientSession, body: bytes) -> bool:
    status, _, got = await Visitor(node, session).get(PRODUCTION_HOST, "/")
    return status == 200 and got == body


async def test_a_collection_through_a_empties_every_nodes_cache_of_the_collected_blobs(
    make_cluster: MakeCluster, session: aiohttp.ClientSession
) -> None:
    nodes = make_cluster(("a", "b", "c"), extra_config=RETENTION)
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    api = Api(a, session)
    await api.push("acme", {"/index.html": page(1)})
    status, doc = await api.publish()
    assert status == 200, doc
    for node in (b, c):  # each serves v1 from a file of its own cache
        await wait_for(lambda n=node: serves(n, session, page(1)), what=f"{node.root} on v1")
        assert cached(node, page(1)).read_bytes() == page(1)

    c.stop()  # away during the collection
    for version in (2, 3):  # v1 is then no rollback target: the collection takes it
        await api.push("acme", {"/index.html": page(version)})
        status, doc = await api.publish()
        assert status == 200, doc
    await wait_for(lambda: serves(b, session, page(3)), what="node b on v3")
    assert cached(b, page(1)).is_file()  # not collected yet: still cached

    status, doc = await api.call("POST", "/v1/sites/acme/gc", json={})
    assert status == 200 and doc["blobs"] == 1, doc
    assert not cached(a, page(1)).exists()
    await wait_for(lambda: not cached(b, page(1)).exists(), what="b's cache dropping v1's blob")
    assert await serves(b, session, page(3))  # the live snapshot is untouched
    assert cached(b, page(3)).read_bytes() == page(3)

    assert cached(c, page(1)).is_file()  # stopped: nobody removed it
    c.start()
    await wait_for(lambda: not cached(c, page(1)).exists(), what="c's cache dropping v1's blob")
    assert await serves(c, session, page(3))

    # The same bytes again, after the collection: fetched from the database anew.
    await api.push("acme", {"/index.html": page(1)})
    status, doc = await api.publish()
    assert status == 200, doc
    for node in (b, c):
        await wait_for(lambda n=node: serves(n, session, page(1)), what=f"{node.root} on v1 again")
    assert cached(b, page(1)).read_bytes() == page(1)
