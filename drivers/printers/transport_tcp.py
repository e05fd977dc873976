"""Raw TCP (port 9100) transport: one connection, timeouts, busy detection."""

from __future__ import annotations

import select
import socket

from drivers.printers.transport import TransportError


class TcpTransport:
    """One TCP connection to a printer's raw port. A printer busy with another client is refused."""

    bidirectional = True

    def __init__(
        self, host: str, port: int = 9100, *, timeout: float = 5.0, probe: float = 0.05
    ) -> None:
        self.host, self.port, self.timeout, self.probe = host, port, timeout, probe
        self.name = f"tcp://{host}:{port}"
        self._sock: socket.socket | None = None

    @property
    def is_open(self) -> bool:
        """True while connected."""
        return self._sock is not None

    def open(self) -> None:
        """Connect; a connection the printer closes at once means another client holds it."""
        self.close()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise TransportError(f"{self.name}: cannot connect: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            r, _, _ = select.select([sock], [], [], self.probe)
            if r and sock.recv(1, socket.MSG_PEEK) == b"":
                raise TransportError(f"{self.name}: printer closed the connection (busy?)")
        except OSError as exc:
            sock.close()
            if isinstance(exc, TransportError):
                raise
            raise TransportError(
                f"{self.name}: refused ({exc}); busy with another client?"
            ) from exc
        self._sock = sock

    def close(self) -> None:
        """Close the connection."""
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _need(self) -> socket.socket:
        if self._sock is None:
            raise TransportError(f"{self.name}: not connected")
        return self._sock

    def write(self, data: bytes) -> None:
        """Send all bytes within the timeout."""
        sock = self._need()
        try:
            sock.settimeout(self.timeout)
            sock.sendall(data)
        except OSError as exc:
            self.close()
            raise TransportError(f"{self.name}: write failed: {exc}") from exc

    def read(self, timeout: float) -> bytes:
        """Bytes that arrive within ``timeout``; EOF or reset raises TransportError."""
        sock = self._need()
        try:
            r, _, _ = select.select([sock], [], [], max(0.0, timeout))
            if not r:
                return b""
            data = sock.recv(4096)
        except OSError as exc:
            self.close()
            raise TransportError(f"{self.name}: read failed: {exc}") from exc
        if not data:
            self.close()
            raise TransportError(f"{self.name}: connection closed by the printer")
        return data
