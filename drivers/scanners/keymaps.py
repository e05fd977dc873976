"""Keyboard layouts for keyboard-wedge scanners: Linux key code -> characters per level.

Key codes are the integers of ``linux/input-event-codes.h`` (``KEY_A`` = 30 ...), so the
decoder needs no evdev import. A layout maps a key to three levels: plain, Shift, AltGr.
Dead keys (de ``^ ´ ```, fr ``^ ¨``) are listed separately with the accent they stand for;
a scanner sends them followed by a space. Layouts cover what a scanner types (the GS1
character set 82 and the rest of printable ASCII where the layout has it), not every
symbol of the real layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# Event types and codes (linux/input-event-codes.h).
EV_SYN = 0
EV_KEY = 1
EV_MSC = 4
EV_LED = 17
SYN_REPORT = 0
SYN_DROPPED = 3
LED_CAPSL = 1

KEY_ESC = 1
KEY_BACKSPACE = 14
KEY_TAB = 15
KEY_ENTER = 28
KEY_LEFTCTRL = 29
KEY_LEFTSHIFT = 42
KEY_RIGHTSHIFT = 54
KEY_LEFTALT = 56
KEY_SPACE = 57
KEY_CAPSLOCK = 58
KEY_NUMLOCK = 69
KEY_SCROLLLOCK = 70
KEY_KPENTER = 96
KEY_RIGHTCTRL = 97
KEY_RIGHTALT = 100
KEY_LEFTMETA = 125
KEY_RIGHTMETA = 126

#: Keypad digit keys -> digit (used for Alt codes; NumLock is assumed on).
KEYPAD_DIGITS: Mapping[int, str] = MappingProxyType(
    {82: "0", 79: "1", 80: "2", 81: "3", 75: "4", 76: "5", 77: "6", 71: "7", 72: "8", 73: "9"}
)
_KEYPAD_OTHER = {55: "*", 74: "-", 78: "+", 83: ".", 98: "/"}

#: Level index in ``Layout.keys`` tuples.
PLAIN, SHIFT, ALTGR = 0, 1, 2

#: Accent -> combining character, for dead key composition.
COMBINING: Mapping[str, str] = MappingProxyType(
    {"^": "\u0302", "`": "\u0300", "´": "\u0301", "¨": "\u0308", "~": "\u0303"}
)

# Key codes of the main block, row by row, in US position order.
_ROW_NUM = (41, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
_ROW_TOP = (16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27)
_ROW_HOME = (30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 43)
_ROW_BOTTOM = (86, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53)


@dataclass(frozen=True, slots=True)
class Layout:
    """A keyboard layout: ``keys[code] = (plain, shift, altgr)``; ``""`` means nothing."""

    name: str
    keys: Mapping[int, tuple[str, str, str]]
    #: (code, level) -> accent character for dead keys.
    dead: Mapping[tuple[int, int], str] = field(default_factory=dict)
    #: Right Alt acts as AltGr (third level); on US it is a second Alt.
    altgr: bool = True

    def char(self, code: int, level: int) -> str:
        """The character a key gives at a level (``""`` if none or dead)."""
        entry = self.keys.get(code)
        return entry[level] if entry else ""

    def caps_affects(self, code: int) -> bool:
        """CapsLock swaps plain/shift on keys whose shift level is the plain level's capital."""
        entry = self.keys.get(code)
        if entry is None:
            return False
        plain, shift = entry[PLAIN], entry[SHIFT]
        return plain.isalpha() and plain != shift and plain.upper() == shift


def _rows(rows: dict[tuple[int, ...], tuple[str, str]]) -> dict[int, list[str]]:
    """Build ``code -> [plain, shift, altgr]`` from row strings (``" "`` = no character)."""
    out: dict[int, list[str]] = {}
    for codes, (plain, shift) in rows.items():
        if len(plain) != len(codes) or len(shift) != len(codes):
            raise ValueError(f"row length mismatch: {plain!r}")
        for code, p, s in zip(codes, plain, shift, strict=True):
            out[code] = [p.strip(), s.strip(), ""]
    out[KEY_SPACE] = [" ", " ", ""]
    for code, ch in {**KEYPAD_DIGITS, **_KEYPAD_OTHER}.items():
        out[code] = [ch, ch, ch]  # keypad keys ignore Shift and AltGr
    return out


def _freeze(keys: dict[int, list[str]]) -> Mapping[int, tuple[str, str, str]]:
    return MappingProxyType({k: (v[0], v[1], v[2]) for k, v in keys.items()})


def _us() -> Layout:
    keys = _rows(
        {
            _ROW_NUM: ("`1234567890-=", "~!@#$%^&*()_+"),
            _ROW_TOP: ("qwertyuiop[]", "QWERTYUIOP{}"),
            _ROW_HOME: ("asdfghjkl;'\\", 'ASDFGHJKL:"|'),
            _ROW_BOTTOM: ("\\zxcvbnm,./", "|ZXCVBNM<>?"),
        }
    )
    return Layout("us", _freeze(keys), altgr=False)


def _uk() -> Layout:
    keys = _rows(
        {
            _ROW_NUM: ("`1234567890-=", '¬!"£$%^&*()_+'),
            _ROW_TOP: ("qwertyuiop[]", "QWERTYUIOP{}"),
            _ROW_HOME: ("asdfghjkl;'#", "ASDFGHJKL:@~"),
            _ROW_BOTTOM: ("\\zxcvbnm,./", "|ZXCVBNM<>?"),
        }
    )
    keys[41][ALTGR] = "¦"
    keys[5][ALTGR] = "€"
    return Layout("uk", _freeze(keys))


def _de() -> Layout:
    keys = _rows(
        {
            _ROW_NUM: (" 1234567890ß ", '°!"§$%&/()=? '),
            _ROW_TOP: ("qwertzuiopü+", "QWERTZUIOPÜ*"),
            _ROW_HOME: ("asdfghjklöä#", "ASDFGHJKLÖÄ'"),
            _ROW_BOTTOM: ("<yxcvbnm,.-", ">YXCVBNM;:_"),
        }
    )
    for code, ch in {
        3: "²",
        4: "³",
        8: "{",
        9: "[",
        10: "]",
        11: "}",
        12: "\\",
        16: "@",
        18: "€",
        27: "~",
        50: "µ",
        86: "|",
    }.items():
        keys[code][ALTGR] = ch
    keys[83] = [",", ",", ","]  # keypad decimal separator is a comma on de
    dead = {(41, PLAIN): "^", (13, PLAIN): "´", (13, SHIFT): "`"}
    return Layout("de", _freeze(keys), MappingProxyType(dead))


def _fr() -> Layout:
    keys = _rows(
        {
            _ROW_NUM: ("²&é\"'(-è_çà)=", " 1234567890°+"),
            _ROW_TOP: ("azertyuiop $", "AZERTYUIOP £"),
            _ROW_HOME: ("qsdfghjklmù*", "QSDFGHJKLM%µ"),
            _ROW_BOTTOM: ("<wxcvbn,;:!", ">WXCVBN?./§"),
        }
    )
    for code, ch in {
        3: "~",
        4: "#",
        5: "{",
        6: "[",
        7: "|",
        8: "`",
        9: "\\",
        10: "^",
        11: "@",
        12: "]",
        13: "}",
        18: "€",
        27: "¤",
    }.items():
        keys[code][ALTGR] = ch
    dead = {(26, PLAIN): "^", (26, SHIFT): "¨"}
    return Layout("fr", _freeze(keys), MappingProxyType(dead))


LAYOUTS: Mapping[str, Layout] = MappingProxyType(
    {lay.name: lay for lay in (_us(), _uk(), _de(), _fr())}
)


def get_layout(name: str) -> Layout:
    """The layout called ``name`` (``us``, ``uk``, ``de``, ``fr``); KeyError names the options."""
    try:
        return LAYOUTS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown layout {name!r} (known: {', '.join(sorted(LAYOUTS))})") from None
