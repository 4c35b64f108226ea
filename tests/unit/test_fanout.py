"""The pure parts of the fan-out: reading a notification, the reconnect backoff."""

from __future__ import annotations

import pytest

from edge.snapshots.fanout import Notice, backoff, parse_notice


@pytest.mark.parametrize(
    ("payload", "notice"),
    [
        ("12 acme", Notice(12, "acme")),
        ("0 a-b", Notice(0, "a-b")),
        ("12", None),
        ("12 ", None),
        ("x acme", None),
        ("-1 acme", None),
        ("", None),
    ],
)
def test_parse_notice(payload: str, notice: Notice | None) -> None:
    assert parse_notice(payload) == notice


def test_backoff_doubles_up_to_the_maximum() -> None:
    assert [backoff(n, 5.0) for n in range(8)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert backoff(10_000, 2.5) == 2.5  # no overflow after a long outage
    assert backoff(0, 0.05) == 0.05
