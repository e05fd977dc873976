"""Technician tools: ``traceway devices`` and ``traceway scan-test``."""

from __future__ import annotations

import argparse
import errno
import glob
import json
import os
import queue
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from drivers.scanners.escapes import make_visible
from drivers.scanners.evdev_reader import InputDeviceInfo, list_input_devices
from drivers.scanners.hidpos_reader import HidrawInfo, list_hidraw
from drivers.scanners.types import DeviceStatus, RawScan

ZEBRA_VENDOR = 0x0A5F
#: USB vendors of common scanner makers (for "switch to HID POS" hints).
SCANNER_VENDORS = {
    0x0C2E: "Honeywell",
    0x05E0: "Zebra/Symbol",
    0x05F9: "Datalogic",
    0x1EAB: "Newland",
    0x0536: "Hand Held Products",
}
SYMBOLOGIES = {
    "]C0": "Code 128",
    "]C1": "GS1-128",
    "]d1": "Data Matrix",
    "]d2": "GS1 DataMatrix",
    "]Q1": "QR Code",
    "]Q3": "GS1 QR Code",
    "]e0": "GS1 DataBar",
    "]E0": "EAN-13/UPC-A",
    "]E3": "EAN-13 + add-on",
    "]E4": "EAN-8",
    "]I1": "ITF-14",
    "]A0": "Code 39",
}


@dataclass(frozen=True, slots=True)
class SerialPort:
    """A serial device node and the stable links to it."""

    path: str
    links: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UsbPrinter:
    """A USB printer (printer class interface or Zebra vendor id)."""

    sysfs: str
    vendor: int
    product: int
    name: str
    zebra: bool


@dataclass
class Inventory:
    """Everything ``traceway devices`` reports."""

    inputs: list[InputDeviceInfo] = field(default_factory=list)
    grabbed: dict[str, bool | None] = field(default_factory=dict)
    hidraw: list[HidrawInfo] = field(default_factory=list)
    serial: list[SerialPort] = field(default_factory=list)
    printers: list[UsbPrinter] = field(default_factory=list)
    lp_nodes: list[str] = field(default_factory=list)


def symbology_of(text: str) -> str | None:
    """The AIM symbology identifier prefix (``]C1``) of a scan, or None."""
    if len(text) >= 3 and text[0] == "]" and text[1].isalpha() and text[2].isalnum():
        return text[:3]
    return None


def interpretation_of(text: str, patterns: Sequence[Any] = ()) -> dict[str, Any] | None:
    """``gs1.interpret.interpret(text).to_json()``; None if that module is not available."""
    try:
        from gs1.interpret import interpret
    except ImportError:
        return None
    try:
        return dict(interpret(text, patterns).to_json())
    except Exception as exc:  # a technician tool shows the problem instead of dying
        return {"error": f"{type(exc).__name__}: {exc}"}


# -- devices -------------------------------------------------------------------------


def list_serial(dev_root: str = "/dev") -> list[SerialPort]:
    """USB/ACM serial ports with their /dev/serial/by-id and by-path links."""
    links: dict[str, list[str]] = {}
    for sub in ("by-id", "by-path"):
        for link in sorted(glob.glob(os.path.join(dev_root, "serial", sub, "*"))):
            links.setdefault(os.path.realpath(link), []).append(link)
    nodes = set(links)
    for pat in ("ttyACM*", "ttyUSB*", "ttyAMA*", "ttyS0"):
        nodes.update(glob.glob(os.path.join(dev_root, pat)))
    return [SerialPort(p, tuple(links.get(p, ()))) for p in sorted(nodes)]


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def list_usb_printers(sys_root: str = "/sys") -> list[UsbPrinter]:
    """USB devices with a printer-class interface (07) or Zebra's vendor id 0x0A5F."""
    base = os.path.join(sys_root, "bus", "usb", "devices")
    out: list[UsbPrinter] = []
    for dev in sorted(glob.glob(os.path.join(base, "*"))):
        vid = _read(os.path.join(dev, "idVendor"))
        if not vid:
            continue
        ifaces = glob.glob(os.path.join(base, os.path.basename(dev) + ":*", "bInterfaceClass"))
        printer_class = any(_read(p) == "07" for p in ifaces)
        try:
            vendor, product = int(vid, 16), int(_read(os.path.join(dev, "idProduct")) or "0", 16)
        except ValueError:
            continue
        if printer_class or vendor == ZEBRA_VENDOR:
            name = " ".join(
                x
                for x in (
                    _read(os.path.join(dev, "manufacturer")),
                    _read(os.path.join(dev, "product")),
                )
                if x
            )
            out.append(UsbPrinter(dev, vendor, product, name, vendor == ZEBRA_VENDOR))
    return out


def probe_grabbed(path: str) -> bool | None:
    """True if another process holds EVIOCGRAB on the node, None if it cannot be tested."""
    try:
        import evdev

        dev = evdev.InputDevice(path)
    except (ImportError, OSError):
        return None
    try:
        dev.grab()
    except OSError as exc:
        return True if exc.errno == errno.EBUSY else None
    else:
        dev.ungrab()
        return False
    finally:
        dev.close()


def collect_inventory(
    sys_root: str = "/sys",
    dev_root: str = "/dev",
    inputs: Callable[[], list[InputDeviceInfo]] | None = None,
    grab_probe: Callable[[str], bool | None] = probe_grabbed,
) -> Inventory:
    """Look at the machine (thin; every part copes with missing directories)."""
    inv = Inventory()
    inv.inputs = inputs() if inputs else list_input_devices(os.path.join(dev_root, "input"))
    inv.grabbed = {d.path: grab_probe(d.path) for d in inv.inputs if d.has_letter_keys}
    inv.hidraw = list_hidraw(sys_root, dev_root)
    inv.serial = list_serial(dev_root)
    inv.printers = list_usb_printers(sys_root)
    inv.lp_nodes = sorted(glob.glob(os.path.join(dev_root, "usb", "lp*")))
    return inv


def _vp(vendor: int, product: int) -> str:
    return f"{vendor:04x}:{product:04x}"


def format_inventory(inv: Inventory) -> list[str]:
    """Human-readable lines with hints. Pure."""
    out = ["Input devices (evdev):"]
    if not inv.inputs:
        out.append("  none found (no /dev/input, or no access: run as a member of group 'input')")
    for d in inv.inputs:
        if d.error:
            out.append(f"  {d.path}  cannot open: {d.error}")
            out.append("    hint: add the service user to group 'input' (see systemd/ udev rules)")
            continue
        kind = "keyboard" if d.has_letter_keys else "not a keyboard"
        g = inv.grabbed.get(d.path)
        grab = {True: "grabbed by another process", False: "not grabbed", None: ""}[g]
        out.append(
            f"  {d.path}  {d.name!r}  {_vp(d.vendor, d.product)}  {kind}"
            + (f"  {grab}" if grab else "")
        )
        for link in d.links:
            out.append(f"    {link}")
        if d.has_letter_keys and not d.links:
            out.append("    hint: no by-id/by-path link; match by name or vendor_product")
        if d.has_letter_keys and d.vendor in SCANNER_VENDORS:
            out.append(
                f"    hint: {SCANNER_VENDORS[d.vendor]} scanner in keyboard mode; HID POS mode "
                "is preferred (no layout, GS as a byte) - see drivers/scanners/README.md"
            )
    out.append("HID devices (hidraw):")
    if not inv.hidraw:
        out.append("  none found")
    for h in inv.hidraw:
        tag = "HID POS scanner (usage page 0x8C)" if h.is_hidpos else "other HID"
        out.append(f"  {h.path}  {h.name!r}  {_vp(h.vendor, h.product)}  {tag}")
        if h.is_hidpos:
            out.append(
                f'    config: type = "hidpos", vendor_product = "{_vp(h.vendor, h.product)}"'
            )
    out.append("Serial ports:")
    if not inv.serial:
        out.append("  none found")
    for s in inv.serial:
        out.append(f"  {s.path}")
        for link in s.links:
            out.append(f"    {link}")
        if not s.links and ("ttyACM" in s.path or "ttyUSB" in s.path):
            out.append("    hint: prefer a /dev/serial/by-id name in the config")
    out.append("USB printers:")
    if not inv.printers and not inv.lp_nodes:
        out.append("  none found")
    for p in inv.printers:
        zebra = "  Zebra" if p.zebra else ""
        out.append(f"  {p.sysfs}  {p.name!r}  {_vp(p.vendor, p.product)}{zebra}")
    for lp in inv.lp_nodes:
        out.append(f"  {lp}  (usblp device file; do not use it and pyusb for the same printer)")
    return out


def inventory_json(inv: Inventory) -> dict[str, Any]:
    """The inventory as a JSON-serialisable dict."""
    return {
        "inputs": [
            {**asdict(d), "links": list(d.links), "grabbed": inv.grabbed.get(d.path)}
            for d in inv.inputs
        ],
        "hidraw": [asdict(h) for h in inv.hidraw],
        "serial": [{"path": s.path, "links": list(s.links)} for s in inv.serial],
        "printers": [asdict(p) for p in inv.printers],
        "lp": inv.lp_nodes,
    }


def cmd_devices(args: argparse.Namespace) -> int:
    """``traceway devices``."""
    inv = collect_inventory(args.sys_root, args.dev_root)
    if args.json:
        print(json.dumps(inventory_json(inv), indent=2))
    else:
        print("\n".join(format_inventory(inv)))
    return 0


# -- scan-test -----------------------------------------------------------------------


def scan_json(
    text: str, error: str | None, detail: str, patterns: Sequence[Any] = ()
) -> dict[str, Any]:
    """One decoded scan as printed by ``scan-test --events``."""
    d: dict[str, Any] = {
        "text": text,
        "symbology": symbology_of(text),
        "interpretation": interpretation_of(text, patterns) if error is None else None,
    }
    if error is not None:
        d["error"] = error
        d["detail"] = detail
    return d


def scan_line(scan: RawScan, patterns: Sequence[Any] = ()) -> str:
    """One live scan for the technician's screen."""
    when = time.strftime("%H:%M:%S", time.localtime(scan.received_at))
    if scan.error:
        return f"{when}  REJECTED {scan.error}: {scan.detail}  {make_visible(scan.text)}"
    sym = symbology_of(scan.text)
    name = SYMBOLOGIES.get(sym or "", "no AIM id" if sym is None else "?")
    interp = interpretation_of(scan.text, patterns)
    summary = ""
    if interp is not None:
        keys = ("kind", "gtin", "sscc", "lot", "serial", "expiry", "value", "errors")
        summary = "  " + json.dumps({k: interp[k] for k in keys if interp.get(k)})
    return f"{when}  [{sym or '-'} {name}]  {make_visible(scan.text)}{summary}"


def _offline(args: argparse.Namespace, patterns: Sequence[Any]) -> int:
    from drivers.scanners.event_log import (
        EventLogError,
        EventRecord,
        ReportRecord,
        decode_key_events,
        decode_reports,
        read_records,
    )
    from drivers.scanners.hidpos import HidPosAssembler
    from drivers.scanners.keyboard_decoder import KeyboardDecoder, terminator_codes
    from drivers.scanners.keymaps import get_layout

    try:
        records = read_records(args.events)
        layout = get_layout(args.layout)
        terms = terminator_codes(t for t in args.terminators.split(",") if t)
    except (OSError, EventLogError, KeyError, ValueError) as exc:
        print(f"traceway scan-test: {exc}", file=sys.stderr)
        return 2

    def make() -> KeyboardDecoder:
        return KeyboardDecoder(
            layout,
            terminators=terms,
            gs_substitute=args.gs_substitute,
            idle_timeout=args.idle_timeout,
            max_length=args.max_length,
            capslock=args.capslock,
        )

    keys = [r for r in records if isinstance(r, EventRecord)]
    reports = [r for r in records if isinstance(r, ReportRecord)]
    for dev, s in decode_key_events(keys, make):
        d = scan_json(s.text, s.error, s.detail, patterns)
        if dev:
            d["dev"] = dev
        print(json.dumps(d, ensure_ascii=False))
    if reports:
        asm = HidPosAssembler(max_length=args.max_length)
        for s in decode_reports(reports, asm) + asm.flush_idle(float("inf")):
            print(json.dumps(scan_json(s.text, s.error, s.detail, patterns), ensure_ascii=False))
    return 0


def _patterns(cfg: Any) -> list[Any]:
    try:
        from gs1.interpret import BarcodePattern
    except ImportError:
        return []
    return [BarcodePattern(p.kind, p.regex, p.name) for p in getattr(cfg, "patterns", [])]


def _live(args: argparse.Namespace) -> int:
    from gateway.config import load_config

    cfg = load_config(args.config)
    sc = cfg.scanners.get(args.scanner)
    if sc is None:
        known = ", ".join(sorted(cfg.scanners)) or "none"
        print(f"traceway scan-test: no scanner {args.scanner!r} (known: {known})", file=sys.stderr)
        return 2
    if sc.type not in ("evdev", "hidpos"):
        print(
            f"traceway scan-test: scanner {args.scanner!r} is {sc.type}; live scan-test reads "
            "evdev and hidpos scanners",
            file=sys.stderr,
        )
        return 2
    patterns = _patterns(cfg)
    events: queue.Queue[RawScan | DeviceStatus] = queue.Queue()
    rec_fp: IO[str] | None = None
    recorder = None
    if args.record:
        from drivers.scanners.event_log import EventRecorder

        rec_fp = open(args.record, "w", encoding="utf-8")  # noqa: SIM115
        recorder = EventRecorder(rec_fp, time.monotonic())
    reader: Any
    if sc.type == "evdev":
        from drivers.scanners.evdev_reader import EvdevReader

        reader = EvdevReader(args.scanner, sc, events.put, events.put, recorder=recorder)
    else:
        from drivers.scanners.hidpos_reader import HidPosReader

        reader = HidPosReader(args.scanner, sc, events.put, events.put, recorder=recorder)
    print(f"Reading {args.scanner} ({sc.type}); scan codes, Ctrl-C to stop.", flush=True)
    reader.start()
    seen = 0
    try:
        while args.count <= 0 or seen < args.count:
            item = events.get()
            if isinstance(item, DeviceStatus):
                print(f"-- {item.device}: {item.state} {item.detail}", flush=True)
                continue
            seen += 1
            print(scan_line(item, patterns), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        reader.stop()
        if rec_fp is not None:
            rec_fp.close()
    return 0


def cmd_scan_test(args: argparse.Namespace) -> int:
    """``traceway scan-test``: live from a configured scanner, or offline from an event file."""
    if args.events:
        patterns: list[Any] = []
        if args.config:
            from gateway.config import load_config

            patterns = _patterns(load_config(args.config))
        return _offline(args, patterns)
    if not args.config or not args.scanner:
        print("traceway scan-test: give --config and --scanner, or --events", file=sys.stderr)
        return 2
    return _live(args)


def register(sub: Any) -> None:
    """Add the ``devices`` and ``scan-test`` sub-commands."""
    p = sub.add_parser("devices", help="list scanners, serial ports and printers with hints")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--sys-root", default="/sys", help=argparse.SUPPRESS)
    p.add_argument("--dev-root", default="/dev", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_devices)

    s = sub.add_parser("scan-test", help="show decoded scans live, or decode a recorded event file")
    s.add_argument("--config", type=Path, help="gateway config (live mode; patterns)")
    s.add_argument("--scanner", help="scanner name in the config (live mode)")
    s.add_argument("--record", type=Path, help="also save the raw events as JSON lines")
    s.add_argument("--count", type=int, default=0, help="stop after N scans (0: run until Ctrl-C)")
    s.add_argument("--events", type=Path, help="decode this JSON-lines event file offline")
    s.add_argument("--layout", default="us", help="keyboard layout for --events: us, uk, de, fr")
    s.add_argument("--terminators", default="enter,kp_enter", help="comma list: enter,kp_enter,tab")
    s.add_argument("--gs-substitute", default="", help="character the scanner sends for GS")
    s.add_argument(
        "--idle-timeout", type=float, default=0.0, help="seconds of silence ending a scan"
    )
    s.add_argument(
        "--max-length",
        type=int,
        default=4096,
        help="longest scan in characters; a longer one is reported as too long (default 4096)",
    )
    s.add_argument("--capslock", action="store_true", help="CapsLock was on when recording began")
    s.set_defaults(func=cmd_scan_test)
