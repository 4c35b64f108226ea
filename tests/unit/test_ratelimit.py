"""Token buckets with a clock stepped by hand (edge.visitor.ratelimit)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.visitor.ratelimit import Rate, RateLimiter, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    rate = Rate(per_minute=6, burst=3)  # one token every 10 s
    assert [limiter.take("a", rate) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a", rate) == pytest.approx(10.0)
    clock.now += 4
    assert limiter.take("a", rate) == pytest.approx(6.0)
    clock.now += 6
    assert limiter.take("a", rate) == 0.0
    assert limiter.take("a", rate) == pytest.approx(10.0)
    # Another key has a bucket of its own.
    assert limiter.take("b", rate) == 0.0


def test_refill_stops_at_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    rate = Rate(per_minute=60, burst=2)
    limiter.take("a", rate)
    clock.now += 3600
    assert [limiter.take("a", rate) for _ in range(3)][:2] == [0.0, 0.0]
    assert limiter.take("a", rate) > 0


def test_refused_posts_do_not_dig_the_bucket_deeper() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    rate = Rate(per_minute=60, burst=1)
    limiter.take("a", rate)
    for _ in range(100):
        assert limiter.take("a", rate) > 0
    clock.now += 1
    assert limiter.take("a", rate) == 0.0


def test_a_clock_going_backwards_gives_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    rate = Rate(per_minute=60, burst=1)
    limiter.take("a", rate)
    clock.now -= 100
    assert limiter.take("a", rate) > 0


def test_memory_is_bounded_and_the_busiest_client_is_kept() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock, max_clients=100)
    rate = Rate(per_minute=1, burst=1)
    assert limiter.take("attacker", rate) == 0.0
    for n in range(1000):
        limiter.take(n, rate)
        limiter.take("attacker", rate)  # seen again and again: never the oldest
        assert len(limiter) <= 100
    assert limiter.take("attacker", rate) > 0


@given(
    per_minute=st.floats(min_value=0.01, max_value=6000),
    burst=st.integers(min_value=1, max_value=100),
    steps=st.lists(st.floats(min_value=0, max_value=120), max_size=50),
)
def test_never_more_than_burst_plus_rate_times_time(
    per_minute: float, burst: int, steps: list[float]
) -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    rate = Rate(per_minute=per_minute, burst=burst)
    allowed = 0
    for step in steps:
        clock.now += step
        for _ in range(5):
            wait = limiter.take("k", rate)
            assert wait >= 0
            allowed += wait == 0.0
    assert allowed <= burst + sum(steps) * rate.per_second + 1e-6


@pytest.mark.parametrize(
    ("seconds", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (59.5, "60"), (math.inf, "3600")]
)
def test_retry_after_is_whole_seconds(seconds: float, header: str) -> None:
    assert retry_after(seconds) == header
