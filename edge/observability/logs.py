"""Structured logs: one JSON object per line, for visitor access and for events.

How this works: a line is built on the event loop (one dict, :func:`format_line`
with orjson) and handed to a :class:`LineLog`, whose bounded queue a writer
thread drains, writing whole lines with one ``os.write`` per batch to a file
opened with ``O_APPEND`` (so the lines of several workers sharing one file never
interleave inside a line) or to stderr. When the queue is full the line is
dropped and counted, never waited for: a slow disk must not stall visitors.

This is the design of ``logging.handlers.QueueHandler`` and ``QueueListener``
without the ``LogRecord``: building and copying a record costs several
microseconds, which a full access log would pay on every request.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import orjson

log = logging.getLogger("edge.observability")

AccessLogMode = Literal["off", "sampled", "full"]
DEFAULT_CAPACITY = 10_000  # lines a log holds while its writer is behind
_BATCH_LINES = 512  # lines joined into one write
_STDERR = 2


def access_mode(value: str | bool) -> AccessLogMode:
    """``[server] access_log`` as a mode; ``true``/``false`` (older files) mean full/off."""
    if value is True or value == "full":
        return "full"
    if value == "sampled":
        return "sampled"
    return "off"


def should_log(mode: AccessLogMode, rate: float, status: int, draw: float) -> bool:
    """Whether one visitor request gets an access line.

    ``draw`` is a uniform random number in [0, 1). Sampling keeps a ``rate``
    share of requests and every server error (5xx), which an operator wants to
    see whatever the sample rate.
    """
    if mode == "full":
        return True
    if mode == "off":
        return False
    return status >= 500 or draw < rate


class _SecondCache:
    __slots__ = ("prefix", "second")

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""


_second = _SecondCache()


def rfc3339(ts: float) -> str:
    """A Unix time as RFC 3339 UTC with milliseconds: ``2026-05-01T12:00:00.123Z``."""
    second = int(ts)
    cache = _second
    if cache.second != second:
        # strftime once per second, not per line.
        cache.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        cache.second = second
    millis = int((ts - second) * 1000)
    return f"{cache.prefix}.{millis:03d}Z"


def format_line(ts: float, event: str, fields: Mapping[str, Any]) -> bytes:
    """One log line: ``{"ts": ..., "event": ..., <fields>}`` and a newline."""
    doc: dict[str, Any] = {"ts": rfc3339(ts), "event": event}
    doc.update(fields)
    return orjson.dumps(doc, default=str, option=orjson.OPT_APPEND_NEWLINE)


class LineLog:
    """A bounded, never-blocking sink of lines, written by its own thread.

    ``path`` None writes to stderr. ``on_drop`` is called (on the caller's
    thread) for every line dropped because the queue was full.
    """

    def __init__(
        self,
        name: str,
        path: Path | None,
        *,
        capacity: int = DEFAULT_CAPACITY,
        on_drop: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.path = path
        self.dropped = 0
        self._capacity = capacity
        self._on_drop = on_drop
        # SimpleQueue: a C queue, cheaper than queue.Queue; the bound is kept by
        # checking its size (one producer, the event loop; the consumer only shrinks it).
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._fd = -1
        self._reopen = False
        self._thread: threading.Thread | None = None

    # -- the producer side (event loop) ---------------------------------------------

    def write(self, line: bytes) -> None:
        """Queue one complete line; drop it (and count) when the queue is full."""
        if self._queue.qsize() >= self._capacity:
            self.dropped += 1
            self._on_drop()
            return
        self._queue.put(line)

    def emit(self, event: str, fields: Mapping[str, Any]) -> None:
        """Queue the line of ``event`` with ``fields``, stamped now."""
        self.write(format_line(time.time(), event, fields))

    def reopen(self) -> None:
        """Open the file again before the next write (after logrotate moved it)."""
        self._reopen = True

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Open the target (an unwritable file raises ``OSError`` here) and start writing."""
        self._fd = self._open()
        self._thread = threading.Thread(target=self._run, name=f"edge-{self.name}-log", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (for at most ``timeout`` seconds), then stop."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
        if self._fd > _STDERR:
            os.close(self._fd)
        self._fd = -1

    # -- the writer thread ----------------------------------------------------------

    def _open(self) -> int:
        if self.path is None:
            return _STDERR
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        return os.open(self.path, flags, 0o640)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            batch: list[bytes] = []
            while True:
                if item is None:
                    stopping = True
                    # Whatever was queued before the stop is still written.
                else:
                    batch.append(item)
                if len(batch) >= _BATCH_LINES:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._write(b"".join(batch))

    def _write(self, data: bytes) -> None:
        if self._reopen:
            self._reopen = False
            try:
                fd = self._open()
            except OSError as exc:
                log.error("cannot reopen %s log %s: %s", self.name, self.path, exc)
            else:
                if self._fd > _STDERR:
                    os.close(self._fd)
                self._fd = fd
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            lost = bytes(view).count(b"\n")
            log.error("%s log: %d line(s) lost: %s", self.name, lost, exc)


# -- edge's own log records (Python logging) -------------------------------------------

ADMIN_ACCESS_LOGGER = "aiohttp.access"  # where aiohttp's admin listener reports each call


class JsonLogHandler(logging.Handler):
    """Python log records as JSON lines (``"event": "log"``) on stderr.

    So that everything ``edge serve`` writes to stderr is one format: these
    records (start-up, warnings, failures with their traceback), the event lines
    and, by default, the access lines. Records are rare (never one per request),
    so each is written at once, one ``os.write`` per line.
    """

    _formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
                "pid": record.process,
            }
            if record.exc_info:
                fields["traceback"] = self._formatter.formatException(record.exc_info)
            os.write(_STDERR, format_line(record.created, "log", fields))
        except Exception:
            self.handleError(record)


def log_json_to_stderr(level: int = logging.INFO) -> None:
    """Route every Python log record (and warning) to stderr as a JSON line."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(JsonLogHandler())
    root.setLevel(level)
    logging.captureWarnings(True)


class AdminAccessHandler(logging.Handler):
    """aiohttp's access records of the admin listener as ``admin.access`` lines.

    They go to the access log (``access_log_file``), without the query string,
    under the visitors' rule (``access_log``, ``access_log_sample``).
    """

    def __init__(self, sink: LineLog, mode: AccessLogMode, rate: float) -> None:
        super().__init__()
        self._sink = sink
        self._mode = mode
        self._rate = rate

    def emit(self, record: logging.LogRecord) -> None:
        try:
            method, _, rest = str(getattr(record, "first_request_line", "")).partition(" ")
            target = rest.rpartition(" ")[0] or rest
            headers = getattr(record, "request_header", None)
            agent = headers.get("User-Agent") if isinstance(headers, dict) else None
            status = str(getattr(record, "response_status", ""))
            size = str(getattr(record, "response_size", ""))
            code = int(status) if status.isdigit() else 500
            if not should_log(self._mode, self._rate, code, random.random()):
                return
            self._sink.emit(
                "admin.access",
                {
                    "method": method or None,
                    "path": target.partition("?")[0] or None,
                    "status": int(status) if status.isdigit() else None,
                    "bytes": int(size) if size.isdigit() else None,
                    "remote": getattr(record, "remote_address", None),
                    "user_agent": None if agent in (None, "-") else agent,
                },
            )
        except Exception:
            self.handleError(record)


def govern_admin_access(
    sink: LineLog | None, mode: AccessLogMode, rate: float
) -> Callable[[], None]:
    """Admin access lines to ``sink`` (the access log), or none at all when it is off.

    Returns the function that puts the logger back as it was.
    """
    logger = logging.getLogger(ADMIN_ACCESS_LOGGER)
    saved = (list(logger.handlers), logger.propagate, logger.disabled)
    for handler in saved[0]:
        logger.removeHandler(handler)
    logger.propagate = False
    logger.disabled = sink is None  # aiohttp then does not even format the line
    if sink is not None:
        logger.addHandler(AdminAccessHandler(sink, mode, rate))

    def restore() -> None:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in saved[0]:
            logger.addHandler(handler)
        logger.propagate, logger.disabled = saved[1], saved[2]

    return restore
