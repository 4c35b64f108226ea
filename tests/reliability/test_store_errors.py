"""Bad pushes and publishes, and a store that cannot be written, never cost visitors.

Bad input is refused with a JSON error (400/404/422); a full disk answers 507 and a
read-only store 503. In every case nothing is half-written, the processes stay up
and the snapshot being served keeps serving.

The full disk is a real one: a small tmpfs mounted over ``data_dir`` (root only;
skipped where mounting is not permitted). The read-only store uses the test-only
switch ``EDGE_TEST_STORE_READONLY=1`` (see ``edge.snapshots.sqlite``), which makes
SQLite itself refuse every write with ``SQLITE_READONLY``: a running process's
filesystem cannot be remounted read-only while the store is open for writing.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge.errors import StoreFull
from edge.snapshots.model import Schedule
from edge.snapshots.scheduler import STORE_RETRY_SECONDS, Scheduler
from edge.snapshots.sqlite import TEST_READONLY_ENV
from tests.reliability.conftest import (
    FORMS,
    PRODUCTION_HOST,
    STAGING_HOST,
    Api,
    EdgeServer,
    Visitor,
    fresh_get,
    new_server,
    page,
    workers_listening,
)

V1 = {"/index.html": page("v1"), "/about.html": page("about v1")}
V2 = {"/index.html": page("v2"), "/about.html": page("about v2")}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_error(doc: Any, code: str) -> bool:
    return (
        isinstance(doc, dict)
        and doc.get("error", {}).get("code") == code
        and isinstance(doc["error"].get("message"), str)
        and len(doc["error"]["message"]) > 10
    )


async def serves(visitor: Visitor, host: str, snapshot: str, body: bytes | None) -> None:
    status, headers, got = await visitor.get(host, "/")
    assert (status, headers["X-Edge-Snapshot"]) == (200, snapshot)
    if body is not None:
        assert got == body


async def publish_v1(api: Api) -> str:
    v1 = await api.snapshot("acme", V1, settings=FORMS)
    await api.set_env("acme", "staging", v1)
    status, doc = await api.publish()
    assert status == 200, doc
    return v1


# -- bad input --------------------------------------------------------------------

MISSING = sha(b"never uploaded")
BAD_REQUESTS: dict[str, tuple[str, str, Any, int, str]] = {
    "missing blobs": (
        "POST", "/v1/sites/acme/snapshots",
        {"files": {"/index.html": {"sha256": MISSING}}}, 422, "missing_blobs",
    ),
    "path escaping the manifest": (
        "POST", "/v1/sites/acme/snapshots",
        {"files": {"/../etc/passwd": {"sha256": sha(V2["/index.html"])}}}, 400, "bad_request",
    ),
    "manifest of the wrong shape": (
        "POST", "/v1/sites/acme/snapshots", {"files": ["/index.html"]}, 400, "bad_request",
    ),
    "invalid settings": (
        "POST", "/v1/sites/acme/snapshots",
        {
            "files": {"/index.html": {"sha256": sha(V2["/index.html"])}},
            "settings": {"headers": {"/": {"Set-Cookie": "session=1"}}},
        },
        400, "bad_request",
    ),
    "unknown parent": (
        "POST", "/v1/sites/acme/snapshots",
        {"files": {}, "parent": "doesnotexist"}, 400, "bad_request",
    ),
    "environment to an unknown snapshot": (
        "PUT", "/v1/sites/acme/environments/production", {"snapshot": "doesnotexist"},
        404, "not_found",
    ),
    "publish of unknown paths": (
        "POST", "/v1/sites/acme/publish", {"paths": ["/nope.html"]}, 400, "bad_request",
    ),
    "publish with a bad body": ("POST", "/v1/sites/acme/publish", {"force": "yes"}, 400,
                                "bad_request"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
async def test_a_bad_push_or_publish_is_refused_and_production_keeps_serving(
    server: EdgeServer, api: Api, visitor: Visitor, case: str
) -> None:
    v1 = await publish_v1(api)
    await api.upload("acme", V2)  # blobs present: only the request itself is bad
    method, path, body, status, code = BAD_REQUESTS[case]
    got, doc = await api.call(method, path, json=body)
    assert got == status, doc
    assert is_error(doc, code), doc
    if code == "missing_blobs":
        assert doc["missing"] == [MISSING]
    await serves(visitor, PRODUCTION_HOST, v1, V1["/index.html"])
    status, envs = await api.call("GET", "/v1/sites/acme/environments")
    assert envs["production"]["snapshot"] == v1
    assert envs["staging"]["snapshot"] == v1


async def test_a_blob_that_does_not_match_its_hash_is_refused(
    server: EdgeServer, api: Api, visitor: Visitor
) -> None:
    v1 = await publish_v1(api)
    status, doc = await api.call("PUT", f"/v1/sites/acme/blobs/{sha(b'one')}", data=b"another")
    assert status == 400 and is_error(doc, "hash_mismatch"), doc
    status, doc = await api.call(
        "POST", "/v1/sites/acme/blobs/missing", json={"sha256": [sha(b"one")]}
    )
    assert doc == {"missing": [sha(b"one")]}
    await serves(visitor, PRODUCTION_HOST, v1, V1["/index.html"])


# -- a full disk ----------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/data`` (edge's data_dir) on an 8 MiB tmpfs of its own."""
    mount = tmp_path / "data"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"a small tmpfs cannot be mounted here (needs root): {result.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk has no byte left; the file (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1):
            for _ in range(10_000):  # bounded: 8 MiB at most is to be filled
                try:
                    os.write(fd, bytes(size))
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return filler


async def put_blob(api: Api, data: bytes) -> tuple[int, Any]:
    """PUT a large blob (streamed: aiohttp warns about large raw byte bodies)."""
    headers = {"Authorization": f"Bearer {api.server.tokens['admin']}"}
    url = f"{api.server.admin_url}/v1/sites/acme/blobs/{sha(data)}"
    async with api.session.put(url, data=io.BytesIO(data), headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


@pytest.fixture
def full_disk_server(tmp_path: Path, small_disk: Path) -> Iterator[EdgeServer]:
    srv = new_server(tmp_path, workers=2)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.timeout(180)
async def test_a_full_disk_refuses_writes_with_507_and_production_keeps_serving(
    full_disk_server: EdgeServer, small_disk: Path
) -> None:
    srv = full_disk_server
    async with aiohttp.ClientSession(skip_auto_headers=["Accept-Encoding"]) as session:
        api, visitor = Api(srv, session), Visitor(srv, session)
        v1 = await publish_v1(api)
        await workers_listening(srv)
        pids = [srv.process.pid if srv.process else 0, *srv.worker_pids()]
        filler = fill(small_disk)

        big = os.urandom(2 << 20)  # larger than anything the store's log can reuse
        status, doc = await put_blob(api, big)
        assert status == 507, doc
        assert is_error(doc, "store_full"), doc
        assert "full" in doc["error"]["message"]
        for _ in range(5):
            await serves(visitor, PRODUCTION_HOST, v1, V1["/index.html"])
        status, doc = await api.call(
            "POST", "/v1/sites/acme/blobs/missing", json={"sha256": [sha(big)]}
        )
        assert doc == {"missing": [sha(big)]}  # nothing half-stored
        assert [srv.process.pid if srv.process else 0, *srv.worker_pids()] == pids

        # A worker that dies now is replaced, and the replacement opens the store
        # on the full disk and serves (opening a current store writes nothing).
        os.kill(pids[1], signal.SIGKILL)
        await workers_listening(srv, count=3)
        for _ in range(10):
            status, snapshot = await fresh_get(srv)
            assert (status, snapshot) == (200, v1)

        # Space comes back: the same edge takes writes again, no restart needed.
        filler.unlink()
        status, doc = await put_blob(api, big)
        assert status == 201, doc
        await api.upload("acme", V2)
        files = {p: {"sha256": sha(b)} for p, b in {**V2, "/big.bin": big}.items()}
        status, doc = await api.call("POST", "/v1/sites/acme/snapshots", json={"files": files})
        assert status == 201, doc
        v2 = doc["id"]
        await api.set_env("acme", "staging", v2)
        status, doc = await api.publish()
        assert status == 200, doc
        await serves(visitor, PRODUCTION_HOST, v2, V2["/index.html"])


# -- a read-only store ------------------------------------------------------------------


@pytest.mark.timeout(180)  # two starts of edge
async def test_a_read_only_store_refuses_writes_with_503_and_keeps_serving(
    server: EdgeServer, api: Api, visitor: Visitor
) -> None:
    v1 = await publish_v1(api)
    v2 = await api.push("acme", V2)
    server.stop()
    server.environ = {TEST_READONLY_ENV: "1"}
    server.start()

    writes: list[tuple[str, str, Any, bytes | None]] = [
        ("PUT", f"/v1/sites/acme/blobs/{sha(b'new')}", None, b"new"),
        ("POST", "/v1/sites/acme/snapshots",
         {"files": {"/index.html": {"sha256": sha(V2["/index.html"])}}}, None),
        ("PUT", "/v1/sites/acme/environments/staging", {"snapshot": v1}, None),
        ("POST", "/v1/sites/acme/publish", {}, None),
        ("POST", "/v1/sites/acme/schedules", {"at": "2030-01-01T00:00:00Z"}, None),
    ]  # fmt: skip
    for method, path, body, data in writes:
        status, doc = await api.call(method, path, json=body, data=data)
        assert status == 503, (path, doc)
        assert is_error(doc, "store_read_only"), doc
        assert "read-only" in doc["error"]["message"]
    # A visitor's form cannot be stored either: 503 with Retry-After, not a 500.
    async with visitor.session.post(
        visitor.server.url + "/_edge/forms/contact",
        json={"name": "Ada"},
        headers={"Host": PRODUCTION_HOST},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"]
    await serves(visitor, PRODUCTION_HOST, v1, V1["/index.html"])
    await serves(visitor, STAGING_HOST, v2, None)
    status, envs = await api.call("GET", "/v1/sites/acme/environments")
    assert (envs["production"]["snapshot"], envs["staging"]["snapshot"]) == (v1, v2)
    assert server.process is not None and server.process.poll() is None
    assert len(server.worker_pids()) == 2


# -- the schedule timer and the shared counters on a failing disk ------------------------


class _Store:
    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.failed: list[str] = []

    async def pending_schedules(self, *, due_by: str | None = None) -> list[Schedule]:
        return [] if self.failed else [self.schedule]

    async def next_schedule_moment(self) -> str | None:
        return None if self.failed else self.schedule.at

    async def fail_schedules(self, site: str, ids: list[str], error: str, events: Any = ()) -> None:
        self.failed.extend(ids)


class _Control:
    async def fire(self, group: list[Schedule]) -> None:
        raise StoreFull("the store's disk is full")


async def test_a_full_disk_keeps_a_due_schedule_pending() -> None:
    """The disk, not the schedule, is the problem: it fires once there is room again."""
    schedule = Schedule(
        id="s1", site="acme", at="2020-01-01T00:00:00.000Z", snapshot="a", base=None,
        created_at="2020-01-01T00:00:00.000Z", actor="test",
    )  # fmt: skip
    store = _Store(schedule)
    delay = await Scheduler(store, _Control()).step()  # type: ignore[arg-type]
    assert store.failed == []
    assert delay >= STORE_RETRY_SECONDS


def test_shared_counters_survive_a_full_disk(small_disk: Path) -> None:
    """Bumping the pointer generation on a full disk must not fault the process (SIGBUS)."""
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from edge.snapshots.generation import SharedCounters
        disk = Path({str(small_disk)!r})
        counters = SharedCounters.for_data_dir(disk)
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        for size in (1 << 20, 1 << 12, 1):
            while True:
                try:
                    os.write(fd, bytes(size))
                except OSError:
                    break
        print(counters.bump_pointers(), counters.bump_schedules())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result
    assert result.stdout.split() == ["1", "1"]
