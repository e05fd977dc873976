"""Benchmark: web UI page latency on the generated history of bench/central_queries.py.

Generates the same history (``--lots`` lots, 10 serials each, pallets in master pallets,
transformations, 50 sites) in a private PostgreSQL, adds ``--hot`` lots that each moved
``--moves`` times (a lot "used in thousands of movements"), starts the API + web UI with
uvicorn on a loopback port, logs in over HTTP and times, from request to the last byte:

- the unit page of random lots, serials, pallets and hot lots;
- the recall desk page of a recall (affected units, push status per gateway);
- search with a scanned element string (the answer is a redirect to the unit page).

Prints p50/p99 per page; asserts nothing. The data lives in a temporary directory.

    .venv/bin/python bench/central_pages.py --lots 450000
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from bench.central_queries import GEN, percentile  # noqa: E402
from central.api.app import create_app  # noqa: E402
from central.api.tokens import DbTokenStore  # noqa: E402
from central.db.cluster import PrivateCluster  # noqa: E402
from central.db.engine import migrate  # noqa: E402
from central.masterdata.holds import Unit, start_block  # noqa: E402
from central.web.auth import add_user  # noqa: E402
from central.web.views import mount_web  # noqa: E402

HOT = """
INSERT INTO event_items (event_id, event_time, site, gateway_id, movement, role, gtin, lot,
  quantity, uom, from_type, from_id, to_type, to_id)
SELECT 'h' || h || '-' || m, timestamptz '2026-03-01' + m * interval '1 minute',
       'site-' || (m % 50), 'gw-site-' || (m % 50),
       CASE WHEN m % 3 = 0 THEN 'ship' ELSE 'putaway' END, 'item', gtin, 'HOT' || h,
       1, 'EA', 'location', 'A-' || (m % 40),
       CASE WHEN m % 3 = 0 THEN 'party' ELSE 'location' END,
       CASE WHEN m % 3 = 0 THEN 'CUST-' || (m % 500) ELSE 'B-' || (m % 40) END
  FROM (SELECT h, (SELECT gtin FROM gt WHERE p = h) AS gtin FROM generate_series(1, :hot) h) x,
       generate_series(1, :moves) m;
INSERT INTO lot_stock (gtin, lot, site, location, quantity)
SELECT (SELECT gtin FROM gt WHERE p = h), 'HOT' || h, 'site-' || s, 'B-' || s, 10
  FROM generate_series(1, :hot) h, generate_series(0, 39) s;
INSERT INTO gateways (gateway_id, site, online, last_seen, seq_high)
SELECT 'gw-site-' || s, 'site-' || s, true, now(), 0 FROM generate_series(0, 49) s;
ANALYZE;
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_sql(engine: object, script: str, params: dict[str, int]) -> None:
    sql = "\n".join(ln for ln in script.splitlines() if not ln.lstrip().startswith("--"))
    with engine.begin() as c:  # type: ignore[attr-defined]
        for stmt in sql.split(";\n"):
            if stmt.strip():
                used = {k: v for k, v in params.items() if f":{k}" in stmt}
                c.execute(text(stmt), used)


def timed(client: httpx.Client, urls: list[str]) -> list[float]:
    out = []
    for u in urls:
        s = time.perf_counter()
        r = client.get(u)
        _ = r.content
        out.append((time.perf_counter() - s) * 1000)
        if r.status_code not in (200, 303):
            raise SystemExit(f"{u}: HTTP {r.status_code}: {r.text[:300]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lots", type=int, default=100_000)
    ap.add_argument("--hot", type=int, default=20, help="lots with many movements")
    ap.add_argument("--moves", type=int, default=5000, help="movements of each hot lot")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--recalls", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="traceway-bench-") as t:
        Path(t).chmod(0o755)
        cluster = PrivateCluster(Path(t) / "pg")
        cluster.start()
        try:
            engine = create_engine(cluster.url, pool_size=4)
            migrate(engine)
            t0 = time.perf_counter()
            run_sql(engine, GEN + HOT, {"lots": args.lots, "hot": args.hot, "moves": args.moves})
            now = datetime.now(UTC)
            rng = random.Random(11)
            with engine.begin() as c:
                items = c.execute(text("SELECT count(*) FROM event_items")).scalar_one()
                lots = c.execute(text("SELECT gtin, lot FROM lot_stock WHERE lot LIKE 'L%'")).all()
                serials = c.execute(
                    text("SELECT gtin, serial FROM serial_state TABLESAMPLE SYSTEM (5)")
                ).all()
                pallets = c.execute(
                    text(
                        "SELECT DISTINCT parent_sscc FROM aggregation_edges TABLESAMPLE SYSTEM (2)"
                    )
                ).all()
                hot = c.execute(
                    text("SELECT DISTINCT gtin, lot FROM lot_stock WHERE lot LIKE 'HOT%'")
                ).all()
                add_user(c, "bench", "recall-manager", "bench password 1", now)
                recalled = []
                for g, lot in rng.sample(lots, args.recalls):
                    res = start_block(
                        c, "recall", Unit(gtin=g, lot=lot), reason="bench", who="bench", now=now
                    )
                    recalled.append(res.block_id)
            print(
                f"generated {items:,} event items ({args.lots:,} lots, {args.hot} lots with "
                f"{args.moves:,} movements each) in {time.perf_counter() - t0:.0f} s"
            )
            app = create_app(engine, DbTokenStore(engine))
            mount_web(app, engine)
            port = free_port()
            server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
            )
            th = threading.Thread(target=server.run, daemon=True)
            th.start()
            while not server.started:
                time.sleep(0.05)
            client = httpx.Client(
                base_url=f"http://127.0.0.1:{port}", follow_redirects=False, timeout=30
            )
            page = client.get("/ui/login").text
            csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            r = client.post(
                "/ui/login",
                data={
                    "username": "bench",
                    "password": "bench password 1",
                    "csrf": csrf,
                    "next": "/ui/",
                },
            )
            assert r.status_code == 303, r.text
            n = args.samples
            cases = {
                "unit page, lot": [
                    f"/ui/unit?gtin={g}&lot={lot}" for g, lot in rng.sample(lots, n)
                ],
                "unit page, serial": [
                    f"/ui/unit?gtin={g}&serial={s}"
                    for g, s in rng.sample(serials, min(n, len(serials)))
                ],
                "unit page, pallet": [
                    f"/ui/unit?sscc={p[0]}" for p in rng.sample(pallets, min(n, len(pallets)))
                ],
                f"unit page, lot with {args.moves:,} moves": [
                    f"/ui/unit?gtin={g}&lot={lot}" for g, lot in [rng.choice(hot) for _ in range(n)]
                ],
                "tree level (down), lot": [
                    f"/ui/tree?gtin={g}&lot={lot}&dir=down" for g, lot in rng.sample(lots, n)
                ],
                "recall desk page": [f"/ui/recalls/{rng.choice(recalled)}" for _ in range(n)],
                "search (scan → redirect)": [
                    "/ui/search?" + httpx.QueryParams({"q": f"]C101{g}10{lot}"}).__str__()
                    for g, lot in rng.sample(lots, n)
                ],
            }
            timed(client, list(cases["unit page, lot"])[:20])  # warm up
            for name, urls in cases.items():
                ms = timed(client, urls)
                print(
                    f"{name}: p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms over {len(ms)}"
                )
            server.should_exit = True
            th.join(10)
            engine.dispose()
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
