"""Large blobs on the PostgreSQL store: uploaded through one node, in the database in
chunks, served byte-exact by another node from its own disk cache, also after a restart;
collection through one node keeps what the other serves."""

from __future__ import annotations

import hashlib
import io

import aiohttp
import asyncpg

from tests.cluster.conftest import Api, MakeCluster, Visitor
from tests.integration.conftest import PRODUCTION_HOST
from tests.waiting import eventually

MiB = 1024 * 1024
SIZE = 12 * MiB + 123  # several database chunks, over the 4 MiB cache budget


def big_bytes() -> bytes:
    block = hashlib.sha256(b"cluster").digest() * (MiB // 32)
    return b"".join(i.to_bytes(4, "big") + block[4:] for i in range(13))[:SIZE]


async def test_a_blob_pushed_through_a_is_served_by_b_from_its_cache(
    make_cluster: MakeCluster, session: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    nodes = make_cluster(("a", "b"))
    a, b = Api(nodes["a"], session), Api(nodes["b"], session)
    data = big_bytes()
    digest = hashlib.sha256(data).hexdigest()
    async with session.put(
        f"{nodes['a'].admin_url}/v1/sites/acme/blobs/{digest}",
        data=io.BytesIO(data),
        headers={"Authorization": f"Bearer {nodes['a'].tokens['admin']}"},
    ) as resp:
        assert resp.status == 201, await resp.text()
    await a.push("acme", {"/index.html": b"<p>hi</p>", "/big.bin": data})
    status, doc = await a.publish()
    assert status == 200, doc
    chunks = await db.fetchval("SELECT count(*) FROM blob_chunks WHERE sha256 = $1", digest)
    assert chunks == 13  # 1 MiB rows, never one row of the whole blob
    visitor_b = Visitor(nodes["b"], session)

    async def b_swapped() -> bool:
        status, headers, _ = await visitor_b.get(PRODUCTION_HOST, "/")
        return status == 200 and headers.get("X-Edge-Snapshot") == doc["production"]

    await eventually(b_swapped, what="node b serving the publish")
    cached = nodes["b"].root / "data" / "blobs" / digest[:2] / digest[2:]
    # The publish's pre-warm brought it to b's disk before b swapped: the first
    # visitor there does not wait for the database.
    assert cached.read_bytes() == data

    async def b_serves_it() -> bool:
        status, _, body = await visitor_b.get(PRODUCTION_HOST, "/big.bin")
        return status == 200 and hashlib.sha256(body).hexdigest() == digest

    assert await b_serves_it()
    status, headers, body = await visitor_b.get(
        PRODUCTION_HOST, "/big.bin", headers={"Range": "bytes=-100"}
    )
    assert (status, body) == (206, data[-100:])
    assert headers["Content-Range"] == f"bytes {SIZE - 100}-{SIZE - 1}/{SIZE}"

    # Restarted, with its cache emptied: b fetches it from the database again.
    nodes["b"].stop()
    cached.unlink()
    nodes["b"].start()
    assert await b_serves_it()
    status, _, body = await visitor_b.get(
        PRODUCTION_HOST, "/big.bin", headers={"Range": "bytes=5000000-5000099"}
    )
    assert (status, body) == (206, data[5000000:5000100])

    # Collection through b never removes what production serves.
    status, doc = await b.call("POST", "/v1/sites/acme/gc", json={})
    assert status == 200 and doc["blobs"] == 0, doc
    assert await b_serves_it()
