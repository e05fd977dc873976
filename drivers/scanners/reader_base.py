"""What the byte-stream readers share.

Pure parts (tested without devices): :class:`HeartbeatMonitor`, :func:`frame_to_scans`
and :class:`Channel` (the framing and heartbeat state of ONE byte stream; it only
logs). :class:`HandOver` numbers frames and gives their scans to the sink. Shell part:
:class:`StreamReader`, a daemon thread that opens a connection, reads with short
timeouts, frames, hands complete scans to the sink, and reconnects with backoff.
Subclasses supply ``_open``/``_read``/``_write``/``_close``. The TCP listener
(:mod:`drivers.scanners.tcp_listener`) serves several connections with one
:class:`Channel` each.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
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


@dataclass(slots=True)
class Step:
    """What one :meth:`Channel.step` produced."""

    frames: list[Frame] = field(default_factory=list)
    alive_again: bool = False  # data arrived after a heartbeat_lost
    heartbeat_lost: bool = False  # the silence just became too long


class Channel:
    """Framing and heartbeat state of one byte stream (a port, one TCP connection).

    No I/O and no clock (times are passed in); it logs partial frames lost, garbage
    and heartbeat changes under ``label``. A reader keeps one channel per open stream,
    so bytes of two streams can never end up in one frame.
    """

    def __init__(self, framing: FramerConfig, label: str) -> None:
        self.label = label
        self.framer = Framer(framing)
        self.heartbeat = HeartbeatMonitor(framing.heartbeat_interval)
        self._garbage_logged = 0

    @property
    def silence(self) -> float:
        """Seconds of silence after which the heartbeat counts as lost."""
        return self.heartbeat.factor * self.heartbeat.interval

    def start(self, now: float) -> None:
        """A stream (re)opened at ``now``: empty framer, heartbeat supervision armed."""
        self.framer.reset()
        self.heartbeat.start(now)

    def close(self, why: str) -> None:
        """The stream ended: a partial frame is dropped (logged), supervision stops."""
        self.discard(why)
        self.heartbeat.stop()

    def discard(self, why: str) -> None:
        """Drop the frame in progress, with a log line if there was one."""
        if self.framer.pending:
            log.warning(
                "%s: partial frame lost (%s): %s",
                self.label,
                why,
                make_visible(self.framer.pending.decode("latin-1")),
            )
        self.framer.reset()

    def deadline(self) -> float | None:
        """Earliest monotonic time at which :meth:`step` has something to do unasked."""
        pair = (self.framer.next_deadline(), self.heartbeat.deadline())
        times = [t for t in pair if t is not None]
        return min(times) if times else None

    def step(self, data: bytes, now: float) -> Step:
        """Feed ``data`` (may be empty) received at ``now``; frames, idle end, heartbeat."""
        out = Step()
        if data:
            if self.heartbeat.observe(now) == "alive":
                log.warning("%s: device alive again", self.label)
                out.alive_again = True
            out.frames = self.framer.feed(data, now)
        out.frames += self.framer.flush_idle(now)
        if self.heartbeat.check(now) == "heartbeat_lost":
            log.warning("%s: heartbeat lost (silent for %.1fs)", self.label, self.silence)
            out.heartbeat_lost = True
        garbage = self.framer.garbage_bytes
        if garbage > 2 * self._garbage_logged:  # log first garbage, then on doubling
            log.info("%s: %d bytes outside STX/ETX frames so far", self.label, garbage)
            self._garbage_logged = garbage
        return out


class HandOver:
    """Numbers a reader's frames and hands their scans to the sink (never raises)."""

    def __init__(self, scanner: str, sink: ScanSink) -> None:
        self.scanner = scanner
        self._sink = sink
        self._frame_id = 0

    def __call__(self, frame: Frame, mono: float, label: str = "") -> None:
        """Hand over one frame completed at ``mono``; ``label`` names it in log lines."""
        if frame.kind == "heartbeat":
            return
        self._frame_id += 1
        if frame.kind != "codes":
            log.info(
                "%s: %s frame: %s",
                label or self.scanner,
                frame.kind,
                make_visible(frame.raw[:64].decode("latin-1")),
            )
        for scan in frame_to_scans(frame, self.scanner, self._frame_id, time.time(), mono):
            try:
                self._sink(scan)
            except Exception:
                log.exception("%s: scan sink failed; scan lost: %r", self.scanner, scan)


def report_status(
    on_status: StatusSink | None,
    device: str,
    state: DeviceState,
    detail: str = "",
    *,
    expected: bool = False,
) -> None:
    """Give a scanner's state change to the status sink (a failing sink is only logged)."""
    if on_status is None:
        return
    try:
        on_status(DeviceStatus(device, "scanner", state, detail, time.time(), expected))
    except Exception:
        log.exception("%s: status sink failed", device)


class StreamReader:
    """Base of the serial and TCP (connect) readers: thread, framing, status, reconnect."""

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
        self._on_status = on_status
        self._channel = Channel(framing, name)
        self._hand_over = HandOver(name, sink)
        self._backoff = backoff if backoff is not None else Backoff(jitter="decorrelated")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._io_lock = threading.Lock()  # guards the open handle against send()/close
        self._connected = False
        self._ever_connected = False
        self._down_reason: str | None = None  # set while an outage is being reported
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

    def _status(self, state: DeviceState, detail: str = "", *, expected: bool = False) -> None:
        report_status(self._on_status, self.name, state, detail, expected=expected)

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
            self._status("disconnected", "stopped", expected=True)

    def _close_quietly(self) -> None:
        with self._io_lock:
            self._connected = False
            try:
                self._close()
            except Exception as e:
                log.debug("%s: close: %s", self.name, e)
        self._channel.heartbeat.stop()

    def _came_up(self) -> None:
        with self._io_lock:
            self._connected = True
        self._backoff.reset()
        self._channel.start(time.monotonic())
        if self._ever_connected and self._down_reason is not None:
            log.warning("%s: connected again (%s)", self.name, self._describe())
        else:
            log.info("%s: connected (%s)", self.name, self._describe())
        self._ever_connected = True
        self._down_reason = None
        self._status("connected", self._describe())

    def _went_down(self, reason: str) -> None:
        """Log and report an outage once, however many retries fail."""
        self._channel.discard(reason)
        if self._down_reason is None:
            self._down_reason = reason
            log.warning("%s: disconnected: %s (retrying with backoff)", self.name, reason)
            self._status("disconnected", reason)
        else:
            log.debug("%s: still down: %s", self.name, reason)

    def _wait_budget(self, now: float) -> float:
        deadline = self._channel.deadline()
        budget = _SLICE if deadline is None else min(_SLICE, deadline - now)
        return max(0.0, budget)

    def _pump(self) -> None:
        while not self._stop.is_set():
            data = self._read(self._wait_budget(time.monotonic()))
            now = time.monotonic()
            if data:
                self.last_seen = now
            step = self._channel.step(data, now)
            if step.alive_again:
                self._status("alive", "data received")
            for frame in step.frames:
                self._hand_over(frame, now)
            if step.heartbeat_lost:
                self._status("heartbeat_lost", f"nothing received for {self._channel.silence:.1f}s")
