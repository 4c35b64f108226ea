"""The ``edge`` CLI as an operator runs it, against a real server."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import PRODUCTION_HOST, STAGING_HOST, EdgeServer, Visitor


def make_site(root: Path) -> Path:
    site = root / "site"
    (site / "docs").mkdir(parents=True)
    (site / ".git").mkdir()
    (site / "index.html").write_bytes(b"<html><head></head><body>home</body></html>")
    (site / "docs" / "index.html").write_bytes(b"<html><head></head><body>docs</body></html>")
    (site / "style.css").write_bytes(b"body { color: black }")
    (site / ".git" / "config").write_bytes(b"secret")
    (site / ".DS_Store").write_bytes(b"junk")
    return site


async def test_push_publish_status(server: EdgeServer, visitor: Visitor, tmp_path: Path) -> None:
    site = make_site(tmp_path)
    first = server.cli("push", str(site), "--site", "acme", "-m", "first")
    assert first.returncode == 0, first.stderr
    assert "3 files, 3 uploaded" in first.stdout

    again = server.cli("push", str(site), "--site", "acme")
    assert again.returncode == 0, again.stderr
    assert "3 files, 0 uploaded" in again.stdout

    (site / "index.html").write_bytes(b"<html><head></head><body>home v2</body></html>")
    changed = server.cli("push", str(site), "--site", "acme")
    assert "3 files, 1 uploaded" in changed.stdout

    _, _, body = await visitor.get(STAGING_HOST, "/")
    assert b"home v2" in body
    status, _, _ = await visitor.get(STAGING_HOST, "/.git/config")
    assert status == 404

    published = server.cli("publish", "--site", "acme", token="publisher")
    assert published.returncode == 0, published.stderr
    assert "production (none) ->" in published.stdout
    _, headers, body = await visitor.get(PRODUCTION_HOST, "/docs/")
    assert b"docs" in body and "X-Robots-Tag" not in headers

    status = server.cli("status", "--site", "acme")
    assert status.returncode == 0
    assert "staging" in status.stdout and "production" in status.stdout
    assert headers["X-Edge-Snapshot"] in status.stdout


async def test_refused_call_prints_server_message(server: EdgeServer, tmp_path: Path) -> None:
    site = make_site(tmp_path)
    result = server.cli("push", str(site), "--site", "acme", token="other")
    assert result.returncode == 1
    assert "no access to site 'acme'" in result.stderr
    result = server.cli("publish", "--site", "acme", token="editor")
    assert result.returncode == 1
    assert "publisher role" in result.stderr
    result = server.cli("status", "--site", "acme", token="wrong-token")
    assert result.returncode == 1 and "unknown token" in result.stderr


def test_token_new_prints_matching_hash() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge", "token", "new", "--name", "bot", "--sites", "acme"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = dict(
        line.split(":", 1)
        for line in result.stdout.splitlines()
        if line.startswith(("token:", "sha256:"))
    )
    token, digest = lines["token"].strip(), lines["sha256"].strip()
    assert hashlib.sha256(token.encode()).hexdigest() == digest
    assert f'sha256 = "{digest}"' in result.stdout


def test_bad_config_stops_startup_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    cases = {
        '[server]\nlisten = "nope"\n': "server.listen",
        "[server]\ncache_max_bytes = -1\n": "server.cache_max_bytes",
        "[server]\ntypo = 1\n": "typo",
        '[[sites]]\nid = "a"\n[sites.production]\nhosts = ["x.example"]\n'
        '[sites.staging]\nhosts = ["X.example."]\n': "sites[0].staging.hosts[0]",
    }
    for text, key in cases.items():
        config.write_text(text)
        result = subprocess.run(
            [sys.executable, "-m", "edge", "serve", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2, text
        assert key in result.stderr, (text, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


async def test_moving_content_with_the_cli(
    server: EdgeServer, visitor: Visitor, tmp_path: Path
) -> None:
    site = make_site(tmp_path)
    assert server.cli("push", str(site), "--site", "acme").returncode == 0
    assert server.cli("publish", "--site", "acme").returncode == 0

    # An emergency fix straight to production, a conflicting edit on staging.
    fix = tmp_path / "fix"
    fix.mkdir()
    (fix / "index.html").write_bytes(b"<html><head></head><body>FIXED</body></html>")
    (fix / "style.css").write_bytes((site / "style.css").read_bytes())
    (fix / "docs").mkdir()
    (fix / "docs" / "index.html").write_bytes((site / "docs" / "index.html").read_bytes())
    assert server.cli("push", str(fix), "--site", "acme", "--env", "production").returncode == 0
    (site / "index.html").write_bytes(b"<html><head></head><body>staging edit</body></html>")
    (site / "style.css").write_bytes(b"body { color: navy }")
    assert server.cli("push", str(site), "--site", "acme").returncode == 0

    diff = server.cli("diff", "--site", "acme")  # the publish's dry run: it would be refused
    assert diff.returncode == 1
    assert "conflict  /index.html" in diff.stdout and "changed   /style.css" in diff.stdout
    raw = server.cli("diff", "--site", "acme", "--raw")
    assert raw.returncode == 0
    assert "changed  /index.html" in raw.stdout and "changed  /style.css" in raw.stdout

    refused = server.cli("publish", "--site", "acme")
    assert refused.returncode == 1
    assert "/index.html" in refused.stderr and "--force" in refused.stderr

    partial = server.cli("publish", "--site", "acme", "--path", "/style.css")
    assert partial.returncode == 0, partial.stderr
    _, _, css = await visitor.get(PRODUCTION_HOST, "/style.css")
    assert css == b"body { color: navy }"
    _, _, home = await visitor.get(PRODUCTION_HOST, "/")
    assert b"FIXED" in home

    refresh = server.cli("refresh", "--site", "acme")
    assert refresh.returncode == 1 and "/index.html" in refresh.stderr
    assert server.cli("refresh", "--site", "acme", "--force").returncode == 0
    _, _, home = await visitor.get(STAGING_HOST, "/")
    assert b"FIXED" in home

    rollback = server.cli("rollback", "--site", "acme")
    assert rollback.returncode == 0 and "(rollback)" in rollback.stdout
    _, _, css = await visitor.get(PRODUCTION_HOST, "/style.css")
    assert css == b"body { color: black }"

    history = server.cli("history", "--site", "acme", "--env", "production")
    actions = [line.split()[2] for line in history.stdout.splitlines()[1:]]
    assert actions == ["rollback", "publish", "push", "publish"]

    bad = server.cli("schedule", "2030-01-01T10:00:00", "--site", "acme")
    assert bad.returncode == 1 and "offset" in bad.stderr
    scheduled = server.cli("schedule", "2030-01-01T10:00:00+01:00", "--site", "acme")
    assert scheduled.returncode == 0, scheduled.stderr
    schedule_id = scheduled.stdout.split()[2].rstrip(":")
    listing = server.cli("schedules", "--site", "acme")
    assert schedule_id in listing.stdout and "2030-01-01T09:00:00.000Z" in listing.stdout
    assert server.cli("unschedule", schedule_id, "--site", "acme").returncode == 0
    listing = server.cli("schedules", "--site", "acme", "--status", "cancelled")
    assert schedule_id in listing.stdout


async def test_push_keeps_settings_and_deletes_removed_files(
    server: EdgeServer, visitor: Visitor, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_bytes(b"<html><body>home</body></html>")
    (site / "old.html").write_bytes(b"<html><body>old</body></html>")
    settings = {"redirects": [{"from": "/legacy", "to": "/", "status": 301}]}
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    result = server.cli(
        "push", str(site), "--site", "acme", "--settings", str(tmp_path / "settings.json")
    )
    assert result.returncode == 0, result.stderr
    (site / "old.html").unlink()
    result = server.cli("push", str(site), "--site", "acme")
    assert result.returncode == 0, result.stderr
    status, headers, _ = await visitor.get(STAGING_HOST, "/legacy")
    assert status == 301 and headers["Location"] == "/"
    status, _, _ = await visitor.get(STAGING_HOST, "/old.html")
    assert status == 404
