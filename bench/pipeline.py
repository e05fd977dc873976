"""Benchmark: ``traceway run`` in its own process, measured from outside, as at a dock.

The default ("realistic") run starts a private mosquitto on a free loopback port and
``python -m gateway.cli run`` against it: INFO logging (to a file), a receiving station
with the duplicate window and case debounce at their defaults, and a cache imported with
``traceway cache import`` first — a lot-tracked product with ``--lots`` recurring lot
labels and a serial-tracked product with one expected serial per serial scan. The scans
alternate: a recurring lot label (another case of a known lot), a new serial.
A real MQTT subscriber (QoS 1, in this process) timestamps every event; latency is the
sender's write on the scanner socket → the subscriber's receipt.

Printed per run, then a table over all runs:

- RSS of every gateway process (parent, publisher child, anything else it started),
  idle and the peak under load (``/proc/<pid>/status``);
- send → receipt p50/p99 and CPU per event of every process (``/proc/<pid>/stat``
  utime + stime, with the kernel share) at 200 and 500 scans/s;
- capacity: a burst of scans, events/s until the subscriber has the last one (the mix,
  and every scan a new serial), and raw paho QoS 1 (window 100) to the same broker in
  the same run (to PUBACK and to the same subscriber), with the ratio. ``--rounds``
  (default 3) repeats the three, one after the other: the median of each and the
  median of the rounds' ratios (each round's bursts against its own raw paho figure),
  with the range; one burst of each moved the ratio by ±0.15 from run to run;
- broker outage: mosquitto stopped for ``--outage`` (+ a random fraction of a) seconds
  while scans go on; the time from the broker accepting connections again to the
  subscriber's first event.

``--best-case`` is the old, flattering set-up, clearly labelled: WARNING logging, empty
cache (``unknown_gtin = "accept"``), duplicate window 0.

    .venv/bin/python bench/pipeline.py [--runs 3] [--seconds 10] [--burst 5000]
    .venv/bin/python bench/pipeline.py --gateway-root /path/to/other/checkout  # before/after
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
SERIAL_GTIN = "09506000134369"  # serial-tracked
LOT_GTIN = "09506000134352"  # lot-tracked
EXPIRY = "300331"  # 2030-03-31: no near-expiry warnings
TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# -- broker -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0, alive: Callable[[], bool] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError("the process behind the port exited")
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"nothing listens on port {port}")


class Broker:
    """A private mosquitto that can be stopped and started again on the same port."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_inflight_messages 0\nmax_queued_messages 0\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen(
            [exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


# -- the subscriber ---------------------------------------------------------------------
class Subscriber:
    """QoS 1 subscriber that timestamps every message; reconnects every 50 ms."""

    def __init__(self, port: int, topics: list[str]) -> None:
        self.received: list[tuple[float, str, bytes]] = []  # (monotonic, topic, payload)
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.topics = topics
        c = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="bench-subscriber",
            protocol=mqtt.MQTTv5,
        )
        c.reconnect_delay_set(min_delay=0.05, max_delay=0.05)  # type: ignore[arg-type]
        c.on_connect = self._on_connect
        c.on_subscribe = lambda *a: self.subscribed.set()
        c.on_disconnect = lambda *a: self.subscribed.clear()
        c.on_message = self._on_message
        self.client = c
        self.port = port

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        self.received.append((now, msg.topic, msg.payload))

    def start(self) -> None:
        self.client.connect_async("127.0.0.1", self.port)
        self.client.loop_start()
        if not self.subscribed.wait(20):
            raise RuntimeError("subscriber did not connect")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def mark(self) -> int:
        return len(self.received)

    def wait_count(self, topic_suffix: str, start: int, n: int, timeout: float) -> int:
        """Wait until ``n`` messages on ``…topic_suffix`` arrived after index ``start``."""
        deadline = time.monotonic() + timeout
        seen, i = 0, start
        while time.monotonic() < deadline:
            end = len(self.received)
            for k in range(i, end):
                if self.received[k][1].endswith(topic_suffix):
                    seen += 1
            i = end
            if seen >= n:
                return seen
            time.sleep(0.005)
        return seen


# -- the gateway ------------------------------------------------------------------------
@dataclass
class Dataset:
    lots: list[str]
    serials: list[str]
    cursor: int = 0  # next unused serial

    def take_serials(self, n: int) -> list[str]:
        out = self.serials[self.cursor : self.cursor + n]
        if len(out) < n:
            raise RuntimeError("not enough expected serials imported: raise --serials")
        self.cursor += n
        return out


def write_dataset(d: Path, n_lots: int, n_serials: int) -> Dataset:
    lots = [f"L{k:05d}" for k in range(n_lots)]
    serials = [f"S{k:08d}" for k in range(n_serials)]
    (d / "products.csv").write_text(
        "gtin,tracking,description\n"
        f"{LOT_GTIN},lot,bench lot product\n{SERIAL_GTIN},serial,bench serial product\n"
    )
    with open(d / "lots.csv", "w") as f:
        f.write("gtin,lot,expiry,status\n")
        f.writelines(f"{LOT_GTIN},{lot},20{EXPIRY[:2]}-03-31,active\n" for lot in lots)
    with open(d / "serials.csv", "w") as f:
        f.write("gtin,serial,state\n")
        f.writelines(f"{SERIAL_GTIN},{s},expected\n" for s in serials)
    return Dataset(lots, serials)


def lot_code(lot: str) -> str:
    return f"]C101{LOT_GTIN}17{EXPIRY}\x1d10{lot}"


def serial_code(serial: str) -> str:
    return f"]C101{SERIAL_GTIN}21{serial}"


def write_config(
    d: Path, broker_port: int, scan_port: int, best_case: bool, commit_delay_ms: float | None = None
) -> Path:
    station = (
        'unknown_gtin = "accept"\nduplicate_window = 0\n'
        if best_case
        else 'location = "DOCK-1"\nsource = "SUPPLIER-1"\n'
    )
    cfg = d / "gateway.toml"
    cfg.write_text(
        f"""
[gateway]
site = "bench"
id = "gw"
[broker]
host = "127.0.0.1"
port = {broker_port}
[storage]
path = "{d / "bench.db"}"
{"" if commit_delay_ms is None else f"commit_delay_ms = {commit_delay_ms}"}
[logging]
level = "{"WARNING" if best_case else "INFO"}"
[stations.dock]
step = "receiving"
{station}
[stations.dock.feedback]
console = false
[scanners.tunnel]
type = "tcp"
station = "dock"
mode = "listen"
host = "127.0.0.1"
port = {scan_port}
"""
    )
    return cfg


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


class Gateway:
    """``traceway run`` as a child of the bench; its log goes to a file."""

    def __init__(self, root: Path, config: Path, log: Path) -> None:
        self.root, self.config, self.log = root, config, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, scan_port: int) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env=env,
            )
        wait_port(scan_port, 60, alive=lambda: self.proc is not None and self.proc.poll() is None)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def pids(self) -> list[int]:
        """The gateway and every process below it (publisher, resource tracker, …)."""
        assert self.proc is not None
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            try:
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(x) for x in (task / "children").read_text().split()]
            except OSError:
                continue
        return out


def proc_name(pid: int, main_pid: int) -> str:
    if pid == main_pid:
        return "main"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "gone"
    if b"resource_tracker" in cmd:
        return "resource tracker"
    if b"publisher" in cmd or b"spawn_main" in cmd:
        return "publisher"
    return "other"


def cpu_ticks(pids: list[int]) -> tuple[int, int]:
    """(user, system) clock ticks of these processes, all threads."""
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11])
        system += int(fields[12])
    return user, system


def rss_kb(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
    except OSError:
        return 0


# -- driving scans ----------------------------------------------------------------------
class Pusher:
    """One scanner connection; records the send time of every scan."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sent: list[float] = []

    def burst(self, codes: list[str]) -> None:
        data = b"".join(c.encode() + b"\r\n" for c in codes)
        now = time.monotonic()
        self.sock.sendall(data)
        self.sent.extend([now] * len(codes))

    def paced(self, codes: list[str], rate: float, stop: threading.Event | None = None) -> None:
        t0 = time.monotonic()
        for i, c in enumerate(codes):
            if stop is not None and stop.is_set():
                return
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.sent.append(time.monotonic())
            self.sock.sendall(c.encode() + b"\r\n")

    def close(self) -> None:
        self.sock.close()


def mixed(ds: Dataset, n: int, lot_start: int) -> list[str]:
    """Alternating: a recurring lot label (cycling over the imported lots), a new serial."""
    serials = iter(ds.take_serials(n // 2))
    codes = []
    for i in range(n):
        if i % 2 == 0:
            codes.append(lot_code(ds.lots[(lot_start + i // 2) % len(ds.lots)]))
        else:
            codes.append(serial_code(next(serials)))
    return codes


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


@dataclass
class Phase:
    """What one phase measured."""

    events: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    cpu_ms_per_event: float = 0.0
    kernel_share: float = 0.0
    verdicts: dict[str, int] = field(default_factory=dict)
    rss_peak_kb: dict[str, int] = field(default_factory=dict)
    cpu_split: dict[str, float] = field(default_factory=dict)  # ms per event, per process
    unmatched: int = 0  # messages whose seq/raw did not match a scan of the phase


class Rig:
    """Broker + gateway + subscriber for one run."""

    def __init__(self, tmp: Path, root: Path, args: argparse.Namespace) -> None:
        self.tmp, self.root, self.args = tmp, root, args
        self.broker = Broker(tmp)
        self.scan_port = free_port()
        self.gw_dir = tmp / "gw"
        self.gw_dir.mkdir()
        self.gw: Gateway | None = None
        self.sub: Subscriber | None = None
        self.lot_cursor = 0
        self.events_seen = 0  # events consumed so far (they arrive in seq order)
        self.import_seconds = 0.0

    def setup(self) -> None:
        a = self.args
        self.broker.start()
        cfg = write_config(
            self.gw_dir, self.broker.port, self.scan_port, a.best_case, a.commit_delay_ms
        )
        if a.best_case:
            self.ds = Dataset(
                [f"L{k:05d}" for k in range(a.lots)], [f"S{k:08d}" for k in range(a.serials)]
            )
        else:
            self.ds = write_dataset(self.gw_dir, a.lots, a.serials)
            t0 = time.monotonic()
            r = cli(
                self.root,
                "cache", "import", "--config", str(cfg),
                "--products", str(self.gw_dir / "products.csv"),
                "--lots", str(self.gw_dir / "lots.csv"),
                "--serials", str(self.gw_dir / "serials.csv"),
            )  # fmt: skip
            self.import_seconds = time.monotonic() - t0
            if r.returncode != 0:
                raise RuntimeError(f"cache import failed: {r.stdout}{r.stderr}")
        root = "traceway/v1/bench/gw"
        self.sub = Subscriber(self.broker.port, [f"{root}/events", f"{root}/alerts", "bench/raw"])
        self.sub.start()
        self.gw = Gateway(self.root, cfg, self.gw_dir / "gateway.log")
        self.gw.start(self.scan_port)
        self.pusher = Pusher(self.scan_port)
        # warm-up: a few scans through everything (first imports, connection, caches)
        self.run_phase(mixed(self.ds, 20, self.lot_cursor), rate=50)

    def teardown(self) -> None:
        with_suppress(lambda: self.pusher.close())
        if self.gw is not None:
            self.gw.stop()
        if self.sub is not None:
            with_suppress(self.sub.stop)
        self.broker.stop()

    # -- measuring ----------------------------------------------------------------------
    def processes(self) -> dict[int, str]:
        assert self.gw is not None and self.gw.proc is not None
        main = self.gw.proc.pid
        return {pid: proc_name(pid, main) for pid in self.gw.pids()}

    def rss(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for pid, name in self.processes().items():
            out[name] = out.get(name, 0) + rss_kb(pid)
        return out

    def run_phase(self, codes: list[str], rate: float | None) -> Phase:
        """Send ``codes`` (paced, or all at once) and wait for every event to arrive."""
        assert self.sub is not None
        time.sleep(1.0)  # > case_debounce: a lot label of the last phase is another case now
        self.lot_cursor += (len(codes) + 1) // 2
        procs = self.processes()
        pids = list(procs)
        per0 = {pid: sum(cpu_ticks([pid])) for pid in pids}
        peak: dict[str, int] = {}
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.2):
                for k, v in self.rss().items():
                    peak[k] = max(peak.get(k, 0), v)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        mark = self.sub.mark()
        first_sent = len(self.pusher.sent)
        u0, s0 = cpu_ticks(pids)
        t0 = time.monotonic()
        if rate is None:
            self.pusher.burst(codes)
        else:
            threading.Thread(target=self.pusher.paced, args=(codes, rate), daemon=True).start()
        got = self.sub.wait_count("", mark, len(codes), timeout=60 + len(codes) / 200)
        elapsed = time.monotonic() - t0
        u1, s1 = cpu_ticks(pids)
        per1 = {pid: sum(cpu_ticks([pid])) for pid in pids}
        sampling.set()
        sampler.join()
        if got < len(codes):
            raise RuntimeError(f"only {got}/{len(codes)} events arrived; see {self.gw_dir}")
        ph = Phase(events=len(codes), seconds=elapsed, rss_peak_kb=peak)
        cpu = (u1 - u0 + s1 - s0) / TICK
        ph.cpu_ms_per_event = cpu * 1000 / len(codes)
        ph.kernel_share = (s1 - s0) / max(1, u1 - u0 + s1 - s0)
        for pid, name in procs.items():
            ms = (per1[pid] - per0[pid]) / TICK * 1000 / len(codes)
            ph.cpu_split[name] = ph.cpu_split.get(name, 0.0) + ms
        sent = self.pusher.sent[first_sent:]
        # Events and alerts carry the gateway's seq, assigned in scan order: message with
        # seq k is the answer to the k-th scan sent since the gateway started.
        for when, topic, payload in self.sub.received[mark:]:
            if topic == "bench/raw":
                continue
            body = json.loads(payload)
            decision = body.get("decision") or {}
            verdict = str(decision.get("verdict", topic.rsplit("/", 1)[1]))
            reasons = [str(r.get("code", r)) for r in decision.get("reasons", [])]
            verdict = "+".join([verdict, *reasons])
            ph.verdicts[verdict] = ph.verdicts.get(verdict, 0) + 1
            k = int(body.get("seq", 0)) - 1 - first_sent
            raw = (body.get("scan") or {}).get("raw")
            if 0 <= k < len(sent) and raw == codes[k]:
                ph.latencies_ms.append((when - sent[k]) * 1000)
            else:
                ph.unmatched += 1
        return ph

    def raw_paho(self, n: int, window: int = 100) -> float:
        """Raw paho QoS 1 to the same broker and the same subscriber: msg/s."""
        assert self.sub is not None
        payload = b"x" * 600  # about the size of an event payload
        inflight = threading.BoundedSemaphore(window)
        acked = threading.Semaphore(0)

        def on_pub(*_: Any) -> None:
            inflight.release()
            acked.release()

        c = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="bench-raw",
            protocol=mqtt.MQTTv5,
        )
        c.max_inflight_messages_set(window)
        c.on_publish = on_pub
        c.connect("127.0.0.1", self.broker.port)
        c.loop_start()
        time.sleep(0.3)
        mark = self.sub.mark()
        t0 = time.monotonic()
        for _ in range(n):
            inflight.acquire()
            c.publish("bench/raw", payload, qos=1)
        for _ in range(n):
            acked.acquire()
        got = self.sub.wait_count("bench/raw", mark, n, 60)
        elapsed = time.monotonic() - t0
        c.disconnect()
        c.loop_stop()
        if got < n:
            raise RuntimeError(f"raw paho: subscriber got {got}/{n}")
        return n / elapsed

    def outage(self, seconds: float, rate: float = 100.0) -> tuple[float, float]:
        """Broker down ``seconds`` while scans go on: (back → first event, back → all)."""
        assert self.sub is not None
        n = int(rate * (seconds + 7))
        codes = [serial_code(s) for s in self.ds.take_serials(n)]
        stop = threading.Event()
        mark = self.sub.mark()
        pusher = threading.Thread(target=self.pusher.paced, args=(codes, rate, stop), daemon=True)
        pusher.start()
        time.sleep(1.0)
        self.broker.stop()
        down_at = self.sub.mark()
        # a random fraction: the broker's return is not in step with the gateway's retries
        time.sleep(seconds + random.random())
        self.broker.start()  # returns when the port accepts connections
        back = time.monotonic()
        pusher.join()
        self.sub.wait_count("", mark, n, 60)
        after = [t for t, topic, _ in self.sub.received[down_at:] if t >= back]
        if not after:
            raise RuntimeError("no event after the outage")
        return after[0] - back, max(after) - back


def with_suppress(fn: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):
        fn()


# -- one run ----------------------------------------------------------------------------
def one_run(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    res: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as td:
        rig = Rig(Path(td), root, args)
        try:
            rig.setup()
            res["import_s"] = rig.import_seconds
            time.sleep(2.0)
            res["rss_idle"] = rig.rss()
            for rate in (200, 500):
                n = int(rate * args.seconds)
                res[f"rate{rate}"] = rig.run_phase(mixed(rig.ds, n, rig.lot_cursor), rate)
            res["cap"] = []
            for _ in range(args.rounds):
                mix = rig.run_phase(mixed(rig.ds, args.burst, rig.lot_cursor), None)
                raw = rig.raw_paho(args.burst * 2)
                codes = [serial_code(s) for s in rig.ds.take_serials(args.burst)]
                res["cap"].append((mix, rig.run_phase(codes, None), raw))
            if args.outage > 0:
                res["outage"] = rig.outage(args.outage)
            log = (rig.gw_dir / "gateway.log").read_text(errors="replace")
            res["log_lines"] = log.count("\n")
            bad = [ln for ln in log.splitlines() if " ERROR " in ln or "Traceback" in ln]
            if bad:
                print("gateway log errors:\n" + "\n".join(bad[:10]), file=sys.stderr)
        finally:
            rig.teardown()
    return res


def fmt_rss(rss: dict[str, int]) -> str:
    total = sum(rss.values()) / 1024
    parts = ", ".join(f"{k} {v / 1024:.0f}" for k, v in sorted(rss.items()))
    return f"{total:.1f} MB ({parts})"


def spread(values: list[float], fmt: str) -> str:
    """The median and, for more than one value, the range: ``0.84 (0.79–0.88)``."""
    mid = fmt.format(statistics.median(values))
    if len(values) == 1:
        return mid
    return f"{mid} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def report(res: dict[str, Any], label: str) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if res.get("import_s"):
        rows.append(("cache import (s)", f"{res['import_s']:.1f}"))
    rows.append(("RSS idle, all processes", fmt_rss(res["rss_idle"])))
    peak = res["rate500"].rss_peak_kb
    rows.append(("RSS peak at 500/s", fmt_rss(peak)))
    for rate in (200, 500):
        ph: Phase = res[f"rate{rate}"]
        rows.append(
            (
                f"send→subscriber @ {rate}/s",
                f"p50 {pct(ph.latencies_ms, 50):.1f} ms, p99 {pct(ph.latencies_ms, 99):.1f} ms,"
                f" max {max(ph.latencies_ms):.0f} ms",
            )
        )
        rows.append(
            (
                f"CPU per event @ {rate}/s (all)",
                f"{ph.cpu_ms_per_event:.2f} ms ({ph.kernel_share * 100:.0f} % kernel; "
                + ", ".join(f"{k} {v:.2f}" for k, v in sorted(ph.cpu_split.items()))
                + ")",
            )
        )
    cap: list[tuple[Phase, Phase, float]] = res["cap"]
    mixes = [m.events / m.seconds for m, _, _ in cap]
    serials = [s.events / s.seconds for _, s, _ in cap]
    raws = [r for _, _, r in cap]
    rows.append(("capacity, mix (events/s)", spread(mixes, "{:.0f}")))
    rows.append(("capacity, new serials (events/s)", spread(serials, "{:.0f}")))
    rows.append(("raw paho QoS 1 win 100 (msg/s)", spread(raws, "{:.0f}")))
    rows.append(
        (
            "ratio capacity / raw",
            spread([m / r for m, r in zip(mixes, raws, strict=True)], "{:.2f}")
            + "; new serials "
            + spread([s / r for s, r in zip(serials, raws, strict=True)], "{:.2f}"),
        )
    )
    if "outage" in res:
        first, last = res["outage"]
        rows.append(("broker back → first event", f"{first:.2f} s (backlog done {last:.1f} s)"))
    verdicts: dict[str, int] = {}
    phases: list[Phase] = [res["rate200"], res["rate500"]]
    phases += [ph for m, s, _ in cap for ph in (m, s)]
    for ph in phases:
        for verdict, count in ph.verdicts.items():
            verdicts[verdict] = verdicts.get(verdict, 0) + count
    unmatched = sum(ph.unmatched for ph in phases)
    rows.append(("verdicts", ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items()))))
    rows.append(("latency samples not matched to a scan", str(unmatched)))
    print(f"\n== {label}")
    for k, v in rows:
        print(f"  {k:<34} {v}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=3, help="independent runs (fresh broker, gateway)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each fixed-rate phase")
    ap.add_argument("--burst", type=int, default=5000, help="scans per capacity burst")
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="capacity rounds per run (a mix burst, raw paho, a new-serials burst)",
    )
    ap.add_argument(
        "--lots", type=int, default=2500, help="distinct recurring lot labels (imported)"
    )
    ap.add_argument("--serials", type=int, default=0, help="expected serials (default: enough)")
    ap.add_argument("--outage", type=float, default=10.0, help="broker outage, s (0: none)")
    ap.add_argument(
        "--commit-delay-ms",
        type=float,
        default=None,
        help="storage.commit_delay_ms for the gateway (default: the gateway's default)",
    )
    ap.add_argument(
        "--best-case",
        action="store_true",
        help="the flattering set-up: WARNING logging, empty cache, no duplicate window",
    )
    ap.add_argument(
        "--gateway-root",
        type=Path,
        default=ROOT,
        help="run the gateway from another checkout (before/after comparisons)",
    )
    args = ap.parse_args()
    if args.serials <= 0:
        args.serials = int(
            (200 + 500) * args.seconds / 2
            + args.burst * 1.5 * args.rounds
            + 100 * (args.outage + 7)
            + 100
        )
    if 2 * args.lots < args.burst:
        print("note: --lots below burst/2: lot labels repeat within a burst (case debounce)")
    label = (
        "BEST CASE (WARNING log, empty cache, no duplicate window)"
        if args.best_case
        else ("realistic: traceway run, INFO log, populated cache, default duplicate window")
    )
    if args.commit_delay_ms is not None:
        label += f", commit_delay_ms = {args.commit_delay_ms:g}"
    print(f"{label}; gateway from {args.gateway_root}; load {os.getloadavg()[0]:.2f}")
    results = []
    for i in range(args.runs):
        res = one_run(args.gateway_root.resolve(), args)
        results.append(report(res, f"run {i + 1}/{args.runs}"))
    print(f"\n== table ({args.runs} runs; load avg now {os.getloadavg()[0]:.2f})")
    print("| figure | " + " | ".join(f"run {i + 1}" for i in range(len(results))) + " |")
    print("|---|" + "---|" * len(results))
    for j, (name, _) in enumerate(results[0]):
        print(f"| {name} | " + " | ".join(r[j][1] for r in results) + " |")


if __name__ == "__main__":
    main()
