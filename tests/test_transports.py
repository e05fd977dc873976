"""Transports against the fake printer (TCP), pyserial loop://, a file; USB device specs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from drivers.printers.fake_zebra import FakeZebra
from drivers.printers.printer import Printer
from drivers.printers.templates import load_templates
from drivers.printers.transport import TransportError, backoff_delays
from drivers.printers.transport_file import FileTransport
from drivers.printers.transport_serial import SerialTransport
from drivers.printers.transport_tcp import TcpTransport
from drivers.printers.transport_usb import ZEBRA_VENDOR, UsbLpTransport, parse_device, usb_transport


def test_tcp_second_client_is_refused_and_reconnect_works() -> None:
    with FakeZebra() as fake:
        a = TcpTransport("127.0.0.1", fake.port, timeout=1)
        a.open()
        b = TcpTransport("127.0.0.1", fake.port, timeout=1)
        with pytest.raises(TransportError):
            b.open()
            b.write(b"~HS")
            b.read(1.0)
        deadline = time.monotonic() + 5  # the fake's accept thread may lag under load
        while fake.state.refused_clients < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fake.state.refused_clients == 1
        fake.power_cycle()
        with pytest.raises(TransportError):
            a.write(b"~HS")
            a.read(1.0)
        a.open()
        a.write(b"~HS")
        assert b"\x02" in a.read(1.0)
        a.close()


def test_tcp_connect_refused_quickly() -> None:
    with FakeZebra() as fake:
        port = fake.port
    with pytest.raises(TransportError):
        TcpTransport("127.0.0.1", port, timeout=0.5).open()


def test_stored_format_redownloaded_after_power_cycle() -> None:
    t = load_templates().get("lot", 203, "4x6")
    vals = {"gtin": "09501101530003", "lot": "A1", "expiry": "270101"}
    with FakeZebra() as fake:
        p = Printer(TcpTransport("127.0.0.1", fake.port, timeout=1), timeout=0.5)
        p.connect()
        p.print_label(t, vals)
        p.print_label(t, vals)
        assert p.wait_idle(3).idle
        assert sum("^DF" in f for f in fake.state.received) == 1
        fake.power_cycle()
        p.connect()
        p.print_label(t, vals)
        assert p.wait_idle(3).idle
        assert sum("^DF" in f for f in fake.state.received) == 2
        assert fake.state.missing_formats == 0 and len(fake.state.printed) == 3


def test_silent_hs_is_answered_with_hqes_not_offline() -> None:
    with FakeZebra() as fake:
        p = Printer(TcpTransport("127.0.0.1", fake.port, timeout=1), timeout=0.3)
        p.connect()
        fake.faults.head_open = True
        st = p.status()
        assert st.source == "hqes" and st.problems == ("head open",)
        fake.faults.silent_hqes = True
        assert p.status().state == "unknown"
        fake.faults = type(fake.faults)(split_replies=True)
        assert p.status().idle and p.label_count() == 1000


def test_serial_loopback() -> None:
    s = SerialTransport("loop://", 9600, timeout=1)
    s.open()
    s.write(b"^XA^XZ")
    assert s.read(1.0) == b"^XA^XZ"
    s.close()
    with pytest.raises(TransportError):
        SerialTransport("/nonexistent/tty", timeout=0.1).open()


def test_file_transport(tmp_path: Path) -> None:
    f = FileTransport(tmp_path / "out.zpl")
    p = Printer(f)
    p.connect()
    assert p.status().ready and p.label_count() is None
    p.send("^XA^XZ")
    assert (tmp_path / "out.zpl").read_text() == "^XA^XZ"


def test_usb_device_specs() -> None:
    assert parse_device("") == ("usb", ZEBRA_VENDOR, None)
    assert parse_device("0a5f:0181") == ("usb", 0x0A5F, 0x0181)
    assert parse_device("/dev/usb/lp0")[0] == "file"
    assert isinstance(usb_transport("/dev/usb/lp0"), UsbLpTransport)
    with pytest.raises(TransportError):
        parse_device("zebra")


def test_backoff() -> None:
    d = backoff_delays(0.5, 8)
    assert d == [0.5, 1.0, 2.0, 4.0, 8]
