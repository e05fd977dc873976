"""Benchmark: the FSMA 204 spreadsheet from a private PostgreSQL holding ``--events`` events.

Stores a month of receipts (from 50 suppliers), transformations (two input lots into one
output lot) and shipments (to 200 customers) over ``--lots`` lots at 5 sites, with full
master data, then times ``fsma_report`` + ``to_xlsx`` / ``to_csv`` for one day (every
lot), the whole month (every lot) and the whole month for 10 lots. Prints figures;
asserts nothing. Run: ``.venv/bin/python bench/fsma.py [--events 60000]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from central.custody.projection import store_events  # noqa: E402
from central.db.cluster import PrivateCluster  # noqa: E402
from central.db.engine import migrate  # noqa: E402
from central.fsma.model import Tlc  # noqa: E402
from central.fsma.queries import fsma_report  # noqa: E402
from central.fsma.render import to_csv, to_xlsx  # noqa: E402
from central.masterdata.parties import Place, store_places  # noqa: E402
from gs1.keys import check_digit  # noqa: E402
from mqtt_topics.events import build_event  # noqa: E402
from mqtt_topics.movements import spec_for  # noqa: E402

START = datetime(2026, 11, 1, 6, tzinfo=UTC)


def gln(n: int) -> str:
    body = f"40{n:010d}"
    return body + str(check_digit(body))


def gtin(n: int) -> str:
    body = f"0401234{n:06d}"
    return body + str(check_digit(body))


def _event(n: int, site: str, movement: str, t: datetime, **kw: Any) -> dict[str, Any]:
    spec = spec_for(movement)
    return build_event(
        event_id=f"019aaf00-0000-7000-8000-{n:012x}",
        seq=n,
        gateway_id=f"gw-{site}",
        site=site,
        station="s1",
        event_time=t,
        clock_synced=True,
        event_type=spec.event_type,
        action=spec.action,
        biz_step=spec.biz_step,
        disposition=spec.disposition,
        read_point="s1",
        biz_location=site,
        items=kw.pop("items", []),
        scan=None,
        decision={"verdict": "accept", "reasons": []},
        movement=movement,
        **kw,
    )


def events(n_events: int, n_lots: int) -> list[dict[str, Any]]:
    rnd = random.Random(7)
    out: list[dict[str, Any]] = []
    per_seq: dict[str, int] = {}

    def item(g: str, lot: str, q: int, frm: Any, to: Any) -> dict[str, Any]:
        return {"gtin": g, "lot": lot, "quantity": q, "uom": "KGM", "from": frm, "to": to}

    while len(out) < n_events:
        site = f"site-{rnd.randrange(5)}"
        seq = per_seq[site] = per_seq.get(site, 0) + 1
        n = len(out) + 1
        t = START + timedelta(seconds=rnd.randrange(30 * 86400))
        kind = rnd.random()
        lot_no = rnd.randrange(n_lots)
        g, lot = gtin(lot_no % 100), f"L{lot_no}"
        dock = {"type": "location", "id": "DOCK"}
        if kind < 0.4:
            sup = {"type": "party", "id": gln(rnd.randrange(50))}
            ev = _event(
                n,
                site,
                "receive",
                t,
                items=[item(g, lot, 10, sup, dock)],
                biz_transactions=[{"type": "po", "id": f"PO-{n}"}],
            )
        elif kind < 0.6:
            ins = [
                item(gtin(i % 100), f"L{i}", 5, dock, None)
                for i in (rnd.randrange(n_lots), rnd.randrange(n_lots))
            ]
            out_ = [item(g, f"M{n}", 8, None, dock)]
            ev = _event(n, site, "consume", t, inputs=ins, outputs=out_, transformation_id=f"X-{n}")
        else:
            cust = {"type": "party", "id": gln(1000 + rnd.randrange(200))}
            ev = _event(n, site, "ship", t, items=[item(g, lot, 3, dock, cust)],
                        biz_transactions=[{"type": "bol", "id": f"BOL-{n}"}])  # fmt: skip
        ev["seq"] = seq
        out.append(ev)
    return out


def master(conn: Any) -> None:
    def place(key: str, name: str, g: str | None = None) -> Place:
        return Place(key, name, g, "1 Main St", "Town", "CA", "90001", "US", "+1 555 0100")

    store_places(
        conn,
        sites=[place(f"site-{i}", f"Site {i}", gln(2000 + i)) for i in range(5)],
        partners=[place(gln(i), f"Supplier {i}") for i in range(50)]
        + [place(gln(1000 + i), f"Customer {i}") for i in range(200)],
    )
    conn.execute(
        text(
            "INSERT INTO products (gtin, description, tracking, product_name, brand, commodity, "
            "variety, pack_size, pack_style) SELECT g, 'P', 'lot', 'Product', 'Brand', "
            "'Tomatoes', 'Roma', '25 lb', 'carton' FROM unnest(CAST(:g AS text[])) AS g"
        ),
        {"g": [gtin(i) for i in range(100)]},
    )


def timed(label: str, conn: Any, first: date, last: date, tlcs: Any = None) -> None:
    t0 = time.perf_counter()
    rep = fsma_report(conn, first, last, tlcs)
    t1 = time.perf_counter()
    xlsx = to_xlsx(rep)
    t2 = time.perf_counter()
    csv_text = to_csv(rep)
    t3 = time.perf_counter()
    rows = sum(len(r) for r in rep.rows.values())
    print(
        f"{label:<28} {rows:>7} rows  query+build {t1 - t0:6.2f} s  xlsx {t2 - t1:6.2f} s "
        f"({len(xlsx) / 1e6:.1f} MB)  csv {t3 - t2:5.2f} s ({len(csv_text) / 1e6:.1f} MB)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--lots", type=int, default=5_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="traceway-bench-") as t:
        tmp = Path(t)
        tmp.chmod(0o755)
        cluster = PrivateCluster(tmp / "pg")
        cluster.start()
        try:
            engine = create_engine(cluster.url)
            migrate(engine)
            evs = events(args.events, args.lots)
            t0 = time.perf_counter()
            for i in range(0, len(evs), 2000):
                with engine.begin() as c:
                    store_events(c, evs[i : i + 2000], datetime.now(UTC))
            with engine.begin() as c:
                master(c)
                c.execute(text("ANALYZE"))
            print(f"stored {len(evs)} events in {time.perf_counter() - t0:.1f} s")
            with engine.connect() as c:
                timed("one day, every lot", c, date(2026, 11, 10), date(2026, 11, 10))
                timed("30 days, every lot", c, date(2026, 11, 1), date(2026, 11, 30))
                ten = frozenset(Tlc(gtin(i % 100), f"L{i}") for i in range(0, 5000, 500))
                timed("30 days, 10 lots", c, date(2026, 11, 1), date(2026, 11, 30), ten)
            engine.dispose()
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
