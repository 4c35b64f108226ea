"""The publish dry run against a real ``edge serve`` (issue 15, item 2).

Under drift (an emergency fix pushed to production) a plain manifest diff from
production to staging says the fix would be removed, but the publish keeps it:
the dry run runs the publish's own merge and moves nothing.
"""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import PRODUCTION_HOST, Api, Visitor
from tests.integration.test_promotion import SITE, emergency_fix, envs, page


async def history(api: Api) -> list[Any]:
    status, doc = await api.call("GET", "/v1/sites/acme/history")
    assert status == 200
    return list(doc["history"])


async def test_dry_run_under_drift_keeps_the_production_fix_and_moves_nothing(
    api: Api, visitor: Visitor
) -> None:
    await api.push("acme", SITE)
    await api.publish()
    await emergency_fix(api, "/promo.html", page("promo"))
    await api.push("acme", {**SITE, "/pricing.html": page("pricing v2"), "/new.html": page("n")})
    before, moves = await envs(api), await history(api)

    status, raw = await api.call("GET", "/v1/sites/acme/diff")
    assert status == 200 and raw["removed"] == ["/promo.html"]  # what misled the operator

    status, doc = await api.publish(dry_run=True)
    assert status == 200, doc
    assert doc == {
        "dry_run": True,
        "production": before["production"]["snapshot"],
        "staging": before["staging"]["snapshot"],
        "action": "merge-publish",
        "added": ["/new.html"],
        "removed": [],
        "changed": ["/pricing.html"],
        "settings_changed": False,
        "kept": ["/promo.html"],
        "conflicts": [],
    }
    assert await envs(api) == before and await history(api) == moves  # nothing moved
    status, _, _ = await visitor.get(PRODUCTION_HOST, "/new.html")
    assert status == 404

    # The real publish does what the dry run said.
    status, published = await api.publish()
    assert status == 200 and published["action"] == "merge-publish"
    status, after = await api.call(
        "GET", f"/v1/sites/acme/diff?from={before['production']['snapshot']}&to=production"
    )
    assert (after["added"], after["removed"], after["changed"]) == (
        ["/new.html"],
        [],
        ["/pricing.html"],
    )


async def test_dry_run_answers_the_drift_refusal_a_publish_would_give(api: Api) -> None:
    await api.push("acme", SITE)
    await api.publish()
    await emergency_fix(api, "/about.html", page("about FIXED"))
    await emergency_fix(api, "/promo.html", page("promo"))
    await api.push("acme", {**SITE, "/about.html": page("about v2")})
    before = await envs(api)

    real_status, real = await api.call(
        "POST", "/v1/sites/acme/publish", json={}, headers={"If-Match": "*"}
    )
    status, doc = await api.publish(dry_run=True)
    assert (status, real_status) == (409, 409)
    assert doc["error"] == real["error"] and doc["error"]["code"] == "drift"
    assert doc["conflicts"] == real["conflicts"] == ["/about.html"]
    assert doc["dry_run"] is True
    forced = doc["if_forced"]  # what `force` would do: staging's version wins the conflict
    assert (forced["changed"], forced["kept"], forced["conflicts"]) == (
        ["/about.html"],
        ["/promo.html"],
        ["/about.html"],
    )

    status, doc = await api.publish(dry_run=True, force=True)
    assert status == 200 and doc["conflicts"] == ["/about.html"] and doc == forced
    assert await envs(api) == before


async def test_dry_run_takes_every_publish_option(api: Api) -> None:
    await api.push("acme", SITE)
    await api.publish()
    await api.push("acme", {"/index.html": page("home v2"), "/extra.html": page("x")})
    before = await envs(api)

    status, doc = await api.publish(dry_run=True, paths=["/index.html", "/about.html"])
    assert status == 200, doc
    assert (doc["action"], doc["added"], doc["removed"], doc["changed"]) == (
        "publish",
        [],
        ["/about.html"],  # absent from staging: a partial publish removes it
        ["/index.html"],
    )
    status, doc = await api.publish(dry_run=True)  # a fast-forward
    assert status == 200
    assert (doc["action"], doc["added"], doc["kept"]) == ("publish", ["/extra.html"], [])
    assert sorted(doc["removed"]) == ["/about.html", "/pricing.html"]
    status, doc = await api.call(
        "POST", "/v1/sites/acme/publish", json={"dry_run": True}, headers={"If-Match": '"stale"'}
    )
    assert status == 412, doc
    status, doc = await api.publish(dry_run=True, paths=["/nowhere.html"])
    assert status == 400 and doc["paths"] == ["/nowhere.html"]
    status, doc = await api.call(
        "POST", "/v1/sites/acme/publish", json={"dry_run": True}, as_="editor"
    )
    assert status == 403  # a preview of a publish needs the publisher role too
    assert await envs(api) == before


async def test_dry_run_when_nothing_would_move(api: Api) -> None:
    await api.push("acme", SITE)
    await api.publish()
    status, doc = await api.publish(dry_run=True)
    assert status == 200
    assert (doc["action"], doc["added"], doc["removed"], doc["changed"]) == (None, [], [], [])
