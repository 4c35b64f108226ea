"""The byte-bounded LRU that holds ready-to-send representations."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.cache.lru import ByteLRU


@dataclass(frozen=True)
class Blob:
    nbytes: int
    tag: str = ""


def test_get_returns_what_was_put_and_counts_hits_and_misses() -> None:
    lru: ByteLRU[str, Blob] = ByteLRU(100)
    value = Blob(10, "a")
    assert lru.put("a", value) is True
    assert lru.get("a") is value
    assert lru.get("missing") is None
    assert (lru.hits, lru.misses) == (1, 1)
    assert "a" in lru and "missing" not in lru
    assert len(lru) == 1
    assert lru.current_bytes == 10
    assert lru.max_bytes == 100


def test_byte_budget_evicts_the_least_recently_used() -> None:
    lru: ByteLRU[str, Blob] = ByteLRU(100)
    for key in "abcd":
        lru.put(key, Blob(25, key))
    assert lru.current_bytes == 100
    lru.put("e", Blob(25, "e"))
    assert "a" not in lru
    assert all(k in lru for k in "bcde")
    assert lru.current_bytes == 100


def test_a_recently_read_entry_survives() -> None:
    lru: ByteLRU[str, Blob] = ByteLRU(100)
    for key in "abcd":
        lru.put(key, Blob(25, key))
    assert lru.get("a") is not None  # "a" is now the most recently used
    lru.put("e", Blob(25, "e"))
    assert "a" in lru
    assert "b" not in lru
    lru.put("f", Blob(30, "f"))  # needs 30 bytes: "c" and "d" go, in that order
    assert "a" in lru and "e" in lru and "f" in lru
    assert "c" not in lru and "d" not in lru
    assert lru.current_bytes <= 100


def test_one_big_entry_evicts_several_small_ones() -> None:
    lru: ByteLRU[str, Blob] = ByteLRU(100)
    for i in range(10):
        lru.put(str(i), Blob(10))
    lru.put("big", Blob(95))
    assert "big" in lru
    assert len(lru) == 1
    assert lru.current_bytes == 95


@pytest.mark.parametrize("size", [101, 10**9])
def test_an_entry_bigger_than_the_budget_is_not_kept(size: int) -> None:
    lru: ByteLRU[str, Blob] = ByteLRU(100)
    lru.put("small", Blob(10))
    assert lru.put("huge", Blob(size)) is False
    assert "huge" not in lru
    assert lru.get("huge") is None
    assert "small" in lru  # nothing was evicted for it
    assert lru.current_bytes == 10


def test_an_entry_exactly_the_budget_is_kept() -> None:
    lru: ByteLRU[str, Blob] = ByteLRU(100)
    assert lru.put("exact", Blob(100)) is True
    assert "exact" in lru


def test_replacing_a_key_recounts_its_bytes() -> None:
    lru: ByteLRU[str, Blob] = ByteLRU(100)
    lru.put("a", Blob(60))
    lru.put("a", Blob(20, "new"))
    assert lru.current_bytes == 20
    assert lru.get("a") == Blob(20, "new")
    assert len(lru) == 1


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["put", "get"]),
        st.integers(min_value=0, max_value=15),
        st.integers(min_value=0, max_value=400),
    ),
    max_size=200,
)


@given(st.integers(min_value=1, max_value=1000), _OPS)
def test_budget_is_respected_after_any_sequence(
    max_bytes: int, ops: list[tuple[str, int, int]]
) -> None:
    lru: ByteLRU[int, Blob] = ByteLRU(max_bytes)
    last_put: dict[int, Blob] = {}
    for op, key, size in ops:
        if op == "put":
            kept = lru.put(key, Blob(size, f"{key}:{size}"))
            assert kept is (size <= max_bytes)
            if kept:
                last_put[key] = Blob(size, f"{key}:{size}")
                assert key in lru  # the newest entry is never the one evicted
        else:
            value = lru.get(key)
            # whatever is returned is the latest value put under that key
            assert value is None or value == last_put.get(key)
        assert 0 <= lru.current_bytes <= max_bytes
        assert lru.current_bytes == sum(last_put[k].nbytes for k in range(16) if k in lru)


def test_peek_does_not_change_recency_or_count() -> None:
    lru: ByteLRU[str, Blob] = ByteLRU(100)
    for key in "abcd":
        lru.put(key, Blob(25, key))
    assert lru.peek("a") == Blob(25, "a")  # a peek: "a" stays the least recently used
    assert (lru.hits, lru.misses) == (0, 0)
    lru.put("e", Blob(25, "e"))
    assert "a" not in lru
    assert lru.peek("a") is None
    assert (lru.hits, lru.misses) == (0, 0)


def test_groups_list_their_keys_and_forget_evicted_ones() -> None:
    lru: ByteLRU[tuple[str, str], Blob] = ByteLRU(100, group=lambda key: key[0])
    lru.put(("s1", "a"), Blob(40))
    lru.put(("s1", "b"), Blob(40))
    lru.put(("s2", "a"), Blob(10))
    assert sorted(lru.group("s1")) == [("s1", "a"), ("s1", "b")]
    assert lru.group("s2") == [("s2", "a")]
    assert lru.group("s3") == []
    lru.put(("s3", "a"), Blob(60))  # evicts ("s1", "a") and ("s1", "b")
    assert lru.group("s1") == []
    assert sorted(lru.keys()) == [("s2", "a"), ("s3", "a")]


@given(_OPS)
def test_groups_always_hold_exactly_the_cached_keys(ops: list[tuple[str, int, int]]) -> None:
    lru: ByteLRU[int, Blob] = ByteLRU(500, group=lambda key: key % 3)
    for op, key, size in ops:
        if op == "put":
            lru.put(key, Blob(size))
        else:
            lru.get(key)
        grouped = sorted(k for g in range(3) for k in lru.group(g))
        assert grouped == sorted(lru.keys())
