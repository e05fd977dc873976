"""Text -> key events for a layout, the way a keyboard-wedge scanner types. For tests and demos.

The inverse of ``keyboard_decoder``: ``decode(encode(s)) == s`` for every string over
``supported_chars(layout)`` (property-tested).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from drivers.scanners.keymaps import (
    ALTGR,
    EV_KEY,
    EV_SYN,
    KEY_CAPSLOCK,
    KEY_ENTER,
    KEY_LEFTALT,
    KEY_LEFTCTRL,
    KEY_LEFTSHIFT,
    KEY_RIGHTALT,
    KEY_SPACE,
    KEYPAD_DIGITS,
    SHIFT,
    SYN_REPORT,
    Layout,
)

GsMethod = Literal["ctrl", "alt", "substitute"]
_KEYPAD_BY_DIGIT = {d: code for code, d in KEYPAD_DIGITS.items()}
_KEYPAD_CODES = frozenset({55, 74, 78, 83, 98, *KEYPAD_DIGITS})


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """One raw input event as evdev reports it."""

    t: float
    type: int
    code: int
    value: int


def _positions(layout: Layout) -> dict[str, tuple[int, int]]:
    """Best (code, level) for every character the layout types directly."""
    best: dict[str, tuple[tuple[int, int, int], tuple[int, int]]] = {}
    for code, levels in layout.keys.items():
        for level, ch in enumerate(levels):
            if not ch or (code, level) in layout.dead:
                continue
            rank = (code in _KEYPAD_CODES, level, code)
            if ch not in best or rank < best[ch][0]:
                best[ch] = (rank, (code, level))
    return {ch: pos for ch, (_, pos) in best.items()}


def _dead_positions(layout: Layout) -> dict[str, tuple[int, int]]:
    return {accent: pos for pos, accent in sorted(layout.dead.items())}


def supported_chars(layout: Layout) -> frozenset[str]:
    """Characters ``encode`` can type on ``layout`` (GS is always supported)."""
    return frozenset(_positions(layout)) | frozenset(_dead_positions(layout)) | {"\x1d"}


class _Typist:
    def __init__(self, layout: Layout, capslock: bool, t0: float, dt: float) -> None:
        self.layout, self.capslock, self.t, self.dt = layout, capslock, t0, dt
        self.events: list[KeyEvent] = []

    def raw(self, code: int, value: int) -> None:
        self.events.append(KeyEvent(self.t, EV_KEY, code, value))
        self.events.append(KeyEvent(self.t, EV_SYN, SYN_REPORT, 0))
        self.t += self.dt

    def tap(self, code: int, mods: tuple[int, ...] = ()) -> None:
        for m in mods:
            self.raw(m, 1)
        self.raw(code, 1)
        self.raw(code, 0)
        for m in reversed(mods):
            self.raw(m, 0)

    def at(self, code: int, level: int, extra: tuple[int, ...] = ()) -> None:
        if level == ALTGR:
            self.tap(code, (*extra, KEY_RIGHTALT))
            return
        shifted = level == SHIFT
        if self.capslock and self.layout.caps_affects(code):
            shifted = not shifted
        self.tap(code, (*extra, KEY_LEFTSHIFT) if shifted else extra)


def encode(
    text: str,
    layout: Layout,
    *,
    gs: GsMethod = "ctrl",
    gs_substitute: str = "",
    alt_digits: str = "0029",
    terminator: int | None = KEY_ENTER,
    capslock: bool = False,
    toggle_capslock: bool = False,
    t0: float = 0.0,
    dt: float = 0.002,
) -> list[KeyEvent]:
    """Key events typing ``text`` (then ``terminator``) on ``layout``.

    ``capslock``: the host's CapsLock is on and the scanner compensates for it.
    ``toggle_capslock``: press CapsLock first (the decoder then sees CapsLock on).
    Raises ValueError for a character the layout cannot type.
    """
    pos, dead = _positions(layout), _dead_positions(layout)
    ty = _Typist(layout, capslock or toggle_capslock, t0, dt)
    if toggle_capslock:
        ty.tap(KEY_CAPSLOCK)
    for ch in text:
        if ch != "\x1d":
            _char(ty, ch, pos, dead)
        elif gs == "substitute":
            if not gs_substitute:
                raise ValueError("gs='substitute' needs gs_substitute")
            _char(ty, gs_substitute, pos, dead)
        else:
            _gs(ty, pos, gs, alt_digits)
    if terminator is not None:
        ty.tap(terminator)
    return ty.events


def _char(
    ty: _Typist, ch: str, pos: dict[str, tuple[int, int]], dead: dict[str, tuple[int, int]]
) -> None:
    if ch in pos:
        ty.at(*pos[ch])
    elif ch in dead:
        ty.at(*dead[ch])
        ty.tap(KEY_SPACE)
    else:
        raise ValueError(f"layout {ty.layout.name} cannot type {ch!r}")


def _gs(ty: _Typist, pos: dict[str, tuple[int, int]], gs: GsMethod, digits: str) -> None:
    if gs == "ctrl":
        if "]" not in pos:
            raise ValueError(f"layout {ty.layout.name} has no ']' for Ctrl+]")
        code, level = pos["]"]
        ty.at(code, level, (KEY_LEFTCTRL,))
    else:
        ty.raw(KEY_LEFTALT, 1)
        for d in digits:
            ty.tap(_KEYPAD_BY_DIGIT[d])
        ty.raw(KEY_LEFTALT, 0)


def as_tuples(events: list[KeyEvent]) -> Iterator[tuple[int, int, int, float]]:
    """``(type, code, value, t)`` tuples, the argument order of ``KeyboardDecoder.feed``."""
    for e in events:
        yield e.type, e.code, e.value, e.t
