"""Hostile admin requests that once answered 500 (found by the fuzz run and by probing)."""

from __future__ import annotations

import pytest

from edge.admin_api.schemas import CreateSnapshotRequest, decode
from edge.errors import BadRequest
from edge.snapshots.schedule import parse_moment
from tests.integration.conftest import Api

DEEP = b'{"files": {}, "settings": {"headers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_moment_outside_the_utc_calendar_is_a_bad_request(moment: str) -> None:
    with pytest.raises(BadRequest, match="out of range"):
        parse_moment(moment)


def test_deeply_nested_body_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="nested too deeply"):
        decode(CreateSnapshotRequest, DEEP)


async def test_hostile_bodies_and_queries_get_4xx_with_the_error_body(api: Api) -> None:
    await api.push("acme", {"/index.html": b"<html><head></head>x</html>"})
    json_type = {"Content-Type": "application/json"}
    site = "/v1/sites/acme"
    cases = [
        ("POST", f"{site}/schedules", b'{"at": "0001-01-01T00:00:00+01:00"}', json_type, 400),
        ("POST", f"{site}/schedules", b'{"at": "9999-12-31T23:59:59-01:00"}', json_type, 400),
        ("POST", f"{site}/snapshots", DEEP, json_type, 400),
        ("POST", f"{site}/refresh", b"{}", {"Content-Type": "application/jsonx"}, 415),
        ("POST", f"{site}/refresh", b"{}", {"Content-Type": "text/json"}, 415),
        ("GET", f"{site}/analytics/staging?from=%D9%A2%D9%A0%D9%A2%D9%A6-01-01", None, {}, 400),
        ("GET", f"{site}/analytics/staging?to=2026-01-01%0A", None, {}, 400),
    ]
    for method, path, body, headers, expected in cases:
        status, doc = await api.call(method, path, data=body, headers=headers)
        assert status == expected, (path, body and body[:60], doc)
        assert set(doc["error"]) == {"code", "message"}
    # A charset parameter and upper case still name JSON.
    for ctype in ("application/json; charset=utf-8", "Application/JSON"):
        status, doc = await api.call(
            "POST", "/v1/sites/acme/refresh", data=b"{}", headers={"Content-Type": ctype}
        )
        assert status == 409 or status == 200, (ctype, doc)
