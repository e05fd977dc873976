"""Scenarios: what arrives by cache sync reaches the scans (issue items 1, 13 and the
despatch-advice half of "Pallets you can see into").

Every delta goes the way the daemon sends it: JSON bytes into ``CacheSync.on_message``,
applied by the real writer (``Writer.call``) between scans.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.store.cache_sync import CacheSync
from gs1.keys import check_digit
from mqtt_topics.topics import GatewayTopics
from mqtt_topics.validation import validate
from tests.scenarios.site import (
    BOX,
    LOT_GTIN,
    PUMP,
    TODAY,
    Site,
    gtin,
    item_code,
    lot_code,
    serial_code,
)

TOPICS = GatewayTopics("s1", "g1")
LONG = gtin("0950600013441")  # arrives by sync: 90 warning days
SHORT = gtin("0950600013442")  # arrives by sync: 7 warning days
PLAIN = gtin("0950600013443")  # arrives by sync without warning days
SUPPLIER = "4098765000002"

STATIONS = {
    "dock": {"step": "receiving", "location": "DOCK1", "source": SUPPLIER},
    "store": {"step": "storing", "location": "A1"},
    "ship": {"step": "shipping", "location": "DOCK1", "destination": "CUST1"},
    "pack": {"step": "packing", "location": "DOCK1"},
}


def sscc(n: int) -> str:
    body = f"3409876500000{n:04d}"
    return body + str(check_digit(body))


def pallet_code(n: int) -> str:
    """A bare SSCC label: (00) only."""
    return f"]C100{sscc(n)}"


def yymmdd(days: int) -> str:
    return (TODAY + timedelta(days=days)).strftime("%y%m%d")


class Central:
    """The central side of one gateway: sends deltas, sees the gateway's acks."""

    def __init__(self, site: Site) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.sync = CacheSync(topics=TOPICS, run_in_writer=site.writer.call, publish=self._publish)
        site.writer.call(lambda s: s.set_meta("cache_version", "1"))  # seeded by CSV import
        self.version = 1

    def _publish(self, topic: str, payload: dict[str, Any], qos: int, retain: bool = False) -> None:
        assert validate(payload) == [], payload
        self.sent.append((topic, payload))

    def delta(self, *changes: dict[str, Any]) -> None:
        """Send the next delta and check that the gateway applied it."""
        d = {
            "schema": {"name": "traceway.cache_delta", "version": "1.1"},
            "from_version": self.version,
            "version": self.version + 1,
            "generated_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "changes": list(changes),
        }
        result = self.sync.on_message(TOPICS.cache_delta, json.dumps(d).encode())
        assert result == "applied", (result, self.sent[-1:])
        self.version += 1
        ack = [p for t, p in self.sent if t == TOPICS.cache_ack][-1]
        assert ack["ok"] and ack["version"] == self.version

    def counts(self) -> dict[str, int]:
        report = [p for t, p in self.sent if t == TOPICS.cache_version][-1]
        counts: dict[str, int] = report["counts"]
        return counts


def product(g: str, tracking: str, days: int | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {"gtin": g, "description": f"product {g}"}
    if tracking == "lot":
        rec["lot_tracked"] = True
    elif tracking == "serial":
        rec["serialised"] = True
    if days is not None:
        rec["expiry_warning_days"] = days
    return {"op": "upsert", "entity": "product", "record": rec}


def recall(rid: str, g: str, lots: list[str]) -> dict[str, Any]:
    rec = {
        "recall_id": rid,
        "gtin": g,
        "lots": lots,
        "reason": "test",
        "since": "2026-11-21T08:00:00.000Z",
    }
    return {"op": "upsert", "entity": "recall", "record": rec}


def advice(n: int, *items: dict[str, Any], desadv: str = "DA-1") -> dict[str, Any]:
    rec = {"sscc": sscc(n), "desadv_id": desadv, "items": list(items)}
    return {"op": "upsert", "entity": "despatch_advice", "record": rec}


def line(
    g: str, quantity: int = 1, lot: str | None = None, serial: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"gtin": g, "quantity": quantity}
    if lot is not None:
        out["lot"] = lot
    if serial is not None:
        out["serial"] = serial
    return out


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(
        tmp_path,
        STATIONS,
        lots=f"{PUMP},PL1,,active,,0\n{LOT_GTIN},LA,2030-12-31,active,A1,40\n",
        serials=f"{PUMP},SN1,PL1,in_stock,A1\n",
    )
    yield s
    s.close()


@pytest.fixture
def central(site: Site) -> Central:
    return Central(site)


# -- 13: warning days per product arrive by cache sync ------------------------------------------
def test_synced_warning_days_decide_near_expiry(site: Site, central: Central) -> None:
    central.delta(product(LONG, "lot", 90), product(SHORT, "lot", 7), product(PLAIN, "lot"))
    in_80_days = yymmdd(80)
    got = site.verdicts(
        "dock",
        lot_code(LONG, "L1", in_80_days),
        lot_code(SHORT, "L1", in_80_days),
        lot_code(PLAIN, "L1", in_80_days),
    )
    assert got == [("warn", ("near_expiry",)), ("accept", ()), ("accept", ())]
    assert "within 90 days" in site.outcomes[-3].reasons[0].message
    # a later record without the field keeps the product's days; one with it replaces them
    central.delta(product(LONG, "lot"), product(SHORT, "lot", 120))
    assert site.verdicts(
        "dock", lot_code(LONG, "L2", in_80_days), lot_code(SHORT, "L2", in_80_days)
    ) == [("warn", ("near_expiry",)), ("warn", ("near_expiry",))]


# -- pallets you can see into: a despatch advice delivered by cache sync -------------------------
def test_receiving_a_pallet_from_a_despatch_advice_receives_its_contents(
    site: Site, central: Central
) -> None:
    central.delta(
        advice(
            1,
            line(LOT_GTIN, 12, lot="DA1"),
            line(LOT_GTIN, 3, lot="DA2"),
            line(PUMP, serial="DS1", lot="PL1"),
            line(PUMP, serial="DS2", lot="PL1"),
            line(BOX, 5),
        )
    )
    assert central.counts()["despatch_advices"] == 1
    assert site.stock(location="DOCK1") == {}  # expected, not here yet
    assert site.verdicts("dock", pallet_code(1)) == [("accept", ())]
    assert site.stock(location="DOCK1") == {
        (LOT_GTIN, "DA1", None, "DOCK1"): 12,
        (LOT_GTIN, "DA2", None, "DOCK1"): 3,
        (PUMP, "PL1", "DS1", "DOCK1"): 1,
        (PUMP, "PL1", "DS2", "DOCK1"): 1,
        (BOX, None, None, "DOCK1"): 5,
    }
    ev = site.events()[-1]
    assert ev["movement"] == "receive"
    assert [i.get("sscc") or i.get("serial") or i.get("lot") or i["gtin"] for i in ev["items"]] == [
        sscc(1),
        "DA1",
        "DA2",
        "DS1",
        "DS2",
        BOX,
    ]
    assert all(i["from"] == {"type": "party", "id": SUPPLIER} for i in ev["items"])
    assert all(i["to"] == {"type": "location", "id": "DOCK1"} for i in ev["items"])
    assert [m[:3] for m in site.moves(sscc=sscc(1))] == [("receive", f"party:{SUPPLIER}", "DOCK1")]
    # the pallet moves with what is on it, and the serials are the gateway's own now
    assert site.verdicts("store", pallet_code(1)) == [("accept", ())]
    assert site.stock(lot="DA1") == {(LOT_GTIN, "DA1", None, "A1"): 12}
    assert site.stock(serial="DS1") == {(PUMP, "PL1", "DS1", "A1"): 1}
    assert site.verdicts("ship", serial_code(PUMP, "DS1")) == [("accept", ())]
    assert site.stock(serial="DS1") == {}


def test_a_later_despatch_advice_replaces_an_expected_pallet_only(
    site: Site, central: Central
) -> None:
    central.delta(advice(2, line(LOT_GTIN, 10, lot="OLD")))
    central.delta(advice(2, line(LOT_GTIN, 8, lot="NEW"), desadv="DA-2"))
    assert site.verdicts("dock", pallet_code(2)) == [("accept", ())]
    assert site.stock(location="DOCK1") == {(LOT_GTIN, "NEW", None, "DOCK1"): 8}
    # received: a despatch advice (or its deletion) no longer changes what is on it
    central.delta(advice(2, line(LOT_GTIN, 99, lot="LATE"), desadv="DA-3"))
    central.delta({"op": "delete", "entity": "despatch_advice", "key": {"sscc": sscc(2)}})
    assert site.verdicts("store", pallet_code(2)) == [("accept", ())]
    assert site.stock(lot="NEW") == {(LOT_GTIN, "NEW", None, "A1"): 8}
    assert site.stock(lot="LATE") == {}
    assert central.counts()["despatch_advices"] == 0


def test_a_deleted_despatch_advice_leaves_the_pallet_unknown(site: Site, central: Central) -> None:
    central.delta(advice(4, line(LOT_GTIN, 10, lot="GONE")))
    central.delta({"op": "delete", "entity": "despatch_advice", "key": {"sscc": sscc(4)}})
    assert central.counts()["despatch_advices"] == 0
    assert site.verdicts("dock", pallet_code(4)) == [("warn", ("pallet_contents_unknown",))]
    assert site.stock(lot="GONE") == {}


def test_a_pallet_holding_a_recalled_lot_is_refused_at_the_dock(
    site: Site, central: Central
) -> None:
    central.delta(
        advice(5, line(LOT_GTIN, 10, lot="DR1"), line(PUMP, serial="DS5", lot="PL1")),
        recall("R-DR1", LOT_GTIN, ["DR1"]),
    )
    # as a single case of the lot would be (the reason-code table): refused, nothing moves
    out = site.scan("dock", pallet_code(5))[-1]
    assert (out.verdict, out.reasons[0].code) == ("reject", "lot_recalled")
    assert "DR1" in out.reasons[0].message and sscc(5) in out.reasons[0].message
    assert site.stock(lot="DR1") == {}
    assert not [k for k in site.stock(lot="PL1") if k[2] == "DS5"]


def test_a_recall_after_the_receipt_stops_the_pallet_and_its_serials(
    site: Site, central: Central
) -> None:
    central.delta(advice(6, line(PUMP, serial="DS6", lot="DL6"), line(LOT_GTIN, 4, lot="DL7")))
    assert site.verdicts("dock", pallet_code(6)) == [("accept", ())]
    central.delta(recall("R-DL6", PUMP, ["DL6"]))
    out = site.scan("ship", pallet_code(6))[-1]
    assert (out.verdict, out.reasons[0].code) == ("reject", "lot_recalled")
    # the serial alone, scanned without (10): its lot from the despatch advice is recalled
    assert site.verdicts("ship", serial_code(PUMP, "DS6")) == [("reject", ("lot_recalled",))]


# -- 1: a recall that arrives by cache-sync delta ------------------------------------------------
def test_serial_of_a_lot_recalled_by_delta_without_10_is_stopped(
    site: Site, central: Central
) -> None:
    site.scan("dock", serial_code(PUMP, "SN7", "PL1"))
    central.delta(recall("R-PL1", PUMP, ["PL1"]))
    assert site.verdicts("ship", serial_code(PUMP, "SN1")) == [("reject", ("lot_recalled",))]
    assert site.verdicts("ship", serial_code(PUMP, "SN7")) == [("reject", ("lot_recalled",))]
    assert site.verdicts("pack", pallet_code(9), serial_code(PUMP, "SN7"))[-1] == (
        "reject",
        ("lot_recalled",),
    )
    assert site.stock(serial="SN7") == {(PUMP, "PL1", "SN7", "DOCK1"): 1}


def test_serial_whose_lot_the_cache_only_knows_from_the_serial_is_stopped(
    site: Site, central: Central
) -> None:
    # the serial record names a lot the cache has no lot record for; the recall names it
    central.delta(
        {
            "op": "upsert",
            "entity": "serial",
            "record": {"gtin": PUMP, "serial": "SN8", "lot": "ONLYSER", "state": "in_stock"},
        }
    )
    central.delta(recall("R-ONLY", PUMP, ["ONLYSER"]))
    assert site.verdicts("ship", serial_code(PUMP, "SN8")) == [("reject", ("lot_recalled",))]
    central.delta({"op": "delete", "entity": "recall", "key": {"recall_id": "R-ONLY"}})
    assert site.verdicts("ship", serial_code(PUMP, "SN8"))[0][0] != "reject"


def test_gtin_wide_recall_by_delta_stops_untracked_goods_and_unseen_lots(
    site: Site, central: Central
) -> None:
    site.scan("dock", "QTY:10", item_code(BOX))
    central.delta(recall("R-BOX", BOX, []), recall("R-ALL", LOT_GTIN, []))
    assert site.verdicts("ship", "QTY:2", item_code(BOX)) == [("reject", ("lot_recalled",))]
    assert site.verdicts("dock", item_code(BOX)) == [("reject", ("lot_recalled",))]
    assert site.stock(gtin=BOX) == {(BOX, None, None, "DOCK1"): 10}
    # a lot this gateway has never seen is recalled too: not received, not shipped
    never = lot_code(LOT_GTIN, "NEVER")
    assert site.verdicts("dock", never) == [("reject", ("lot_recalled",))]
    assert site.verdicts("ship", never) == [("reject", ("lot_recalled", "unknown_lot"))]
    assert site.verdicts("ship", "FROM:A1", lot_code(LOT_GTIN, "LA")) == [
        ("reject", ("lot_recalled",))
    ]
    assert site.stock(lot="NEVER") == {}
    assert site.stock(lot="LA") == {(LOT_GTIN, "LA", None, "A1"): 40}
