"""The abuse limits of form posts, with clocks stepped by hand (issue 19)."""

from __future__ import annotations

from edge.router import Route
from edge.snapshots.model import InboxLimits
from edge.snapshots.reserve import DiskReserve
from edge.snapshots.settings import FormSettings
from edge.visitor.formguard import EVENT_EVERY, FormGuard
from edge.visitor.ratelimit import Rate
from edge.wire.proxies import TrustedProxies

ROUTE = Route("acme", "production")
FORM = FormSettings()
CAP = InboxLimits(max_submissions=10, max_bytes=10_000)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Refusals:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int | None]] = []

    def __call__(self, route: Route, form: str, reason: str, refused: int | None) -> None:
        self.seen.append((form, reason, refused))

    @property
    def events(self) -> list[tuple[str, str, int | None]]:
        return [s for s in self.seen if s[2] is not None]


def guard(clock: Clock, refusals: Refusals, **kw: object) -> FormGuard:
    return FormGuard(
        rate=Rate(per_minute=6, burst=2),
        inbox=CAP,
        on_refused=refusals,
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )


def test_rate_limit_per_client_and_form_with_retry_after() -> None:
    clock, refusals = Clock(), Refusals()
    g = guard(clock, refusals)
    assert g.admit(ROUTE, "contact", FORM, "203.0.113.1", None) is None
    assert g.admit(ROUTE, "contact", FORM, "203.0.113.1", None) is None
    refused = g.admit(ROUTE, "contact", FORM, "203.0.113.1", None)
    assert refused is not None
    assert (refused.status, refused.reason, refused.retry_after) == (429, "rate_limited", "10")
    # Another client, another form, another environment: buckets of their own.
    assert g.admit(ROUTE, "contact", FORM, "203.0.113.2", None) is None
    assert g.admit(ROUTE, "other", FORM, "203.0.113.1", None) is None
    assert g.admit(Route("acme", "staging"), "contact", FORM, "203.0.113.1", None) is None
    clock.now += 10
    assert g.admit(ROUTE, "contact", FORM, "203.0.113.1", None) is None


def test_a_form_sets_its_own_rate() -> None:
    clock, refusals = Clock(), Refusals()
    g = guard(clock, refusals)
    generous = FormSettings(burst=5)
    assert g.rate_for(generous) == Rate(per_minute=6, burst=5)
    assert g.rate_for(FormSettings(rate_per_minute=60)) == Rate(per_minute=60, burst=2)
    assert all(g.admit(ROUTE, "big", generous, "203.0.113.1", None) is None for _ in range(5))
    assert g.admit(ROUTE, "big", generous, "203.0.113.1", None) is not None


def test_clients_behind_a_trusted_proxy_are_told_apart() -> None:
    clock, refusals = Clock(), Refusals()
    g = guard(clock, refusals, proxies=TrustedProxies.parse(["10.0.0.1"]))
    for client in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        for _ in range(2):
            assert g.admit(ROUTE, "contact", FORM, "10.0.0.1", f"6.6.6.6, {client}") is None
    assert g.admit(ROUTE, "contact", FORM, "10.0.0.1", "198.51.100.1") is not None
    # An untrusted peer's X-Forwarded-For does not make it someone else.
    assert g.admit(ROUTE, "contact", FORM, "203.0.113.7", "198.51.100.9") is None
    assert g.admit(ROUTE, "contact", FORM, "203.0.113.7", "198.51.100.8") is None
    assert g.admit(ROUTE, "contact", FORM, "203.0.113.7", "198.51.100.7") is not None


def test_below_the_disk_reserve_posts_are_refused_with_503() -> None:
    clock, refusals = Clock(), Refusals()
    free = [10_000]
    reserve = DiskReserve(lambda: free[0], 5_000, clock=clock, every=1.0)
    g = guard(clock, refusals, reserve=reserve)
    assert g.admit(ROUTE, "contact", FORM, "203.0.113.1", None) is None
    free[0] = 100
    clock.now += 1
    refused = g.admit(ROUTE, "contact", FORM, "203.0.113.1", None)
    assert refused is not None and (refused.status, refused.reason) == (503, "disk_reserve")
    assert refused.retry_after is not None


def test_refusals_are_all_counted_but_events_are_throttled() -> None:
    clock, refusals = Clock(), Refusals()
    g = guard(clock, refusals)
    for _ in range(50):
        g.inbox_full(ROUTE, "contact")
    assert len(refusals.seen) == 50
    assert refusals.events == [("contact", "inbox_full", 1)]
    clock.now += EVENT_EVERY
    g.inbox_full(ROUTE, "contact")
    assert refusals.events[-1] == ("contact", "inbox_full", 50)  # 49 before, and this one
    refusal = g.inbox_full(ROUTE, "contact")
    assert (refusal.status, refusal.reason) == (507, "inbox_full")


def test_the_reserve_asks_the_disk_at_most_once_a_period() -> None:
    clock = Clock()
    calls: list[int] = []

    def free() -> int:
        calls.append(1)
        return 1

    reserve = DiskReserve(free, 10, clock=clock, every=1.0)
    assert all(reserve.low() for _ in range(100))
    assert len(calls) == 1
    clock.now += 1
    reserve.low()
    assert len(calls) == 2
    assert not DiskReserve(free, 0).low()  # 0 turns it off
    assert not DiskReserve(lambda: None, 10).low()  # unknown (PostgreSQL): never low
