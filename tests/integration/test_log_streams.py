"""One format per stream, admin access lines governed by ``access_log`` (issue 15, item 9).

``edge serve`` used to write three formats to stderr (Python logging text,
aiohttp's access lines for every admin call, JSON events), and the admin lines
appeared even with ``access_log = "off"``.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import orjson

from tests.integration.conftest import PRODUCTION_HOST, Api, EdgeServer, Visitor
from tests.integration.test_logs import events, make_server, wait_lines

__all__ = ["make_server"]  # a fixture


async def test_stderr_is_json_lines_only_and_admin_calls_are_not_logged_when_off(
    make_server: Callable[..., EdgeServer], fresh: aiohttp.ClientSession
) -> None:
    server = make_server("")  # access_log "off", every log on stderr
    api, visitor = Api(server, fresh), Visitor(server, fresh)
    await api.push("acme", {"/index.html": b"<html><head></head><body>x</body></html>"})
    await api.publish()
    await api.call("GET", "/v1/sites/acme/history?limit=5")
    await api.call("GET", "/v1/sites/acme/environments", as_="")  # refused: an event
    assert (await visitor.get(PRODUCTION_HOST, "/"))[0] == 200
    assert server.stop() == 0

    raw = [line for line in server.log().splitlines() if line.strip()]
    docs = [orjson.loads(line) for line in raw]  # every line is JSON: nothing else
    assert all({"ts", "event"} <= set(doc) for doc in docs)
    kinds = {doc["event"] for doc in docs}
    assert {"log", "pointer.moved", "admin.refused"} <= kinds
    assert "admin.access" not in kinds and "access" not in kinds
    started = [d for d in docs if d["event"] == "log" and "visitors on http" in d["message"]]
    assert started and started[0]["level"] == "info" and started[0]["logger"] == "edge"
    assert not any("/v1/sites" in d.get("message", "") for d in docs)  # no aiohttp access line


async def test_admin_calls_are_access_lines_when_access_log_is_on(
    make_server: Callable[..., EdgeServer], fresh: aiohttp.ClientSession
) -> None:
    server = make_server('access_log = "full"\naccess_log_file = "access.log"')
    api = Api(server, fresh)
    status, _ = await api.call("GET", "/v1/sites/acme/history?limit=5&secret=x")
    assert status == 200
    found = await wait_lines(server.root / "access.log", lambda f: bool(events(f, "admin.access")))
    line = events(found, "admin.access")[0]
    assert (line["method"], line["path"], line["status"]) == (
        "GET",
        "/v1/sites/acme/history",
        200,
    )
    assert line["remote"] == "127.0.0.1" and line["bytes"] > 0
    assert b"secret=x" not in (server.root / "access.log").read_bytes()
    assert "/v1/sites/acme/history" not in server.log()  # not on stderr as well
