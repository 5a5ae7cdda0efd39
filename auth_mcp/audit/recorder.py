"""Recording tool calls off the request path.

`record(event)` is a list append and nothing else: the request does not wait for the database,
the log or the metrics. On the hottest path (every built-in tool call) the function `later(build)`
returns does not even build the event: the writer does. A background task takes the new events
every `interval` seconds, or as soon as `take_size` are new: it makes them, writes one JSON log
line per event (logger `auth_mcp.audit`; made and written on the log writer's thread when there
is one, http/log_writer.py) and counts them in the metrics. It inserts them every `interval`
seconds, or as soon as `batch_size` wait, in transactions of up to `batch_size`. Two sizes,
because the two costs differ: a transaction has a fixed cost (on SQLite, BEGIN IMMEDIATE, COMMIT
and the pool's reset each cross to the driver's thread, about 0.5 ms together; AuditStore.add
took 3.5 us a row in 500-row transactions, 2.0 in 5,000-row ones), so fewer, larger ones; but
making a second's events, or formatting their log lines on the log writer's thread, at once
would hold up requests for milliseconds (the log writer holds the interpreter while it makes
lines), so a few hundred at a time.

A failed insert keeps its events for the next round; only when `max_pending` events are waiting
(the database is gone or hangs for long) are events dropped, each counted and logged as an
error, so memory stays bounded. `stop()` writes everything still waiting, so a clean shutdown
loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from auth_mcp.audit.events import AuditEvent, EventRow
from auth_mcp.audit.metrics import AuditMetrics
from auth_mcp.http.log_writer import LogWriter
from auth_mcp.http.logs import Line
from auth_mcp.storage.availability import describe, is_outage

logger = logging.getLogger("auth_mcp.audit")
_own_logger = logging.getLogger(__name__ + ".writer")


class AuditSink(Protocol):
    """Where batches go: `auth_mcp.storage.audit.AuditStore`. Either stores all or raises."""

    async def add(self, events: Sequence[EventRow]) -> None: ...


class AuditRecorder:
    def __init__(
        self,
        *,
        sink: AuditSink,
        metrics: AuditMetrics | None,
        batch_size: int = 5000,
        take_size: int = 500,
        interval: float = 1.0,
        max_pending: int = 100_000,
        lines: LogWriter | None = None,
    ) -> None:
        self._sink = sink
        self._lines = lines
        self._metrics = metrics
        self._batch_size = batch_size
        self._take_size = take_size
        self._interval = interval
        self._max_pending = max_pending
        # Not yet logged: events, or notes to make them from behind their builder's number (`later`).
        self._new: list[AuditEvent | tuple[Any, ...]] = []
        self._builders: list[Callable[[tuple[Any, ...]], AuditEvent]] = []
        self._dropped_new = 0
        self._unwritten: list[EventRow] = []  # logged, not yet in the database (oldest first)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()

    def record(self, event: AuditEvent) -> None:
        """Non-blocking: the event is written within `interval` seconds."""
        self._add(event)

    def later(self, build: Callable[[tuple[Any, ...]], AuditEvent]) -> Callable[[tuple[Any, ...]], None]:
        """A function that takes a note (a tuple) and records `build(note)`, with `build` called by
        the writer, off the request path. What waits is the note behind a number for `build`: of
        plain values, a tuple the garbage collector stops walking at its first pass."""
        kind, add = (len(self._builders),), self._add
        self._builders.append(build)

        def record_later(note: tuple[Any, ...]) -> None:
            add(kind + note)  # one flat tuple: a tuple holding another is set aside a pass later

        return record_later

    def _add(self, item: AuditEvent | tuple[Any, ...]) -> None:
        new = self._new
        if len(new) >= self._max_pending:
            # The writer is stuck (a database that hangs): memory stays bounded, the loss counted.
            self._dropped_new += 1
            return
        new.append(item)
        if len(new) == self._take_size:
            self._wake.set()

    @property
    def waiting(self) -> int:
        return len(self._new) + len(self._unwritten)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def stop(self) -> None:
        """Stop the background task and write every event still waiting."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Log, count and store what is waiting now. Raises if the database refuses (events kept)."""
        async with self._flushing:
            self._take_new()
            await self._store()

    async def _store(self) -> None:
        while self._unwritten:
            batch = self._unwritten[: self._batch_size]
            await self._sink.add(batch)
            del self._unwritten[: len(batch)]

    def _take_new(self) -> None:
        items, self._new = self._new, []
        builders = self._builders
        new = [item if isinstance(item, AuditEvent) else builders[item[0]](item[1:]) for item in items]
        if logger.isEnabledFor(logging.INFO):
            lines = self._lines
            for event in new:
                if lines is not None:
                    lines.submit(_log_line, event)
                else:
                    logger.handle(_log_line(event).record())
        if self._metrics is not None and new:
            self._metrics.observe(new)
        self._unwritten.extend(map(tuple, new))  # plain tuples: the collector sets them aside
        overflow = max(len(self._unwritten) - self._max_pending, 0)
        del self._unwritten[:overflow]
        overflow, self._dropped_new = overflow + self._dropped_new, 0
        if overflow > 0:
            if self._metrics is not None:
                self._metrics.dropped.inc(overflow)
            _own_logger.error("dropped %d audit events: the database has not accepted them for too long", overflow)

    async def _run(self) -> None:
        due = time.monotonic() + self._interval  # when what waits is stored at the latest
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(due - time.monotonic(), 0)):
                    await self._wake.wait()
            self._wake.clear()
            try:
                async with self._flushing:
                    self._take_new()
                    if len(self._unwritten) >= self._batch_size or time.monotonic() >= due:
                        due = time.monotonic() + self._interval
                        await self._store()
            except Exception as exc:
                if not is_outage(exc):
                    _own_logger.exception("writing %d audit events failed; retrying", len(self._unwritten))
                else:  # the database is down or full: one line, like every request refused meanwhile
                    _own_logger.warning("writing %d audit events failed, retrying: %s", len(self._unwritten), describe(exc))


def _log_line(event: AuditEvent) -> Line:
    """The event's JSON log line, with its own time and request id. ASCII only: the line's message
    is this JSON as text, and client names, tool names and details come from outside; escaped, no
    C1 control, line separator or bidirectional override reaches a terminal raw."""
    return Line(logger.name, event.at, event.request_id, event.json_text(), (), functools.partial(_extra, event))


def _extra(event: AuditEvent) -> dict[str, Any]:
    """The line's `extra`: the fields as keys of their own in the JSON format (http/logs.py)."""
    return {"fields": event.fields()}
