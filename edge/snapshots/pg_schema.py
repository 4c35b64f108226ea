"""The PostgreSQL schema, as versioned migrations edge applies itself.

How this works: ``edge_schema`` holds one row, the schema version. ``MIGRATIONS[i]``
takes a database from version ``i`` to ``i + 1``. Opening a store takes a
transaction-level advisory lock, reads the version and applies what is missing in
the same transaction, so several nodes starting at once migrate exactly once and a
database written by an older edge opens in a newer one. A database written by a
newer edge (a higher version) is refused rather than misread.
"""

from __future__ import annotations

from typing import Any

# Any constant distinct from the per-site locks (which hash the site id).
MIGRATION_LOCK = 0x65646765  # "edge"
POINTERS_CHANNEL = "edge_pointers"
SCHEDULES_CHANNEL = "edge_schedules"
BLOBS_CHANNEL = "edge_blobs"  # a collection removed blobs: every node sweeps its cache

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE blobs (
            site TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size BIGINT NOT NULL,
            data BYTEA NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (site, sha256)
        )""",
        """CREATE TABLE snapshots (
            site TEXT NOT NULL,
            id TEXT NOT NULL,
            parent TEXT,
            message TEXT NOT NULL,
            created_at TEXT NOT NULL,
            actor TEXT NOT NULL,
            files_count INTEGER NOT NULL,
            manifest BYTEA NOT NULL,
            settings BYTEA NOT NULL,
            PRIMARY KEY (site, id)
        )""",
        """CREATE TABLE pointers (
            site TEXT NOT NULL,
            env TEXT NOT NULL CHECK (env IN ('staging', 'production')),
            snapshot TEXT NOT NULL,
            base TEXT,
            updated_at TEXT NOT NULL,
            actor TEXT NOT NULL,
            PRIMARY KEY (site, env)
        )""",
        """CREATE TABLE history (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            site TEXT NOT NULL,
            env TEXT NOT NULL,
            at TEXT NOT NULL,
            from_snapshot TEXT,
            to_snapshot TEXT NOT NULL,
            action TEXT NOT NULL,
            actor TEXT NOT NULL
        )""",
        "CREATE INDEX history_by_site ON history (site, id)",
        """CREATE TABLE schedules (
            id TEXT PRIMARY KEY,
            site TEXT NOT NULL,
            at TEXT NOT NULL,
            snapshot TEXT NOT NULL,
            base TEXT,
            paths BYTEA,
            settings BOOLEAN NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed', 'cancelled')),
            error TEXT,
            created_at TEXT NOT NULL,
            actor TEXT NOT NULL,
            fired_at TEXT
        )""",
        "CREATE INDEX schedules_pending ON schedules (status, at)",
        "CREATE INDEX schedules_by_site ON schedules (site, id)",
        """CREATE TABLE form_submissions (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            site TEXT NOT NULL,
            env TEXT NOT NULL,
            form TEXT NOT NULL,
            at TEXT NOT NULL,
            fields BYTEA NOT NULL
        )""",
        "CREATE INDEX form_submissions_inbox ON form_submissions (site, env, id)",
        """CREATE TABLE page_views (
            site TEXT NOT NULL,
            env TEXT NOT NULL,
            path TEXT NOT NULL,
            day TEXT NOT NULL,
            views BIGINT NOT NULL,
            PRIMARY KEY (site, env, day, path)
        )""",
        """CREATE TABLE outbox (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            site TEXT NOT NULL,
            env TEXT NOT NULL,
            event TEXT NOT NULL,
            url TEXT NOT NULL,
            secret_env TEXT NOT NULL,
            payload BYTEA NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at DOUBLE PRECISION NOT NULL,
            lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            delivered_at TEXT,
            last_error TEXT
        )""",
        "CREATE INDEX outbox_due ON outbox (status, next_at)",
        "CREATE INDEX outbox_by_site ON outbox (site, env, id)",
    ),
    (
        # The cluster's pointer generation: bumped (row-locked, so in commit order)
        # by every transaction that moves a pointer, and sent with its NOTIFY.
        "CREATE TABLE cluster_state (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),"
        " generation BIGINT NOT NULL)",
        "INSERT INTO cluster_state (generation) VALUES (0)",
        # One row per node: the generation it serves, and when it last said so.
        """CREATE TABLE nodes (
            name TEXT PRIMARY KEY,
            generation BIGINT NOT NULL,
            started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            seen_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )""",
    ),
    (
        # Secrets every node must share (the preview-link signing key): made once
        # by whichever node needs one first.
        "CREATE TABLE cluster_secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL)",
    ),
    (
        # What each environment's inbox holds, kept with every insert and delete so
        # the cap is one row's check (edge.snapshots.inbox).
        """CREATE TABLE inbox_usage (
            site TEXT NOT NULL,
            env TEXT NOT NULL,
            submissions BIGINT NOT NULL,
            bytes BIGINT NOT NULL,
            PRIMARY KEY (site, env)
        )""",
        "INSERT INTO inbox_usage (site, env, submissions, bytes)"
        " SELECT site, env, COUNT(*), COALESCE(SUM(octet_length(fields)), 0)"
        " FROM form_submissions GROUP BY site, env",
    ),
    (
        # Blob bytes in bounded chunks, read and written one chunk at a time; the
        # blobs table keeps which site has which blob (edge.snapshots.postgres).
        """CREATE TABLE blob_chunks (
            sha256 TEXT NOT NULL,
            seq INTEGER NOT NULL,
            data BYTEA NOT NULL,
            PRIMARY KEY (sha256, seq)
        )""",
        "INSERT INTO blob_chunks (sha256, seq, data)"
        " SELECT DISTINCT ON (sha256) sha256, 0, data FROM blobs ORDER BY sha256",
        "ALTER TABLE blobs DROP COLUMN data",
        "ALTER TABLE blobs ADD COLUMN touched_at DOUBLE PRECISION NOT NULL DEFAULT 0",
        "CREATE INDEX blobs_by_hash ON blobs (sha256)",
        # Kept by collection while valid (edge.snapshots.retention).
        """CREATE TABLE preview_links (
            site TEXT NOT NULL,
            snapshot TEXT NOT NULL,
            expires DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (site, snapshot)
        )""",
        """CREATE TABLE collected_snapshots (
            site TEXT NOT NULL,
            id TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (site, id)
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


async def migrate(conn: Any, *, upto: int = SCHEMA_VERSION) -> int:
    """Bring the database on ``conn`` (an asyncpg connection) to version ``upto``.

    Returns the version found before. Safe to run from several nodes at once.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS edge_schema (version INTEGER NOT NULL)")
        found = await conn.fetchval("SELECT version FROM edge_schema")
        if found is None:
            await conn.execute("INSERT INTO edge_schema (version) VALUES (0)")
            found = 0
        version = int(found)
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"the store was written by a newer edge (schema {version} > {SCHEMA_VERSION})"
            )
        for target in range(version, upto):
            for statement in MIGRATIONS[target]:
                await conn.execute(statement)
        if upto > version:
            await conn.execute("UPDATE edge_schema SET version = $1", upto)
        return version
