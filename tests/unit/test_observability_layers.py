"""Observability sits below the visitor stack: importing it loads none of edge.visitor.

The request fields the recorder reads (route, status, bytes, snapshot) live on
edge.wire.exchange.Request, which both sides import (issue 17).
"""

from __future__ import annotations

import subprocess
import sys


def test_the_observer_loads_no_visitor_module() -> None:
    code = (
        "import sys, edge.observability.observer, edge.observability.logs, "
        "edge.observability.metrics\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith('edge.visitor'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"observability imported the visitor stack: {loaded}"
