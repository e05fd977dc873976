"""Serial transport (pyserial). Accepts a port name or a pyserial URL (``loop://`` in tests)."""

from __future__ import annotations

import time
from typing import Any

from drivers.printers.transport import TransportError


class SerialTransport:
    """A serial line to the printer (usually 9600 8N1 with hardware handshake off)."""

    bidirectional = True

    def __init__(self, port: str, baudrate: int = 9600, *, timeout: float = 5.0) -> None:
        self.port, self.baudrate, self.timeout = port, baudrate, timeout
        self.name = f"serial:{port}"
        self._ser: Any = None

    @property
    def is_open(self) -> bool:
        """True while the port is open."""
        return self._ser is not None

    def open(self) -> None:
        """Open the port."""
        import serial

        self.close()
        try:
            self._ser = serial.serial_for_url(
                self.port, baudrate=self.baudrate, timeout=0, write_timeout=self.timeout
            )
        except (serial.SerialException, ValueError) as exc:
            raise TransportError(f"{self.name}: cannot open: {exc}") from exc

    def close(self) -> None:
        """Close the port."""
        if self._ser is not None:
            try:
                self._ser.close()
            finally:
                self._ser = None

    def write(self, data: bytes) -> None:
        """Write all bytes."""
        import serial

        if self._ser is None:
            raise TransportError(f"{self.name}: not open")
        try:
            self._ser.write(data)
            self._ser.flush()
        except serial.SerialException as exc:
            self.close()
            raise TransportError(f"{self.name}: write failed: {exc}") from exc

    def read(self, timeout: float) -> bytes:
        """Bytes that arrive within ``timeout`` (polling, 10 ms steps)."""
        import serial

        if self._ser is None:
            raise TransportError(f"{self.name}: not open")
        deadline = time.monotonic() + timeout
        try:
            while True:
                n = self._ser.in_waiting
                if n:
                    return bytes(self._ser.read(n))
                if time.monotonic() >= deadline:
                    return b""
                time.sleep(0.01)
        except serial.SerialException as exc:
            self.close()
            raise TransportError(f"{self.name}: read failed: {exc}") from exc
