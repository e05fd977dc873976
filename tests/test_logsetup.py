"""The log line format: the fast formatter writes what logging.Formatter would (issue 11)."""

from __future__ import annotations

import logging
import sys

from gateway.logsetup import LineFormatter

STANDARD = logging.Formatter("%(asctime)s.%(msecs)03d %(levelname)-7s %(message)s", "%H:%M:%S")


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("gateway.scan", logging.INFO, __file__, 1, msg, args, exc_info)


def test_same_line_as_the_standard_formatter() -> None:
    fast = LineFormatter()
    for rec in (
        _record("ACCEPT %s qty %d", "dock", 3),
        _record("plain"),
        _record("with a traceback", exc=True),
    ):
        assert fast.format(rec) == STANDARD.format(rec)


def test_the_clock_follows_the_record_time() -> None:
    fast = LineFormatter()
    a, b = _record("a"), _record("b")
    b.created, b.msecs = a.created + 61.0, 7.0
    assert fast.format(a) == STANDARD.format(a)
    assert fast.format(b) == STANDARD.format(b)
