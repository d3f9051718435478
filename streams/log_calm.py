"""Calm logs under faults: a message that repeats is written once per interval, with a count.

A broker restart makes aiokafka log the same connection error thousands of times a
second. `RepeatFilter` lets the first occurrence of a message (same logger, level and
format string) through, swallows the repeats for `interval_s`, and lets the next one
through with how many it swallowed: "Unable to connect to node 1 (412 more times in
the last 10 s)". Rare messages pass untouched. `quiet_libraries` caps the chatty
libraries at WARNING: at DEBUG they print whole records, prompts included.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

#: loggers whose DEBUG and INFO lines carry message payloads or per-request noise
LIBRARIES = ("aiokafka", "kafka", "faust", "mode", "httpx", "httpcore", "aiohttp", "asyncio")


@dataclass(slots=True)
class _Seen:
    since: float
    swallowed: int = 0


class RepeatFilter(logging.Filter):
    """Pass a repeated message once per `interval_s`, then say how often it repeated."""

    def __init__(self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._seen: dict[tuple[str, int, str], _Seen] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True  # only warnings and errors come in storms worth folding
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        seen = self._seen.get(key)
        if seen is None or now - seen.since >= self.interval_s:
            if seen is not None and seen.swallowed:
                record.msg = f"{record.msg} ({seen.swallowed} more times in the last "
                record.msg += f"{now - seen.since:.0f} s)"
            self._seen[key] = _Seen(now)
            if len(self._seen) > 10_000:  # a message that embeds ids: forget the oldest
                self._seen.pop(next(iter(self._seen)))
            return True
        seen.swallowed += 1
        return False


def quiet_libraries(level: int, debug_kafka: bool = False) -> None:
    """Cap the libraries at WARNING (or `level`, if higher) unless Kafka debugging is asked for."""
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(level if debug_kafka else max(logging.WARNING, level))


def calm_handler(handler: logging.Handler, interval_s: float = 10.0) -> logging.Handler:
    """Attach a `RepeatFilter` to a handler (once) and return it."""
    if not any(isinstance(f, RepeatFilter) for f in handler.filters):
        handler.addFilter(RepeatFilter(interval_s))
    return handler
