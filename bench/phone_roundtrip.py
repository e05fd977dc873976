"""Phone scanner round trip: scan sent on the WebSocket → verdict back, after the commit.

Runs ``traceway run`` as a subprocess with a phone scanner on loopback (no broker;
SQLite ``synchronous = FULL``), pairs a scripted phone (a P-256 key like the page's),
sends ``--scans`` unique serial scans one at a time, each after the previous verdict,
and prints the round-trip percentiles. Then ``--phones`` phones send at once, to show
the figure with several phones on one station.

    .venv/bin/python bench/phone_roundtrip.py --scans 300 --phones 4
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from drivers.scanners.phone.protocol import signed_challenge  # noqa: E402
from drivers.scanners.phone.registry import Registry  # noqa: E402

GTIN = "09506000134369"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sign(key: ec.EllipticCurvePrivateKey, nonce: str) -> str:
    r, s = decode_dss_signature(key.sign(signed_challenge(nonce), ec.ECDSA(hashes.SHA256())))
    return base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()


def pair_and_hello(stack: ExitStack, port: int, ca: Path, reg: Registry, name: str) -> Any:
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ctx = ssl.create_default_context(cafile=str(ca))
    url, origin = f"wss://127.0.0.1:{port}/ws", f"https://127.0.0.1:{port}"
    with connect(url, ssl=ctx, origin=origin) as ws:  # type: ignore[arg-type]
        nonce = json.loads(ws.recv())["nonce"]
        ws.send(
            json.dumps(
                {
                    "type": "pair",
                    "pair_token": reg.open_pairing(60),
                    "name": name,
                    "public_key": base64.b64encode(pub).decode(),
                    "sig": sign(key, nonce),
                }
            )
        )
        paired = json.loads(ws.recv())
    ws = stack.enter_context(connect(url, ssl=ctx, origin=origin))  # type: ignore[arg-type]
    nonce = json.loads(ws.recv())["nonce"]
    hello = {"device_id": paired["device_id"], "token": paired["token"]}
    ws.send(json.dumps({"type": "hello", **hello, "sig": sign(key, nonce)}))
    assert json.loads(ws.recv())["type"] == "welcome"
    return ws


def run_scans(ws: Any, prefix: str, n: int, out: list[float]) -> None:
    for i in range(n):
        t0 = time.perf_counter()
        ws.send(json.dumps({"type": "scan", "id": i, "text": f"]C101{GTIN}21{prefix}{i:06d}"}))
        while True:
            msg = json.loads(ws.recv(timeout=30))
            if msg.get("id") == i and msg["type"] in ("verdict", "not_sent"):
                break
        assert msg["type"] == "verdict", msg
        out.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.21)  # under the default 5 scans/s of one phone


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scans", type=int, default=200)
    ap.add_argument("--phones", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        cfg = Path(tmp) / "gw.toml"
        cfg.write_text(
            f"""
[gateway]
site = "bench"
id = "gw1"
[broker]
enabled = false
[storage]
path = "state/gw.db"
[stations.dock]
step = "receiving"
unknown_gtin = "accept"
[stations.dock.feedback]
console = false
[scanners.phones]
type = "phone"
station = "dock"
host = "127.0.0.1"
port = {port}
hostnames = ["127.0.0.1"]
pair_at_start = false
"""
        )
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        with open(Path(tmp) / "gw.log", "wb") as log:
            gw = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "run", "--config", str(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
        stack = ExitStack()
        try:
            folder = Path(tmp) / "state" / "phone-phones"
            deadline = time.monotonic() + 30
            while not (folder / "ca.pem").exists() or _closed(port):
                if time.monotonic() > deadline or gw.poll() is not None:
                    print((Path(tmp) / "gw.log").read_text()[-2000:])
                    return 1
                time.sleep(0.1)
            reg = Registry(folder / "devices.json")
            ws = pair_and_hello(stack, port, folder / "ca.pem", reg, "bench0")
            one: list[float] = []
            run_scans(ws, "A", args.scans, one)
            print(
                f"1 phone, {len(one)} scans: round trip p50 {pct(one, 50):.1f} ms, "
                f"p95 {pct(one, 95):.1f} ms, max {max(one):.1f} ms "
                f"(mean {statistics.mean(one):.1f})"
            )
            socks = [
                pair_and_hello(stack, port, folder / "ca.pem", reg, f"bench{i + 1}")
                for i in range(args.phones)
            ]
            many: list[list[float]] = [[] for _ in socks]
            threads = [
                threading.Thread(target=run_scans, args=(s, f"P{i}", args.scans // 2, many[i]))
                for i, s in enumerate(socks)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            flat = [x for xs in many for x in xs]
            print(
                f"{args.phones} phones at once, {len(flat)} scans: round trip p50 "
                f"{pct(flat, 50):.1f} ms, p95 {pct(flat, 95):.1f} ms, max {max(flat):.1f} ms"
            )
        finally:
            stack.close()
            gw.terminate()
            gw.wait(15)
    return 0


def _closed(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return False
    except OSError:
        return True


if __name__ == "__main__":
    raise SystemExit(main())
