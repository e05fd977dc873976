"""The transport interface: a byte pipe to a printer. One module per transport implements it."""

from __future__ import annotations

from typing import Protocol


class TransportError(OSError):
    """The printer cannot be reached, refused us, or the link broke."""


class Transport(Protocol):
    """A byte pipe to one printer. ``read`` returns b"" when nothing arrived in time."""

    name: str
    bidirectional: bool

    def open(self) -> None:
        """Connect; raises TransportError."""

    def close(self) -> None:
        """Disconnect (idempotent)."""

    @property
    def is_open(self) -> bool:
        """True while connected."""

    def write(self, data: bytes) -> None:
        """Send all bytes; raises TransportError."""

    def read(self, timeout: float) -> bytes:
        """Bytes available within ``timeout`` seconds (b"" if none); raises TransportError."""


def backoff_delays(base: float = 0.5, cap: float = 30.0, factor: float = 2.0) -> list[float]:
    """Reconnect delays: base, base*factor, … capped (the last one repeats)."""
    out = [base]
    while out[-1] < cap:
        out.append(min(cap, out[-1] * factor))
    return out
