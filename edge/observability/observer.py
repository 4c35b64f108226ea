"""What edge tells its operator: the hooks the rest of edge calls, and where they go.

One :class:`Observer` per process turns what happens (a visitor request
answered, a pointer moved, a schedule fired, a webhook failed, an upstream
failed, an admin call refused) into metrics and structured log lines. The
modules it observes only call a hook with plain data; none of them imports
prometheus-client or knows the log format. A hook never raises: a failure to
record must not fail a request or a publish.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec
from urllib.parse import urlsplit

from edge.cache import ByteLRU
from edge.config import Settings
from edge.errors import ConfigError
from edge.observability.logs import (
    AccessLogMode,
    LineLog,
    access_mode,
    format_line,
    govern_admin_access,
    should_log,
)
from edge.observability.metrics import (
    FORM_REFUSALS,
    REQUEST_BUCKETS,
    SWAP_ACTIONS,
    UNKNOWN,
    UPSTREAM_ERRORS,
    WEBHOOK_RESULTS,
    Metrics,
    VisitorTally,
    bounded,
    multiprocess_dir,
)
from edge.router import Route
from edge.snapshots.model import HistoryEntry, OutboxItem
from edge.wire.exchange import Request

log = logging.getLogger("edge.observability")

SYNC_SECONDS = 1.0  # how often a worker publishes its visitor and cache figures
P = ParamSpec("P")


def _never_raises(fn: Callable[P, None]) -> Callable[P, None]:
    @functools.wraps(fn)
    def hook(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            log.exception("recording %s failed", fn.__name__)

    return hook


def endpoint(url: str) -> str:
    """A URL fit for a log line: no user info, query or fragment (they may hold secrets)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def resolve_path(settings: Settings, value: str | None) -> Path | None:
    """A configured log file, relative to the configuration file's directory."""
    return None if value is None else settings.base_dir / value


class Observer:
    """The metrics and logs of one edge process."""

    def __init__(
        self,
        metrics: Metrics,
        events: LineLog,
        access: LineLog | None = None,
        *,
        access_mode: AccessLogMode = "off",
        access_sample: float = 0.01,
        cache_gauges: bool = True,
    ) -> None:
        self.metrics = metrics
        self.events = events
        self.access = access if access_mode != "off" else None
        self.access_mode: AccessLogMode = access_mode if access is not None else "off"
        self.access_sample = access_sample
        self.tally = VisitorTally(metrics)
        self._synced = (0, 0, 0)
        self.cache_gauges = cache_gauges  # False in the admin process: it holds no visitor cache

    # -- visitors -------------------------------------------------------------------

    def recorder(self) -> VisitorRecorder:
        """What a visitor listener calls once per request, after the answer is written."""
        return VisitorRecorder(self)

    # -- pointers and schedules -----------------------------------------------------

    @_never_raises
    def snapshot_loaded(self, worker: int) -> None:
        """Worker ``worker`` decoded a snapshot from the store."""
        self.metrics.snapshot_loads.labels(str(worker)).inc()

    @_never_raises
    def snapshot_loaded_late(self, worker: int, count: int) -> None:
        """Worker ``worker`` had to decode ``count`` snapshots while catching up."""
        self.metrics.snapshot_late_loads.labels(str(worker)).inc(count)

    @_never_raises
    def pointers_moved(self, site: str, entries: Sequence[HistoryEntry], seconds: float) -> None:
        """One swap committed ``entries`` (each a pointer move) in ``seconds``."""
        if not entries:
            return
        metrics = self.metrics
        action = bounded(entries[0].action, SWAP_ACTIONS)
        metrics.swap_duration.labels(action).observe(seconds)
        label = metrics.site_label(site)
        for entry in entries:
            metrics.swaps.labels(label, entry.env, bounded(entry.action, SWAP_ACTIONS)).inc()
            self.events.emit(
                "pointer.moved",
                {
                    "site": site,
                    "env": entry.env,
                    "action": entry.action,
                    "actor": entry.actor,
                    "from": entry.from_,
                    "to": entry.to,
                    "history_id": entry.id,
                    "swap_ms": round(seconds * 1000, 3),
                },
            )

    @_never_raises
    def schedule_fired(self, site: str, schedules: Sequence[str], lateness: float) -> None:
        """A group of schedules due at one moment went through, ``lateness`` s after it."""
        self.metrics.schedule_lateness.observe(max(lateness, 0.0))
        self.events.emit(
            "schedule.fired",
            {"site": site, "schedules": list(schedules), "lateness_ms": round(lateness * 1000, 3)},
        )

    # -- integrations ---------------------------------------------------------------

    @_never_raises
    def webhook_attempt(self, item: OutboxItem, result: str, error: str | None) -> None:
        """One delivery attempt: ``delivered``, ``retrying`` or ``given_up``."""
        metrics = self.metrics
        metrics.webhooks.labels(
            metrics.site_label(item.site), item.env, bounded(result, WEBHOOK_RESULTS)
        ).inc()
        if result == "delivered":
            return
        self.events.emit(
            "webhook.failed",
            {
                "site": item.site,
                "env": item.env,
                "webhook_event": item.event,
                "delivery": item.id,
                "endpoint": endpoint(item.url),
                "attempt": item.attempts + 1,
                "will_retry": result == "retrying",
                "error": error,
            },
        )

    @_never_raises
    def upstream_error(
        self, route: Route, origin: str, kind: str, detail: str, method: str, path: str
    ) -> None:
        """A visitor request to an upstream failed (``kind``: refused, unreachable, ...)."""
        metrics = self.metrics
        metrics.upstream_errors.labels(
            metrics.site_label(route.site), route.env, bounded(kind, UPSTREAM_ERRORS)
        ).inc()
        self.events.emit(
            "upstream.error",
            {
                "site": route.site,
                "env": route.env,
                "origin": origin,
                "kind": kind,
                "error": detail,
                "method": method,
                "path": path,
            },
        )

    # -- visitor abuse limits and unwritable answers ----------------------------------

    @_never_raises
    def form_refused(self, route: Route, form: str, reason: str, refused: int | None) -> None:
        """One post to ``form`` refused for ``reason``. With ``refused`` (the posts so
        refused since the last event; callers throttle), a ``form.refused`` event too."""
        metrics = self.metrics
        metrics.form_refusals.labels(
            metrics.site_label(route.site), route.env, bounded(reason, FORM_REFUSALS)
        ).inc()
        if refused is not None:
            self.events.emit(
                "form.refused",
                {
                    "site": route.site,
                    "env": route.env,
                    "form": form,
                    "reason": reason,
                    "refused": refused,
                },
            )

    @_never_raises
    def response_unwritable(self, route: Route, path: str, reason: str) -> None:
        """A response edge built could not be written; the visitor got a 500."""
        metrics = self.metrics
        metrics.unwritable.labels(metrics.site_label(route.site), route.env).inc()
        self.events.emit(
            "response.unwritable",
            {"site": route.site, "env": route.env, "path": path, "error": reason},
        )

    # -- the admin API --------------------------------------------------------------

    @_never_raises
    def admin_refused(
        self,
        *,
        status: int,
        method: str,
        route: str,
        site: str | None,
        reason: str,
        token: str | None,
        remote: str | None,
    ) -> None:
        """An admin call refused with 401 or 403. ``token`` is the token's *name*."""
        self.metrics.admin_refusals.labels(str(status)).inc()
        self.events.emit(
            "admin.refused",
            {
                "status": status,
                "method": method,
                "route": route,
                "site": site,
                "reason": reason,
                "token": token,
                "remote": remote,
            },
        )

    # -- per-process figures --------------------------------------------------------

    @_never_raises
    def sync(self, cache: ByteLRU[Any, Any]) -> None:
        """Publish this process's figures kept as plain numbers on the hot path."""
        metrics = self.metrics
        self.tally.flush(metrics)
        seen_hits, seen_misses, seen_evictions = self._synced
        hits, misses, evictions = cache.hits, cache.misses, cache.evictions
        if hits > seen_hits:
            metrics.cache_hits.inc(hits - seen_hits)
        if misses > seen_misses:
            metrics.cache_misses.inc(misses - seen_misses)
        if evictions > seen_evictions:
            metrics.cache_evictions.inc(evictions - seen_evictions)
        self._synced = (hits, misses, evictions)
        if not self.cache_gauges:
            return
        metrics.cache_bytes.set(cache.current_bytes)
        metrics.cache_entries.set(len(cache))
        metrics.cache_max_bytes.set(cache.max_bytes)

    async def run(self, cache: ByteLRU[Any, Any]) -> None:
        """Publish the figures every :data:`SYNC_SECONDS` (a background task)."""
        while True:
            self.sync(cache)
            await asyncio.sleep(SYNC_SECONDS)

    def reopen_logs(self) -> None:
        """Reopen the log files (after logrotate moved them; on SIGHUP)."""
        self.events.reopen()
        if self.access is not None:
            self.access.reopen()


class VisitorRecorder:
    """Per visitor request, once answered: the counts, and maybe an access line."""

    __slots__ = (
        "_access",
        "_latency",
        "_mode",
        "_rate",
        "_rows",
        "_unknown_latency",
        "_unknown_row",
    )

    def __init__(self, observer: Observer) -> None:
        tally = observer.tally
        self._rows = tally.rows
        self._unknown_row = tally.unknown
        self._latency = tally.latency
        self._unknown_latency = tally.latency[UNKNOWN]
        self._access = observer.access
        self._mode = observer.access_mode
        self._rate = observer.access_sample

    def record(self, request: Request, elapsed: float | None = None) -> None:
        """Count one answered request (plain integers); maybe write its access line.

        ``elapsed`` defaults to the time since the request's first byte.
        """
        try:
            if elapsed is None:
                elapsed = time.perf_counter() - request.started
            status = request.status
            self.count(request.route, status, elapsed)
            access = self._access
            if access is not None and should_log(self._mode, self._rate, status, random.random()):
                access.write(access_line(request, elapsed))
        except Exception:
            log.exception("recording a visitor request failed")

    def count(self, route: Route | None, status: int, elapsed: float) -> None:
        """Count one answered request in the plain integers the metrics flush reads."""
        if route is None:
            row = self._unknown_row
            latency = self._unknown_latency
        else:
            row = self._rows.get(route.key, self._unknown_row)
            latency = self._latency[route.env]
        index = status // 100
        row[index if index < 6 else 5] += 1
        latency[bisect_left(REQUEST_BUCKETS, elapsed)] += 1  # Prometheus "le": <= bound
        latency[-1] += elapsed


def access_line(request: Request, elapsed: float) -> bytes:
    """The access log line of one answered visitor request.

    The query string is left out: preview links carry their token in it.
    """
    route: Route | None = request.route
    return format_line(
        time.time(),
        "access",
        {
            "site": None if route is None else route.site,
            "env": None if route is None else route.env,
            "host": request.header(b"host"),
            "method": request.method,
            "path": request.target.partition("?")[0],
            "status": request.status,
            "bytes": request.nbytes,
            "duration_ms": round(elapsed * 1000, 3),
            "snapshot": request.snapshot,
            "remote": request.peer,
            "user_agent": request.header(b"user-agent"),
        },
    )


@contextmanager
def open_observer(settings: Settings, *, serves_visitors: bool = True) -> Iterator[Observer]:
    """The observer of this process, its log writers running until the block ends.

    The admin process (``serves_visitors=False``) counts as no worker in
    ``edge_workers`` and reports no cache gauges: it holds no visitor cache.
    """
    server = settings.config.server
    metrics = Metrics(settings.site_ids, shared=multiprocess_dir(), serves_visitors=serves_visitors)
    mode = access_mode(server.access_log)
    events = LineLog(
        "event",
        resolve_path(settings, server.event_log_file),
        on_drop=metrics.dropped_by_log["event"].inc,
    )
    access = None
    if mode != "off":
        access = LineLog(
            "access",
            resolve_path(settings, server.access_log_file),
            on_drop=metrics.dropped_by_log["access"].inc,
        )
    started: list[LineLog] = []
    started_admin = False
    try:
        for line_log, key in ((events, "event_log_file"), (access, "access_log_file")):
            if line_log is None:
                continue
            try:
                line_log.start()
            except OSError as exc:
                raise ConfigError(f"server.{key}: cannot open {line_log.path}: {exc}") from None
            started.append(line_log)
        # The admin listener's access lines follow access_log too (none when "off").
        restore_admin_access = govern_admin_access(access, mode, server.access_log_sample)
        started_admin = True
        yield Observer(
            metrics,
            events,
            access,
            access_mode=mode,
            access_sample=server.access_log_sample,
            cache_gauges=serves_visitors,
        )
    finally:
        if started_admin:
            restore_admin_access()
        for line_log in reversed(started):
            line_log.close()
