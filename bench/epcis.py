"""Benchmark: the EPCIS 2.0 query and capture interfaces (private PostgreSQL).

Stores ``--days`` copies of the scripted gateway day (17 events each, every copy with its
own lots, serials and pallet, the copies spread over one year) through the ingest's
``store_events``, captures ``--docs`` supplier documents of 100 events each through the
capture service (schema validation included), then times ``query_events`` (what
``GET /epcis/events`` runs) for typical queries, p50/p99 over ``--samples``, and paging
through up to 20,000 events with ``perPage=1000``. Prints figures; asserts nothing.

    TRACEWAY_EPCIS_SCHEMA=.cache/epcis .venv/bin/python bench/epcis.py --days 5000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from central.custody.projection import store_events  # noqa: E402
from central.db.cluster import PrivateCluster  # noqa: E402
from central.db.engine import migrate  # noqa: E402
from central.epcis.models import build_query  # noqa: E402
from central.epcis.schema import load_validator  # noqa: E402
from central.epcis.service import capture, query_events  # noqa: E402
from gs1.keys import check_digit  # noqa: E402
from mqtt_topics.examples import SSCC_1, scripted_day  # noqa: E402


def _day(k: int, days: int) -> list[dict[str, Any]]:
    """Copy ``k``: the scripted day with its own ids, lots, serials and pallet, the copies
    spread over one year (monthly partitions, as a year of history)."""
    text = json.dumps(scripted_day())
    sscc_body = f"3401234{k:010d}"
    sscc = sscc_body + str(check_digit(sscc_body))
    text = (
        text.replace("L24-07", f"L{k}")
        .replace("S1002", f"S{k}-2")
        .replace("S/1001&x", f"S{k}-1")
        .replace("S1001&x", f"S{k}-1")
        .replace("S2001", f"S{k}-3")
        .replace(SSCC_1, sscc)
        .replace("019aaf00-0000-7000-8000-", f"019aaf00-{k // 4096:04x}-7{k % 4096:03x}-8000-")
    )
    out: list[dict[str, Any]] = json.loads(text)
    for ev in out:
        t = datetime.fromisoformat(ev["event_time"]) + timedelta(days=365) * k / days
        ev["event_time"] = t.isoformat(timespec="milliseconds")
        ev["seq"] = k * 17 + ev["seq"]
    return out


def _supplier_doc(n: int, rng: random.Random) -> dict[str, Any]:
    events = []
    for i in range(100):
        lot = f"SUP{rng.randrange(100000)}"
        events.append(
            {
                "type": "ObjectEvent",
                "eventID": f"urn:uuid:6a0c4a8e-2f6b-4c3e-9d51-{n * 100 + i:012d}",
                "eventTime": (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n * 100 + i))
                .isoformat()
                .replace("+00:00", "Z"),
                "eventTimeZoneOffset": "+00:00",
                "epcList": [f"urn:epc:id:sgtin:4098765.001234.X{n}-{i}"],
                "quantityList": [
                    {"epcClass": f"urn:epc:class:lgtin:4098765.001234.{lot}", "quantity": 10}
                ],
                "action": "OBSERVE",
                "bizStep": "shipping",
                "disposition": "in_transit",
                "sourceList": [
                    {"type": "owning_party", "source": "https://id.gs1.org/417/4098765000003"}
                ],
            }
        )
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-01-01T00:00:00Z",
        "epcisBody": {"eventList": events},
    }


def _pct(xs: list[float]) -> str:
    xs = sorted(xs)
    p99 = xs[min(len(xs) - 1, int(len(xs) * 0.99))]
    return f"p50 {statistics.median(xs) * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=2000, help="copies of the scripted day")
    ap.add_argument("--docs", type=int, default=20, help="supplier documents of 100 events")
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()
    validate = load_validator()
    if validate is None:
        print("the EPCIS JSON Schema is missing: run .ci/fetch-epcis-schema", file=sys.stderr)
        return 2
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="traceway-bench-") as tmp:
        os.chmod(tmp, 0o755)  # the cluster may run as another user (postgres, under root)
        cluster = PrivateCluster(Path(tmp) / "data")
        cluster.start()
        try:
            engine = create_engine(cluster.url)
            migrate(engine)
            t0 = time.perf_counter()
            batch: list[dict[str, Any]] = []
            for k in range(args.days):
                batch += _day(k, args.days)
                if len(batch) >= 1700 or k == args.days - 1:
                    with engine.begin() as c:
                        store_events(c, batch, datetime.now(UTC))
                    batch = []
            n_events = args.days * 17
            dt = time.perf_counter() - t0
            print(f"stored {n_events} gateway events in {dt:.1f} s (store_events, for the data)")
            t0 = time.perf_counter()
            for n in range(args.docs):
                body = json.dumps(_supplier_doc(n, rng)).encode()
                with engine.begin() as c:
                    _job, errors = capture(
                        c, body, "application/json", "bench", datetime.now(UTC), validate
                    )
                assert not errors, errors
            dt = time.perf_counter() - t0
            print(
                f"captured {args.docs} documents x 100 events in {dt:.1f} s: "
                f"{args.docs * 100 / dt:.0f} events/s (schema validation + storing)"
            )
            with engine.begin() as c:  # as autovacuum would have by now
                c.execute(text("ANALYZE"))
            days = list(range(args.days))

            def serial() -> dict[str, list[str]]:
                k = rng.choice(days)
                return {"MATCH_epc": [f"urn:epc:id:sgtin:9506000.013435.S{k}-1"]}

            def lot() -> dict[str, list[str]]:
                return {
                    "MATCH_epcClass": [f"urn:epc:class:lgtin:4012345.000001.L{rng.choice(days)}"]
                }

            def pallet() -> dict[str, list[str]]:
                body = f"3401234{rng.choice(days):010d}"
                return {"MATCH_anyEPC": [f"https://id.gs1.org/00/{body}{check_digit(body)}"]}

            def window() -> dict[str, list[str]]:
                d = datetime(2026, 11, 23, tzinfo=UTC) + timedelta(days=rng.randrange(365))
                return {
                    "EQ_bizStep": ["storing"],
                    "GE_eventTime": [d.isoformat()],
                    "LT_eventTime": [(d + timedelta(days=1)).isoformat()],
                }

            def location() -> dict[str, list[str]]:
                return {
                    "EQ_bizLocation": ["urn:epc:id:sgln:4012345.00000.B-07-03"],
                    "GE_eventTime": [
                        (
                            datetime(2026, 11, 23, tzinfo=UTC) + timedelta(days=rng.choice(days))
                        ).isoformat()
                    ],
                    "LT_eventTime": [
                        (datetime(2026, 11, 23, tzinfo=UTC) + timedelta(days=args.days)).isoformat()
                    ],
                }

            for name, make, per_page in (
                ("MATCH_epc (one serial)", serial, 30),
                ("MATCH_epcClass (one lot)", lot, 30),
                ("MATCH_anyEPC (one pallet)", pallet, 30),
                ("EQ_bizStep + GE/LT one day", window, 30),
                ("EQ_bizLocation + GE_eventTime", location, 30),
            ):
                times = []
                for _ in range(args.samples):
                    q = build_query(make())
                    t = time.perf_counter()
                    with engine.connect() as c:
                        rows, _next = query_events(c, q, per_page)
                    times.append(time.perf_counter() - t)
                print(f"{name:40s} {_pct(times)}")
            q = build_query({"GE_eventTime": ["2026-11-23T00:00:00Z"]})
            after = None
            pages = total = 0
            t = time.perf_counter()
            while total < 20_000:
                with engine.connect() as c:
                    rows, after = query_events(c, q, 1000, after)
                pages += 1
                total += len(rows)
                if after is None:
                    break
            dt = time.perf_counter() - t
            print(
                f"paging perPage=1000: {total} events in {pages} pages, {dt * 1000 / pages:.0f} ms/page"
            )
            print(f"data: {n_events} gateway events, {args.docs * 100} captured events")
            engine.dispose()
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
