"""Edge refuses to serve with aiohttp's pure-Python HTTP parser unless told to.

That parser had request-smuggling bugs the C one did not (CVE-2023-47627,
CVE-2024-52304, CVE-2025-53643, CVE-2025-69224); ``AIOHTTP_NO_EXTENSIONS=1``
forces it, so does an install without the C extension.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.security.wire_support import exchange, get, new_server


@pytest.mark.parametrize("workers", [1, 2])
def test_start_up_refuses_the_python_parser(tmp_path: Path, workers: int) -> None:
    srv = new_server(tmp_path, workers=workers, environ={"AIOHTTP_NO_EXTENSIONS": "1"})
    try:
        with pytest.raises(RuntimeError, match="exited early"):
            srv.start()
    finally:
        srv.stop()
    assert srv.process is not None
    assert srv.process.wait(timeout=30) == 2
    assert "server.allow_python_http_parser" in srv.log()
    assert "AIOHTTP_NO_EXTENSIONS is set" in srv.log()


def test_start_up_accepts_the_python_parser_when_allowed(tmp_path: Path) -> None:
    srv = new_server(
        tmp_path,
        environ={"AIOHTTP_NO_EXTENSIONS": "1"},
        extra_config="allow_python_http_parser = true",
    )
    srv.start()
    try:
        assert exchange(srv.port, get("unknown.example")).first.status == 421
        assert "pure-Python HTTP parser" in srv.log()
    finally:
        srv.stop()


def test_the_c_parser_is_what_serves_by_default(tmp_path: Path) -> None:
    srv = new_server(tmp_path)
    srv.start()
    try:
        assert exchange(srv.port, get("unknown.example")).first.status == 421
        assert "pure-Python" not in srv.log()
    finally:
        srv.stop()
