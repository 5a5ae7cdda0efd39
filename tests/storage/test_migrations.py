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


async def test_an_outdated_schema_is_refused_with_the_command_to_run(any_db_url: str) -> None:
    engine = create_engine(any_db_url)
    try:
        await upgrade(engine, "0001")
        status = await schema_status(engine)
        assert status.state == "outdated" and status.current == "0001"
        with pytest.raises(SchemaError, match="auth-mcp db upgrade"):
            await prepare_schema(engine, upgrade_outdated=False)
        # SQLite in a single process may upgrade itself; `auth-mcp db upgrade` does the same anywhere.
        assert (await prepare_schema(engine, upgrade_outdated=True)).state == "current"
    finally:
        await engine.dispose()


async def test_readyz_reports_an_outdated_schema(postgres_url: str) -> None:
    from tests.support.server import in_process

    async with in_process(database_url=postgres_url, secret_key="z" * 40) as env:
        assert (await env.http.get("/readyz")).json()["status"] == "ok"
        async with env.services.store.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        response = await env.http.get("/readyz")
        assert response.status_code == 503 and response.json()["schema"] == "outdated"
