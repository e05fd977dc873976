"""FSMA 204 rows from events the real gateway pipeline published (tests/central/trace_day.py):
two sites, a branch transfer between them by GLN, a pallet shipped whole (the gateway lists
its content next to the SSCC), serials, and a transformation on a line."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from central.custody.projection import store_events
from central.fsma.columns import RECEIVING, SHIPPING, TRANSFORMATION
from central.fsma.queries import fsma_report
from central.masterdata.importer import import_master_data
from central.masterdata.parties import import_places
from tests.central.test_trace import NOW
from tests.central.trace_day import GLN_A, GLN_B, GLN_C, SUPPLIER, Day, run_day
from tests.scenarios.site import LOT_GTIN, PRODUCTS, PUMP, SALINE

L1, PL1, N1 = f"{LOT_GTIN}+L1", f"{PUMP}+PL1", f"{SALINE}+N1"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    return run_day(tmp_path_factory.mktemp("day"))


@pytest.fixture
def db(engine: Engine, day: Day, tmp_path: Path) -> Engine:
    files = {
        "sites": "site,name,gln,street,city,region,postal_code,country,phone\n"
        f"site-a,Site A,{GLN_A},1 A St,Aville,CA,90001,US,+1 555 0001\n"
        f"site-b,Site B,{GLN_B},2 B St,Bville,CA,90002,US,+1 555 0002\n",
        "partners": "party,name,street,city,region,postal_code,country,phone\n"
        f"{SUPPLIER},Supplier Inc,3 S St,Sville,TX,75001,US,+1 555 0003\n"
        f"{GLN_C},Customer LLC,4 C St,Cville,NY,10001,US,+1 555 0004\n",
        "products": PRODUCTS,
        "lots": f"gtin,lot,tlc_source\n{LOT_GTIN},L1,{SUPPLIER}\n{PUMP},PL1,{SUPPLIER}\n",
    }
    for name, body in files.items():
        (tmp_path / f"{name}.csv").write_text(body)
    with engine.begin() as c:
        store_events(c, day.all, NOW)
        import_places(c, tmp_path / "sites.csv", tmp_path / "partners.csv")
        import_master_data(c, tmp_path / "products.csv", tmp_path / "lots.csv")
    return engine


def test_the_two_sites_day(db: Engine, day: Day) -> None:
    d = datetime.fromisoformat(day.a[0]["event_time"]).date()
    with db.connect() as c:
        rep = fsma_report(c, d, d)

    def short(sheet: str) -> list[tuple[object, ...]]:
        return [(r[0], r[1], r[9], r[16], r[24]) for r in rep.rows[sheet]]

    # (TLC, quantity, the partner, our site, the TLC source's business name)
    assert short(RECEIVING) == [
        (L1, 100, "Supplier Inc", "Site A", "Supplier Inc"),
        (PL1, 1, "Supplier Inc", "Site A", "Supplier Inc"),
        (PL1, 1, "Supplier Inc", "Site A", "Supplier Inc"),
        (L1, 40, "Site A", "Site B", "Supplier Inc"),  # from site A, named by its GLN
        (PL1, 1, "Site A", "Site B", "Supplier Inc"),
    ]
    assert short(SHIPPING) == [
        (L1, 40, "Site B", "Site A", "Supplier Inc"),
        (PL1, 1, "Site B", "Site A", "Supplier Inc"),
        # pallet X: what the gateway listed with it, once
        (L1, 10, "Customer LLC", "Site B", "Supplier Inc"),
        (PL1, 1, "Customer LLC", "Site B", "Supplier Inc"),
        (N1, 20, "Customer LLC", "Site B", "Site B"),  # made on site B's line
    ]
    (x,) = rep.rows[TRANSFORMATION]
    assert (x[0], x[7], x[9], x[10], x[18], x[25]) == (L1, 5, N1, "Site B", d, 50)
    assert x[1] == "Paracetamol 500 mg" and x[19] == "Saline 0.9%"
    # what master data does not say yet (brands, commodities...) is named, never blank
    assert rep.missing[f"brand of product {LOT_GTIN}"] > 0
    assert all(r[-4].startswith("MISSING: reference document") for r in rep.rows[SHIPPING])
    assert x[-4:] == ["Batch Record (transformation ID)", day.line["transformation_id"], "", ""]
    assert not any("not in master data" in m for m in rep.missing)
    other = date(2000, 1, 1)
    with db.connect() as c:
        assert fsma_report(c, other, other).rows[RECEIVING] == []
