"""Repeated errors are logged once per interval with a count; libraries stay at WARNING."""

from __future__ import annotations

import logging

from tierline.streams.log_calm import LIBRARIES, RepeatFilter, quiet_libraries


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(msg: str, level: int = logging.ERROR, name: str = "aiokafka") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, ("127.0.0.1:9092",), None)


def test_a_storm_of_one_error_becomes_one_line_per_interval_with_its_count() -> None:
    clock = Clock()
    calm = RepeatFilter(interval_s=10.0, clock=clock)
    passed = []
    for i in range(12_000):  # 12 s at 1,000 lines a second
        clock.now = i / 1000
        line = record("Unable connect to node %s")
        if calm.filter(line):
            passed.append(line.getMessage())
    assert len(passed) == 2
    assert passed[0] == "Unable connect to node 127.0.0.1:9092"
    assert passed[1] == "Unable connect to node 127.0.0.1:9092 (9999 more times in the last 10 s)"


def test_different_messages_and_info_lines_are_not_folded() -> None:
    calm = RepeatFilter(interval_s=10.0, clock=Clock())
    assert calm.filter(record("a"))
    assert calm.filter(record("b"))
    assert calm.filter(record("a", name="faust"))
    assert calm.filter(record("a", level=logging.WARNING))
    assert not calm.filter(record("a"))
    assert all(calm.filter(record("tick", level=logging.INFO)) for _ in range(5))


def test_libraries_stay_at_warning_even_at_debug_unless_kafka_debugging_is_asked() -> None:
    quiet_libraries(logging.DEBUG)
    assert all(logging.getLogger(n).level == logging.WARNING for n in LIBRARIES)
    quiet_libraries(logging.DEBUG, debug_kafka=True)
    assert logging.getLogger("aiokafka").level == logging.DEBUG
    quiet_libraries(logging.ERROR)
    assert logging.getLogger("faust").level == logging.ERROR
