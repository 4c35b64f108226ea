"""Choose the store the configuration names: embedded SQLite or shared PostgreSQL.

Nothing else in edge looks at ``[store] backend``: the server, the supervisor and the
CLI open their store here and only see the :class:`Store` protocol.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from edge.config import Settings, StoreConfig
from edge.errors import ConfigError
from edge.snapshots.sqlite import open_sqlite_store
from edge.snapshots.store import Store
from edge.visitor.preview import KEY_BYTES, load_key


def node_name(settings: Settings) -> str:
    """This node's name in the cluster: configured, or ``<hostname>:<listen port>``."""
    configured = settings.config.store.node_name
    return configured or f"{socket.gethostname()}:{settings.listen.port}"


def postgres_password(store: StoreConfig, environ: Mapping[str, str] = os.environ) -> str | None:
    """The database password from ``password_env`` (a start-up error when unset)."""
    if store.password_env is None:
        return None
    password = environ.get(store.password_env)
    if password is None:
        raise ConfigError(
            f"store.password_env: environment variable {store.password_env} is not set"
        )
    return password


async def preview_key(settings: Settings, store: Store) -> bytes:
    """The preview-link signing key: per data directory, or one for the whole cluster.

    Behind a load balancer a link made through one node is opened on another, so
    with the shared PostgreSQL store the key lives there.
    """
    cluster = store.cluster()
    if cluster is not None:
        return await cluster.shared_secret("preview-key", KEY_BYTES)
    return load_key(settings.data_dir)


@asynccontextmanager
async def open_store(settings: Settings, *, role: str = "worker") -> AsyncIterator[Store]:
    """The configured store, migrated to this version's schema, closed on exit."""
    config = settings.config.store
    if config.backend == "sqlite":
        async with open_sqlite_store(settings.data_dir) as sqlite:
            yield sqlite
        return
    from edge.snapshots.postgres import PostgresStore  # asyncpg only when configured

    assert config.dsn is not None  # checked with the configuration
    store = await PostgresStore.open(
        config.dsn,
        password=postgres_password(config),
        pool_size=config.pool_size,
        connect_timeout=config.connect_timeout,
        application_name=f"edge {node_name(settings)} {role}"[:63],
        blob_cache=settings.data_dir / "blobs",
    )
    try:
        yield store
    finally:
        await store.close()
