"""Recording tool calls off the request path.

`record(event)` is a list append and nothing else: the request does not wait for the database,
the log or the metrics. A background task takes the events every `interval` seconds (sooner when
`batch_size` are waiting), writes one JSON log line per event (logger `auth_mcp.audit`), counts
them in the metrics, and inserts them in batches. A failed insert keeps its events for the next
round; only when `max_pending` events are waiting (the database is gone for long) are the
oldest dropped, each counted and logged as an error. `stop()` writes everything still waiting,
so a clean shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from auth_mcp.audit.events import AuditEvent
from auth_mcp.audit.metrics import AuditMetrics

logger = logging.getLogger("auth_mcp.audit")
_own_logger = logging.getLogger(__name__ + ".writer")


class AuditSink(Protocol):
    """Where batches go: `auth_mcp.storage.audit.AuditStore`. Either stores all or raises."""

    async def add(self, events: Sequence[AuditEvent]) -> None: ...


class AuditRecorder:
    def __init__(
        self,
        *,
        sink: AuditSink,
        metrics: AuditMetrics | None,
        batch_size: int = 500,
        interval: float = 1.0,
        max_pending: int = 100_000,
    ) -> None:
        self._sink = sink
        self._metrics = metrics
        self._batch_size = batch_size
        self._interval = interval
        self._max_pending = max_pending
        self._new: list[AuditEvent] = []  # not yet logged
        self._unwritten: deque[AuditEvent] = deque()  # logged, not yet in the database
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()

    def record(self, event: AuditEvent) -> None:
        """Non-blocking: the event is written within `interval` seconds."""
        new = self._new
        new.append(event)
        if len(new) == self._batch_size:
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
            while self._unwritten:
                batch = [self._unwritten[index] for index in range(min(self._batch_size, len(self._unwritten)))]
                await self._sink.add(batch)
                for _ in batch:
                    self._unwritten.popleft()

    def _take_new(self) -> None:
        new, self._new = self._new, []
        log = logger.isEnabledFor(logging.INFO)
        for event in new:
            if log:
                fields = event.fields()
                logger.info(json.dumps(fields, ensure_ascii=False), extra={"audit": fields})
            if self._metrics is not None:
                self._metrics.observe(event)
        self._unwritten.extend(new)
        overflow = len(self._unwritten) - self._max_pending
        if overflow > 0:
            for _ in range(overflow):
                self._unwritten.popleft()
            if self._metrics is not None:
                self._metrics.dropped.inc(overflow)
            _own_logger.error("dropped %d audit events: the database has not accepted them for too long", overflow)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                _own_logger.exception("writing %d audit events failed; retrying", len(self._unwritten))
