"""Cache sync: planning, snapshot/delta application on real SQLite, the shell, and a recall
arriving through a private mosquitto while scans flow."""

from __future__ import annotations

import json
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from drivers.scanners.types import RawScan
from gateway.outcome import Outcome
from gateway.store.cache_import import import_csv
from gateway.store.cache_sync import (
    Apply,
    CacheSync,
    Gap,
    Ignore,
    SnapshotAssembler,
    apply_delta,
    apply_snapshot,
    cache_counts,
    held_version,
    plan_delta,
    publish_json,
)
from gateway.store.db import open_database
from gateway.store.hot import HotStore, connect
from mqtt_topics.cache import validate_delta, validate_snapshot
from mqtt_topics.topics import GatewayTopics
from mqtt_topics.validation import validate
from tests.conftest import Broker
from tests.test_pipeline import DEMO, Harness, make_cfg

PARA = "09506000134352"  # lot-tracked: LOTA, LOTB, LOTX (expired), LOTR (recalled)
PUMP = "09506000134369"  # serial-tracked: SN1001 in stock, SN1002 shipped
SALINE = "09506000134376"
BOX = "09506000134383"
TOPICS = GatewayTopics("s1", "g1")
SHIP_LOTA = "]C101095060001343521730033110LOTA"
SHIP_SN1001 = "]C1010950600013436921SN1001"


def ts(offset_s: float = 0.0) -> str:
    t = datetime.now(UTC) + timedelta(seconds=offset_s)
    return t.isoformat(timespec="milliseconds")


def snapshot(version: int, *, generated_at: str | None = None, **tables: Any) -> dict[str, Any]:
    snap: dict[str, Any] = {
        "schema": {"name": "traceway.cache_snapshot", "version": "1.0"},
        "version": version,
        "generated_at": generated_at or ts(),
        "request_id": tables.pop("request_id", None),
        "chunk": tables.pop("chunk", {"index": 0, "count": 1}),
    }
    for t in ("products", "lots", "serials", "holds", "recalls"):
        snap[t] = tables.get(t, [])
    if "despatch_advices" in tables:
        snap["despatch_advices"] = tables["despatch_advices"]
    assert validate_snapshot(snap) == [], validate_snapshot(snap)
    return snap


def delta(
    frm: int, to: int, *changes: dict[str, Any], generated_at: str | None = None
) -> dict[str, Any]:
    d = {
        "schema": {"name": "traceway.cache_delta", "version": "1.0"},
        "from_version": frm,
        "version": to,
        "generated_at": generated_at or ts(),
        "changes": list(changes) or [lot_up(PARA, "LOTA", "released")],
    }
    assert validate_delta(d) == [], validate_delta(d)
    return d


def lot_up(gtin: str, lot: str, status: str, expiry: str | None = "2030-03-31") -> dict[str, Any]:
    rec = {"gtin": gtin, "lot": lot, "expiry": expiry, "status": status}
    return {"op": "upsert", "entity": "lot", "record": rec}


def recall(rid: str, gtin: str, lots: list[str]) -> dict[str, Any]:
    rec = {"recall_id": rid, "gtin": gtin, "lots": lots, "reason": "test", "since": ts()}
    return {"op": "upsert", "entity": "recall", "record": rec}


def hold(hid: str, **scope: str) -> dict[str, Any]:
    rec = {"hold_id": hid, "scope": scope, "reason": "lab", "since": ts()}
    return {"op": "upsert", "entity": "hold", "record": rec}


def delete(entity: str, **key: str) -> dict[str, Any]:
    return {"op": "delete", "entity": entity, "key": key}


PRODUCTS = [
    {"gtin": PARA, "description": "Paracetamol", "lot_tracked": True},
    {"gtin": PUMP, "description": "Pump", "serialised": True},
    {"gtin": SALINE, "description": "Saline", "lot_tracked": True},
]


# -- pure ------------------------------------------------------------------------------------
def test_plan_delta() -> None:
    assert plan_delta(None, delta(1, 2)) == Gap(None, 1)
    assert plan_delta(5, delta(5, 6)) == Apply()
    assert plan_delta(5, delta(4, 5)) == Ignore("duplicate")
    assert plan_delta(5, delta(3, 4)) == Ignore("old")
    assert plan_delta(5, delta(7, 8)) == Gap(5, 7)
    assert plan_delta(5, delta(4, 6)) == Gap(5, 4)  # overlaps: cannot be applied in part


def test_snapshot_chunks_merge_in_any_order_and_restart_on_new_version() -> None:
    a = SnapshotAssembler()
    c0 = snapshot(3, chunk={"index": 0, "count": 2}, products=PRODUCTS[:1])
    c1 = snapshot(3, chunk={"index": 1, "count": 2}, products=PRODUCTS[1:])
    other = snapshot(4, chunk={"index": 0, "count": 2}, products=PRODUCTS[:1])
    assert a.add(c1) is None
    assert a.add(other) is None  # a newer snapshot started: version 3's chunk is dropped
    assert a.add(c0) is None  # ... so this starts version 3 again
    merged = a.add(c1)
    assert merged is not None and [p["gtin"] for p in merged["products"]] == [PARA, PUMP, SALINE]
    assert validate_snapshot(merged) == []


def test_assembled_chunks_keep_lots_and_serials_compact_and_apply_as_the_whole(
    tmp_path: Path,
) -> None:
    lots = [
        {"gtin": PARA, "lot": f"L{i}", "expiry": "2030-04-30", "status": "released"}
        for i in range(5)
    ] + [{"gtin": SALINE, "lot": "N1", "expiry": None, "status": "recalled"}]
    sers = [
        {
            "gtin": PUMP,
            "serial": f"S{i}",
            "state": "commissioned",
            **({"lot": "PL1"} if i % 2 else {}),
        }
        for i in range(6)
    ] + [{"gtin": PUMP, "serial": "S9", "state": "destroyed"}]
    whole = snapshot(5, products=PRODUCTS, lots=lots, serials=sers)
    a = SnapshotAssembler()
    assert (
        a.add(snapshot(5, chunk={"index": 1, "count": 2}, lots=lots[3:], serials=sers[4:])) is None
    )
    merged = a.add(
        snapshot(
            5, chunk={"index": 0, "count": 2}, products=PRODUCTS, lots=lots[:3], serials=sers[:4]
        )
    )
    assert merged is not None
    assert all(isinstance(r, tuple) for r in merged["lots"] + merged["serials"])
    assert merged["lots"][0] == (PARA, "L0", "2030-04-30", "released")
    assert merged["serials"][-1] == (PUMP, "S9", None, "destroyed")

    def applied(snap: dict[str, Any], name: str) -> tuple[list[Any], list[Any]]:
        path = tmp_path / f"{name}.db"
        open_database(path).dispose()
        conn = connect(path)
        st = HotStore(conn)
        tx(st, lambda s: apply_snapshot(s, snap))
        out = (
            conn.execute("SELECT gtin, lot, expiry, status FROM lots ORDER BY 1, 2").fetchall(),
            conn.execute("SELECT gtin, serial, lot, state FROM serials ORDER BY 1, 2").fetchall(),
        )
        conn.close()
        return out

    assert applied(merged, "chunked") == applied(whole, "whole")
    assert len(applied(merged, "again")[1]) == 7


def test_staged_chunks_hold_nothing_in_memory_and_apply_as_the_whole(tmp_path: Path) -> None:
    """As the gateway assembles: each chunk's rows go to the writer's TEMP staging tables
    (one transaction per chunk); a chunk delivered twice, a newer snapshot's chunk and a
    failing stage leave no stray rows; the result equals the whole snapshot applied."""
    lots = [
        {"gtin": PARA, "lot": f"L{i}", "expiry": "2030-04-30", "status": "released"}
        for i in range(6)
    ]
    sers = [{"gtin": PUMP, "serial": f"S{i}", "state": "commissioned"} for i in range(8)]

    def chunk(i: int, version: int = 5) -> dict[str, Any]:
        return snapshot(
            version,
            chunk={"index": i, "count": 2},
            products=PRODUCTS if i == 0 else [],
            lots=lots[3 * i : 3 * i + 3],
            serials=sers[4 * i : 4 * i + 4],
        )

    def fresh(name: str) -> HotStore:
        path = tmp_path / f"{name}.db"
        open_database(path).dispose()
        return HotStore(connect(path))

    st = fresh("staged")
    calls: list[str] = []
    fail = {"now": False}

    def stager(fn: Callable[[HotStore], None]) -> None:
        calls.append(getattr(fn, "__name__", "?"))
        if fail["now"]:
            raise sqlite3.OperationalError("database or disk is full")
        tx(st, fn)

    def staged(table: str) -> int:
        return int(st.conn.execute(f"SELECT COUNT(*) FROM temp.{table}").fetchone()[0])

    a = SnapshotAssembler(stager=stager)
    assert a.add(chunk(0, version=4)) is None  # an older snapshot, left unfinished
    assert a.add(chunk(1)) is None  # version 5 starts over: version 4's rows are dropped
    assert staged("sync_stage_serials") == 4
    assert a.add(chunk(1)) is None  # delivered again (QoS 1): replaces its first copy
    assert staged("sync_stage_serials") == 4 and staged("sync_stage_lots") == 3
    assert a.chunks[1]["lots"] == [] and a.chunks[1]["serials"] == []  # nothing in memory
    merged = a.add(chunk(0))
    assert merged is not None and merged["staged"] is True
    assert merged["lots"] == [] and merged["serials"] == []
    assert staged("sync_stage_serials") == 8 and staged("sync_stage_lots") == 6
    tx(st, lambda s: apply_snapshot(s, merged))
    assert st.conn.execute(
        "SELECT COUNT(*) FROM sqlite_temp_master WHERE name LIKE 'sync_stage%'"
    ).fetchone() == (0,)  # dropped with the apply

    whole = fresh("whole")
    tx(whole, lambda s: apply_snapshot(s, snapshot(5, products=PRODUCTS, lots=lots, serials=sers)))
    for sql in (
        "SELECT gtin, lot, expiry, status FROM lots ORDER BY 1, 2",
        "SELECT gtin, serial, lot, state FROM serials ORDER BY 1, 2",
        "SELECT gtin, tracking FROM products ORDER BY 1",
    ):
        assert st.conn.execute(sql).fetchall() == whole.conn.execute(sql).fetchall()

    fail["now"] = True  # the disk is full while a chunk is staged
    with pytest.raises(sqlite3.OperationalError):
        a.add(chunk(0, version=6))
    assert a.key is None and a.chunks == {}  # forgotten: the next resync starts over
    fail["now"] = False
    assert a.add(chunk(1, version=6)) is None and list(a.chunks) == [1]


# -- real SQLite -------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> Iterator[HotStore]:
    path = tmp_path / "c.db"
    engine = open_database(path)
    import_csv(engine, DEMO / "products.csv", DEMO / "lots.csv", DEMO / "serials.csv")
    engine.dispose()
    conn = connect(path)
    yield HotStore(conn)
    conn.close()


def tx(store: HotStore, fn: Callable[[HotStore], Any]) -> Any:
    store.begin()
    try:
        out = fn(store)
    except BaseException:
        store.rollback()
        raise
    store.commit()
    return out


def status(store: HotStore, gtin: str, lot: str) -> str | None:
    row = store.lot(gtin, lot)
    return row[1].status if row else None


def stock(store: HotStore, lot: str) -> int | None:
    row = store.conn.execute(
        "SELECT SUM(s.quantity) FROM lots l JOIN lot_stock s ON s.lot_id = l.id WHERE l.lot = ?",
        (lot,),
    ).fetchone()
    return None if row is None else row[0]


def test_snapshot_replaces_master_data_and_keeps_local_stock(store: HotStore) -> None:
    lots = [
        {"gtin": PARA, "lot": "LOTA", "expiry": "2030-04-30", "status": "released"},
        {"gtin": PARA, "lot": "LOTB", "expiry": "2030-09-30", "status": "quarantined"},
    ]
    v = tx(store, lambda s: apply_snapshot(s, snapshot(10, products=PRODUCTS, lots=lots)))
    assert v == 10 and tx(store, held_version) == 10
    assert store.product(BOX) is None  # not in the snapshot: gone
    assert store.product(PUMP) is not None and store.product(PUMP).tracking == "serial"  # type: ignore[union-attr]
    la = store.lot(PARA, "LOTA")
    assert la is not None and la[1].expiry is not None and la[1].expiry.isoformat() == "2030-04-30"
    assert stock(store, "LOTA") == 50  # stock is not master data
    assert status(store, PARA, "LOTB") == "hold"
    # missing from the snapshot: kept with its stock; dropped when it holds none
    assert stock(store, "LOTX") == 10 and stock(store, "LOTR") == 25
    assert status(store, PARA, "LOTR") == "recalled"
    assert store.lot(PUMP, "PUMPLOT1") is None
    assert tx(store, cache_counts) == {
        "products": 3,
        "lots": 5,
        "serials": 2,
        "holds": 0,
        "recalls": 0,
        "despatch_advices": 0,
    }


def test_snapshot_does_not_undo_a_later_local_movement(store: HotStore) -> None:
    cut = time.time()
    # SN1001 moved here (shipped) after the snapshot was cut; SN1002 was not touched since
    store.conn.execute(
        "UPDATE serials SET state = 'shipped', updated_at = ? WHERE serial = 'SN1001'", (cut + 5,)
    )
    store.conn.execute("UPDATE serials SET updated_at = ? WHERE serial = 'SN1002'", (cut - 60,))
    serials = [
        {"gtin": PUMP, "serial": "SN1001", "state": "in_stock"},
        {"gtin": PUMP, "serial": "SN1002", "state": "returned"},
    ]
    snap = snapshot(3, products=PRODUCTS, serials=serials, generated_at=ts(0))
    tx(store, lambda s: apply_snapshot(s, snap))
    assert store.serial(PUMP, "SN1001").state == "shipped"  # type: ignore[union-attr]
    assert store.serial(PUMP, "SN1002").state == "in_stock"  # type: ignore[union-attr]


def test_recalls_and_holds_derive_lot_status_and_lift_cleanly(store: HotStore) -> None:
    lots = [
        {"gtin": PARA, "lot": "LOTA", "expiry": "2030-03-31", "status": "released"},
        {"gtin": PARA, "lot": "LOTB", "expiry": "2030-09-30", "status": "quarantined"},
    ]
    sers = [{"gtin": PUMP, "serial": "SN1001", "state": "in_stock"}]
    tx(store, lambda s: apply_snapshot(s, snapshot(1, products=PRODUCTS, lots=lots, serials=sers)))
    tx(store, lambda s: apply_delta(s, delta(1, 2, recall("R1", PARA, []))))
    assert {status(store, PARA, x) for x in ("LOTA", "LOTB", "LOTX")} == {"recalled"}
    # a lot created locally later (a receipt) inherits the GTIN-wide recall (trigger)
    tx(store, lambda s: s.ensure_lot(PARA, "NEWLOT", None, time.time()))
    assert status(store, PARA, "NEWLOT") == "recalled"
    tx(store, lambda s: apply_delta(s, delta(2, 3, delete("recall", recall_id="R1"))))
    assert status(store, PARA, "LOTA") == "active"
    assert status(store, PARA, "LOTB") == "hold"  # back to its central status
    assert status(store, PARA, "NEWLOT") == "active"
    tx(store, lambda s: apply_delta(s, delta(3, 4, hold("H1", gtin=PARA, lot="LOTA"))))
    assert status(store, PARA, "LOTA") == "hold" and status(store, PARA, "LOTX") == "active"
    tx(store, lambda s: apply_delta(s, delta(4, 5, hold("H2", gtin=PUMP, serial="SN1001"))))
    assert store.serial(PUMP, "SN1001").state == "on_hold"  # type: ignore[union-attr]
    assert tx(store, cache_counts)["holds"] == 2
    d = delta(5, 6, delete("hold", hold_id="H1"), delete("hold", hold_id="H2"))
    tx(store, lambda s: apply_delta(s, d))
    assert status(store, PARA, "LOTA") == "active"
    assert store.serial(PUMP, "SN1001").state == "in_stock"  # type: ignore[union-attr]
    # a CSV-seeded status is the lot's base: LOTR stays recalled through hold and release
    tx(store, lambda s: apply_delta(s, delta(6, 7, hold("H3", gtin=PARA))))
    tx(store, lambda s: apply_delta(s, delta(7, 8, delete("hold", hold_id="H3"))))
    assert status(store, PARA, "LOTR") == "recalled"
    assert tx(store, held_version) == 8


def test_failed_apply_changes_nothing(store: HotStore) -> None:
    bad = delta(1, 2, lot_up(PARA, "LOTA", "recalled"))
    bad["changes"].append({"op": "upsert", "entity": "nonsense", "record": {}})
    tx(store, lambda s: s.set_meta("cache_version", "1"))
    with pytest.raises(ValueError, match="nonsense"):
        tx(store, lambda s: apply_delta(s, bad))
    assert status(store, PARA, "LOTA") == "active"
    assert tx(store, held_version) == 1


def warn_days(store: HotStore, gtin: str) -> int | None:
    p = store.product(gtin)
    return None if p is None else p.expiry_warning_days


def test_warning_days_arrive_with_the_product_or_are_kept(store: HotStore) -> None:
    assert warn_days(store, PARA) == 60  # seeded by CSV
    new = "09506000134390"
    products = [
        {**PRODUCTS[0]},  # no warning days: the CSV's 60 is kept
        {**PRODUCTS[1], "expiry_warning_days": 0},
        {**PRODUCTS[2], "expiry_warning_days": 90},
        {"gtin": new, "lot_tracked": True},  # new, no warning days: 30
    ]
    tx(store, lambda s: apply_snapshot(s, snapshot(1, products=products)))
    assert [warn_days(store, g) for g in (PARA, PUMP, SALINE, new)] == [60, 0, 90, 30]
    d = delta(
        1,
        2,
        {"op": "upsert", "entity": "product", "record": {**PRODUCTS[0], "expiry_warning_days": 7}},
        {"op": "upsert", "entity": "product", "record": PRODUCTS[2]},
    )
    tx(store, lambda s: apply_delta(s, d))
    assert [warn_days(store, g) for g in (PARA, SALINE)] == [7, 90]


SSCC_A, SSCC_B, SSCC_C = "340123450000000017", "340123450000000024", "340123450000000031"


def advice(sscc: str, *lines: dict[str, Any]) -> dict[str, Any]:
    return {"sscc": sscc, "items": list(lines) or [{"gtin": PARA, "lot": "LOTA", "quantity": 5}]}


def expected(store: HotStore) -> dict[str, list[tuple[Any, ...]]]:
    """SSCC → (gtin, lot, serial, quantity) lines of every pallet in state ``expected``."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for sscc, *line in store.conn.execute(
        "SELECT a.parent_sscc, a.gtin, a.lot, a.serial, a.quantity FROM aggregations a "
        "JOIN pallets p ON p.sscc = a.parent_sscc WHERE p.state = 'expected' "
        "AND a.unpacked_at IS NULL AND a.packed_seq = 0 ORDER BY a.id"
    ):
        out.setdefault(sscc, []).append(tuple(line))
    return out


def test_despatch_advices_in_snapshots_and_deltas(store: HotStore) -> None:
    a = advice(SSCC_A, {"gtin": PUMP, "serial": "SN9", "lot": "PL9", "quantity": 1})
    snap = snapshot(1, products=PRODUCTS, despatch_advices=[a, advice(SSCC_B)])
    tx(store, lambda s: apply_snapshot(s, snap))
    assert expected(store) == {SSCC_A: [(PUMP, "PL9", "SN9", 1)], SSCC_B: [(PARA, "LOTA", None, 5)]}
    assert tx(store, cache_counts)["despatch_advices"] == 2
    # received here: a pallet that is at_site is not the central side's to change any more
    tx(store, lambda s: s.put_pallet(SSCC_B, "at_site", "DOCK", time.time()))
    d = delta(
        1,
        2,
        {
            "op": "upsert",
            "entity": "despatch_advice",
            "record": advice(SSCC_B, *[{"gtin": BOX, "quantity": 9}]),
        },
        {"op": "upsert", "entity": "despatch_advice", "record": advice(SSCC_C)},
        {"op": "delete", "entity": "despatch_advice", "key": {"sscc": SSCC_A}},
    )
    tx(store, lambda s: apply_delta(s, d))
    assert expected(store) == {SSCC_C: [(PARA, "LOTA", None, 5)]}
    assert store.pallet_contents(SSCC_B) == [(PARA, None, "LOTA", None, 5)]
    assert store.pallet(SSCC_A) is None and store.pallet_contents(SSCC_A) == []
    # a 1.0 snapshot (no list) leaves expected pallets alone; a 1.1 one replaces them
    tx(store, lambda s: apply_snapshot(s, snapshot(3, products=PRODUCTS)))
    assert list(expected(store)) == [SSCC_C]
    snap = snapshot(4, products=PRODUCTS, despatch_advices=[advice(SSCC_A)])
    tx(store, lambda s: apply_snapshot(s, snap))
    assert list(expected(store)) == [SSCC_A]
    assert store.pallet(SSCC_B) is not None and store.pallet(SSCC_B).state == "at_site"  # type: ignore[union-attr]
    tx(store, lambda s: apply_snapshot(s, snapshot(5, products=PRODUCTS, despatch_advices=[])))
    assert expected(store) == {} and tx(store, cache_counts)["despatch_advices"] == 0


def test_snapshot_chunks_carry_despatch_advices() -> None:
    a = SnapshotAssembler()
    c0 = snapshot(3, chunk={"index": 0, "count": 2}, despatch_advices=[advice(SSCC_A)])
    c1 = snapshot(3, chunk={"index": 1, "count": 2}, despatch_advices=[advice(SSCC_B)])
    assert a.add(c0) is None
    merged = a.add(c1)
    assert merged is not None and [x["sscc"] for x in merged["despatch_advices"]] == [
        SSCC_A,
        SSCC_B,
    ]
    old = [snapshot(4, chunk={"index": i, "count": 2}) for i in (0, 1)]
    assert a.add(old[0]) is None
    merged = a.add(old[1])
    assert merged is not None and "despatch_advices" not in merged


def test_a_recall_gives_its_lots_a_row_that_a_lot_delete_keeps(store: HotStore) -> None:
    tx(store, lambda s: s.set_meta("cache_version", "1"))
    serial = {"gtin": PUMP, "serial": "SN7", "lot": "NOROW", "state": "in_stock"}
    tx(
        store,
        lambda s: apply_delta(
            s, delta(1, 2, {"op": "upsert", "entity": "serial", "record": serial})
        ),
    )
    assert store.lot(PUMP, "NOROW") is None
    tx(store, lambda s: apply_delta(s, delta(2, 3, recall("R7", PUMP, ["NOROW"]))))
    assert status(store, PUMP, "NOROW") == "recalled"
    tx(store, lambda s: apply_delta(s, delta(3, 4, delete("lot", gtin=PUMP, lot="NOROW"))))
    assert status(store, PUMP, "NOROW") == "recalled"
    tx(store, lambda s: apply_delta(s, delta(4, 5, delete("recall", recall_id="R7"))))
    assert status(store, PUMP, "NOROW") == "active"


# -- the shell ---------------------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.msgs: list[tuple[str, dict[str, Any], int, bool]] = []

    def __call__(self, topic: str, payload: dict[str, Any], qos: int, retain: bool = False) -> None:
        assert validate(payload) == [], validate(payload)
        self.msgs.append((topic, payload, qos, retain))

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [p for t, p, _, _ in self.msgs if t == topic]


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make_sync(store: HotStore) -> tuple[CacheSync, Recorder, FakeClock]:
    rec, clock = Recorder(), FakeClock()
    sync = CacheSync(
        topics=TOPICS,
        run_in_writer=lambda fn: tx(store, fn),
        publish=rec,
        resync_interval=30,
        monotonic=clock,
    )
    return sync, rec, clock


def send(sync: CacheSync, msg: dict[str, Any]) -> str | None:
    topic = TOPICS.cache_snapshot if "chunk" in msg else TOPICS.cache_delta
    return sync.on_message(topic, json.dumps(msg).encode())


def test_gaps_duplicates_out_of_order_and_resync(store: HotStore) -> None:
    sync, rec, clock = make_sync(store)
    sync.announce()
    assert rec.on(TOPICS.cache_version)[-1]["version"] is None
    assert rec.on(TOPICS.cache_resync)[-1]["reason"] == "empty"
    assert send(sync, delta(1, 2)) == "gap"  # nothing held yet
    assert send(sync, snapshot(1, products=PRODUCTS)) == "applied"
    assert sync.held_version == 2  # the kept 1→2 delta followed the snapshot
    assert send(sync, delta(2, 3, lot_up(PARA, "LOTA", "blocked"))) == "applied"
    assert status(store, PARA, "LOTA") == "hold"
    assert send(sync, delta(2, 3)) == "duplicate"  # acked again, nothing changes
    assert status(store, PARA, "LOTA") == "hold"
    acks = rec.on(TOPICS.cache_ack)
    assert [(a["kind"], a["version"], a["ok"]) for a in acks[-2:]] == [
        ("delta", 3, True),
        ("delta", 3, True),
    ]
    # out of order: 4→5 before 3→4; kept, then both apply when the gap closes
    n_resync = len(rec.on(TOPICS.cache_resync))
    assert send(sync, delta(4, 5, recall("R9", PARA, ["LOTB"]))) == "gap"
    assert rec.on(TOPICS.cache_resync)[-1] | {"time": 0, "request_id": 0} == {
        "schema": {"name": "traceway.cache_resync_request", "version": "1.0"},
        "gateway_id": "g1",
        "site": "s1",
        "time": 0,
        "request_id": 0,
        "have_version": 3,
        "reason": "gap",
    }
    assert send(sync, delta(5, 6)) == "gap"
    assert len(rec.on(TOPICS.cache_resync)) == n_resync + 1  # rate-limited
    assert send(sync, delta(3, 4, lot_up(PARA, "LOTA", "released"))) == "applied"
    assert sync.held_version == 6 and sync.pending == {}
    assert status(store, PARA, "LOTB") == "recalled" and status(store, PARA, "LOTA") == "active"
    assert rec.on(TOPICS.cache_version)[-1]["version"] == 6
    # a real gap: resync, the snapshot answering it wins even at a lower version
    assert send(sync, delta(8, 9)) == "gap"
    rid = rec.on(TOPICS.cache_resync)[-1]["request_id"]
    assert send(sync, snapshot(5, products=PRODUCTS)) == "stale"  # not ours, older
    lots = [{"gtin": PARA, "lot": "LOTA", "expiry": None, "status": "recalled"}]
    reply = snapshot(6, products=PRODUCTS, lots=lots, request_id=rid)
    assert send(sync, reply) == "applied"
    assert status(store, PARA, "LOTA") == "recalled" and status(store, PARA, "LOTB") == "active"
    assert rec.on(TOPICS.cache_ack)[-1] | {"time": 0} == {
        "schema": {"name": "traceway.cache_ack", "version": "1.0"},
        "gateway_id": "g1",
        "site": "s1",
        "time": 0,
        "kind": "snapshot",
        "version": 6,
        "request_id": rid,
        "ok": True,
    }
    assert sync.outstanding is None and sync.pending == {8: sync.pending[8]}
    clock.t += 31
    assert send(sync, delta(9, 10)) == "gap"  # still missing 6→8: asks again after the interval
    assert len(rec.on(TOPICS.cache_resync)) == n_resync + 3


def test_invalid_and_failing_messages_are_nacked_and_change_nothing(store: HotStore) -> None:
    sync, rec, _ = make_sync(store)
    send(sync, snapshot(1, products=PRODUCTS))
    bad = delta(1, 2)
    bad["changes"][0]["record"]["gtin"] = "09506000134353"  # wrong check digit
    assert sync.on_message(TOPICS.cache_delta, json.dumps(bad).encode()) == "invalid"
    assert sync.on_message(TOPICS.cache_delta, b"\xff{") == "invalid"
    nack = rec.on(TOPICS.cache_ack)[-1]
    assert (nack["ok"], nack["version"]) == (False, 2) and "check digit" in nack["error"]
    assert sync.held_version == 1
    boom = CacheSync(
        topics=TOPICS,
        run_in_writer=lambda fn: tx(store, _raise),
        publish=rec,
        monotonic=FakeClock(),
    )
    boom._held, boom._loaded = 1, True
    assert send(boom, delta(1, 2)) == "failed"
    assert rec.on(TOPICS.cache_ack)[-1]["ok"] is False
    assert rec.on(TOPICS.cache_resync)[-1]["reason"] == "corrupt"
    assert boom.held_version == 1 and tx(store, held_version) == 1
    # a snapshot whose staging fails (disk full) is nacked with the reason, not applied
    assert send(boom, snapshot(2, products=PRODUCTS, request_id="r-1")) == "failed"
    nack = rec.on(TOPICS.cache_ack)[-1]
    assert (nack["ok"], nack["version"]) == (False, 2) and "disk on fire" in nack["error"]
    assert boom.held_version == 1 and tx(store, held_version) == 1
    assert sync.on_message(TOPICS.commands, b"{}") is None  # not a cache topic


def _raise(_s: HotStore) -> None:
    raise RuntimeError("disk on fire")


# -- through the writer and a real broker ---------------------------------------------------------
def test_local_movements_catch_a_double_shipment_offline(tmp_path: Path) -> None:
    h = Harness(make_cfg(tmp_path, "shipping", duplicate_window=0))
    try:
        cut = ts(-60)  # a snapshot cut a minute ago still says SN1001 is in stock
        assert h.one(SHIP_SN1001).verdict == "accept"
        second = h.one(SHIP_SN1001)
        assert (second.verdict, second.reasons[0].code) == ("reject", "serial_already_shipped")
        serials = [{"gtin": PUMP, "serial": "SN1001", "state": "in_stock"}]
        snap = snapshot(7, products=PRODUCTS, serials=serials, generated_at=cut)
        h.writer.call(lambda s: apply_snapshot(s, snap))
        third = h.one(SHIP_SN1001)
        assert third.reasons[0].code == "serial_already_shipped"
    finally:
        h.close()


class Recording(Harness):
    """Harness whose writer records, in its own thread, the order of scans and tasks."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.order: list[str] = []
        inner = self.processor.process

        def process(scan: RawScan, store: HotStore) -> Outcome:
            out = inner(scan, store)
            self.order.append(out.reasons[0].code if out.reasons else out.verdict)
            return out

        self.processor.process = process  # type: ignore[method-assign]


def _client(port: int, cid: str) -> mqtt.Client:
    c = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5
    )
    connected = threading.Event()
    c.on_connect = lambda *_a: connected.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert connected.wait(5)
    return c


def test_recall_through_broker_rejects_the_next_scan(tmp_path: Path, broker: Broker) -> None:
    h = Recording(make_cfg(tmp_path, "shipping", duplicate_window=0, fefo="accept"))
    gw = _client(broker.port, "gw")
    central = _client(broker.port, "central")
    acks: list[dict[str, Any]] = []
    got_ack = threading.Event()

    def on_central(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        acks.append(json.loads(msg.payload))
        got_ack.set()

    central.on_message = on_central
    central.subscribe(TOPICS.cache_ack, qos=1)

    def run(fn: Callable[[HotStore], Any]) -> Any:
        if fn is held_version:
            return h.writer.call(fn)

        def marked(s: HotStore) -> Any:
            res = fn(s)
            h.order.append("SYNC")  # in the writer thread, in queue order with the scans
            return res

        return h.writer.call(marked)

    sync = CacheSync(topics=TOPICS, run_in_writer=run, publish=publish_json(gw))
    applied: list[float] = []

    def on_gw(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        sync.on_message(msg.topic, bytes(msg.payload))
        applied.append(time.perf_counter())

    gw.on_message = on_gw
    subscribed = threading.Event()
    gw.on_subscribe = lambda *_a: subscribed.set()
    gw.subscribe(TOPICS.cache_delta, qos=1)
    assert subscribed.wait(5)
    time.sleep(0.2)
    h.writer.call(lambda s: s.set_meta("cache_version", "1"))

    stop = threading.Event()

    def feed() -> None:
        t = 0.0
        while not stop.is_set():
            t += 100.0
            h.writer.submit(RawScan(SHIP_LOTA, "sc", time.time(), t))
            time.sleep(0.002)

    latencies: list[float] = []
    apply_s: list[float] = []
    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        for i in range(5):
            time.sleep(0.1)
            lot_status = "recalled" if i % 2 == 0 else "released"
            d = delta(1 + i, 2 + i, lot_up(PARA, "LOTA", lot_status))
            n = len(applied)
            t0 = time.perf_counter()
            central.publish(TOPICS.cache_delta, json.dumps(d), qos=1)
            deadline = time.monotonic() + 5
            while len(applied) == n and time.monotonic() < deadline:
                time.sleep(0.0005)
            assert len(applied) > n
            latencies.append(applied[n] - t0)
            assert sync.last_apply_s is not None
            apply_s.append(sync.last_apply_s)
    finally:
        stop.set()
        feeder.join()
    assert got_ack.wait(5)
    gw.loop_stop()
    central.loop_stop()
    h.writer.call(lambda s: None)
    order = list(h.order)
    h.close()
    assert sync.held_version == 6
    marks = [i for i, x in enumerate(order) if x == "SYNC"]
    assert len(marks) == 5
    for k, m in enumerate(marks):
        after = order[m + 1] if m + 1 < len(order) else None
        before = [x for x in order[marks[k - 1] + 1 if k else 0 : m] if x != "SYNC"]
        if k % 2 == 0:  # recalled: the very next scan is rejected, none before it was
            assert after in ("lot_recalled", None), order[m - 2 : m + 3]
            assert "lot_recalled" not in before
        else:
            assert after != "lot_recalled"
            assert before and set(before) == {"lot_recalled"}
    assert {a["version"] for a in acks} >= {2}
    print(
        f"\nrecall publish→applied: median {statistics.median(latencies) * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms; arrival→committed median "
        f"{statistics.median(apply_s) * 1000:.1f} ms, max {max(apply_s) * 1000:.1f} ms "
        f"({len(order) - 5} scans flowing)"
    )
    assert max(latencies) < 1.0


def test_cache_tables_exist_after_migration(tmp_path: Path) -> None:
    open_database(tmp_path / "m.db").dispose()
    con = sqlite3.connect(tmp_path / "m.db")
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    con.close()
    assert {"sync_lot_status", "sync_holds", "sync_recalls", "trg_lots_sync_blocks"} <= names


def test_resync_log_says_what_is_held(store: HotStore, caplog: pytest.LogCaptureFixture) -> None:
    sync, _, _ = make_sync(store)
    with caplog.at_level("INFO", logger="gateway.store.cache_sync"):
        sync.announce()
    (line,) = [r.getMessage() for r in caplog.records if "resync requested" in r.getMessage()]
    assert line == "cache resync requested (empty; no cache version yet)"


# -- issue 11: a snapshot of many rows is applied set-based ---------------------------------


def test_a_large_snapshot_is_applied_in_a_few_statements(store: HotStore) -> None:
    """Lots and serials are staged (executemany) and applied set-based: the statements
    besides the staging inserts do not grow with the rows (was two per serial, one per
    lot missing from the snapshot). The rules stay: a zero-stock row of a dropped lot
    goes with it, a serial without a lot keeps the one it had, a later local movement
    is not undone."""
    store.conn.execute(
        "INSERT INTO lot_stock(lot_id, location, quantity) "
        "SELECT id, 'Z-00', 0 FROM lots WHERE lot = 'PUMPLOT1'"
    )
    store.conn.execute(
        "UPDATE serials SET state = 'shipped', updated_at = ? WHERE serial = 'SN1002'",
        (time.time() + 60,),
    )
    lots = [
        {"gtin": PUMP, "lot": f"PL{i}", "expiry": None, "status": "released"} for i in range(500)
    ]
    serials = [
        {"gtin": PUMP, "serial": f"S{i}", "lot": f"PL{i % 500}", "state": "commissioned"}
        for i in range(5000)
    ]
    serials += [
        {"gtin": PUMP, "serial": "SN1001", "state": "picked"},
        {"gtin": PUMP, "serial": "SN1002", "state": "in_stock"},
    ]
    snap = snapshot(4, products=PRODUCTS, lots=lots, serials=serials)
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        tx(store, lambda s: apply_snapshot(s, snap))
    finally:
        store.conn.set_trace_callback(None)
    # (a trigger's statements are traced with the text of the statement that fired it)
    staging = ("INSERT INTO temp.", "INSERT OR REPLACE INTO temp.")
    others = {s for s in statements if not s.startswith(staging)}
    assert len(others) < 100, len(others)
    assert store.lot(PUMP, "PUMPLOT1") is None  # dropped: no stock (its zero row went too)
    assert (
        store.conn.execute("SELECT COUNT(*) FROM lot_stock WHERE location = 'Z-00'").fetchone()[0]
        == 0
    )
    assert stock(store, "LOTA") == 50  # missing from the snapshot, but holds stock: kept
    sn1001 = store.serial(PUMP, "SN1001")
    assert sn1001 is not None and (sn1001.state, sn1001.lot) == ("picked", "PUMPLOT1")
    assert store.serial(PUMP, "SN1002").state == "shipped"  # type: ignore[union-attr]
    s7 = store.serial(PUMP, "S7")
    assert s7 is not None and (s7.state, s7.lot) == ("expected", "PL7")  # known, not here
    assert status(store, PUMP, "PL7") == "active"
    assert tx(store, cache_counts)["serials"] == 5002
    assert (
        store.conn.execute(
            "SELECT name FROM sqlite_temp_master WHERE name LIKE 'sync_stage%'"
        ).fetchall()
        == []
    )


# -- central master data: a commissioned serial is expected, never over a custody state ------


def test_a_commissioned_serial_is_expected_and_never_replaces_custody(store: HotStore) -> None:
    """Central's serial list (``commissioned``: known, not received) makes a new serial
    ``expected`` — receiving takes it — but never undoes what this gateway's own movements
    say (SN1001 in stock, SN1002 shipped), by delta or by snapshot."""

    def serial(gtin: str, sn: str, state: str) -> dict[str, Any]:
        rec = {"gtin": gtin, "serial": sn, "lot": "PUMPLOT1", "state": state}
        return {"op": "upsert", "entity": "serial", "record": rec}

    tx(store, lambda s: apply_snapshot(s, snapshot(1, products=PRODUCTS)))
    d = delta(
        1,
        2,
        serial(PUMP, "SN1001", "commissioned"),
        serial(PUMP, "SN1002", "commissioned"),
        serial(PUMP, "NEW1", "commissioned"),
        serial(PUMP, "NEW2", "destroyed"),
        generated_at=ts(60),
    )
    tx(store, lambda s: apply_delta(s, d))
    states = {sn: store.serial(PUMP, sn).state for sn in ("SN1001", "SN1002", "NEW1", "NEW2")}  # type: ignore[union-attr]
    assert states == {
        "SN1001": "in_stock",
        "SN1002": "shipped",
        "NEW1": "expected",
        "NEW2": "destroyed",
    }
    rows = [dict(c["record"]) for c in d["changes"]]
    for r in rows:
        r["state"] = "commissioned"
    rows.append({"gtin": PUMP, "serial": "NEW3", "state": "commissioned"})
    snap = snapshot(3, products=PRODUCTS, serials=rows, generated_at=ts(120))
    tx(store, lambda s: apply_snapshot(s, snap))
    states = {
        sn: store.serial(PUMP, sn).state  # type: ignore[union-attr]
        for sn in ("SN1001", "SN1002", "NEW1", "NEW2", "NEW3")
    }
    assert states == {
        "SN1001": "in_stock",
        "SN1002": "shipped",
        "NEW1": "expected",
        "NEW2": "destroyed",  # destroyed is this gateway's too: kept
        "NEW3": "expected",
    }


def test_a_commissioned_serial_leaves_a_held_serial_alone_and_follows_a_lifted_recall(
    store: HotStore,
) -> None:
    """Under a serial hold the state to restore stays the gateway's (in stock); a serial
    recalled at central and lifted goes back to expected."""

    def serial(sn: str, state: str) -> dict[str, Any]:
        return {
            "op": "upsert",
            "entity": "serial",
            "record": {"gtin": PUMP, "serial": sn, "state": state},
        }

    tx(store, lambda s: apply_snapshot(s, snapshot(1, products=PRODUCTS)))
    steps = [
        hold("H-1", gtin=PUMP, serial="SN1001"),
        serial("SN1001", "commissioned"),
        delete("hold", hold_id="H-1"),
        serial("NEW1", "commissioned"),
        serial("NEW1", "recalled"),
        serial("NEW1", "commissioned"),
    ]
    for i, change in enumerate(steps, 1):
        d = delta(i, i + 1, change, generated_at=ts(60 + i))
        tx(store, lambda s, d=d: apply_delta(s, d))
    assert store.serial(PUMP, "SN1001").state == "in_stock"  # type: ignore[union-attr]
    assert store.serial(PUMP, "NEW1").state == "expected"  # type: ignore[union-attr]
