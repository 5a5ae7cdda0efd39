"""Single-use identifiers shared by every replica: the `jti`s of client assertions (RFC 7523 §3
item 7) are remembered in the database until the assertion would have expired anyway."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_mcp.clock import Clock
from auth_mcp.storage.schema import used_assertions


class SqlReplayLedger:
    """`client_assertion.ReplayLedger` on the shared database.

    One statement decides: an insert of the key that, on conflict, only takes over a row whose
    expiry has passed. Two replicas racing on the same key cannot both insert it (primary key),
    and the loser's conditional update matches nothing, so exactly one of them sees a new row.
    """

    def __init__(self, *, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    async def first_use(self, key: str, *, expires_at: int) -> bool:
        now = int(self._clock.now())
        statement = (
            self._insert(used_assertions)
            .values(key_hash=key, expires_at=expires_at)
            .on_conflict_do_update(
                index_elements=[used_assertions.c.key_hash],
                set_={"expires_at": expires_at},
                where=used_assertions.c.expires_at <= now,
            )
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(statement)
        return result.rowcount == 1

    async def purge_expired(self) -> int:
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(used_assertions).where(used_assertions.c.expires_at <= int(self._clock.now())))
        return result.rowcount
