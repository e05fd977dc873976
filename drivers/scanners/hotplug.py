"""Hot-plug and reconnect for device readers.

``ReconnectingReader`` is the thread skeleton every device reader uses: open, read until
the device goes away, report the status change, wait (retry with backoff, or earlier when
``DeviceWatcher`` sees a device of the right subsystem appear), reopen. The daemon never
restarts for an unplugged scanner. ``DeviceWatcher`` is a thin pyudev monitor for the
``input``, ``hidraw`` and ``tty`` subsystems; without pyudev (or netlink access) readers
still reconnect by polling.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from drivers.scanners.backoff import Backoff
from drivers.scanners.types import DeviceState, DeviceStatus, StatusSink

log = logging.getLogger(__name__)

H = TypeVar("H")
#: ``listener(action, subsystem, device_node)``; action is udev's ``add``/``remove``/...
HotplugListener = Callable[[str, str, str], None]


class DeviceGone(OSError):
    """The device disappeared (unplugged) while open."""


class ReconnectingReader(ABC, Generic[H]):
    """A reader thread that opens a device, reads it, and reopens it after an unplug."""

    kind = "scanner"
    subsystems: tuple[str, ...] = ()

    def __init__(
        self, name: str, on_status: StatusSink | None = None, backoff: Backoff | None = None
    ) -> None:
        self.name = name
        self.on_status = on_status
        self.backoff = backoff or Backoff(maximum=10.0, jitter="decorrelated")
        self.connected = False
        self.last_seen = 0.0  # time.monotonic() of the last input from the device
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self._last_state: tuple[str, str] | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader thread."""
        if self._thread is not None:
            return
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"reader-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop the thread and close the device; True if it ended within ``timeout``."""
        self._stop.set()
        self._kick.set()
        self._wake()
        th, self._thread = self._thread, None
        if th is not None:
            th.join(timeout)
            if th.is_alive():
                return False
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        return True

    @property
    def stopping(self) -> bool:
        """True once ``stop()`` was called."""
        return self._stop.is_set()

    def hotplug(self, action: str, subsystem: str, device_node: str) -> None:
        """DeviceWatcher listener: a matching device appeared, so retry opening now."""
        if action == "add" and subsystem in self.subsystems and not self.connected:
            self._kick.set()

    # -- for subclasses ---------------------------------------------------------------

    @abstractmethod
    def _open(self) -> H:
        """Find and open the device; raise OSError or LookupError if it is not there."""

    @abstractmethod
    def _session(self, handle: H) -> None:
        """Read until stopped (return) or the device goes away (raise OSError)."""

    @abstractmethod
    def _close(self, handle: H) -> None:
        """Release the device; must not raise."""

    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 64):
                pass
        except OSError:
            pass

    def _status(self, state: DeviceState, detail: str = "") -> None:
        if self._last_state == (state, detail):
            return
        self._last_state = (state, detail)
        level = logging.INFO if state == "connected" else logging.WARNING
        log.log(level, "%s %s: %s %s", self.kind, self.name, state, detail)
        if self.on_status is not None:
            try:
                self.on_status(DeviceStatus(self.name, self.kind, state, detail, time.time()))
            except Exception:
                log.exception("status sink failed for %s", self.name)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                handle = self._open()
            except (OSError, LookupError) as exc:
                self._status("disconnected", str(exc))
                self._wait(self.backoff.next())
                continue
            except Exception as exc:
                log.exception("opening %s failed", self.name)
                self._status("error", f"{type(exc).__name__}: {exc}")
                self._wait(self.backoff.next())
                continue
            self.backoff.reset()
            self.connected = True
            self._status("connected")
            detail, state = "", "disconnected"
            try:
                self._session(handle)
            except OSError as exc:
                detail = f"device lost: {exc.strerror or exc}"
            except Exception as exc:
                log.exception("reader %s failed", self.name)
                state, detail = "error", f"{type(exc).__name__}: {exc}"
            finally:
                self.connected = False
                self._close(handle)
            if self._stop.is_set():
                break
            self._status("disconnected" if state == "disconnected" else "error", detail)
            self._wait(self.backoff.next())

    def _wait(self, seconds: float) -> None:
        self._kick.wait(seconds)
        self._kick.clear()


class DeviceWatcher:
    """pyudev monitor calling listeners on add/remove of input, hidraw and tty devices."""

    def __init__(self, subsystems: Iterable[str] = ("input", "hidraw", "tty")) -> None:
        self.subsystems = tuple(subsystems)
        self._listeners: list[HotplugListener] = []
        self._observer: Any = None

    def add_listener(self, listener: HotplugListener) -> None:
        """Call ``listener(action, subsystem, device_node)`` for every device event."""
        self._listeners.append(listener)

    def dispatch(self, action: str, subsystem: str, device_node: str) -> None:
        """Deliver one event to every listener (a failing listener is logged, not fatal)."""
        for fn in list(self._listeners):
            try:
                fn(action, subsystem, device_node)
            except Exception:
                log.exception("hot-plug listener failed")

    def start(self) -> bool:
        """Start monitoring; False (readers fall back to polling) if udev is unavailable."""
        try:
            import pyudev

            monitor = pyudev.Monitor.from_netlink(pyudev.Context())
            for sub in self.subsystems:
                monitor.filter_by(sub)

            def on_device(device: Any) -> None:
                action = str(device.action or "")
                self.dispatch(action, str(device.subsystem or ""), str(device.device_node or ""))

            self._observer = pyudev.MonitorObserver(monitor, callback=on_device, name="udev")
            self._observer.start()
        except Exception as exc:  # ImportError, no netlink socket in a container, ...
            log.warning("hot-plug monitor unavailable (%s); readers poll instead", exc)
            self._observer = None
            return False
        return True

    def stop(self) -> None:
        """Stop monitoring."""
        if self._observer is not None:
            self._observer.send_stop()
            self._observer = None
