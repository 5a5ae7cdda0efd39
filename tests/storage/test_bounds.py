"""Storage has a daily bound: unused registrations and pending authorizations are capped
globally, the oldest unused going first, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from auth_mcp.storage.engine import create_engine
from auth_mcp.storage.migrate import upgrade
from auth_mcp.storage.records import ClientRecord, PendingAuthorization
from auth_mcp.storage.store import SqlStore
from tests.support.clock import FakeClock

NOW = 1_800_000_000


@pytest.fixture
async def store(any_db_url: str) -> AsyncIterator[SqlStore]:
    engine = create_engine(any_db_url)
    await upgrade(engine)
    yield SqlStore(engine=engine, clock=FakeClock(NOW))
    await engine.dispose()


def client(i: int, *, used: bool = False) -> ClientRecord:
    return ClientRecord(
        client_id=f"c{i}", info={"client_name": f"c{i}"}, client_secret_enc=None, created_at=NOW + i, used_at=NOW + i if used else None
    )


def pending(i: int, *, approved: bool = False) -> PendingAuthorization:
    return PendingAuthorization(
        request_hash=f"{i:064d}",
        client_id="c",
        redirect_uri="http://127.0.0.1/cb",
        redirect_uri_provided_explicitly=True,
        code_challenge="x" * 43,
        client_state="s",
        scopes=("read:user",),
        resource="http://127.0.0.1:8000/mcp",
        created_at=NOW + i,
        expires_at=NOW + 600 + i,
        upstream_state_hash=f"s{i:063d}" if approved else None,
    )


async def test_unused_registrations_beyond_the_cap_evict_the_oldest_unused(store: SqlStore) -> None:
    await store.add_client(client(0, used=True), max_unused=3)  # used: never evicted, not counted
    evicted = [await store.add_client(client(i), max_unused=3) for i in range(1, 6)]
    assert evicted == [0, 0, 0, 1, 1]
    remaining = {record.client_id for record in await store.list_clients()}
    assert remaining == {"c0", "c3", "c4", "c5"}


async def test_pending_authorizations_beyond_the_cap_evict_the_oldest_unapproved_first(store: SqlStore) -> None:
    await store.add_pending(pending(0, approved=True), max_pending=3)
    evicted = [await store.add_pending(pending(i), max_pending=3) for i in range(1, 5)]
    assert evicted == [0, 0, 1, 1]
    assert await store.get_pending(f"{0:064d}") is not None  # approved: its person is at GitHub right now
    assert await store.get_pending(f"{1:064d}") is None and await store.get_pending(f"{2:064d}") is None
    assert await store.get_pending(f"{4:064d}") is not None
