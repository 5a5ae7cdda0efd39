"""The store, on SQLite and on the real PostgreSQL server, through the same code."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator

import pytest

from auth_mcp.storage.engine import create_engine
from auth_mcp.storage.migrate import upgrade
from auth_mcp.storage.records import (
    ClientRecord,
    CodeRecord,
    GitHubCredentials,
    Grant,
    PendingAuthorization,
    TokenPair,
)
from auth_mcp.storage.store import UNUSED_CLIENT_TTL, SqlStore
from auth_mcp.tokens import token_hash
from tests.support.clock import FakeClock
from tests.support.throwaway_postgres import ThrowawayPostgres, throwaway_postgres

NOW = 1_800_000_000


@pytest.fixture
async def store(any_db_url: str) -> AsyncIterator[SqlStore]:
    engine = create_engine(any_db_url)
    await upgrade(engine)
    yield SqlStore(engine=engine, clock=clock_for(engine))
    await engine.dispose()


_CLOCKS: dict[int, FakeClock] = {}


def clock_for(engine: object) -> FakeClock:
    return _CLOCKS.setdefault(id(engine), FakeClock(NOW))


def clock(store: SqlStore) -> FakeClock:
    return clock_for(store.engine)


def grant(grant_id: str = "g1", *, user_id: int = 42, client_id: str = "client-1", expires_at: int = NOW + 300) -> Grant:
    return Grant(
        grant_id=grant_id,
        client_id=client_id,
        client_name="Client",
        github_user_id=user_id,
        github_login=f"user{user_id}",
        scopes=("read:user",),
        resource="http://127.0.0.1:8000/mcp",
        github=GitHubCredentials(token_enc="enc", token_expires_at=None, refresh_token_enc=None, refresh_expires_at=None, scopes=("read:user",)),
        created_at=NOW,
        expires_at=expires_at,
    )


def code(code_hash: str = "c" * 64, grant_id: str = "g1", *, expires_at: int = NOW + 300) -> CodeRecord:
    return CodeRecord(
        code_hash=code_hash,
        grant_id=grant_id,
        client_id="client-1",
        redirect_uri="http://127.0.0.1:1/cb",
        redirect_uri_provided_explicitly=True,
        code_challenge="challenge",
        scopes=("read:user",),
        resource="http://127.0.0.1:8000/mcp",
        expires_at=expires_at,
        used_at=None,
    )


def pair(tag: str, *, access_ttl: int = 3600, refresh_ttl: int = 30 * 86400) -> TokenPair:
    return TokenPair(
        access_hash=token_hash("at" + tag),
        access_expires_at=NOW + access_ttl,
        refresh_hash=token_hash("rt" + tag),
        refresh_expires_at=NOW + refresh_ttl,
        scopes=("read:user",),
        resource="http://127.0.0.1:8000/mcp",
    )


async def issued(store: SqlStore, tag: str = "1", grant_id: str = "g1") -> TokenPair:
    tokens = pair(tag)
    await store.add_grant_with_code(grant(grant_id), code(token_hash("code" + tag), grant_id))
    assert await store.consume_code(token_hash("code" + tag), tokens, client_id="client-1")
    return tokens


async def test_a_client_round_trips(store: SqlStore) -> None:
    record = ClientRecord(client_id="c1", info={"client_name": "X", "redirect_uris": ["https://x/cb"]}, client_secret_enc="e", created_at=NOW, used_at=None)
    await store.add_client(record)
    assert await store.get_client("c1") == record
    assert await store.get_client("nope") is None


async def test_an_access_token_is_found_by_hash_with_its_persons_identity(store: SqlStore) -> None:
    tokens = await issued(store)
    record = await store.get_access_token(tokens.access_hash)
    assert record is not None
    assert (record.github_user_id, record.github_login, record.client_name, record.grant_id) == (42, "user42", "Client", "g1")
    assert await store.get_access_token(token_hash("other")) is None


async def test_a_code_is_consumed_once_even_by_concurrent_exchanges(store: SqlStore) -> None:
    await store.add_grant_with_code(grant(), code())
    results = await asyncio.gather(*(store.consume_code("c" * 64, pair(str(i)), client_id="client-1") for i in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    used = await store.get_code("c" * 64)
    assert used is not None and used.used_at is not None


async def test_a_refresh_token_rotates_once_even_under_concurrency(store: SqlStore) -> None:
    first = await issued(store)
    results = await asyncio.gather(*(store.rotate_refresh_token(first.refresh_hash, pair(f"r{i}")) for i in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    old = await store.get_refresh_token(first.refresh_hash)
    assert old is not None and old.rotated_at is not None
    # The previous access token went with the rotation.
    assert await store.get_access_token(first.access_hash) is None


async def test_deleting_a_grant_deletes_everything_issued_from_it(store: SqlStore) -> None:
    tokens = await issued(store)
    other = await issued(store, "2", grant_id="g2")
    deleted = await store.delete_grant("g1")
    assert deleted is not None and deleted.grant_id == "g1"
    assert await store.get_access_token(tokens.access_hash) is None
    assert await store.get_refresh_token(tokens.refresh_hash) is None
    assert await store.get_code(token_hash("code1")) is None
    assert await store.get_access_token(other.access_hash) is not None
    assert await store.delete_grant("g1") is None


async def test_an_approved_state_is_taken_once(store: SqlStore) -> None:
    pending = PendingAuthorization(
        request_hash="r" * 64,
        client_id="client-1",
        redirect_uri="http://127.0.0.1:1/cb",
        redirect_uri_provided_explicitly=True,
        code_challenge="ch",
        client_state="client-state",
        scopes=("read:user",),
        resource="http://127.0.0.1:8000/mcp",
        created_at=NOW,
        expires_at=NOW + 600,
    )
    await store.add_pending(pending)
    assert await store.take_pending_by_state("s" * 64) == ("unknown", None)
    assert await store.approve_pending("r" * 64, upstream_state_hash="s" * 64, github_verifier_enc="v", expires_at=NOW + 600)
    assert not await store.approve_pending("r" * 64, upstream_state_hash="t" * 64, github_verifier_enc="v", expires_at=NOW + 600)
    outcomes = await asyncio.gather(*(store.take_pending_by_state("s" * 64) for _ in range(3)))
    assert sorted(outcome for outcome, _ in outcomes) == ["ok", "used", "used"]
    taken = next(p for outcome, p in outcomes if outcome == "ok")
    assert taken is not None and taken.client_state == "client-state" and taken.github_verifier_enc == "v"


async def test_the_refresh_lease_is_held_by_one_until_released_or_expired(store: SqlStore) -> None:
    await store.add_grant_with_code(grant(), code())
    assert await store.acquire_refresh_lease("g1", until=NOW + 30)
    assert not await store.acquire_refresh_lease("g1", until=NOW + 30)
    clock(store).advance(31)
    assert await store.acquire_refresh_lease("g1", until=NOW + 61)
    await store.release_refresh_lease("g1")
    assert await store.acquire_refresh_lease("g1", until=NOW + 61)


async def test_purging_removes_only_what_expired(store: SqlStore) -> None:
    live = await issued(store, "live", grant_id="g-live")
    await store.add_grant_with_code(grant("g-old", expires_at=NOW + 10), code("d" * 64, "g-old", expires_at=NOW + 10))
    await store.add_client(ClientRecord(client_id="unused", info={}, client_secret_enc=None, created_at=NOW, used_at=None))
    clock(store).advance(UNUSED_CLIENT_TTL + 1)
    counts = await store.purge_expired()
    assert counts.grants == 1 and counts.clients == 1 and counts.authorization_codes >= 1
    assert await store.get_grant("g-old") is None
    assert await store.get_refresh_token(live.refresh_hash) is not None
    assert await store.get_grant("g-live") is not None
    assert await store.get_client("unused") is None


async def test_the_last_token_issued_is_the_newest_pair_of_each_grant(store: SqlStore) -> None:
    first = await issued(store, "1", grant_id="g1")
    await issued(store, "2", grant_id="g2")
    clock(store).advance(60)
    assert await store.rotate_refresh_token(first.refresh_hash, pair("1b"))
    assert await store.last_token_issued(["g1", "g2", "unknown"]) == {"g1": NOW + 60, "g2": NOW}
    assert await store.last_token_issued([]) == {}


# PostgreSQL connections: what a read costs, and reads and writes across a database restart --------


@pytest.fixture
def cluster() -> Iterator[ThrowawayPostgres]:
    # The server logs every statement it receives (BEGIN and ROLLBACK included; the empty
    # statement of SQLAlchemy's ping is sent inside BEGIN ... ROLLBACK, so that shows too).
    with throwaway_postgres(settings={"log_statement": "all"}) as postgres:
        yield postgres


@contextlib.asynccontextmanager
async def store_on(cluster: ThrowawayPostgres) -> AsyncIterator[SqlStore]:
    engine = create_engine(cluster.url)
    try:
        await upgrade(engine)
        yield SqlStore(engine=engine, clock=FakeClock(NOW))
    finally:
        await engine.dispose()


def statements_logged(cluster: ThrowawayPostgres, since: int) -> list[str]:
    log = (cluster.directory / "server.log").read_bytes()[since:].decode(errors="replace")
    return re.findall(r"LOG:  (?:statement|execute [^:]*): (\S+)", log)


async def test_a_postgresql_token_lookup_is_one_statement_without_a_transaction_or_a_ping(cluster: ThrowawayPostgres) -> None:
    async with store_on(cluster) as store:
        tokens = await issued(store)
        assert await store.get_access_token(tokens.access_hash) is not None  # the connection is pooled now
        since = (cluster.directory / "server.log").stat().st_size
        for _ in range(3):
            assert await store.get_access_token(tokens.access_hash) is not None
        assert await store.get_access_token(token_hash("unknown")) is None
        assert statements_logged(cluster, since) == ["SELECT"] * 4


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_after_a_database_restart_the_first_reads_and_writes_succeed(cluster: ThrowawayPostgres, mode: str) -> None:
    # The pooled connections die with the server (a clean restart, or a crash); none is used again.
    async with store_on(cluster) as store:
        tokens = await issued(store)
        assert all(await asyncio.gather(*(store.get_access_token(tokens.access_hash) for _ in range(5))))
        assert store.engine.sync_engine.pool.checkedin() >= 2  # type: ignore[attr-defined]

        cluster.restart(mode)
        found = await asyncio.gather(*(store.get_access_token(tokens.access_hash) for _ in range(5)))
        assert all(record is not None and record.grant_id == "g1" for record in found)
        assert await store.get_grant("g1") is not None

        cluster.restart(mode)
        assert await store.acquire_refresh_lease("g1", until=NOW + 30)  # a write first, this time
        assert await store.get_access_token(tokens.access_hash) is not None
