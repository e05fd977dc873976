"""A scanner on a serial port (RS-232, USB CDC-ACM) read with pyserial.

The port is opened by name (prefer ``/dev/serial/by-id/...`` links); when it vanishes
(USB unplugged, pty closed) the reader reports ``disconnected`` once, retries with
backoff and jitter, and reopens the port when the name comes back.
"""

from __future__ import annotations

import logging
import select

import serial

from drivers.scanners.backoff import Backoff
from drivers.scanners.config import SerialScanner
from drivers.scanners.escapes import unescape
from drivers.scanners.reader_base import ConnectionLost, StreamReader
from drivers.scanners.types import ScanSink, StatusSink

log = logging.getLogger(__name__)

WRITE_TIMEOUT = 0.25  # send() never blocks longer than this


class SerialReader(StreamReader):
    """Reads frames from a serial port on its own thread; see :class:`StreamReader`."""

    kind_name = "serial"

    def __init__(
        self,
        name: str,
        cfg: SerialScanner,
        sink: ScanSink,
        on_status: StatusSink | None = None,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name, cfg.framing, sink, on_status, backoff=backoff)
        self.cfg = cfg
        self._port: serial.Serial | None = None
        self._good = unescape(cfg.good_read_bytes).encode("latin-1")
        self._bad = unescape(cfg.bad_read_bytes).encode("latin-1")

    def beep(self, ok: bool) -> bool:
        """Send the configured good-read / bad-read bytes (False if none or not sent)."""
        data = self._good if ok else self._bad
        return bool(data) and self.send(data)

    def _describe(self) -> str:
        return self.cfg.port

    def _open(self) -> bool:
        try:
            port = serial.Serial(
                port=self.cfg.port,
                baudrate=self.cfg.baudrate,
                bytesize=self.cfg.bytesize,
                parity=self.cfg.parity,
                stopbits=self.cfg.stopbits,
                rtscts=self.cfg.rtscts,
                timeout=0,  # we wait in select() ourselves, with the framer's deadline
                write_timeout=WRITE_TIMEOUT,
            )
        except (serial.SerialException, ValueError) as e:
            cause = e.__context__  # pyserial wraps the OSError in a wordier message
            if isinstance(cause, OSError) and cause.strerror:
                raise OSError(cause.errno, cause.strerror) from e
            raise OSError(str(e)) from e
        with self._io_lock:
            self._port = port
        return True

    def _read(self, timeout: float) -> bytes:
        port = self._port
        if port is None:
            raise ConnectionLost("port closed")
        ready, _, _ = select.select([port.fileno()], [], [], timeout)
        if not ready:
            return b""
        # Readable with nothing to read means the device is gone: pyserial raises
        # SerialException (an OSError), as does EIO from a hung-up pty.
        data: bytes = port.read(max(1, port.in_waiting))
        return data

    def _write(self, data: bytes) -> None:
        if self._port is None:
            raise ConnectionLost("port closed")
        self._port.write(data)

    def _close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            port.close()
