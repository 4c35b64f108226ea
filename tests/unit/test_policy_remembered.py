"""edge.visitor.policy: raw Host values are worked out once and remembered, within a bound."""

from __future__ import annotations

from edge.visitor import policy as policy_module
from edge.visitor.policy import _Remembered


def test_a_host_is_worked_out_once_then_read_by_subscript() -> None:
    asked: list[bytes | None] = []

    def find(host: bytes | None) -> None:
        asked.append(host)

    seen: _Remembered[bytes | None] = _Remembered(find)
    assert seen[b"a.example"] is None
    assert seen[b"a.example"] is None
    assert seen[None] is None
    assert asked == [b"a.example", None]


def test_a_flood_of_new_hosts_starts_over_instead_of_growing() -> None:
    seen: _Remembered[str] = _Remembered(lambda host: None)
    for n in range(policy_module._SEEN_MAX * 3):
        seen[f"h{n}.example"]
    assert len(seen) <= policy_module._SEEN_MAX
