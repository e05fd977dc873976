"""Benchmark: scans through the running pipeline (TCP reader → commit → PUBACK).

Prints, against a private mosquitto on a free loopback port:
  1. throughput: N scans pushed as fast as possible, events/s until the last PUBACK;
  2. scan-to-commit latency p50/p99 at a fixed offered rate (default 500 scans/s);
  3. raw paho QoS 1 publish throughput to the same broker with a send window of 100,
     and the ratio pipeline / raw.

    .venv/bin/python bench/pipeline.py [--scans 5000] [--rate 500] [--seconds 5]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config import parse_config
from gateway.daemon import Gateway
from gateway.outcome import Outcome

GTIN = "09506000134369"
LOT_GTIN = "09506000134352"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_inflight_messages 0\nmax_queued_messages 0\n"
    )
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("mosquitto did not start")


def make_gateway(tmp: Path, broker_port: int, scan_port: int, sync: str) -> Gateway:
    text = f"""
[gateway]
site = "bench"
id = "gw"
[broker]
port = {broker_port}
max_inflight = 100
[storage]
path = "{tmp / "bench.db"}"
synchronous = "{sync}"
[stations.dock]
step = "receiving"
unknown_gtin = "accept"
duplicate_window = 0
[stations.dock.feedback]
console = false
[scanners.tunnel]
type = "tcp"
station = "dock"
mode = "listen"
port = {scan_port}
"""
    return Gateway(parse_config(text, "bench.toml"))


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def push(port: int, codes: list[str], rate: float | None) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    t0 = time.perf_counter()
    if rate is None:
        sock.sendall(b"".join(c.encode() + b"\r\n" for c in codes))
    else:
        for i, c in enumerate(codes):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sock.sendall(c.encode() + b"\r\n")
    time.sleep(0.2)
    sock.close()


def make_codes(n: int, distinct: int, tag: str) -> list[str]:
    """``distinct`` = 0: every scan a new serial; else lot labels that recur (cases of a lot)."""
    if distinct <= 0:
        return [f"]C101{GTIN}21{tag[:2]}{i:07d}" for i in range(n)]
    labels = [f"]C101{LOT_GTIN}17300331\x1d10{tag[:2]}{k:04d}" for k in range(distinct)]
    return [labels[i % distinct] for i in range(n)]


def run_pipeline(
    tmp: Path,
    broker_port: int,
    n: int,
    rate: float | None,
    sync: str,
    tag: str,
    distinct: int = 0,
) -> tuple[float, list[float]]:
    scan_port = free_port()
    d = tmp / tag
    d.mkdir()
    gw = make_gateway(d, broker_port, scan_port, sync)
    latencies: list[float] = []
    done = threading.Event()
    orig = gw._committed

    def committed(outcomes: list[Outcome]) -> None:
        now = time.monotonic()
        latencies.extend(now - o.scan.monotonic for o in outcomes)
        orig(outcomes)

    gw.writer.on_committed = committed
    gw.start()
    assert gw.publisher is not None
    while not gw.publisher.connected:
        time.sleep(0.01)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", scan_port), 0.1).close()
            break
        except OSError:
            time.sleep(0.02)
    time.sleep(0.2)
    codes = make_codes(n, distinct, tag)
    t0 = time.perf_counter()
    threading.Thread(target=push, args=(scan_port, codes, rate), daemon=True).start()
    deadline = time.monotonic() + 120
    while gw.publisher.stats.published < n and time.monotonic() < deadline:
        time.sleep(0.002)
    elapsed = time.perf_counter() - t0
    done.set()
    published = gw.publisher.stats.published
    gw.stop()
    if published < n:
        raise RuntimeError(f"only {published}/{n} events acknowledged")
    return n / elapsed, latencies


def raw_paho(port: int, n: int, window: int = 100) -> float:
    payload = b"x" * 600  # about the size of an event payload
    acked = threading.Semaphore(0)
    c = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="bench-raw",
        protocol=mqtt.MQTTv5,
    )
    c.max_inflight_messages_set(window)
    c.on_publish = lambda *a: acked.release()
    c.connect("127.0.0.1", port)
    c.loop_start()
    time.sleep(0.2)
    inflight = threading.BoundedSemaphore(window)
    orig_release = acked.release

    def on_pub(*a: object) -> None:
        inflight.release()
        orig_release()

    c.on_publish = on_pub
    t0 = time.perf_counter()
    for _ in range(n):
        inflight.acquire()
        c.publish("bench/raw", payload, qos=1)
    for _ in range(n):
        acked.acquire()
    elapsed = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scans", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of the fixed-rate run")
    ap.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    ap.add_argument(
        "--distinct",
        type=int,
        default=50,
        help="distinct lot labels that recur (0: every scan a new serial, no cache hits)",
    )
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        broker, port = start_broker(tmp)
        try:
            eps, lat_burst = run_pipeline(
                tmp, port, args.scans, None, args.synchronous, "burst", args.distinct
            )
            eps_unique, _ = run_pipeline(tmp, port, args.scans, None, args.synchronous, "uniq", 0)
            n_rate = int(args.rate * args.seconds)
            _, lat = run_pipeline(
                tmp, port, n_rate, args.rate, args.synchronous, "rate", args.distinct
            )
            raw = raw_paho(port, args.scans)
        finally:
            broker.terminate()
            broker.wait()
    ms = [x * 1000 for x in lat]
    print(
        f"pipeline throughput   : {eps:8.0f} events/s  ({args.scans} scans, TCP reader → PUBACK, synchronous={args.synchronous})"
    )
    print(
        f"burst scan→commit     : p50 {pct([x * 1000 for x in lat_burst], 50):.2f} ms, p99 {pct([x * 1000 for x in lat_burst], 99):.2f} ms (all {args.scans} offered at once)"
    )
    print(
        f"scan→commit @ {args.rate:.0f}/s  : p50 {pct(ms, 50):.2f} ms, p99 {pct(ms, 99):.2f} ms, max {max(ms):.2f} ms  ({len(ms)} scans)"
    )
    print(f"raw paho QoS1 (win 100): {raw:8.0f} msg/s")
    print(
        f"ratio pipeline/raw    : {eps / raw:8.2f}   (goal ≥ 0.5; unique scans: {eps_unique / raw:.2f})"
    )
    print(f"mean scan→commit @rate: {statistics.fmean(ms):.2f} ms")


if __name__ == "__main__":
    main()
