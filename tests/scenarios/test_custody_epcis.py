"""A warehouse day through the real pipeline, exported as EPCIS 2.0 and validated
against the official schema: custody (from/to) becomes source/destination lists, lot
quantities become quantityLists, pallets their contents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

from mqtt_topics.epcis import to_epcis_document
from tests.scenarios.site import BOX, LOT_GTIN, PUMP, Site, item_code, lot_code, serial_code
from tests.scenarios.test_pallets import combined_code, pallet_code, sscc
from tests.test_epcis import _errors, epcis_validator  # noqa: F401  (fixture)

STATIONS = {
    "dock": {"step": "receiving", "location": "DOCK1", "source": "4098765000003"},
    "store": {"step": "storing", "location": "A1"},
    "pick": {"step": "picking", "location": "STAGE"},
    "pack": {"step": "packing", "location": "STAGE"},
    "ship": {"step": "shipping", "location": "STAGE", "destination": "4055555000001"},
    "hold": {"step": "holding", "location": ""},
    "release": {"step": "releasing", "location": "A1"},
    "returns": {"step": "returning", "location": "RET"},
    "scrap": {"step": "destroying", "location": ""},
}


def _day(site: Site) -> list[dict[str, Any]]:
    site.scan("dock", "PO:4711", "QTY:10", lot_code(LOT_GTIN, "LE"), serial_code(PUMP, "E1", "PL1"))
    site.scan("dock", "QTY:5", item_code(BOX), combined_code(7, "LK", 12))
    site.scan("store", "QTY:4", lot_code(LOT_GTIN, "LE"))
    site.scan("pick", "FROM:DOCK1", "QTY:6", lot_code(LOT_GTIN, "LE"), serial_code(PUMP, "E1"))
    site.scan("pack", pallet_code(1), "QTY:6", lot_code(LOT_GTIN, "LE"), serial_code(PUMP, "E1"))
    site.scan("ship", pallet_code(1), "FROM:DOCK1", "QTY:2", item_code(BOX))
    site.scan("returns", "QTY:1", lot_code(LOT_GTIN, "LE"))
    site.scan("hold", lot_code(LOT_GTIN, "LK"))
    site.scan("release", "QTY:1", lot_code(LOT_GTIN, "LE"))
    site.scan("scrap", "REASON:damaged", "FROM:A1", "QTY:1", lot_code(LOT_GTIN, "LE"))
    return site.events()


def test_a_custody_day_exports_to_valid_epcis(
    tmp_path: Path,
    epcis_validator: Draft7Validator,  # noqa: F811
) -> None:
    site = Site(tmp_path, STATIONS, lots=f"{PUMP},PL1,,active,,0\n")
    try:
        events = _day(site)
    finally:
        site.close()
    moves = [e["movement"] for e in events]
    assert moves == [
        "receive", "receive", "receive", "receive", "putaway", "pick", "pick", "pack", "pack",
        "ship", "ship", "return", "hold", "release", "scrap",
    ]  # fmt: skip
    doc = to_epcis_document(events)
    assert _errors(epcis_validator, doc) == []
    out = doc["epcisBody"]["eventList"]
    receipt = out[0]
    assert receipt["sourceList"] == [
        {"type": "owning_party", "source": "https://id.gs1.org/417/4098765000003"}
    ]
    assert receipt["quantityList"] == [
        {"epcClass": f"https://id.gs1.org/01/{LOT_GTIN}/10/LE", "quantity": 10}
    ]
    pallet_ship = out[9]
    assert f"https://id.gs1.org/00/{sscc(1)}" in pallet_ship["epcList"]
    assert f"https://id.gs1.org/01/{PUMP}/21/E1" in pallet_ship["epcList"]
    assert pallet_ship["destinationList"] == [
        {"type": "owning_party", "destination": "https://id.gs1.org/417/4055555000001"}
    ]
    putaway = out[4]
    assert putaway["tw:fromLocation"].endswith(":DOCK1")
