"""Operator/conveyor feedback: pure builders, pulse schedule, GPIO backends, the Feedback shell."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.scanners.types import RawScan
from gateway.feedback import (
    Feedback,
    FeedbackConfig,
    GpiozeroOut,
    Pulser,
    PulseSchedule,
    RecordingGpio,
    build_verdict,
    console_line,
    encode,
    gpio_line,
    make_gpio,
    verdict_topic,
)
from gateway.outcome import Outcome
from gateway.rules.decide import Reason

GS = "\x1d"
ROOT = "traceway/v1/site1/gw1"


# -- config and pure builders ----------------------------------------------------------------


def test_config_defaults() -> None:
    c = FeedbackConfig()
    assert (c.serial_beep, c.console, c.mqtt, c.gpio_pulse, c.gpio_chip) == (
        True,
        True,
        False,
        0.5,
        "",
    )
    assert (c.gpio_good, c.gpio_bad, c.gpio_warn) == (None, None, None)


@pytest.mark.parametrize(
    "bad",
    [
        {"gpio_good": -1},
        {"gpio_bad": 5000},
        {"gpio_pulse": 0},
        {"gpio_chip": "chip0"},
        {"gpio_chip": "/dev/gpiochip0"},
        {"beep": True},
    ],
)
def test_config_rejects(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FeedbackConfig(**bad)  # type: ignore[arg-type]


def test_config_accepts_a_chip_name() -> None:
    assert FeedbackConfig(gpio_chip="gpiochip4").gpio_chip == "gpiochip4"


def test_verdict_topic() -> None:
    assert verdict_topic(ROOT, "dock1") == f"{ROOT}/stations/dock1/verdict"


@pytest.mark.parametrize(
    ("verdict", "divert"), [("accept", False), ("warn", False), ("reject", True)]
)
def test_build_verdict(verdict: str, divert: bool) -> None:
    m = build_verdict(
        station="dock1",
        scanner="tunnel",
        verdict=verdict,
        reasons=("unknown_gtin",),
        seq=7,
        event_id="e-1",
        code="]C1" + "10A" + GS + "21B",
    )
    assert m == {
        "schema": {"name": "traceway.verdict", "version": "1.0"},
        "station": "dock1",
        "scanner": "tunnel",
        "verdict": verdict,
        "reasons": ["unknown_gtin"],
        "seq": 7,
        "event_id": "e-1",
        "code": "]C110A\x1d21B",
        "divert": divert,
    }
    assert json.loads(encode(m)) == m


def test_encode_is_compact_utf8() -> None:
    assert encode({"a": "é", "b": [1]}) == '{"a":"é","b":[1]}'.encode()


def test_console_lines() -> None:
    assert (
        console_line("dock1", "hand1", "accept", (), 42, "]C1" + "10A" + GS + "21B")
        == "✔ ACCEPT   dock1/hand1  ]C110A<GS>21B  seq=42"
    )
    assert (
        console_line("dock1", "hand1", "reject", ("unknown_gtin", "lot_expired"), None, "X")
        == "✖ REJECT   dock1/hand1  X  unknown_gtin, lot_expired"
    )
    assert console_line("dock1", "", "warn", ("near_expiry",), 3, "") == (
        "! WARN     dock1  -  near_expiry  seq=3"
    )
    assert console_line("d", "s", "reject", (), None, "é", ascii_only=True) == ("XX REJECT  d/s  ?")
    assert console_line("d", "s", "odd", (), None, "x").startswith("ODD")


def test_console_line_shortens_long_codes() -> None:
    line = console_line("d", "s", "accept", (), None, "9" * 200)
    assert "9" * 57 + "..." in line and "9" * 58 not in line


@pytest.mark.parametrize(
    ("cfg", "verdict", "line"),
    [
        (FeedbackConfig(gpio_good=1, gpio_bad=2, gpio_warn=3), "accept", 1),
        (FeedbackConfig(gpio_good=1, gpio_bad=2, gpio_warn=3), "warn", 3),
        (FeedbackConfig(gpio_good=1, gpio_bad=2, gpio_warn=3), "reject", 2),
        (FeedbackConfig(gpio_good=1, gpio_bad=2), "warn", 1),
        (FeedbackConfig(gpio_bad=2), "accept", None),
        (FeedbackConfig(gpio_good=1), "reject", None),
        (FeedbackConfig(gpio_good=0), "accept", 0),
        (FeedbackConfig(gpio_good=1, gpio_bad=2, gpio_warn=3), "other", None),
    ],
)
def test_gpio_line(cfg: FeedbackConfig, verdict: str, line: int | None) -> None:
    assert gpio_line(cfg, verdict) == line


# -- pulse schedule --------------------------------------------------------------------------


def test_pulse_schedule() -> None:
    s: PulseSchedule[str] = PulseSchedule()
    assert s.next_deadline() is None and s.due(100.0) == []
    assert s.start("red", 1.0, 0.5) is True
    assert s.start("red", 1.2, 0.5) is False  # already on: extended to 1.7
    assert s.start("red", 1.3, 0.1) is False  # a shorter pulse does not cut it
    assert s.start("green", 1.0, 0.2) is True
    assert s.next_deadline() == 1.2
    assert s.due(1.19) == []
    assert s.due(1.2) == ["green"]
    assert s.due(1.5) == []  # red's first end passed, but it was extended
    assert s.active() == ("red",)
    assert s.due(1.7) == ["red"]
    assert s.active() == () and s.next_deadline() is None
    assert s.start("red", 2.0, 0.5) is True


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 1), st.sampled_from("abc"), st.floats(0.01, 1)),
        max_size=30,
    )
)
def test_pulse_schedule_matches_a_model(ops: list[tuple[float, str, float]]) -> None:
    s: PulseSchedule[str] = PulseSchedule()
    on: dict[str, float] = {}
    now = 0.0
    for dt, key, dur in ops:
        now += dt
        off = s.due(now)
        assert sorted(off) == sorted(k for k, end in on.items() if end <= now)
        on = {k: end for k, end in on.items() if end > now}
        assert s.start(key, now, dur) is (key not in on)
        on[key] = max(on.get(key, now), now + dur)
        assert s.next_deadline() == min(on.values())
    assert sorted(s.due(now + 10)) == sorted(on)


# -- GPIO backends ---------------------------------------------------------------------------


@pytest.fixture
def mock_pins() -> Iterator[object]:
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    old = Device.pin_factory
    Device.pin_factory = MockFactory()
    try:
        yield Device.pin_factory
    finally:
        Device.pin_factory.close()
        Device.pin_factory = old


def test_gpiozero_drives_lines(mock_pins: object) -> None:
    from gpiozero.pins.mock import MockFactory

    assert isinstance(mock_pins, MockFactory)
    g = GpiozeroOut()
    g.set("", 17, True)
    assert mock_pins.pin(17).state is True
    g.set("", 17, False)
    assert mock_pins.pin(17).state is False
    g.set("", 27, True)
    assert mock_pins.pin(27).state is True
    g.close()
    assert mock_pins.pin(27).state is False  # switched off before release


def test_gpiozero_an_unusable_line_is_logged_once_and_skipped(
    mock_pins: object, caplog: pytest.LogCaptureFixture
) -> None:
    g = GpiozeroOut()
    with caplog.at_level(logging.ERROR, "gateway.feedback"):
        g.set("", 999, True)  # no such pin on the mock board
        g.set("", 999, False)
    assert len([r for r in caplog.records if "line 999 unusable" in r.getMessage()]) == 1
    g.set("", 17, True)  # other lines still work
    assert mock_pins.pin(17).state is True  # type: ignore[attr-defined]
    g.close()


def test_gpiozero_named_chip_without_lgpio_is_an_unusable_line(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "lgpio", None)  # as on a machine without lgpio
    g = GpiozeroOut()
    with caplog.at_level(logging.ERROR, "gateway.feedback"):
        g.set("gpiochip4", 5, True)
    assert "gpiochip4 line 5 unusable" in caplog.text
    g.close()


def test_make_gpio(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    assert make_gpio({"a": FeedbackConfig()}) is None  # no line used: no backend
    used = {"a": FeedbackConfig(), "b": FeedbackConfig(gpio_bad=4)}
    assert isinstance(make_gpio(used), GpiozeroOut)
    monkeypatch.setitem(sys.modules, "gpiozero", None)
    with caplog.at_level(logging.WARNING, "gateway.feedback"):
        assert make_gpio(used) is None
    assert "GPIO feedback disabled for b: gpiozero is not installed" in caplog.text


def test_pulser_switches_on_then_off_and_off_at_stop() -> None:
    gpio = RecordingGpio()
    p = Pulser(gpio)
    p.pulse("", 5, 0.05)
    p.pulse("", 6, 30.0)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and ("", 5, False) not in gpio.calls:
        time.sleep(0.01)
    assert gpio.calls[:2] == [("", 5, True), ("", 6, True)]
    assert ("", 5, False) in gpio.calls and gpio.state[("", 6)] is True
    p.stop()
    assert gpio.state == {("", 5): False, ("", 6): False} and gpio.closed


def test_pulser_extends_a_running_pulse() -> None:
    gpio = RecordingGpio()
    p = Pulser(gpio)
    p.pulse("", 5, 1.0)
    time.sleep(0.5)
    p.pulse("", 5, 1.0)  # now on until 1.5 s
    time.sleep(0.8)  # 1.3 s: past the first pulse's end, the line is still on
    assert gpio.calls == [("", 5, True)]
    deadline = time.monotonic() + 3
    while len(gpio.calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gpio.calls == [("", 5, True), ("", 5, False)]
    p.stop()


# -- the Feedback shell ----------------------------------------------------------------------


class Rig:
    """A Feedback with fakes for every output."""

    def __init__(self, send_ok: bool = True, **cfgs: FeedbackConfig) -> None:
        self.beeps: list[tuple[str, bool]] = []
        self.published: list[tuple[str, bytes]] = []
        self.gpio = RecordingGpio()
        self.out = io.StringIO()
        self.send_ok = send_ok
        self.fb = Feedback(
            cfgs,
            self._send,
            lambda t, b: self.published.append((t, b)),
            self.gpio,
            topic_root=ROOT,
            out=self.out,
        )

    def _send(self, scanner: str, ok: bool) -> bool:
        self.beeps.append((scanner, ok))
        return self.send_ok

    def verdict(
        self, verdict: str, *reasons: str, station: str = "dock", scanner: str = "s1"
    ) -> None:
        self.fb.on_verdict(station, scanner, verdict, reasons, 9, "e-9", "CODE")

    def lines(self) -> list[str]:
        return self.out.getvalue().splitlines()

    def wait_gpio(self, n: int) -> list[tuple[str, int, bool]]:
        deadline = time.monotonic() + 2
        while len(self.gpio.calls) < n and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.gpio.calls


@pytest.fixture
def rig_factory() -> Iterator[type[Rig]]:
    made: list[Rig] = []

    class Made(Rig):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, **kw)  # type: ignore[arg-type]
            made.append(self)

    yield Made
    for r in made:
        r.fb.close()


def test_accept_beeps_good_and_prints(rig_factory: type[Rig]) -> None:
    r = rig_factory(dock=FeedbackConfig())
    r.verdict("accept")
    assert r.beeps == [("s1", True)]
    assert r.lines() == ["✔ ACCEPT   dock/s1  CODE  seq=9"]
    assert r.published == [] and r.gpio.calls == []


def test_warn_beeps_good_and_pulses_the_warn_line(rig_factory: type[Rig]) -> None:
    r = rig_factory(dock=FeedbackConfig(gpio_good=1, gpio_warn=3, gpio_pulse=5))
    r.verdict("warn", "near_expiry")
    assert r.beeps == [("s1", True)]
    assert r.wait_gpio(1) == [("", 3, True)]
    assert r.lines() == ["! WARN     dock/s1  CODE  near_expiry  seq=9"]


def test_reject_beeps_bad_pulses_publishes_and_prints(rig_factory: type[Rig]) -> None:
    cfg = FeedbackConfig(gpio_bad=2, gpio_chip="gpiochip0", mqtt=True, gpio_pulse=5)
    r = rig_factory(dock=cfg)
    r.verdict("reject", "unknown_gtin")
    assert r.beeps == [("s1", False)]
    assert r.wait_gpio(1) == [("gpiochip0", 2, True)]
    [(topic, body)] = r.published
    assert topic == f"{ROOT}/stations/dock/verdict"
    msg = json.loads(body)
    assert (msg["verdict"], msg["divert"], msg["reasons"], msg["seq"], msg["code"]) == (
        "reject",
        True,
        ["unknown_gtin"],
        9,
        "CODE",
    )
    assert r.lines() == ["✖ REJECT   dock/s1  CODE  unknown_gtin  seq=9"]


def test_outputs_that_are_off_stay_off(rig_factory: type[Rig]) -> None:
    r = rig_factory(dock=FeedbackConfig(serial_beep=False, console=False))
    r.verdict("accept")
    r.verdict("warn")
    assert (r.beeps, r.published, r.lines()) == ([], [], [])


def test_a_reject_nobody_was_told_goes_to_the_console(rig_factory: type[Rig]) -> None:
    r = rig_factory(send_ok=False, dock=FeedbackConfig(console=False))  # no bad-read bytes
    r.verdict("reject", "lot_expired")
    assert r.beeps == [("s1", False)]
    assert r.lines() == ["✖ REJECT   dock/s1  CODE  lot_expired  seq=9"]


def test_a_reject_already_in_the_log_is_not_printed_twice(rig_factory: type[Rig]) -> None:
    """console = false: the daemon's log line is the one place the reject shows."""
    r = rig_factory(send_ok=False, dock=FeedbackConfig(console=False))
    r.fb.on_verdict("dock", "s1", "reject", ("lot_expired",), 9, "e-9", "CODE", logged=True)
    assert r.lines() == []
    r2 = rig_factory(send_ok=False, dock=FeedbackConfig(console=True))  # asked for: printed
    r2.fb.on_verdict("dock", "s1", "reject", ("lot_expired",), 9, "e-9", "CODE", logged=True)
    assert r2.lines() == ["✖ REJECT   dock/s1  CODE  lot_expired  seq=9"]


def test_a_delivered_reject_respects_console_off(rig_factory: type[Rig]) -> None:
    r = rig_factory(dock=FeedbackConfig(console=False))
    r.verdict("reject")
    assert r.lines() == []
    r2 = rig_factory(dock=FeedbackConfig(console=False, serial_beep=False, gpio_bad=1))
    r2.verdict("reject")
    assert r2.lines() == []
    r3 = rig_factory(dock=FeedbackConfig(console=False, serial_beep=False, mqtt=True))
    r3.verdict("reject")
    assert r3.lines() == [] and len(r3.published) == 1


def test_unknown_station_uses_the_defaults(rig_factory: type[Rig]) -> None:
    r = rig_factory()
    r.verdict("reject", station="elsewhere")
    assert r.beeps == [("s1", False)]
    assert r.lines() == ["✖ REJECT   elsewhere/s1  CODE  seq=9"]


def test_no_scanner_no_beep(rig_factory: type[Rig]) -> None:
    r = rig_factory()
    r.verdict("reject", "no_read", scanner="")
    assert r.beeps == []
    assert r.lines() == ["✖ REJECT   dock  CODE  no_read  seq=9"]


def test_failing_outputs_never_raise_and_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    class BadOut(io.StringIO):
        def write(self, s: str) -> int:
            raise OSError("stdout closed")

    def send(scanner: str, ok: bool) -> bool:
        raise OSError("port gone")

    def publish(topic: str, body: bytes) -> None:
        raise RuntimeError("paho")

    fb = Feedback(
        {"dock": FeedbackConfig(mqtt=True)}, send, publish, None, topic_root=ROOT, out=BadOut()
    )
    with caplog.at_level(logging.ERROR, "gateway.feedback"):
        fb.on_verdict("dock", "s1", "reject", (), None, None, "X")
        fb.on_verdict("dock", "s1", "reject", (), None, None, "X")
    assert fb.failures == {"serial": 2, "gpio": 0, "mqtt": 2, "console": 2}
    assert len([r for r in caplog.records if "serial feedback failed" in r.getMessage()]) == 1
    fb.close()


def test_configured_outputs_without_backends_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    cfg = FeedbackConfig(mqtt=True, gpio_bad=3, console=False, serial_beep=False)
    fb = Feedback({"dock": cfg}, lambda s, ok: True, None, None, out=out)
    with caplog.at_level(logging.WARNING, "gateway.feedback"):
        fb.on_verdict("dock", "s1", "reject", ("x",), 1, "e", "C")
        fb.on_verdict("dock", "s1", "reject", ("x",), 2, "e", "C")
    assert caplog.text.count("no GPIO backend") == 1
    assert caplog.text.count("no publisher/topic root") == 1
    assert len(out.getvalue().splitlines()) == 2  # nothing delivered: console fallback
    fb.close()


def test_ascii_console_gets_ascii_markers() -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    fb = Feedback({}, lambda s, ok: True, None, None, out=out)
    fb.on_verdict("dock", "s1", "accept", (), 1, "e", "é")
    assert raw.getvalue() == b"OK ACCEPT  dock/s1  ?  seq=1\n"


def test_a_slow_gpio_does_not_block_the_caller(rig_factory: type[Rig]) -> None:
    release = threading.Event()

    class SlowGpio(RecordingGpio):
        def set(self, chip: str, line: int, on: bool) -> None:
            release.wait(5)
            super().set(chip, line, on)

    out = io.StringIO()
    fb = Feedback({"d": FeedbackConfig(gpio_good=1)}, lambda s, ok: True, None, SlowGpio(), out=out)
    t0 = time.monotonic()
    for _ in range(20):
        fb.on_verdict("d", "s1", "accept", (), 1, "e", "C")
    assert time.monotonic() - t0 < 0.5
    release.set()
    fb.close()


def test_close_switches_lines_off(rig_factory: type[Rig]) -> None:
    r = rig_factory(dock=FeedbackConfig(gpio_bad=2, gpio_pulse=30))
    r.verdict("reject")
    r.wait_gpio(1)
    r.fb.close()
    assert r.gpio.calls == [("", 2, True), ("", 2, False)] and r.gpio.closed


def test_on_outcome(rig_factory: type[Rig]) -> None:
    r = rig_factory(dock=FeedbackConfig(mqtt=True))
    scan = RawScan("]C1X", "tunnel", 1.0, 1.0)
    o = Outcome(
        scan, "dock", "alert", "reject", (Reason("unknown_gtin", "no such GTIN"),), "s", 4, "e-4"
    )
    r.fb.on_outcome(o)
    assert r.beeps == [("tunnel", False)]
    msg = json.loads(r.published[0][1])
    assert (msg["scanner"], msg["reasons"], msg["seq"], msg["event_id"], msg["code"]) == (
        "tunnel",
        ["unknown_gtin"],
        4,
        "e-4",
        "]C1X",
    )
