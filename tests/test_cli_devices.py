"""``traceway devices`` and ``traceway scan-test`` (offline path; live path with a fake reader)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drivers.scanners.evdev_reader import InputDeviceInfo
from drivers.scanners.hidpos_reader import HidrawInfo
from drivers.scanners.types import RawScan
from gateway.cli import devices as cli_devices
from gateway.cli import main
from gateway.cli.devices import (
    Inventory,
    SerialPort,
    UsbPrinter,
    collect_inventory,
    format_inventory,
    inventory_json,
    list_serial,
    list_usb_printers,
    scan_line,
    symbology_of,
)

DATA = Path(__file__).parent / "data" / "events"
GS = "\x1d"


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, object]]]:
    rc = main(list(argv))
    out = capsys.readouterr().out
    return rc, [json.loads(line) for line in out.splitlines() if line.strip()]


def test_scan_test_offline_us(capsys: pytest.CaptureFixture[str]) -> None:
    rc, rows = run_json(capsys, "scan-test", "--events", str(DATA / "us_ctrl_gs.jsonl"))
    assert rc == 0
    (row,) = rows
    assert row["text"] == "]C101095011015300031725123110ABC123" + GS + "21XYZ"
    assert row["symbology"] == "]C1"
    assert set(row) >= {"text", "symbology", "interpretation"}
    interp = row["interpretation"]
    if interp is not None:  # gs1.interpret present
        assert isinstance(interp, dict) and interp["gtin"] == "09501101530003"


def test_scan_test_offline_layout_and_substitute(capsys: pytest.CaptureFixture[str]) -> None:
    f = str(DATA / "fr_substitute_gs.jsonl")
    rc, rows = run_json(
        capsys, "scan-test", "--events", f, "--layout", "fr", "--gs-substitute", "#"
    )
    assert rc == 0 and [r["text"] for r in rows] == ["]C1010950110153000310Lot:5%" + GS + "21S/N.1"]
    # Decoded with the wrong layout the text differs: the layout really is applied.
    rc, rows = run_json(capsys, "scan-test", "--events", f, "--layout", "us")
    assert rows[0]["text"] != "]C1010950110153000310Lot:5%" + GS + "21S/N.1"


def test_scan_test_offline_overrun_and_devices(capsys: pytest.CaptureFixture[str]) -> None:
    rc, rows = run_json(capsys, "scan-test", "--events", str(DATA / "us_syn_dropped.jsonl"))
    assert rc == 0
    assert rows[0]["error"] == "input_overrun" and rows[0]["interpretation"] is None
    assert rows[1]["text"] == "]C10109501101530003" and "error" not in rows[1]
    rc, rows = run_json(capsys, "scan-test", "--events", str(DATA / "interleaved.jsonl"))
    assert sorted((r["dev"], r["text"]) for r in rows) == [("a", "]C1ABC"), ("b", "]C1xyz")]


def test_scan_test_offline_hidpos_reports(capsys: pytest.CaptureFixture[str]) -> None:
    rc, rows = run_json(capsys, "scan-test", "--events", str(DATA / "hidpos_continued.jsonl"))
    assert rc == 0 and [r["symbology"] for r in rows] == ["]d2", "]E0"]


def test_scan_test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan-test", "--events", str(tmp_path / "missing.jsonl")]) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{nope\n")
    assert main(["scan-test", "--events", str(bad)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
    assert main(["scan-test", "--events", str(DATA / "us_ctrl_gs.jsonl"), "--layout", "xx"]) == 2
    assert main(["scan-test"]) == 2


def test_devices_on_this_machine_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "Input devices" in out and "USB printers" in out
    assert main(["devices", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {
        "inputs",
        "hidraw",
        "serial",
        "printers",
        "lp",
    }


def test_devices_on_empty_roots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["devices", "--sys-root", str(tmp_path), "--dev-root", str(tmp_path)])
    assert rc == 0
    assert capsys.readouterr().out.count("none found") == 4


def make_fake_machine(root: Path) -> None:
    usb = root / "sys" / "bus" / "usb" / "devices"
    zebra = usb / "1-1.3"
    zebra.mkdir(parents=True)
    (zebra / "idVendor").write_text("0a5f\n")
    (zebra / "idProduct").write_text("0166\n")
    (zebra / "manufacturer").write_text("Zebra Technologies\n")
    (zebra / "product").write_text("ZTC ZD421-203dpi ZPL\n")
    other = usb / "1-1.4"
    other.mkdir()
    (other / "idVendor").write_text("04f9\n")
    (other / "idProduct").write_text("2042\n")
    (usb / "1-1.4:1.0").mkdir()
    (usb / "1-1.4:1.0" / "bInterfaceClass").write_text("07\n")
    hub = usb / "usb1"
    hub.mkdir()
    (hub / "idVendor").write_text("1d6b\n")
    (hub / "idProduct").write_text("0002\n")
    dev = root / "dev"
    (dev / "serial" / "by-id").mkdir(parents=True)
    (dev / "ttyACM0").write_text("")
    (dev / "ttyUSB0").write_text("")
    (dev / "serial" / "by-id" / "usb-Datalogic_Scanner-if00").symlink_to(dev / "ttyACM0")
    (dev / "usb").mkdir()
    (dev / "usb" / "lp0").write_text("")


def test_fake_machine_inventory(tmp_path: Path) -> None:
    make_fake_machine(tmp_path)
    printers = list_usb_printers(str(tmp_path / "sys"))
    assert [(p.vendor, p.zebra) for p in printers] == [(0x0A5F, True), (0x04F9, False)]
    assert printers[0].name == "Zebra Technologies ZTC ZD421-203dpi ZPL"
    serial = list_serial(str(tmp_path / "dev"))
    assert serial[0].path.endswith("ttyACM0") and serial[0].links[0].endswith(
        "Datalogic_Scanner-if00"
    )
    assert serial[1].links == ()
    inputs = [
        InputDeviceInfo(
            "/dev/input/event4",
            "Honeywell Voyager",
            0x0C2E,
            0x0B8F,
            "p/input0",
            ("/dev/input/by-id/usb-Honeywell-event-kbd",),
            True,
        ),
        InputDeviceInfo("/dev/input/event5", "Power Button", 0, 1, "", (), False),
        InputDeviceInfo("/dev/input/event6", error="Permission denied"),
    ]
    probed: list[str] = []

    def probe(path: str) -> bool:
        probed.append(path)
        return True

    inv = collect_inventory(str(tmp_path / "sys"), str(tmp_path / "dev"), lambda: inputs, probe)
    assert probed == ["/dev/input/event4"]  # only keyboard nodes are grab-probed
    text = "\n".join(format_inventory(inv))
    assert "keyboard  grabbed by another process" in text
    assert "/dev/input/by-id/usb-Honeywell-event-kbd" in text
    assert "HID POS mode is preferred" in text
    assert "not a keyboard" in text
    assert "Permission denied" in text and "group 'input'" in text
    assert "Zebra" in text and "lp0" in text
    assert "prefer a /dev/serial/by-id name" in text  # ttyUSB0 has no link
    data = inventory_json(inv)
    assert data["inputs"][0]["grabbed"] is True
    json.dumps(data)


def test_format_hidraw_hint() -> None:
    inv = Inventory(hidraw=[HidrawInfo("/dev/hidraw0", "Voyager", 0x0C2E, 0x0B8F, True)])
    text = "\n".join(format_inventory(inv))
    assert "HID POS scanner (usage page 0x8C)" in text
    assert 'vendor_product = "0c2e:0b8f"' in text
    inv = Inventory(serial=[SerialPort("/dev/ttyS0")], printers=[UsbPrinter("x", 1, 2, "p", False)])
    assert "Zebra" not in "\n".join(format_inventory(inv))


def test_symbology_of() -> None:
    assert symbology_of("]C1010950") == "]C1"
    assert symbology_of("]d2") == "]d2"
    assert symbology_of("0109") is None
    assert symbology_of("]") is None
    assert symbology_of("]1x") is None


def test_scan_line_shows_invisible_characters() -> None:
    ok = RawScan("]C110AB" + GS + "21X", "s1", 0.0, 0.0)
    line = scan_line(ok)
    assert "]C110AB<GS>21X" in line and "GS1-128" in line
    bad = RawScan("", "s1", 0.0, 0.0, error="input_overrun", detail="lost")
    assert "REJECTED input_overrun" in scan_line(bad)


def test_interpretation_fallback_when_module_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kw: object) -> object:
        if name == "gs1.interpret":
            raise ImportError(name)
        return real_import(name, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", fake_import)
    assert cli_devices.interpretation_of("]C10109501101530003") is None


def test_live_scan_test_with_config_and_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Live mode wiring: a fake EvdevReader delivers two scans; --count stops; --record is written."""
    import drivers.scanners.evdev_reader as er

    class FakeReader:
        def __init__(self, name: str, cfg: object, sink, on_status, *, recorder=None) -> None:  # type: ignore[no-untyped-def]
            self.sink, self.recorder = sink, recorder

        def start(self) -> None:
            if self.recorder is not None:
                self.recorder.event(1, 30, 1, self.recorder.t0 + 0.1)
            self.sink(RawScan("]C10109501101530003", "s1", 0.0, 0.0))
            self.sink(RawScan("", "s1", 0.0, 0.0, error="input_overrun", detail="lost"))

        def stop(self, timeout: float = 2.0) -> bool:
            return True

    monkeypatch.setattr(er, "EvdevReader", FakeReader)
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        '[gateway]\nsite = "s"\nid = "g"\n'
        '[stations.dock1]\nstep = "receiving"\n'
        '[scanners.s1]\ntype = "evdev"\nstation = "dock1"\nname = "Voyager"\n'
    )
    rec = tmp_path / "rec.jsonl"
    argv = ["scan-test", "--config", str(cfg), "--scanner", "s1", "--record", str(rec)]
    rc = main([*argv, "--count", "2"])
    out = capsys.readouterr()
    assert rc == 0
    assert "]C10109501101530003" in out.out and "REJECTED input_overrun" in out.out
    assert rec.read_text().strip() == '{"t":0.1,"type":1,"code":30,"value":1}'
    assert main(["scan-test", "--config", str(cfg), "--scanner", "nope"]) == 2
