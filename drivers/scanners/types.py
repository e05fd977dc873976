"""Value types shared by every scanner reader and the pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gs1.value import value_type

#: Input errors a reader can report instead of a barcode. They become rejected scans.
InputError = Literal["input_overrun", "frame_too_long", "no_read", "decode_error"]


@value_type
class RawScan:
    """One complete code as a reader delivered it, before interpretation.

    ``text`` holds the decoded characters including an AIM symbology prefix
    (``]C1`` ...) when the scanner sends one; GS is the real ``\\x1d`` character.
    Codes that arrived together in one frame (a tunnel's multi-code message)
    share ``frame_id``; ``frame_size`` says how many codes that frame held.
    """

    text: str
    scanner: str
    received_at: float  # wall clock, time.time(), when the frame completed
    monotonic: float  # time.monotonic() when the frame completed
    frame_id: int | None = None
    frame_size: int = 1
    error: InputError | None = None
    detail: str = ""  # human-readable detail for an error


DeviceState = Literal["connected", "disconnected", "error", "heartbeat_lost", "alive"]


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A change in a device's state, reported by readers (and printers).

    ``expected`` marks a change that is part of normal operation, not a fault (a
    listener waiting for its first reader, the end of a replay file, a requested
    stop): it is logged at INFO, not as a warning.
    """

    device: str
    kind: str  # "scanner" | "printer"
    state: DeviceState
    detail: str = ""
    at: float = 0.0
    expected: bool = False


ScanSink = Callable[[RawScan], None]
StatusSink = Callable[[DeviceStatus], None]
