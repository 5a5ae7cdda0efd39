"""The audit trail through the running server: nothing lost on a clean shutdown, retention enforced."""

from __future__ import annotations

from auth_mcp import admin
from auth_mcp.audit.events import AuditEvent
from auth_mcp.clock import SystemClock
from auth_mcp.storage.audit import AuditQuery, AuditStore
from auth_mcp.storage.engine import create_engine
from auth_mcp.storage.migrate import upgrade
from tests.support.oauth import call_tool, login
from tests.support.server import in_process


async def test_calls_still_waiting_are_written_when_the_server_stops_cleanly(any_db_url: str) -> None:
    settings = {"database_url": any_db_url, "secret_key": "k" * 40}
    async with in_process(**settings) as env:
        _, issued = await login(env, login="dora")
        for _ in range(3):
            await call_tool(env, issued.access_token, "whoami")
        assert env.services.audit.recorder.waiting == 3  # nothing written on the request path
    engine = create_engine(any_db_url)
    try:
        events = await AuditStore(engine=engine, clock=SystemClock(), retention_days=0).find(AuditQuery())
    finally:
        await engine.dispose()
    assert [(event.github_login, event.tool, event.outcome) for event in events] == [("dora", "whoami", "ok")] * 3


async def test_events_older_than_the_retention_period_are_purged(db_url: str) -> None:
    async with in_process(database_url=db_url, audit_retention_days=30) as env:
        _, issued = await login(env, login="dora")
        await call_tool(env, issued.access_token, "whoami")
        await env.services.audit.recorder.flush()
        env.clock.advance(29 * 86400)
        _, issued = await login(env, login="dora")  # the first token has long expired
        await call_tool(env, issued.access_token, "get_user_profile")
        await env.services.audit.recorder.flush()
        env.clock.advance(2 * 86400)
        operator = admin.Operator(
            store=env.services.store, revoker=env.services.revoker, purger=env.services.purger, audit=env.services.audit.store
        )
        report = await admin.purge(operator)
        assert report.data["audit_events"] == 1 and "1 audit event(s) past AUTH_MCP_AUDIT_RETENTION_DAYS" in report.lines[0]
        assert [event.tool for event in await env.services.audit.store.find(AuditQuery())] == ["get_user_profile"]


async def test_a_retention_of_zero_keeps_every_event(db_url: str) -> None:
    async with in_process(database_url=db_url, audit_retention_days=0) as env:
        _, issued = await login(env, login="dora")
        await call_tool(env, issued.access_token, "whoami")
        await env.services.audit.recorder.flush()
        env.clock.advance(3650 * 86400)
        assert await env.services.audit.purge() == 0
        assert len(await env.services.audit.store.find(AuditQuery())) == 1


async def test_metrics_count_tool_calls_per_upstream(db_url: str) -> None:
    async with in_process(database_url=db_url, metrics_token="m" * 20) as env:
        _, issued = await login(env, login="dora")
        await call_tool(env, issued.access_token, "whoami")
        await call_tool(env, issued.access_token, "no_such_tool")
        await env.services.audit.recorder.flush()
        text = (await env.http.get("/metrics", headers={"Authorization": "Bearer " + "m" * 20})).text
    assert 'auth_mcp_tool_calls_total{outcome="ok",upstream="builtin"} 1.0' in text
    assert 'auth_mcp_tool_calls_total{outcome="tool_error",upstream="builtin"} 1.0' in text
    assert 'auth_mcp_tool_call_failures_total{upstream="builtin"} 1.0' in text
    assert 'auth_mcp_tool_call_duration_seconds_count{upstream="builtin"} 2' in text


async def test_events_with_and_without_null_columns_are_stored_as_they_came(any_db_url: str) -> None:
    # NULL columns are left out of the INSERT (storage/audit.py): every mix of them must still
    # land as it was, in the order it came (the trail's order within a second is the insert order).
    def event(n: int, client_name: str | None, detail: str | None, arguments: str | None) -> AuditEvent:
        outcome = "ok" if detail is None else "refused"
        return AuditEvent(1_800_000_000.4, 7, "dora", "client", client_name, "builtin", f"tool{n}", outcome, 1.5, f"r{n}", detail, arguments)

    events = [
        event(0, "Claude", None, None),
        event(1, "Claude", None, None),
        event(2, None, "insufficient_scope: the call needs repo", None),
        event(3, "Claude", None, '{"q":"x"}'),
        event(4, None, None, None),
        event(5, "Claude", None, None),
        event(6, "Claude", "JSON-RPC error -32602", '{"n":1}'),
    ]
    engine = create_engine(any_db_url)
    try:
        await upgrade(engine)
        store = AuditStore(engine=engine, clock=SystemClock(), retention_days=0)
        await store.add(events)
        await store.add(events[:2])  # statements made once are used again
        found = await store.find(AuditQuery())
    finally:
        await engine.dispose()
    stored = [*events, *events[:2]]
    assert found == [e._replace(at=1_800_000_000.0) for e in reversed(stored)]  # newest first


async def test_a_batch_of_any_size_is_stored_whole_in_its_order(any_db_url: str) -> None:
    # Rows go 500 to a driver call, and on SQLite 50 to a statement, the rest one by one
    # (storage/audit.py): 1,123 is all three, 123 the last two.
    def event(i: int) -> AuditEvent:
        name, detail = "Claude" if i % 7 else None, "why" if i % 5 == 0 else None
        return AuditEvent(1_800_000_000.0, i, f"user{i}", "client", name, "builtin", f"tool{i}", "ok", i / 8, f"r{i}", detail)

    events = [event(i) for i in range(1123)]
    engine = create_engine(any_db_url)
    try:
        await upgrade(engine)
        store = AuditStore(engine=engine, clock=SystemClock(), retention_days=0)
        for size in (1123, 123, 50, 7):
            await store.add(events[:size])
        found = await store.find(AuditQuery(limit=2000))
    finally:
        await engine.dispose()
    assert found == list(reversed([*events, *events[:123], *events[:50], *events[:7]]))
