"""Benchmark: central ingest events/s (private mosquitto + private PostgreSQL).

Publishes ``--events`` movement events from four gateways (QoS 1, as gateways do) to a
private mosquitto, with ``python -m central ingest`` workers (1, then 2) on one shared
subscription, and prints events/s from the first publish to the last commit. Two
ceilings, measured on the same set-up, say what the figure could be at best:

- raw paho: one paho client on the same shared subscription, QoS 1, counting messages
  (no parsing, no database);
- raw COPY: the rows ingest writes for the same events (``event_ids``, ``events`` with
  the JSONB payload, ``event_items``), prepared beforehand, then ``COPY … FROM STDIN``
  into the same migrated schema of a private PostgreSQL (same settings) and one commit
  (no validation, no projection, no MQTT).

The ingest figures are reported as a ratio to the smaller ceiling (the median of its
runs with ``--runs N``). Prints
figures; asserts nothing. Run: ``.venv/bin/python bench/central.py [--events 10000]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def raw_copy(events: int) -> float:
    """The rows ingest writes for the same events, COPYed into a private PostgreSQL: events/s."""
    import json
    from datetime import UTC, datetime

    import psycopg

    from central.custody.model import item_rows, parse_time
    from central.custody.projection import ensure_partitions

    per = events // 4
    evs = [e for g in range(4) for e in stream(per, f"gw-{g}", f"site-{g % 2}")]
    now = datetime.now(UTC)
    ids: list[tuple[Any, ...]] = []
    raw: list[tuple[Any, ...]] = []
    items: list[tuple[Any, ...]] = []
    for e in evs:
        t = parse_time(e["event_time"])
        ids.append((e["event_id"], t, e["gateway_id"], int(e["seq"])))
        raw.append(
            (e["event_id"], t, now, e["site"], e["gateway_id"], int(e["seq"]), e["station"],
             e["movement"], e["event_type"], e["biz_step"], json.dumps(e, ensure_ascii=False))
        )  # fmt: skip
        for r in item_rows(e):
            items.append(
                (e["event_id"], t, e["site"], e["gateway_id"], e["movement"], r.role, r.gtin,
                 r.lot, r.serial, r.sscc, r.parent_sscc, r.quantity, r.uom, r.from_type,
                 r.from_id, r.to_type, r.to_id)
            )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="traceway-bench-") as d:
        tmp = Path(d)
        tmp.chmod(0o755)
        cluster = PrivateCluster(tmp / "pg")
        cluster.start()
        try:
            engine = create_engine(cluster.url)
            migrate(engine)
            with engine.begin() as c:  # as ingest does before its first batch of a month
                ensure_partitions(c, [r[1] for r in raw])
            engine.dispose()
            url = cluster.url.replace("postgresql+psycopg://", "postgresql://", 1)
            with psycopg.connect(url) as pg, pg.cursor() as cur:
                start = time.perf_counter()
                for table, cols, rows in (
                    ("event_ids", "event_id, event_time, gateway_id, seq", ids),
                    (
                        "events",
                        "event_id, event_time, received_at, site, gateway_id, seq, station, "
                        "movement, event_type, biz_step, payload",
                        raw,
                    ),
                    (
                        "event_items",
                        "event_id, event_time, site, gateway_id, movement, role, gtin, lot, "
                        "serial, sscc, parent_sscc, quantity, uom, from_type, from_id, to_type, "
                        "to_id",
                        items,
                    ),
                ):
                    with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                        for values in rows:
                            copy.write_row(values)
                pg.commit()
                elapsed = time.perf_counter() - start
                cur.execute("SELECT count(*) FROM events")
                stored = cur.fetchone()
                assert stored is not None and stored[0] == len(evs), stored
        finally:
            cluster.stop()
    return len(evs) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=8000)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    raw = [raw_subscribe(args.events) for _ in range(args.runs)]
    print(
        f"raw paho QoS 1 shared subscription: {', '.join(f'{r:,.0f}' for r in raw)} msg/s",
        flush=True,
    )
    copy = [raw_copy(args.events) for _ in range(args.runs)]
    print(
        f"raw COPY of the same rows (event_ids, events, event_items): "
        f"{', '.join(f'{r:,.0f}' for r in copy)} events/s",
        flush=True,
    )
    # the median of each ceiling's runs (with --runs 1: the run), then the smaller one
    ceiling = min(statistics.median(raw), statistics.median(copy))
    which = "raw paho" if statistics.median(raw) <= statistics.median(copy) else "raw COPY"
    for workers in (1, 2):
        rates = [run(args.events, workers) for _ in range(args.runs)]
        shown = ", ".join(f"{r:,.0f}" for r in rates)
        ratio = ", ".join(f"{r / ceiling:.2f}" for r in rates)
        print(
            f"ingest, {workers} worker(s), {args.events} events: {shown} events/s "
            f"(ratio to the smaller ceiling, {which} median {ceiling:,.0f}/s: {ratio})",
            flush=True,
        )


if __name__ == "__main__":
    main()
