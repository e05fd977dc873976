"""Scenarios: a data set, a scan sequence, the expected verdicts, stock and trace.

Each test is one thing a warehouse does (or one thing that went wrong before): the
custody rules of README "Chain of custody" are checked through the real pipeline and
writer on a real SQLite file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gs1.keys import check_digit
from tests.scenarios.site import (
    BOX,
    LOT_GTIN,
    PUMP,
    Site,
    item_code,
    lot_code,
    serial_code,
)

PALLET = "10614141123456789" + str(check_digit("10614141123456789"))

STATIONS = {
    "dock": {"step": "receiving", "location": "DOCK1"},
    "store": {"step": "storing", "location": ""},
    "pick": {"step": "picking", "location": "STAGE"},
    "ship": {"step": "shipping", "location": "STAGE", "destination": "4012345000009"},
    "pack": {"step": "packing", "location": "STAGE"},
    "hold": {"step": "holding", "location": ""},
    "release": {"step": "releasing", "location": "A-09"},
    "returns": {"step": "returning", "location": "RET", "quarantine_location": "QUARANTINE"},
    "count": {"step": "cycle_counting", "location": ""},
    "scrap": {"step": "destroying", "location": ""},
}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(
        tmp_path,
        STATIONS,
        lots=f"{LOT_GTIN},LOTR,2030-12-31,recalled,A-04,25\n"
        f"{PUMP},PL1,,active,,0\n{PUMP},PL2,,active,,0\n",
        serials=f"{PUMP},SN1,PL1,in_stock,C-01\n{PUMP},SN2,PL1,destroyed,\n"
        f"{PUMP},SN3,PL1,consumed,\n",
    )
    yield s
    s.close()


# -- 6: stock taken from where it is, not from the alphabetically first location -----------
def test_putaway_takes_from_where_the_lot_is(site: Site) -> None:
    assert site.verdicts("dock", "QTY:50", lot_code(LOT_GTIN, "L50")) == [("accept", ())]
    assert site.verdicts("store", "LOC-A2", "QTY:30", lot_code(LOT_GTIN, "L50")) == [("accept", ())]
    # DOCK1 (20) and A2 (30) both hold it now: the source must be said, never guessed
    assert site.verdicts("store", "LOC-A4", "QTY:20", lot_code(LOT_GTIN, "L50")) == [
        ("reject", ("source_ambiguous",))
    ]
    assert site.verdicts("store", "FROM:DOCK1", "QTY:20", lot_code(LOT_GTIN, "L50")) == [
        ("accept", ())
    ]
    assert site.stock(lot="L50") == {
        (LOT_GTIN, "L50", None, "A2"): 30,
        (LOT_GTIN, "L50", None, "A4"): 20,
    }
    assert site.moves(gtin=LOT_GTIN, lot="L50") == [
        ("receive", "party:unknown", "DOCK1", 50),
        ("putaway", "DOCK1", "A2", 30),
        ("putaway", "DOCK1", "A4", 20),
    ]


def test_source_ambiguous_message_says_what_to_scan(site: Site) -> None:
    site.scan("dock", "QTY:5", lot_code(LOT_GTIN, "L1"))
    site.scan("store", "LOC-A2", "QTY:2", lot_code(LOT_GTIN, "L1"))
    out = site.scan("store", "LOC-A3", lot_code(LOT_GTIN, "L1"))[-1]
    assert out.reasons[0].code == "source_ambiguous"
    assert "A2 (2)" in out.reasons[0].message and "DOCK1 (3)" in out.reasons[0].message
    assert "FROM:" in out.reasons[0].message


# -- 8: events never claim what the cache did not move ------------------------------------
def test_pick_more_than_the_source_holds_is_rejected(site: Site) -> None:
    site.scan("dock", "QTY:20", lot_code(LOT_GTIN, "L20"))
    assert site.verdicts("pick", "QTY:30", lot_code(LOT_GTIN, "L20")) == [
        ("reject", ("insufficient_stock",))
    ]
    assert site.stock(lot="L20") == {(LOT_GTIN, "L20", None, "DOCK1"): 20}
    assert [e["movement"] for e in site.events()] == ["receive"]


def test_insufficient_stock_warn_policy_moves_what_is_there(tmp_path: Path) -> None:
    s = Site(tmp_path, {**STATIONS, "pick": {**STATIONS["pick"], "insufficient_stock": "warn"}})
    try:
        s.scan("dock", "QTY:20", lot_code(LOT_GTIN, "L20"))
        assert s.verdicts("pick", "QTY:30", lot_code(LOT_GTIN, "L20")) == [
            ("warn", ("insufficient_stock",))
        ]
        assert s.stock(lot="L20") == {(LOT_GTIN, "L20", None, "STAGE"): 20}
        assert s.events()[-1]["items"][0]["quantity"] == 20
    finally:
        s.close()


def test_ship_of_a_lot_never_received_is_rejected(site: Site) -> None:
    assert site.verdicts("ship", lot_code(LOT_GTIN, "NEVER")) == [
        ("reject", ("unknown_lot", "not_in_stock"))
    ]


def test_untracked_products_keep_stock_per_location(site: Site) -> None:
    assert site.verdicts("ship", "QTY:500", item_code(BOX)) == [("reject", ("not_in_stock",))]
    site.scan("dock", "QTY:10", item_code(BOX))
    assert site.verdicts("ship", "FROM:DOCK1", "QTY:4", item_code(BOX)) == [("accept", ())]
    assert site.stock(gtin=BOX) == {(BOX, None, None, "DOCK1"): 6}
    ev = site.events()[-1]
    assert ev["items"][0]["from"] == {"type": "location", "id": "DOCK1"}
    assert ev["items"][0]["to"] == {"type": "party", "id": "4012345000009"}
    assert ev["destinations"] == [{"type": "owning_party", "id": "4012345000009"}]


# -- 1, 4, 5: the serial's lot in the cache is authoritative ------------------------------
def test_serial_of_a_recalled_lot_without_10_is_stopped(site: Site) -> None:
    site.db().execute("UPDATE lots SET status = 'recalled' WHERE lot = 'PL1'").connection.commit()
    assert site.verdicts("ship", serial_code(PUMP, "SN1")) == [("reject", ("lot_recalled",))]
    assert site.verdicts("pack", f"]C100{PALLET}", serial_code(PUMP, "SN1"))[-1] == (
        "reject",
        ("lot_recalled",),
    )


def test_label_with_another_lot_is_rejected_and_the_serial_keeps_its_lot(site: Site) -> None:
    assert site.verdicts("pick", serial_code(PUMP, "SN1", "PL2")) == [("reject", ("lot_mismatch",))]
    assert site.stock(serial="SN1") == {(PUMP, "PL1", "SN1", "C-01"): 1}


def test_lot_stock_of_serial_products_follows_the_serials(site: Site) -> None:
    site.scan("dock", serial_code(PUMP, "SN10", "PL2"), serial_code(PUMP, "SN11", "PL2"))
    site.scan("pick", serial_code(PUMP, "SN10"))  # no (10): the cache knows the lot
    assert site.stock(gtin=PUMP, lot="PL2") == {
        (PUMP, "PL2", "SN10", "STAGE"): 1,
        (PUMP, "PL2", "SN11", "DOCK1"): 1,
    }
    lot_rows = site.db().execute(
        "SELECT COUNT(*) FROM lot_stock s JOIN lots l ON l.id = s.lot_id WHERE l.lot = 'PL2'"
    )
    assert lot_rows.fetchone()[0] == 0
    assert site.moves(gtin=PUMP, serial="SN10") == [
        ("receive", "party:unknown", "DOCK1", 1),
        ("pick", "DOCK1", "STAGE", 1),
    ]


# -- 3: HOLD holds, RELEASE releases --------------------------------------------------------
def test_hold_then_pick_is_rejected_until_release(site: Site) -> None:
    site.scan("dock", "QTY:5", lot_code(LOT_GTIN, "LH"))
    assert site.verdicts("hold", lot_code(LOT_GTIN, "LH")) == [("accept", ())]
    assert site.status(lot="LH") == {(LOT_GTIN, "LH", None, "DOCK1"): "hold"}
    assert site.verdicts("pick", lot_code(LOT_GTIN, "LH")) == [("reject", ("lot_on_hold",))]
    assert site.verdicts("release", lot_code(LOT_GTIN, "LH")) == [("accept", ())]
    assert site.verdicts("pick", lot_code(LOT_GTIN, "LH")) == [("accept", ())]
    assert [m[0] for m in site.moves(gtin=LOT_GTIN, lot="LH")] == [
        "receive",
        "hold",
        "release",
        "pick",
    ]


def test_hold_of_a_serial(site: Site) -> None:
    assert site.verdicts("hold", serial_code(PUMP, "SN1")) == [("accept", ())]
    assert site.verdicts("ship", serial_code(PUMP, "SN1")) == [("reject", ("serial_on_hold",))]
    assert site.verdicts("release", serial_code(PUMP, "SN1")) == [("accept", ())]
    assert site.verdicts("ship", serial_code(PUMP, "SN1")) == [("accept", ())]


def test_release_cannot_lift_a_recall(site: Site) -> None:
    assert site.verdicts("release", lot_code(LOT_GTIN, "LOTR")) == [
        ("reject", ("recall_is_central",))
    ]


# -- 7: recalled goods come back into quarantine, and never leave again -------------------
def test_recalled_goods_can_be_returned_into_quarantine(site: Site) -> None:
    assert site.verdicts("returns", "QTY:3", lot_code(LOT_GTIN, "LOTR")) == [
        ("warn", ("lot_recalled",))
    ]
    assert site.stock(lot="LOTR")[(LOT_GTIN, "LOTR", None, "QUARANTINE")] == 3
    assert site.verdicts("pick", "FROM:QUARANTINE", lot_code(LOT_GTIN, "LOTR"))[0][0] == "reject"
    assert site.moves(gtin=LOT_GTIN, lot="LOTR") == [("return", "party:unknown", "QUARANTINE", 3)]


def test_returned_goods_are_not_pickable_until_released(site: Site) -> None:
    site.scan("returns", "QTY:2", lot_code(LOT_GTIN, "LQ"))
    assert site.verdicts("pick", lot_code(LOT_GTIN, "LQ")) == [("reject", ("not_in_stock",))]
    assert site.verdicts("release", "QTY:2", lot_code(LOT_GTIN, "LQ")) == [("accept", ())]
    assert site.stock(lot="LQ") == {(LOT_GTIN, "LQ", None, "A-09"): 2}
    assert site.verdicts("pick", lot_code(LOT_GTIN, "LQ")) == [("accept", ())]


# -- 9: the serial state machine ----------------------------------------------------------
@pytest.mark.parametrize(
    ("station", "serial", "code"),
    [
        ("returns", "SN2", "serial_destroyed"),
        ("dock", "SN2", "serial_destroyed"),
        ("count", "SN2", "serial_destroyed"),
        ("dock", "SN3", "serial_consumed"),
        ("dock", "SN1", "serial_in_stock"),
        ("ship", "SN9", "serial_not_in_stock"),
    ],
)
def test_invalid_serial_transitions_have_their_own_reasons(
    site: Site, station: str, serial: str, code: str
) -> None:
    assert site.verdicts(station, serial_code(PUMP, serial)) == [("reject", (code,))]


def test_return_of_an_unknown_serial_is_recorded_with_a_warning(site: Site) -> None:
    assert site.verdicts("returns", serial_code(PUMP, "SN77")) == [("warn", ("serial_unknown",))]
    assert site.stock(serial="SN77") == {(PUMP, None, "SN77", "QUARANTINE"): 1}


# -- 10: QTY, FROM and references apply where they should ---------------------------------
def test_qty_applies_to_the_next_item_only(site: Site) -> None:
    site.scan("dock", "QTY:12", item_code(BOX), lot_code(LOT_GTIN, "LQTY"))
    assert site.stock(gtin=BOX) == {(BOX, None, None, "DOCK1"): 12}
    assert site.stock(lot="LQTY") == {(LOT_GTIN, "LQTY", None, "DOCK1"): 1}


def test_qty_is_used_up_by_a_rejected_scan(site: Site) -> None:
    site.scan("dock", "QTY:12", serial_code(PUMP, "SN1"), lot_code(LOT_GTIN, "LQ2"))
    assert site.stock(lot="LQ2") == {(LOT_GTIN, "LQ2", None, "DOCK1"): 1}


def test_references_are_kept_together_and_end_with_the_step(site: Site) -> None:
    site.scan("dock", "PO:4711", "DESADV:DA-9", lot_code(LOT_GTIN, "LREF"))
    ev = site.events()[-1]
    assert ev["biz_transactions"] == [
        {"type": "po", "id": "4711"},
        {"type": "desadv", "id": "DA-9"},
    ]
    site.scan("dock", "PUTAWAY", "LOC-A1", lot_code(LOT_GTIN, "LREF"))
    assert "biz_transactions" not in site.events()[-1]


# -- 12: best before and sell by count when there is no expiry ----------------------------
def test_best_before_counts_when_there_is_no_expiry(site: Site) -> None:
    site.scan("dock", lot_code(LOT_GTIN, "LBB", expiry=None, extra="15240101"))
    out = site.scan("pick", lot_code(LOT_GTIN, "LBB", expiry=None, extra="15240101"))[-1]
    assert out.reasons[0].code == "lot_expired"
    assert "best before" in out.reasons[0].message


# -- 15: identical case labels count ------------------------------------------------------
def test_identical_case_labels_count(tmp_path: Path) -> None:
    s = Site(tmp_path, {"dock": {"step": "receiving", "location": "DOCK1", "duplicate_window": 5}})
    try:
        s.scan("dock", *[lot_code(LOT_GTIN, "LC")] * 3)
        assert s.stock(lot="LC") == {(LOT_GTIN, "LC", None, "DOCK1"): 3}
        twice = s.verdicts("dock", serial_code(PUMP, "SN50"), serial_code(PUMP, "SN50"))
        assert twice == [("accept", ()), ("warn", ("duplicate_scan",))]
    finally:
        s.close()


# -- events carry from and to; the contract holds for every message -----------------------
def test_every_item_says_from_where_to_where(site: Site) -> None:
    site.scan("dock", "QTY:4", lot_code(LOT_GTIN, "LE"))
    site.scan("pick", "QTY:4", lot_code(LOT_GTIN, "LE"))
    site.scan("ship", "QTY:4", lot_code(LOT_GTIN, "LE"))
    for ev in site.events():
        for it in ev["items"]:
            assert "from" in it and "to" in it, ev
            assert it["uom"] == "EA"
    assert site.moves(gtin=LOT_GTIN, lot="LE") == [
        ("receive", "party:unknown", "DOCK1", 4),
        ("pick", "DOCK1", "STAGE", 4),
        ("ship", "STAGE", "party:4012345000009", 4),
    ]
    assert site.stock(lot="LE") == {}


# -- exceptions as procedures: counts and scrap ---------------------------------------------
def test_a_count_that_differs_records_the_difference(site: Site) -> None:
    site.scan("dock", "QTY:10", lot_code(LOT_GTIN, "LCNT"))
    assert site.verdicts("count", "LOC-DOCK1", "QTY:7", lot_code(LOT_GTIN, "LCNT")) == [
        ("warn", ("count_discrepancy",))
    ]
    assert site.stock(lot="LCNT") == {(LOT_GTIN, "LCNT", None, "DOCK1"): 7}
    count, adjust = site.events()[-2:]
    assert count["movement"] == "cycle_count" and count["items"][0]["quantity"] == 7
    assert adjust["movement"] == "adjust"
    assert adjust["reason"] == {"code": "count_discrepancy", "counted": 7, "expected": 10}
    assert adjust["items"][0]["from"] == {"type": "location", "id": "DOCK1"}
    assert adjust["items"][0]["to"] is None and adjust["items"][0]["quantity"] == 3
    # found more than the cache knew: the difference comes in
    site.scan("count", "LOC-DOCK1", "QTY:9", lot_code(LOT_GTIN, "LCNT"))
    assert site.stock(lot="LCNT") == {(LOT_GTIN, "LCNT", None, "DOCK1"): 9}
    # a count that agrees records the count and nothing else
    assert site.verdicts("count", "LOC-DOCK1", "QTY:9", lot_code(LOT_GTIN, "LCNT")) == [
        ("accept", ())
    ]
    assert site.events()[-1]["movement"] == "cycle_count"


def test_a_serial_counted_elsewhere_moves_there(site: Site) -> None:
    assert site.verdicts("count", "LOC-C-09", serial_code(PUMP, "SN1")) == [
        ("warn", ("count_discrepancy",))
    ]
    assert site.stock(serial="SN1") == {(PUMP, "PL1", "SN1", "C-09"): 1}
    assert site.moves(gtin=PUMP, serial="SN1")[-1] == ("cycle_count", "C-01", "C-09", 1)


def test_scrap_needs_a_reason(site: Site) -> None:
    site.scan("dock", "QTY:3", lot_code(LOT_GTIN, "LSC"))
    assert site.verdicts("scrap", "FROM:DOCK1", lot_code(LOT_GTIN, "LSC")) == [
        ("reject", ("reason_required",))
    ]
    assert site.verdicts("scrap", "REASON:damaged", "FROM:DOCK1", lot_code(LOT_GTIN, "LSC")) == [
        ("accept", ())
    ]
    ev = site.events()[-1]
    assert ev["movement"] == "scrap" and ev["reason"] == {"code": "damaged"}
    assert ev["items"][0]["to"] is None
    assert site.stock(lot="LSC") == {(LOT_GTIN, "LSC", None, "DOCK1"): 2}


# -- 14 and FIFO: consumption rules look at pickable stock ----------------------------------
def test_fefo_ignores_quarantined_stock(site: Site) -> None:
    site.scan("returns", "QTY:2", lot_code(LOT_GTIN, "EARLY", expiry="280101"))
    site.scan("dock", "QTY:5", lot_code(LOT_GTIN, "LATE", expiry="300101"))
    assert site.verdicts("pick", lot_code(LOT_GTIN, "LATE", expiry="300101")) == [("accept", ())]


def test_fefo_for_a_serial_tracked_product_counts_its_serials_per_lot(site: Site) -> None:
    """Serials carry their lot: FEFO compares lots by the serials in stock of each."""

    def unit(serial: str, lot: str, expiry: str) -> str:
        return f"]d201{PUMP}17{expiry}10{lot}\x1d21{serial}"

    early = [unit(f"E{i}", "PEARLY", "280131") for i in range(2)]
    late = unit("L1", "PLATE", "300131")
    assert site.verdicts("dock", *early, late) == [("accept", ())] * 3
    out = site.scan("pick", "FROM:DOCK1", late)[-1]
    assert (out.verdict, [r.code for r in out.reasons]) == ("warn", ["fefo_violation"])
    assert "PEARLY" in out.reasons[0].message
    con = site.db()
    try:
        kept = con.execute(
            "SELECT lot, location, quantity FROM serial_stock WHERE gtin = ? ORDER BY lot",
            (PUMP,),
        ).fetchall()
    finally:
        con.close()
    # picked (with the warning) is no longer in stock: the early lot's two serials are
    assert kept == [("PEARLY", "DOCK1", 2), ("PL1", "C-01", 1)]
    assert site.verdicts("pick", "FROM:DOCK1", *early) == [("accept", ())] * 2


def test_fifo_by_receipt(tmp_path: Path) -> None:
    s = Site(
        tmp_path,
        {
            "dock": {"step": "receiving", "location": "DOCK1"},
            "pick": {"step": "picking", "location": "STAGE", "consumption": "fifo"},
        },
    )
    try:
        s.scan("dock", "QTY:5", lot_code(LOT_GTIN, "FIRST", expiry="301231"))
        s.scan("dock", "QTY:5", lot_code(LOT_GTIN, "SECOND", expiry="290101"))
        out = s.scan("pick", "FROM:DOCK1", lot_code(LOT_GTIN, "SECOND", expiry="290101"))[-1]
        assert (out.verdict, [r.code for r in out.reasons]) == ("warn", ["fifo_violation"])
        assert "FIRST" in out.reasons[0].message
        ok = s.scan("pick", "FROM:DOCK1", lot_code(LOT_GTIN, "FIRST", expiry="301231"))[-1]
        assert (ok.verdict, ok.reasons) == ("accept", ())
    finally:
        s.close()


# -- a mislabeled lot: RELABEL re-states the movement with the right lot --------------------
def test_relabel_corrects_the_last_movement(site: Site) -> None:
    site.scan("dock", "QTY:8", lot_code(LOT_GTIN, "WRONG"))
    first = site.events()[-1]
    outs = site.verdicts(
        "dock", "RELABEL", lot_code(LOT_GTIN, "WRONG"), lot_code(LOT_GTIN, "RIGHT")
    )
    assert outs == [("accept", ())]
    assert site.stock(gtin=LOT_GTIN, location="DOCK1") == {(LOT_GTIN, "RIGHT", None, "DOCK1"): 8}
    fix = site.events()[-1]
    assert fix["movement"] == "receive" and fix["corrects"] == [first["event_id"]]
    assert fix["correction_reason"] == "incorrect_data"
    assert fix["items"][0]["lot"] == "RIGHT" and fix["items"][0]["quantity"] == 8
    assert fix["items"][0]["from"] == first["items"][0]["from"]
    # nothing of the wrong lot is left to correct
    assert site.verdicts(
        "dock", "RELABEL", lot_code(LOT_GTIN, "WRONG"), lot_code(LOT_GTIN, "X")
    ) == [("reject", ("relabel_not_possible",))]


def test_relabel_of_a_lot_that_moved_on_is_refused(site: Site) -> None:
    site.scan("dock", "QTY:8", lot_code(LOT_GTIN, "W2"))
    site.scan("pick", "QTY:3", lot_code(LOT_GTIN, "W2"))
    out = site.scan("pick", "RELABEL", lot_code(LOT_GTIN, "W2"), lot_code(LOT_GTIN, "R2"))[-1]
    assert (out.verdict, out.reasons[0].code) == ("reject", "relabel_not_possible")
    assert site.stock(lot="W2") == {
        (LOT_GTIN, "W2", None, "DOCK1"): 5,
        (LOT_GTIN, "W2", None, "STAGE"): 3,
    }


# -- between sites: the other site's GLN from a (410)/(412) barcode ------------------------
def test_ship_to_and_receive_from_a_scanned_gln(site: Site) -> None:
    site.scan("dock", "QTY:4", lot_code(LOT_GTIN, "LX"))
    site.scan("ship", "FROM:DOCK1", "]C14104012345000009", "QTY:4", lot_code(LOT_GTIN, "LX"))
    out = site.events()[-1]["items"][0]
    assert out["to"] == {"type": "party", "id": "4012345000009"}
    site.scan("dock", "]C14124098765000003", "QTY:2", lot_code(LOT_GTIN, "LY"))
    assert site.events()[-1]["items"][0]["from"] == {"type": "party", "id": "4098765000003"}
    # the scanned supplier belongs to this receiving step only
    site.scan("dock", "PUTAWAY", "RECEIVE", "QTY:1", lot_code(LOT_GTIN, "LZ"))
    assert site.events()[-1]["items"][0]["from"] == {"type": "party", "id": "unknown"}


def test_sell_by_counts_when_there_is_no_expiry_or_best_before(site: Site) -> None:
    site.scan("dock", lot_code(LOT_GTIN, "LSB", expiry=None, extra="16240101"))
    out = site.scan("pick", lot_code(LOT_GTIN, "LSB", expiry=None, extra="16240101"))[-1]
    assert (out.verdict, out.reasons[0].code) == ("reject", "lot_expired")
    assert "sell by" in out.reasons[0].message and "(16)" in out.reasons[0].message


def test_fifo_for_a_serial_tracked_product_goes_by_the_serials_arrival(tmp_path: Path) -> None:
    """FIFO compares a serial-tracked lot by when its serials arrived, as it does a lot's
    stock: a unit of the first lot received is picked without a warning, one of a later
    lot warns and names the first."""

    def unit(serial: str, lot: str) -> str:
        return f"]d201{PUMP}1730123110{lot}\x1d21{serial}"

    s = Site(
        tmp_path,
        {
            "dock": {"step": "receiving", "location": "DOCK1"},
            "pick": {"step": "picking", "location": "STAGE", "consumption": "fifo"},
        },
    )
    try:
        first = [unit(f"F{i}", "PFIRST") for i in range(2)]
        second = [unit(f"S{i}", "PSECOND") for i in range(2)]
        assert s.verdicts("dock", *first) == [("accept", ())] * 2
        assert s.verdicts("dock", *second) == [("accept", ())] * 2
        ok = s.scan("pick", "FROM:DOCK1", first[0])[-1]
        assert (ok.verdict, ok.reasons) == ("accept", ())
        late = s.scan("pick", "FROM:DOCK1", second[0])[-1]
        assert (late.verdict, [r.code for r in late.reasons]) == ("warn", ["fifo_violation"])
        assert "PFIRST" in late.reasons[0].message
    finally:
        s.close()
