"""Sending a byte range of a file in bounded chunks, honouring the writer's pace."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from edge.visitor.bodyfile import FileShrank, send_file


class Recorder:
    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []
        self.ended = self.was_cut = False

    def start(
        self, status: int, headers: Iterable[tuple[str, str]], *, reason: str | None = None
    ) -> None:
        self.status, self.headers = status, list(headers)

    async def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    async def end(self) -> None:
        self.ended = True

    def cut(self) -> None:
        self.was_cut = True


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 4000)  # 1,024,000 bytes
    return path


async def test_the_whole_file_in_bounded_chunks(blob: Path) -> None:
    out = Recorder()
    await send_file(
        out, 200, [("ETag", '"x"')], blob, first=0, length=1_024_000, chunk_bytes=100_000
    )
    assert out.status == 200 and ("Content-Length", "1024000") in out.headers
    assert b"".join(out.chunks) == blob.read_bytes()
    assert max(map(len, out.chunks)) <= 100_000 and out.ended


async def test_a_range_reads_only_its_bytes(blob: Path) -> None:
    out = Recorder()
    await send_file(out, 206, [], blob, first=500_001, length=7, chunk_bytes=100_000)
    assert out.chunks == [blob.read_bytes()[500_001:500_008]]
    assert ("Content-Length", "7") in out.headers


async def test_a_file_shorter_than_promised_cuts_the_connection(blob: Path) -> None:
    out = Recorder()
    with pytest.raises(FileShrank):
        await send_file(out, 200, [], blob, first=1_000_000, length=50_000)
    assert out.was_cut and not out.ended
