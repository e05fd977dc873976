"""A fixed-mount reader speaking TCP.

``mode = "connect"``: we connect to the reader's port (TCP keepalive on) and reconnect
with backoff and jitter when the connection drops or is refused.

``mode = "listen"``: we bind ``host:port`` and the reader connects to us and pushes
frames. One pushing reader at a time: a NEW connection REPLACES the current one (the
old one is closed and its partial frame dropped). A reader that rebooted reconnects
while its old connection may still look open to us; refusing the new connection
would lock the device out until keepalive noticed the dead one.
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
        super().__init__(name, cfg.framing, sink, on_status, backoff=backoff)
        self.cfg = cfg
        self._sock: socket.socket | None = None
        self._listener: socket.socket | None = None
        self._peer = ""
        # listen mode: after a drop, go straight back to accept()
        self.backoff_after_drop = cfg.mode == "connect"

    @property
    def bound_port(self) -> int | None:
        """The listening port in listen mode once bound (None before, or in connect mode)."""
        lst = self._listener
        if lst is None:
            return None
        try:
            return int(lst.getsockname()[1])
        except OSError:
            return None

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread, close the connection and the listening socket."""
        super().stop(timeout)
        lst, self._listener = self._listener, None
        if lst is not None:
            lst.close()

    def _describe(self) -> str:
        where = f"{self.cfg.host}:{self.cfg.port}"
        if self.cfg.mode == "listen":
            return f"{self._peer} on {where}" if self._peer else f"listening on {where}"
        return where

    def _interrupt(self) -> None:
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- connect mode ---------------------------------------------------------------
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

    # -- listen mode ----------------------------------------------------------------
    def _ensure_listener(self) -> socket.socket:
        if self._listener is None:
            infos = socket.getaddrinfo(
                self.cfg.host, self.cfg.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            family, stype, proto, _, addr = infos[0]
            lst = socket.socket(family, stype, proto)
            try:
                lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                lst.bind(addr)
                lst.listen(2)
            except BaseException:
                lst.close()
                raise
            self._listener = lst
            log.info("%s: listening on %s:%s", self.name, self.cfg.host, self.bound_port)
        return self._listener

    def _take(self, lst: socket.socket) -> socket.socket:
        conn, addr = lst.accept()
        enable_keepalive(conn)
        conn.settimeout(SEND_TIMEOUT)
        self._peer = f"{addr[0]}:{addr[1]}"
        return conn

    def _accept(self) -> bool:
        lst = self._ensure_listener()
        self._went_down(f"no reader connected yet, listening on {self.cfg.host}:{self.bound_port}")
        while not self._stop.is_set():
            readable, _, _ = select.select([lst], [], [], _SLICE)
            if readable:
                conn = self._take(lst)
                with self._io_lock:
                    self._sock = conn
                return True
        return False

    # -- StreamReader hooks -----------------------------------------------------------
    def _open(self) -> bool:
        return self._connect() if self.cfg.mode == "connect" else self._accept()

    def _read(self, timeout: float) -> bytes:
        sock = self._sock
        if sock is None:
            raise ConnectionLost("connection closed")
        watch = [sock] if self._listener is None else [sock, self._listener]
        readable, _, _ = select.select(watch, [], [], timeout)
        if self._listener is not None and self._listener in readable:
            self._replace(self._listener)
            return b""
        if not readable:
            return b""
        data = sock.recv(65536)
        if not data:
            raise ConnectionLost(f"closed by peer ({self._describe()})")
        return data

    def _replace(self, lst: socket.socket) -> None:
        old_peer = self._peer
        conn = self._take(lst)
        with self._io_lock:
            old, self._sock = self._sock, conn
        if old is not None:
            old.close()
        self._replaced(f"new connection from {self._peer} replaced {old_peer}")

    def _write(self, data: bytes) -> None:
        if self._sock is None:
            raise ConnectionLost("connection closed")
        self._sock.sendall(data)

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        self._peer = ""
        if sock is not None:
            sock.close()
