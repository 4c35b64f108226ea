"""``edge push`` streams each file from disk in bounded chunks and counts bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edge.cli.push import _READ_CHUNK, LocalFile, PushError, stream_file


def local(path: Path) -> LocalFile:
    data = path.read_bytes()
    return LocalFile(path, hashlib.sha256(data).hexdigest(), len(data))


async def test_a_file_is_sent_in_bounded_chunks_and_every_byte_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * (3 * _READ_CHUNK // 256 + 7))
    counted: list[int] = []
    sent = [chunk async for chunk in stream_file(local(path), counted.append)]
    assert b"".join(sent) == path.read_bytes()
    assert max(len(c) for c in sent) <= _READ_CHUNK
    assert counted == [len(c) for c in sent]


async def test_a_file_that_shrank_while_pushing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 5000)
    f = local(path)
    path.write_bytes(b"x" * 10)
    with pytest.raises(PushError, match="changed while pushing"):
        [chunk async for chunk in stream_file(f, lambda n: None)]


async def test_a_file_that_grew_sends_only_the_size_announced(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 5000)
    f = local(path)
    path.write_bytes(b"x" * 9000)  # the server's hash check then refuses it
    sent = b"".join([chunk async for chunk in stream_file(f, lambda n: None)])
    assert len(sent) == 5000
