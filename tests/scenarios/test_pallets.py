"""Scenarios: pallets you can see into (issue items 2 and 11).

A pallet moves with what is on it; shipping it checks every line (hold, recall,
expiry); a pallet that left cannot leave again; a hold reaches a unit through its
pallet; a combined (00)(02)(37)(10) label keeps its SSCC.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gs1.keys import check_digit
from tests.scenarios.site import LOT_GTIN, PUMP, Site, lot_code, serial_code

STATIONS = {
    "dock": {"step": "receiving", "location": "DOCK1"},
    "pick": {"step": "picking", "location": "STAGE"},
    "pack": {"step": "packing", "location": "STAGE"},
    "store": {"step": "storing", "location": "A1"},
    "ship": {"step": "shipping", "location": "STAGE", "destination": "CUST1"},
    "hold": {"step": "holding", "location": ""},
    "release": {"step": "releasing", "location": "STAGE"},
}


def sscc(n: int) -> str:
    body = f"3401234500000{n:04d}"
    return body + str(check_digit(body))


def pallet_code(n: int) -> str:
    return f"]C100{sscc(n)}"


def combined_code(n: int, lot: str, count: int) -> str:
    """A logistic label: (00) pallet, (02) content GTIN, (37) count, (10) lot."""
    return f"]C100{sscc(n)}02{LOT_GTIN}37{count}\x1d10{lot}"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path, STATIONS, lots=f"{PUMP},PL1,,active,,0\n")
    yield s
    s.close()


def _build_pallet(site: Site) -> None:
    """Receive 10 of lot LP and two pumps, pick them, pack 6 of LP and one pump on pallet 1."""
    site.scan("dock", "QTY:10", lot_code(LOT_GTIN, "LP"))
    site.scan("dock", serial_code(PUMP, "P1", "PL1"), serial_code(PUMP, "P2", "PL1"))
    site.scan("pick", "QTY:6", lot_code(LOT_GTIN, "LP"), serial_code(PUMP, "P1"))
    packed = site.verdicts(
        "pack", pallet_code(1), "QTY:6", lot_code(LOT_GTIN, "LP"), serial_code(PUMP, "P1")
    )
    assert packed == [("accept", ()), ("accept", ())]


def test_shipping_a_pallet_ships_what_is_on_it_once(site: Site) -> None:
    _build_pallet(site)
    assert site.verdicts("ship", pallet_code(1)) == [("accept", ())]
    assert site.stock(lot="LP") == {(LOT_GTIN, "LP", None, "DOCK1"): 4}
    assert site.stock(serial="P1") == {}
    ev = site.events()[-1]
    assert [i.get("sscc") or i.get("serial") or i.get("lot") for i in ev["items"]] == [
        sscc(1),
        "LP",
        "P1",
    ]
    assert all(i["to"] == {"type": "party", "id": "CUST1"} for i in ev["items"])
    assert site.verdicts("ship", pallet_code(1)) == [("reject", ("pallet_already_shipped",))]
    assert site.stock(lot="LP") == {(LOT_GTIN, "LP", None, "DOCK1"): 4}


def test_a_recalled_lot_on_a_pallet_stops_the_pallet(site: Site) -> None:
    _build_pallet(site)
    site.db().execute("UPDATE lots SET status = 'recalled' WHERE lot = 'LP'").connection.commit()
    out = site.scan("ship", pallet_code(1))[-1]
    assert (out.verdict, out.reasons[0].code) == ("reject", "lot_recalled")
    assert "pallet" in out.reasons[0].message and "LP" in out.reasons[0].message
    assert site.stock(serial="P1") == {(PUMP, "PL1", "P1", "STAGE"): 1}


def test_a_pallet_hold_reaches_its_units(site: Site) -> None:
    _build_pallet(site)
    assert site.verdicts("hold", pallet_code(1)) == [("accept", ())]
    assert site.verdicts("ship", pallet_code(1)) == [("reject", ("pallet_on_hold",))]
    # the pump on the held pallet cannot leave on its own either
    assert site.verdicts("ship", serial_code(PUMP, "P1")) == [("reject", ("serial_on_hold",))]
    assert site.verdicts("release", pallet_code(1)) == [("accept", ())]
    assert site.verdicts("ship", pallet_code(1)) == [("accept", ())]


def test_an_unknown_pallet_cannot_be_shipped(site: Site) -> None:
    assert site.verdicts("ship", pallet_code(9)) == [("reject", ("not_in_stock",))]


def test_putaway_of_a_pallet_moves_its_contents(site: Site) -> None:
    _build_pallet(site)
    assert site.verdicts("store", pallet_code(1)) == [("accept", ())]
    assert site.stock(lot="LP") == {
        (LOT_GTIN, "LP", None, "DOCK1"): 4,
        (LOT_GTIN, "LP", None, "A1"): 6,
    }
    assert site.stock(serial="P1") == {(PUMP, "PL1", "P1", "A1"): 1}
    assert site.moves(sscc=sscc(1))[-1][:3] == ("putaway", "STAGE", "A1")


def test_a_combined_label_keeps_its_sscc(site: Site) -> None:
    assert site.verdicts("dock", combined_code(2, "LC", 24)) == [("accept", ())]
    assert site.stock(lot="LC") == {(LOT_GTIN, "LC", None, "DOCK1"): 24}
    ev = site.events()[-1]
    assert ev["items"][0]["sscc"] == sscc(2)
    assert ev["items"][1]["lot"] == "LC" and ev["items"][1]["quantity"] == 24
    # the pallet is known now: shipping it ships the 24
    assert site.verdicts("ship", pallet_code(2)) == [("accept", ())]
    assert site.stock(lot="LC") == {}
    assert site.verdicts("dock", pallet_code(2)) == [("accept", ())]  # it may come back


def test_receiving_the_same_pallet_twice_is_refused(site: Site) -> None:
    site.scan("dock", combined_code(3, "LD", 5))
    assert site.verdicts("dock", pallet_code(3)) == [("reject", ("pallet_in_stock",))]
    assert site.stock(lot="LD") == {(LOT_GTIN, "LD", None, "DOCK1"): 5}
