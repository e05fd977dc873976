"""Fixed-mount readers that connect to us: ``[scanners.X] type = "tcp", mode = "listen"``.

One thread and one ``selectors`` loop serve every connected reader, up to
``max_clients`` at once. Each connection has its own :class:`Channel` (framer and
heartbeat), so a frame split over several packets from two readers never mixes, and
one reader's disconnect (or heartbeat loss) affects no other. A connection beyond
``max_clients`` is accepted and closed at once with a log line; it never replaces a
connected reader (a rebooted reader whose old connection still looks open is served
as well, and its dead connection goes away when TCP keepalive notices, ~25 s).

The thread only accepts, reads, frames and hands complete scans to the sink. Each
pass reads at most one chunk per ready connection, so a flooding reader cannot starve
the others. :meth:`TcpListener.send` (from any thread) writes to every connected
reader, bounded by a send timeout; it never makes the reader thread wait.

Status of the scanner device: ``disconnected`` (expected) while listening with no
reader, ``connected`` (detail lists the readers) while at least one is connected,
``disconnected`` when the last one goes, ``heartbeat_lost``/``alive`` per connection
(the detail names it).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

from drivers.scanners.backoff import Backoff
from drivers.scanners.config import TcpScanner
from drivers.scanners.reader_base import Channel, HandOver, report_status
from drivers.scanners.tcp_reader import SEND_TIMEOUT, enable_keepalive
from drivers.scanners.types import DeviceState, ScanSink, StatusSink

log = logging.getLogger(__name__)

_SLICE = 0.1  # longest single wait (bounds stop() latency)
_CHUNK = 65536


@dataclass(eq=False)
class _Conn:
    """One connected reader."""

    sock: socket.socket
    peer: str
    channel: Channel
    lock: threading.Lock = field(default_factory=threading.Lock)  # held while send() writes
    closed: bool = False


def _close_conn(conn: _Conn) -> None:
    """Close a connection without waiting for a send() in progress (it closes it then)."""
    conn.closed = True
    if conn.lock.acquire(blocking=False):
        try:
            conn.sock.close()
        finally:
            conn.lock.release()
    else:  # send() is writing: make it fail fast; it closes the socket when done
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_RDWR)


def refusal_worth_logging(count: int) -> bool:
    """Log the 1st, 2nd, 4th, 8th ... refused connection (a storm must not flood the log)."""
    return count > 0 and count & (count - 1) == 0


class TcpListener:
    """Serves every fixed-mount reader connected to ``host:port`` on one thread."""

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
        if cfg.mode != "listen":
            raise ValueError(f"{name}: TcpListener needs mode = 'listen', not {cfg.mode!r}")
        self.name = name
        self.cfg = cfg
        self._on_status = on_status
        self._hand_over = HandOver(name, sink)
        self._backoff = backoff if backoff is not None else Backoff(jitter="decorrelated")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards _conns (held only for dict operations)
        self._conns: dict[int, _Conn] = {}  # by file descriptor
        self._listener: socket.socket | None = None
        self._down_reason: str | None = None
        self.refused = 0  # connections closed because max_clients readers were connected
        self.last_seen: float | None = None

    # -- public -------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while at least one reader is connected."""
        with self._lock:
            return bool(self._conns)

    @property
    def peers(self) -> list[str]:
        """``host:port`` of every connected reader, in connection order."""
        with self._lock:
            return [c.peer for c in self._conns.values()]

    @property
    def bound_port(self) -> int | None:
        """The listening port once bound (None before, and after stop)."""
        lst = self._listener
        if lst is None:
            return None
        try:
            return int(lst.getsockname()[1])
        except OSError:
            return None

    def start(self) -> None:
        """Start the listener thread (a daemon)."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: already started")
        self._thread = threading.Thread(target=self._run, name=f"tcp:{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread promptly; every connection and the listening socket are closed."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: reader thread did not stop within %.1fs", self.name, timeout)

    def send(self, data: bytes) -> bool:
        """Write ``data`` to every connected reader (bounded); True if at least one got it."""
        with self._lock:
            conns = list(self._conns.values())
        sent = False
        for conn in conns:
            with conn.lock:
                if conn.closed:
                    continue
                try:
                    conn.sock.sendall(data)
                    sent = True
                except OSError as e:  # a failed write must never hurt the caller
                    log.info("%s: send to %s failed: %s", self.name, conn.peer, e)
            if conn.closed and conn.lock.acquire(blocking=False):
                try:  # the reader thread dropped it while we were writing
                    conn.sock.close()
                finally:
                    conn.lock.release()
        return sent

    # -- the loop -----------------------------------------------------------------
    @property
    def _where(self) -> str:
        port = self.bound_port
        return f"{self.cfg.host}:{self.cfg.port if port is None else port}"

    def _status(self, state: DeviceState, detail: str, *, expected: bool = False) -> None:
        report_status(self._on_status, self.name, state, detail, expected=expected)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                lst = self._bind()
            except Exception as e:  # OSError expected; anything else must not kill the thread
                if not isinstance(e, OSError):
                    log.exception("%s: unexpected error binding %s", self.name, self._where)
                self._down(f"cannot open {self._where}: {e}")
                self._stop.wait(self._backoff.next())
                continue
            self._backoff.reset()
            self._down_reason = None
            try:
                self._serve(lst)
            except Exception as e:  # never let the reader thread die silently
                log.exception("%s: listener failed", self.name)
                self._close_all(f"listener error: {e}")
                self._close_listener()
                self._down(f"listener error: {e}")
                self._stop.wait(self._backoff.next())
        self._close_all("stopped")
        self._close_listener()
        self._status("disconnected", "stopped", expected=True)

    def _down(self, reason: str) -> None:
        """Report that we cannot listen, once per outage."""
        if self._down_reason is None:
            self._down_reason = reason
            log.warning("%s: disconnected: %s (retrying with backoff)", self.name, reason)
            self._status("disconnected", reason)
        else:
            log.debug("%s: still down: %s", self.name, reason)

    def _bind(self) -> socket.socket:
        infos = socket.getaddrinfo(
            self.cfg.host, self.cfg.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, stype, proto, _, addr = infos[0]
        lst = socket.socket(family, stype, proto)
        try:
            lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lst.bind(addr)
            lst.listen(self.cfg.max_clients)
            lst.setblocking(False)  # accept() never waits (a peer may reset meanwhile)
        except BaseException:
            lst.close()
            raise
        self._listener = lst
        return lst

    def _close_listener(self) -> None:
        lst, self._listener = self._listener, None
        if lst is not None:
            lst.close()

    def _serve(self, lst: socket.socket) -> None:
        waiting = f"listening on {self._where}, waiting for readers"
        log.info("%s: %s (at most %d at a time)", self.name, waiting, self.cfg.max_clients)
        self._status("disconnected", waiting, expected=True)
        with selectors.DefaultSelector() as sel:
            sel.register(lst, selectors.EVENT_READ, None)
            try:
                while not self._stop.is_set():
                    self._pass(sel, lst)
            finally:
                for key in list(sel.get_map().values()):
                    sel.unregister(key.fileobj)

    def _pass(self, sel: selectors.BaseSelector, lst: socket.socket) -> None:
        """One round: wait, accept or read what is ready, then step every connection."""
        with self._lock:
            conns = list(self._conns.values())
        deadlines = [d for c in conns if (d := c.channel.deadline()) is not None]
        now = time.monotonic()
        budget = max(0.0, min([_SLICE, *(d - now for d in deadlines)]))
        received: dict[_Conn, bytes] = {}
        for key, _ in sel.select(budget):
            conn = key.data
            if conn is None:
                self._accept(sel, lst)
                continue
            try:
                data = conn.sock.recv(_CHUNK)
            except (BlockingIOError, InterruptedError, TimeoutError):
                continue
            except OSError as e:
                self._drop(sel, conn, str(e) or type(e).__name__)
                continue
            if not data:
                self._drop(sel, conn, "closed by peer")
                continue
            received[conn] = data
        now = time.monotonic()
        with self._lock:
            conns = list(self._conns.values())
        for conn in conns:
            self._step(conn, received.get(conn, b""), now)

    def _step(self, conn: _Conn, data: bytes, now: float) -> None:
        if data:
            self.last_seen = now
        step = conn.channel.step(data, now)
        if step.alive_again:
            self._status("alive", f"{conn.peer}: data received")
        for frame in step.frames:
            self._hand_over(frame, now, conn.channel.label)
        if step.heartbeat_lost:
            silence = conn.channel.silence
            self._status("heartbeat_lost", f"{conn.peer}: nothing received for {silence:.1f}s")

    def _accept(self, sel: selectors.BaseSelector, lst: socket.socket) -> None:
        try:
            sock, addr = lst.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:  # e.g. EMFILE: the connection stays queued; do not spin
            log.warning("%s: cannot accept a connection: %s", self.name, e)
            self._stop.wait(_SLICE)
            return
        peer = f"{addr[0]}:{addr[1]}"
        with self._lock:
            full = len(self._conns) >= self.cfg.max_clients
        if full:
            self.refused += 1
            sock.close()
            if refusal_worth_logging(self.refused):
                log.warning(
                    "%s: refused connection from %s: max_clients = %d readers are connected "
                    "(%d refused so far)",
                    self.name,
                    peer,
                    self.cfg.max_clients,
                    self.refused,
                )
            return
        try:
            enable_keepalive(sock)
            sock.settimeout(SEND_TIMEOUT)  # bounds send(); reads happen only when ready
        except OSError as e:  # the peer is already gone
            sock.close()
            log.info("%s: connection from %s lost at once: %s", self.name, peer, e)
            return
        conn = _Conn(sock, peer, Channel(self.cfg.framing, f"{self.name} ({peer})"))
        conn.channel.start(time.monotonic())
        with self._lock:
            self._conns[sock.fileno()] = conn
            count = len(self._conns)
        sel.register(sock, selectors.EVENT_READ, conn)
        log.info(
            "%s: reader %s connected on %s (%d of at most %d)",
            self.name,
            peer,
            self._where,
            count,
            self.cfg.max_clients,
        )
        self._status("connected", self._connected_detail())

    def _connected_detail(self) -> str:
        peers = self.peers
        if len(peers) == 1:
            return f"{peers[0]} on {self._where}"
        return f"{len(peers)} readers on {self._where}: {', '.join(peers)}"

    def _drop(self, sel: selectors.BaseSelector, conn: _Conn, why: str) -> None:
        """One reader went away: only its own partial frame is lost."""
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(conn.sock)
        with self._lock:
            self._conns = {fd: c for fd, c in self._conns.items() if c is not conn}
            left = len(self._conns)
        _close_conn(conn)
        conn.channel.close(f"{conn.peer} {why}")
        if left:
            log.warning(
                "%s: reader %s disconnected: %s (%d still connected)",
                self.name,
                conn.peer,
                why,
                left,
            )
            self._status("connected", self._connected_detail())
        else:
            log.warning(
                "%s: reader %s disconnected: %s; no reader connected, listening on %s",
                self.name,
                conn.peer,
                why,
                self._where,
            )
            self._status(
                "disconnected",
                f"{conn.peer} {why}; no reader connected, listening on {self._where}",
            )

    def _close_all(self, why: str) -> None:
        with self._lock:
            conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            _close_conn(conn)
            conn.channel.close(f"{conn.peer} {why}")
