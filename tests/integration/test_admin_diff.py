"""A diff of two large manifests against a real ``edge serve``: sent in pieces, same document."""

from __future__ import annotations

import hashlib
import io

import aiohttp
import msgspec

from edge.admin_api.streaming import STREAM_FILES_OVER
from edge.snapshots.merge import changed_paths
from tests.integration.conftest import Api


async def test_a_large_diff_is_streamed_and_answers_the_same_document(
    api: Api, session: aiohttp.ClientSession
) -> None:
    blobs = {b"one", b"two"}
    await api.upload("acme", {str(i): b for i, b in enumerate(blobs)})
    one, two = (hashlib.sha256(b).hexdigest() for b in (b"one", b"two"))
    old = {f"/p/{i:05}.html": {"sha256": one} for i in range(16_000)}
    new = {p: e for p, e in old.items() if not p.endswith("1.html")}
    new.update({f"/q/{i}.html": {"sha256": one} for i in range(6_000)})
    for i in range(0, 16_000, 3):
        if (p := f"/p/{i:05}.html") in new:
            new[p] = {"sha256": two} if i % 2 else {"sha256": one, "content_type": "text/plain"}
    assert len(old) + len(new) > 30_000 > STREAM_FILES_OVER
    token = api.server.tokens["admin"]
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    ids = []
    for files in (old, new):
        body = io.BytesIO(msgspec.json.encode({"files": files}))
        async with session.post(
            f"{api.server.admin_url}/v1/sites/acme/snapshots", data=body, headers=auth
        ) as created:
            assert created.status == 201, await created.text()
            ids.append((await created.json())["id"])
    async with session.get(
        f"{api.server.admin_url}/v1/sites/acme/diff",
        params={"from": ids[0], "to": ids[1]},
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        assert resp.headers.get("Transfer-Encoding") == "chunked"  # sent in pieces
        doc = await resp.json()
    added, removed, changed = changed_paths(old, new)  # type: ignore[arg-type]
    assert min(len(added), len(removed), len(changed)) > 1_000
    assert doc == {
        "from": ids[0],
        "to": ids[1],
        "added": added,
        "removed": removed,
        "changed": changed,
        "settings_changed": False,
    }
    # A small diff is one document as before (environments by name).
    status, small = await api.call("GET", "/v1/sites/acme/diff")
    assert status == 200 and small["added"] == small["removed"] == small["changed"] == []

    # The publish's dry run lists every path too: sent in pieces, the same document.
    await api.set_env("acme", "production", ids[0])
    await api.set_env("acme", "staging", ids[1])
    async with session.post(
        f"{api.server.admin_url}/v1/sites/acme/publish", json={"dry_run": True}, headers=auth
    ) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        preview = await resp.json()
    assert (preview["added"], preview["removed"], preview["changed"]) == (added, removed, changed)
    assert preview["dry_run"] is True and preview["production"] == ids[0]
    assert preview["staging"] == ids[1] and preview["settings_changed"] is False
    assert isinstance(preview["kept"], list) and isinstance(preview["conflicts"], list)
    assert set(preview) == {
        "dry_run", "production", "staging", "action", "added", "removed", "changed",
        "settings_changed", "kept", "conflicts",
    }  # fmt: skip
