from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, text

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


async def test_a_replica_that_migrates_between_the_status_reads_is_not_taken_for_foreign_tables(postgres_url: str) -> None:
    # Two replicas start on an empty PostgreSQL database: the second one commits the whole schema
    # after the first one found no version row but before it listed the tables.
    checking = create_engine(postgres_url)
    migrated = threading.Event()
    catalog_reads: list[str] = []

    def other_replica_migrates() -> None:
        async def run() -> None:
            other = create_engine(postgres_url)
            try:
                await upgrade(other)
            finally:
                await other.dispose()

        asyncio.run(run())
        migrated.set()

    @event.listens_for(checking.sync_engine, "before_cursor_execute")
    def _between_reads(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "pg_class" in statement:
            catalog_reads.append(statement)
        # The first catalog read is the version check (no alembic_version table yet); the second
        # lists the tables: the other replica commits in between.
        if len(catalog_reads) == 2 and not migrated.is_set():
            worker = threading.Thread(target=other_replica_migrates)
            worker.start()
            worker.join(timeout=60)

    try:
        status = await schema_status(checking)
    finally:
        await checking.dispose()
    assert migrated.is_set()
    assert status.state == "current"
