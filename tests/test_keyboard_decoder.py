"""Keyboard-wedge decoding (pure), evdev device selection (pure) and the evdev reader thread."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.scanners.backoff import Backoff
from drivers.scanners.config import EvdevScanner
from drivers.scanners.evdev_reader import (
    LETTER_KEYS,
    EvdevReader,
    InputDeviceInfo,
    match_device,
    parse_vendor_product,
)
from drivers.scanners.event_log import EventRecord, decode_key_events, read_records
from drivers.scanners.keyboard_decoder import (
    DecodedScan,
    KeyboardDecoder,
    alt_code_char,
    compose,
    control_char,
    terminator_codes,
)
from drivers.scanners.keyboard_encoder import as_tuples, encode
from drivers.scanners.keymaps import (
    EV_KEY,
    EV_LED,
    EV_MSC,
    EV_SYN,
    KEY_CAPSLOCK,
    KEY_ENTER,
    KEY_KPENTER,
    KEY_LEFTALT,
    KEY_LEFTCTRL,
    KEY_LEFTSHIFT,
    KEY_RIGHTALT,
    KEY_SPACE,
    KEY_TAB,
    LED_CAPSL,
    SYN_DROPPED,
    SYN_REPORT,
    get_layout,
)
from drivers.scanners.types import DeviceStatus, RawScan

DATA = Path(__file__).parent / "data" / "events"
GS = "\x1d"
US, UK, DE, FR = (get_layout(n) for n in ("us", "uk", "de", "fr"))

# Hand-written key codes (linux/input-event-codes.h), independent of the encoder.
K = {"]": 27, "c": 46, "1": 2, "0": 11, "9": 10, "a": 30, "b": 48, "q": 16, "y": 21, "z": 44}
KP = {"0": 82, "2": 80, "9": 73}


class Stream:
    """Builds raw (type, code, value, t) events by hand."""

    def __init__(self) -> None:
        self.ev: list[tuple[int, int, int, float]] = []
        self.t = 0.0

    def key(self, code: int, value: int) -> Stream:
        self.ev.append((EV_KEY, code, value, self.t))
        self.ev.append((EV_SYN, SYN_REPORT, 0, self.t))
        self.t += 0.002
        return self

    def tap(self, code: int, *mods: int) -> Stream:
        for m in mods:
            self.key(m, 1)
        self.key(code, 1).key(code, 0)
        for m in reversed(mods):
            self.key(m, 0)
        return self

    def raw(self, type: int, code: int, value: int) -> Stream:
        self.ev.append((type, code, value, self.t))
        return self


def run(dec: KeyboardDecoder, events: Iterable[tuple[int, int, int, float]]) -> list[DecodedScan]:
    out: list[DecodedScan] = []
    for ty, code, value, t in events:
        out.extend(dec.feed(ty, code, value, t))
    return out


def texts(scans: list[DecodedScan]) -> list[str]:
    return [s.text for s in scans]


# -- hand-written streams per layout -------------------------------------------------


def test_us_aim_prefix_and_ctrl_bracket_gs() -> None:
    s = Stream().tap(K["]"]).tap(K["c"], KEY_LEFTSHIFT).tap(K["1"])
    s.tap(K["1"]).tap(K["0"]).tap(K["]"], KEY_LEFTCTRL).tap(K["9"]).tap(KEY_ENTER)
    assert texts(run(KeyboardDecoder(US), s.ev)) == ["]C110" + GS + "9"]


def test_de_swaps_y_and_z_and_types_brackets_with_altgr() -> None:
    s = Stream().tap(K["y"]).tap(K["z"]).tap(K["9"], KEY_RIGHTALT).tap(KEY_ENTER)
    assert texts(run(KeyboardDecoder(DE), s.ev)) == ["zy]"]


def test_fr_azerty_digits_need_shift() -> None:
    s = Stream().tap(K["q"]).tap(K["a"]).tap(K["1"]).tap(K["1"], KEY_LEFTSHIFT).tap(KEY_ENTER)
    assert texts(run(KeyboardDecoder(FR), s.ev)) == ["aq&1"]


def test_uk_shift_2_is_double_quote_and_us_is_at() -> None:
    s = Stream().tap(3, KEY_LEFTSHIFT).tap(KEY_ENTER)
    assert texts(run(KeyboardDecoder(UK), s.ev)) == ['"']
    assert texts(run(KeyboardDecoder(US), s.ev)) == ["@"]


def test_right_alt_is_alt_on_us_and_altgr_elsewhere() -> None:
    s = Stream().key(KEY_RIGHTALT, 1).tap(KP["2"]).tap(KP["9"]).key(KEY_RIGHTALT, 0).tap(KEY_ENTER)
    assert texts(run(KeyboardDecoder(US), s.ev)) == [GS]
    # On de, RightAlt is AltGr: keypad digits stay digits.
    assert texts(run(KeyboardDecoder(DE), s.ev)) == ["29"]


# -- GS methods ----------------------------------------------------------------------


@pytest.mark.parametrize("digits", ["0029", "029", "29"])
def test_alt_keypad_gs_any_form(digits: str) -> None:
    s = Stream().tap(K["1"]).key(KEY_LEFTALT, 1)
    for d in digits:
        s.tap(KP[d])
    s.key(KEY_LEFTALT, 0).tap(K["1"]).tap(KEY_ENTER)
    assert texts(run(KeyboardDecoder(DE), s.ev)) == ["1" + GS + "1"]


@pytest.mark.parametrize(
    ("digits", "char"),
    [
        ("0029", GS),
        ("29", GS),
        ("65", "A"),
        ("065", "A"),
        ("0128", "€"),  # Windows-1252
        ("128", "Ç"),  # code page 437
        ("0129", "\x81"),  # undefined in cp1252
        ("321", "A"),  # modulo 256
        ("0", "\x00"),
    ],
)
def test_alt_code_char(digits: str, char: str) -> None:
    assert alt_code_char(digits) == char


def test_gs_substitute_character() -> None:
    s = Stream().tap(K["1"]).tap(4, KEY_LEFTSHIFT).tap(K["1"]).tap(KEY_ENTER)  # '#' on US
    assert texts(run(KeyboardDecoder(US, gs_substitute="#"), s.ev)) == ["1" + GS + "1"]
    assert texts(run(KeyboardDecoder(US), s.ev)) == ["1#1"]


def test_control_char() -> None:
    assert control_char("]") == GS
    assert control_char("m") == "\r"
    assert control_char("1") == ""
    assert control_char("") == ""


@pytest.mark.parametrize("layout", ["us", "uk", "de", "fr"])
@pytest.mark.parametrize("method", ["ctrl", "alt", "substitute"])
def test_every_gs_method_on_every_layout(layout: str, method: str) -> None:
    lay = get_layout(layout)
    text = "]C1010950110153000310AB-12" + GS + "21XY"
    sub = "|" if method == "substitute" else ""
    events = encode(text, lay, gs=method, gs_substitute=sub)  # type: ignore[arg-type]
    assert texts(run(KeyboardDecoder(lay, gs_substitute=sub), as_tuples(events))) == [text]


# -- modifiers, CapsLock, autorepeat -------------------------------------------------


def test_capslock_toggles_letters_only() -> None:
    s = Stream().tap(KEY_CAPSLOCK).tap(K["a"]).tap(K["a"], KEY_LEFTSHIFT).tap(K["1"])
    s.tap(KEY_CAPSLOCK).tap(K["a"]).tap(KEY_ENTER)
    assert texts(run(KeyboardDecoder(US), s.ev)) == ["Aa1a"]


def test_capslock_state_at_open() -> None:
    s = Stream().tap(K["a"]).tap(K["1"]).tap(KEY_ENTER)
    assert texts(run(KeyboardDecoder(US, capslock=True), s.ev)) == ["A1"]
    assert texts(run(KeyboardDecoder(US, capslock=False), s.ev)) == ["a1"]


def test_capslock_follows_led_events() -> None:
    s = Stream().raw(EV_LED, LED_CAPSL, 1).tap(K["a"]).raw(EV_LED, LED_CAPSL, 0).tap(K["a"])
    assert texts(run(KeyboardDecoder(US), s.tap(KEY_ENTER).ev)) == ["Aa"]


def test_capslock_on_de_affects_umlauts_not_on_fr_accented_digits() -> None:
    s = Stream().tap(KEY_CAPSLOCK).tap(26).tap(KEY_ENTER)  # ü on de, dead ^ on fr
    assert texts(run(KeyboardDecoder(DE), s.ev)) == ["Ü"]
    s = Stream().tap(KEY_CAPSLOCK).tap(3).tap(KEY_ENTER)  # é on fr
    assert texts(run(KeyboardDecoder(FR), s.ev)) == ["é"]


def test_uncompensated_scanner_with_capslock_on_swaps_case() -> None:
    events = encode("AbC", US, capslock=False)
    assert texts(run(KeyboardDecoder(US, capslock=True), as_tuples(events))) == ["aBc"]


def test_autorepeat_ignored_genuine_repeat_kept() -> None:
    s = Stream().key(K["1"], 1).key(K["1"], 2).key(K["1"], 2).key(K["1"], 0)
    s.tap(K["1"]).tap(KEY_ENTER)
    assert texts(run(KeyboardDecoder(US), s.ev)) == ["11"]


def test_shift_is_held_not_toggled() -> None:
    s = Stream().key(KEY_LEFTSHIFT, 1).tap(K["a"]).tap(K["b"]).key(KEY_LEFTSHIFT, 0).tap(K["a"])
    assert texts(run(KeyboardDecoder(US), s.tap(KEY_ENTER).ev)) == ["ABa"]


def test_msc_and_other_events_ignored() -> None:
    s = Stream().raw(EV_MSC, 4, 0x70004).tap(K["a"]).raw(EV_SYN, SYN_REPORT, 0).tap(KEY_ENTER)
    assert texts(run(KeyboardDecoder(US), s.ev)) == ["a"]


# -- dead keys -----------------------------------------------------------------------


def test_dead_keys_de() -> None:
    s = Stream().tap(41).tap(KEY_SPACE).tap(13).tap(18).tap(13, KEY_LEFTSHIFT).tap(KEY_SPACE)
    s.tap(41).tap(45).tap(KEY_ENTER)  # ^x does not compose
    assert texts(run(KeyboardDecoder(DE), s.ev)) == ["^é`^x"]


def test_dead_key_fr_and_compose() -> None:
    s = Stream().tap(26).tap(18).tap(26, KEY_LEFTSHIFT).tap(KEY_SPACE).tap(KEY_ENTER)
    assert texts(run(KeyboardDecoder(FR), s.ev)) == ["ê¨"]
    assert compose("^", "1") == "^1"
    assert compose("´", " ") == "´"


# -- framing: terminators, idle timeout, max length ----------------------------------


def test_terminators_configurable() -> None:
    s = Stream().tap(K["a"]).tap(KEY_TAB).tap(K["b"]).tap(KEY_KPENTER)
    assert texts(run(KeyboardDecoder(US), s.ev)) == ["a\tb"]
    tab = KeyboardDecoder(US, terminators=terminator_codes(["tab"]))
    assert texts(run(tab, s.ev)) == ["a"]
    with pytest.raises(ValueError, match="unknown terminator"):
        terminator_codes(["esc"])


def test_empty_scan_not_reported() -> None:
    assert run(KeyboardDecoder(US), Stream().tap(KEY_ENTER).tap(KEY_ENTER).ev) == []


def test_idle_timeout_ends_scan() -> None:
    dec = KeyboardDecoder(US, idle_timeout=0.1)
    s = Stream().tap(K["a"])
    assert run(dec, s.ev) == []
    assert dec.flush_idle(s.t + 0.01) == []
    out = dec.flush_idle(s.t + 0.2)
    assert texts(out) == ["a"] and out[0].error is None
    # The next event after a gap ends the previous scan too.
    s2 = Stream().tap(K["a"])
    s2.t += 1.0
    s2.tap(K["b"]).tap(KEY_ENTER)
    assert texts(run(KeyboardDecoder(US, idle_timeout=0.1), s2.ev)) == ["a", "b"]


def test_no_idle_timeout_waits_for_terminator() -> None:
    dec = KeyboardDecoder(US)
    run(dec, Stream().tap(K["a"]).ev)
    assert dec.flush_idle(1e9) == []


def test_max_length() -> None:
    s = Stream()
    for _ in range(20):
        s.tap(K["1"])
    s.tap(KEY_ENTER).tap(K["a"]).tap(KEY_ENTER)
    out = run(KeyboardDecoder(US, max_length=16), s.ev)
    assert [(x.error, len(x.text)) for x in out] == [("frame_too_long", 16), (None, 1)]


def test_unmapped_key_is_decode_error_not_shorter_barcode() -> None:
    s = Stream().tap(K["1"]).tap(59).tap(K["1"]).tap(KEY_ENTER)  # F1
    (scan,) = run(KeyboardDecoder(US), s.ev)
    assert scan.error == "decode_error" and "59" in scan.detail
    s = Stream().key(KEY_LEFTALT, 1).tap(K["a"]).key(KEY_LEFTALT, 0).tap(KEY_ENTER)
    (scan,) = run(KeyboardDecoder(US), s.ev)
    assert scan.error == "decode_error"


# -- SYN_DROPPED ---------------------------------------------------------------------


def test_syn_dropped_mid_scan_reports_one_overrun_then_recovers() -> None:
    s = Stream().tap(K["1"]).tap(K["0"])
    s.raw(EV_SYN, SYN_DROPPED, 0).key(K["9"], 1).raw(EV_SYN, SYN_REPORT, 0)
    s.tap(K["9"]).tap(KEY_ENTER).tap(K["1"]).tap(KEY_ENTER)
    dec = KeyboardDecoder(US)
    out = run(dec, s.ev)
    assert [(x.error, x.text) for x in out] == [("input_overrun", ""), (None, "1")]
    assert dec.resync_wanted


def test_syn_dropped_ignores_events_until_syn_report() -> None:
    dec = KeyboardDecoder(US)
    dec.feed(EV_KEY, KEY_LEFTSHIFT, 1, 0.0)
    dec.feed(EV_SYN, SYN_DROPPED, 0, 0.01)
    dec.feed(EV_KEY, KEY_ENTER, 1, 0.02)  # before SYN_REPORT: ignored, not a terminator
    assert not dec.resync_wanted
    dec.feed(EV_SYN, SYN_REPORT, 0, 0.03)
    assert dec.resync_wanted
    dec.resync([KEY_LEFTSHIFT], capslock=False)
    assert not dec.resync_wanted
    out = run(dec, [(EV_KEY, K["a"], 1, 0.04), (EV_KEY, KEY_ENTER, 1, 0.05)])
    assert [(x.error, x.text) for x in out] == [("input_overrun", "")]
    out = run(dec, [(EV_KEY, K["a"], 1, 0.06), (EV_KEY, KEY_ENTER, 1, 0.07)])
    assert texts(out) == ["A"]  # Shift still held per resync


def test_syn_dropped_with_lost_terminator_recovers_after_gap() -> None:
    dec = KeyboardDecoder(US, resync_gap=0.5)
    out = run(dec, Stream().tap(K["1"]).raw(EV_SYN, SYN_DROPPED, 0).raw(EV_SYN, SYN_REPORT, 0).ev)
    assert out == []
    s = Stream()
    s.t = 2.0
    out = run(dec, s.tap(K["a"]).tap(KEY_ENTER).ev)
    assert [(x.error, x.text) for x in out] == [("input_overrun", ""), (None, "a")]


def test_syn_dropped_between_scans_still_reported() -> None:
    dec = KeyboardDecoder(US)
    out = run(dec, Stream().raw(EV_SYN, SYN_DROPPED, 0).raw(EV_SYN, SYN_REPORT, 0).ev)
    assert dec.flush_idle(10.0)[0].error == "input_overrun"
    assert out == []


# -- interleaved devices and recorded files ------------------------------------------


def test_interleaved_devices_have_independent_modifiers() -> None:
    a = Stream().key(KEY_LEFTSHIFT, 1)
    b = Stream().tap(K["a"])
    a.tap(K["b"]).key(KEY_LEFTSHIFT, 0).tap(KEY_ENTER)
    b.tap(KEY_ENTER)
    merged = sorted(
        [EventRecord(t, ty, c, v, "a") for ty, c, v, t in a.ev]
        + [EventRecord(t, ty, c, v, "b") for ty, c, v, t in b.ev],
        key=lambda r: r.t,
    )
    out = decode_key_events(merged, lambda: KeyboardDecoder(US))
    assert sorted((d, s.text) for d, s in out) == [("a", "B"), ("b", "a")]


RECORDED = [
    ("us_ctrl_gs.jsonl", "us", {}, ["]C101095011015300031725123110ABC123" + GS + "21XYZ"]),
    ("de_alt_gs.jsonl", "de", {}, ["]d2010950110153000310LOT-7/A" + GS + "17260630"]),
    (
        "fr_substitute_gs.jsonl",
        "fr",
        {"gs_substitute": "#"},
        ["]C1010950110153000310Lot:5%" + GS + "21S/N.1"],
    ),
    ("uk_capslock.jsonl", "uk", {}, ["]Q1https://id.gs1.org/01/09501101530003/10AB12"]),
    ("us_autorepeat.jsonl", "us", {}, ["]E0400"]),
    ("us_syn_dropped.jsonl", "us", {}, ["<input_overrun>", "]C10109501101530003"]),
]


@pytest.mark.parametrize(("name", "layout", "opts", "expected"), RECORDED)
def test_recorded_streams(
    name: str, layout: str, opts: dict[str, Any], expected: list[str]
) -> None:
    records = [r for r in read_records(DATA / name) if isinstance(r, EventRecord)]
    out = decode_key_events(records, lambda: KeyboardDecoder(get_layout(layout), **opts))
    assert [f"<{s.error}>" if s.error else s.text for _, s in out] == expected


def test_recorded_interleaved() -> None:
    records = [r for r in read_records(DATA / "interleaved.jsonl") if isinstance(r, EventRecord)]
    out = decode_key_events(records, lambda: KeyboardDecoder(US))
    assert sorted((d, s.text) for d, s in out) == [("a", "]C1ABC"), ("b", "]C1xyz")]


# -- device selection (pure) ---------------------------------------------------------


def info(
    path: str, name: str, vp: tuple[int, int], phys: str, kbd: bool, *links: str
) -> InputDeviceInfo:
    return InputDeviceInfo(path, name, vp[0], vp[1], phys, tuple(links), kbd)


HONEY = (0x0C2E, 0x0B8F)
DEVICES = [
    info("/dev/input/event0", "AT Keyboard", (1, 1), "isa0060/serio0/input0", True),
    info(
        "/dev/input/event5",
        "Honeywell Voyager Consumer Control",
        HONEY,
        "usb-0000:01:00.0-1.2/input1",
        False,
        "/dev/input/by-id/usb-Honeywell_Voyager-if01-event-kbd",
    ),
    info(
        "/dev/input/event4",
        "Honeywell Voyager",
        HONEY,
        "usb-0000:01:00.0-1.2/input0",
        True,
        "/dev/input/by-id/usb-Honeywell_Voyager-event-kbd",
        "/dev/input/by-path/platform-usb-1.2-event-kbd",
    ),
]


def test_match_by_link_and_path() -> None:
    link = "/dev/input/by-path/platform-usb-1.2-event-kbd"
    assert match_device(DEVICES, device=link).device == DEVICES[2]
    assert match_device(DEVICES, device="/dev/input/event4").device == DEVICES[2]
    assert match_device(DEVICES, device="/dev/input/by-id/gone").device is None


def test_match_link_to_non_keyboard_node_picks_sibling_with_letters() -> None:
    choice = match_device(DEVICES, device="/dev/input/by-id/usb-Honeywell_Voyager-if01-event-kbd")
    assert choice.device == DEVICES[2]


def test_match_by_name_and_vendor_product_prefers_keyboard_node() -> None:
    assert match_device(DEVICES, name="voyager").device == DEVICES[2]
    assert match_device(DEVICES, vendor_product="0c2e:0b8f").device == DEVICES[2]
    assert match_device(DEVICES, name="voyager", vendor_product="0c2e:0001").device is None
    assert match_device([DEVICES[1]], name="voyager").reason.endswith("none has letter keys")
    assert match_device(DEVICES).device is None


def test_match_two_identical_scanners_is_ambiguous() -> None:
    twin = info(
        "/dev/input/event9", "Honeywell Voyager", HONEY, "usb-0000:01:00.0-1.3/input0", True
    )
    choice = match_device([*DEVICES, twin], vendor_product="0c2e:0b8f")
    assert choice.device is None and "ambiguous" in choice.reason


def test_parse_vendor_product() -> None:
    assert parse_vendor_product("0C2E:0b8f") == HONEY
    with pytest.raises(ValueError):
        parse_vendor_product("0c2e-0b8f")


# -- the reader thread with a fake device --------------------------------------------


class FakeEvent:
    def __init__(self, type: int, code: int, value: int) -> None:
        self.type, self.code, self.value = type, code, value


class FakeDevice:
    """Stands in for evdev.InputDevice: a pipe makes the fd readable when events are queued."""

    def __init__(self, path: str, leds: list[int] | None = None) -> None:
        self.path, self.name = path, "Fake Scanner"
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self.fd = self._r
        self.queue: list[FakeEvent] = []
        self.lock = threading.Lock()
        self.grabbed = self.closed = self.unplugged = False
        self._leds = leds or []

    def push(self, events: Iterable[tuple[int, int, int]]) -> None:
        with self.lock:
            self.queue.extend(FakeEvent(*e) for e in events)
        os.write(self._w, b"x")

    def unplug(self) -> None:
        self.unplugged = True
        os.write(self._w, b"x")

    def read(self) -> Iterator[FakeEvent]:
        if self.unplugged:
            raise OSError(errno.ENODEV, "No such device")
        with contextlib.suppress(BlockingIOError):
            os.read(self._r, 4096)
        with self.lock:
            evs, self.queue = self.queue, []
        return iter(evs)

    def grab(self) -> None:
        self.grabbed = True

    def ungrab(self) -> None:
        self.grabbed = False

    def leds(self) -> list[int]:
        return self._leds

    def active_keys(self) -> list[int]:
        return []

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._r)
            os.close(self._w)


def key_events(text: str, **kw: Any) -> list[tuple[int, int, int]]:
    return [(e.type, e.code, e.value) for e in encode(text, US, **kw)]


def wait_for(pred: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_reader_decodes_grabs_and_reconnects() -> None:
    cfg = EvdevScanner(type="evdev", station="dock1", name="fake")
    devs: list[FakeDevice] = []
    present = [True]
    scans: list[RawScan] = []
    status: list[DeviceStatus] = []

    def lister() -> list[InputDeviceInfo]:
        return (
            [InputDeviceInfo("/dev/input/event7", "Fake Scanner", has_letter_keys=True)]
            if present[0]
            else []
        )

    def factory(path: str) -> FakeDevice:
        devs.append(FakeDevice(path, leds=[LED_CAPSL] if len(devs) == 1 else []))
        return devs[-1]

    r = EvdevReader(
        "s1",
        cfg,
        scans.append,
        status.append,
        lister=lister,
        device_factory=factory,
        backoff=Backoff(0.02, 0.05, jitter="none"),
    )
    r.start()
    try:
        wait_for(lambda: r.connected)
        assert devs[0].grabbed
        devs[0].push(key_events("]C1" + "0109501101530003" + GS + "21A"))
        wait_for(lambda: len(scans) == 1)
        assert scans[0].text == "]C10109501101530003" + GS + "21A" and scans[0].scanner == "s1"
        present[0] = False
        devs[0].unplug()
        wait_for(lambda: any(s.state == "disconnected" for s in status))
        assert devs[0].closed and not r.connected
        present[0] = True
        r.hotplug("add", "input", "/dev/input/event7")
        wait_for(lambda: r.connected and len(devs) == 2)
        devs[1].push(key_events("ab"))  # second device opened with CapsLock LED on
        wait_for(lambda: len(scans) == 2)
        assert scans[1].text == "AB"
    finally:
        assert r.stop(2.0)
    assert [s.state for s in status] == ["connected", "disconnected", "connected"]
    assert devs[1].closed


def test_reader_reports_overrun_as_rejected_scan() -> None:
    cfg = EvdevScanner(type="evdev", station="dock1", device="/dev/input/event7", grab=False)
    dev = FakeDevice("/dev/input/event7")
    scans: list[RawScan] = []
    r = EvdevReader(
        "s1",
        cfg,
        scans.append,
        lister=lambda: [InputDeviceInfo("/dev/input/event7", has_letter_keys=True)],
        device_factory=lambda p: dev,
    )
    r.start()
    try:
        wait_for(lambda: r.connected)
        ev = key_events("12345")
        dev.push([*ev[:6], (EV_SYN, SYN_DROPPED, 0), (EV_SYN, SYN_REPORT, 0), *ev[14:]])
        dev.push(key_events("9"))
        wait_for(lambda: len(scans) == 2)
    finally:
        r.stop()
    assert [(s.error, s.text) for s in scans] == [("input_overrun", ""), (None, "9")]
    assert not dev.grabbed


def test_letter_keys_constant() -> None:
    assert len(LETTER_KEYS) == 26
    assert KEY_TAB not in LETTER_KEYS
