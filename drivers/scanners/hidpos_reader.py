"""HID POS scanners read from /dev/hidrawN: sysfs discovery (testable with a fake root) and reader.

No keyboard layout is involved: data arrives as bytes (GS is 0x1D), the AIM id in the
report. Reports are reassembled by ``hidpos.HidPosAssembler``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from drivers.scanners.backoff import Backoff
from drivers.scanners.config import HidPosScanner
from drivers.scanners.evdev_reader import parse_vendor_product, to_raw_scan
from drivers.scanners.event_log import EventRecorder
from drivers.scanners.hidpos import HidPosAssembler, is_hidpos_scanner
from drivers.scanners.hotplug import DeviceGone, ReconnectingReader
from drivers.scanners.types import ScanSink, StatusSink

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HidrawInfo:
    """One /dev/hidrawN as sysfs describes it."""

    path: str
    name: str = ""
    vendor: int = 0
    product: int = 0
    is_hidpos: bool = False
    phys: str = ""


def parse_hid_uevent(text: str) -> tuple[str, int, int, str]:
    """``HID_NAME``, vendor, product and ``HID_PHYS`` from a HID device's uevent file."""
    kv = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    vendor = product = 0
    parts = kv.get("HID_ID", "").split(":")
    if len(parts) == 3:
        with contextlib.suppress(ValueError):
            vendor, product = int(parts[1], 16), int(parts[2], 16)
    return kv.get("HID_NAME", ""), vendor, product, kv.get("HID_PHYS", "")


def list_hidraw(sys_root: str = "/sys", dev_root: str = "/dev") -> list[HidrawInfo]:
    """Every hidraw node with name, ids and whether it is a HID POS scanner ([] if none)."""
    base = os.path.join(sys_root, "class", "hidraw")
    try:
        nodes = sorted(os.listdir(base))
    except OSError:
        return []
    out: list[HidrawInfo] = []
    for node in nodes:
        devdir = os.path.join(base, node, "device")
        try:
            with open(os.path.join(devdir, "uevent"), encoding="utf-8", errors="replace") as f:
                name, vendor, product, phys = parse_hid_uevent(f.read())
        except OSError:
            name, vendor, product, phys = "", 0, 0, ""
        try:
            with open(os.path.join(devdir, "report_descriptor"), "rb") as fb:
                pos = is_hidpos_scanner(fb.read())
        except OSError:
            pos = False
        out.append(HidrawInfo(os.path.join(dev_root, node), name, vendor, product, pos, phys))
    return out


def match_hidraw(
    candidates: Sequence[HidrawInfo], *, device: str = "", vendor_product: str = ""
) -> tuple[HidrawInfo | None, str]:
    """The hidraw node to read: by path (or udev link), else the HID POS node of vendor:product."""
    if device:
        real = os.path.realpath(device)
        for c in candidates:
            if device == c.path or real == c.path:
                return c, f"{device} -> {c.path}"
        return None, f"{device} is not present"
    if not vendor_product:
        return None, "no device or vendor_product configured"
    vp = parse_vendor_product(vendor_product)
    hits = [c for c in candidates if (c.vendor, c.product) == vp and c.is_hidpos]
    if not hits:
        return None, f"no HID POS scanner {vendor_product} (is the scanner in HID POS mode?)"
    if len(hits) > 1:
        return None, f"ambiguous: {len(hits)} HID POS nodes for {vendor_product}; use device="
    return hits[0], f"{vendor_product} -> {hits[0].path}"


class HidPosReader(ReconnectingReader[int]):
    """One HID POS scanner: reads reports from hidraw and hands complete scans to ``sink``."""

    subsystems = ("hidraw",)

    def __init__(
        self,
        name: str,
        cfg: HidPosScanner,
        sink: ScanSink,
        on_status: StatusSink | None = None,
        *,
        recorder: EventRecorder | None = None,
        lister: Callable[[], Sequence[HidrawInfo]] = list_hidraw,
        opener: Callable[[str], int] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name, on_status, backoff)
        self.cfg = cfg
        self.sink = sink
        self.recorder = recorder
        self.lister = lister
        self.opener = opener or (lambda p: os.open(p, os.O_RDONLY | os.O_NONBLOCK))
        self.assembler = HidPosAssembler()

    def _open(self) -> int:
        info, reason = match_hidraw(
            self.lister(), device=self.cfg.device, vendor_product=self.cfg.vendor_product
        )
        if info is None:
            raise LookupError(reason)
        fd = self.opener(info.path)
        self.assembler = HidPosAssembler()
        log.info("%s: opened %s (%s)", self.name, info.path, info.name)
        return fd

    def _session(self, fd: int) -> None:
        asm = self.assembler
        while not self.stopping:
            timeout = 0.25 if asm.pending else None
            ready, _, _ = select.select([fd, self._wake_r], [], [], timeout)
            now = time.monotonic()
            if self._wake_r in ready:
                self._drain_wake()
            scans = asm.flush_idle(now)
            if fd in ready:
                try:
                    report = os.read(fd, 4096)
                except BlockingIOError:
                    report = None
                if report == b"":
                    raise DeviceGone(0, "end of file")
                if report:
                    self.last_seen = now
                    if self.recorder is not None:
                        self.recorder.report(report, now)
                    scans += asm.feed(report, now)
            for s in scans:
                if self.recorder is not None:
                    self.recorder.flush()
                try:
                    self.sink(to_raw_scan(s, self.name))
                except Exception:
                    log.exception("%s: scan sink failed; scan %r lost", self.name, s.text)

    def _close(self, fd: int) -> None:
        with contextlib.suppress(OSError):
            os.close(fd)
