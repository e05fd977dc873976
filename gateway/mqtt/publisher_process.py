"""The MQTT publisher in a child process: its own interpreter, its own GIL.

On two cores the writer (interpretation, decisions, SQLite) and paho (packet building,
PUBACK handling) compete for one GIL when they share a process; in a child process the
publisher reads the outbox itself (SQLite WAL readers never block the writer) and the
writer keeps a core. The parent keeps the single-writer rule: the child sends PUBACKed
``seq`` numbers back over a pipe and the parent's writer marks them.

``RemotePublisher`` has the interface of :class:`gateway.mqtt.publisher.Publisher` that the
daemon uses. Messages over the pipe are small tuples:

parent → child: ``("wake",)``, ``("pub", topic, payload, qos, retain, props)``,
``("stop", topic | None, payload | None, timeout)``
child → parent: ``("ack", [seq, …])``, ``("msg", topic, payload, retain, props)``,
``("connected",)``, ``("hb", connected, published, failed, latencies)``

When the parent dies (even by SIGKILL) the pipe closes; the child then exits at once
without an MQTT DISCONNECT, so the broker publishes the gateway's Will (``offline``).

When the child dies (killed, crashed), the parent starts a new one itself, with backoff
(:class:`RespawnPolicy`), and says so in one log line per restart. The new child reads
every unpublished row from the outbox, so nothing committed meanwhile is lost. A child
that keeps dying makes ``alive`` false: the systemd watchdog restarts the service.

The child is a plain ``python -m gateway.mqtt.publisher_process FD`` started with
``subprocess`` and talks over a socket pair (length-prefixed pickles, :class:`Channel`),
not a ``multiprocessing`` spawn child: that would start the multiprocessing resource
tracker, a third process of ~13 MB that the gateway never needs (and
``multiprocessing.connection`` alone costs the child 2 MB of imports). The child imports only
paho, sqlite3 and the publisher (no pydantic, no GS1 code): it gets its settings as plain
data (:class:`~gateway.mqtt.publisher.ClientSettings`) in its first message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from drivers.scanners.backoff import Backoff
from gateway.mqtt.publisher import (
    ClientSettings,
    Publisher,
    PublisherStats,
    StatusMessage,
    client_settings,
)

if TYPE_CHECKING:
    from gateway.config import BrokerConfig

log = logging.getLogger(__name__)

_PROPS = ("ResponseTopic", "CorrelationData", "MessageExpiryInterval")


def _props_to_dict(props: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if props is None:
        return out
    for name in _PROPS:
        try:
            value = getattr(props, name)
        except AttributeError:
            continue
        if value is not None:
            out[name] = value
    return out


def _dict_to_props(values: dict[str, Any]) -> Any:
    if not values:
        return None
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(props, name, value)
    return props


_HEADER = struct.Struct("!I")


class Channel:
    """Pickled messages over one end of a socket pair, each with a 4-byte length.

    ``recv`` raises ``EOFError`` when the other end is closed (the other process died);
    ``send`` raises ``OSError``. One sender at a time (callers hold a lock).
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        """Two connected ends."""
        a, b = socket.socketpair()
        return cls(a), cls(b)

    @classmethod
    def from_fd(cls, fd: int) -> Channel:
        """The end a parent passed down as file descriptor ``fd``."""
        return cls(socket.socket(fileno=fd))

    def fileno(self) -> int:
        return self._sock.fileno()

    def send(self, msg: Any) -> None:
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        self._sock.sendall(_HEADER.pack(len(data)) + data)

    def recv(self) -> Any:
        (size,) = _HEADER.unpack(self._read(_HEADER.size))
        return pickle.loads(self._read(size))

    def _read(self, n: int) -> bytearray:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self._sock.recv_into(view[got:])
            if k == 0:
                raise EOFError("the other end closed")
            got += k
        return buf

    def close(self) -> None:
        self._sock.close()


@dataclass
class RespawnPolicy:
    """When to start a new publisher process after one died (pure).

    The first death is answered at once; a child that dies again soon after its start
    waits ``initial``, then twice as long each time up to ``maximum``. A child that ran
    ``stable_after`` seconds starts the count over. After ``unhealthy_after`` quick
    deaths in a row the gateway reports itself unhealthy (the watchdog's turn) but
    keeps trying.
    """

    initial: float = 0.5
    maximum: float = 30.0
    stable_after: float = 60.0
    unhealthy_after: int = 5
    failures: int = 0
    _backoff: Backoff = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._backoff = Backoff(self.initial, self.maximum, jitter="none")

    def on_death(self, lived: float) -> float:
        """A child died after ``lived`` seconds: the delay before the next one starts."""
        if lived >= self.stable_after:
            self.failures = 0
            self._backoff.reset()
        self.failures += 1
        return 0.0 if self.failures == 1 else self._backoff.next()

    def on_start_failed(self) -> float:
        """Starting a child failed: the delay before the next attempt."""
        self.failures += 1
        return self._backoff.next()

    @property
    def healthy(self) -> bool:
        """False once children keep dying (``unhealthy_after`` quick deaths in a row)."""
        return self.failures < self.unhealthy_after


def describe_exit(code: int | None) -> str:
    """``killed by SIGKILL`` / ``exit code 1`` for a process's exit code."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class RemoteMessage:
    """An incoming MQTT message forwarded by the child (what paho handlers read)."""

    topic: str
    payload: bytes
    retain: bool
    properties: SimpleNamespace = field(default_factory=SimpleNamespace)


class _PipeClient:
    """The ``client.publish(...)`` that cache sync, commands and metrics call."""

    def __init__(self, owner: RemotePublisher) -> None:
        self._owner = owner

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        qos: int = 0,
        retain: bool = False,
        properties: Any = None,
    ) -> None:
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        self._owner._send(("pub", topic, data, qos, retain, _props_to_dict(properties)))


class RemotePublisher:
    """Runs :class:`Publisher` in a child process; same interface for the daemon."""

    def __init__(
        self,
        cfg: BrokerConfig,
        client_id: str,
        db_path: Path,
        mark: Callable[[list[int]], None],
        *,
        birth: Callable[[], StatusMessage] | None = None,
        will: StatusMessage | None = None,
        subscriptions: Iterable[tuple[str, int]] = (),
        on_message: Callable[[Any], None] | None = None,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.mark = mark
        self.birth = birth
        self.on_message_cb = on_message
        self.on_connected = on_connected
        self.stats = PublisherStats()
        self.client = _PipeClient(self)
        self.last_progress = time.monotonic()
        self._connected = threading.Event()
        self._send_lock = threading.Lock()  # also guards swapping the child's pipe
        self._life_lock = threading.Lock()  # a restart and stop() never overlap
        # checked here (TlsError, as the in-process Publisher); the child gets plain data
        settings = client_settings(cfg)
        self._child_args = (settings, client_id, str(db_path), will, list(subscriptions))
        self._conn: Channel | None = None  # the parent's end of the current child's pipe
        self._proc: subprocess.Popen[bytes] | None = None  # the current child
        self._started_at = 0.0
        self.policy = RespawnPolicy()
        self.restarts = 0
        self._receiver = threading.Thread(target=self._receive, name="publisher-pipe", daemon=True)
        self._stopping = False
        self._stop_wait = threading.Event()

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the child (it connects in the background) and the pipe receiver."""
        self._spawn()
        log.info("MQTT publisher running in process %d", self.pid)
        self._receiver.start()

    def stop(self, offline: StatusMessage | None = None, timeout: float = 3.0) -> None:
        """Publish ``offline`` (if connected), disconnect and end the child."""
        with self._life_lock:
            self._stopping = True  # no restart from here on
        self._stop_wait.set()
        self._send(
            (
                "stop",
                offline.topic if offline else None,
                json.dumps(offline.payload) if offline else None,
                max(0.5, timeout - 1.0),
            )
        )
        proc = self._proc
        if proc is not None and not _wait(proc, timeout):
            proc.kill()
            _wait(proc, 1)
        if self._receiver.is_alive():
            self._receiver.join(1.0)  # sees the child's EOF (or the stop, if restarting)
        if self._conn is not None:
            self._conn.close()

    @property
    def pid(self) -> int | None:
        """The current publisher process's pid (None before start)."""
        return self._proc.pid if self._proc is not None else None

    def _spawn(self) -> None:
        """Start a new child and make it the current one."""
        conn, child = Channel.pair()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", __name__, str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                env=_child_env(),
            )
            conn.send(("init", *self._child_args))
        except BaseException:
            conn.close()
            raise
        finally:
            child.close()  # only the child holds its end: its death is EOF here
        with self._send_lock:
            old, self._conn, self._proc = self._conn, conn, proc
            self._started_at = time.monotonic()
        if old is not None:
            old.close()

    # -- the daemon's interface -----------------------------------------------------------
    def wake(self) -> None:
        """New outbox rows were committed."""
        self._send(("wake",))

    def feed(self, rows: list[tuple[int, str, str]]) -> None:
        """Committed outbox rows, in seq order: the child publishes them from memory (no
        outbox read per commit); what it misses (a restart, a full buffer) it reads."""
        self._send(("rows", rows))

    def publish_direct(
        self, topic: str, payload: dict[str, Any], *, qos: int = 1, retain: bool = False
    ) -> bool:
        """Publish a status-like message now, outside the outbox (False when offline)."""
        if not self._connected.is_set():
            return False
        self._send(("pub", topic, json.dumps(payload).encode(), qos, retain, {}))
        return True

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def alive(self) -> bool:
        """The child runs (or is being restarted) and its children do not keep dying."""
        return self._receiver.is_alive() and self.policy.healthy

    # -- internals ------------------------------------------------------------------------
    def _send(self, msg: tuple[Any, ...]) -> None:
        with self._send_lock:
            if self._conn is None:
                return
            # A dead child: the receiver restarts it and says so, once. Wake-ups need no
            # resend (the new child reads the outbox); direct messages are status-like and
            # published again on connect.
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(msg)

    def _receive(self) -> None:
        """Forward the child's messages; when it dies, start a new one (with backoff)."""
        while True:
            try:
                assert self._conn is not None
                msg = self._conn.recv()
            except (EOFError, OSError):
                self._connected.clear()
                self.stats.connected_since = None
                if self._stopping or not self._restart():
                    return
                continue
            try:
                self._handle(msg)
            except Exception:
                log.exception("handling %s from the publisher process failed", msg[0])

    def _restart(self) -> bool:
        """The child died: start another after the policy's delay. False when stopping."""
        dead = self._proc
        assert dead is not None
        if not _wait(dead, 2):  # closed its pipe but lives on: it is of no use any more
            dead.kill()
            _wait(dead, 2)
        why = describe_exit(dead.returncode)
        delay = self.policy.on_death(time.monotonic() - self._started_at)
        waited = 0.0
        while True:
            self.last_progress = time.monotonic()  # a restart in progress is not a stall
            if self._stop_wait.wait(delay):
                return False
            waited += delay
            try:
                with self._life_lock:
                    if self._stopping:
                        return False
                    self._spawn()
            except Exception as exc:  # cannot fork/spawn (out of memory, …): try again later
                delay = self.policy.on_start_failed()
                log.error(
                    "could not start a new publisher process (%s); next try in %.1f s", exc, delay
                )
                continue
            break
        self.restarts += 1
        self.last_progress = time.monotonic()
        log.warning(
            "MQTT publisher process (pid %d) ended unexpectedly (%s); restarted it as pid %d"
            " after %.1f s (restart %d); unsent events are sent from the outbox",
            dead.pid,
            why,
            self.pid,
            waited,
            self.restarts,
        )
        return True

    def _handle(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "ack":
            seqs = list(msg[1])
            self.stats.published += len(seqs)  # counted here, at once (hb comes every 0.25 s)
            self.last_progress = time.monotonic()
            self.mark(seqs)
        elif kind == "hb":
            was = self._connected.is_set()
            _, connected, _published, failed, latencies = msg
            self.stats.failed = failed
            self.stats.latencies = list(latencies)
            self.last_progress = time.monotonic()
            if connected:
                self._connected.set()
            else:
                self._connected.clear()
                self.stats.connected_since = None
            if connected and not was and self.stats.connected_since is None:
                self.stats.connected_since = time.time()
        elif kind == "connected":
            self._connected.set()
            self.stats.connects += 1
            self.stats.connected_since = time.time()
            if self.birth is not None:
                b = self.birth()
                self._send(("pub", b.topic, json.dumps(b.payload).encode(), 1, True, {}))
            if self.on_connected is not None:
                self.on_connected()
        elif kind == "msg":
            _, topic, payload, retain, props = msg
            if self.on_message_cb is not None:
                self.on_message_cb(RemoteMessage(topic, payload, retain, SimpleNamespace(**props)))


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait for ``proc`` to end; False when it still runs after ``timeout`` seconds.

    Waits on a pidfd with ``select`` (as multiprocessing waits on its sentinel), not with
    ``Popen.wait(timeout)``, whose sleep loop fails (EINVAL) when the wall clock steps
    under libfaketime; the plain wait is the fallback where pidfds do not exist.
    """
    if proc.poll() is not None:
        return True
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return proc.poll() is not None


def _child_env() -> dict[str, str]:
    """The parent's environment, with this checkout importable from any working directory."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


class AckBatch:
    """PUBACKed seqs for the parent, sent at most every ``MAX_WAIT`` seconds (or per
    ``MAX_SEQS``) instead of one message per PUBACK: the parent marks them in a deferred
    write anyway, and a mark that comes later only means the event is sent again after a
    crash (consumers deduplicate by ``event_id``)."""

    MAX_WAIT = 0.05
    MAX_SEQS = 1024

    def __init__(self, send: Callable[[list[int]], None]) -> None:
        self._send = send
        self._seqs: list[int] = []
        self._lock = threading.Lock()

    def add(self, seqs: list[int]) -> None:
        """Seqs the broker acknowledged (publisher thread)."""
        with self._lock:
            self._seqs.extend(seqs)
            full = len(self._seqs) >= self.MAX_SEQS
        if full:
            self.flush()

    def flush(self) -> None:
        """Send what is pending (heartbeat thread, every ``MAX_WAIT``; or when full)."""
        with self._lock:
            seqs, self._seqs = self._seqs, []
        if seqs:
            self._send(seqs)


def child_main(
    conn: Any,
    cfg: ClientSettings,
    client_id: str,
    db_path: str,
    will: StatusMessage | None,
    subscriptions: list[tuple[str, int]],
) -> None:
    """The publisher process: paho + outbox reads; exits when the parent goes away."""
    # systemd and a terminal signal the whole group: only the parent decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
    )
    lock = threading.Lock()

    def send(msg: tuple[Any, ...]) -> None:
        with lock:
            try:
                conn.send(msg)
            except (OSError, ValueError):
                os._exit(0)

    def forward(m: Any) -> None:
        send(("msg", m.topic, bytes(m.payload), bool(m.retain), _props_to_dict(m.properties)))

    acks = AckBatch(lambda seqs: send(("ack", seqs)))
    pub = Publisher(
        cfg,
        client_id,
        Path(db_path),
        acks.add,
        will=will,
        subscriptions=subscriptions,
        on_message=forward,
        on_connected=lambda: send(("connected",)),
        inline=True,  # this process does nothing else: publish in paho's network thread
    )
    pub.start()

    def heartbeat() -> None:
        beat = 0.0
        while True:
            acks.flush()
            now = time.monotonic()
            if now - beat >= 0.25:
                beat = now
                s = pub.stats
                send(("hb", pub.connected, s.published, s.failed, s.latencies[-256:]))
            time.sleep(AckBatch.MAX_WAIT)

    threading.Thread(target=heartbeat, name="hb", daemon=True).start()
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            os._exit(0)  # the parent died: no DISCONNECT, so the broker sends our Will
        kind = msg[0]
        if kind == "rows":
            pub.feed(msg[1])
        elif kind == "wake":
            pub.wake()
        elif kind == "pub":
            _, topic, payload, qos, retain, props = msg
            pub.client.publish(
                topic, payload, qos=qos, retain=retain, properties=_dict_to_props(props)
            )
        elif kind == "stop":
            _, topic, payload, timeout = msg
            offline = StatusMessage(topic, json.loads(payload)) if topic else None
            pub.stop(offline, timeout)
            acks.flush()
            os._exit(0)


def _main(argv: list[str]) -> None:
    """``python -m gateway.mqtt.publisher_process FD``: the child's entry point."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # at once: the parent decides when we stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Channel.from_fd(int(argv[1]))
    try:
        kind, *args = conn.recv()
    except (EOFError, OSError):
        os._exit(0)
    if kind != "init":
        os._exit(2)
    child_main(conn, *args)


if __name__ == "__main__":
    _main(sys.argv)
