"""Log lines written off the event loop: the request path hands over a tuple, a thread does the rest.

Formatting a log line and writing it cost more than a whole authenticated tool call's checks;
the access log and the audit trail each make one per call. So the thread that serves requests only
appends `(make, item)` to a queue; the writer thread turns each into a `Line` (`make`, with the
time and request id of the request, not of the writing) and logs it, in batches: every handler
sees the lines in order, and the text/JSON handler that `configure_logging` installs formats
them without making a `LogRecord` and writes a batch with one `write` call (logs.py, `batched`).

- The writer sleeps until the queue stops being empty, then lets lines gather for `linger`
  seconds, so an idle server wakes it never and a busy one a few times a second.
- Bounded: with `max_pending` lines waiting (a stderr that blocks: a stuck pipe reader), the
  request path writes its line itself. The server then goes at the speed of its log, as any
  server that logs synchronously does, but no line is lost and memory stays bounded.
- `stop()` (the lifespan's shutdown) writes every line still waiting; before `start()` and after
  `stop()` lines are written at once, so nothing is lost in the log of a clean shutdown.
- `flush()` writes what is waiting, in the caller's thread (tests that read the log right away).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from auth_mcp.http.logs import Line, batched

Make = Callable[[Any], Line]


class LogWriter:
    LINGER = 0.05  # seconds a batch may gather

    def __init__(self, *, linger: float | None = None, max_pending: int = 20_000) -> None:
        self._linger = self.LINGER if linger is None else linger
        self._max_pending = max_pending
        self._pending: deque[tuple[Make, Any]] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()  # cuts a batch's gathering short
        self._writing = threading.Lock()  # one writer at a time: lines stay in order
        self._thread: threading.Thread | None = None
        self._running = False

    def submit(self, make: Make, item: Any) -> None:
        """From the request path: `make(item)` is the line, made and written by the writer."""
        pending = self._pending
        pending.append((make, item))
        if not self._running or len(pending) > self._max_pending:
            self.flush()  # no writer, or it cannot keep up: this thread writes, in order
        elif len(pending) == 1:
            self._wake.set()

    def start(self) -> None:
        if self._thread is None:
            self._running = True
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="auth-mcp-log-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Write every line still waiting; later lines are written by whoever logs them."""
        thread, self._thread = self._thread, None
        self._running = False
        if thread is not None:
            self._stopping.set()
            self._wake.set()
            thread.join(timeout=10)
        self.flush()

    def flush(self) -> None:
        """Write what is waiting now, in this thread."""
        with self._writing:
            pending, batch = self._pending, []
            while pending:
                batch.append(pending.popleft())
            if batch:
                _write(batch)

    def _run(self) -> None:
        while self._running:
            self._wake.wait()
            self._wake.clear()
            self._stopping.wait(self._linger)  # let a batch gather
            self.flush()


def _write(batch: list[tuple[Make, Any]]) -> None:
    with batched() as emit:
        for make, item in batch:
            try:
                emit(make(item))
            except Exception:  # a broken line must not stop the writer: report it, go on
                logging.getLogger(__name__).exception("could not write a log line")
