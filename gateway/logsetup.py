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

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # a race here only recomputes the same text
            self._clock = time.strftime("%H:%M:%S", time.localtime(second))
            self._second = second
        text = f"{self._clock}.{int(record.msecs):03d} {record.levelname:<7} {record.getMessage()}"
        if record.exc_info or record.exc_text or record.stack_info:
            record.message = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            if record.exc_text:
                text = f"{text}\n{record.exc_text}"
            if record.stack_info:
                text = f"{text}\n{self.formatStack(record.stack_info)}"
        return text


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr (journald under systemd) in plain words."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
