"""Admin API bearer tokens: authentication (401) and authorization (403)."""

from __future__ import annotations

import pytest

from edge.admin_api.auth import Principal, TokenBook, hash_token, new_token
from edge.config import Role, TokenConfig
from edge.errors import Forbidden, Unauthorized

TOKENS = {
    "editor": ("editor-secret", "editor", ("acme",)),
    "publisher": ("publisher-secret", "publisher", ("acme", "beta")),
    "admin": ("admin-secret", "admin", ()),
    "star": ("star-secret", "editor", ("*",)),
}


@pytest.fixture
def book() -> TokenBook:
    return TokenBook(
        [
            TokenConfig(name=name, sha256=hash_token(secret), role=role, sites=sites)  # type: ignore[arg-type]
            for name, (secret, role, sites) in TOKENS.items()
        ]
    )


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "editor-secret",
        "Basic editor-secret",
        "Token editor-secret",
        "Bearer wrong-secret",
        "Bearer editor-secret-but-longer",
        "Bearer EDITOR-SECRET",
        "Bearer " + hash_token("editor-secret"),  # the hash itself is not the token
        "Bearer \udcff",
    ],
)
def test_bad_credentials_are_unauthorized(book: TokenBook, header: str | None) -> None:
    with pytest.raises(Unauthorized) as info:
        book.authenticate(header)
    assert info.value.status == 401


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("Bearer editor-secret", "editor"),
        ("bearer editor-secret", "editor"),
        ("BEARER publisher-secret", "publisher"),
        ("Bearer  admin-secret ", "admin"),
        ("Bearer star-secret", "star"),
    ],
)
def test_right_token_gives_its_principal(book: TokenBook, header: str, name: str) -> None:
    principal = book.authenticate(header)
    _, role, sites = TOKENS[name]
    assert principal == Principal(name, role, frozenset(sites))  # type: ignore[arg-type]


def test_new_token_hashes_to_its_sha256() -> None:
    token, digest = new_token()
    assert hash_token(token) == digest
    assert len(digest) == 64
    assert (
        TokenBook([TokenConfig(name="n", sha256=digest, role="editor", sites=("a",))])
        .authenticate(f"Bearer {token}")
        .name
        == "n"
    )
    assert new_token()[0] != token


@pytest.mark.parametrize(
    ("name", "site", "role", "allowed"),
    [
        ("editor", "acme", "editor", True),
        ("editor", "acme", "publisher", False),  # role too low
        ("editor", "acme", "admin", False),
        ("editor", "beta", "editor", False),  # wrong site
        ("publisher", "acme", "editor", True),
        ("publisher", "beta", "publisher", True),
        ("publisher", "acme", "admin", False),
        ("publisher", "gamma", "editor", False),
        ("admin", "acme", "admin", True),  # admin sees every site, listed or not
        ("admin", "anything", "publisher", True),
        ("star", "anything", "editor", True),  # "*" sees every site ...
        ("star", "anything", "publisher", False),  # ... but keeps its role
    ],
)
def test_authorize(book: TokenBook, name: str, site: str, role: Role, allowed: bool) -> None:
    principal = book.authenticate(f"Bearer {TOKENS[name][0]}")
    if allowed:
        TokenBook.authorize(principal, site, role)
    else:
        with pytest.raises(Forbidden) as info:
            TokenBook.authorize(principal, site, role)
        assert info.value.status == 403


def test_empty_book_authenticates_nobody() -> None:
    with pytest.raises(Unauthorized):
        TokenBook([]).authenticate("Bearer anything")


@pytest.mark.parametrize(
    ("role", "sites", "every"),
    [
        ("admin", [], True),
        ("editor", ["*"], True),
        ("publisher", ["*", "acme"], True),
        ("publisher", ["acme"], False),
        ("editor", ["acme", "other"], False),
    ],
)
def test_who_may_read_figures_of_every_site(role: Role, sites: list[str], every: bool) -> None:
    """/metrics (issue 19): a token scoped to some sites must not see the others'."""
    principal = Principal("t", role, frozenset(sites))
    assert principal.sees_every_site is every
