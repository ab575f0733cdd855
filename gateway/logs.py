"""Log lines as text or JSON, each line of a call carrying its call id.

The controller marks what it does for a call with :func:`call_context`; a context
variable carries the id into every line logged meanwhile, by any module, and into the
timers and tasks started then (asyncio copies the context into both). Secrets never
reach a log line: the dialplan keeps them as ``SecretStr`` and no code logs a message's
headers, where what a citizen typed travels.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar, Token
from datetime import UTC, datetime

CALL_ID: ContextVar[str | None] = ContextVar("call_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class call_context:  # lower case: used as a function is, ``with call_context(id):``
    """Lines logged inside (and timers and tasks started inside) belong to ``call_id``.

    A class rather than a generator-based context manager: the controller enters one for
    every event of every call, and this costs about a third as much (0.4 us here).
    """

    __slots__ = ("_call_id", "_token")

    def __init__(self, call_id: str) -> None:
        self._call_id = call_id
        self._token: Token[str | None] | None = None

    def __enter__(self) -> None:
        self._token = CALL_ID.set(self._call_id)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            CALL_ID.reset(self._token)


class CallIdFilter(logging.Filter):
    """Puts the current call id (or None) on every record as ``call_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.call_id = CALL_ID.get()
        return True


class TextFormatter(logging.Formatter):
    """The classic line, the message led by its call id when it does not name it."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        call_id = getattr(record, "call_id", None)
        if call_id and call_id not in record.message:
            record.message = f"{call_id}: {record.message}"
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, call_id, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        call_id = getattr(record, "call_id", None)
        if call_id:
            entry["call_id"] = call_id
        entry["message"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, style: str) -> None:
    """Log to standard error as ``text`` or ``json`` at ``level`` (DEBUG ... ERROR)."""
    # Neither format shows where in the source a line was logged, nor the thread or the
    # process: as the logging HOWTO's "Optimization" section says, skip looking them up
    # for every record. Measured side by side at INFO (two lines a call, the default):
    # 0.965x the CPU per call (bench/compare.py with the gateways at INFO, 4 rounds).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler()
    handler.addFilter(CallIdFilter())
    handler.setFormatter(JsonFormatter() if style == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


__all__ = ["CALL_ID", "CallIdFilter", "JsonFormatter", "TextFormatter", "call_context", "configure"]
