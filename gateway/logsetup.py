"""Logging set-up: one plain line per scan; bounded volume for repeated device errors."""

from __future__ import annotations

import logging
import sys
import time


class LineFormatter(logging.Formatter):
    """``HH:MM:SS.mmm LEVEL   message``, the clock part built once a second.

    The standard formatter runs ``localtime`` + ``strftime`` for every record; at hundreds
    of scan lines a second that is most of what formatting costs. Same output.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03d %(levelname)-7s %(message)s", "%H:%M:%S")
        self._second = -1
        self._clock = ""

    def clock(self, created: float) -> str:
        """``HH:MM:SS`` of ``created``, built once a second."""
        second = int(created)
        if second != self._second:  # a race here only recomputes the same text
            self._clock = time.strftime("%H:%M:%S", time.localtime(second))
            self._second = second
        return self._clock

    def format(self, record: logging.LogRecord) -> str:
        clock = self.clock(record.created)
        text = f"{clock}.{int(record.msecs):03d} {record.levelname:<7} {record.getMessage()}"
        if record.exc_info or record.exc_text or record.stack_info:
            record.message = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            if record.exc_text:
                text = f"{text}\n{record.exc_text}"
            if record.stack_info:
                text = f"{text}\n{self.formatStack(record.stack_info)}"
        return text


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stderr handler, plus :meth:`emit_lines`: many pre-made lines in one write.

    The scan lines of one commit (up to hundreds in a burst) go out as one ``write`` and
    one flush instead of a ``LogRecord``, a lock round and a flush each; the text is the
    same as :class:`LineFormatter` makes line by line.
    """

    def emit_lines(self, lines: list[tuple[int, str]], created: float) -> None:
        """Write ``(level, message)`` lines stamped ``created`` (one clock for the batch)."""
        lines = [(level, message) for level, message in lines if level >= self.level]
        fmt = self.formatter
        if not isinstance(fmt, LineFormatter) or not lines:
            for level, message in lines:
                self.handle(logging.LogRecord("traceway.scan", level, "", 0, message, None, None))
            return
        stamp = f"{fmt.clock(created)}.{int(created % 1 * 1000):03d}"
        text = "".join(
            f"{stamp} {logging.getLevelName(level):<7} {message}\n" for level, message in lines
        )
        self.acquire()
        try:
            self.stream.write(text)
            self.flush()
        except Exception:
            self.handleError(logging.LogRecord("traceway.scan", 0, "", 0, text, None, None))
        finally:
            self.release()


def line_handler(logger: logging.Logger) -> LineHandler | None:
    """The one :class:`LineHandler` that every record of ``logger`` ends in, or None when
    records go elsewhere too (a test's capture handler, filters): then log record by record."""
    seen: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        seen.extend(current.handlers)
        if not current.propagate:
            break
        current = current.parent
    if len(seen) != 1 or not isinstance(seen[0], LineHandler) or seen[0].filters:
        return None
    return seen[0]


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr (journald under systemd) in plain words."""
    handler = LineHandler(sys.stderr)
    handler.setFormatter(LineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
