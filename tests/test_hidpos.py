"""HID POS report reassembly (pure), hidraw discovery on a fake sysfs, the reader, hot-plug."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from drivers.scanners.backoff import Backoff
from drivers.scanners.config import HidPosScanner
from drivers.scanners.event_log import ReportRecord, decode_reports, read_records
from drivers.scanners.hidpos import HidPosAssembler, HidPosLayout, is_hidpos_scanner, usage_pages
from drivers.scanners.hidpos_reader import (
    HidPosReader,
    HidrawInfo,
    list_hidraw,
    match_hidraw,
    parse_hid_uevent,
)
from drivers.scanners.hotplug import DeviceWatcher
from drivers.scanners.types import DeviceStatus, RawScan

DATA = Path(__file__).parent / "data" / "events"
GS = "\x1d"


def report(aim: bytes, data: bytes, more: bool = False, rid: int = 2) -> bytes:
    """A 64-byte scanned-data report in the documented layout."""
    r = bytearray(64)
    r[0], r[1] = rid, len(data)
    r[2:5] = aim
    r[5 : 5 + len(data)] = data
    r[61] = ord("j")
    r[63] = 1 if more else 0
    return bytes(r)


def test_single_report_with_aim_and_gs_byte() -> None:
    (scan,) = HidPosAssembler().feed(report(b"]C1", b"0109501101530003\x1d21A1"), 1.0)
    assert scan.text == "]C10109501101530003" + GS + "21A1"
    assert scan.error is None and scan.t == 1.0


def test_continued_reports_are_joined() -> None:
    data = bytes(range(0x30, 0x30 + 60))  # 60 bytes: 56 + 4
    asm = HidPosAssembler()
    assert asm.feed(report(b"]Q0", data[:56], more=True)) == []
    assert asm.pending
    (scan,) = asm.feed(report(b"]Q0", data[56:]))
    assert scan.text == "]Q0" + data.decode("latin-1")
    assert not asm.pending


def test_report_without_aim_has_no_prefix() -> None:
    (scan,) = HidPosAssembler().feed(report(b"\0\0\0", b"12345"))
    assert scan.text == "12345"


def test_other_report_ids_ignored() -> None:
    asm = HidPosAssembler()
    assert asm.feed(bytes([4, 1, 6]) + bytes(61)) == []
    assert asm.feed(b"") == []


def test_bad_length_is_decode_error() -> None:
    r = bytearray(report(b"]C1", b"1"))
    r[1] = 57
    (scan,) = HidPosAssembler().feed(bytes(r))
    assert scan.error == "decode_error" and "57" in scan.detail
    (scan,) = HidPosAssembler().feed(bytes([2]))
    assert scan.error == "decode_error"


def test_missing_last_report_reported_after_timeout() -> None:
    asm = HidPosAssembler(incomplete_timeout=1.0)
    asm.feed(report(b"]d2", b"0109501101530003", more=True), 10.0)
    assert asm.flush_idle(10.5) == []
    (scan,) = asm.flush_idle(11.5)
    assert scan.error == "decode_error" and scan.text == "]d20109501101530003"
    # A new report after the gap ends the stale message first, then decodes normally.
    asm.feed(report(b"]d2", b"01", more=True), 20.0)
    out = asm.feed(report(b"]E0", b"4006381333931"), 30.0)
    assert [(s.error, s.text) for s in out] == [
        ("decode_error", "]d201"),
        (None, "]E04006381333931"),
    ]


def test_aim_change_inside_message_is_error() -> None:
    asm = HidPosAssembler()
    asm.feed(report(b"]d2", b"01", more=True))
    (scan,) = asm.feed(report(b"]C1", b"02"))
    assert scan.error == "decode_error" and "symbology" in scan.detail


def test_max_length() -> None:
    asm = HidPosAssembler(max_length=60)
    asm.feed(report(b"]d2", b"1" * 56, more=True))
    (scan,) = asm.feed(report(b"]d2", b"2" * 10))
    assert scan.error == "frame_too_long"
    (ok,) = asm.feed(report(b"]d2", b"3"))
    assert ok.error is None and ok.text == "]d23"


def test_custom_layout_without_report_id() -> None:
    lay = HidPosLayout(
        report_id=None, length_offset=0, aim_offset=1, data_offset=4, data_size=59, flags_offset=63
    )
    r = bytearray(64)
    r[0] = 3
    r[1:4] = b"]E4"
    r[4:7] = b"123"
    (scan,) = HidPosAssembler(lay).feed(bytes(r))
    assert scan.text == "]E4123"


def test_recorded_reports_file() -> None:
    recs = [r for r in read_records(DATA / "hidpos_continued.jsonl") if isinstance(r, ReportRecord)]
    scans = decode_reports(recs, HidPosAssembler())
    assert [s.text for s in scans] == [
        "]d201095011015300031725123110LOTLOTLOTLOTLOTLOT" + GS + "21SERIAL-0000000001",
        "]E04006381333931",
    ]


# -- report descriptors --------------------------------------------------------------

#: Start of a HID POS scanner descriptor: Usage Page (0x8C), Usage (Bar Code Scanner 0x02).
POS_DESCRIPTOR = bytes([0x05, 0x8C, 0x09, 0x02, 0xA1, 0x01, 0x85, 0x02, 0x75, 0x08, 0xC0])
#: Boot keyboard descriptor start: Usage Page (Generic Desktop), Usage (Keyboard), Usage Page (7).
KBD_DESCRIPTOR = bytes([0x05, 0x01, 0x09, 0x06, 0xA1, 0x01, 0x05, 0x07, 0x19, 0xE0, 0xC0])


def test_usage_pages() -> None:
    assert usage_pages(POS_DESCRIPTOR) == {0x8C}
    assert usage_pages(KBD_DESCRIPTOR) == {0x01, 0x07}
    assert is_hidpos_scanner(POS_DESCRIPTOR)
    assert not is_hidpos_scanner(KBD_DESCRIPTOR)
    # Vendor page with a 2-byte Usage Page item and a 4-byte extended usage 0x008C0002.
    assert usage_pages(bytes([0x06, 0x00, 0xFF, 0x0B, 0x02, 0x00, 0x8C, 0x00])) == {0xFF00, 0x8C}
    # Long item skipped; truncated data tolerated.
    assert usage_pages(bytes([0xFE, 0x02, 0x10, 0xAA, 0xBB, 0x05, 0x8C])) == {0x8C}
    assert usage_pages(bytes([0x06, 0x8C])) == {0x8C}


# -- sysfs discovery and selection ---------------------------------------------------


def fake_hidraw(root: Path, node: str, hid_id: str, name: str, desc: bytes) -> None:
    d = root / "sys" / "class" / "hidraw" / node / "device"
    d.mkdir(parents=True)
    (d / "uevent").write_text(
        f"DRIVER=hid-generic\nHID_ID={hid_id}\nHID_NAME={name}\nHID_PHYS=usb-1.2/input0\n"
    )
    (d / "report_descriptor").write_bytes(desc)


def test_list_hidraw_from_fake_sysfs(tmp_path: Path) -> None:
    fake_hidraw(tmp_path, "hidraw0", "0003:00000C2E:00000B8F", "Honeywell Voyager", POS_DESCRIPTOR)
    fake_hidraw(tmp_path, "hidraw1", "0003:0000046D:0000C52B", "Logitech Receiver", KBD_DESCRIPTOR)
    found = list_hidraw(str(tmp_path / "sys"), "/dev")
    assert found == [
        HidrawInfo("/dev/hidraw0", "Honeywell Voyager", 0x0C2E, 0x0B8F, True, "usb-1.2/input0"),
        HidrawInfo("/dev/hidraw1", "Logitech Receiver", 0x046D, 0xC52B, False, "usb-1.2/input0"),
    ]
    assert list_hidraw(str(tmp_path / "nothing")) == []


def test_parse_hid_uevent_tolerates_garbage() -> None:
    assert parse_hid_uevent("HID_ID=zz\nHID_NAME=x") == ("x", 0, 0, "")


def test_match_hidraw() -> None:
    cands = [
        HidrawInfo("/dev/hidraw0", "kbd", 0x0C2E, 0x0B8F, False),
        HidrawInfo("/dev/hidraw1", "pos", 0x0C2E, 0x0B8F, True),
    ]
    assert match_hidraw(cands, vendor_product="0c2e:0b8f")[0] == cands[1]
    assert match_hidraw(cands, device="/dev/hidraw0")[0] == cands[0]
    assert match_hidraw(cands, device="/dev/hidraw7")[0] is None
    assert "HID POS mode" in match_hidraw(cands, vendor_product="05e0:1200")[1]
    assert "ambiguous" in match_hidraw([cands[1], cands[1]], vendor_product="0c2e:0b8f")[1]


# -- reader with a message-preserving socket as the "hidraw" node --------------------


def wait_for(pred: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_reader_reassembles_and_reconnects() -> None:
    cfg = HidPosScanner(type="hidpos", station="dock1", vendor_product="0c2e:0b8f")
    info = HidrawInfo("/dev/hidraw3", "pos", 0x0C2E, 0x0B8F, True)
    present = [True]
    peers: list[socket.socket] = []

    def opener(path: str) -> int:
        assert path == "/dev/hidraw3"
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        peers.append(theirs)
        return ours.detach()

    scans: list[RawScan] = []
    status: list[DeviceStatus] = []
    r = HidPosReader(
        "pos1",
        cfg,
        scans.append,
        status.append,
        lister=lambda: [info] if present[0] else [],
        opener=opener,
        backoff=Backoff(0.02, 0.05, jitter="none"),
    )
    r.start()
    try:
        wait_for(lambda: r.connected)
        data = b"0109501101530003" + b"10" + b"L" * 20 + b"\x1d" + b"21" + b"S" * 20
        peers[0].send(report(b"]d2", data[:56], more=True))
        peers[0].send(report(b"]d2", data[56:]))
        wait_for(lambda: len(scans) == 1)
        assert scans[0].text == "]d2" + data.decode() and scans[0].scanner == "pos1"
        present[0] = False
        peers[0].close()  # unplug: the node reads EOF / ENODEV
        wait_for(lambda: [s.state for s in status] == ["connected", "disconnected"])
        present[0] = True
        r.hotplug("add", "hidraw", "/dev/hidraw3")
        wait_for(lambda: r.connected and len(peers) == 2)
        peers[1].send(report(b"]E0", b"4006381333931"))
        wait_for(lambda: len(scans) == 2)
        assert scans[1].text == "]E04006381333931"
    finally:
        assert r.stop(2.0)
        for p in peers:
            p.close()
    assert [s.state for s in status] == ["connected", "disconnected", "connected"]


def test_reader_reports_missing_device_once_and_stops_quickly() -> None:
    cfg = HidPosScanner(type="hidpos", station="dock1", device="/dev/hidraw9")
    status: list[DeviceStatus] = []
    r = HidPosReader(
        "pos1",
        cfg,
        lambda s: None,
        status.append,
        lister=list,
        backoff=Backoff(0.01, 0.02, jitter="none"),
    )
    r.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    assert r.stop(2.0)
    assert time.monotonic() - t0 < 1.0
    assert [s.state for s in status] == ["disconnected"]
    assert "not present" in status[0].detail


# -- hot-plug pieces -----------------------------------------------------------------


def test_backoff() -> None:
    b = Backoff(0.5, 3.0, jitter="none")
    assert [b.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next() == 0.5


def test_watcher_dispatch_survives_failing_listener() -> None:
    w = DeviceWatcher()
    seen: list[tuple[str, str, str]] = []

    def bad(a: str, s: str, n: str) -> None:
        raise RuntimeError("boom")

    w.add_listener(bad)
    w.add_listener(lambda a, s, n: seen.append((a, s, n)))
    w.dispatch("add", "hidraw", "/dev/hidraw0")
    assert seen == [("add", "hidraw", "/dev/hidraw0")]


def test_watcher_start_is_safe_without_udev() -> None:
    w = DeviceWatcher()
    started = w.start()  # False in containers without netlink; True on a real host
    w.stop()
    assert started in (True, False)


@pytest.mark.parametrize("action", ["remove", "change"])
def test_reader_ignores_non_add_hotplug_events(action: str) -> None:
    r = HidPosReader("x", HidPosScanner(type="hidpos", station="s"), lambda s: None, lister=list)
    r.hotplug(action, "hidraw", "/dev/hidraw0")
    assert not r._kick.is_set()
    r.hotplug("add", "input", "/dev/input/event0")  # wrong subsystem for a hidraw reader
    assert not r._kick.is_set()
    r.hotplug("add", "hidraw", "/dev/hidraw0")
    assert r._kick.is_set()
