"""A second node started under a ``node_name`` that is live in the registry refuses (issue 15)."""

from __future__ import annotations

import subprocess
import sys

from tests.cluster.conftest import MakeCluster
from tests.integration.conftest import free_port


def test_a_node_name_live_in_the_registry_is_refused(make_cluster: MakeCluster) -> None:
    first = make_cluster(("a",))["a"]
    # Another machine's node (its own ports and data_dir) configured with the same name.
    clone = first.root.parent / "clone"
    clone.mkdir()
    config = (
        first.config_path.read_text()
        .replace(f"127.0.0.1:{first.port}", f"127.0.0.1:{free_port()}")
        .replace(f"127.0.0.1:{first.admin_port}", f"127.0.0.1:{free_port()}")
    )
    (clone / "edge.toml").write_text(config)  # data_dir "data": relative to clone/
    done = subprocess.run(
        [sys.executable, "-m", "edge", "serve", "--config", str(clone / "edge.toml"),
         "--workers", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    line = done.stderr.strip()
    assert "\n" not in line, line
    assert line.startswith(
        "error: store.node_name 'node-a' is held by a running edge node (last heartbeat "
    ), line
