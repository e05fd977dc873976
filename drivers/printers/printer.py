"""A printer = a transport + status queries + stored-format bookkeeping (composition)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping

from drivers.printers.config import PrinterConfig
from drivers.printers.status import (
    FrameReader,
    PrinterStatus,
    StatusParseError,
    parse_hqes,
    parse_hs,
    status_from_hqes,
    status_from_hs,
)
from drivers.printers.templates import Template, download_format, fill, recall_format
from drivers.printers.transport import Transport, TransportError

COUNTER_QUERY = b'! U1 getvar "odometer.total_label_count"\r\n'
_QUOTED = re.compile(rb'"(\d+)"')


class Printer:
    """Talks ZPL to one printer over any transport. Not thread-safe across workers: one owner."""

    def __init__(
        self,
        transport: Transport,
        *,
        dpi: int = 203,
        size: str = "4x6",
        timeout: float = 2.0,
        stored_formats: bool = True,
    ) -> None:
        self.transport = transport
        self.dpi, self.size, self.timeout = dpi, size, timeout
        self.stored_formats = stored_formats and transport.bidirectional
        self._downloaded: dict[str, str] = {}  # stored name -> template digest
        self._lock = threading.Lock()

    # -------------------------------------------------------------- connection
    def connect(self) -> None:
        """(Re)open the transport. Stored formats are assumed lost (power cycle) and re-sent."""
        with self._lock:
            self.transport.close()
            self._downloaded.clear()
            self.transport.open()

    def close(self) -> None:
        """Close the transport."""
        self.transport.close()

    @property
    def connected(self) -> bool:
        """True while the transport is open."""
        return self.transport.is_open

    def _drain(self) -> None:
        while self.transport.read(0.0):
            pass

    # -------------------------------------------------------------- queries
    def _frames(self, query: bytes, want: int, timeout: float) -> list[str]:
        self._drain()
        self.transport.write(query)
        reader = FrameReader()
        frames: list[str] = []
        deadline = time.monotonic() + timeout
        while len(frames) < want:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            frames.extend(reader.feed(self.transport.read(min(left, 0.2))))
        return frames

    def status(self) -> PrinterStatus:
        """Ask ``~HS``; if the printer stays silent, ask ``~HQES``. Raises TransportError."""
        if not self.transport.bidirectional:
            return PrinterStatus("ready", source="none", detail="one-way transport")
        with self._lock:
            frames = self._frames(b"~HS", 3, self.timeout)
            if len(frames) >= 3:
                try:
                    return status_from_hs(parse_hs(frames[:3]))
                except StatusParseError as exc:
                    bad = str(exc)
                else:
                    bad = ""
            else:
                bad = "~HS silent"
            frames = self._frames(b"~HQES", 1, self.timeout)
            for fr in frames:
                try:
                    return status_from_hqes(parse_hqes(fr))
                except StatusParseError:
                    continue
            return PrinterStatus("unknown", detail=f"{bad}; no ~HQES answer")

    def label_count(self) -> int | None:
        """The printer's total label counter (SGD odometer), or None if it does not answer."""
        if not self.transport.bidirectional:
            return None
        with self._lock:
            self._drain()
            self.transport.write(COUNTER_QUERY)
            buf = b""
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                buf += self.transport.read(min(0.2, max(0.0, deadline - time.monotonic())))
                m = _QUOTED.search(buf)
                if m:
                    return int(m.group(1))
            return None

    # -------------------------------------------------------------- printing
    def send(self, zpl: str) -> None:
        """Send raw ZPL (UTF-8)."""
        with self._lock:
            self.transport.write(zpl.encode("utf-8"))

    def print_label(self, template: Template, values: Mapping[str, str]) -> str:
        """Print one label; with stored formats, download the template once then send data only.

        Returns the ZPL sent for the label itself. Raises EncodeError before sending anything
        when the data cannot be encoded.
        """
        if self.stored_formats:
            label = recall_format(template, values)
            with self._lock:
                if self._downloaded.get(template.stored_name) != template.digest:
                    self.transport.write(download_format(template).encode("utf-8"))
                    self._downloaded[template.stored_name] = template.digest
                self.transport.write(label.encode("utf-8"))
            return label
        label = fill(template, values)
        self.send(label)
        return label

    def wait_idle(self, timeout: float, poll: float = 0.1) -> PrinterStatus:
        """Poll status until the printer is idle (nothing in buffer) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        st = self.status()
        while not st.idle and time.monotonic() < deadline:
            time.sleep(poll)
            st = self.status()
        return st


def transport_for(cfg: PrinterConfig) -> Transport:
    """Build the transport a printer config names."""
    if cfg.transport == "tcp":
        from drivers.printers.transport_tcp import TcpTransport

        return TcpTransport(cfg.host, cfg.port, timeout=cfg.timeout)
    if cfg.transport == "serial":
        from drivers.printers.transport_serial import SerialTransport

        return SerialTransport(cfg.device, cfg.baudrate, timeout=cfg.timeout)
    if cfg.transport == "usb":
        from drivers.printers.transport_usb import usb_transport

        return usb_transport(cfg.device, timeout=cfg.timeout)
    from drivers.printers.transport_file import FileTransport

    return FileTransport(cfg.path)


def printer_for(cfg: PrinterConfig) -> Printer:
    """A Printer for a config entry (not yet connected)."""
    return Printer(
        transport_for(cfg),
        dpi=cfg.dpi,
        size=cfg.size,
        timeout=min(cfg.timeout, 2.0),
        stored_formats=cfg.stored_formats,
    )


__all__ = ["COUNTER_QUERY", "Printer", "TransportError", "printer_for", "transport_for"]
