"""Benchmark: recall push latency, central API call → every gateway refuses the lot.

Three real gateways (``traceway run``: ``gw-a`` at site A, ``gw-b`` and ``gw-b2`` at
site B), ``traceway-central serve`` (API + pusher) and an ``ingest`` worker as
subprocesses on a private mosquitto and a private PostgreSQL. ``--recalls`` recalls of
distinct lots in a row, each by ``POST /recalls``; each is timed from just before the
API call to the moment each gateway's ``cache/ack`` of the delta that carries it
reaches this process (an MQTT subscriber here; one monotonic clock for both ends).

Why the ack and not a probing scan: the gateway acks a delta only after its writer has
committed it (``CacheSync._apply_delta`` runs in the writer and waits), and the writer
handles scans in order, so every scan from the ack on is refused. A probe scan every few
milliseconds at three gateways would load this 2-core machine and quantise the figure
by the probe interval. The ack figure includes the ack's own way back through the
broker (~1 ms), so it is an upper bound. After each recall every gateway gets one real
scan of the lot, which must be refused ``lot_recalled`` (checked, not timed).

Prints p50/p99/max per gateway and over all; asserts nothing (a failed check is printed
and the exit code is 1). Run: ``.venv/bin/python bench/central_push.py [--recalls 30]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from central.db.cluster import PrivateCluster  # noqa: E402
from central.db.engine import migrate  # noqa: E402
from tests.central.procs import stop_all  # noqa: E402
from tests.central.test_two_sites_e2e import Gateway, central, wait_until, write_gateway  # noqa: E402
from tests.conftest import free_port, make_broker  # noqa: E402
from tests.gw_util import GatewayProcess, wait_listening  # noqa: E402
from tests.scenarios.site import LOT_GTIN, PRODUCTS, lot_code  # noqa: E402

PREFIX = "traceway/v1"
GATEWAYS = {"gw-a": "site-a", "gw-b": "site-b", "gw-b2": "site-b"}


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


class Watcher:
    """Subscribes to every gateway's cache acks and alerts; notes when each arrives."""

    def __init__(self, port: int) -> None:
        self.cv = threading.Condition()
        self.acks: dict[tuple[str, int], float] = {}  # (gateway, version) -> monotonic
        self.alerts: list[tuple[str, dict[str, Any]]] = []
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="bench-push-watcher",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([(f"{PREFIX}/+/+/cache/ack", 1), (f"{PREFIX}/+/+/alerts", 1)])
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        body = json.loads(msg.payload)
        gateway = msg.topic.split("/")[3]
        with self.cv:
            if msg.topic.endswith("/cache/ack"):
                if body.get("ok") and body.get("kind") == "delta":
                    self.acks.setdefault((gateway, int(body["version"])), now)
            else:
                self.alerts.append((gateway, body))
            self.cv.notify_all()

    def wait_acks(self, want: dict[str, int], timeout: float = 30) -> dict[str, float]:
        """When each gateway acked the version it was to get (monotonic seconds)."""
        with self.cv:
            ok = self.cv.wait_for(
                lambda: all((g, v) in self.acks for g, v in want.items()), timeout
            )
            if not ok:
                missing = [g for g, v in want.items() if (g, v) not in self.acks]
                raise RuntimeError(f"no ack from {missing} within {timeout} s")
            return {g: self.acks[(g, v)] for g, v in want.items()}

    def wait_alerts(self, count: int, timeout: float = 30) -> list[tuple[str, dict[str, Any]]]:
        with self.cv:
            self.cv.wait_for(lambda: len(self.alerts) >= count, timeout)
            return list(self.alerts)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recalls", type=int, default=30)
    args = ap.parse_args()
    failures: list[str] = []
    procs: list[subprocess.Popen[bytes]] = []
    gws: dict[str, Gateway] = {}
    with tempfile.TemporaryDirectory(prefix="traceway-bench-push-") as t:
        tmp = Path(t)
        tmp.chmod(0o755)
        cluster = PrivateCluster(tmp / "pg")
        cluster.start()
        broker = make_broker(tmp)
        broker.start()
        watcher: Watcher | None = None
        try:
            engine = create_engine(cluster.url)
            migrate(engine)
            api_port = free_port()
            cfg = tmp / "central.toml"
            cfg.write_text(
                f'[database]\nurl = "{cluster.url}"\n[broker]\nport = {broker.port}\n'
                f'client_id = "bench"\n[ingest]\nmax_wait_ms = 20\n[api]\nport = {api_port}\n'
            )
            lots = [f"R{k}" for k in range(1, args.recalls + 1)]
            (tmp / "products.csv").write_text(PRODUCTS)
            (tmp / "lots.csv").write_text(
                "gtin,lot,expiry,status\n"
                + "".join(f"{LOT_GTIN},{lot},2030-12-31,active\n" for lot in lots)
            )
            central(
                cfg, "import", "--products", str(tmp / "products.csv"),
                "--lots", str(tmp / "lots.csv"),
            )  # fmt: skip
            out = central(cfg, "token", "add", "--role", "recall-manager", "--name", "bench")
            token = out.splitlines()[1]
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            for name, cmd in (("ingest", ["ingest", "--worker", "1"]), ("serve", ["serve"])):
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "central", *cmd, "--config", str(cfg)],
                        stdout=subprocess.DEVNULL,
                        stderr=open(tmp / f"central-{name}.log", "ab"),  # noqa: SIM115
                        cwd=ROOT,
                        env=env,
                    )
                )
            wait_listening(api_port, timeout=60)
            watcher = Watcher(broker.port)
            for gid, site in GATEWAYS.items():
                gcfg, ports = write_gateway(
                    tmp, site, gid, broker.port,
                    {"dock": {"step": "receiving", "location": "DOCK"}},
                )  # fmt: skip
                gws[gid] = Gateway(site, gid, GatewayProcess(gcfg, tmp / f"{gid}.log"), ports)
                gws[gid].proc.start()
            for gw in gws.values():
                wait_listening(gw.ports["dock"], gw.proc, timeout=60)

            def versions() -> dict[str, int]:
                with engine.connect() as c:
                    rows = c.execute(text("SELECT gateway_id, version FROM cache_gateways"))
                    return {str(g): int(v) for g, v in rows if v is not None}

            wait_until("each gateway's first snapshot", lambda: len(versions()) == 3, 120)
            api = httpx.Client(
                base_url=f"http://127.0.0.1:{api_port}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            per_gateway: dict[str, list[float]] = {g: [] for g in GATEWAYS}
            slowest: list[float] = []
            api_ms: list[float] = []
            for k, lot in enumerate(lots):
                t0 = time.monotonic()
                r = api.post("/recalls", json={"gtin": LOT_GTIN, "lot": lot, "reason": "bench"})
                t_api = time.monotonic() - t0
                api_ms.append(t_api * 1000)
                if r.status_code != 201:
                    raise RuntimeError(f"POST /recalls: {r.status_code} {r.text}")
                sites: dict[str, int] = r.json()["sites"]
                acked = watcher.wait_acks({g: sites[s] for g, s in GATEWAYS.items()})
                for g, at in acked.items():
                    per_gateway[g].append((at - t0) * 1000)
                slowest.append((max(acked.values()) - t0) * 1000)
                # the next scan of the lot at each gateway must be refused
                n = len(watcher.alerts)
                for gw in gws.values():
                    gw.send("dock", lot_code(LOT_GTIN, lot))
                got = watcher.wait_alerts(n + 3)[n:]
                refused = {
                    g
                    for g, a in got
                    if a["decision"]["verdict"] == "reject"
                    and "lot_recalled" in [x["code"] for x in a["decision"]["reasons"]]
                }
                if refused != set(GATEWAYS):
                    failures.append(f"recall {k + 1} ({lot}): refused only at {sorted(refused)}")
                if k == 0:
                    print(f"first recall: API answered in {t_api * 1000:.0f} ms", flush=True)
            api.close()
            all_ms = [x for xs in per_gateway.values() for x in xs]
            print(
                f"recall push, {len(lots)} recalls in a row, 3 gateways at 2 sites "
                f"(API call → the gateway's ack of the applied delta):"
            )
            for g, xs in per_gateway.items():
                print(
                    f"  {g}: p50 {statistics.median(xs):.0f} ms, p99 {percentile(xs, 0.99):.0f} ms,"
                    f" max {max(xs):.0f} ms"
                )
            print(
                f"  every gateway: p50 {statistics.median(all_ms):.0f} ms, "
                f"p99 {percentile(all_ms, 0.99):.0f} ms; the last of the three per recall: "
                f"p50 {statistics.median(slowest):.0f} ms, p99 {percentile(slowest, 0.99):.0f} ms"
            )
            print(
                f"  of which the API's answer (recall committed): p50 "
                f"{statistics.median(api_ms):.0f} ms, p99 {percentile(api_ms, 0.99):.0f} ms"
            )
            print(
                f"  next scan refused lot_recalled at every gateway: "
                f"{len(lots) - len(failures)}/{len(lots)} recalls"
            )
            for f in failures:
                print("  FAILED:", f)
            engine.dispose()
        finally:
            for gw in gws.values():
                gw.close()
                gw.proc.stop()
            if watcher is not None:
                watcher.close()
            stop_all(procs)
            broker.stop()
            cluster.stop()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
