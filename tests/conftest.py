from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import pytest

T = TypeVar("T")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No AUTH_MCP_* from the developer's shell or a .env file leaks into a test."""
    for name in list(os.environ):
        if name.startswith("AUTH_MCP_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'auth-mcp.db'}"


# PostgreSQL ------------------------------------------------------------------------------------
# The machine's PostgreSQL (trust auth). Each test gets a database of its own, dropped afterwards.
POSTGRES_ADMIN_DSN = os.environ.get("AUTH_MCP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _run(coroutine_factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from a synchronous fixture (in a thread: a test's loop may be running)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(coroutine_factory())).result()  # type: ignore[arg-type]


async def _admin(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _create_database(name: str) -> None:
    try:
        _run(lambda: _admin(f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        # Never skipped: the PostgreSQL path must be tested wherever the suite runs.
        pytest.fail(f"no PostgreSQL server at {POSTGRES_ADMIN_DSN} (trust auth, database test): {exc}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    name = f"auth_mcp_test_{secrets.token_hex(6)}"
    _create_database(name)
    yield f"postgresql+asyncpg://{urlsplit(POSTGRES_ADMIN_DSN).netloc}/{name}"
    _run(lambda: _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both backends through the same code: a SQLite file and the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")
