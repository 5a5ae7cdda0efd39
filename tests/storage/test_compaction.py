"""SQLite gives purged space back: the file does not stay at its high-water mark."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from auth_mcp.storage.compaction import reclaim_space
from auth_mcp.storage.engine import create_engine
from auth_mcp.storage.migrate import upgrade
from auth_mcp.storage.records import ClientRecord
from auth_mcp.storage.store import UNUSED_CLIENT_TTL, SqlStore
from tests.support.clock import FakeClock

NOW = 1_800_000_000


async def _flood_and_purge(path: Path) -> tuple[int, int]:
    """Fill the file with 500 unused registrations of 8 KB, purge them; (pages at peak, pages after)."""
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    clock = FakeClock(NOW)
    store = SqlStore(engine=engine, clock=clock)
    try:
        await upgrade(engine)
        for i in range(500):
            info = {"client_name": f"flood {i}", "redirect_uris": ["https://x.example/" + "p" * 8000]}
            await store.add_client(ClientRecord(client_id=f"c{i}", info=info, client_secret_enc=None, created_at=NOW, used_at=None))
        clock.advance(UNUSED_CLIENT_TTL + 1)
        assert (await store.purge_expired()).clients == 500
        reclaimed = await reclaim_space(engine)
        assert reclaimed is not None
        return reclaimed.pages_before, reclaimed.pages_after
    finally:
        await engine.dispose()


def _pragma(path: Path, name: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(f"PRAGMA {name}").fetchone()[0])


async def test_a_new_database_shrinks_back_after_a_purge(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    peak, after = await _flood_and_purge(path)
    assert peak > 1000 and after < peak / 10
    assert _pragma(path, "auto_vacuum") == 2  # incremental from the start
    assert path.stat().st_size < 200 * 1024


async def test_a_database_made_before_auto_vacuum_is_converted_once_and_shrinks(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    await engine.dispose()
    with sqlite3.connect(path, isolation_level=None) as db:  # as files created by earlier versions are
        db.execute("PRAGMA auto_vacuum=NONE")
        db.execute("VACUUM")
    assert _pragma(path, "auto_vacuum") == 0
    peak, after = await _flood_and_purge(path)
    assert after < peak / 10
    assert _pragma(path, "auto_vacuum") == 2


async def test_postgresql_needs_no_compaction(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        assert await reclaim_space(engine) is None
    finally:
        await engine.dispose()
