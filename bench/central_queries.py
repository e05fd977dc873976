"""Benchmark: recall and trace latency on a generated history (private PostgreSQL).

Generates, with set-based SQL, a history shaped like the issue's data set at a scale
that fits this machine: ``--lots`` lots of 2,000 products across 50 sites, 10 serials
per lot, every lot and serial received, put away and (mostly) shipped, serials packed
10 per pallet, pallets 10 per master pallet (three aggregation levels), and one lot in
ten consumed into a new lot (transformations). Then times ``recall`` of random lots and
``trace`` of random serials through ``central.trace.queries`` (p50/p99 over
``--samples``). Prints figures; asserts nothing. The generated data lives in a
temporary directory, never in git.

``--explain`` also prints ``EXPLAIN (ANALYZE, BUFFERS)`` of the one statement a lot
recall runs and of the one a serial trace runs (a lot that was consumed into a new lot,
and a serial of it that was packed on a pallet on a master pallet), each run once
before so the plan shows a warm cache, as the timed runs see it.

    .venv/bin/python bench/central_queries.py --lots 100000
    .venv/bin/python bench/central_queries.py --lots 450000 --explain   # ~10 M items
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Connection, create_engine, event, text  # noqa: E402

from central.db.cluster import PrivateCluster  # noqa: E402
from central.db.engine import migrate  # noqa: E402
from central.trace.model import unit_key  # noqa: E402
from central.trace.queries import recall, trace  # noqa: E402
from gs1.keys import check_digit  # noqa: E402

GEN = """
-- the GS1 check digit of a 17-digit SSCC body (weights 3,1,3,… from the right)
CREATE FUNCTION pg_temp.ck(body text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
  SELECT ((10 - (SELECT sum(substr(body, i, 1)::int * CASE WHEN i % 2 = 1 THEN 3 ELSE 1 END)
                   FROM generate_series(1, 17) i) % 10) % 10)::text $f$;
-- products: 2,000 GTINs (body 0950600 + 6 digits, check digit in SQL below)
CREATE TEMP TABLE g AS
SELECT p, '0950600' || lpad(p::text, 6, '0') AS body FROM generate_series(1, 2000) p;
CREATE TEMP TABLE gt AS SELECT p, body || (
  (10 - ((3 * (substr(body,13,1)::int + substr(body,11,1)::int + substr(body,9,1)::int
          + substr(body,7,1)::int + substr(body,5,1)::int + substr(body,3,1)::int
          + substr(body,1,1)::int)
        + (substr(body,12,1)::int + substr(body,10,1)::int + substr(body,8,1)::int
          + substr(body,6,1)::int + substr(body,4,1)::int + substr(body,2,1)::int)) % 10))
  % 10)::text AS gtin FROM g;
CREATE TEMP TABLE lt AS
SELECT l, (SELECT gtin FROM gt WHERE gt.p = 1 + l % 2000) AS gtin, 'L' || l AS lot,
       'site-' || (l % 50) AS site,
       timestamptz '2026-01-01' + (l % 300) * interval '1 day' AS t
  FROM generate_series(1, :lots) l;
-- lots: receive 100, put away, ship 60 to a customer
INSERT INTO event_items (event_id, event_time, site, gateway_id, movement, role, gtin, lot,
  quantity, uom, from_type, from_id, to_type, to_id)
SELECT 'r' || l, t, site, 'gw-' || site, 'receive', 'item', gtin, lot, 100, 'EA', 'party',
       'SUP', 'location', 'DOCK' FROM lt
UNION ALL
SELECT 'p' || l, t + interval '1 hour', site, 'gw-' || site, 'putaway', 'item', gtin, lot,
       100, 'EA', 'location', 'DOCK', 'location', 'A-' || (l % 40) FROM lt
UNION ALL
SELECT 's' || l, t + interval '2 day', site, 'gw-' || site, 'ship', 'item', gtin, lot, 60,
       'EA', 'location', 'A-' || (l % 40), 'party', 'CUST-' || (l % 500) FROM lt;
INSERT INTO lot_stock (gtin, lot, site, location, quantity)
SELECT gtin, lot, site, 'A-' || (l % 40), 40 FROM lt;
-- serials: 10 per lot; received, packed 10 per pallet, pallets 10 per master, shipped
CREATE TEMP TABLE st AS
SELECT lt.l, n, lt.gtin, lt.lot, lt.site, lt.t, 'S' || lt.l || '-' || n AS serial,
       '3' || lpad((lt.l)::text, 16, '0') AS pallet_body,
       '4' || lpad((lt.l / 10)::text, 16, '0') AS master_body
  FROM lt, generate_series(1, 10) n;
INSERT INTO event_items (event_id, event_time, site, gateway_id, movement, role, gtin, lot,
  serial, quantity, uom, from_type, from_id, to_type, to_id)
SELECT 'sr' || l || '-' || n, t, site, 'gw-' || site, 'receive', 'item', gtin, lot, serial,
       1, 'EA', 'party', 'SUP', 'location', 'DOCK' FROM st
UNION ALL
SELECT 'ss' || l || '-' || n, t + interval '3 day', site, 'gw-' || site, 'ship', 'item', gtin,
       lot, serial, 1, 'EA', 'location', 'DOCK', 'party', 'CUST-' || (l % 500) FROM st;
INSERT INTO serial_state (gtin, serial, lot, site, location, holder, state, last_event_time,
  last_event_id)
SELECT gtin, serial, lot, NULL, NULL, 'CUST-' || (l % 500), 'shipped', t + interval '3 day',
       'ss' || l || '-' || n FROM st;
INSERT INTO aggregation_edges (parent_sscc, gtin, lot, serial, quantity, added_at, event_id)
SELECT pallet_body || pg_temp.ck(pallet_body), gtin, lot, serial, 1, t + interval '1 day', 'pk' || l FROM st;
INSERT INTO aggregation_edges (parent_sscc, child_sscc, added_at, event_id)
SELECT DISTINCT master_body || pg_temp.ck(master_body), pallet_body || pg_temp.ck(pallet_body),
       t + interval '1 day', 'mk' || l FROM st;
-- transformations: one lot in ten consumed (10) into a new lot
INSERT INTO transformation_edges (transformation_id, direction, gtin, lot, quantity,
  event_time, event_id)
SELECT 'X' || l, 'input', gtin, lot, 10, t + interval '1 day', 'xi' || l FROM lt WHERE l % 10 = 0
UNION ALL
SELECT 'X' || l, 'output', gtin, 'N' || l, 10, t + interval '1 day', 'xo' || l FROM lt
 WHERE l % 10 = 0;
ANALYZE;
"""


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def explain(conn: Connection, title: str, run: Callable[[Connection], object]) -> None:
    """Run ``run`` once, then print EXPLAIN (ANALYZE, BUFFERS) of each statement it ran."""
    seen: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        seen.append((statement, params))

    event.listen(conn, "before_cursor_execute", capture)
    try:
        run(conn)
    finally:
        event.remove(conn, "before_cursor_execute", capture)
    for statement, params in seen:
        plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, params).fetchall()
        print(f"\n== {title}: EXPLAIN (ANALYZE, BUFFERS) ==")
        print("\n".join(r[0] for r in plan))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lots", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument(
        "--explain", action="store_true", help="print the plans of a lot recall and a serial trace"
    )
    args = ap.parse_args()
    assert check_digit("0950600000001") >= 0
    with tempfile.TemporaryDirectory(prefix="traceway-bench-") as t:
        Path(t).chmod(0o755)
        cluster = PrivateCluster(Path(t) / "pg")
        cluster.start()
        try:
            engine = create_engine(cluster.url)
            migrate(engine)
            t0 = time.perf_counter()
            sql = "\n".join(ln for ln in GEN.splitlines() if not ln.lstrip().startswith("--"))
            with engine.begin() as c:
                for stmt in sql.split(";\n"):
                    if stmt.strip():
                        c.execute(text(stmt), {"lots": args.lots} if ":lots" in stmt else {})
            gen = time.perf_counter() - t0
            with engine.connect() as c:
                items = c.execute(text("SELECT count(*) FROM event_items")).scalar_one()
                lots = c.execute(text("SELECT gtin, lot FROM lot_stock")).fetchall()
                serials = c.execute(
                    text("SELECT gtin, serial FROM serial_state TABLESAMPLE SYSTEM (5)")
                ).fetchall()
            print(f"generated {items:,} event items ({args.lots:,} lots) in {gen:.0f} s")
            rng = random.Random(7)
            for name, keys, run in (
                ("lot recall", lots, lambda c, k: recall(c, lot=unit_key(gtin=k[0], lot=k[1]))),
                ("serial trace", serials, lambda c, k: trace(c, unit_key(gtin=k[0], serial=k[1]))),
            ):
                times: list[float] = []
                with engine.connect() as c:
                    for key in rng.sample(keys, min(args.samples, len(keys))):
                        s = time.perf_counter()
                        run(c, key)
                        times.append((time.perf_counter() - s) * 1000)
                print(
                    f"{name}: p50 {statistics.median(times):.1f} ms, "
                    f"p99 {percentile(times, 0.99):.1f} ms over {len(times)}"
                )
            if args.explain:
                with engine.connect() as c:
                    lot = c.execute(
                        text(
                            "SELECT gtin, lot FROM transformation_edges "
                            "WHERE direction = 'input' ORDER BY lot LIMIT 1"
                        )
                    ).one()
                    serial = c.execute(
                        text("SELECT gtin, serial FROM serial_state WHERE lot = :l LIMIT 1"),
                        {"l": lot[1]},
                    ).one()
                    print(f"\nplans for lot {lot[0]}/{lot[1]} and serial {serial[0]}/{serial[1]}")
                    explain(
                        c,
                        f"lot recall {lot[0]}/{lot[1]}",
                        lambda c: recall(c, lot=unit_key(gtin=lot[0], lot=lot[1])),
                    )
                    explain(
                        c,
                        f"serial trace {serial[0]}/{serial[1]}",
                        lambda c: trace(c, unit_key(gtin=serial[0], serial=serial[1])),
                    )
            engine.dispose()
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
