"""What the byte-stream readers share.

Pure parts (tested without devices): :class:`HeartbeatMonitor` and
:func:`frame_to_scans`. Shell part: :class:`StreamReader`, a daemon thread that opens a
connection, reads with short timeouts, frames, hands complete scans to the sink, and
reconnects with backoff. Subclasses supply ``_open``/``_read``/``_write``/``_close``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Literal

from drivers.scanners.backoff import Backoff
from drivers.scanners.config import FramerConfig
from drivers.scanners.escapes import make_visible
from drivers.scanners.framer import Frame, Framer
from drivers.scanners.types import DeviceState, DeviceStatus, RawScan, ScanSink, StatusSink

log = logging.getLogger(__name__)

TOO_LONG_CONTEXT = 64  # characters of a too-long frame kept for the rejected scan
_SLICE = 0.1  # longest single wait in the reader loop (bounds stop() latency)


class ConnectionLost(Exception):
    """The device went away (EOF, hang-up); the message is the reason."""


class HeartbeatMonitor:
    """Decides when a device that should send heartbeats has gone quiet.

    Any received byte counts as a sign of life. Silence for ``factor * interval``
    reports ``heartbeat_lost`` once; the next sign of life reports ``alive`` once.
    ``interval <= 0`` disables supervision.
    """

    def __init__(self, interval: float, factor: float = 2.5) -> None:
        self.interval, self.factor = interval, factor
        self.lost = False
        self._last: float | None = None

    @property
    def enabled(self) -> bool:
        """True when a heartbeat interval is configured."""
        return self.interval > 0

    def start(self, now: float) -> None:
        """(Re)start supervision, e.g. on connect: the device counts as alive at ``now``."""
        self._last, self.lost = now, False

    def stop(self) -> None:
        """Suspend supervision (e.g. while disconnected)."""
        self._last, self.lost = None, False

    def deadline(self) -> float | None:
        """Monotonic time at which silence becomes ``heartbeat_lost`` (None: not armed)."""
        if not self.enabled or self._last is None or self.lost:
            return None
        return self._last + self.factor * self.interval

    def observe(self, now: float) -> Literal["alive"] | None:
        """Something arrived at ``now``; returns ``"alive"`` if the device had been lost."""
        self._last = now
        if self.lost:
            self.lost = False
            return "alive"
        return None

    def check(self, now: float) -> Literal["heartbeat_lost"] | None:
        """Returns ``"heartbeat_lost"`` once when the silence has lasted too long."""
        deadline = self.deadline()
        if deadline is not None and now >= deadline:
            self.lost = True
            return "heartbeat_lost"
        return None


def frame_to_scans(
    frame: Frame, scanner: str, frame_id: int, wall: float, mono: float
) -> list[RawScan]:
    """The :class:`RawScan` values a frame hands to the pipeline (none for a heartbeat)."""
    if frame.kind == "heartbeat":
        return []
    if frame.kind == "no_read":
        return [RawScan("", scanner, wall, mono, frame_id, 1, "no_read", "reader sent no-read")]
    if frame.kind == "too_long":
        text = frame.raw.decode("latin-1")[:TOO_LONG_CONTEXT]
        detail = f"frame longer than the limit ({len(frame.raw)}+ bytes)"
        return [RawScan(text, scanner, wall, mono, frame_id, 1, "frame_too_long", detail)]
    n = len(frame.codes)
    return [RawScan(code, scanner, wall, mono, frame_id, n) for code in frame.codes]


class StreamReader:
    """Base of the serial and TCP readers: thread, framing, status, reconnect."""

    kind_name = "stream"

    def __init__(
        self,
        name: str,
        framing: FramerConfig,
        sink: ScanSink,
        on_status: StatusSink | None = None,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self.name = name
        self._sink = sink
        self._on_status = on_status
        self._framer = Framer(framing)
        self._heartbeat = HeartbeatMonitor(framing.heartbeat_interval)
        self._backoff = backoff if backoff is not None else Backoff(jitter="decorrelated")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._io_lock = threading.Lock()  # guards the open handle against send()/close
        self._connected = False
        self._down_reason: str | None = None  # set while an outage is being reported
        self._frame_id = 0
        self._garbage_logged = 0
        self.last_seen: float | None = None
        self.backoff_after_drop = True

    # -- public -------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while the device connection is open."""
        return self._connected

    def start(self) -> None:
        """Start the reader thread (a daemon)."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: already started")
        self._thread = threading.Thread(
            target=self._run, name=f"{self.kind_name}:{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread promptly and close the device."""
        self._stop.set()
        self._interrupt()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: reader thread did not stop within %.1fs", self.name, timeout)

    def send(self, data: bytes) -> bool:
        """Write bytes to the device (thread-safe, bounded); False if not connected or failed."""
        with self._io_lock:
            if not self._connected:
                return False
            try:
                self._write(data)
            except Exception as e:  # a failed beep must never hurt the caller
                log.info("%s: send failed: %s", self.name, e)
                return False
            return True

    # -- for subclasses -----------------------------------------------------------
    def _open(self) -> bool:
        """Open the device; False if stop was requested meanwhile; raise OSError on failure."""
        raise NotImplementedError

    def _read(self, timeout: float) -> bytes:
        """Bytes available within ``timeout`` (b"" if none); raise OSError/ConnectionLost."""
        raise NotImplementedError

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _interrupt(self) -> None:
        """Called from stop(): make a blocked read return (optional)."""

    def _describe(self) -> str:
        return self.name

    def _status(self, state: DeviceState, detail: str = "") -> None:
        if self._on_status is None:
            return
        try:
            self._on_status(DeviceStatus(self.name, "scanner", state, detail, time.time()))
        except Exception:
            log.exception("%s: status sink failed", self.name)

    def _replaced(self, detail: str) -> None:
        """The subclass switched to a new connection: drop the old partial frame."""
        self._discard_partial("connection replaced")
        self._heartbeat.start(time.monotonic())
        log.info("%s: %s", self.name, detail)
        self._status("connected", detail)

    # -- the loop -----------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self._open():
                    break
            except Exception as e:  # OSError expected; anything else must not kill the thread
                if not isinstance(e, OSError):
                    log.exception("%s: unexpected error opening %s", self.name, self._describe())
                self._went_down(f"cannot open {self._describe()}: {e}")
                self._stop.wait(self._backoff.next())
                continue
            self._came_up()
            reason = "stopped"
            try:
                self._pump()
            except (OSError, ConnectionLost) as e:
                reason = str(e) or type(e).__name__
            except Exception as e:  # never let the reader thread die silently
                log.exception("%s: reader failed", self.name)
                reason = f"reader error: {e}"
            self._close_quietly()
            if self._stop.is_set():
                break
            self._went_down(reason)
            if self.backoff_after_drop:
                self._stop.wait(self._backoff.next())
        self._close_quietly()
        if self._down_reason is None:
            self._status("disconnected", "stopped")

    def _close_quietly(self) -> None:
        with self._io_lock:
            self._connected = False
            try:
                self._close()
            except Exception as e:
                log.debug("%s: close: %s", self.name, e)
        self._heartbeat.stop()

    def _came_up(self) -> None:
        with self._io_lock:
            self._connected = True
        self._backoff.reset()
        self._framer.reset()
        self._heartbeat.start(time.monotonic())
        if self._down_reason is not None:
            log.warning("%s: connected again (%s)", self.name, self._describe())
        else:
            log.info("%s: connected (%s)", self.name, self._describe())
        self._down_reason = None
        self._status("connected", self._describe())

    def _went_down(self, reason: str) -> None:
        """Log and report an outage once, however many retries fail."""
        self._discard_partial(reason)
        if self._down_reason is None:
            self._down_reason = reason
            log.warning("%s: disconnected: %s (retrying with backoff)", self.name, reason)
            self._status("disconnected", reason)
        else:
            log.debug("%s: still down: %s", self.name, reason)

    def _discard_partial(self, why: str) -> None:
        if self._framer.pending:
            log.warning(
                "%s: partial frame lost (%s): %s",
                self.name,
                why,
                make_visible(self._framer.pending.decode("latin-1")),
            )
        self._framer.reset()

    def _wait_budget(self, now: float) -> float:
        budget = _SLICE
        for deadline in (self._framer.next_deadline(), self._heartbeat.deadline()):
            if deadline is not None:
                budget = min(budget, deadline - now)
        return max(0.0, budget)

    def _pump(self) -> None:
        while not self._stop.is_set():
            data = self._read(self._wait_budget(time.monotonic()))
            now = time.monotonic()
            frames: list[Frame] = []
            if data:
                self.last_seen = now
                if self._heartbeat.observe(now) == "alive":
                    log.warning("%s: device alive again", self.name)
                    self._status("alive", "data received")
                frames = self._framer.feed(data, now)
            frames += self._framer.flush_idle(now)
            for frame in frames:
                self._emit(frame, now)
            if self._heartbeat.check(now) == "heartbeat_lost":
                silent = self._heartbeat.factor * self._heartbeat.interval
                log.warning("%s: heartbeat lost (silent for %.1fs)", self.name, silent)
                self._status("heartbeat_lost", f"nothing received for {silent:.1f}s")
            garbage = self._framer.garbage_bytes
            if garbage > 2 * self._garbage_logged:  # log first garbage, then on doubling
                log.info("%s: %d bytes outside STX/ETX frames so far", self.name, garbage)
                self._garbage_logged = garbage

    def _emit(self, frame: Frame, mono: float) -> None:
        if frame.kind == "heartbeat":
            return
        self._frame_id += 1
        if frame.kind != "codes":
            log.info(
                "%s: %s frame: %s",
                self.name,
                frame.kind,
                make_visible(frame.raw[:64].decode("latin-1")),
            )
        for scan in frame_to_scans(frame, self.name, self._frame_id, time.time(), mono):
            try:
                self._sink(scan)
            except Exception:
                log.exception("%s: scan sink failed; scan lost: %r", self.name, scan)
