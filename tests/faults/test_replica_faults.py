"""Two replicas behind nginx on a PostgreSQL of the test's own, under a mixed load of logins,
refreshes, registrations and tool calls, while the database restarts or a replica is killed.

What must hold: errors only as 503 (or 502 from nginx for the requests a killed replica was
holding), no acknowledged write lost, no refresh family broken except one whose refresh was in
flight when its replica died, and recovery without restarting anything. Each test stays well
under 30 s; the long version of the same load is bench/soak.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.deployment import deployment
from tests.support.oauth import Client, Tokens, call_tool, login, refresh, register
from tests.support.remote import Remote
from tests.support.throwaway_postgres import ThrowawayPostgres, throwaway_postgres

FAMILIES = 6
LOAD_BEFORE_FAULT = 1.5  # seconds
LOAD_AFTER_FAULT = 3.0


@pytest.fixture
def postgres() -> Iterator[ThrowawayPostgres]:
    with throwaway_postgres() as cluster:
        yield cluster


@dataclass
class Family:
    """One client's chain of refresh tokens."""

    client: Client
    tokens: Tokens
    unacknowledged: bool = False  # the last refresh got no answer: it may or may not have rotated
    broken_after_unacknowledged: int = 0
    broken: bool = False


@dataclass
class Load:
    remote: Remote
    families: list[Family]
    statuses: Counter[int] = field(default_factory=Counter)
    registered: list[str] = field(default_factory=list)
    logins: int = 0
    logins_after_fault: int = 0
    fault_at: float | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def refreshes(self, family: Family) -> None:
        while not self.stop.is_set():
            try:
                response = await refresh(self.remote, family.client, family.tokens.refresh_token)  # type: ignore[arg-type]
            except httpx.TransportError:
                family.unacknowledged = True
                continue
            self.statuses[response.status_code] += 1
            if response.status_code == 200:
                body = response.json()
                family.tokens = Tokens(body["access_token"], body["refresh_token"], body["scope"], body["expires_in"])
                family.unacknowledged = False
                tool = await call_tool(self.remote, family.tokens.access_token, "whoami")  # type: ignore[arg-type]
                self.statuses[tool.status_code] += 1
            elif response.status_code in (502, 503, 504):
                family.unacknowledged = True
                await asyncio.sleep(0.05)
            else:
                family.broken = True
                family.broken_after_unacknowledged += family.unacknowledged
                return

    async def registrations(self) -> None:
        while not self.stop.is_set():
            try:
                response = await register(self.remote.http)
            except httpx.TransportError:
                continue
            self.statuses[response.status_code] += 1
            if response.status_code == 201:
                self.registered.append(response.json()["client_id"])
            else:
                await asyncio.sleep(0.05)

    async def logins_forever(self, name: str) -> None:
        while not self.stop.is_set():
            try:
                await login(self.remote, login=name)  # type: ignore[arg-type]
            except (AssertionError, httpx.TransportError):
                await asyncio.sleep(0.05)  # a step landed on the dead replica or hit the outage: start over
                continue
            self.logins += 1
            if self.fault_at is not None and time.monotonic() > self.fault_at + 0.5:
                self.logins_after_fault += 1


async def families(remote: Remote) -> list[Family]:
    made = []
    for index in range(FAMILIES):
        client, tokens = await login(remote, login=f"person{index}")  # type: ignore[arg-type]
        made.append(Family(client, tokens))
    return made


async def run_with_fault(load: Load, fault: Callable[[], Awaitable[None]], workers: list[Awaitable[None]]) -> None:
    tasks = [asyncio.create_task(worker) for worker in workers]  # type: ignore[arg-type]
    try:
        await asyncio.sleep(LOAD_BEFORE_FAULT)
        load.fault_at = time.monotonic()
        await fault()
        await asyncio.sleep(LOAD_AFTER_FAULT)
    finally:
        load.stop.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)


async def ready(url: str) -> None:
    """`url`'s /readyz turns 200 within 15 seconds."""
    async with httpx.AsyncClient() as http:
        for _ in range(150):
            if (await http.get(f"{url}/readyz")).status_code == 200:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not become ready again within 15 seconds")


def replica_logs(tmp_path: Path) -> str:
    return "".join(path.read_text(errors="replace") for path in tmp_path.glob("replica-*.log"))


def nginx_statuses(tmp_path: Path) -> Counter[tuple[str, int]]:
    """(path, status) of every request the load balancer answered (logins' steps included)."""
    lines = re.findall(r'"[A-Z]+ ([^ ?"]*)[^"]*" (\d{3}) ', (tmp_path / "access.log").read_text())
    return Counter((path, int(status)) for path, status in lines)


async def test_postgresql_restarted_under_load_loses_nothing_acknowledged_and_answers_only_503(
    tmp_path: Path, postgres: ThrowawayPostgres
) -> None:
    with deployment(tmp_path, postgres.url) as deployed:
        remote = Remote(deployed.issuer)
        try:
            load = Load(remote, await families(remote))
            workers = [load.refreshes(family) for family in load.families]
            workers += [load.registrations(), load.registrations(), load.logins_forever("walker")]

            async def restart() -> None:
                await asyncio.to_thread(postgres.restart, "fast")

            await run_with_fault(load, restart, workers)
            for replica in deployed.replicas:
                await ready(replica)  # recovered without a restart of the replicas
            # A refresh answered 503 may have committed before the connection died: its retry is
            # then a replay (400). Every other family's newest pair still works.
            broken = [family for family in load.families if family.broken]
            assert all(family.broken_after_unacknowledged for family in broken), load.statuses
            statuses = nginx_statuses(tmp_path)
            unexpected = {(path, status): n for (path, status), n in statuses.items() if status not in (200, 201, 302, 303, 503)}
            assert unexpected == ({("/token", 400): len(broken)} if broken else {}), statuses
            for family in load.families:
                if not family.broken:
                    assert (await refresh(remote, family.client, family.tokens.refresh_token)).status_code == 200  # type: ignore[arg-type]
            assert load.logins_after_fault >= 1
            stored = await stored_clients(postgres)
            assert set(load.registered) <= stored
            assert "Traceback" not in replica_logs(tmp_path)
            print(f"statuses {dict(Counter(status for _, status in statuses.elements()))}, {len(load.registered)} registrations, {load.logins} logins")
        finally:
            await remote.aclose()


async def test_a_replica_killed_mid_load_breaks_no_refresh_family_beyond_the_one_in_flight(
    tmp_path: Path, postgres: ThrowawayPostgres
) -> None:
    with deployment(tmp_path, postgres.url) as deployed:
        remote = Remote(deployed.issuer)
        try:
            load = Load(remote, await families(remote))
            workers = [load.refreshes(family) for family in load.families]
            workers += [load.logins_forever("walker"), load.logins_forever("runner"), load.registrations()]

            async def kill() -> None:
                os.kill(deployed.pids[0], signal.SIGKILL)

            await run_with_fault(load, kill, workers)
            # nginx answers 502 for what the dead replica held; the survivor serves everything else.
            broken = [family for family in load.families if family.broken]
            assert all(family.broken_after_unacknowledged == 1 for family in broken), load.statuses
            statuses = nginx_statuses(tmp_path)
            unexpected = Counter(
                {(path, status): n for (path, status), n in statuses.items() if status not in (200, 201, 302, 303, 502)}
            )
            # A login whose callback the dead replica took (state spent) and nginx then retried on
            # the other one (a GET) ends in 400 "already used": that login starts over.
            assert unexpected[("/github/callback", 400)] <= 2, statuses
            assert unexpected[("/token", 400)] == len(broken), statuses
            assert set(unexpected) <= {("/github/callback", 400), ("/token", 400)}, statuses
            for family in load.families:
                if not family.broken:
                    assert (await refresh(remote, family.client, family.tokens.refresh_token)).status_code == 200  # type: ignore[arg-type]
            assert load.logins_after_fault >= 1
            assert set(load.registered) <= await stored_clients(postgres)
            print(f"statuses {dict(Counter(status for _, status in statuses.elements()))}, {len(broken)} families broken in flight, {load.logins} logins")
        finally:
            await remote.aclose()


async def stored_clients(postgres: ThrowawayPostgres) -> set[str]:
    connection = await asyncpg.connect(postgres.dsn, timeout=10)
    try:
        return {row["client_id"] for row in await connection.fetch("SELECT client_id FROM clients")}
    finally:
        await connection.close()
