"""Zebra status replies: ``~HS`` (three STX…ETX frames) and ``~HQES``. Pure parsers."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

STX, ETX = 0x02, 0x03
MAX_FRAME = 512

PrinterState = Literal["ready", "busy", "held", "unknown", "offline"]

# ~HQES error bits (second hex group, low word).
ERR_MEDIA_OUT = 0x1
ERR_RIBBON_OUT = 0x2
ERR_HEAD_OPEN = 0x4
ERR_CUTTER = 0x8
ERR_HEAD_OVER_TEMP = 0x10
ERR_MOTOR_OVER_TEMP = 0x20
ERR_PAUSED = 0x10000
_ERR_NAMES = (
    (ERR_MEDIA_OUT, "paper out"),
    (ERR_RIBBON_OUT, "ribbon out"),
    (ERR_HEAD_OPEN, "head open"),
    (ERR_CUTTER, "cutter fault"),
    (ERR_HEAD_OVER_TEMP, "head over temperature"),
    (ERR_MOTOR_OVER_TEMP, "motor over temperature"),
    (ERR_PAUSED, "paused"),
)


class StatusParseError(ValueError):
    """A reply that is not a valid ``~HS``/``~HQES`` answer."""


class FrameReader:
    """Collects STX…ETX frames from a byte stream that may arrive in arbitrary pieces.

    Bytes outside a frame (CR LF, noise) are dropped; an over-long frame is discarded.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._in_frame = False

    def feed(self, data: bytes) -> list[str]:
        """Add bytes; return the contents of frames completed by them."""
        out: list[str] = []
        for b in data:
            if b == STX:
                self._buf.clear()
                self._in_frame = True
            elif not self._in_frame:
                continue
            elif b == ETX:
                out.append(self._buf.decode("latin-1"))
                self._buf.clear()
                self._in_frame = False
            else:
                self._buf.append(b)
                if len(self._buf) > MAX_FRAME:
                    self._buf.clear()
                    self._in_frame = False
        return out


@dataclass(frozen=True, slots=True)
class HostStatus:
    """The fields of a ``~HS`` answer that matter to printing."""

    paper_out: bool
    paused: bool
    label_length: int
    formats_in_buffer: int
    buffer_full: bool
    partial_format: bool
    corrupt_ram: bool
    under_temp: bool
    over_temp: bool
    head_up: bool
    ribbon_out: bool
    thermal_transfer: bool
    label_waiting: bool
    labels_remaining: int

    def problems(self) -> list[str]:
        """Conditions that stop printing, in words."""
        checks = (
            (self.paper_out, "paper out"),
            (self.ribbon_out, "ribbon out"),
            (self.head_up, "head open"),
            (self.paused, "paused"),
            (self.over_temp, "head over temperature"),
            (self.under_temp, "head under temperature"),
            (self.corrupt_ram, "corrupt RAM"),
            (self.buffer_full, "receive buffer full"),
        )
        return [name for flag, name in checks if flag]


def _flag(v: str, where: str) -> bool:
    if v not in ("0", "1"):
        raise StatusParseError(f"{where}: expected 0 or 1, got {v!r}")
    return v == "1"


def _int(v: str, where: str) -> int:
    if not v.isdigit():
        raise StatusParseError(f"{where}: expected a number, got {v!r}")
    return int(v)


def parse_hs(frames: Sequence[str]) -> HostStatus:
    """Parse the three ``~HS`` frames (contents without STX/ETX)."""
    if len(frames) != 3:
        raise StatusParseError(f"~HS: expected 3 frames, got {len(frames)}")
    s1 = [x.strip() for x in frames[0].split(",")]
    s2 = [x.strip() for x in frames[1].split(",")]
    s3 = [x.strip() for x in frames[2].split(",")]
    if len(s1) != 12 or len(s2) != 11 or len(s3) != 2:
        raise StatusParseError(
            f"~HS: frames have {len(s1)}/{len(s2)}/{len(s3)} fields, expected 12/11/2"
        )
    return HostStatus(
        paper_out=_flag(s1[1], "~HS 1.b paper out"),
        paused=_flag(s1[2], "~HS 1.c paused"),
        label_length=_int(s1[3], "~HS 1.d label length"),
        formats_in_buffer=_int(s1[4], "~HS 1.e formats in buffer"),
        buffer_full=_flag(s1[5], "~HS 1.f buffer full"),
        partial_format=_flag(s1[7], "~HS 1.h partial format"),
        corrupt_ram=_flag(s1[9], "~HS 1.j corrupt RAM"),
        under_temp=_flag(s1[10], "~HS 1.k under temperature"),
        over_temp=_flag(s1[11], "~HS 1.l over temperature"),
        head_up=_flag(s2[2], "~HS 2.o head up"),
        ribbon_out=_flag(s2[3], "~HS 2.p ribbon out"),
        thermal_transfer=_flag(s2[4], "~HS 2.q thermal transfer"),
        label_waiting=_flag(s2[7], "~HS 2.t label waiting"),
        labels_remaining=_int(s2[8], "~HS 2.u labels remaining"),
    )


@dataclass(frozen=True, slots=True)
class HqesStatus:
    """``~HQES``: error and warning bit groups (second group holds the common bits)."""

    errors: int
    warnings: int

    def problems(self) -> list[str]:
        """Error conditions, in words (unknown bits shown in hex)."""
        names = [n for bit, n in _ERR_NAMES if self.errors & bit]
        rest = self.errors & ~sum(b for b, _ in _ERR_NAMES)
        if rest:
            names.append(f"error bits 0x{rest:x}")
        return names


_HQES = re.compile(
    r"ERRORS:\s*([01])\s+([0-9A-Fa-f]{8})\s+([0-9A-Fa-f]{8}).*?"
    r"WARNINGS:\s*([01])\s+([0-9A-Fa-f]{8})\s+([0-9A-Fa-f]{8})",
    re.S,
)


def parse_hqes(text: str) -> HqesStatus:
    """Parse a ``~HQES`` answer (with or without the STX/ETX framing)."""
    m = _HQES.search(text)
    if not m:
        raise StatusParseError("~HQES: no ERRORS/WARNINGS lines")
    errors = int(m.group(3), 16) | (int(m.group(2), 16) << 32)
    warnings = int(m.group(6), 16) | (int(m.group(5), 16) << 32)
    if m.group(1) == "0" and errors:
        raise StatusParseError("~HQES: error flag 0 but error bits set")
    return HqesStatus(errors=errors, warnings=warnings)


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """What the print worker needs to know: can it send, and is the printer idle."""

    state: PrinterState
    problems: tuple[str, ...] = ()
    formats_in_buffer: int = 0
    labels_remaining: int = 0
    source: Literal["hs", "hqes", "none"] = "none"
    detail: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """True when a label may be sent now."""
        return self.state in ("ready", "busy")

    @property
    def idle(self) -> bool:
        """True when ready and nothing is left to print."""
        return self.state == "ready"

    def describe(self) -> str:
        """One line for logs and the CLI."""
        if self.problems:
            return f"{self.state}: {', '.join(self.problems)}"
        if self.state == "busy":
            return (
                f"busy: {self.formats_in_buffer} format(s), {self.labels_remaining} label(s) left"
            )
        return self.state + (f": {self.detail}" if self.detail else "")


def status_from_hs(hs: HostStatus) -> PrinterStatus:
    """Printer status from a ``~HS`` answer."""
    problems = tuple(hs.problems())
    pending = hs.formats_in_buffer > 0 or hs.labels_remaining > 0
    state: PrinterState = "held" if problems else ("busy" if pending else "ready")
    return PrinterStatus(state, problems, hs.formats_in_buffer, hs.labels_remaining, "hs")


def status_from_hqes(q: HqesStatus) -> PrinterStatus:
    """Printer status from ``~HQES`` (asked when ``~HS`` stays silent)."""
    problems = tuple(q.problems())
    if problems:
        return PrinterStatus("held", problems, source="hqes")
    # ~HS was silent but no error is reported: we cannot tell; do not send.
    return PrinterStatus("unknown", source="hqes", detail="~HS silent, ~HQES reports no error")
