"""Keyboard-wedge decoding: raw evdev (type, code, value) triples -> scanned text. Pure.

One ``KeyboardDecoder`` per device (modifier state is per device). Rules:

- Shift, Ctrl, Alt and AltGr are held state (press/release); CapsLock toggles on key down
  and also follows ``EV_LED``/``LED_CAPSL`` from the device. CapsLock affects letters only
  (keys whose Shift level is the capital of the plain level, so ä/ö/ü on de, not é/à on fr).
- Characters come from key-down events (value 1); autorepeat (value 2) is ignored.
- GS (0x1D) arrives as Ctrl+] (any layout where ``]`` can be typed: the control character
  is taken from the character the key gives), as Alt + keypad digits (any Alt code: on Alt
  release the digits give ``chr``; a leading 0 means Windows-1252, otherwise code page 437;
  codes below 32 are control characters either way; values wrap modulo 256), or as a
  configured substitute character.
- Dead keys: dead + space gives the accent, dead + a letter that composes gives the
  composed letter, otherwise the accent followed by the character (Windows behaviour).
- A scan ends on a terminator key (Enter, keypad Enter, Tab: configurable), or when no
  key arrives for ``idle_timeout`` seconds. Empty scans are not reported.
- A key that gives no character in the layout, or a key pressed with Alt held that is not
  a keypad digit, makes the scan a ``decode_error`` (never a silently shorter barcode).
- ``SYN_DROPPED``: events were lost. All events up to and including the next
  ``SYN_REPORT`` are ignored (kernel docs); the scan in progress and everything up to the
  next terminator (or an input gap of ``resync_gap`` seconds, or the idle timeout) is
  discarded and reported as one ``input_overrun`` scan. Held modifiers are forgotten; the
  reader may call ``resync()`` with the device's real key state.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from drivers.scanners.keymaps import (
    ALTGR,
    COMBINING,
    EV_KEY,
    EV_LED,
    EV_SYN,
    KEY_CAPSLOCK,
    KEY_ENTER,
    KEY_KPENTER,
    KEY_LEFTALT,
    KEY_LEFTCTRL,
    KEY_LEFTMETA,
    KEY_LEFTSHIFT,
    KEY_NUMLOCK,
    KEY_RIGHTALT,
    KEY_RIGHTCTRL,
    KEY_RIGHTMETA,
    KEY_RIGHTSHIFT,
    KEY_SCROLLLOCK,
    KEY_TAB,
    KEYPAD_DIGITS,
    LED_CAPSL,
    PLAIN,
    SHIFT,
    SYN_DROPPED,
    SYN_REPORT,
    Layout,
)

DecodeError = Literal["input_overrun", "frame_too_long", "decode_error"]

TERMINATOR_KEYS = {"enter": KEY_ENTER, "kp_enter": KEY_KPENTER, "tab": KEY_TAB}
_SHIFTS = frozenset({KEY_LEFTSHIFT, KEY_RIGHTSHIFT})
_CTRLS = frozenset({KEY_LEFTCTRL, KEY_RIGHTCTRL})
_IGNORED = frozenset({KEY_NUMLOCK, KEY_SCROLLLOCK, KEY_LEFTMETA, KEY_RIGHTMETA})
_NON_TERMINATOR_CHARS = {KEY_ENTER: "\r", KEY_KPENTER: "\r", KEY_TAB: "\t"}


@dataclass(frozen=True, slots=True)
class DecodedScan:
    """One decoded scan: the text, or an error with what was read so far in ``text``."""

    text: str
    error: DecodeError | None
    t: float
    detail: str = ""


def terminator_codes(names: Iterable[str]) -> frozenset[int]:
    """Key codes for terminator names (``enter``, ``kp_enter``, ``tab``)."""
    try:
        return frozenset(TERMINATOR_KEYS[n] for n in names)
    except KeyError as exc:
        raise ValueError(
            f"unknown terminator {exc.args[0]!r} (known: {', '.join(TERMINATOR_KEYS)})"
        ) from None


def alt_code_char(digits: str) -> str:
    """The character Windows types for Alt + keypad ``digits`` (``"0029"``, ``"29"`` -> GS)."""
    n = int(digits) % 256
    if n < 32 or n == 127:
        return chr(n)
    if digits.startswith("0"):
        try:
            return bytes([n]).decode("cp1252")
        except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D: C1 controls
            return chr(n)
    return bytes([n]).decode("cp437")


def control_char(ch: str) -> str:
    """The control character Ctrl + ``ch`` gives (``]`` -> GS), or ``""``."""
    if len(ch) != 1:
        return ""
    up = ch.upper()
    if "@" <= up <= "_":
        return chr(ord(up) - 0x40)
    return ""


def compose(accent: str, ch: str) -> str:
    """Dead key ``accent`` followed by ``ch``: space gives the accent, else the composed letter."""
    if ch == " ":
        return accent
    combining = COMBINING.get(accent, "")
    if combining and ch.isalpha():
        composed = unicodedata.normalize("NFC", ch + combining)
        if len(composed) == 1:
            return composed
    return accent + ch


class KeyboardDecoder:
    """State machine turning one device's key events into scans."""

    def __init__(
        self,
        layout: Layout,
        *,
        terminators: frozenset[int] = frozenset({KEY_ENTER, KEY_KPENTER}),
        gs_substitute: str = "",
        idle_timeout: float = 0.0,
        max_length: int = 4096,
        capslock: bool = False,
        resync_gap: float = 0.5,
    ) -> None:
        if len(gs_substitute) > 1:
            raise ValueError("gs_substitute must be a single character or empty")
        self.layout = layout
        self.terminators = terminators
        self.gs_substitute = gs_substitute
        self.idle_timeout = idle_timeout
        self.max_length = max_length
        self.capslock = capslock
        self.resync_gap = resync_gap
        self._held: set[int] = set()
        self._buf: list[str] = []
        self._length = 0
        self._alt_digits = ""
        self._dead = ""
        self._error: DecodeError | None = None
        self._detail = ""
        self._last_t: float | None = None
        self._skip_to_report = False
        #: True after a SYN_DROPPED resync point: the reader should call ``resync()``.
        self.resync_wanted = False

    # -- public -----------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """True while a scan (or an overrun discard) is in progress."""
        return bool(self._buf) or self._error is not None or bool(self._alt_digits)

    def feed(self, type: int, code: int, value: int, t: float) -> list[DecodedScan]:
        """Process one raw event; returns the scans it completed (usually none)."""
        out = self._gap_check(t)
        if type == EV_SYN:
            if code == SYN_DROPPED:
                self._overrun(t)
            elif code == SYN_REPORT and self._skip_to_report:
                self._skip_to_report = False
                self.resync_wanted = True
            return out
        if self._skip_to_report:
            return out
        if type == EV_LED and code == LED_CAPSL:
            self.capslock = bool(value)
        elif type == EV_KEY:
            self._last_t = t
            out.extend(self._key(code, value, t))
        return out

    def flush_idle(self, now: float) -> list[DecodedScan]:
        """End a scan in progress if input has been quiet long enough (idle timeout or resync)."""
        return self._gap_check(now)

    def resync(self, held_keys: Iterable[int], capslock: bool | None = None) -> None:
        """Set held modifiers (and CapsLock) from the device's real state after SYN_DROPPED."""
        self._held = set(held_keys)
        if capslock is not None:
            self.capslock = capslock
        self.resync_wanted = False

    # -- internals --------------------------------------------------------------------

    def _gap_check(self, now: float) -> list[DecodedScan]:
        if self._last_t is None or not self.pending:
            return []
        gap = now - self._last_t
        limits = [self.idle_timeout] if self.idle_timeout > 0 else []
        if self._error == "input_overrun" and self.resync_gap > 0:
            limits.append(self.resync_gap)
        if limits and gap >= min(limits):
            return self._finish(self._last_t)
        return []

    def _overrun(self, t: float) -> None:
        self._error = "input_overrun"
        self._detail = "SYN_DROPPED: events lost, scan discarded"
        self._skip_to_report = True
        self._held.clear()
        self._alt_digits = ""
        self._dead = ""
        self._last_t = t

    def _finish(self, t: float) -> list[DecodedScan]:
        if self._dead:
            self._append(self._dead)
            self._dead = ""
        text, error, detail = "".join(self._buf), self._error, self._detail
        self._buf, self._length, self._error, self._detail = [], 0, None, ""
        self._alt_digits = ""
        if error is None and not text:
            return []
        if error == "input_overrun":
            text = ""
        return [DecodedScan(text, error, t, detail)]

    def _fail(self, error: DecodeError, detail: str) -> None:
        if self._error is None:
            self._error, self._detail = error, detail

    def _append(self, s: str) -> None:
        if self._error == "input_overrun":
            return
        for ch in s:
            if self.gs_substitute and ch == self.gs_substitute:
                ch = "\x1d"
            if self._length >= self.max_length:
                self._fail("frame_too_long", f"longer than {self.max_length} characters")
                return
            self._buf.append(ch)
            self._length += 1

    def _alt_held(self) -> bool:
        if KEY_LEFTALT in self._held:
            return True
        return not self.layout.altgr and KEY_RIGHTALT in self._held

    def _key(self, code: int, value: int, t: float) -> list[DecodedScan]:
        if value == 0:
            self._held.discard(code)
            if code in (KEY_LEFTALT, KEY_RIGHTALT) and self._alt_digits and not self._alt_held():
                digits, self._alt_digits = self._alt_digits, ""
                self._emit(alt_code_char(digits))
            return []
        if value != 1:
            return []  # autorepeat
        if code in _SHIFTS or code in _CTRLS or code in (KEY_LEFTALT, KEY_RIGHTALT):
            self._held.add(code)
            return []
        if code == KEY_CAPSLOCK:
            self.capslock = not self.capslock
            return []
        if code in _IGNORED:
            return []
        if code in self.terminators:
            return self._finish(t)
        if self._alt_held():
            digit = KEYPAD_DIGITS.get(code)
            if digit is None:
                self._fail("decode_error", f"key {code} pressed with Alt held")
            else:
                self._alt_digits += digit
            return []
        if code in _NON_TERMINATOR_CHARS:
            self._emit(_NON_TERMINATOR_CHARS[code])
            return []
        self._typed(code)
        return []

    def _level(self, code: int) -> int:
        if self.layout.altgr and KEY_RIGHTALT in self._held:
            return ALTGR
        shifted = bool(self._held & _SHIFTS)
        if self.capslock and self.layout.caps_affects(code):
            shifted = not shifted
        return SHIFT if shifted else PLAIN

    def _typed(self, code: int) -> None:
        level = self._level(code)
        accent = self.layout.dead.get((code, level), "")
        ctrl = bool(self._held & _CTRLS)
        if accent and not ctrl:
            if self._dead:
                dead, self._dead = self._dead, ""
                self._emit(dead + accent)
            else:
                self._dead = accent
            return
        ch = self.layout.char(code, level)
        if ctrl:
            ch = control_char(ch)
        if not ch:
            self._fail(
                "decode_error", f"key {code} gives no character in layout {self.layout.name}"
            )
            return
        self._emit(ch)

    def _emit(self, s: str) -> None:
        if self._dead:
            dead, self._dead = self._dead, ""
            s = compose(dead, s) if len(s) == 1 else dead + s
        self._append(s)
