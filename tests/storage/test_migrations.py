from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from auth_mcp.storage.engine import create_engine
from auth_mcp.storage.migrate import SchemaError, head_revision, prepare_schema, schema_status, upgrade
from auth_mcp.storage.schema import metadata


async def test_the_migrations_build_exactly_the_schema_the_code_uses(any_db_url: str) -> None:
    engine = create_engine(any_db_url)
    try:
        await upgrade(engine)

        def differences(connection: Any) -> list[Any]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, metadata)

        async with engine.connect() as conn:
            assert await conn.run_sync(differences) == []
    finally:
        await engine.dispose()


async def test_an_empty_database_is_created_at_start_up_and_then_current(any_db_url: str) -> None:
    engine = create_engine(any_db_url)
    try:
        assert (await schema_status(engine)).state == "empty"
        status = await prepare_schema(engine, upgrade_outdated=False)
        assert status.state == "current" and status.current == head_revision()
        await prepare_schema(engine, upgrade_outdated=False)  # idempotent
    finally:
        await engine.dispose()


async def test_a_database_of_something_else_is_refused_with_a_reason(any_db_url: str) -> None:
    engine = create_engine(any_db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE someone_elses (id INTEGER)"))
        with pytest.raises(SchemaError, match="does not know"):
            await prepare_schema(engine, upgrade_outdated=True)
    finally:
        await engine.dispose()
