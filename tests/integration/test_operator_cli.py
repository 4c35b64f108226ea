"""The CLI a new operator meets, against a real ``edge serve`` (issue 15, items 2, 5-8)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from edge.admin_api.auth import new_token
from tests.integration import conftest
from tests.integration.conftest import Api, EdgeServer, free_port
from tests.integration.test_promotion import SITE, emergency_fix, page


def edge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=60,
        env=env,
    )  # fmt: skip


def test_token_new_writes_the_sites_given_comma_separated_or_repeated() -> None:
    done = edge("token", "new", "--name", "bot", "--sites", "acme,blog", "--sites", "shop")
    assert done.returncode == 0, done.stderr
    block = done.stdout[done.stdout.index("[[tokens]]") :]
    token = tomllib.loads(block)["tokens"][0]
    assert token["sites"] == ["acme", "blog", "shop"]
    assert token["name"] == "bot" and token["role"] == "publisher"
    secret = done.stdout.split("token:", 1)[1].split()[0]
    assert hashlib.sha256(secret.encode()).hexdigest() == token["sha256"]
    every = edge("token", "new", "--name", "ops", "--role", "admin", "--all-sites")
    assert tomllib.loads(every.stdout[every.stdout.index("[[tokens]]") :])["tokens"][0][
        "sites"
    ] == ["*"]
    for argv in (["--name", "bot"], ["--sites", "acme"]):
        refused = edge("token", "new", *argv)
        assert refused.returncode == 2 and "[[tokens]]" not in refused.stdout


def test_unreachable_admin_api_is_said_in_words(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = edge(
        "status", "--site", "acme", env={"EDGE_ADMIN_URL": url, "EDGE_TOKEN": "x", "PATH": ""}
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: cannot reach the admin API at {url}: connection refused"
        " (is edge serve running? EDGE_ADMIN_URL?)"
    )


@pytest.fixture
def everywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> EdgeServer:
    """A server with one more token: an editor that may see every site."""
    monkeypatch.setitem(conftest.ROLES, "everywhere", ("editor", ["*"]))
    srv = EdgeServer(root=tmp_path, tokens={name: new_token()[0] for name in conftest.ROLES})
    return srv


async def test_unknown_site_is_404_to_a_token_seeing_every_site(everywhere: EdgeServer) -> None:
    everywhere.start()
    try:
        for token in ("everywhere", "admin"):
            done = everywhere.cli("status", "--site", "nosuchsite", token=token)
            assert done.returncode == 1
            assert "no site 'nosuchsite' (HTTP 404, unknown_site)" in done.stderr, token
        scoped = everywhere.cli("status", "--site", "nosuchsite", token="editor")
        assert "(HTTP 403, forbidden)" in scoped.stderr  # learns nothing about other sites
    finally:
        everywhere.stop()


async def test_push_message_is_shown_in_history_and_status(
    server: EdgeServer, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html><head></head><body>hi</body></html>")
    done = server.cli("push", str(site), "--site", "acme", "-m", "spring sale banner")
    assert done.returncode == 0, done.stderr
    history = server.cli("history", "--site", "acme")
    assert history.stdout.splitlines()[0].split()[-1] == "message"
    assert history.stdout.splitlines()[1].endswith("spring sale banner")
    status = server.cli("status", "--site", "acme")
    staging = next(line for line in status.stdout.splitlines() if line.startswith("staging"))
    assert staging.endswith("spring sale banner")


async def test_sites_lists_what_the_token_sees_with_both_pointers(
    server: EdgeServer, api: Api
) -> None:
    staging = await api.push("acme", SITE)
    done = server.cli("sites", token="publisher")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "token publisher (publisher, its sites)"
    assert lines[1].split() == [
        "site",
        "staging",
        "production",
        "production",
        "hosts",
        "staging",
        "hosts",
    ]
    assert lines[2].split()[:3] == ["acme", staging, "-"]
    assert "acme.example" in lines[2] and len(lines) == 3  # not the other site
    admin = server.cli("sites", token="admin")
    assert {line.split()[0] for line in admin.stdout.splitlines()[2:]} == {"acme", "other"}


async def test_diff_shows_the_publish_dry_run_and_raw_the_manifest_diff(
    server: EdgeServer, api: Api
) -> None:
    await api.push("acme", SITE)
    await api.publish()
    await emergency_fix(api, "/promo.html", page("promo"))
    await api.push("acme", {**SITE, "/pricing.html": page("pricing v2")})
    before = await api.call("GET", "/v1/sites/acme/environments")

    diff = server.cli("diff", "--site", "acme")
    assert diff.returncode == 0, diff.stderr
    rows = [line.split()[:2] for line in diff.stdout.splitlines()[2:]]
    assert rows == [["changed", "/pricing.html"], ["kept", "/promo.html"]]
    assert "nothing moved" in diff.stdout.splitlines()[0]

    dry = server.cli("publish", "--site", "acme", "--dry-run", token="publisher")
    assert dry.stdout == diff.stdout
    raw = server.cli("diff", "--site", "acme", "--raw")
    assert ["removed", "/promo.html"] in [line.split() for line in raw.stdout.splitlines()]
    assert await api.call("GET", "/v1/sites/acme/environments") == before

    # Under a conflict the dry run says the publish would be refused, and what --force does.
    await emergency_fix(api, "/pricing.html", page("pricing FIX"))
    refused = server.cli("diff", "--site", "acme")
    assert refused.returncode == 1
    assert "would be REFUSED (drift)" in refused.stdout
    assert ["conflict", "/pricing.html"] in [
        line.split()[:2] for line in refused.stdout.splitlines()
    ]
    assert "--force" in refused.stderr
