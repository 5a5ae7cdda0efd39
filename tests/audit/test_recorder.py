"""The audit trail's writer and store: batched off the request path, nothing lost on shutdown,
queried by the admin command's filters, purged by age. On SQLite and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import OperationalError

from auth_mcp.audit import AuditEvent, AuditRecorder
from auth_mcp.audit.events import capped_arguments
from auth_mcp.audit.metrics import AuditMetrics
from auth_mcp.clock import SystemClock
from auth_mcp.storage.audit import AuditQuery, AuditStore
from auth_mcp.storage.engine import create_engine
from auth_mcp.storage.migrate import upgrade

NOW = 1_800_000_000.0


def event(**fields: object) -> AuditEvent:
    values: dict[str, object] = {
        "at": NOW,
        "github_user_id": 583231,
        "github_login": "octocat",
        "client_id": "client-1",
        "client_name": "Inspector",
        "upstream": "alpha",
        "tool": "echo",
        "outcome": "ok",
        "latency_ms": 12.5,
        "request_id": "req-1",
    }
    values.update(fields)
    return AuditEvent(**values)  # type: ignore[arg-type]


@pytest.fixture
async def store(any_db_url: str) -> AsyncIterator[AuditStore]:
    engine = create_engine(any_db_url)
    await upgrade(engine)
    try:
        yield AuditStore(engine=engine, clock=SystemClock(), retention_days=0)
    finally:
        await engine.dispose()


async def test_recorded_events_reach_the_database_only_when_flushed_and_all_of_them_on_stop(store: AuditStore) -> None:
    recorder = AuditRecorder(sink=store, metrics=None, batch_size=3)
    for number in range(7):
        recorder.record(event(request_id=f"req-{number}", at=NOW + number))
    assert await store.find(AuditQuery()) == []  # record() wrote nothing itself
    await recorder.stop()  # never started: stop still writes what waits
    found = await store.find(AuditQuery())
    assert [e.request_id for e in found] == [f"req-{n}" for n in reversed(range(7))]
    assert recorder.waiting == 0


class CountingSink:
    """A sink that keeps each batch it is given, as one transaction would store it."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def add(self, events: list[tuple[object, ...]]) -> None:
        self.batches.append([AuditEvent._make(e).request_id for e in events])


async def test_events_are_logged_a_few_hundred_at_a_time_and_stored_thousands_to_a_transaction(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Small batches for the log and the metrics (formatting thousands at once holds up requests),
    # large ones for the database (each transaction has a fixed cost), within `interval` either way.
    sink = CountingSink()
    recorder = AuditRecorder(sink=sink, metrics=None, take_size=3, batch_size=7, interval=60)

    async def settle() -> None:
        for _ in range(10):
            await asyncio.sleep(0)

    def logged() -> list[str]:
        return [json.loads(r.getMessage())["request_id"] for r in caplog.records if r.name == "auth_mcp.audit"]

    with caplog.at_level(logging.INFO, logger="auth_mcp.audit"):
        await recorder.start()
        try:
            for number in range(8):
                recorder.record(event(request_id=f"req-{number}"))
                await settle()
            # Logged three at a time as they came (the seventh and eighth wait for a third);
            # none stored: fewer than seven are waiting, and the interval has not passed.
            assert logged() == [f"req-{n}" for n in range(6)] and sink.batches == []
            recorder.record(event(request_id="req-8"))
            await settle()
            # Nine waiting: stored at once, seven to a transaction.
            assert logged() == [f"req-{n}" for n in range(9)]
            assert sink.batches == [[f"req-{n}" for n in range(7)], ["req-7", "req-8"]]
            recorder.record(event(request_id="req-9"))
        finally:
            await recorder.stop()
    assert sink.batches[2:] == [["req-9"]] and logged()[-1] == "req-9"  # stop() logs and stores what is left


async def test_what_waits_for_the_database_is_set_aside_by_the_garbage_collector(store: AuditStore) -> None:
    # Up to a second of tool calls waits for the writer, and up to `interval` more for the
    # database: as tuples of plain values (not the request's params dicts, not NamedTuples), which
    # the collector stops walking at its first pass, instead of at every collection meanwhile.
    from contextvars import ContextVar
    from types import SimpleNamespace

    from mcp.server.auth.middleware.auth_context import auth_context_var
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

    from auth_mcp.audit.builtin import BuiltinToolAudit
    from auth_mcp.resource.verifier import McpAccessToken

    recorder = AuditRecorder(sink=store, metrics=None, take_size=1000, batch_size=1000, interval=60)
    audit = BuiltinToolAudit(recorder=recorder, clock=SystemClock(), request_id=ContextVar("rid", default="req-1"))
    token = McpAccessToken(token="t", client_id="c", scopes=[], grant_id="g" * 64, github_user_id=7, github_login="octocat")
    reset = auth_context_var.set(AuthenticatedUser(token))

    async def result(_ctx: object) -> dict[str, object]:
        return {"content": [], "isError": False}

    async def call(number: int) -> None:
        params = {"name": "echo", "arguments": {"text": f"hi {number}"}, "_meta": {"progressToken": number}}
        await audit(SimpleNamespace(method="tools/call", params=params), result)  # type: ignore[arg-type]

    try:
        await call(0)  # the token's first call: who it names is made once, then kept with the token
        gc.collect()
        for number in range(1, 4):
            await call(number)
    finally:
        auth_context_var.reset(reset)
    gc.collect()  # one pass
    assert len(recorder._new) == 4 and not any(gc.is_tracked(item) for item in recorder._new)
    recorder._take_new()  # made, logged and counted; waiting for the database
    gc.collect()
    assert len(recorder._unwritten) == 4 and not any(gc.is_tracked(row) for row in recorder._unwritten)
    await recorder.flush()
    assert [(e.github_login, e.tool) for e in await store.find(AuditQuery())] == [("octocat", "echo")] * 4


async def test_the_filters_of_the_admin_command(store: AuditStore) -> None:
    await store.add(
        [
            event(),
            event(
                github_user_id=1,
                github_login="Lena",
                client_id="c2",
                upstream="builtin",
                tool="whoami",
                outcome="refused",
                at=NOW - 7200,
            ),
            event(tool="delete_repo", outcome="tool_error", at=NOW - 60),
            event(tool="echo_100%", at=NOW - 30),
        ]
    )

    async def tools(**query: object) -> list[str]:
        return [found.tool for found in await store.find(AuditQuery(**query))]  # type: ignore[arg-type]

    assert await tools(user="lena") == ["whoami"]
    assert await tools(user="1") == ["whoami"]
    assert await tools(user="583231") == ["echo", "echo_100%", "delete_repo"]
    assert await tools(client_id="c2") == ["whoami"]
    assert await tools(upstream="builtin") == ["whoami"]
    assert await tools(tool="DELETE_*") == ["delete_repo"]
    assert await tools(tool="echo_1?0%") == ["echo_100%"]
    assert await tools(tool="echo_") == []  # _ and % are literal, not LIKE wildcards
    assert await tools(outcome="refused") == ["whoami"]
    assert await tools(since=NOW - 3600) == ["echo", "echo_100%", "delete_repo"]
    assert await tools(limit=1) == ["echo"]


async def test_the_retention_purge_deletes_only_events_older_than_the_cutoff(store: AuditStore) -> None:
    await store.add([event(at=NOW - 91 * 86400), event(at=NOW - 89 * 86400), event(at=NOW)])
    assert await store.purge_before(NOW - 90 * 86400) == 1
    assert len(await store.find(AuditQuery())) == 2


@pytest.fixture
async def unready(tmp_path: object) -> AsyncIterator[tuple[AuditStore, object]]:
    """A real SQLite database without the audit table yet: writes fail until it is migrated."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/unready.db")
    try:
        yield AuditStore(engine=engine, clock=SystemClock(), retention_days=0), engine
    finally:
        await engine.dispose()


async def test_a_failed_write_keeps_the_events_for_the_next_round(unready: tuple[AuditStore, object]) -> None:
    store, engine = unready
    recorder = AuditRecorder(sink=store, metrics=None)
    recorder.record(event())
    with pytest.raises(OperationalError):
        await recorder.flush()
    assert recorder.waiting == 1
    await upgrade(engine)  # type: ignore[arg-type]  # the database is back
    await recorder.flush()
    assert len(await store.find(AuditQuery())) == 1


async def test_a_database_gone_for_long_drops_the_oldest_events_and_counts_them(unready: tuple[AuditStore, object]) -> None:
    registry = CollectorRegistry()
    metrics = AuditMetrics(registry, upstreams=frozenset({"alpha"}))
    recorder = AuditRecorder(sink=unready[0], metrics=metrics, max_pending=2)
    for number in range(5):
        recorder.record(event(request_id=f"req-{number}"))
    with pytest.raises(OperationalError):
        await recorder.flush()
    assert recorder.waiting == 2
    assert registry.get_sample_value("auth_mcp_audit_events_dropped_total") == 3


async def test_each_call_is_one_json_log_line_and_counted_per_upstream(
    store: AuditStore, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    recorder = AuditRecorder(sink=store, metrics=AuditMetrics(registry, upstreams=frozenset({"alpha"})))
    recorder.record(event())
    recorder.record(event(outcome="upstream_failure", upstream="beta"))
    with caplog.at_level(logging.INFO, logger="auth_mcp.audit"):
        await recorder.flush()
    lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == "auth_mcp.audit"]
    assert [line["outcome"] for line in lines] == ["ok", "upstream_failure"]
    assert lines[0]["github_login"] == "octocat" and lines[0]["request_id"] == "req-1" and "arguments" not in lines[0]
    assert registry.get_sample_value("auth_mcp_tool_calls_total", {"upstream": "alpha", "outcome": "ok"}) == 1
    # An unconfigured name (none reach here, but labels must stay bounded) is counted as "other".
    assert registry.get_sample_value("auth_mcp_tool_call_failures_total", {"upstream": "other"}) == 1


def test_the_log_line_s_json_is_what_json_dumps_makes_of_the_fields_escapes_included() -> None:
    # Hostile text in every field that comes from outside: the line stays ASCII, terminal-safe JSON.
    hostile = ["\x1b[2J", "\u202e", 'a"b\\c', "\u2028", "é😀", "\x85", "\n"]
    for index, text in enumerate(hostile):
        for at in (NOW, NOW + 0.503, NOW + 0.9999996, NOW + 0.0005):
            e = event(at=at, github_login=text, client_id=text, client_name=None if index % 2 else text, tool=text,
                      request_id=text, detail=text if index % 2 else None, arguments=text if index % 3 else None,
                      latency_ms=1 / 3 + index)  # fmt: skip
            fields = e.fields()
            assert fields["time"] == datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
            assert e.json_text() == json.dumps(fields) and e.json_text().isascii()


def test_opted_in_arguments_are_capped_in_bytes() -> None:
    assert capped_arguments({"q": "short"}, 100) == '{"q":"short"}'
    long = capped_arguments({"q": "é" * 100}, 20)
    assert long.endswith("…(truncated)") and len(long.removesuffix("…(truncated)").encode()) <= 20


async def test_a_writer_that_never_comes_round_keeps_memory_bounded_and_counts_the_loss(store: AuditStore) -> None:
    registry = CollectorRegistry()
    recorder = AuditRecorder(sink=store, metrics=AuditMetrics(registry, upstreams=frozenset()), max_pending=3)
    for number in range(10):
        recorder.record(event(request_id=f"req-{number}"))
    assert recorder.waiting == 3
    await recorder.flush()
    assert registry.get_sample_value("auth_mcp_audit_events_dropped_total") == 7
    assert len(await store.find(AuditQuery())) == 3


async def test_a_write_failing_for_an_outage_logs_one_line_without_a_traceback(
    unready: tuple[AuditStore, object], caplog: pytest.LogCaptureFixture
) -> None:
    # A database that is down logs one line per refused request; the audit writer must not add
    # a traceback every second. (Here the table is missing: SQLite says so as OperationalError,
    # the error class of a full disk or a read-only file.)
    recorder = AuditRecorder(sink=unready[0], metrics=None, interval=0.01)
    recorder.record(event())
    await recorder.start()
    for _ in range(500):
        if any("audit events failed" in record.getMessage() for record in caplog.records):
            break
        await asyncio.sleep(0.01)
    with pytest.raises(OperationalError):
        await recorder.stop()  # its last flush still fails, and says so to its caller
    failures = [record for record in caplog.records if "audit events failed" in record.getMessage()]
    assert failures and all(record.levelno == logging.WARNING and not record.exc_info for record in failures)


def test_an_event_is_made_whatever_token_the_context_held() -> None:
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken

    from auth_mcp.audit.builtin import BuiltinToolAudit, _who

    recorder = AuditRecorder(sink=None, metrics=None)  # type: ignore[arg-type]
    audit = BuiltinToolAudit(recorder=recorder, clock=SystemClock(), request_id=None)
    plain = AccessToken(token="t", client_id="sdk-client", scopes=[])  # the SDK's own, without our fields
    for user, client_id in ((None, ""), (AuthenticatedUser(plain), "sdk-client")):
        made = audit._event((_who(user), "echo", None, "ok", None, 1.0, 1.5, "req-1"))
        assert (made.client_id, made.github_user_id, made.tool, made.latency_ms) == (client_id, 0, "echo", 500.0)


async def test_a_batch_s_latencies_land_in_each_upstream_s_histogram(store: AuditStore) -> None:
    registry = CollectorRegistry()
    recorder = AuditRecorder(sink=store, metrics=AuditMetrics(registry, upstreams=frozenset({"alpha", "beta"})))
    for upstream, latency_ms in (("alpha", 3.0), ("beta", 40.0), ("alpha", 700.0), ("gamma", 20_000.0)):
        recorder.record(event(upstream=upstream, latency_ms=latency_ms))
    await recorder.flush()

    def sample(name: str, upstream: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"auth_mcp_tool_call_duration_seconds_{name}", {"upstream": upstream, **labels})

    assert (sample("count", "alpha"), sample("count", "beta"), sample("count", "other")) == (2, 1, 1)
    assert sample("sum", "alpha") == pytest.approx(0.703) and sample("sum", "other") == pytest.approx(20.0)
    assert (sample("bucket", "alpha", le="0.005"), sample("bucket", "alpha", le="0.5"), sample("bucket", "alpha", le="1.0")) == (1, 1, 2)
    assert sample("bucket", "other", le="10.0") == 0 and sample("bucket", "other", le="30.0") == 1
