"""Every node's blob cache follows a collection made through another node: the
collected blobs' files leave each node's disk (also one that was stopped during the
collection, once it is back), and what a node serves stays byte-exact."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import aiohttp

from tests.cluster.conftest import Api, MakeCluster, Visitor
from tests.integration.conftest import PRODUCTION_HOST, EdgeServer
from tests.waiting import eventually

RETENTION = "[retention]\nkeep_production_moves = 1\ngrace_seconds = 0\n"


def cached(node: EdgeServer, data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    return node.root / "data" / "blobs" / digest[:2] / digest[2:]


def dropped(node: EdgeServer, version: int) -> bool:
    """Neither file of ``version`` is in the node's cache."""
    return not cached(node, page(version)).exists() and not cached(node, big(version)).exists()


def page(version: int) -> bytes:
    return b"<p>version %d</p>" % version + bytes(range(256)) * (version + 1)


def big(version: int) -> bytes:
    """Over the 1 MiB stream threshold: served from the cache file itself."""
    block = hashlib.sha256(b"big %d" % version).digest() * 1024
    return b"".join(i.to_bytes(4, "big") + block[4:] for i in range(80))


async def push(api: Api, version: int) -> None:
    """Snapshot ``version`` (its big file uploaded as a stream first) to staging."""
    data = big(version)
    async with api.session.put(
        f"{api.server.admin_url}/v1/sites/acme/blobs/{hashlib.sha256(data).hexdigest()}",
        data=io.BytesIO(data),
        headers={"Authorization": f"Bearer {api.server.tokens['admin']}"},
    ) as resp:
        assert resp.status in (200, 201), await resp.text()
    await api.push("acme", {"/index.html": page(version), "/big.bin": data})


async def serves(node: EdgeServer, session: aiohttp.ClientSession, body: bytes) -> bool:
    status, _, got = await Visitor(node, session).get(PRODUCTION_HOST, "/")
    return status == 200 and got == body


async def serves_big(node: EdgeServer, session: aiohttp.ClientSession, version: int) -> bool:
    status, _, got = await Visitor(node, session).get(PRODUCTION_HOST, "/big.bin")
    return status == 200 and got == big(version)


async def test_a_collection_through_a_empties_every_nodes_cache_of_the_collected_blobs(
    make_cluster: MakeCluster, session: aiohttp.ClientSession
) -> None:
    nodes = make_cluster(("a", "b", "c"), extra_config=RETENTION)
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    api = Api(a, session)
    await push(api, 1)
    status, doc = await api.publish()
    assert status == 200, doc
    for node in (b, c):  # each serves v1 from files of its own cache
        await eventually(lambda n=node: serves(n, session, page(1)), what=f"{node.root} on v1")
        assert await serves_big(node, session, 1)
        assert cached(node, page(1)).read_bytes() == page(1)
        assert cached(node, big(1)).read_bytes() == big(1)

    c.stop()  # away during the collection
    for version in (2, 3):  # v1 is then no rollback target: the collection takes it
        await push(api, version)
        status, doc = await api.publish()
        assert status == 200, doc
    await eventually(lambda: serves(b, session, page(3)), what="node b on v3")
    assert cached(b, page(1)).is_file()  # not collected yet: still cached

    status, doc = await api.call("POST", "/v1/sites/acme/gc", json={})
    assert status == 200 and doc["blobs"] == 2, doc
    assert dropped(a, 1)  # the collecting node itself, before it answered
    await eventually(lambda: dropped(b, 1), what="b's cache dropping v1's files")
    # The live snapshot is untouched, byte-exact, its big file streamed from b's cache.
    assert await serves(b, session, page(3)) and await serves_big(b, session, 3)
    assert cached(b, big(3)).read_bytes() == big(3)

    assert cached(c, page(1)).is_file() and cached(c, big(1)).is_file()  # stopped: still there
    c.start()
    await eventually(lambda: dropped(c, 1), what="c's cache dropping v1's files")
    assert await serves(c, session, page(3)) and await serves_big(c, session, 3)

    # The same bytes again, after the collection: fetched from the database anew.
    await push(api, 1)
    status, doc = await api.publish()
    assert status == 200, doc
    for node in (b, c):
        await eventually(
            lambda n=node: serves(n, session, page(1)), what=f"{node.root} on v1 again"
        )
        assert await serves_big(node, session, 1)
    assert cached(b, big(1)).read_bytes() == big(1)
