"""Replays scans from a text file: for demos, tests and reproducing a field problem.

File format (UTF-8), one scan per line:

* blank lines and lines whose first non-blank character is ``#`` are skipped;
* whitespace around a line is ignored (write ``\\x20`` for a significant space);
* escapes of :func:`~drivers.scanners.escapes.unescape` are decoded (``\\x1d``,
  ``<GS>`` ...);
* a leading AIM symbology id such as ``]C1`` is simply part of the scan text.

After ``start_delay`` the scans are sent ``interval`` seconds apart; with ``loop`` the
file starts over (re-read, so edits show up). At the end the reader reports
``disconnected`` with detail ``"end of file"`` (marked ``expected``: logged at INFO, as
the end of a replay is not a fault) and sets :attr:`ReplayReader.finished`.
"""

from __future__ import annotations

import logging
import threading
import time

from drivers.scanners.config import ReplayScanner
from drivers.scanners.escapes import unescape
from drivers.scanners.reader_base import report_status
from drivers.scanners.types import DeviceState, RawScan, ScanSink, StatusSink

log = logging.getLogger(__name__)


def parse_replay(text: str) -> list[str]:
    """The scans in a replay file's text (comments and blank lines removed, escapes decoded)."""
    scans: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        scans.append(unescape(stripped))
    return scans


class ReplayReader:
    """Hands the scans of a file to the sink on its own thread."""

    def __init__(
        self,
        name: str,
        cfg: ReplayScanner,
        sink: ScanSink,
        on_status: StatusSink | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self._sink = sink
        self._on_status = on_status
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self._frame_id = 0
        self.last_seen: float | None = None
        #: Set when the file has been played (not looping), could not be read, or stop().
        self.finished = threading.Event()

    @property
    def connected(self) -> bool:
        """True while the file is being replayed."""
        return self._connected

    def start(self) -> None:
        """Start the replay thread (a daemon)."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: already started")
        self._thread = threading.Thread(target=self._run, name=f"replay:{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop replaying (returns promptly, also during a wait)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _status(self, state: DeviceState, detail: str = "", *, expected: bool = False) -> None:
        report_status(self._on_status, self.name, state, detail, expected=expected)

    def _load(self) -> list[str] | None:
        try:
            return parse_replay(self.cfg.path.read_text(encoding="utf-8", errors="replace"))
        except (OSError, ValueError) as e:
            log.error("%s: cannot read replay file %s: %s", self.name, self.cfg.path, e)
            self._status("error", f"cannot read {self.cfg.path}: {e}")
            return None

    def _run(self) -> None:
        try:
            self._replay()
        except Exception as e:  # never die silently
            log.exception("%s: replay failed", self.name)
            self._status("error", f"replay failed: {e}")
        finally:
            self._connected = False
            self.finished.set()

    def _replay(self) -> None:
        scans = self._load()
        if scans is None:
            return
        self._connected = True
        self._status("connected", str(self.cfg.path))
        if self._stop.wait(self.cfg.start_delay):
            return
        first = True
        while scans:
            for text in scans:
                if not first and self._stop.wait(self.cfg.interval):
                    return
                first = False
                self._emit(text)
            if not self.cfg.loop:
                break
            reloaded = self._load()
            if reloaded is None:
                return
            scans = reloaded
        self._connected = False
        log.info("%s: replay of %s finished", self.name, self.cfg.path)
        self._status("disconnected", "end of file", expected=True)

    def _emit(self, text: str) -> None:
        self._frame_id += 1
        now = time.monotonic()
        self.last_seen = now
        scan = RawScan(text, self.name, time.time(), now, self._frame_id, 1)
        try:
            self._sink(scan)
        except Exception:
            log.exception("%s: scan sink failed; scan lost: %r", self.name, scan)
