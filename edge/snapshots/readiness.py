"""Every visitor worker of this machine ready before a pointer move becomes visible.

How this works: each process of an edge binds a Unix datagram socket in Linux's
abstract namespace, named after the data directory and the process's index (no
file to clean up, no path-length limit; the admin process's index follows the
workers'). Before the admin process makes a move visible (its own commit, or a
move another node made, :meth:`LivePointers.refresh`), it sends the new
``(site, env, snapshot id)`` to every visitor worker and waits, up to
:data:`READY_WAIT_SECONDS`, for each to answer that it holds the snapshot: loaded
(manifest decoded) into its :class:`~edge.snapshots.live.SnapshotLoader` and its
cache warmed from the outgoing snapshot, as the asking process does for itself.
Only then is the shared generation bumped (:mod:`edge.snapshots.generation`); a
worker's catch-up after the bump finds the snapshot already loaded, so its first
visitor does not wait for a decode, whatever the snapshot's size.

Asking happens before the asking process warms its own cache, so the others load
while it works. A worker that is not running (restarting: nothing bound to its
name) is skipped at once; one that does not answer in time is named in the log
and catches up as before, on its first request after the bump. A lagging worker
thus delays a publish by at most the bound and never breaks read-your-publish
(the bump still happens before the API answers).

The same message with ``"sync": true`` asks the workers to publish their
figures into the shared metrics files, so that a scrape answered by the admin
process counts the visitors served until then.

One message is one datagram of JSON: ``{"kind": "ask", "seq": n, "from": index,
"changes": [[site, env, id], ...], "sync": false}`` and the answer ``{"kind":
"ready", "seq": n, "from": index}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import cast

import msgspec

from edge.router import Env
from edge.snapshots.model import Snapshot

log = logging.getLogger("edge.readiness")

# How long a move waits for the other workers to hold its snapshots. Loading a
# 100,000-path manifest takes a worker about 0.1-0.2 s; past this bound the
# move goes ahead and the late worker catches up on its first request.
READY_WAIT_SECONDS = 2.0
# How long a metrics scrape waits for the workers' figures.
SYNC_WAIT_SECONDS = 0.5
_MAX_DATAGRAM = 64 * 1024

# Load (and warm) one change in this process: (site, env, snapshot id).
Preload = Callable[[str, Env, str], Awaitable[None]]


class _Ask(msgspec.Struct, frozen=True, tag_field="kind", tag="ask"):
    seq: int
    changes: list[tuple[str, str, str]]
    sync: bool  # also publish the answering worker's figures (a metrics scrape)
    # "from" is a keyword: the field is named so in the message only.
    sender: int = msgspec.field(name="from")


class _Ready(msgspec.Struct, frozen=True, tag_field="kind", tag="ready"):
    seq: int
    sender: int = msgspec.field(name="from")


_decode = msgspec.json.Decoder(_Ask | _Ready).decode
_encode = msgspec.json.Encoder().encode


def supported() -> bool:
    """Abstract Unix sockets are Linux's; elsewhere workers catch up on first request."""
    return sys.platform.startswith("linux")


def address(data_dir: Path, index: int) -> str:
    """The abstract socket name of worker ``index`` of the edge serving ``data_dir``."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:24]
    return f"\0edge-ready-{digest}-{index}"


class _Endpoint:
    """One process's readiness socket: bound in :meth:`open`, read until :meth:`close`.

    The asking end (:class:`RollCall`, the admin process) and the answering end
    (:class:`Responder`, each visitor worker) are separate objects, because they
    are wired to opposite sides of the live pointers: the pointers ask through a
    roll call built before them, and a responder preloads into the pointers built
    before it. No process is both (``role="all"`` is neither: it has no others).
    """

    def __init__(self, data_dir: Path, index: int) -> None:
        self._data_dir = data_dir
        self.index = index
        self._sock: socket.socket | None = None

    def _needed(self) -> bool:
        raise NotImplementedError

    def open(self) -> None:
        if not supported() or not self._needed():
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(address(self._data_dir, self.index))
        except OSError:
            sock.close()
            # The process this one replaces may still hold the name for a moment;
            # this one then simply catches up on its first request.
            log.warning("process %d: cannot bind its readiness socket", self.index + 1)
            return
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    async def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()

    def _readable(self) -> None:
        sock = self._sock
        while sock is not None:
            try:
                data = sock.recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                log.exception("process %d: readiness socket failed", self.index + 1)
                return
            try:
                message = _decode(data)
            except msgspec.DecodeError:
                log.warning("process %d: ignored a malformed readiness message", self.index + 1)
                continue
            self._received(message)

    def _received(self, message: _Ask | _Ready) -> None:
        raise NotImplementedError


class RollCall(_Endpoint):
    """The admin process's end: asks the visitor workers ``asks`` and waits for them."""

    def __init__(self, data_dir: Path, index: int, *, asks: Sequence[int]) -> None:
        super().__init__(data_dir, index)
        self._asks = tuple(i for i in asks if i != index)
        self._seq = 0
        self._waiting: dict[int, tuple[set[int], asyncio.Event]] = {}

    def _needed(self) -> bool:
        return bool(self._asks)

    def ask(self, changes: Sequence[tuple[Env, Snapshot]]) -> Awaitable[None]:
        """Ask every visitor worker to hold ``changes``; await the result to wait for them.

        Sent at once (the others load while this process goes on); the awaitable
        ends when all running ones answered, or after :data:`READY_WAIT_SECONDS`.
        """
        if not changes:
            return _nothing()
        return self._send([(s.site, env, s.id) for env, s in changes], False, READY_WAIT_SECONDS)

    async def sync_others(self) -> None:
        """Have every visitor worker publish its figures now (before a metrics scrape)."""
        await self._send([], True, SYNC_WAIT_SECONDS)

    def _send(
        self, changes: list[tuple[str, str, str]], sync: bool, wait: float
    ) -> Awaitable[None]:
        sock = self._sock
        if sock is None:
            return _nothing()
        self._seq += 1
        seq = self._seq
        message = _encode(_Ask(seq, changes, sync, sender=self.index))
        asked: set[int] = set()
        for other in self._asks:
            try:
                sock.sendto(message, address(self._data_dir, other))
            except (ConnectionRefusedError, FileNotFoundError):
                continue  # not running (restarting): it loads everything when it starts
            except OSError as exc:
                log.warning("cannot ask worker %d: %s", other + 1, exc)
                continue
            asked.add(other)
        if not asked:
            return _nothing()
        done = asyncio.Event()
        self._waiting[seq] = (asked, done)
        return self._wait(seq, asked, done, wait, "flush their figures" if sync else
                          "load the new snapshot")  # fmt: skip

    async def _wait(
        self, seq: int, asked: set[int], done: asyncio.Event, wait: float, what: str
    ) -> None:
        try:
            await asyncio.wait_for(done.wait(), wait)
        except TimeoutError:
            log.warning(
                "worker(s) %s did not %s within %.1fs; they catch up on their next request",
                sorted(w + 1 for w in asked), what, wait,
            )  # fmt: skip
        finally:
            self._waiting.pop(seq, None)

    def _received(self, message: _Ask | _Ready) -> None:
        if not isinstance(message, _Ready):
            return  # only workers answer asks
        waiting = self._waiting.get(message.seq)
        if waiting is not None:
            asked, done = waiting
            asked.discard(message.sender)
            if not asked:
                done.set()


class Responder(_Endpoint):
    """A visitor worker's end: answers each ask once ``preload`` holds its snapshots.

    ``flush`` publishes this worker's figures (an ask with ``"sync": true``).
    """

    def __init__(
        self, data_dir: Path, index: int, *, preload: Preload, flush: Callable[[], None]
    ) -> None:
        super().__init__(data_dir, index)
        self._preload = preload
        self._flush = flush
        self._tasks: set[asyncio.Task[None]] = set()
        self.asks_answered = 0  # asks of other processes this one answered

    def _needed(self) -> bool:
        return True

    async def close(self) -> None:
        await super().close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _received(self, message: _Ask | _Ready) -> None:
        if not isinstance(message, _Ask):
            return  # nobody asked by this process
        task = asyncio.ensure_future(self._answer(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, ask: _Ask) -> None:
        if ask.sync:
            self._flush()
        for site, env, snapshot_id in ask.changes:
            try:
                await self._preload(site, _env(env), snapshot_id)
            except Exception:
                # The asker goes ahead; this worker catches up (and fails loudly) then.
                log.exception("worker %d: preloading %s of %s failed",
                              self.index + 1, snapshot_id, site)  # fmt: skip
        sock = self._sock
        if sock is None:
            return
        try:
            sock.sendto(_encode(_Ready(ask.seq, sender=self.index)),
                        address(self._data_dir, ask.sender))  # fmt: skip
        except OSError:
            pass  # the asker is gone (or gave up): nothing waits for this answer
        self.asks_answered += 1


def _env(value: str) -> Env:
    if value not in ("staging", "production"):
        raise ValueError(f"not an environment: {value!r}")
    return cast(Env, value)


async def _nothing() -> None:
    return None
