"""A fixed-mount reader speaking TCP, ``mode = "connect"``: we connect to the reader.

We connect to the reader's port (TCP keepalive on) and reconnect with backoff and
jitter when the connection drops or is refused. ``mode = "listen"`` (readers connect
to us, several at once) is :class:`drivers.scanners.tcp_listener.TcpListener`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import time

from drivers.scanners.backoff import Backoff
from drivers.scanners.config import TcpScanner
from drivers.scanners.reader_base import ConnectionLost, StreamReader
from drivers.scanners.types import ScanSink, StatusSink

log = logging.getLogger(__name__)

SEND_TIMEOUT = 0.25  # send() never blocks longer than this
_SLICE = 0.1
_KEEPALIVE = {"TCP_KEEPIDLE": 10, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}


def enable_keepalive(sock: socket.socket) -> None:
    """Turn on TCP keepalive (about 25 s to notice a dead peer on Linux)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for opt, value in _KEEPALIVE.items():
        if hasattr(socket, opt):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)


class TcpReader(StreamReader):
    """Reads frames from a TCP connection on its own thread; see :class:`StreamReader`."""

    kind_name = "tcp"

    def __init__(
        self,
        name: str,
        cfg: TcpScanner,
        sink: ScanSink,
        on_status: StatusSink | None = None,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        if cfg.mode != "connect":
            raise ValueError(f"{name}: TcpReader needs mode = 'connect' (listen: TcpListener)")
        super().__init__(name, cfg.framing, sink, on_status, backoff=backoff)
        self.cfg = cfg
        self._sock: socket.socket | None = None

    def _describe(self) -> str:
        return f"{self.cfg.host}:{self.cfg.port}"

    def _interrupt(self) -> None:
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _connect(self) -> bool:
        infos = socket.getaddrinfo(self.cfg.host, self.cfg.port, type=socket.SOCK_STREAM)
        family, stype, proto, _, addr = infos[0]
        sock = socket.socket(family, stype, proto)
        try:
            sock.setblocking(False)
            err = sock.connect_ex(addr)
            if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                raise OSError(err, os.strerror(err))
            deadline = time.monotonic() + self.cfg.connect_timeout
            while True:
                if self._stop.is_set():
                    sock.close()
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"connect timed out after {self.cfg.connect_timeout}s")
                _, writable, _ = select.select([], [sock], [], min(_SLICE, left))
                if writable:
                    break
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            enable_keepalive(sock)
            sock.settimeout(SEND_TIMEOUT)
        except BaseException:
            sock.close()
            raise
        with self._io_lock:
            self._sock = sock
        return True

    # -- StreamReader hooks -----------------------------------------------------------
    def _open(self) -> bool:
        return self._connect()

    def _read(self, timeout: float) -> bytes:
        sock = self._sock
        if sock is None:
            raise ConnectionLost("connection closed")
        readable, _, _ = select.select([sock], [], [], timeout)
        if not readable:
            return b""
        data = sock.recv(65536)
        if not data:
            raise ConnectionLost(f"closed by peer ({self._describe()})")
        return data

    def _write(self, data: bytes) -> None:
        if self._sock is None:
            raise ConnectionLost("connection closed")
        self._sock.sendall(data)

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
