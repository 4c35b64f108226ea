"""Structured log lines: timestamps, line format, sampling, the never-blocking writer."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.observability.logs import (
    AccessLogMode,
    LineLog,
    access_mode,
    format_line,
    rfc3339,
    should_log,
)
from edge.observability.metrics import Metrics
from edge.observability.observer import Observer, VisitorRecorder, access_line, endpoint
from edge.router import Route, RouteTable
from tests.unit.visitor_requests import answered
from tests.waiting import eventually_sync


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1_700_000_000.0, "2023-11-14T22:13:20.000Z"),
        (1_700_000_000.5, "2023-11-14T22:13:20.500Z"),
        (1_700_000_000.9999, "2023-11-14T22:13:20.999Z"),
        (1_700_000_001.042, "2023-11-14T22:13:21.042Z"),
        (1_700_000_000.25, "2023-11-14T22:13:20.250Z"),  # back to an earlier second
    ],
)
def test_rfc3339_is_utc_with_milliseconds(ts: float, expected: str) -> None:
    assert rfc3339(ts) == expected


@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
def test_rfc3339_agrees_with_strftime(ts: float) -> None:
    stamp = rfc3339(ts)
    assert stamp.startswith(time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(int(ts))))
    assert stamp.endswith("Z") and len(stamp) == 24


def test_a_line_is_one_json_object_with_ts_and_event_first() -> None:
    line = format_line(1_700_000_000.0, "pointer.moved", {"site": "acme", "from": None, "n": 2})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    doc = orjson.loads(line)
    assert list(doc) == ["ts", "event", "site", "from", "n"]
    assert doc == {
        "ts": "2023-11-14T22:13:20.000Z",
        "event": "pointer.moved",
        "site": "acme",
        "from": None,
        "n": 2,
    }


@given(st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=30), max_size=5))
def test_any_fields_make_exactly_one_line(fields: dict[str, str]) -> None:
    fields.pop("ts", None)
    fields.pop("event", None)
    line = format_line(1.0, "e", fields)
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert orjson.loads(line) == {"ts": rfc3339(1.0), "event": "e", **fields}


def test_values_json_cannot_encode_are_written_as_text() -> None:
    doc = orjson.loads(format_line(0.0, "e", {"error": ValueError("boom"), "p": Path("/x")}))
    assert doc["error"] == "boom" and doc["p"] == "/x"


@pytest.mark.parametrize(
    ("value", "mode"),
    [("off", "off"), ("sampled", "sampled"), ("full", "full"), (True, "full"), (False, "off")],
)
def test_access_mode_reads_old_booleans_too(value: str | bool, mode: str) -> None:
    assert access_mode(value) == mode


@pytest.mark.parametrize(
    ("mode", "rate", "status", "draw", "logged"),
    [
        ("off", 1.0, 500, 0.0, False),
        ("full", 0.01, 200, 0.99, True),
        ("sampled", 0.01, 200, 0.005, True),
        ("sampled", 0.01, 200, 0.01, False),
        ("sampled", 0.01, 404, 0.5, False),
        ("sampled", 0.01, 500, 0.99, True),  # every server error is kept
        ("sampled", 0.01, 503, 0.99, True),
        ("sampled", 1.0, 200, 0.999, True),
    ],
)
def test_should_log(mode: str, rate: float, status: int, draw: float, logged: bool) -> None:
    assert should_log(mode, rate, status, draw) is logged  # type: ignore[arg-type]


@given(
    st.floats(min_value=1e-9, max_value=1.0),
    st.integers(min_value=100, max_value=599),
    st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_sampling_never_logs_more_than_full_nor_less_than_off(
    rate: float, status: int, draw: float
) -> None:
    assert should_log("full", rate, status, draw)
    assert not should_log("off", rate, status, draw)
    if status >= 500:
        assert should_log("sampled", rate, status, draw)


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    drops: list[int] = []
    sink = LineLog("access", tmp_path / "a.log", capacity=3, on_drop=lambda: drops.append(1))
    for i in range(5):  # no writer running yet: the queue fills up
        sink.write(b'{"n":%d}\n' % i)
    assert sink.dropped == 2 and len(drops) == 2
    sink.start()
    sink.close()
    lines = (tmp_path / "a.log").read_bytes().splitlines()
    assert [orjson.loads(line)["n"] for line in lines] == [0, 1, 2]


def test_close_writes_everything_queued_in_order(tmp_path: Path) -> None:
    sink = LineLog("event", tmp_path / "e.log")
    sink.start()
    for i in range(2000):
        sink.emit("tick", {"n": i})
    sink.close()
    lines = (tmp_path / "e.log").read_bytes().splitlines()
    assert [orjson.loads(line)["n"] for line in lines] == list(range(2000))
    assert sink.dropped == 0


def test_reopen_writes_to_a_new_file_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    sink = LineLog("event", path)
    sink.start()
    sink.emit("first", {})
    eventually_sync(lambda: path.exists() and path.read_bytes(), what=f"{path.name} written")
    path.rename(tmp_path / "e.log.1")
    sink.reopen()
    sink.emit("second", {})
    sink.close()
    assert orjson.loads((tmp_path / "e.log.1").read_bytes())["event"] == "first"
    assert orjson.loads(path.read_bytes())["event"] == "second"


def test_an_unwritable_file_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        LineLog("event", tmp_path / "missing" / "e.log").start()


def test_access_line_fields_and_no_query_string() -> None:
    request = answered(
        "/_edge/preview?token=s3cret",
        {"Host": "acme.example", "User-Agent": "curl/8"},
        route=Route("acme", "staging"),
        snapshot="snap1",
    )
    line = access_line(request, 0.000125)
    assert b"s3cret" not in line
    doc = orjson.loads(line)
    assert doc["event"] == "access"
    assert doc["path"] == "/_edge/preview"
    assert doc["duration_ms"] == 0.125
    assert {k: doc[k] for k in ("site", "env", "host", "method", "status", "snapshot")} == {
        "site": "acme",
        "env": "staging",
        "host": "acme.example",
        "method": "GET",
        "status": 200,
        "snapshot": "snap1",
    }
    assert doc["user_agent"] == "curl/8"
    assert {"ts", "bytes", "remote"} <= doc.keys()


def test_access_line_of_an_unknown_host() -> None:
    request = answered("/", {"Host": "nope.example"}, status=421)
    doc = orjson.loads(access_line(request, 0.0))
    assert (doc["site"], doc["env"], doc["host"], doc["snapshot"]) == (
        None,
        None,
        "nope.example",
        None,
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example/a/b?key=secret", "https://hooks.example/a/b"),
        ("https://user:pw@hooks.example:8443/x#frag", "https://hooks.example:8443/x"),
        ("http://127.0.0.1:9/", "http://127.0.0.1:9/"),
    ],
)
def test_endpoint_leaves_out_what_may_be_secret(url: str, shown: str) -> None:
    assert endpoint(url) == shown


@pytest.mark.parametrize(
    ("mode", "rate", "expected"),
    [("full", 0.01, [200, 404, 500, 503]), ("sampled", 1e-12, [500, 503]), ("off", 1.0, [])],
)
def test_the_recorder_writes_access_lines_as_configured(
    tmp_path: Path, mode: AccessLogMode, rate: float, expected: list[int]
) -> None:
    routes = RouteTable.build([("acme.example", Route("acme", "production"))])
    access = LineLog("access", tmp_path / "access.log")
    observer = Observer(
        Metrics(["acme"]),
        LineLog("event", None),
        access,
        access_mode=mode,
        access_sample=rate,
    )
    record = VisitorRecorder(observer).record
    access.start()
    for status in (200, 404, 500, 503):
        route = routes.resolve("acme.example")  # as the visitor handler does
        record(answered("/", {"Host": "acme.example"}, status=status, route=route), 0.001)
    access.close()
    assert [orjson.loads(line)["status"] for line in lines_of(tmp_path / "access.log")] == expected


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []
