"""The log writer: lines made and written off the request path, in order, bounded, none lost."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from auth_mcp.audit.events import AuditEvent
from auth_mcp.audit.recorder import _log_line
from auth_mcp.http.log_writer import LogWriter
from auth_mcp.http.logs import JsonFormatter, Line, TextFormatter, configure_logging
from tests.support.process import serving
from tests.support.server import in_process

logger = logging.getLogger("tests.log_writer")


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.threads: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.threads.append(threading.current_thread().name)


@contextmanager
def collected(handler: logging.Handler | None = None) -> Iterator[Any]:
    handler = handler or Collected()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def line(item: tuple[int, float]) -> Line:
    number, created = item
    return Line(logger.name, created, f"req-{number}", "line %d", (number,), {"number": number})


def wait_for(condition: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_lines_are_made_and_written_on_the_writer_thread_in_order_with_their_own_time_and_request_id() -> None:
    writer = LogWriter(linger=0.01)
    writer.start()
    try:
        with collected() as handler:
            made: list[str] = []

            def make(item: tuple[int, float]) -> Line:
                made.append(threading.current_thread().name)
                return line(item)

            for number in range(200):
                writer.submit(make, (number, 1_700_000_000.25))
            assert len(handler.records) < 200  # submit returned before the lines were written
            wait_for(lambda: len(handler.records) == 200)
    finally:
        writer.stop()
    assert set(made) == set(handler.threads) == {"auth-mcp-log-writer"}
    assert [record.getMessage() for record in handler.records] == [f"line {n}" for n in range(200)]
    first = handler.records[0]
    assert (first.created, first.msecs, first.request_id, first.number) == (1_700_000_000.25, 250.0, "req-0", 0)


def test_stop_writes_every_line_still_waiting() -> None:
    writer = LogWriter(linger=60)  # the writer would wait a minute: stop() must not
    writer.start()
    with collected() as handler:
        for number in range(1000):
            writer.submit(line, (number, time.time()))
        started = time.monotonic()
        writer.stop()
        assert time.monotonic() - started < 5
        assert len(handler.records) == 1000
        writer.submit(line, (1000, time.time()))  # after stop: written at once, not dropped
        assert len(handler.records) == 1001


class Blocking(Collected):
    """A handler stuck until released: a log pipe nobody reads."""

    def __init__(self) -> None:
        super().__init__()
        self.unblock = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if threading.current_thread().name == "auth-mcp-log-writer":
            self.unblock.wait(10)
        super().emit(record)


def test_when_the_writer_cannot_keep_up_the_queue_stays_bounded_and_no_line_is_lost() -> None:
    writer = LogWriter(linger=0.001, max_pending=50)
    writer.start()
    with collected(Blocking()) as handler:
        writer.submit(line, (0, time.time()))
        wait_for(lambda: writer._writing.locked())  # the writer is stuck on line 0

        def submit_more() -> None:
            for number in range(1, 121):
                writer.submit(line, (number, time.time()))

        submitter = threading.Thread(target=submit_more)
        submitter.start()
        wait_for(lambda: len(writer._pending) > 50)
        time.sleep(0.2)
        assert len(writer._pending) == 51  # line 51 waits to be written by its own thread
        handler.unblock.set()
        submitter.join(10)
        writer.stop()
    assert sorted(record.number for record in handler.records) == list(range(121))


def test_a_batch_goes_to_the_stream_in_one_write(capsys: Any) -> None:
    writes: list[str] = []

    class Counting(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", "text")
        root.handlers[0].setStream(Counting())  # type: ignore[attr-defined]
        writer = LogWriter(linger=0.2)
        writer.start()
        for number in range(300):
            writer.submit(line, (number, time.time()))
        writer.stop()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = "".join(writes).splitlines()
    assert len(lines) == 300 and "[req-299]: line 299" in lines[-1]
    assert len(writes) <= 3


async def test_access_lines_are_formatted_off_the_event_loop_thread(db_url: str) -> None:
    formatted_on: list[str] = []

    class Recording(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            self.format(record)
            formatted_on.append(threading.current_thread().name)

    access = logging.getLogger("auth_mcp.access")
    handler, level = Recording(), access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        async with in_process(database_url=db_url) as env:
            for _ in range(20):
                assert (await env.http.get("/healthz")).status_code == 200
            wait_for(lambda: len(formatted_on) >= 20)
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    assert set(formatted_on) == {"auth-mcp-log-writer"}


async def test_the_lifespan_shutdown_writes_every_line_still_waiting(
    db_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LogWriter, "LINGER", 60.0)  # the writer thread would sit on its batch for a minute
    caplog.set_level(logging.INFO)
    async with in_process(database_url=db_url) as env:
        ids = [(await env.http.get("/healthz")).headers["x-request-id"] for _ in range(50)]
        await asyncio.sleep(0.2)
        assert not [r for r in caplog.records if r.name == "auth_mcp.access"]  # all still waiting
    logged = {r.request_id for r in caplog.records if r.name == "auth_mcp.access"}  # type: ignore[attr-defined]
    assert set(ids) <= logged


def test_a_clean_shutdown_of_the_server_process_loses_no_access_line(tmp_path: Any) -> None:
    with serving(cwd=tmp_path, AUTH_MCP_LOG_LEVEL="INFO") as (process, url):
        base = url.replace("localhost", "127.0.0.1")
        with httpx.Client(base_url=base) as http:
            ids = [http.get("/healthz").headers["x-request-id"] for _ in range(400)]
    # serving() stopped the server with SIGTERM; its output is complete.
    output = process.stdout.read() if process.stdout else ""
    logged = [rid for rid in ids if f"[{rid}]: " in output]
    assert len(logged) == 400, f"{400 - len(logged)} access lines lost"


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
def test_a_line_formatted_without_a_record_reads_as_its_record_would(formatter: logging.Formatter) -> None:
    created = 1_700_000_000.0451
    lines = [
        Line("auth_mcp.access", created, "rid-1", '%s "%s %s" %d %.1fms', ("127.0.0.1", "GET", "/healthz", 200, 0.4), {"status": 200, "path": "/healthz"}),
        Line("auth_mcp.access", created, "rid-2", '%s "%s %s" %d', ("127.0.0.1", "GET", "/a\nFAKE LINE \x1b[31m", 404), {"tool": None}),
        Line("auth_mcp.audit", created + 0.9994, "rid-3", '{"tool": "whoami"}', (), {"fields": {"tool": "whoami", "outcome": "ok"}}),
    ]  # fmt: skip
    for line in lines:
        direct = formatter.format_line(line)  # type: ignore[attr-defined]
        assert direct == formatter.format(line.record())
        assert "\n" not in direct and "\x1b" not in direct


def test_an_audit_line_in_text_carries_no_raw_control_or_bidirectional_character() -> None:
    event = AuditEvent(
        at=1_700_000_000.5, github_user_id=1, github_login="alice", client_id="c", client_name="Claude\u202eedualC\x85x\u2028",
        upstream="builtin", tool="whoami", outcome="ok", latency_ms=1.0, request_id="rid", detail=None,
    )  # fmt: skip
    line = TextFormatter().format_line(_log_line(event))
    assert not any(character in line for character in "\u202e\x85\u2028")
    assert "Claude\\u202eedualC\\u0085x\\u2028" in line
