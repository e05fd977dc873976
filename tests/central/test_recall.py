"""Recall at central: every affected unit, where it is now, who received it.

The day at two sites comes from the real gateway pipeline (``trace_day``); the
contract's scripted day adds a pallet shipped by its SSCC alone.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from central.cli import main
from central.custody.projection import store_events
from central.fsma.columns import SHIPPING
from central.fsma.queries import fsma_report
from central.masterdata.importer import import_master_data
from central.trace.model import CSV_COLUMNS, Recall, RecallRow, recall_csv, unit_key
from central.trace.queries import recall
from mqtt_topics import examples
from tests.central.trace_day import GLN_B, GLN_C, Day, X, run_day
from tests.scenarios.site import LOT_GTIN, PRODUCTS, PUMP, SALINE

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    return run_day(tmp_path_factory.mktemp("day"))


@pytest.fixture
def db(engine: Engine, day: Day, tmp_path: Path) -> Engine:
    (tmp_path / "products.csv").write_text(PRODUCTS)
    (tmp_path / "lots.csv").write_text(
        f"gtin,lot,expiry,status\n{LOT_GTIN},L1,2030-12-31,recalled\n"
        f"{SALINE},N1,2027-06-30,active\n{PUMP},PL1,,hold\n"
    )
    with engine.begin() as c:
        import_master_data(c, tmp_path / "products.csv", tmp_path / "lots.csv")
        store_events(c, day.all, NOW)
    return engine


def q(v: Any) -> Any:
    return None if v is None else int(v)


def lots(r: Recall) -> list[tuple[Any, ...]]:
    return [
        (x.gtin, x.lot, x.site, x.location, q(x.quantity), x.status, x.downstream)
        for x in r.section("lot")
    ]


def serials(r: Recall) -> list[tuple[Any, ...]]:
    return [
        (x.serial, x.lot, x.state, x.site, x.location, x.holder, x.status)
        for x in r.section("serial")
    ]


def pallets(r: Recall) -> list[tuple[Any, ...]]:
    return [
        (x.sscc, x.gtin, x.lot, x.serial, q(x.quantity), x.state, x.holder, x.via)
        for x in r.section("pallet")
    ]


def recipients(r: Recall) -> list[tuple[Any, ...]]:
    return [
        (x.party, x.gtin, x.lot, x.serial, q(x.quantity), x.site, x.via, x.downstream)
        for x in r.section("recipient")
    ]


def test_lot_recall_reaches_both_sites_the_pallet_the_product_and_the_customers(
    db: Engine, day: Day
) -> None:
    with db.connect() as c:
        r = recall(c, lot=unit_key(gtin=LOT_GTIN, lot="L1"))
    assert serials(r) == []
    assert lots(r) == [
        (LOT_GTIN, "L1", "site-a", "A-01", 60, "recalled", False),
        (LOT_GTIN, "L1", "site-b", "DOCK-B", 25, "recalled", False),
        (SALINE, "N1", "site-b", "PROD", 30, "active", True),  # made of L1
    ]
    assert pallets(r) == [(X, LOT_GTIN, "L1", None, 10, "shipped", GLN_C, None)]
    assert recipients(r) == [
        (GLN_B, LOT_GTIN, "L1", None, 40, "site-a", None, False),  # the transfer to site B
        (GLN_C, LOT_GTIN, "L1", None, 10, "site-b", None, False),  # on pallet X
        (GLN_C, SALINE, "N1", None, 20, "site-b", None, True),
    ]
    assert r.recipients == [GLN_B, GLN_C]
    # dates are the shipments' event times
    ship_a = [e for e in day.a if e["movement"] == "ship" and e["items"][0].get("lot") == "L1"]
    assert r.section("recipient")[0].time == datetime.fromisoformat(ship_a[0]["event_time"])
    assert r.section("recipient")[0].event_id == ship_a[0]["event_id"]
    down = r.section("lot")[2]
    assert str(down.via).startswith("urn:traceway:site-b:line:")


def test_serial_lot_recall_finds_each_serial_and_its_pallet(db: Engine) -> None:
    with db.connect() as c:
        r = recall(c, lot=unit_key(gtin=PUMP, lot="PL1"))
    assert serials(r) == [
        ("P1", "PL1", "shipped", None, None, GLN_C, "hold"),
        ("P2", "PL1", "at_site", "site-a", "A-02", None, "hold"),
    ]
    assert lots(r) == []
    assert pallets(r) == [(X, PUMP, "PL1", "P1", 1, "shipped", GLN_C, None)]
    assert recipients(r) == [
        (GLN_B, PUMP, "PL1", "P1", 1, "site-a", None, False),
        # the pallet's shipment listed P1 without its lot: found through the serial
        (GLN_C, PUMP, None, "P1", 1, "site-b", None, False),
    ]


def test_serial_list_recall(db: Engine) -> None:
    with db.connect() as c:
        r = recall(c, serials=[unit_key(gtin=PUMP, serial="P2")])
    assert serials(r) == [("P2", "PL1", "at_site", "site-a", "A-02", None, "hold")]
    assert pallets(r) == recipients(r) == lots(r) == []


def test_nothing_affected(db: Engine) -> None:
    with db.connect() as c:
        assert recall(c, lot=unit_key(gtin=LOT_GTIN, lot="NOPE")).rows == ()


def test_a_pallet_shipped_by_its_sscc_alone_names_the_recipient(engine: Engine) -> None:
    """The contract's scripted day ships pallet SSCC_1 without listing what is on it."""
    with engine.begin() as c:
        store_events(c, examples.scripted_day(), NOW)
        lot = recall(c, lot=unit_key(gtin=examples.GTIN_B, lot="L24-07"))
        one = recall(c, serials=[unit_key(gtin=examples.GTIN_A, serial="S/1001&x")])
    via_pallet = [x for x in recipients(lot) if x[6] == examples.SSCC_1]
    assert via_pallet == [
        (
            examples.GLN_CUSTOMER,
            examples.GTIN_B,
            "L24-07",
            None,
            12,
            examples.SITE,
            examples.SSCC_1,
            False,
        )
    ]
    assert [x for x in recipients(one) if x[0] == examples.GLN_CUSTOMER] == [
        (
            examples.GLN_CUSTOMER,
            examples.GTIN_A,
            None,
            "S/1001&x",
            1,
            examples.SITE,
            examples.SSCC_1,
            False,
        )
    ]


def test_a_pallet_on_a_pallet_is_found(engine: Engine) -> None:
    from gs1.keys import check_digit

    outer = "34012345000000048"
    outer += str(check_digit(outer))
    item: Any = {"gtin": LOT_GTIN, "lot": "LN", "quantity": 3, "uom": "EA"}
    d: Any = {"type": "location", "id": "D"}
    ev = examples.event
    evs = [
        ev(1, "receive", [{**item, "from": {"type": "party", "id": "S"}, "to": d}], 0),
        ev(2, "pack", [{**item, "from": d, "to": d}], 1, parent={"sscc": X}),
        ev(3, "pack", [{"sscc": X, "from": d, "to": d}], 2, parent={"sscc": outer}),
        ev(4, "ship", [{"sscc": outer, "from": d, "to": {"type": "party", "id": "CUST"}}], 3),
    ]
    with engine.begin() as c:
        store_events(c, evs, NOW)
        r = recall(c, lot=unit_key(gtin=LOT_GTIN, lot="LN"))
    assert pallets(r) == [
        (X, LOT_GTIN, "LN", None, 3, "at_site", None, None),
        (outer, LOT_GTIN, "LN", None, 3, "shipped", "CUST", X),
    ]
    assert recipients(r) == [("CUST", LOT_GTIN, "LN", None, 3, examples.SITE, outer, False)]


def test_unpacked_goods_are_not_on_the_pallet_any_more(engine: Engine) -> None:
    item: Any = {"gtin": LOT_GTIN, "lot": "LU", "quantity": 3, "uom": "EA"}
    d: Any = {"type": "location", "id": "D"}
    ev = examples.event
    evs = [
        ev(1, "receive", [{**item, "from": {"type": "party", "id": "S"}, "to": d}], 0),
        ev(2, "pack", [{**item, "from": d, "to": d}], 1, parent={"sscc": X}),
        ev(3, "unpack", [], 2, parent={"sscc": X}),
        ev(4, "ship", [{"sscc": X, "from": d, "to": {"type": "party", "id": "CUST"}}], 3),
    ]
    with engine.begin() as c:
        store_events(c, evs, NOW)
        r = recall(c, lot=unit_key(gtin=LOT_GTIN, lot="LU"))
    assert pallets(r) == recipients(r) == []
    assert lots(r) == [(LOT_GTIN, "LU", examples.SITE, "D", 3, None, False)]


def _shipped_as_it_was_unpacked() -> list[dict[str, Any]]:
    """Lot LT packed on pallet X; X shipped by its SSCC alone and unpacked in the same
    millisecond (event times are milliseconds: the two cannot be ordered)."""
    item: Any = {"gtin": LOT_GTIN, "lot": "LT", "quantity": 3, "uom": "EA"}
    d: Any = {"type": "location", "id": "D"}
    ev = examples.event
    ship = ev(3, "ship", [{"sscc": X, "from": d, "to": {"type": "party", "id": "CUST"}}], 2)
    unpack = ev(4, "unpack", [], 2, parent={"sscc": X})
    unpack["event_time"] = ship["event_time"]
    return [
        ev(1, "receive", [{**item, "from": {"type": "party", "id": "S"}, "to": d}], 0),
        ev(2, "pack", [{**item, "from": d, "to": d}], 1, parent={"sscc": X}),
        ship,
        unpack,
    ]


def test_a_pallet_shipped_in_the_millisecond_it_was_unpacked_still_names_the_recipient(
    engine: Engine,
) -> None:
    """The goods count as shipped on the pallet: a recall errs on the side of more. A
    millisecond later they do not (the test above)."""
    with engine.begin() as c:
        store_events(c, _shipped_as_it_was_unpacked(), NOW)
        r = recall(c, lot=unit_key(gtin=LOT_GTIN, lot="LT"))
    assert recipients(r) == [("CUST", LOT_GTIN, "LT", None, 3, examples.SITE, X, False)]


def test_the_fsma_shipping_record_of_that_pallet_lists_the_lot(engine: Engine) -> None:
    events = _shipped_as_it_was_unpacked()
    with engine.begin() as c:
        store_events(c, events, NOW)
    day = datetime.fromisoformat(events[2]["event_time"]).date()
    with engine.connect() as c:
        rows = fsma_report(c, day, day).rows[SHIPPING]
    assert [(r[0], r[1]) for r in rows] == [(f"{LOT_GTIN}+LT", 3)]


def test_recall_csv_is_one_row_per_answer_row(db: Engine) -> None:
    with db.connect() as c:
        r = recall(c, lot=unit_key(gtin=LOT_GTIN, lot="L1"))
    rows = list(csv.DictReader(io.StringIO(recall_csv(r))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [x["section"] for x in rows] == ["lot"] * 3 + ["pallet"] + ["recipient"] * 3
    assert rows[-1]["downstream"] == "yes" and rows[-1]["party"] == GLN_C
    assert rows[0]["quantity"] == "60"


def test_csv_cells_cannot_become_formulas() -> None:
    row = RecallRow(
        "recipient", None, "=HYPERLINK(1)", None, None, None, None, None, None, None,
        None, None, "+1", None, None, None, False,
    )  # fmt: skip
    text = recall_csv(Recall((), (row,)))
    assert "'=HYPERLINK(1)" in text and "'+1" in text


# -- CLI ----------------------------------------------------------------------------------


@pytest.fixture
def db_env(db: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("DATABASE_URL", db.url.render_as_string(hide_password=False))
    yield db


def test_cli_recall_csv_and_text(
    db_env: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "recall.csv"
    assert main(["recall", "--gtin", LOT_GTIN, "--lot", "L1", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "lot quantities now: 3" in text and "recipients: 3" in text
    assert f"CSV: {out} (7 rows)" in text
    assert len(list(csv.DictReader(out.open(newline="")))) == 7


def test_cli_recall_serial_file_json(
    db_env: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "serials.txt"
    f.write_text(f"gtin,serial\n{PUMP},P1\n{PUMP},P1  # twice\n\n")
    assert main(["recall", "--serials", str(f), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["serial"] for s in doc["subjects"]] == ["P1"]
    assert [(s["serial"], s["holder"]) for s in doc["serials"]] == [("P1", GLN_C)]
    assert doc["recipient_parties"] == [GLN_B, GLN_C]
    assert doc["pallets"][0]["sscc"] == X


def test_cli_recall_usage(db_env: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recall", "--gtin", LOT_GTIN, "--lot", "NOPE"]) == 1
    assert main(["recall", "--gtin", LOT_GTIN]) == 2
    assert main(["recall", "--serial", "P1"]) == 2
    assert "--serial needs --gtin" in capsys.readouterr().err
    assert main(["recall", "--gtin", PUMP, "--serial", "P2"]) == 0
