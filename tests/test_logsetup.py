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


def test_a_batch_of_lines_reads_as_the_same_lines_logged_one_by_one() -> None:
    import io

    from gateway.logsetup import LineHandler

    lines = [(logging.INFO, "ACCEPT dock receive seq=1"), (logging.WARNING, "REJECT dock x")]
    created = 1_795_000_000.25
    batch = io.StringIO()
    h = LineHandler(batch)
    h.setFormatter(LineFormatter())
    h.emit_lines(lines, created)
    one_by_one = []
    for level, msg in lines:
        rec = logging.LogRecord("traceway.scan", level, __file__, 1, msg, None, None)
        rec.created, rec.msecs = created, 250.0
        one_by_one.append(STANDARD.format(rec))
    assert batch.getvalue() == "".join(f"{line}\n" for line in one_by_one)
    h.setLevel(logging.WARNING)  # the handler's own level still applies
    quiet = io.StringIO()
    h.setStream(quiet)
    h.emit_lines(lines, created)
    assert quiet.getvalue() == f"{one_by_one[1]}\n"


def test_lines_are_batched_only_where_nothing_else_listens() -> None:
    from gateway.logsetup import LineHandler, line_handler

    root = logging.getLogger("batch-test-root")
    root.propagate = False
    child = root.getChild("scan")
    h = LineHandler()
    root.handlers[:] = [h]
    try:
        assert line_handler(child) is h
        extra = logging.Handler()  # e.g. pytest's capture, or a second sink
        root.addHandler(extra)
        assert line_handler(child) is None
        root.removeHandler(extra)
        child.addFilter(lambda r: True)
        assert line_handler(child) is None
        child.filters.clear()
        root.handlers[:] = [logging.StreamHandler()]  # not ours: log record by record
        assert line_handler(child) is None
    finally:
        root.handlers.clear()
