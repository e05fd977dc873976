"""TCP listen mode against real loopback readers: several at once, each with its own framing.

The listener is built the way the daemon builds it (``gateway.readers.make_reader``).
Synchronisation waits for what the listener did (``last_seen``, statuses, scans), never
for a fixed time.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from drivers.scanners.backoff import Backoff
from drivers.scanners.config import FramerConfig, TcpScanner
from drivers.scanners.tcp_listener import TcpListener, refusal_worth_logging
from drivers.scanners.types import RawScan
from gateway.readers import make_reader
from tests.test_tcp_reader import HOST, WAIT, Recorder, free_port, recv_exactly, wait_for

GS = "\x1d"


@pytest.fixture
def things() -> Iterator[list[Any]]:
    out: list[Any] = []
    yield out
    for t in reversed(out):
        if isinstance(t, socket.socket):
            t.close()
        else:
            t.stop()


def listen(
    things: list[Any], framing: FramerConfig | None = None, max_clients: int = 8
) -> tuple[Any, Recorder, int]:
    port = free_port()
    cfg = TcpScanner(
        type="tcp",
        station="tunnel",
        mode="listen",
        host=HOST,
        port=port,
        framing=framing or FramerConfig(),
        max_clients=max_clients,
    )
    rec = Recorder()
    reader = make_reader("tun1", cfg, rec.sink, rec.status)
    things.append(reader)
    reader.start()
    rec.wait_state("disconnected")  # listening, waiting for readers
    wait_for(lambda: reader.bound_port == port, "listening")
    return reader, rec, port


def connect(things: list[Any], rec: Recorder, port: int) -> socket.socket:
    """A reader connects; returns once the listener reported it."""
    n = rec.states().count("connected")
    sock = socket.create_connection((HOST, port), timeout=WAIT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    things.append(sock)
    rec.wait_state("connected", n + 1)
    return sock


def peer(sock: socket.socket) -> str:
    """How the listener names this client connection: ``host:port``."""
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def push(reader: Any, sock: socket.socket, data: bytes) -> None:
    """Send ``data`` and wait until the listener has read something after it was sent."""
    before = reader.last_seen
    sock.sendall(data)
    wait_for(lambda: reader.last_seen != before, "the listener to read")


def scans(rec: Recorder, n: int) -> list[RawScan]:
    return [rec.scan() for _ in range(n)]


def test_two_readers_split_frames_never_mix(things: list[Any]) -> None:
    reader, rec, port = listen(things, FramerConfig(separator=";"))
    a = connect(things, rec, port)
    b = connect(things, rec, port)
    assert "2 readers" in rec.last("connected").detail
    push(reader, a, b"]C1A-FIRST;]C1A-")
    push(reader, b, b"]C1B-FIRST;]C1B-")
    push(reader, a, b"SECOND\r")
    push(reader, b, b"SECOND\r\n")
    push(reader, a, b"\n")
    got = scans(rec, 4)
    assert sorted(s.text for s in got) == [
        "]C1A-FIRST",
        "]C1A-SECOND",
        "]C1B-FIRST",
        "]C1B-SECOND",
    ]
    by_frame = {s.frame_id: {x.text[4] for x in got if x.frame_id == s.frame_id} for s in got}
    assert sorted(len(v) for v in by_frame.values()) == [1, 1]  # one reader per frame
    assert all(s.frame_size == 2 for s in got)
    assert rec.scans.empty()
    assert reader.connected


def test_n_readers_interleaving_partial_frames(things: list[Any]) -> None:
    n, per_reader = 8, 40
    reader, rec, port = listen(things, FramerConfig(separator=";"), max_clients=n)
    socks = [connect(things, rec, port) for _ in range(n)]
    rng = random.Random(12)
    # each reader's stream: frames of 1-3 codes, cut into random pieces
    expected: Counter[str] = Counter()
    pieces: list[list[bytes]] = []
    for i in range(n):
        codes = [f"]C1{i:02d}{GS}10LOT{j:03d}" for j in range(per_reader)]
        expected.update(codes)
        stream = b""
        j = 0
        while j < len(codes):
            k = rng.randint(1, 3)
            stream += ";".join(codes[j : j + k]).encode() + b"\r\n"
            j += k
        cuts = sorted(rng.sample(range(1, len(stream)), 60))
        pieces.append([stream[x:y] for x, y in zip([0, *cuts], [*cuts, len(stream)], strict=True)])
    while any(pieces):
        for i in rng.sample(range(n), n):
            if pieces[i]:
                push(reader, socks[i], pieces[i].pop(0))
    got = scans(rec, n * per_reader)
    assert Counter(s.text for s in got) == expected  # nothing lost, nothing mixed
    for fid in {s.frame_id for s in got}:
        frame = [s for s in got if s.frame_id == fid]
        assert len({s.text[3:5] for s in frame}) == 1  # a frame comes from one reader
        assert len(frame) == frame[0].frame_size
    assert rec.scans.empty()


def test_one_reader_leaving_mid_frame_does_not_touch_the_others(
    things: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="drivers.scanners")
    reader, rec, port = listen(things)
    a = connect(things, rec, port)
    b = connect(things, rec, port)
    push(reader, a, b"A-HALF")
    push(reader, b, b"B-ONE-")
    peer_a = peer(a)
    a.close()
    rec.wait_state("connected", 3)  # a left: b is still connected, no outage
    assert reader.peers == [peer(b)]
    assert rec.states().count("disconnected") == 1  # only the one at listen start
    assert peer_a not in rec.last("connected").detail
    push(reader, b, b"PIECE\r\n")
    assert rec.scan().text == "B-ONE-PIECE"
    assert rec.scans.empty()
    lost = [r.getMessage() for r in caplog.records if "partial frame lost" in r.getMessage()]
    assert len(lost) == 1 and "A-HALF" in lost[0] and peer_a in lost[0]

    b.close()
    rec.wait_state("disconnected", 2)
    assert "no reader connected" in rec.last("disconnected").detail
    c = connect(things, rec, port)
    push(reader, c, b"C\r\n")
    assert rec.scan().text == "C"


def test_over_the_limit_is_refused_never_replaces(
    things: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="drivers.scanners")
    reader, rec, port = listen(things, max_clients=2)
    a = connect(things, rec, port)
    b = connect(things, rec, port)
    push(reader, a, b"A-PART")
    extra = socket.create_connection((HOST, port), timeout=WAIT)
    things.append(extra)
    with contextlib.suppress(ConnectionResetError):
        assert extra.recv(10) == b""  # closed by the listener at once
    assert reader.refused == 1
    assert len(reader.peers) == 2
    push(reader, a, b"-END\r\n")
    push(reader, b, b"B\r\n")
    assert sorted(s.text for s in scans(rec, 2)) == ["A-PART-END", "B"]
    assert rec.states().count("connected") == 2  # the refused one never counted
    refusals = [r for r in caplog.records if "refused connection" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.WARNING
    assert "max_clients = 2" in refusals[0].getMessage()
    assert not any("partial frame lost" in r.getMessage() for r in caplog.records)

    a.close()  # a slot frees up: the next reader is served
    wait_for(lambda: len(reader.peers) == 1, "a's disconnect")
    c = connect(things, rec, port)
    push(reader, c, b"C\r\n")
    assert rec.scan().text == "C"


def test_a_connection_storm_is_logged_sparingly(
    things: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="drivers.scanners")
    reader, rec, port = listen(things, max_clients=1)
    a = connect(things, rec, port)
    for _ in range(40):
        with (
            socket.create_connection((HOST, port), timeout=WAIT) as s,
            contextlib.suppress(ConnectionResetError),
        ):
            assert s.recv(10) == b""
    wait_for(lambda: reader.refused == 40, "40 refusals")
    refusals = [r for r in caplog.records if "refused connection" in r.getMessage()]
    assert len(refusals) == 6  # 1, 2, 4, 8, 16, 32
    push(reader, a, b"STILL-HERE\r\n")
    assert rec.scan().text == "STILL-HERE"


def test_refusal_worth_logging() -> None:
    assert [n for n in range(70) if refusal_worth_logging(n)] == [1, 2, 4, 8, 16, 32, 64]


def test_a_flood_from_one_reader_starves_no_other(things: list[Any]) -> None:
    reader, rec, port = listen(things)
    flooder = connect(things, rec, port)
    quiet = connect(things, rec, port)
    count = 20000
    data = b"".join(b"F%05d\r\n" % i for i in range(count))
    t = threading.Thread(target=flooder.sendall, args=(data,), daemon=True)
    t.start()
    for i in range(5):
        push(reader, quiet, b"Q%d\r\n" % i)
    t.join(WAIT * 4)
    assert not t.is_alive()
    got = scans(rec, count + 5)
    flood = [s.text for s in got if s.text.startswith("F")]
    assert flood == [f"F{i:05d}" for i in range(count)]  # complete and in order
    assert [s.text for s in got if s.text.startswith("Q")] == [f"Q{i}" for i in range(5)]
    assert rec.scans.empty()


def test_heartbeat_is_watched_per_connection(things: list[Any]) -> None:
    framing = FramerConfig(heartbeat="HB", heartbeat_interval=0.04)
    reader, rec, port = listen(things, framing)
    a = connect(things, rec, port)
    b = connect(things, rec, port)
    peer_a, peer_b = peer(a), peer(b)
    rec.wait_state("heartbeat_lost", 2)
    lost = {s.detail.split(": ")[0] for s in rec.statuses if s.state == "heartbeat_lost"}
    assert lost == {peer_a, peer_b}
    a.sendall(b"HB\r\n")
    rec.wait_state("alive")
    assert rec.last("alive").detail.startswith(peer_a)
    assert rec.states().count("alive") == 1  # b is still silent
    push(reader, b, b"SCAN\r\n")
    assert rec.scan().text == "SCAN"
    assert rec.scans.empty()  # heartbeats are not scans


def test_send_reaches_every_reader_and_stop_closes_all(things: list[Any]) -> None:
    reader, rec, port = listen(things)
    a = connect(things, rec, port)
    b = connect(things, rec, port)
    assert reader.send(b"TRIGGER")
    assert recv_exactly(a, 7) == b"TRIGGER" and recv_exactly(b, 7) == b"TRIGGER"
    reader.stop()
    assert a.recv(10) == b"" and b.recv(10) == b""
    assert not reader.connected and reader.bound_port is None
    assert reader.send(b"x") is False
    assert rec.statuses[-1].state == "disconnected" and rec.statuses[-1].expected


def test_listen_start_is_not_an_outage(things: list[Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="drivers.scanners")
    reader, rec, port = listen(things)
    first = rec.statuses[0]
    assert (first.state, first.expected) == ("disconnected", True)
    assert first.detail == f"listening on {HOST}:{port}, waiting for readers"
    a = connect(things, rec, port)
    push(reader, a, b"X\r\n")
    assert rec.scan().text == "X"
    messages = [r.getMessage() for r in caplog.records]
    assert f"tun1: listening on {HOST}:{port}, waiting for readers (at most 8 at a time)" in (
        messages
    )
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not any("again" in m or "no reader connected yet" in m for m in messages)


def test_pushing_reader_reconnects(things: list[Any]) -> None:
    _, rec, port = listen(things, FramerConfig(separator="|"))
    with socket.create_connection((HOST, port), timeout=WAIT) as c:
        rec.wait_state("connected")
        assert "127.0.0.1" in rec.last("connected").detail
        c.sendall(b"P1|P2\n")
        assert [rec.scan().text, rec.scan().text] == ["P1", "P2"]
    rec.wait_state("disconnected", 2)
    assert rec.statuses[-1].expected is False  # the last reader leaving is an outage
    with socket.create_connection((HOST, port), timeout=WAIT) as c:
        rec.wait_state("connected", 2)
        c.sendall(b"P3\n")
        assert rec.scan().text == "P3"


def test_port_in_use_is_retried(things: list[Any]) -> None:
    blocker = socket.create_server((HOST, 0))
    port = int(blocker.getsockname()[1])
    cfg = TcpScanner(type="tcp", station="tunnel", mode="listen", host=HOST, port=port)
    rec = Recorder()
    reader = TcpListener("tun1", cfg, rec.sink, rec.status, backoff=Backoff(0.01, 0.05))
    things.append(reader)
    reader.start()
    rec.wait_state("disconnected")
    assert "cannot open" in rec.last("disconnected").detail
    blocker.close()
    wait_for(lambda: reader.bound_port == port, "bound after the port was freed")
    with socket.create_connection((HOST, port), timeout=WAIT) as c:
        rec.wait_state("connected")
        c.sendall(b"OK\r")
        assert rec.scan().text == "OK"


def test_listener_needs_listen_mode() -> None:
    cfg = TcpScanner(type="tcp", station="tunnel", port=2001)
    with pytest.raises(ValueError, match="listen"):
        TcpListener("tun1", cfg, lambda s: None)
