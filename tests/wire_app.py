"""An application for edge's visitor wire with no ready-made answers, for wire tests.

Every request takes the full path (``serve``); nothing is a cache hit, nothing is
remembered or counted. Subclass it and define ``serve`` (and ``hit`` to test it).
"""

from __future__ import annotations

from typing import Any

from edge.wire.exchange import Request


class FullPathApp:
    def hit(self, request: Request) -> tuple[bytes, ...] | None:
        return None

    def again(self, head: bytes) -> tuple[bytes, ...] | None:
        return None

    def again_written(self, elapsed: float) -> None:
        pass

    def remember(self, head: bytes, again: Any) -> None:
        pass

    def answered(self, request: Request) -> None:
        pass
