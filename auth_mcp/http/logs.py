"""Logging set-up: plain text or JSON lines, each with the request id of the request it belongs to.

- A text line cannot be forged from outside: every value interpolated into a message (a decoded
  path, a metadata-document client_id, GitHub's `error` parameter...) has its control and
  bidirectional-override characters escaped (`\\n`, `\\x1b`, `\\u202e`), so a request cannot start
  a fake line or repaint the terminal. The message templates are ours and are left as written.
- A JSON line carries, besides time, level, logger, message and request id, the fields a call
  passes as `extra` (refusals.py, access_log.py) as keys of their own. JSON escapes the rest.
- Database drivers stay at WARNING, even at DEBUG, unless `log_sql` asks for them: at DEBUG they
  print hundreds of lines per login. (The engine never logs bound parameters: storage/engine.py.)
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from auth_mcp.clock import MILLISECONDS, SecondsCache

# The id of the request being served, in every log line it causes (set by every_request.py).
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("auth_mcp_request_id", default="-")

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s]: %(message)s"
DATABASE_LOGGERS = ("sqlalchemy", "asyncpg", "aiosqlite")
# C0 and C1 controls, DEL, line and paragraph separators, bidirectional embeddings and isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_PLAIN = (int, float, type(None))
# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id", "taskName"}


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):  # the log writer's records carry their request's
            record.request_id = request_id.get()
        return True


_batch = threading.local()


class Line(NamedTuple):
    """An INFO line as `logging.getLogger(logger).info(msg, *args, extra=fields)` would make it at
    `created`, in the request `request_id`: made on the request path as a tuple, so that making
    a `LogRecord` and formatting it happen later, on the log writer's thread (log_writer.py)."""

    logger: str
    created: float
    request_id: str
    msg: str
    args: tuple[Any, ...]
    # The `extra` fields, or how to make them: only the JSON format and other handlers read them.
    fields: dict[str, Any] | Callable[[], dict[str, Any]]

    def extra(self) -> dict[str, Any]:
        fields = self.fields
        return fields if isinstance(fields, dict) else fields()

    def record(self) -> logging.LogRecord:
        """The line as a LogRecord, for handlers other than `configure_logging`'s."""
        template = _TEMPLATES.get(self.logger)
        if template is None:
            made = logging.getLogger(self.logger).makeRecord(self.logger, logging.INFO, "(log writer)", 0, "", (), None)
            template = _TEMPLATES.setdefault(self.logger, dict(made.__dict__))
        record = logging.LogRecord.__new__(logging.LogRecord)
        attributes = record.__dict__
        attributes.update(template)
        attributes.update(self.extra())
        created = self.created
        attributes["msg"], attributes["args"], attributes["request_id"] = self.msg, self.args, self.request_id
        attributes["created"], attributes["msecs"] = created, (created - int(created)) * 1000
        attributes["relativeCreated"] = (created - logging._startTime) * 1000  # type: ignore[attr-defined]
        return record


# Per logger, the attributes every record of a Line shares. LogRecord() works out a dozen of them
# (file and module names from a path, thread and process names) on each call, which cost more
# than formatting the line: a record here is a copy of these, plus its own values.
_TEMPLATES: dict[str, dict[str, Any]] = {}


@contextlib.contextmanager
def batched() -> Iterator[Callable[[Line], None]]:
    """While this thread is inside, the stream handler gathers its lines and writes them all
    with one `write` when the block ends (log_writer.py writes its batches so). Yields how to
    log a `Line` in the batch."""
    buffers: dict[_BatchedStreamHandler, list[str]] = {}
    sinks: dict[str, Callable[[Line], None]] = {}  # per logger name: where its lines go

    def sink_for(name: str) -> Callable[[Line], None]:
        handler = _sole_handler(logging.getLogger(name))
        if handler is None:
            return lambda line: logging.getLogger(name).handle(line.record())
        if handler.level > logging.INFO:
            return lambda line: None
        # Formatted straight into this batch's buffer: no record, no walk through the logger
        # tree; its only filter (_RequestId) has nothing to add to a line that has its id.
        append = buffers.setdefault(handler, []).append
        format_line, terminator = handler.formatter.format_line, handler.terminator  # type: ignore[union-attr]
        return lambda line: append(format_line(line) + terminator)

    def emit(line: Line) -> None:
        sink = sinks.get(line.logger)
        if sink is None:
            sink = sinks[line.logger] = sink_for(line.logger)
        sink(line)

    _batch.buffers = buffers
    try:
        yield emit
    finally:
        _batch.buffers = None
        for handler, lines in buffers.items():
            handler.write_lines(lines)


def _sole_handler(logger: logging.Logger) -> _BatchedStreamHandler | None:
    """The stream handler `configure_logging` installed, when it is the only place a record of
    `logger` goes and nothing on the way filters: then formatting the record straight into the
    batch is what `logger.handle` would do, without its walk through the logger tree (about a
    third of the cost of an access line). Anything else configured (a test's log capture, a
    filter, another formatter): None, and records take the usual way."""
    if logger.filters or logger.disabled:
        return None
    current: logging.Logger | None = logger
    while current is not None and current is not logging.root:
        if current.handlers or not current.propagate:
            return None
        current = current.parent
    root = logging.root
    handlers = root.handlers
    if len(handlers) != 1 or root.filters or not isinstance(handlers[0], _BatchedStreamHandler):
        return None
    handler = handlers[0]
    if not isinstance(handler.formatter, TextFormatter | JsonFormatter):
        return None
    return handler if all(isinstance(f, _RequestId) for f in handler.filters) else None


class _BatchedStreamHandler(logging.StreamHandler):
    """A stream handler that, inside `batched()`, writes a batch of lines at once."""

    def emit(self, record: logging.LogRecord) -> None:
        buffers = getattr(_batch, "buffers", None)
        if buffers is None:
            super().emit(record)
            return
        try:
            buffers.setdefault(self, []).append(self.format(record) + self.terminator)
        except Exception:  # noqa: BLE001 (logging's rule: a handler reports its failures, never raises them)
            self.handleError(record)

    def write_lines(self, lines: list[str]) -> None:
        with self.lock:  # type: ignore[union-attr]
            try:
                self.stream.write("".join(lines))
                self.flush()
            except Exception:  # noqa: BLE001 (as above)
                self.handleError(logging.makeLogRecord({"msg": "%d log lines", "args": (len(lines),)}))


def escape(text: str) -> str:
    """`text` with every unsafe character as its Python escape (`\\n`, `\\x1b`, `\\u202e`)."""
    return _UNSAFE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def _unsafe(value: Any) -> bool:
    return not isinstance(value, _PLAIN) and _UNSAFE.search(value if isinstance(value, str) else str(value)) is not None


def _safe(value: Any) -> Any:
    """The value itself when its text is safe, else its text escaped."""
    return escape(value if isinstance(value, str) else str(value)) if _unsafe(value) else value


class TextFormatter(logging.Formatter):
    """The text format, with interpolated values escaped (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second = SecondsCache(lambda second: time.strftime(self.default_time_format, self.converter(second)))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return f"{self._second(record.created)},{MILLISECONDS[int(record.msecs)]}"

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        args = record.args
        # Fast path: one search over the finished message; values are escaped only when it finds
        # something (in a value, or in our own template, which the slow path leaves as it is).
        if args and _UNSAFE.search(message):
            values = args.values() if isinstance(args, Mapping) else args
            if any(_unsafe(value) for value in values):
                # Escaped on a copy: other handlers (and tests' log capture) keep the original.
                safe = {k: _safe(v) for k, v in args.items()} if isinstance(args, Mapping) else tuple(map(_safe, args))
                return super().format(logging.makeLogRecord({**record.__dict__, "args": safe}))
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        # What Formatter.format does for a plain record, with the message made once.
        record.message = message
        record.asctime = self.formatTime(record)
        return TEXT_FORMAT % record.__dict__

    def format_line(self, line: Line) -> str:
        """What `format` gives for the line's record, made without one."""
        message = line.msg % line.args if line.args else line.msg
        if line.args and not (message.isascii() and message.isprintable()) and _UNSAFE.search(message):
            # (ASCII text is unsafe only with a C0 control or DEL, which isprintable finds in C.)
            return self.format(line.record())  # a value to escape: the careful way
        created = line.created
        return f"{self._second(created)},{MILLISECONDS[int((created - int(created)) * 1000)]} INFO    {line.logger} [{line.request_id}]: {message}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, the call's `extra`
    fields (refusals: endpoint, error, client_id...; access lines: method, path, status, person,
    tool...) and the exception. A record with structured `fields` (the audit trail's, logged by
    its writer off the request path) has them as top-level keys, its own request_id and time winning."""

    def __init__(self) -> None:
        super().__init__()
        self._second = SecondsCache(lambda second: datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": f"{self._second(record.created)}.{MILLISECONDS[int(record.msecs)]}+00:00",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and value is not None and key not in entry:
                entry[key] = value
        fields = entry.pop("fields", None)
        if isinstance(fields, dict):
            entry.update(message=record.name.rpartition(".")[2], **fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)

    def format_line(self, line: Line) -> str:
        """What `format` gives for the line's record, made without one."""
        created = line.created
        entry: dict[str, object] = {
            "time": f"{self._second(created)}.{MILLISECONDS[int((created - int(created)) * 1000)]}+00:00",
            "level": "INFO",
            "logger": line.logger,
            "message": line.msg % line.args if line.args else line.msg,
            "request_id": line.request_id,
        }
        for key, value in line.extra().items():
            if value is not None and key not in entry:
                entry[key] = value
        fields = entry.pop("fields", None)
        if isinstance(fields, dict):
            entry.update(message=line.logger.rpartition(".")[2], **fields)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, log_format: Literal["text", "json"], *, log_sql: bool = False) -> None:
    handler = _BatchedStreamHandler(sys.stderr)
    handler.addFilter(_RequestId())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log prints query strings (OAuth codes, states); access_log.py logs without them.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request URL at INFO; ours carry no secrets, but they are noise at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in DATABASE_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if log_sql else logging.WARNING)
