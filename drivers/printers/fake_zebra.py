"""A fake Zebra printer on loopback for tests and demos, speaking the real framing.

It answers ``~HS`` (three STX…ETX frames) and ``~HQES``, the SGD label counter
(``! U1 getvar "odometer.total_label_count"``), stores ``^DF`` formats and merges
``^XF`` recalls, records every received format and "prints" labels one at a time.
Faults on demand: paper out / ribbon out / head open (silent to ``~HS``), paused,
connection reset mid-job, a second client refused, replies split across packets,
power cycle (stored formats lost). Run standalone:
``python -m drivers.printers.fake_zebra --port 9100``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

_CONTROL = re.compile(rb"~([A-Z]{2})")
_DF = re.compile(r"\^DF([^\^~]+?)\^FS")
_XF = re.compile(r"\^XF([^\^~]+?)\^FS")
_FN_DATA = re.compile(r"\^FN(\d+)((?:\^FH\\)?\^FD.*?)\^FS", re.S)
_FN_SLOT = re.compile(r'\^FN(\d+)(?:"[^"]*")?')


@dataclass
class Faults:
    """Switchable fault conditions."""

    paper_out: bool = False
    ribbon_out: bool = False
    head_open: bool = False
    paused: bool = False
    split_replies: bool = False  # send replies a few bytes at a time
    reset_next_format: bool = False  # drop the connection in the middle of the next format
    reset_after_print: bool = False  # drop the connection right after the next label printed
    silent_hqes: bool = False


@dataclass
class FakeState:
    """What the fake has seen and done (read it from tests; guarded by ``lock``)."""

    received: list[str] = field(default_factory=list)  # every complete ^XA…^XZ as received
    printed: list[str] = field(default_factory=list)  # labels printed (recalls merged)
    pending: list[str] = field(default_factory=list)  # labels in the buffer
    stored: dict[str, str] = field(default_factory=dict)
    control_commands: list[str] = field(default_factory=list)
    refused_clients: int = 0
    connections: int = 0
    missing_formats: int = 0
    label_count: int = 1000


class FakeZebra:
    """The fake printer server. ``start()`` binds 127.0.0.1 (port 0 picks a free one)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", print_time: float = 0.005) -> None:
        self.host, self.port, self.print_time = host, port, print_time
        self.faults = Faults()
        self.state = FakeState()
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._srv: socket.socket | None = None
        self._client: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ lifecycle
    def start(self) -> FakeZebra:
        """Listen and start the accept and print threads."""
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((self.host, self.port))
        srv.listen(4)
        srv.settimeout(0.1)
        self._srv = srv
        self.port = srv.getsockname()[1]
        for target in (self._accept_loop, self._print_loop):
            t = threading.Thread(target=target, daemon=True, name=f"fake-zebra-{target.__name__}")
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Stop serving and close every socket."""
        self._stop.set()
        self._drop_client()
        if self._srv is not None:
            self._srv.close()
        for t in self._threads:
            t.join(2)

    def __enter__(self) -> FakeZebra:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def power_cycle(self) -> None:
        """Drop the connection and lose RAM: stored formats and buffered labels are gone."""
        self._drop_client(reset=True)
        with self.lock:
            self.state.stored.clear()
            self.state.pending.clear()

    def _drop_client(self, reset: bool = False) -> None:
        c = self._client
        self._client = None
        if c is not None:
            if reset:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                c.close()

    # ------------------------------------------------------------ network
    def _accept_loop(self) -> None:
        assert self._srv is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except (TimeoutError, OSError):
                continue
            if self._client is not None:
                # One client at a time: refuse the second one at once (reset).
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                with self.lock:
                    self.state.refused_clients += 1
                continue
            self._client = conn
            with self.lock:
                self.state.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        buf = b""
        try:
            while not self._stop.is_set() and self._client is conn:
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                buf = self._handle(conn, buf + data)
        except OSError:
            pass
        finally:
            if self._client is conn:
                self._client = None
            with contextlib.suppress(OSError):
                conn.close()

    def _reply(self, conn: socket.socket, data: bytes) -> None:
        if self.faults.split_replies:
            # 3-byte pieces; a pause every 15 bytes so the reader sees partial lines
            # without a reply taking as long as a whole label.
            for i in range(0, len(data), 3):
                conn.sendall(data[i : i + 3])
                if i % 15 == 12:
                    time.sleep(0.002)
        else:
            conn.sendall(data)

    # ------------------------------------------------------------ protocol
    def _handle(self, conn: socket.socket, buf: bytes) -> bytes:
        """Consume complete commands from ``buf``; return the unconsumed rest."""
        while True:
            if self.faults.reset_next_format and b"^XA" in buf:
                self.faults.reset_next_format = False
                self._drop_client(reset=True)
                return b""
            xa = buf.find(b"^XA")
            # Control commands act at once, even inside a format (as on a real printer).
            head = buf if xa < 0 else buf[:xa]
            if xa < 0:
                head = self._controls(conn, head, final=False)
                return head
            self._controls(conn, head, final=True)
            xz = buf.find(b"^XZ", xa)
            if xz < 0:
                return buf[xa:]
            fmt = buf[xa : xz + 3]
            for m in _CONTROL.finditer(fmt):
                with self.lock:
                    self.state.control_commands.append(m.group(1).decode())
            self._format(fmt.decode("utf-8", "replace"))
            buf = buf[xz + 3 :]

    def _controls(self, conn: socket.socket, data: bytes, final: bool) -> bytes:
        pos = 0
        while True:
            if data.startswith(b"! U1 getvar", pos) or (b"! U1" in data[pos:]):
                i = data.find(b"! U1", pos)
                end = data.find(b"\n", i)
                if end < 0:
                    return data[i:]
                line = data[i:end]
                if b"odometer.total_label_count" in line:
                    with self.lock:
                        n = self.state.label_count
                    self._reply(conn, f'"{n}"\r\n'.encode())
                pos = end + 1
                continue
            m = _CONTROL.search(data, pos)
            if not m:
                return b"" if final else (data[-4:] if data.endswith(b"~") else b"")
            cmd = m.group(1).decode()
            if cmd == "HQ":
                if not data.startswith(b"ES", m.end()):
                    if len(data) - m.end() < 2 and not final:
                        return data[m.start() :]
                    pos = m.end()
                    continue
                pos = m.end() + 2
                self._hqes(conn)
            elif cmd == "HS":
                pos = m.end()
                self._hs(conn)
            else:
                pos = m.end()
                with self.lock:
                    self.state.control_commands.append(cmd)

    def _hs(self, conn: socket.socket) -> None:
        f = self.faults
        if f.paper_out or f.ribbon_out or f.head_open:
            return  # silent, like the real thing
        with self.lock:
            n = len(self.state.pending)
        l1 = f"030,0,{int(f.paused)},1218,{n:03d},0,0,0,000,0,0,0"
        l2 = f"000,0,0,0,1,2,4,0,{n:08d},1,000"
        l3 = "1234,0"
        self._reply(conn, b"".join(b"\x02" + x.encode() + b"\x03\r\n" for x in (l1, l2, l3)))

    def _hqes(self, conn: socket.socket) -> None:
        f = self.faults
        if f.silent_hqes:
            return
        bits = (
            (0x1 if f.paper_out else 0)
            | (0x2 if f.ribbon_out else 0)
            | (0x4 if f.head_open else 0)
            | (0x10000 if f.paused else 0)
        )
        body = (
            "\r\n  PRINTER STATUS                            \r\n"
            f"   ERRORS:         {int(bool(bits))} 00000000 {bits:08X}\r\n"
            "   WARNINGS:       0 00000000 00000000\r\n"
        )
        self._reply(conn, b"\x02" + body.encode() + b"\x03\r\n")

    def _format(self, fmt: str) -> None:
        with self.lock:
            self.state.received.append(fmt)
            m = _DF.search(fmt)
            if m:
                self.state.stored[m.group(1)] = fmt[m.end() : -3]
                return
            m = _XF.search(fmt)
            if m:
                stored = self.state.stored.get(m.group(1))
                if stored is None:
                    self.state.missing_formats += 1
                    return
                data = {int(k): v for k, v in _FN_DATA.findall(fmt)}
                merged = _FN_SLOT.sub(lambda s: data.get(int(s.group(1)), ""), stored)
                self.state.pending.append("^XA" + merged + "^XZ")
                return
            self.state.pending.append(fmt)

    def _print_loop(self) -> None:
        while not self._stop.is_set():
            f = self.faults
            label = None
            if not (f.paper_out or f.ribbon_out or f.head_open or f.paused):
                with self.lock:
                    if self.state.pending:
                        label = self.state.pending[0]
            if label is None:
                time.sleep(0.002)
                continue
            time.sleep(self.print_time)
            with self.lock:
                if not self.state.pending or self.state.pending[0] is not label:
                    continue  # lost in a power cycle
                self.state.pending.pop(0)
                self.state.printed.append(label)
                self.state.label_count += 1
            if f.reset_after_print:
                f.reset_after_print = False
                self._drop_client(reset=True)


def main(argv: list[str] | None = None) -> int:
    """Run the fake printer until interrupted."""
    ap = argparse.ArgumentParser(description="A fake Zebra ZPL printer on loopback.")
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--paper-out", action="store_true", help="start with paper out")
    args = ap.parse_args(argv)
    fake = FakeZebra(port=args.port).start()
    fake.faults.paper_out = args.paper_out
    print(f"fake Zebra listening on 127.0.0.1:{fake.port}", flush=True)
    try:
        while True:
            time.sleep(1)
            with fake.lock:
                print(
                    f"received={len(fake.state.received)} printed={len(fake.state.printed)} "
                    f"pending={len(fake.state.pending)}",
                    flush=True,
                )
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
