"""A second ``edge serve`` on what a running edge holds refuses to start (issue 15).

With ``SO_REUSEPORT`` a second server could bind the same ports and split the
visitors between two edges; on one ``data_dir`` two servers would share a store
and overwrite each other's pid file.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from edge.admin_api.auth import new_token
from tests.integration.conftest import ROLES, EdgeServer, free_port


def _second(root: Path, first: EdgeServer, **changes: int) -> EdgeServer:
    other = EdgeServer(
        root=root,
        tokens={name: new_token()[0] for name in ROLES},
        port=changes.get("port", first.port),
        admin_port=changes.get("admin_port", first.admin_port),
    )
    other.write_config()
    return other


def _serve(config: Path, workers: int = 2) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", "serve", "--config", str(config), "--workers", str(workers)],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_second_edge_on_the_same_ports_refuses_and_visitors_keep_one_server(
    server: EdgeServer, tmp_path: Path
) -> None:
    other_root = tmp_path / "second"
    other_root.mkdir()
    second = _second(other_root, server)  # another data_dir, the same two ports
    done = _serve(second.config_path)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"error: server.listen 127.0.0.1:{server.port} is held by a running edge"
        f" (pid {server.process.pid}); stop it first or choose another port"  # type: ignore[union-attr]
    ]
    # Nothing of the second one serves: every visitor gets the first edge's answer.
    async with aiohttp.ClientSession() as session:
        for _ in range(20):
            async with session.get(server.url + "/", headers={"Host": "acme.example"}) as resp:
                assert resp.status == 503  # the first edge: no snapshot yet, never a 421/other
                assert resp.headers["X-Edge-Env"] == "production"


async def test_second_edge_on_the_same_admin_port_refuses(
    server: EdgeServer, tmp_path: Path
) -> None:
    other_root = tmp_path / "second"
    other_root.mkdir()
    second = _second(other_root, server, port=free_port())
    done = _serve(second.config_path, workers=1)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: server.admin_listen 127.0.0.1:{server.admin_port} is held by a running edge"
        f" (pid {server.process.pid}); stop it first or choose another port"  # type: ignore[union-attr]
    )


async def test_second_edge_on_the_same_data_dir_refuses_and_keeps_the_pid_file(
    server: EdgeServer,
) -> None:
    pid_file = server.root / "data" / "edge.pid"
    assert pid_file.read_text() == f"{server.process.pid}\n"  # type: ignore[union-attr]
    server.port, server.admin_port = free_port(), free_port()  # other ports, same data_dir
    config = server.root / "second.toml"
    server.write_config()
    server.config_path.rename(config)
    done = _serve(config)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: data_dir {server.root / 'data'} is held by a running edge"
        f" (pid {server.process.pid}); stop it first or give this configuration"  # type: ignore[union-attr]
        " another data_dir"
    )
    # The first edge's pid file is intact: `edge reload` still reaches it.
    assert pid_file.read_text() == f"{server.process.pid}\n"  # type: ignore[union-attr]


def test_a_port_held_by_another_program_is_named(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        srv = EdgeServer(root=tmp_path, tokens={"admin": new_token()[0]}, port=port)
        srv.write_config()
        done = _serve(srv.config_path, workers=1)
    assert done.returncode == 1
    assert re.fullmatch(
        rf"error: server\.listen 127\.0\.0\.1:{port} is held by pid {os.getpid()} \([^)]+\);"
        r" stop it first or choose another port",
        done.stderr.strip(),
    ), done.stderr


def test_an_edge_still_starting_holds_its_ports_already(tmp_path: Path) -> None:
    """Two edges started at the same moment: the second refuses before either binds."""
    srv = EdgeServer(root=tmp_path, tokens={"admin": new_token()[0]})
    srv.write_config()
    address = f"127.0.0.1:{srv.admin_port}"
    starting = subprocess.Popen(  # holds the admin address as a starting edge does
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from edge.config import parse_listen\n"
            "from edge.exclusive import hold_address\n"
            f"with hold_address('server.admin_listen', parse_listen('{address}')):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert starting.stdout is not None and starting.stdout.readline() == "held\n"
        done = _serve(srv.config_path, workers=1)
    finally:
        starting.kill()
        starting.communicate()
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: server.admin_listen {address} is held by a running edge (pid {starting.pid});"
        " stop it first or choose another port"
    )
