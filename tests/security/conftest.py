"""Security tests reuse the integration fixtures: a real ``edge serve`` on loopback ports."""

from tests.integration.conftest import api, server, session, visitor

__all__ = ["api", "server", "session", "visitor"]
