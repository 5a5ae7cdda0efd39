"""Giving SQLite's free pages back to the file system after expired rows are purged.

SQLite keeps the pages of deleted rows for reuse: without this, a database that once held a
flood of registrations or pending authorizations stays at that size for good. New databases
are created with `auto_vacuum=INCREMENTAL` (storage/engine.py), and after every purge
`reclaim_space` runs `PRAGMA incremental_vacuum`, which moves no live rows and only truncates
free pages. A database file created before that setting existed (`auto_vacuum=NONE`) is
converted by one full `VACUUM` at its first purge: it rewrites the file once, holding the write
lock for as long as that takes (about a second per 100 MB), and is never needed again.
Finally the WAL file is checkpointed and truncated, since it too keeps its high-water size.
PostgreSQL reclaims space with its own autovacuum: nothing to do there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

_AUTO_VACUUM_NONE = 0
_AUTO_VACUUM_INCREMENTAL = 2


@dataclass(frozen=True, slots=True)
class Reclaimed:
    pages_before: int
    pages_after: int
    converted: bool  # the file was switched to incremental auto-vacuum by a full VACUUM


async def reclaim_space(engine: AsyncEngine) -> Reclaimed | None:
    """Shrink a SQLite file to its live pages; None for other databases."""
    if engine.dialect.name != "sqlite":
        return None
    async with engine.connect() as conn:
        # The driver connection in autocommit mode (engine.py): VACUUM cannot run in a transaction.
        raw: Any = (await conn.get_raw_connection()).driver_connection
        before = await _pragma(raw, "page_count")
        converted = False
        if await _pragma(raw, "auto_vacuum") == _AUTO_VACUUM_NONE:
            await raw.execute(f"PRAGMA auto_vacuum={_AUTO_VACUUM_INCREMENTAL}")
            await raw.execute("VACUUM")
            converted = True
        else:
            # A script runs the pragma to its end; `execute` would take one step (one page).
            await raw.executescript("PRAGMA incremental_vacuum")
        cursor = await raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        await cursor.fetchall()
        after = await _pragma(raw, "page_count")
    return Reclaimed(pages_before=before, pages_after=after, converted=converted)


async def _pragma(raw: Any, name: str) -> int:
    cursor = await raw.execute(f"PRAGMA {name}")
    row = await cursor.fetchone()
    return int(row[0])
