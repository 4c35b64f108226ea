"""Security tests reuse the integration fixtures: a real ``edge serve`` subprocess."""

from tests.integration.conftest import api, server, session, visitor

__all__ = ["api", "server", "session", "visitor"]
