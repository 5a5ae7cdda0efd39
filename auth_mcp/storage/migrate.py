"""Schema versions through Alembic: what `auth-mcp db upgrade` runs and what start-up checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

SchemaState = Literal["current", "empty", "outdated", "unknown"]

# pg_advisory_xact_lock key: replicas starting together on an empty database create it once.
_PG_MIGRATION_LOCK = 0x61757468_6D6370  # "auth" "mcp"


class SchemaError(RuntimeError):
    """The database schema does not match this version of auth-mcp; the message says what to do."""


@dataclass(frozen=True)
class SchemaStatus:
    state: SchemaState
    current: str | None
    head: str


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", "auth_mcp:migrations")
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "auth_mcp/migrations has no revision"
    return head


def _status_sync(connection: Any) -> SchemaStatus:
    head = head_revision()
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        tables = set(inspect(connection).get_table_names())
        if not tables - {"alembic_version"}:
            return SchemaStatus("empty", None, head)
        # Another replica may have committed its migration (tables and version row together)
        # between the two reads above (READ COMMITTED): read the version again before calling
        # the tables foreign.
        current = MigrationContext.configure(connection).get_current_revision()
        if current is None:
            return SchemaStatus("unknown", None, head)
    if current == head:
        return SchemaStatus("current", current, head)
    known = {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}
    return SchemaStatus("outdated" if current in known else "unknown", current, head)


async def schema_status(engine: AsyncEngine) -> SchemaStatus:
    async with engine.connect() as conn:
        return await conn.run_sync(_status_sync)


def _upgrade_sync(connection: Any, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    config = _config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply pending migrations (up to `revision`) in one transaction (PostgreSQL DDL is transactional)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade_sync, revision)


async def prepare_schema(engine: AsyncEngine, *, upgrade_outdated: bool) -> SchemaStatus:
    """Start-up check: create an empty database, upgrade if allowed, refuse otherwise."""
    status = await schema_status(engine)
    if status.state == "current":
        return status
    if status.state == "empty" or (status.state == "outdated" and upgrade_outdated):
        await upgrade(engine)
        return await schema_status(engine)
    if status.state == "outdated":
        raise SchemaError(
            f"the database schema is at revision {status.current}, this auth-mcp needs {status.head}: "
            "stop the other replicas if a migration needs it, then run `auth-mcp db upgrade` "
            "(or `uv run main.py db upgrade`) with the same AUTH_MCP_DATABASE_URL"
        )
    raise SchemaError(
        f"the database holds tables auth-mcp does not know (schema revision {status.current!r}); "
        "point AUTH_MCP_DATABASE_URL at auth-mcp's own database, or upgrade auth-mcp if a newer version migrated it"
    )
