"""Bearer tokens: stored as sha256 hashes, compared in constant time, scoped by role."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from edge.config import ROLE_RANK, Role, TokenConfig
from edge.errors import Forbidden, Unauthorized


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a configured token's name, role and sites."""

    name: str
    role: Role
    sites: frozenset[str]

    def can(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    def sees(self, site: str) -> bool:
        return self.role == "admin" or "*" in self.sites or site in self.sites

    @property
    def sees_every_site(self) -> bool:
        """An admin, or a token for ``["*"]``: what may read figures of all sites."""
        return self.role == "admin" or "*" in self.sites


def hash_token(token: str) -> str:
    """The hex sha256 of a token, as the configuration stores it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh random bearer token and its sha256 for the configuration."""
    token = "edge_" + secrets.token_urlsafe(32)
    return token, hash_token(token)


class TokenBook:
    """The configured tokens; lookup compares against every hash in constant time."""

    def __init__(self, tokens: Sequence[TokenConfig]) -> None:
        self._entries = [
            (bytes.fromhex(t.sha256), Principal(t.name, t.role, frozenset(t.sites))) for t in tokens
        ]

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer`` value; 401 otherwise."""
        if not authorization:
            raise Unauthorized("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("expected 'Authorization: Bearer <token>'")
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        found: Principal | None = None
        # Compare with every entry, no early exit: timing says nothing about which
        # (or whether any) token matched.
        for expected, principal in self._entries:
            if hmac.compare_digest(digest, expected):
                found = principal
        if found is None:
            raise Unauthorized("unknown token")
        return found

    @staticmethod
    def authorize(principal: Principal, site: str | None, role: Role | None) -> None:
        """403 unless ``principal`` sees ``site`` and has ``role`` (or better); None: any."""
        if site is not None and not principal.sees(site):
            raise Forbidden(f"token {principal.name!r} has no access to site {site!r}")
        if role is not None and not principal.can(role):
            raise Forbidden(
                f"this call needs the {role} role; token {principal.name!r} is {principal.role}"
            )
