"""SQLite on a disk that fills up (a real 4 MiB tmpfs): 503 with Retry-After instead of 500s,
/readyz red, nothing acknowledged lost, no corruption, and writes resume once space is freed."""

from __future__ import annotations

import logging
import sqlite3

import httpx
import pytest

from tests.support.oauth import call_tool, login, refresh, register
from tests.support.server import in_process
from tests.support.small_disk import small_disk


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.request.url.path, response.status_code, response.text[:300])
    assert int(response.headers["retry-after"]) >= 1


async def test_a_full_disk_is_503_then_writes_resume_with_nothing_lost_or_corrupted(caplog: pytest.LogCaptureFixture) -> None:
    with small_disk("4m") as disk:
        database = disk.path / "auth-mcp.db"
        async with in_process(database_url=f"sqlite+aiosqlite:///{database}") as env:
            client, issued = await login(env)
            acknowledged = [client.client_id]
            disk.fill()
            caplog.set_level(logging.INFO)
            for _ in range(200):  # the write-ahead log may still have room for a few
                response = await register(env.http, name="x" * 190)
                if response.status_code != 201:
                    break
                acknowledged.append(response.json()["client_id"])
            assert_unavailable(response)
            assert (await env.http.get("/readyz")).status_code == 503
            renewed = await refresh(env, client, issued.refresh_token)
            assert renewed.status_code in (200, 503), renewed.text
            refresh_token = renewed.json()["refresh_token"] if renewed.status_code == 200 else issued.refresh_token
            # Reading still works: a verified token is served.
            assert (await call_tool(env, issued.access_token if renewed.status_code == 503 else renewed.json()["access_token"], "whoami")).status_code == 200
            assert [r.getMessage() for r in caplog.records if r.exc_info] == []

            disk.free()
            assert (await env.http.get("/readyz")).status_code == 200
            again = await register(env.http)
            assert again.status_code == 201
            acknowledged.append(again.json()["client_id"])
            assert (await refresh(env, client, refresh_token)).status_code == 200
        with sqlite3.connect(database) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored = {row[0] for row in db.execute("SELECT client_id FROM clients")}
        assert set(acknowledged) <= stored
