"""What one running edge holds alone: its ``data_dir``, its ports, its node name.

``edge serve`` checks all three before it starts anything, and refuses with one
line naming what is held and by whom:

- the ``data_dir``: an exclusive ``flock`` on its pid file, held for the life of
  the serving process (the supervisor with ``--workers``), so two servers never
  share a store, a pid file or the shared counters;
- the ports: the workers bind with ``SO_REUSEPORT``, which would let a second edge
  (same user: the kernel shares a port only within one uid) bind the same ports and
  split the visitors between two servers. Two checks: a lock file per address in a
  folder of this user's (``<tmp>/edge-ports-<uid>/``), held for the life of the
  serving process, which also covers two edges starting at the same moment, before
  either has bound; and a probe socket bound *without* ``SO_REUSEPORT``, which fails
  on a port anyone listens on (the holder's pid is found through ``/proc``). Only the
  workers of one edge, started after these checks, share a port.
- on the PostgreSQL store, a ``node_name`` heard from within three heartbeats is
  another running node (:func:`check_node_name`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

from edge.config import ListenAddress, Settings
from edge.errors import EdgeError


class AlreadyRunning(EdgeError):
    """Something this edge needs alone is held by a running process; start-up stops."""

    code = "already_running"


@contextmanager
def hold(settings: Settings) -> Iterator[None]:
    """Everything a running edge holds alone, for as long as the block runs.

    Raises :class:`AlreadyRunning` (one line naming what and whose) when a running
    edge, or another program, holds any of it.
    """
    addresses = listen_addresses(settings)
    with ExitStack() as stack:
        stack.enter_context(hold_data_dir(settings))
        for key, address in addresses:
            stack.enter_context(hold_address(key, address))
        check_ports(addresses)
        yield


@contextmanager
def _lock_file(path: Path, refusal: Callable[[str], str]) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` holding this process's pid; ``refusal(pid)``
    is the message when another process holds it. The file goes away with the lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            raise AlreadyRunning(refusal(holder)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # while still locked: the next edge makes its own
    finally:
        os.close(fd)


def hold_data_dir(settings: Settings) -> AbstractContextManager[None]:
    """Lock ``data_dir`` (through its pid file, which ``edge reload`` reads)."""
    return _lock_file(
        settings.pid_file,
        lambda pid: (
            f"data_dir {settings.data_dir} is held by a running edge (pid {pid});"
            " stop it first or give this configuration another data_dir"
        ),
    )


def port_lock_path(address: ListenAddress) -> Path:
    """This user's lock file of one listen address."""
    name = f"{address.host.replace(':', '_')}_{address.port}.lock"
    return Path(tempfile.gettempdir()) / f"edge-ports-{os.getuid()}" / name


def hold_address(key: str, address: ListenAddress) -> AbstractContextManager[None]:
    """Lock one listen address for this edge (also while it is still starting)."""
    path = port_lock_path(address)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return _lock_file(
        path,
        lambda pid: (
            f"{key} {address} is held by a running edge (pid {pid});"
            " stop it first or choose another port"
        ),
    )


def listen_addresses(settings: Settings) -> list[tuple[str, ListenAddress]]:
    """Every listener of the configuration, by its key."""
    found = [("server.listen", settings.listen), ("server.admin_listen", settings.admin_listen)]
    if settings.listen_tls is not None:
        found.append(("server.listen_tls", settings.listen_tls))
    return found


def check_ports(addresses: Sequence[tuple[str, ListenAddress]]) -> None:
    """Refuse when another process listens on one of ``addresses``."""
    for key, address in addresses:
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no holder
            try:
                probe.bind((address.host, address.port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    continue  # not ours to judge here: the listener reports it with its key
                raise AlreadyRunning(
                    f"{key} {address} is held by {describe_holder(address.port)};"
                    " stop it first or choose another port"
                ) from None


def describe_holder(port: int) -> str:
    """``a running edge (pid N)``, ``pid N (name)`` or ``another process``."""
    pids = sorted(_listening_pids(port))
    if not pids:
        return "another process"
    pid = _edge_supervisor(pids[0])
    command = _cmdline(pid)
    if "edge" in " ".join(command[:4]) and "serve" in command:
        return f"a running edge (pid {pid})"
    name = Path(command[0]).name if command else "?"
    return f"pid {pid} ({name})"


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _edge_supervisor(pid: int) -> int:
    """A worker of a supervised edge is named by its supervisor (the pid to signal)."""
    if "--worker-index" not in _cmdline(pid):
        return pid
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return pid
    return int(stat.rsplit(")", 1)[1].split()[1])


def _listening_inodes(port: int) -> set[int]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(int(fields[9]))
    return inodes


def _listening_pids(port: int) -> set[int]:
    """Processes (of any user this one may inspect) with a listening socket on ``port``."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    pids: set[int] = set()
    if not wanted:
        return pids
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in wanted:
                    pids.add(int(proc.name))
                    break
            except OSError:
                continue
    return pids


async def check_node_name(settings: Settings) -> None:
    """On PostgreSQL: refuse a ``node_name`` another running node is registered under."""
    if settings.config.store.backend != "postgres":
        return
    from edge.snapshots.backends import node_name, open_store
    from edge.snapshots.fanout import STALE_HEARTBEATS
    from edge.snapshots.postgres import PostgresStore

    name = node_name(settings)
    stale_after = settings.config.store.heartbeat_seconds * STALE_HEARTBEATS
    async with open_store(settings, role="start-up check") as store:
        assert isinstance(store, PostgresStore)
        for node in await store.nodes(stale_after):
            if node.name == name and node.live:
                raise AlreadyRunning(
                    f"store.node_name {name!r} is held by a running edge node (last heartbeat"
                    f" {node.seen_at}); give this node another node_name, or wait"
                    f" {stale_after:g}s if that node is gone"
                )
