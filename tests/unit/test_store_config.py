"""``[store]``: SQLite by default; PostgreSQL needs a DSN without a password in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import parse_config
from edge.errors import ConfigError
from edge.snapshots.backends import node_name, postgres_password


def test_default_is_sqlite(tmp_path: Path) -> None:
    store = parse_config("", tmp_path).config.store
    assert store.backend == "sqlite" and store.dsn is None


def test_postgres_config_parses(tmp_path: Path) -> None:
    settings = parse_config(
        '[server]\nlisten = "127.0.0.1:9000"\n'
        '[store]\nbackend = "postgres"\ndsn = "postgresql://edge@db.internal:5432/edge"\n'
        'password_env = "EDGE_PG_PASSWORD"\npool_size = 8\nheartbeat_seconds = 0.5\n',
        tmp_path,
    )
    store = settings.config.store
    assert store.backend == "postgres" and store.pool_size == 8
    assert node_name(settings).endswith(":9000")
    assert postgres_password(store, {"EDGE_PG_PASSWORD": "s3cret"}) == "s3cret"
    with pytest.raises(ConfigError, match=r"store\.password_env: environment variable"):
        postgres_password(store, {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('backend = "postgres"', "store.dsn: required"),
        ('backend = "mysql"', "store.backend"),
        ('backend = "postgres"\ndsn = "mysql://x@y/z"', "store.dsn: expected a postgresql"),
        (
            'backend = "postgres"\ndsn = "postgresql://edge:hunter2@db/edge"',
            "store.dsn: must not contain a password",
        ),
        ('dsn = "postgresql://edge@db/edge"', "store.dsn: only used with"),
        ('backend = "postgres"\ndsn = "postgresql://e@d/e"\npool_size = 0', "store.pool_size"),
        ('backend = "postgres"\ndsn = "postgresql://e@d/e"\npassword_env = "A-B"', "password_env"),
        ('backend = "postgres"\ndsn = "postgresql://e@d/e"\nheartbeat = 1', "heartbeat"),
    ],
)
def test_store_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config(f"[store]\n{text}\n", tmp_path)
