"""Promotion planning: the compare-and-swap moves each operator action commits."""

from __future__ import annotations

import pytest

from edge.errors import Conflict
from edge.router import Env
from edge.snapshots.model import ManifestEntry, Pointer, PointerMove
from edge.snapshots.promotion import (
    environments_etag,
    if_match_holds,
    is_fast_forward,
    plan_production,
    plan_promote,
    plan_refresh,
    plan_set,
    take_paths,
)


def pointers(
    staging: str | None, production: str | None, base: str | None = None
) -> dict[Env, Pointer]:
    return {
        "staging": Pointer(site="acme", env="staging", snapshot=staging, base=base),
        "production": Pointer(site="acme", env="production", snapshot=production),
    }


# ---- plan_set --------------------------------------------------------------------------


def test_first_staging_set_takes_base_from_production() -> None:
    moves = plan_set(pointers(None, "p1"), "staging", "s1")
    assert moves == [PointerMove(env="staging", expect=None, to="s1", base="p1")]


def test_first_staging_set_on_a_fresh_site_has_no_base() -> None:
    moves = plan_set(pointers(None, None), "staging", "s1")
    assert moves == [PointerMove(env="staging", expect=None, to="s1", base=None)]


def test_later_staging_set_keeps_base() -> None:
    moves = plan_set(pointers("s1", "p2", base="p1"), "staging", "s2")
    assert moves == [PointerMove(env="staging", expect="s1", to="s2", base="p1")]


@pytest.mark.parametrize("current", [None, "p1"])
def test_production_set_expects_the_current_snapshot(current: str | None) -> None:
    ptrs = pointers("s1", current, base="p0")
    moves = plan_set(ptrs, "production", "fix")
    assert moves == [PointerMove(env="production", expect=current, to="fix", base=None)]


def test_plan_set_touches_only_the_named_environment() -> None:
    for env in ("staging", "production"):
        moves = plan_set(pointers("s1", "p1", base="p1"), env, "x")
        assert [m.env for m in moves] == [env]


# ---- is_fast_forward -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ptrs", "expected"),
    [
        (pointers("s1", "p1", base="p1"), True),
        (pointers("s1", None, base=None), True),  # nothing published yet
        (pointers("s1", "p2", base="p1"), False),  # emergency fix on production
        (pointers("s1", "p1", base=None), False),
        (pointers("s1", None, base="p1"), False),
    ],
)
def test_is_fast_forward(ptrs: dict[Env, Pointer], expected: bool) -> None:
    assert is_fast_forward(ptrs) is expected


# ---- plan_promote / plan_production / plan_refresh -------------------------------------


def test_fast_forward_promote_moves_production_and_staging_base() -> None:
    moves = plan_promote(pointers("s1", "p1", base="p1"), "s1")
    assert moves == [
        PointerMove(env="production", expect="p1", to="s1", base=None),
        PointerMove(env="staging", expect="s1", to="s1", base="s1"),
    ]


def test_merged_promote_moves_staging_to_the_merge() -> None:
    moves = plan_promote(pointers("s1", "p2", base="p1"), "merged")
    assert moves == [
        PointerMove(env="production", expect="p2", to="merged", base=None),
        PointerMove(env="staging", expect="s1", to="merged", base="merged"),
    ]


def test_first_promote_expects_empty_production() -> None:
    moves = plan_promote(pointers("s1", None), "s1")
    assert moves[0] == PointerMove(env="production", expect=None, to="s1", base=None)


def test_promote_without_staging_snapshot_is_a_conflict() -> None:
    with pytest.raises(Conflict):
        plan_promote(pointers(None, "p1"), "p1")


def test_plan_production_leaves_staging_alone() -> None:
    assert plan_production(pointers("s1", "p1", base="p1"), "p0") == [
        PointerMove(env="production", expect="p1", to="p0", base=None)
    ]


def test_refresh_moves_staging_to_production_and_resets_base() -> None:
    assert plan_refresh(pointers("s1", "p2", base="p1")) == [
        PointerMove(env="staging", expect="s1", to="p2", base="p2")
    ]


def test_refresh_without_production_is_a_conflict() -> None:
    with pytest.raises(Conflict):
        plan_refresh(pointers("s1", None))


# ---- partial publish -------------------------------------------------------------------


def _entry(sha: str) -> ManifestEntry:
    return ManifestEntry(sha256=sha * 64, content_type="text/html; charset=utf-8", size=1)


def test_take_paths_copies_listed_paths_and_removes_absent_ones() -> None:
    production = {"/a.html": _entry("a"), "/b.html": _entry("b"), "/c.html": _entry("c")}
    staging = {"/a.html": _entry("1"), "/c.html": _entry("c"), "/new.html": _entry("2")}
    files = take_paths(production, staging, ["/a.html", "/b.html", "/new.html"])
    assert files == {"/a.html": _entry("1"), "/c.html": _entry("c"), "/new.html": _entry("2")}
    # inputs are not mutated
    assert production["/a.html"] == _entry("a") and "/b.html" in production


def test_take_paths_of_nothing_is_production() -> None:
    production = {"/a.html": _entry("a")}
    assert take_paths(production, {}, []) == production


# ---- environment validators ------------------------------------------------------------


def test_environments_etag_changes_with_any_pointer() -> None:
    base = environments_etag(pointers("s1", "p1", base="p1"))
    assert base.startswith('"') and base.endswith('"')
    assert environments_etag(pointers("s1", "p1", base="p1")) == base
    assert environments_etag(pointers("s2", "p1", base="p1")) != base
    assert environments_etag(pointers("s1", "p2", base="p1")) != base
    assert environments_etag(pointers("s1", "p1", base="p0")) != base


@pytest.mark.parametrize(
    ("if_match", "expected"),
    [
        (None, True),
        ("*", True),
        ('"x"', True),
        ('"y", "x"', True),
        ('"y"', False),
        ('W/"x"', False),  # If-Match uses the strong comparison
    ],
)
def test_if_match_holds(if_match: str | None, expected: bool) -> None:
    assert if_match_holds(if_match, '"x"') is expected
