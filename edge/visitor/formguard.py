"""What a form post must pass before it is stored: the abuse limits of issue 19.

In order, before the body is read: the per-client rate (a token bucket per site,
environment, form and client address, the address taken through
``[server] trusted_proxies``: 429 with ``Retry-After``), then the disk reserve
(503 with ``Retry-After``: visitor writes stop before operators' do). The inbox
cap is checked by the store in the transaction that would write the post (507).

Every refusal is counted (``edge_form_refusals_total``); the event log gets one
``form.refused`` line per site, environment and reason at most every
:data:`EVENT_EVERY` seconds, with how many posts were refused since the last
one, so a flood cannot flood the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.config import ServerConfig
from edge.router import Route
from edge.snapshots.model import InboxLimits
from edge.snapshots.reserve import DiskReserve
from edge.snapshots.settings import FormSettings
from edge.visitor.ratelimit import Rate, RateLimiter, retry_after
from edge.wire.proxies import TrustedProxies, client_address

EVENT_EVERY = 10.0
RESERVE_RETRY_AFTER = "60"
# (route, form, reason, refused since the last event or None for no event)
RefusedHook = Callable[[Route, str, str, int | None], None]


@dataclass(frozen=True, slots=True)
class Refusal:
    """An answer instead of storing the post."""

    status: int
    reason: str  # rate_limited | disk_reserve | inbox_full
    message: str
    retry_after: str | None = None


@dataclass(kw_only=True)
class FormGuard:
    """The limits of one process's form posts (all sites)."""

    rate: Rate
    inbox: InboxLimits
    reserve: DiskReserve | None = None
    proxies: TrustedProxies | None = None
    on_refused: RefusedHook | None = None
    clock: Callable[[], float] = time.monotonic
    _limiter: RateLimiter = field(init=False)
    # (route key, form, reason) -> (time of the last event, refused since it)
    _since_event: dict[tuple[str, str, str], tuple[float, int]] = field(
        init=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._limiter = RateLimiter(clock=self.clock)

    @classmethod
    def from_config(
        cls,
        server: ServerConfig,
        *,
        reserve: DiskReserve | None,
        on_refused: RefusedHook | None,
    ) -> FormGuard:
        return cls(
            rate=Rate(per_minute=server.form_rate_per_minute, burst=server.form_burst),
            inbox=InboxLimits(
                max_submissions=server.inbox_max_submissions, max_bytes=server.inbox_max_bytes
            ),
            reserve=reserve,
            proxies=TrustedProxies.parse(server.trusted_proxies),
            on_refused=on_refused,
        )

    def rate_for(self, form: FormSettings) -> Rate:
        """The form's own rate where its settings give one, else the server's."""
        if form.rate_per_minute is None and form.burst is None:
            return self.rate
        return Rate(
            per_minute=form.rate_per_minute or self.rate.per_minute,
            burst=form.burst or self.rate.burst,
        )

    def admit(
        self,
        route: Route,
        name: str,
        form: FormSettings,
        peer: str | None,
        forwarded_for: str | None,
    ) -> Refusal | None:
        """``None`` when the post may be read and stored, else the refusal to answer."""
        client = client_address(peer, forwarded_for, self.proxies)
        wait = self._limiter.take((route.key, name, client), self.rate_for(form))
        if wait > 0:
            return self.refused(
                route,
                name,
                Refusal(
                    429,
                    "rate_limited",
                    "Too Many Requests: this form takes few posts per visitor; try again later",
                    retry_after(wait),
                ),
            )
        if self.reserve is not None and self.reserve.low():
            return self.refused(
                route,
                name,
                Refusal(
                    503,
                    "disk_reserve",
                    "Service Unavailable: this form cannot take posts now; try again later",
                    RESERVE_RETRY_AFTER,
                ),
            )
        return None

    def inbox_full(self, route: Route, name: str) -> Refusal:
        """The store refused the post: the environment's inbox is at its cap."""
        return self.refused(
            route,
            name,
            Refusal(507, "inbox_full", "Insufficient Storage: this form's inbox is full"),
        )

    def refused(self, route: Route, name: str, refusal: Refusal) -> Refusal:
        if self.on_refused is not None:
            key = (route.key, name, refusal.reason)
            now = self.clock()
            last, count = self._since_event.get(key, (-EVENT_EVERY, 0))
            count += 1
            if now - last >= EVENT_EVERY:
                self.on_refused(route, name, refusal.reason, count)
                self._since_event[key] = (now, 0)
            else:
                self.on_refused(route, name, refusal.reason, None)
                self._since_event[key] = (last, count)
        return refusal
