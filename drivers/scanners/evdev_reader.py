"""Keyboard-wedge scanners through Linux evdev: device selection (pure) and the reader thread.

The reader only reads and decodes: it never waits on the database, the broker or a printer.
Complete scans go to a non-blocking ``ScanSink``. Timing uses ``time.monotonic()`` at
read time (immune to wall-clock jumps on a Pi without RTC).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import select
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from drivers.scanners.backoff import Backoff
from drivers.scanners.config import EvdevScanner
from drivers.scanners.event_log import EventRecorder
from drivers.scanners.hotplug import ReconnectingReader
from drivers.scanners.keyboard_decoder import DecodedScan, KeyboardDecoder, terminator_codes
from drivers.scanners.keymaps import LED_CAPSL, get_layout
from drivers.scanners.types import RawScan, ScanSink, StatusSink

log = logging.getLogger(__name__)

#: KEY_Q..KEY_P, KEY_A..KEY_L, KEY_Z..KEY_M: the 26 letter keys.
LETTER_KEYS = frozenset([*range(16, 26), *range(30, 39), *range(44, 51)])


@dataclass(frozen=True, slots=True)
class InputDeviceInfo:
    """What selection needs to know about one /dev/input/eventN node."""

    path: str
    name: str = ""
    vendor: int = 0
    product: int = 0
    phys: str = ""
    links: tuple[str, ...] = ()  # /dev/input/by-id/... and by-path/... links to this node
    has_letter_keys: bool = False
    error: str = ""  # e.g. "permission denied" when the node could not be opened

    @property
    def usb_device(self) -> str:
        """The physical device this node belongs to (phys without ``/inputN``)."""
        return self.phys.rsplit("/", 1)[0] if self.phys else self.path


@dataclass(frozen=True, slots=True)
class DeviceChoice:
    """Result of device selection: the node, or None and why."""

    device: InputDeviceInfo | None
    reason: str


def parse_vendor_product(text: str) -> tuple[int, int]:
    """``"0c2e:0b8f"`` -> ``(0x0C2E, 0x0B8F)``; ValueError otherwise."""
    m = re.fullmatch(r"\s*([0-9A-Fa-f]{1,4}):([0-9A-Fa-f]{1,4})\s*", text)
    if not m:
        raise ValueError(f"vendor_product must be 'vvvv:pppp' in hex, got {text!r}")
    return int(m.group(1), 16), int(m.group(2), 16)


def _event_number(info: InputDeviceInfo) -> tuple[int, str]:
    m = re.search(r"(\d+)$", info.path)
    return (int(m.group(1)) if m else 1 << 30, info.path)


def match_device(
    candidates: Sequence[InputDeviceInfo],
    *,
    device: str = "",
    name: str = "",
    vendor_product: str = "",
) -> DeviceChoice:
    """Pick the node to read: by path/link, else by name substring and/or vendor:product.

    On a composite device (keyboard + consumer control + mouse nodes) the node with letter
    keys wins. Nodes from two different physical devices are ambiguous: no guess is made.
    """
    if device:
        hits = [c for c in candidates if device == c.path or device in c.links]
        if not hits:
            return DeviceChoice(None, f"{device} is not present")
        hit = hits[0]
        if hit.has_letter_keys:
            return DeviceChoice(hit, f"{device} -> {hit.path}")
        siblings = sorted(
            (
                c
                for c in candidates
                if c.usb_device == hit.usb_device and c.has_letter_keys and hit.phys
            ),
            key=_event_number,
        )
        if siblings:
            return DeviceChoice(siblings[0], f"{device}: keyboard node of the same device")
        return DeviceChoice(None, f"{device} ({hit.path}) has no letter keys")
    if not name and not vendor_product:
        return DeviceChoice(None, "no device, name or vendor_product configured")
    vp = parse_vendor_product(vendor_product) if vendor_product else None
    hits = [
        c
        for c in candidates
        if (not name or name.lower() in c.name.lower())
        and (vp is None or (c.vendor, c.product) == vp)
    ]
    what = " and ".join(
        x for x in (f"name containing {name!r}" if name else "", vendor_product) if x
    )
    keyboards = sorted((c for c in hits if c.has_letter_keys), key=_event_number)
    if not keyboards:
        if hits:
            return DeviceChoice(None, f"devices match {what} but none has letter keys")
        return DeviceChoice(None, f"no input device matches {what}")
    physical = sorted({c.usb_device for c in keyboards})
    if len(physical) > 1:
        paths = ", ".join(c.path for c in keyboards)
        return DeviceChoice(
            None, f"ambiguous: {len(physical)} devices match {what} ({paths}); use a by-path link"
        )
    return DeviceChoice(keyboards[0], f"{what} -> {keyboards[0].path}")


def _links(dev_root: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for sub in ("by-id", "by-path"):
        d = os.path.join(dev_root, sub)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            out.setdefault(os.path.realpath(e.path), []).append(e.path)
    return out


def list_input_devices(dev_root: str = "/dev/input") -> list[InputDeviceInfo]:
    """Describe every evdev node (thin: uses python-evdev; [] without /dev/input or evdev)."""
    try:
        import evdev
    except ImportError:
        return []
    links = _links(dev_root)
    out: list[InputDeviceInfo] = []
    for path in sorted(evdev.list_devices(dev_root)):
        lk = tuple(links.get(os.path.realpath(path), ()))
        try:
            dev = evdev.InputDevice(path)
        except OSError as exc:
            out.append(InputDeviceInfo(path, links=lk, error=exc.strerror or str(exc)))
            continue
        try:
            keys = dev.capabilities().get(evdev.ecodes.EV_KEY, [])
            out.append(
                InputDeviceInfo(
                    path,
                    dev.name,
                    dev.info.vendor,
                    dev.info.product,
                    dev.phys or "",
                    lk,
                    set(keys) >= LETTER_KEYS,
                )
            )
        finally:
            dev.close()
    return out


def decoder_for(cfg: EvdevScanner, capslock: bool = False) -> KeyboardDecoder:
    """A decoder configured like ``cfg``."""
    return KeyboardDecoder(
        get_layout(cfg.layout),
        terminators=terminator_codes(cfg.terminators),
        gs_substitute=cfg.gs_substitute,
        idle_timeout=cfg.idle_timeout,
        max_length=cfg.max_length,
        capslock=capslock,
    )


def to_raw_scan(scan: DecodedScan, scanner: str) -> RawScan:
    """A decoded scan as the pipeline's RawScan, stamped now."""
    return RawScan(
        text=scan.text,
        scanner=scanner,
        received_at=time.time(),
        monotonic=time.monotonic(),
        error=scan.error,
        detail=scan.detail,
    )


class EvdevReader(ReconnectingReader[Any]):
    """One keyboard-wedge scanner: a thread that reads, decodes and hands scans to ``sink``."""

    subsystems = ("input",)

    def __init__(
        self,
        name: str,
        cfg: EvdevScanner,
        sink: ScanSink,
        on_status: StatusSink | None = None,
        *,
        recorder: EventRecorder | None = None,
        lister: Callable[[], Sequence[InputDeviceInfo]] = list_input_devices,
        device_factory: Callable[[str], Any] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name, on_status, backoff)
        self.cfg = cfg
        self.sink = sink
        self.recorder = recorder
        self.lister = lister
        self.device_factory = device_factory
        self.device_path = ""
        self.decoder = decoder_for(cfg)

    def _open(self) -> Any:
        choice = match_device(
            self.lister(),
            device=self.cfg.device,
            name=self.cfg.name,
            vendor_product=self.cfg.vendor_product,
        )
        if choice.device is None:
            raise LookupError(choice.reason)
        factory = self.device_factory
        if factory is None:
            import evdev

            factory = evdev.InputDevice
        dev = factory(choice.device.path)
        try:
            if self.cfg.grab:
                try:
                    dev.grab()
                except OSError as exc:
                    if exc.errno == errno.EBUSY:
                        raise OSError(exc.errno, "grabbed by another process") from None
                    raise
            capslock = LED_CAPSL in dev.leds()
        except BaseException:
            dev.close()
            raise
        self.device_path = choice.device.path
        self.decoder = decoder_for(self.cfg, capslock)
        log.info(
            "%s: opened %s (%s), capslock=%s", self.name, choice.device.path, dev.name, capslock
        )
        return dev

    def _session(self, dev: Any) -> None:
        dec = self.decoder
        while not self.stopping:
            timeout = 0.05 if dec.pending else None
            ready, _, _ = select.select([dev.fd, self._wake_r], [], [], timeout)
            now = time.monotonic()
            if self._wake_r in ready:
                self._drain_wake()
            if dev.fd in ready:
                try:
                    events = list(dev.read())
                except BlockingIOError:
                    events = []
                self.last_seen = now
                for ev in events:
                    if self.recorder is not None:
                        self.recorder.event(ev.type, ev.code, ev.value, now)
                    self._deliver(dec.feed(ev.type, ev.code, ev.value, now))
                    if dec.resync_wanted:
                        dec.resync(dev.active_keys(), LED_CAPSL in dev.leds())
            self._deliver(dec.flush_idle(now))

    def _deliver(self, scans: Iterable[DecodedScan]) -> None:
        for s in scans:
            if self.recorder is not None:
                self.recorder.flush()
            try:
                self.sink(to_raw_scan(s, self.name))
            except Exception:
                log.exception("%s: scan sink failed; scan %r lost", self.name, s.text)

    def _close(self, dev: Any) -> None:
        try:
            if self.cfg.grab:
                dev.ungrab()
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dev.close()
