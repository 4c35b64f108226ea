"""Promotion workflows against a real ``edge serve`` (SPEC §4, issue: promotion)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.conftest import PRODUCTION_HOST, STAGING_HOST, Api, EdgeServer, Visitor
from tests.waiting import eventually


def page(text: str) -> bytes:
    return f"<html><head></head><body>{text}</body></html>".encode()


SITE = {
    "/index.html": page("home v1"),
    "/about.html": page("about v1"),
    "/pricing.html": page("pricing v1"),
}


async def envs(api: Api) -> dict[str, Any]:
    status, doc = await api.call("GET", "/v1/sites/acme/environments")
    assert status == 200
    return doc


async def emergency_fix(api: Api, path: str, body: bytes) -> str:
    """Edit one page directly on production (parent = production)."""
    production = (await envs(api))["production"]["snapshot"]
    await api.upload("acme", {path: body})
    status, doc = await api.call(
        "POST",
        "/v1/sites/acme/snapshots",
        json={"parent": production, "files": {path: {"sha256": hashlib.sha256(body).hexdigest()}}},
    )
    assert status == 201, doc
    await api.set_env("acme", "production", doc["id"])
    return str(doc["id"])


async def body_of(visitor: Visitor, host: str, path: str) -> bytes:
    status, _, body = await visitor.get(host, path)
    return body if status == 200 else b""


async def test_emergency_fix_survives_publish(api: Api, visitor: Visitor) -> None:
    await api.push("acme", SITE)
    await api.publish()
    await emergency_fix(api, "/about.html", page("about FIXED"))
    # Meanwhile staging worked on another page, starting from the old production.
    await api.push("acme", {**SITE, "/pricing.html": page("pricing v2")})

    status, doc = await api.publish()
    assert status == 200, doc
    assert doc["action"] == "merge-publish"
    assert b"about FIXED" in await body_of(visitor, PRODUCTION_HOST, "/about")
    assert b"pricing v2" in await body_of(visitor, PRODUCTION_HOST, "/pricing")
    # Staging follows the merged snapshot, so the next publish cannot revert the fix.
    state = await envs(api)
    assert state["staging"]["snapshot"] == state["production"]["snapshot"] == doc["production"]
    assert state["staging"]["base"] == doc["production"]
    assert b"about FIXED" in await body_of(visitor, STAGING_HOST, "/about")
    status, history = await api.call("GET", "/v1/sites/acme/history?env=production")
    assert history["history"][0]["action"] == "merge-publish"


async def test_same_page_changed_on_both_sides_is_a_conflict(api: Api, visitor: Visitor) -> None:
    await api.push("acme", SITE)
    await api.publish()
    fix = await emergency_fix(api, "/about.html", page("about FIXED"))
    await api.push("acme", {**SITE, "/about.html": page("about v2"), "/new.html": page("new")})
    before = await envs(api)

    status, doc = await api.publish()
    assert status == 409
    assert doc["error"]["code"] == "drift"
    assert doc["conflicts"] == ["/about.html"]
    assert await envs(api) == before
    assert b"about FIXED" in await body_of(visitor, PRODUCTION_HOST, "/about")
    status, _, _ = await visitor.get(PRODUCTION_HOST, "/new")
    assert status == 404

    status, doc = await api.publish(force=True)
    assert status == 200, doc
    assert b"about v2" in await body_of(visitor, PRODUCTION_HOST, "/about")
    assert b"new" in await body_of(visitor, PRODUCTION_HOST, "/new")
    assert doc["previous"] == fix


async def test_identical_change_on_both_sides_is_no_conflict(api: Api, visitor: Visitor) -> None:
    await api.push("acme", SITE)
    await api.publish()
    await emergency_fix(api, "/about.html", page("about FIXED"))
    await api.push("acme", {**SITE, "/about.html": page("about FIXED")})
    status, doc = await api.publish()
    assert status == 200, doc


async def test_partial_publish(api: Api, visitor: Visitor) -> None:
    await api.push("acme", SITE)
    await api.publish()
    staged = {**SITE, "/about.html": page("about v2"), "/pricing.html": page("pricing v2")}
    del staged["/index.html"]
    await api.push("acme", staged)

    status, doc = await api.publish(paths=["/about.html", "/index.html"])
    assert status == 200, doc
    assert b"about v2" in await body_of(visitor, PRODUCTION_HOST, "/about")
    assert b"pricing v1" in await body_of(visitor, PRODUCTION_HOST, "/pricing")
    status, _, _ = await visitor.get(PRODUCTION_HOST, "/index.html")
    assert status == 404  # absent in staging: removed from production
    # Staging is untouched; the rest publishes later without a conflict.
    status, doc = await api.publish()
    assert status == 200, doc
    assert b"pricing v2" in await body_of(visitor, PRODUCTION_HOST, "/pricing")

    status, doc = await api.publish(paths=["/no-such-page.html"])
    assert status == 400


async def test_settings_publish_as_a_piece(api: Api) -> None:
    snap = await api.snapshot("acme", SITE, settings={"media_prefix": "/media/"})
    await api.set_env("acme", "staging", snap)
    await api.publish()
    changed = await api.snapshot(
        "acme", {**SITE, "/about.html": page("about v2")}, settings={"media_prefix": "/assets/"}
    )
    await api.set_env("acme", "staging", changed)
    status, doc = await api.publish(paths=[], settings=True)
    assert status == 200, doc
    status, manifest = await api.call("GET", f"/v1/sites/acme/snapshots/{doc['production']}")
    assert manifest["settings"] == {"media_prefix": "/assets/"}
    assert (
        manifest["files"]["/about.html"]["sha256"]
        != (await api.call("GET", f"/v1/sites/acme/snapshots/{changed}"))[1]["files"][
            "/about.html"
        ]["sha256"]
    )


async def test_refresh_guard_and_force(api: Api, visitor: Visitor) -> None:
    await api.push("acme", SITE)
    await api.publish()
    fix = await emergency_fix(api, "/about.html", page("about FIXED"))
    # Staging has no work of its own: refresh just takes production.
    status, doc = await api.call("POST", "/v1/sites/acme/refresh", json={})
    assert status == 200, doc
    assert doc["staging"] == fix
    assert b"about FIXED" in await body_of(visitor, STAGING_HOST, "/about")

    work = await api.push(
        "acme", {**SITE, "/about.html": page("about FIXED"), "/pricing.html": page("pricing v2")}
    )
    status, doc = await api.call("POST", "/v1/sites/acme/refresh", json={})
    assert status == 409
    assert doc["paths"] == ["/pricing.html"]
    assert (await envs(api))["staging"]["snapshot"] == work

    status, doc = await api.call("POST", "/v1/sites/acme/refresh", json={"force": True})
    assert status == 200 and doc["staging"] == fix and doc["previous"] == work
    status, history = await api.call("GET", "/v1/sites/acme/history?env=staging")
    assert history["history"][0]["from"] == work  # nothing is lost


async def test_rollback_and_roll_forward(api: Api, visitor: Visitor) -> None:
    one = await api.push("acme", {"/index.html": page("one")})
    await api.publish()
    two = await api.push("acme", {"/index.html": page("two")})
    await api.publish()
    status, doc = await api.call("POST", "/v1/sites/acme/rollback", json={})
    assert status == 200 and doc["production"] == one and doc["previous"] == two
    assert b"one" in await body_of(visitor, PRODUCTION_HOST, "/")
    status, doc = await api.call("POST", "/v1/sites/acme/rollback", json={})
    assert doc["production"] == two
    assert b"two" in await body_of(visitor, PRODUCTION_HOST, "/")
    status, doc = await api.call("POST", "/v1/sites/acme/rollback", json={"to": one})
    assert status == 200 and doc["production"] == one
    status, doc = await api.call("POST", "/v1/sites/acme/rollback", json={"to": "zzzzzzzz"})
    assert status == 404
    never = await api.snapshot("acme", {"/index.html": page("never")})
    status, doc = await api.call("POST", "/v1/sites/acme/rollback", json={"to": never})
    assert status == 409
    status, history = await api.call("GET", "/v1/sites/acme/history?env=production")
    assert [h["action"] for h in history["history"]] == [
        "rollback",
        "rollback",
        "rollback",
        "publish",
        "publish",
    ]


async def test_if_match_guards_concurrent_operators(api: Api) -> None:
    await api.push("acme", SITE)
    async with api.session.get(
        api.server.admin_url + "/v1/sites/acme/environments",
        headers={"Authorization": f"Bearer {api.server.tokens['admin']}"},
    ) as resp:
        etag = resp.headers["ETag"]
    await api.push("acme", {**SITE, "/about.html": page("someone else")})
    for path in ("publish", "refresh", "rollback"):
        status, doc = await api.call(
            "POST", f"/v1/sites/acme/{path}", json={}, headers={"If-Match": etag}
        )
        assert status == 412, (path, doc)
    status, doc = await api.call(
        "POST", "/v1/sites/acme/publish", json={}, headers={"If-Match": doc["etag"]}
    )
    assert status == 200, doc


async def test_diff_between_environments(api: Api) -> None:
    await api.push("acme", SITE)
    await api.publish()
    staged = {**SITE, "/about.html": page("about v2"), "/new.html": page("new")}
    del staged["/pricing.html"]
    await api.push("acme", staged)
    status, doc = await api.call("GET", "/v1/sites/acme/diff?from=production&to=staging")
    assert status == 200
    assert (doc["added"], doc["removed"], doc["changed"]) == (
        ["/new.html"],
        ["/pricing.html"],
        ["/about.html"],
    )
    assert doc["settings_changed"] is False


def moment(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def test_coordinated_launch_is_one_swap(api: Api, visitor: Visitor) -> None:
    await api.push("acme", SITE)
    await api.publish()
    at = moment(1.5)
    # Three pieces reviewed on staging one after another, all for the same moment.
    await api.push("acme", {**SITE, "/about.html": page("about launch")})
    status, s1 = await api.call(
        "POST", "/v1/sites/acme/schedules", json={"at": at, "paths": ["/about.html"]}
    )
    assert status == 201, s1
    await api.push("acme", {**SITE, "/pricing.html": page("pricing launch")})
    await api.call("POST", "/v1/sites/acme/schedules", json={"at": at, "paths": ["/pricing.html"]})
    await api.push("acme", {**SITE, "/launch.html": page("launch")})
    await api.call("POST", "/v1/sites/acme/schedules", json={"at": at, "paths": ["/launch.html"]})
    assert b"about v1" in await body_of(visitor, PRODUCTION_HOST, "/about")

    async def launched() -> bool:
        return b"launch" in await body_of(visitor, PRODUCTION_HOST, "/launch")

    await eventually(launched, what="the launch")
    assert b"about launch" in await body_of(visitor, PRODUCTION_HOST, "/about")
    assert b"pricing launch" in await body_of(visitor, PRODUCTION_HOST, "/pricing")
    status, history = await api.call("GET", "/v1/sites/acme/history?env=production")
    assert [h["action"] for h in history["history"]] == ["schedule", "publish"]
    status, listing = await api.call("GET", "/v1/sites/acme/schedules")
    assert [s["status"] for s in listing["schedules"]] == ["done"] * 3


async def test_schedule_due_while_stopped_fires_once_on_restart(
    server: EdgeServer, api: Api, visitor: Visitor
) -> None:
    await api.push("acme", SITE)
    await api.publish()
    staged = await api.push("acme", {**SITE, "/index.html": page("home v2")})
    status, s = await api.call("POST", "/v1/sites/acme/schedules", json={"at": moment(2)})
    assert status == 201 and s["snapshot"] == staged
    server.stop()
    due = datetime.fromisoformat(s["at"])
    await eventually(lambda: datetime.now(UTC) > due, what="the moment passing while stopped")
    server.start()

    async def fired() -> bool:
        return b"home v2" in await body_of(visitor, PRODUCTION_HOST, "/")

    await eventually(fired, what="the overdue schedule")
    server.restart()
    status, history = await api.call("GET", "/v1/sites/acme/history?env=production")
    assert [h["action"] for h in history["history"]] == ["schedule", "publish"]
    status, one = await api.call("GET", f"/v1/sites/acme/schedules/{s['id']}")
    assert one["status"] == "done"


async def test_schedule_validation_cancel_and_failure(api: Api, visitor: Visitor) -> None:
    status, _ = await api.call("POST", "/v1/sites/acme/schedules", json={"at": moment(60)})
    assert status == 409  # staging has nothing to schedule
    await api.push("acme", SITE)
    await api.publish()
    for bad in ("2026-12-01T10:00:00", "tomorrow", ""):
        status, _doc = await api.call("POST", "/v1/sites/acme/schedules", json={"at": bad})
        assert status == 400, bad
    status, s = await api.call("POST", "/v1/sites/acme/schedules", json={"at": moment(60)})
    status, _ = await api.call("DELETE", f"/v1/sites/acme/schedules/{s['id']}")
    assert status == 204
    status, _ = await api.call("DELETE", f"/v1/sites/acme/schedules/{s['id']}")
    assert status == 409
    status, _ = await api.call("DELETE", "/v1/sites/acme/schedules/nope")
    assert status == 404

    # A schedule whose content conflicts with production at fire time fails visibly.
    await api.push("acme", {**SITE, "/about.html": page("about v2")})
    status, s = await api.call("POST", "/v1/sites/acme/schedules", json={"at": moment(1)})
    await emergency_fix(api, "/about.html", page("about FIXED"))

    async def failed() -> bool:
        _, one = await api.call("GET", f"/v1/sites/acme/schedules/{s['id']}")
        return bool(one["status"] == "failed")

    await eventually(failed, what="the schedule failing")
    _, one = await api.call("GET", f"/v1/sites/acme/schedules/{s['id']}")
    assert "/about.html" in one["error"]
    assert b"about FIXED" in await body_of(visitor, PRODUCTION_HOST, "/about")


async def push_on_top(api: Api, files: dict[str, bytes]) -> str:
    """Push as `edge push` does: on top of staging's snapshot (lineage via parent)."""
    _, envs = await api.call("GET", "/v1/sites/acme/environments")
    parent = envs["staging"]["snapshot"]
    body: dict[str, object] = {}
    if parent is not None:
        _, manifest = await api.call("GET", f"/v1/sites/acme/snapshots/{parent}")
        body = {"parent": parent, "delete": sorted(set(manifest["files"]) - set(files))}
    snap = await api.snapshot("acme", files, **body)
    await api.set_env("acme", "staging", snap)
    return snap


async def test_no_false_drift_after_launches_and_partial_publishes(
    api: Api, visitor: Visitor
) -> None:
    await push_on_top(api, {"/index.html": page("v0"), "/about.html": page("a0")})
    await api.publish()
    # Launch A at T1, then edit the same page and launch B at T2.
    await push_on_top(api, {"/index.html": page("A"), "/about.html": page("a0")})
    await api.call("POST", "/v1/sites/acme/schedules", json={"at": moment(1.0)})
    await push_on_top(api, {"/index.html": page("B"), "/about.html": page("a0")})
    await api.call("POST", "/v1/sites/acme/schedules", json={"at": moment(2.0)})

    async def schedules() -> list[str]:
        _, doc = await api.call("GET", "/v1/sites/acme/schedules")
        return [s["status"] for s in doc["schedules"]]

    statuses = await eventually(
        schedules, lambda found: "pending" not in found, what="both launches"
    )
    assert statuses == ["done", "done"]
    _, _, body = await visitor.get(PRODUCTION_HOST, "/")
    assert b"B" in body

    # A partial publish, then another edit of that path: no conflict either.
    await push_on_top(api, {"/index.html": page("B"), "/about.html": page("a1")})
    status, doc = await api.publish(paths=["/about.html"])
    assert status == 200, doc
    await push_on_top(api, {"/index.html": page("B"), "/about.html": page("a2")})
    status, doc = await api.publish()
    assert status == 200, doc
    _, _, body = await visitor.get(PRODUCTION_HOST, "/about")
    assert b"a2" in body


async def test_rollback_then_publish_keeps_stagings_work(api: Api, visitor: Visitor) -> None:
    await api.push("acme", {"/index.html": page("s0"), "/a.html": page("a0")})
    await api.publish()
    await api.push("acme", {"/index.html": page("s1"), "/a.html": page("a1")})
    await api.publish()
    await api.push("acme", {"/index.html": page("s2"), "/a.html": page("a1")})
    status, _ = await api.call("POST", "/v1/sites/acme/rollback", json={})
    assert status == 200
    status, doc = await api.publish()
    assert status == 200, doc
    _, _, body = await visitor.get(PRODUCTION_HOST, "/a.html")
    assert b"a1" in body  # the rolled-back publish's work is staging's, published again
    _, _, body = await visitor.get(PRODUCTION_HOST, "/")
    assert b"s2" in body
