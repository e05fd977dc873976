"""Random warehouse days: whatever operators scan, the custody invariants hold.

- stock is never negative;
- nothing held or recalled leaves (picked, shipped, consumed) while it is blocked;
- the events alone rebuild the stock per (lot or serial, location) that the cache holds:
  a consumer without the gateway's cache knows where every unit is.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.scenarios.site import BOX, LOT_GTIN, PUMP, Site, item_code, lot_code, serial_code

STATIONS = {
    "dock": {"step": "receiving", "location": "DOCK1"},
    "store": {"step": "storing", "location": "A1"},
    "pick": {"step": "picking", "location": "STAGE"},
    "ship": {"step": "shipping", "location": "STAGE", "destination": "CUST1"},
    "hold": {"step": "holding", "location": ""},
    "release": {"step": "releasing", "location": "A2"},
    "returns": {"step": "returning", "location": "RET"},
    "scrap": {"step": "destroying", "location": ""},
    "xfer": {"step": "transferring", "location": "A2"},
    "pack": {"step": "packing", "location": "STAGE"},
    "count": {"step": "cycle_counting", "location": "A1"},
    "relabel": {"step": "receiving", "location": "DOCK1"},
}
PALLETS = ["]C100340123450000000017", "]C100340123450000000024"]
LOCATIONS = ["DOCK1", "A1", "A2", "STAGE", "QUARANTINE"]
LOTS = ["L1", "L2", "LOTR"]  # LOTR is recalled
SERIALS = ["S1", "S2", "S3"]
LEAVING = {"pick", "ship", "consume", "putaway", "transfer"}


def _op() -> st.SearchStrategy[tuple[str, list[str]]]:
    station = st.sampled_from(sorted(STATIONS))
    prefix = st.lists(
        st.one_of(
            st.integers(1, 12).map(lambda q: f"QTY:{q}"),
            st.sampled_from(LOCATIONS).map(lambda loc: f"FROM:{loc}"),
            st.sampled_from(LOCATIONS).map(lambda loc: f"FROM:{loc}"),
            st.sampled_from(["A1", "A2", "STAGE"]).map(lambda loc: f"LOC-{loc}"),
            st.just("RELABEL"),
        ),
        max_size=2,
    )
    item = st.one_of(
        st.sampled_from(PALLETS),
        st.sampled_from(LOTS).map(lambda lot: lot_code(LOT_GTIN, lot)),
        st.sampled_from(SERIALS).map(lambda s: serial_code(PUMP, s)),
        st.just(item_code(BOX)),
    )
    return st.tuples(station, st.builds(lambda p, i: [*p, i], prefix, item))


def _rebuild(events: list[dict[str, Any]]) -> dict[tuple[Any, ...], int]:
    """Stock from events alone; a correcting event undoes the event it corrects."""
    stock: dict[tuple[Any, ...], int] = defaultdict(int)
    by_id = {ev["event_id"]: ev for ev in events}
    flows: list[tuple[dict[str, Any], int]] = []
    for ev in events:
        for wrong in ev.get("corrects", []):
            flows.append((by_id[wrong], -1))
        flows.append((ev, 1))
    for ev, sign in flows:
        for it in ev["items"]:
            if "gtin" not in it:
                continue
            key = (it["gtin"], it.get("lot"), it.get("serial"))
            q = int(it["quantity"]) * sign
            src, dst = it.get("from"), it.get("to")
            if src is not None and src["type"] == "location":
                stock[(*key, src["id"])] -= q
            if dst is not None and dst["type"] == "location":
                stock[(*key, dst["id"])] += q
    return {k: v for k, v in stock.items() if v != 0}


def _blocked_leaves(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events that took a held or recalled unit out or toward the door while blocked."""
    held: set[tuple[Any, ...]] = set()
    bad = []
    for ev in events:
        for it in ev["items"]:
            if "gtin" not in it:
                continue
            lot_key = ("lot", it["gtin"], it.get("lot"))
            unit_key = ("serial", it["gtin"], it.get("serial"))
            key = unit_key if it.get("serial") else lot_key
            if ev["movement"] == "hold":
                held.add(key)
            elif ev["movement"] == "release":
                held.discard(key)
            elif ev["movement"] in LEAVING:
                to = it.get("to") or {}
                into_quarantine = to.get("id") == "QUARANTINE"
                blocked = key in held or lot_key in held or it.get("lot") == "LOTR"
                if blocked and not into_quarantine:
                    bad.append(ev)
    return bad


#: Every day starts with goods in: lots, untracked boxes and serials at the dock.
MORNING = [
    ("dock", ["QTY:20", lot_code(LOT_GTIN, "L1")]),
    ("dock", ["QTY:20", lot_code(LOT_GTIN, "L2")]),
    ("dock", ["QTY:20", item_code(BOX)]),
    *[("dock", [serial_code(PUMP, s, "PL1")]) for s in SERIALS],
    ("returns", ["QTY:5", lot_code(LOT_GTIN, "LOTR")]),
]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(_op(), min_size=1, max_size=30))
def test_random_days_keep_custody_true(ops: list[tuple[str, list[str]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        site = Site(
            Path(tmp),
            STATIONS,
            lots=f"{LOT_GTIN},LOTR,2030-12-31,recalled,,0\n{PUMP},PL1,,active,,0\n",
            serials="",
            synchronous="NORMAL",
        )
        try:
            for station, codes in [*MORNING, *ops]:
                site.scan(station, *codes)
            con = site.db()
            negative = (
                con.execute("SELECT COUNT(*) FROM lot_stock WHERE quantity < 0").fetchone()[0]
                + con.execute("SELECT COUNT(*) FROM item_stock WHERE quantity < 0").fetchone()[0]
            )
            con.close()
            assert negative == 0
            events = site.events()
            assert _blocked_leaves(events) == []
            assert _rebuild(events) == site.stock()
        finally:
            site.close()
