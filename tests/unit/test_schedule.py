"""Schedule times and grouping (edge/snapshots/schedule.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.errors import BadRequest
from edge.snapshots.model import Schedule
from edge.snapshots.schedule import due_groups, moment_epoch, next_moment, parse_moment


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("2026-12-01T10:00:00Z", "2026-12-01T10:00:00.000Z"),
        ("2026-12-01T11:00:00+01:00", "2026-12-01T10:00:00.000Z"),
        ("2026-12-01T05:30:00.250-04:30", "2026-12-01T10:00:00.250Z"),
        ("2026-12-01T10:00:00.999999+00:00", "2026-12-01T10:00:00.999Z"),
    ],
)
def test_moments_are_canonical_utc(text: str, canonical: str) -> None:
    assert parse_moment(text) == canonical


@pytest.mark.parametrize("text", ["2026-12-01T10:00:00", "2026-12-01", "soon", "", "10:00Z"])
def test_moments_without_offset_or_garbage_are_refused(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_moment(text)


def test_moment_epoch_round_trip() -> None:
    assert moment_epoch("1970-01-01T00:00:01.500Z") == 1.5


def sched(id_: str, site: str, at: str, status: str = "pending") -> Schedule:
    return Schedule(
        id=id_,
        site=site,
        at=at,
        snapshot="s",
        base=None,
        status=status,
        created_at=at,
        actor="t",
    )


T1, T2, T3 = "2026-12-01T10:00:00.000Z", "2026-12-01T11:00:00.000Z", "2026-12-01T12:00:00.000Z"


def test_due_schedules_group_by_site_and_moment_in_time_order() -> None:
    pending = [
        sched("05", "acme", T2),
        sched("01", "acme", T1),
        sched("03", "acme", T1),
        sched("02", "other", T1),
        sched("04", "acme", T3),  # not due yet
        sched("00", "acme", T1, status="cancelled"),
    ]
    groups = due_groups(pending, now=T2)
    assert [[s.id for s in g] for g in groups] == [["01", "03"], ["02"], ["05"]]
    assert next_moment(pending) == T1
    assert next_moment([sched("x", "a", T1, status="done")]) is None


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from([T1, T2, T3])), max_size=12))
def test_every_due_schedule_is_in_exactly_one_group(items: list[tuple[str, str]]) -> None:
    pending = [sched(f"{i:02d}", site, at) for i, (site, at) in enumerate(items)]
    groups = due_groups(pending, now=T2)
    fired = [s.id for g in groups for s in g]
    assert sorted(fired) == sorted(s.id for s in pending if s.at <= T2)
    for g in groups:
        assert len({(s.site, s.at) for s in g}) == 1
    moments = [g[0].at for g in groups]
    assert moments == sorted(moments)
