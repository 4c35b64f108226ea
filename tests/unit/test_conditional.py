"""Accept-Encoding, If-None-Match and Range parsing."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from edge.visitor.conditional import UNSATISFIABLE, accepts_gzip, etag_matches, parse_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("gzip, deflate, br", True),
        ("br, gzip", True),
        ("deflate, br", False),
        ("identity", False),
        ("gzip;q=1.0", True),
        ("gzip; q=0.5", True),
        ("gzip;q=0.001", True),
        ("gzip;q=0", False),
        ("gzip;q=0.0", False),
        ("gzip;q=0.000", False),
        ("gzip ; Q=0", False),
        ("br, gzip;q=0", False),
        ("gzip;q=garbage", False),
        ("*", True),
        ("*;q=0.1", True),
        ("*;q=0", False),
        ("br, *", True),
        # an explicit gzip entry wins over the wildcard, in either order
        ("gzip;q=0, *", False),
        ("*, gzip;q=0", False),
        ("*;q=0, gzip", True),
        ("gzip, *;q=0", True),
        ("gzipped", False),
    ],
)
def test_accepts_gzip(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


@given(st.text())
def test_accepts_gzip_never_raises(header: str) -> None:
    assert accepts_gzip(header) in (True, False)


ETAG = '"abc123-o"'


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('"abc123-o"', True),
        ('W/"abc123-o"', True),
        ('"other", "abc123-o"', True),
        ('"other",W/"abc123-o"', True),
        ('  "abc123-o"  ', True),
        ("*", True),
        (" * ", True),
        ('"other"', False),
        ('"abc123-oz"', False),
        ('"abc123"', False),
        ("abc123-o", False),  # unquoted is not the same tag
        ('"ABC123-O"', False),  # tags are case-sensitive
        ('"other", "another"', False),
        ("", False),
    ],
)
def test_etag_matches(header: str, expected: bool) -> None:
    assert etag_matches(header, ETAG) is expected


SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # first-last
        ("bytes=0-99", (0, 99)),
        ("bytes=0-0", (0, 0)),
        ("bytes=999-999", (999, 999)),
        ("bytes=500-5000", (500, 999)),  # last beyond the end is clipped
        ("BYTES=0-9", (0, 9)),
        ("bytes = 0-9", (0, 9)),
        ("bytes= 10 - 19 ", (10, 19)),
        # open-ended
        ("bytes=500-", (500, 999)),
        ("bytes=0-", (0, 999)),
        ("bytes=999-", (999, 999)),
        # suffix
        ("bytes=-100", (900, 999)),
        ("bytes=-1", (999, 999)),
        ("bytes=-1000", (0, 999)),
        ("bytes=-5000", (0, 999)),
        # unsatisfiable
        ("bytes=1000-", UNSATISFIABLE),
        ("bytes=1000-2000", UNSATISFIABLE),
        ("bytes=5000-", UNSATISFIABLE),
        ("bytes=-0", UNSATISFIABLE),
        # multiple ranges: ignored (whole body)
        ("bytes=0-1,5-6", None),
        ("bytes=0-1, -5", None),
        # garbage: ignored
        ("", None),
        ("bytes", None),
        ("bytes=", None),
        ("bytes=-", None),
        ("bytes=5", None),
        ("bytes=a-b", None),
        ("bytes=1-a", None),
        ("bytes=-x", None),
        ("bytes=5-3", None),  # last < first is a syntax error
        ("bytes=--5", None),
        ("bytes=1.5-2", None),
        ("bytes=+1-2", None),
        ("items=0-9", None),
        ("0-9", None),
        # non-ASCII "digits" are garbage too
        ("bytes=\u00b2-", None),  # superscript two: str.isdigit() but not an int
        ("bytes=0-\u00b9", None),
        ("bytes=-\u00b2", None),
    ],
)
def test_parse_range(header: str, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize("header", ["bytes=0-", "bytes=0-0", "bytes=-1", "bytes=-0"])
def test_any_range_of_an_empty_body_is_unsatisfiable(header: str) -> None:
    assert parse_range(header, 0) == UNSATISFIABLE


@given(st.text(), st.integers(min_value=0, max_value=10**6))
@example("bytes=\u00b2-", 10)
@example("bytes=0-\u2075", 10)
def test_parse_range_never_raises(header: str, size: int) -> None:
    parse_range(header, size)


@given(
    st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=0, max_value=2 * 10**6),
    st.integers(min_value=0, max_value=2 * 10**6) | st.none(),
)
def test_a_satisfiable_range_lies_inside_the_body(size: int, first: int, last: int | None) -> None:
    header = f"bytes={first}-" + ("" if last is None else str(last))
    span = parse_range(header, size)
    if last is not None and last < first:
        assert span is None
    elif first >= size:
        assert span == UNSATISFIABLE
    else:
        assert span is not None and span != UNSATISFIABLE
        lo, hi = span
        assert lo == first
        assert lo <= hi <= size - 1
        assert hi == (size - 1 if last is None else min(last, size - 1))


@given(st.integers(min_value=1, max_value=10**6), st.integers(min_value=1, max_value=2 * 10**6))
def test_a_suffix_range_is_the_last_bytes(size: int, suffix: int) -> None:
    lo, hi = parse_range(f"bytes=-{suffix}", size) or (None, None)
    assert hi == size - 1
    assert lo == max(size - suffix, 0)


def test_parse_range_ignores_absurdly_long_numbers() -> None:
    assert parse_range("bytes=0-" + "9" * 5000, 100) is None
    assert parse_range("bytes=" + "1" * 19 + "-", 100) is None
