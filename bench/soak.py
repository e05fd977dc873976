"""Soak: the gateway under steady load with a flapping broker; memory must stay flat.

Runs ``traceway run`` as a subprocess with a TCP scanner, pushes unique serial scans at
``--rate`` per second for ``--minutes``, and stops/starts a private mosquitto every
``--flap-period`` seconds (down for ``--flap-down`` seconds). Prints the gateway's RSS
(``/proc/PID/status`` VmRSS) at start, every minute and at the end, plus log, database
and outbox figures. Exits 1 when RSS grew more than ``--max-growth-mb`` over the
baseline (taken after ``--warmup`` seconds), when the outbox did not drain, when the
gateway died, or when the log grew by more than ``--max-log-bytes-per-scan``.

    .venv/bin/python bench/soak.py --minutes 30 --rate 200
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GTIN = "09506000134369"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in kB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Mosquitto:
    """A private broker that can be stopped and started again on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 0\n"
        )
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                [exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=err
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    @property
    def up(self) -> bool:
        return self.proc is not None


class Pusher(threading.Thread):
    """Pushes CR-LF framed unique serial scans at a steady rate; reconnects when needed."""

    def __init__(self, port: int, rate: float) -> None:
        super().__init__(name="pusher", daemon=True)
        self.port, self.rate = port, rate
        self.sent = 0
        self.halt = threading.Event()

    def run(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        time.sleep(0.1)
        t0 = time.monotonic()
        while not self.halt.is_set():
            due = int((time.monotonic() - t0) * self.rate)
            burst = b""
            while self.sent < due:
                burst += f"]C101{GTIN}21S{self.sent:09d}\r\n".encode()
                self.sent += 1
            if burst:
                sock.sendall(burst)
            time.sleep(0.01)
        sock.close()


def db_figures(db: Path) -> tuple[int, int]:
    """(rows in the outbox, unsent rows)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        total = con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        depth = con.execute("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL").fetchone()[0]
        return int(total), int(depth)
    finally:
        con.close()


def db_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.exists())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=200.0, help="scans per second")
    ap.add_argument("--flap-period", type=float, default=60.0, help="seconds between outages")
    ap.add_argument("--flap-down", type=float, default=10.0, help="seconds the broker is down")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds before the baseline")
    ap.add_argument("--max-growth-mb", type=float, default=25.0)
    ap.add_argument("--max-log-bytes-per-scan", type=float, default=400.0)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="traceway-soak-"))
    broker = Mosquitto(work)
    broker.start()
    scan_port = free_port()
    cfg = work / "gateway.toml"
    cfg.write_text(
        f"""
[gateway]
site = "soak"
id = "gw1"

[broker]
host = "127.0.0.1"
port = {broker.port}
reconnect_max_delay = 2
keepalive = 5

[storage]
path = "state/gw.db"

[stations.dock]
step = "receiving"
unknown_gtin = "accept"
duplicate_window = 0

[scanners.tunnel]
type = "tcp"
station = "dock"
mode = "listen"
host = "127.0.0.1"
port = {scan_port}
"""
    )
    db = work / "state" / "gw.db"
    log = work / "gw.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "ab") as out:
        gw = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(cfg)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    failures: list[str] = []
    pusher = Pusher(scan_port, args.rate)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", scan_port), timeout=0.2).close()
                break
            except OSError:
                if gw.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"gateway did not start:\n{log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        rss_start = rss_kb(gw.pid)
        print(
            f"soak: {args.minutes:g} min at {args.rate:g} scans/s, broker down "
            f"{args.flap_down:g} s every {args.flap_period:g} s; work dir {work}",
            flush=True,
        )
        print(f"RSS start: {rss_start / 1024:.1f} MB (pid {gw.pid})", flush=True)
        pusher.start()
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        next_flap = t0 + args.flap_period
        up_again = 0.0
        next_report = t0 + 60
        baseline: int | None = None
        flaps = 0
        peak = rss_start
        while time.monotonic() < end:
            now = time.monotonic()
            if gw.poll() is not None:
                failures.append(f"gateway exited with {gw.returncode}")
                break
            if broker.up and now >= next_flap:
                broker.stop()
                flaps += 1
                up_again = now + args.flap_down
                next_flap = now + args.flap_period
            elif not broker.up and now >= up_again:
                broker.start()
            if baseline is None and now - t0 >= min(args.warmup, args.minutes * 60 / 2):
                baseline = rss_kb(gw.pid)
                print(f"RSS baseline after warm-up: {baseline / 1024:.1f} MB", flush=True)
            peak = max(peak, rss_kb(gw.pid))
            if now >= next_report:
                next_report += 60
                total, depth = db_figures(db)
                print(
                    f"[{(now - t0) / 60:4.1f} min] RSS {rss_kb(gw.pid) / 1024:.1f} MB, "
                    f"pushed {pusher.sent}, committed {total}, outbox {depth}, "
                    f"broker {'up' if broker.up else 'DOWN'}, log {log.stat().st_size / 1e6:.1f} MB,"
                    f" db {db_bytes(db) / 1e6:.1f} MB",
                    flush=True,
                )
            time.sleep(0.5)
        pusher.halt.set()
        pusher.join(10)
        if not broker.up:
            broker.start()
        drain_deadline = time.monotonic() + 120
        total, depth = db_figures(db)
        while time.monotonic() < drain_deadline:
            total, depth = db_figures(db)
            if depth == 0 and total >= pusher.sent:
                break
            time.sleep(0.5)
        rss_end = rss_kb(gw.pid)
        elapsed = time.monotonic() - t0
        if depth != 0:
            failures.append(f"outbox did not drain: {depth} unsent")
        if total != pusher.sent:
            failures.append(f"{pusher.sent} scans pushed but {total} committed")
    finally:
        pusher.halt.set()
        if gw.poll() is None:
            gw.send_signal(signal.SIGTERM)
            try:
                gw.wait(30)
            except subprocess.TimeoutExpired:
                gw.kill()
                gw.wait()
                failures.append("gateway did not stop on SIGTERM")
        broker.stop()
    log_text = log.read_text(errors="replace")
    lines = log_text.splitlines()
    per_scan = [ln for ln in lines if " ACCEPT " in ln or " REJECT " in ln or " WARN " in ln]
    other = len(lines) - len(per_scan)
    log_bytes = log.stat().st_size
    base = baseline or rss_start
    growth_mb = (rss_end - base) / 1024
    print(
        f"RSS end: {rss_end / 1024:.1f} MB (baseline {base / 1024:.1f} MB, peak {peak / 1024:.1f}"
        f" MB, growth {growth_mb:+.1f} MB)"
    )
    print(
        f"ran {elapsed / 60:.1f} min: {pusher.sent} scans pushed ({pusher.sent / elapsed:.0f}/s), "
        f"{total} committed, {flaps} broker outages, outbox depth at end {depth}"
    )
    print(
        f"log: {log_bytes / 1e6:.1f} MB, {len(lines)} lines ({log_bytes / max(1, pusher.sent):.0f} "
        f"bytes/scan); {other} lines not about a single scan ({other / max(1, flaps):.1f} per outage)"
    )
    print(f"database: {db_bytes(db) / 1e6:.1f} MB for {total} outbox rows")
    if growth_mb > args.max_growth_mb:
        failures.append(f"RSS grew {growth_mb:.1f} MB (> {args.max_growth_mb:g} MB)")
    if log_bytes / max(1, pusher.sent) > args.max_log_bytes_per_scan:
        failures.append("log volume per scan above the limit")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print(f"FAIL: {f}")
    print("soak: OK" if not failures else "soak: FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
