"""Schedule grouping and time handling. Pure.

All pending schedules of a site due at the same moment fire as one pointer swap;
overdue moments (after a restart) fire one after another in time order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from edge.errors import BadRequest
from edge.snapshots.model import Schedule


def parse_moment(text: str, *, name: str = "at") -> str:
    """RFC 3339 with an offset -> canonical UTC ``YYYY-MM-DDTHH:MM:SS.mmmZ``.

    Canonical strings sort in time order and compare equal for the same moment
    written with different offsets. A time without an offset is ambiguous: 400.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadRequest(f"{name!r} is not an RFC 3339 time: {text!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise BadRequest(f"{name!r} needs a UTC offset (e.g. 'Z' or '+02:00'): {text!r}")
    try:
        return format_moment(moment)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise BadRequest(f"{name!r} is out of range: {text!r}") from None


def format_moment(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def moment_epoch(moment: str) -> float:
    """Seconds since the epoch of a canonical moment."""
    return datetime.fromisoformat(moment).timestamp()


def due_groups(pending: Iterable[Schedule], now: str) -> list[list[Schedule]]:
    """Due schedules grouped by (moment, site), earliest moment first.

    Within a group, schedules keep their creation order (their ids sort by it).
    """
    groups: dict[tuple[str, str], list[Schedule]] = {}
    for s in pending:
        if s.status == "pending" and s.at <= now:
            groups.setdefault((s.at, s.site), []).append(s)
    return [sorted(groups[k], key=lambda s: s.id) for k in sorted(groups)]


def next_moment(pending: Iterable[Schedule]) -> str | None:
    """The earliest moment of any pending schedule."""
    return min((s.at for s in pending if s.status == "pending"), default=None)
