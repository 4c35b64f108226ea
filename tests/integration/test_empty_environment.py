"""An environment is never emptied by accident (issue 15, item 3).

``edge push ./empty-dir --env production`` used to succeed and the live site then
answered 404 for every path. A push or ``PUT environments`` to a snapshot with no
files is refused (409 ``empty_environment``) unless explicitly allowed.
"""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import PRODUCTION_HOST, Api, EdgeServer, Visitor
from tests.integration.test_promotion import SITE


async def test_put_environment_refuses_an_empty_snapshot_unless_allowed(
    api: Api, visitor: Visitor
) -> None:
    await api.push("acme", SITE, env="production")
    empty = await api.snapshot("acme", {})
    for env in ("production", "staging"):
        status, doc = await api.call(
            "PUT", f"/v1/sites/acme/environments/{env}", json={"snapshot": empty}
        )
        assert status == 409, doc
        assert doc["error"]["code"] == "empty_environment"
        assert "allow_empty" in doc["error"]["message"]
    status, _, _ = await visitor.get(PRODUCTION_HOST, "/index.html")
    assert status == 200  # the live site is untouched

    status, doc = await api.call(
        "PUT",
        "/v1/sites/acme/environments/staging",
        json={"snapshot": empty, "allow_empty": True},
    )
    assert status == 200, doc
    assert doc["staging"]["snapshot"] == empty


async def test_cli_push_of_an_empty_directory_is_refused_unless_allowed(
    server: EdgeServer, api: Api, visitor: Visitor, tmp_path: Path
) -> None:
    await api.push("acme", SITE, env="production")
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    refused = server.cli("push", str(empty), "--site", "acme", "--env", "production")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"error: {empty} holds no files: production would answer 404 for every path"
        " (pass --allow-empty if that is what you mean)"
    )
    status, _, _ = await visitor.get(PRODUCTION_HOST, "/index.html")
    assert status == 200

    allowed = server.cli(
        "push", str(empty), "--site", "acme", "--env", "production", "--allow-empty"
    )
    assert allowed.returncode == 0, allowed.stderr
    status, _, _ = await visitor.get(PRODUCTION_HOST, "/index.html")
    assert status == 404
