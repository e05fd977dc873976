"""Benchmark: central ingest events/s (private mosquitto + private PostgreSQL).

Publishes ``--events`` movement events from four gateways (QoS 1, as gateways do) to a
private mosquitto, with ``python -m central ingest`` workers (1, then 2) on one shared
subscription, and prints events/s from the first publish to the last commit. Prints
figures; asserts nothing. Run: ``.venv/bin/python bench/central.py [--events 10000]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from central.db.cluster import PrivateCluster  # noqa: E402
from central.db.engine import migrate  # noqa: E402
from tests.central.test_ingest import Publisher, Worker, stream, topics, write_config  # noqa: E402
from tests.conftest import make_broker  # noqa: E402


def run(events: int, workers: int) -> float:
    with tempfile.TemporaryDirectory(prefix="traceway-bench-") as t:
        tmp = Path(t)
        tmp.chmod(0o755)
        cluster = PrivateCluster(tmp / "pg")
        cluster.start()
        broker = make_broker(tmp)
        broker.start()
        engine = create_engine(cluster.url)
        migrate(engine)
        cfg = write_config(tmp, cluster.url, broker.port, max_batch=500)
        ws = [Worker(cfg, str(i + 1)).start() for i in range(workers)]
        pub = Publisher(broker.port)
        per = events // 4
        batches = [
            (f"gw-{g}", f"site-{g % 2}", stream(per, f"gw-{g}", f"site-{g % 2}")) for g in range(4)
        ]
        start = time.perf_counter()
        infos = []
        for i in range(per):
            for gw, site, evs in batches:
                infos.append(pub.send(topics(gw, site).events, evs[i]))
        for info in infos:
            info.wait_for_publish(60)
        total = per * 4
        with engine.connect() as c:
            while c.execute(text("SELECT count(*) FROM events")).scalar_one() < total:
                time.sleep(0.05)
                c.rollback()
        elapsed = time.perf_counter() - start
        pub.close()
        for w in ws:
            w.terminate()
        engine.dispose()
        broker.stop()
        cluster.stop()
        return total / elapsed


def raw_subscribe(events: int) -> float:
    """Raw paho QoS 1 on a shared subscription, same broker set-up: messages/s received."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    with tempfile.TemporaryDirectory(prefix="traceway-bench-") as t:
        broker = make_broker(Path(t))
        broker.start()
        got = 0
        done = threading.Event()
        per = events // 4
        total = per * 4

        def on_message(_c: object, _u: object, _m: object) -> None:
            nonlocal got
            got += 1
            if got >= total:
                done.set()

        sub = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="raw-sub",
            protocol=mqtt.MQTTv5,
        )
        sub.on_message = on_message
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("$share/raw/traceway/v1/+/+/events", qos=1)
        sub.loop_start()
        time.sleep(0.5)
        pub = Publisher(broker.port)
        batches = [
            (f"gw-{g}", f"site-{g % 2}", stream(per, f"gw-{g}", f"site-{g % 2}")) for g in range(4)
        ]
        start = time.perf_counter()
        infos = [
            pub.send(topics(gw, site).events, evs[i])
            for i in range(per)
            for gw, site, evs in batches
        ]
        for info in infos:
            info.wait_for_publish(60)
        done.wait(120)
        elapsed = time.perf_counter() - start
        pub.close()
        sub.loop_stop()
        sub.disconnect()
        broker.stop()
        return total / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=8000)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    raw = [raw_subscribe(args.events) for _ in range(args.runs)]
    print(f"raw paho QoS 1 shared subscription: {', '.join(f'{r:,.0f}' for r in raw)} msg/s")
    for workers in (1, 2):
        rates = [run(args.events, workers) for _ in range(args.runs)]
        shown = ", ".join(f"{r:,.0f}" for r in rates)
        ratio = ", ".join(f"{r / min(raw):.2f}" for r in rates)
        print(
            f"ingest, {workers} worker(s), {args.events} events: {shown} events/s "
            f"(ratio to raw paho {ratio})",
            flush=True,
        )


if __name__ == "__main__":
    main()
