"""Cache sync from the central side: snapshots and ordered deltas, applied by the writer.

Functional core: :func:`plan_delta` (apply / ignore / gap), :class:`SnapshotAssembler`
(chunks → one snapshot) and the row mappings. The ``apply_*`` functions write with
raw SQL on ``store.conn`` INSIDE the writer's open transaction (never BEGIN/COMMIT),
so a change is all-or-nothing and the next scan in the writer's queue sees it.
:class:`CacheSync` is the thin shell: validate, plan, run in the writer, ack.

What a snapshot replaces (master data) and what it keeps (local movements):

- products: replaced; a product missing from the snapshot (or ``active: false``) is
  deleted, so a scan of it follows the station's ``unknown_gtin`` policy. A record
  without ``expiry_warning_days`` keeps the value held (30 for a new product);
- lots: expiry and central status replaced; stock (``lot_stock``) is NEVER touched.
  A lot missing from the snapshot (or deleted by a delta) is deleted unless it
  holds local stock (received here, maybe offline after the snapshot was cut):
  then it stays as it is, status included;
- serials: the snapshot's state is taken unless the serial was moved locally at or
  after the snapshot's ``generated_at`` (``serials.updated_at``): a local ship is
  not undone by a snapshot cut before it. Serials missing from it are kept. Deltas
  follow the same rule. (The comparison trusts the two clocks; see README.) A
  ``commissioned`` serial (central master data: known, not received) is recorded as
  ``expected``, and only over a serial that is unknown, expected or recalled (a lifted
  recall): never over a state this gateway's own movements or holds gave it
  (``in_stock``, ``picked``, ``shipped``, ``consumed``, ``destroyed``, ``on_hold``).
- holds and recalls: replaced.
- despatch advices (what an expected pallet holds): replaced for pallets not yet
  received when the snapshot lists them (``despatch_advices``, schema 1.1); a
  snapshot without the list leaves expected pallets as they are.

``lots.status`` (what the scan path reads) is derived: ``recalled`` when a recall
covers the lot or the central status is ``recalled``; ``hold`` when a GTIN / lot
hold covers it or the central status is quarantined/blocked/expired; else
``active``. A serial hold puts the serial in state ``on_hold`` (remembering the
state before) and lifting it restores that state. An SSCC hold reaches what is on the
pallet (``HotStore.pallet``/``serial`` read it).

A despatch advice (SSCC → lines) records the pallet's contents in ``aggregations``
(``packed_seq`` 0 marks a line from a despatch advice) and the pallet as
``expected``; receiving the SSCC then receives those contents (``pipeline._pallet_move``).
A pallet that is here or has left (``at_site``, ``shipped``, ``consumed``) is never
touched: what it holds is known from its own movements.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from gateway.ids import uuid7
from gateway.store.hot import HotStore
from mqtt_topics.cache import (
    build_ack,
    build_cache_version,
    build_resync_request,
    delta_verdict,
    validate_delta,
    validate_snapshot,
)
from mqtt_topics.topics import GatewayTopics

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Central lot status → the local status the scan path understands.
LOT_STATUS = {
    "released": "active",
    "quarantined": "hold",
    "blocked": "hold",
    "expired": "hold",
    "recalled": "recalled",
}
#: Central serial state → local state (decide.py moves only in_stock/picked). A
#: ``commissioned`` serial is known but not here yet: ``expected`` (receiving takes it).
SERIAL_STATE = {
    "commissioned": "expected",
    "in_stock": "in_stock",
    "returned": "in_stock",
    "picked": "picked",
    "packed": "picked",
    "shipped": "shipped",
    "consumed": "consumed",
    "destroyed": "destroyed",
    "on_hold": "on_hold",
    "recalled": "recalled",
}


# -- the pure core -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Apply:
    """Apply the delta now: it continues the version held."""


@dataclass(frozen=True, slots=True)
class Ignore:
    """Already held (a duplicate or an older delta): acknowledge again, change nothing."""

    why: Literal["duplicate", "old"]


@dataclass(frozen=True, slots=True)
class Gap:
    """Deltas are missing between the version held and this one: ask for a resync."""

    have: int | None
    want_from: int


Plan = Apply | Ignore | Gap


def plan_delta(held_version: int | None, delta: Mapping[str, Any]) -> Plan:
    """What to do with a valid delta, given the version held (None: no snapshot yet)."""
    verdict = delta_verdict(held_version, delta)
    if verdict == "apply":
        return Apply()
    if verdict == "duplicate":
        same = held_version is not None and delta["version"] == held_version
        return Ignore("duplicate" if same else "old")
    return Gap(held_version, int(delta["from_version"]))


def product_tracking(record: Mapping[str, Any]) -> str:
    """``serial`` / ``lot`` / ``none`` from a central product record."""
    if record.get("serialised"):
        return "serial"
    if record.get("lot_tracked"):
        return "lot"
    return "none"


def epoch(rfc3339: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (``Z`` accepted)."""
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


#: Runs a function in the writer's transaction and returns its result.
Stager = Callable[[Callable[[HotStore], None]], None]


@dataclass
class SnapshotAssembler:
    """Collects the chunks of one snapshot; a chunk of another version starts over.

    A snapshot can hold millions of lots and serials. With a ``stager`` (the writer),
    each chunk's lots and serials go straight into TEMP staging tables of the writer's
    connection (a temporary file, not memory), so a gateway holds one chunk at a time
    whatever the snapshot's size; :func:`apply_snapshot` then applies the staging in one
    transaction, all or nothing. Without one (tests, tools), they are kept in memory as
    compact tuples. A chunk delivered twice replaces its first copy.
    """

    key: tuple[int, str | None] | None = None
    chunks: dict[int, Mapping[str, Any]] = field(default_factory=dict)
    stager: Stager | None = None

    def reset(self) -> None:
        """Forget the snapshot being assembled (its staged rows too)."""
        key, self.key, self.chunks = self.key, None, {}
        if key is not None and self.stager is not None:
            self.stager(_drop_stage)

    def add(self, chunk: Mapping[str, Any]) -> dict[str, Any] | None:
        """The merged snapshot when ``chunk`` completes it, else None.

        With a stager, the merged snapshot says ``staged`` and its lots and serials are
        in the staging tables. A failing stager (disk full) forgets the snapshot and
        raises: the sender's next resync starts it over."""
        key = (int(chunk["version"]), chunk.get("request_id"))
        if key != self.key:
            self.reset()
            if self.stager is not None:
                self.stager(_create_stage)
            self.key = key
        index = int(chunk["chunk"]["index"])
        lots = [lot_row(x) for x in chunk["lots"]]
        serials = [serial_row(x) for x in chunk["serials"]]
        if self.stager is not None:
            again = index in self.chunks
            try:
                self.stager(lambda store: _stage_rows(store, index, lots, serials, again))
            except BaseException:
                self.key, self.chunks = None, {}
                raise
            lots, serials = [], []
        self.chunks[index] = {**chunk, "lots": lots, "serials": serials}
        count = int(chunk["chunk"]["count"])
        if len(self.chunks) < count:
            return None
        parts = [self.chunks[i] for i in range(count)]
        self.key, self.chunks = None, {}
        merged: dict[str, Any] = {k: v for k, v in parts[0].items() if k != "chunk"}
        for table in ("products", "lots", "serials", "holds", "recalls"):
            merged[table] = [row for p in parts for row in p[table]]
        if any("despatch_advices" in p for p in parts):  # schema 1.1; absent: unchanged
            merged["despatch_advices"] = [r for p in parts for r in p.get("despatch_advices", [])]
        merged["chunk"] = {"index": 0, "count": 1}
        if self.stager is not None:
            merged["staged"] = True
        return merged


#: A snapshot lot as a tuple: (gtin, lot, expiry, status); a serial: (gtin, serial, lot, state).
LotRow = tuple[str, str, str | None, str]
SerialRow = tuple[str, str, str | None, str]


def lot_row(rec: Mapping[str, Any] | LotRow) -> LotRow:
    """A snapshot lot record as a compact tuple (strings that repeat are shared)."""
    if isinstance(rec, tuple):
        return rec
    return (
        sys.intern(rec["gtin"]),
        sys.intern(rec["lot"]),
        rec.get("expiry"),
        sys.intern(rec["status"]),
    )


def serial_row(rec: Mapping[str, Any] | SerialRow) -> SerialRow:
    """A snapshot serial record as a compact tuple (GTIN, lot and state shared)."""
    if isinstance(rec, tuple):
        return rec
    lot = rec.get("lot")
    return (
        sys.intern(rec["gtin"]),
        rec["serial"],
        None if lot is None else sys.intern(lot),
        sys.intern(rec["state"]),
    )


# -- writing (inside the writer's transaction) ----------------------------------------------
_EFFECTIVE = """
UPDATE lots SET status = CASE
    WHEN EXISTS (SELECT 1 FROM sync_recalls r WHERE r.gtin = lots.gtin AND r.lot IN ('', lots.lot))
        THEN 'recalled'
    WHEN c.status = 'recalled' THEN 'recalled'
    WHEN EXISTS (SELECT 1 FROM sync_holds h WHERE h.gtin = lots.gtin AND h.serial IS NULL
                 AND (h.lot IS NULL OR h.lot = lots.lot)) THEN 'hold'
    WHEN c.status IN ('quarantined', 'blocked', 'expired') THEN 'hold'
    ELSE 'active' END, updated_at = ?
FROM (SELECT gtin AS g, lot AS l, status FROM sync_lot_status) AS c
WHERE c.g = lots.gtin AND c.l = lots.lot
"""


def _recompute(
    store: HotStore, now: float, gtin: str | None = None, lot: str | None = None
) -> None:
    """Derive ``lots.status`` again for one lot, every lot of a GTIN, or every lot."""
    sql, args = _EFFECTIVE, list[object]([now])
    if gtin is not None:
        sql += " AND lots.gtin = ?"
        args.append(gtin)
    if lot is not None:
        sql += " AND lots.lot = ?"
        args.append(lot)
    store.conn.execute(sql, args)


def _upsert_product(store: HotStore, rec: Mapping[str, Any], now: float) -> None:
    if rec.get("active") is False:
        _delete_product(store, rec["gtin"])
        return
    days = rec.get("expiry_warning_days")  # absent: keep what is held (30 for a new product)
    store.conn.execute(
        "INSERT INTO products(gtin, description, tracking, expiry_warning_days, updated_at) "
        "VALUES (?, ?, ?, COALESCE(?, 30), ?) "
        "ON CONFLICT(gtin) DO UPDATE SET description = excluded.description, "
        "tracking = excluded.tracking, expiry_warning_days = "
        "COALESCE(?, products.expiry_warning_days), updated_at = excluded.updated_at",
        (rec["gtin"], rec.get("description", ""), product_tracking(rec), days, now, days),
    )


def _delete_product(store: HotStore, gtin: str) -> None:
    store.conn.execute("DELETE FROM products WHERE gtin = ?", (gtin,))


def _upsert_lot(store: HotStore, rec: Mapping[str, Any], now: float) -> None:
    gtin, lot = rec["gtin"], rec["lot"]
    store.conn.execute(
        "INSERT INTO sync_lot_status(gtin, lot, status) VALUES (?, ?, ?) "
        "ON CONFLICT(gtin, lot) DO UPDATE SET status = excluded.status",
        (gtin, lot, rec["status"]),
    )
    store.conn.execute(
        "INSERT INTO lots(gtin, lot, expiry, status, updated_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(gtin, lot) DO UPDATE SET expiry = excluded.expiry, "
        "updated_at = excluded.updated_at",
        (gtin, lot, rec["expiry"], LOT_STATUS[rec["status"]], now),
    )
    _recompute(store, now, gtin, lot)


def _has_stock(store: HotStore, gtin: str, lot: str) -> bool:
    row = store.conn.execute(
        "SELECT 1 FROM lots l JOIN lot_stock s ON s.lot_id = l.id "
        "WHERE l.gtin = ? AND l.lot = ? AND s.quantity > 0 LIMIT 1",
        (gtin, lot),
    ).fetchone()
    return row is not None


def _delete_lot(store: HotStore, gtin: str, lot: str) -> None:
    """Forget a lot, unless it holds local stock or a recall names it (then it is kept)."""
    if _has_stock(store, gtin, lot):
        return  # local stock: the lot stays, with the status it had
    recalled = store.conn.execute(
        "SELECT 1 FROM sync_recalls WHERE gtin = ? AND lot = ? LIMIT 1", (gtin, lot)
    ).fetchone()
    if recalled is not None:
        return  # its serials (and pallets) still need to see the recall
    store.conn.execute("DELETE FROM sync_lot_status WHERE gtin = ? AND lot = ?", (gtin, lot))
    store.conn.execute(
        "DELETE FROM lot_stock WHERE lot_id IN (SELECT id FROM lots WHERE gtin = ? AND lot = ?)",
        (gtin, lot),
    )
    store.conn.execute("DELETE FROM lots WHERE gtin = ? AND lot = ?", (gtin, lot))


#: An ``expected`` serial (central: ``commissioned``) sets only a serial that is unknown,
#: expected or recalled (a lifted recall): never one this gateway moved or holds.
_EXPECTED_OVER = ("expected", "recalled")
_NOT_OVER_CUSTODY = (
    " AND (excluded.state <> 'expected' OR serials.state IN ('expected', 'recalled'))"
)


def _upsert_serial(store: HotStore, rec: Mapping[str, Any], cut: float) -> None:
    """Take the central state unless the serial moved locally at or after ``cut``."""
    gtin, serial = rec["gtin"], rec["serial"]
    state = SERIAL_STATE[rec["state"]]
    if state == "expected":
        row = store.conn.execute(
            "SELECT state FROM serials WHERE gtin = ? AND serial = ?", (gtin, serial)
        ).fetchone()
        if row is not None and row[0] not in _EXPECTED_OVER:
            return  # in stock, moved or held here: the gateway's own state stands
    held = store.conn.execute(
        "SELECT hold_id FROM sync_holds WHERE gtin = ? AND serial = ?", (gtin, serial)
    ).fetchone()
    if held is not None and state not in ("on_hold", "recalled"):
        # under a serial hold: the new state is what lifting the hold restores
        store.conn.execute(
            "UPDATE sync_holds SET serial_prev_state = ? WHERE hold_id = ?", (state, held[0])
        )
        state = "on_hold"
    store.conn.execute(
        "INSERT INTO serials(gtin, serial, lot, state, location, updated_at) "
        "VALUES (?, ?, ?, ?, '', ?) ON CONFLICT(gtin, serial) DO UPDATE SET "
        "lot = COALESCE(excluded.lot, serials.lot), state = excluded.state, "
        "updated_at = excluded.updated_at WHERE serials.updated_at < excluded.updated_at"
        + _NOT_OVER_CUSTODY,
        (gtin, serial, rec.get("lot"), state, cut),
    )


def _delete_serial(store: HotStore, gtin: str, serial: str, cut: float) -> None:
    store.conn.execute(
        "DELETE FROM serials WHERE gtin = ? AND serial = ? AND updated_at < ?",
        (gtin, serial, cut),
    )


def _lift_hold(store: HotStore, hold_id: str, now: float) -> None:
    row = store.conn.execute(
        "SELECT gtin, lot, serial, serial_prev_state FROM sync_holds WHERE hold_id = ?",
        (hold_id,),
    ).fetchone()
    if row is None:
        return
    gtin, lot, serial, prev = row
    store.conn.execute("DELETE FROM sync_holds WHERE hold_id = ?", (hold_id,))
    if serial is not None:
        store.conn.execute(
            "UPDATE serials SET state = ?, updated_at = ? "
            "WHERE gtin = ? AND serial = ? AND state = 'on_hold'",
            (prev or "in_stock", now, gtin, serial),
        )
    elif gtin is not None:
        _recompute(store, now, gtin, lot)


def _put_hold(store: HotStore, rec: Mapping[str, Any], now: float) -> None:
    _lift_hold(store, rec["hold_id"], now)
    scope = rec["scope"]
    gtin, lot, serial, sscc = (scope.get(k) for k in ("gtin", "lot", "serial", "sscc"))
    prev = None
    if serial is not None:
        row = store.conn.execute(
            "SELECT state FROM serials WHERE gtin = ? AND serial = ?", (gtin, serial)
        ).fetchone()
        prev = row[0] if row is not None and row[0] != "on_hold" else None
    store.conn.execute(
        "INSERT INTO sync_holds(hold_id, gtin, lot, serial, sscc, reason, since, "
        "serial_prev_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (rec["hold_id"], gtin, lot, serial, sscc, rec["reason"], rec["since"], prev),
    )
    if serial is not None:
        store.conn.execute(
            "INSERT INTO serials(gtin, serial, lot, state, location, updated_at) "
            "VALUES (?, ?, NULL, 'on_hold', '', ?) ON CONFLICT(gtin, serial) DO UPDATE SET "
            "state = 'on_hold', updated_at = excluded.updated_at",
            (gtin, serial, now),
        )
    elif gtin is not None:
        _recompute(store, now, gtin, lot)


def _lift_recall(store: HotStore, recall_id: str, now: float) -> None:
    gtins = [
        r[0]
        for r in store.conn.execute(
            "SELECT DISTINCT gtin FROM sync_recalls WHERE recall_id = ?", (recall_id,)
        )
    ]
    store.conn.execute("DELETE FROM sync_recalls WHERE recall_id = ?", (recall_id,))
    for gtin in gtins:
        _recompute(store, now, gtin)


def _recalled_lots_known(store: HotStore, recalls: Iterable[Mapping[str, Any]], now: float) -> None:
    """Give every lot a recall names a ``lots`` row, so that the recall reaches it.

    A lot known only from a serial (its ``lot``) or from a pallet's contents has no row
    of its own; the scan path reads the lot's status from that row. The insert trigger
    derives the new row's status (``recalled``) from ``sync_recalls``.
    """
    store.conn.executemany(
        "INSERT INTO lots(gtin, lot, expiry, status, updated_at) VALUES (?, ?, NULL, 'active', ?) "
        "ON CONFLICT(gtin, lot) DO NOTHING",
        [(r["gtin"], lot, now) for r in recalls for lot in r["lots"]],
    )


def _put_recall(store: HotStore, rec: Mapping[str, Any], now: float) -> None:
    _lift_recall(store, rec["recall_id"], now)
    store.conn.executemany(
        "INSERT INTO sync_recalls(recall_id, gtin, lot, reason, since) VALUES (?, ?, ?, ?, ?)",
        [
            (rec["recall_id"], rec["gtin"], lot, rec["reason"], rec["since"])
            for lot in (rec["lots"] or [""])
        ],
    )
    _recalled_lots_known(store, [rec], now)
    _recompute(store, now, rec["gtin"])


#: ``aggregations.packed_seq`` of a line that comes from a despatch advice (no event).
DESADV_SEQ = 0
_RECEIVED = ("at_site", "shipped", "consumed")


def _pallet_state(store: HotStore, sscc: str) -> str | None:
    row = store.conn.execute("SELECT state FROM pallets WHERE sscc = ?", (sscc,)).fetchone()
    return None if row is None else str(row[0])


def _forget_expected(store: HotStore, sscc: str) -> None:
    """Drop what a despatch advice said of a pallet not received yet."""
    store.conn.execute(
        "DELETE FROM aggregations WHERE parent_sscc = ? AND packed_seq = ? AND unpacked_at IS NULL",
        (sscc, DESADV_SEQ),
    )
    store.conn.execute("DELETE FROM pallets WHERE sscc = ? AND state = 'expected'", (sscc,))


def put_despatch_advice(store: HotStore, rec: Mapping[str, Any], now: float) -> bool:
    """Record an expected pallet's contents; False (nothing changed) once it was received.

    Earlier despatch-advice lines of the SSCC are replaced; lines packed here are kept.
    """
    sscc = rec["sscc"]
    if _pallet_state(store, sscc) in _RECEIVED:
        return False
    _forget_expected(store, sscc)
    store.conn.executemany(
        "INSERT INTO aggregations(parent_sscc, gtin, serial, lot, child_sscc, quantity, "
        "packed_seq, packed_at) VALUES (?, ?, ?, ?, NULL, ?, ?, ?)",
        [
            (sscc, x["gtin"], x.get("serial"), x.get("lot"), int(x["quantity"]), DESADV_SEQ, now)
            for x in rec["items"]
        ],
    )
    store.conn.execute(
        "INSERT INTO pallets(sscc, state, location, updated_at) VALUES (?, 'expected', '', ?)",
        (sscc, now),
    )
    return True


def drop_despatch_advice(store: HotStore, sscc: str) -> bool:
    """Forget an expected pallet; False (nothing changed) once it was received."""
    if _pallet_state(store, sscc) in _RECEIVED:
        return False
    _forget_expected(store, sscc)
    return True


def _set_version(store: HotStore, version: int, now: float) -> None:
    store.set_meta("cache_version", str(version))
    store.set_meta("cache_updated_at", repr(now))


def apply_delta(store: HotStore, delta: Mapping[str, Any], now: float | None = None) -> int:
    """Apply a validated delta in the caller's transaction; returns its version."""
    t = time.time() if now is None else now
    cut = epoch(delta["generated_at"])
    for ch in delta["changes"]:
        entity, op = ch["entity"], ch["op"]
        rec = ch["record"] if op == "upsert" else ch["key"]
        if entity == "product":
            if op == "upsert":
                _upsert_product(store, rec, t)
            else:
                _delete_product(store, rec["gtin"])
        elif entity == "lot":
            if op == "upsert":
                _upsert_lot(store, rec, t)
            else:
                _delete_lot(store, rec["gtin"], rec["lot"])
        elif entity == "serial":
            if op == "upsert":
                _upsert_serial(store, rec, cut)
            else:
                _delete_serial(store, rec["gtin"], rec["serial"], cut)
        elif entity == "hold":
            if op == "upsert":
                _put_hold(store, rec, t)
            else:
                _lift_hold(store, rec["hold_id"], t)
        elif entity == "recall":
            if op == "upsert":
                _put_recall(store, rec, t)
            else:
                _lift_recall(store, rec["recall_id"], t)
        elif entity == "despatch_advice":
            changed = (
                put_despatch_advice(store, rec, t)
                if op == "upsert"
                else drop_despatch_advice(store, rec["sscc"])
            )
            if not changed:
                log.info("despatch advice for pallet %s ignored: received already", rec["sscc"])
        else:
            raise ValueError(f"unknown cache entity {entity!r}")
    _set_version(store, int(delta["version"]), t)
    return int(delta["version"])


_STAGE = {
    "sync_stage_lots": "gtin TEXT NOT NULL, lot TEXT NOT NULL, expiry TEXT, status TEXT NOT NULL, "
    "chunk INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (gtin, lot)",
    "sync_stage_serials": "gtin TEXT NOT NULL, serial TEXT NOT NULL, lot TEXT, "
    "state TEXT NOT NULL, chunk INTEGER NOT NULL DEFAULT 0",
}


def _drop_stage(store: HotStore) -> None:
    for name in _STAGE:
        store.conn.execute(f"DROP TABLE IF EXISTS temp.{name}")


def _create_stage(store: HotStore) -> None:
    """Empty staging tables (TEMP: this connection only, in a temporary file)."""
    _drop_stage(store)
    for name, cols in _STAGE.items():
        store.conn.execute(f"CREATE TEMP TABLE {name}({cols})")


def _stage_rows(
    store: HotStore,
    index: int,
    lots: Iterable[LotRow],
    serials: Iterable[SerialRow],
    again: bool = False,
) -> None:
    """One chunk's lots and serials into the staging tables (``again``: replace its copy)."""
    conn = store.conn
    if again:
        for name in _STAGE:
            conn.execute(f"DELETE FROM temp.{name} WHERE chunk = ?", (index,))
    conn.executemany(
        "INSERT OR REPLACE INTO temp.sync_stage_lots VALUES (?, ?, ?, ?, ?)",
        ((*row, index) for row in lots),
    )
    conn.executemany(
        "INSERT INTO temp.sync_stage_serials VALUES (?, ?, ?, ?, ?)",
        ((g, serial, lot, SERIAL_STATE[state], index) for g, serial, lot, state in serials),
    )


def apply_snapshot(store: HotStore, snapshot: Mapping[str, Any], now: float | None = None) -> int:
    """Replace master data with a complete (merged) snapshot; returns its version.

    Stock quantities are never touched; see the module docstring for what is kept.
    Lots and serials (up to millions) go into TEMP staging tables (``executemany`` from
    generators) — or are there already (``staged``: :class:`SnapshotAssembler` put them
    there chunk by chunk) — and are applied with a few set-based statements, in the
    caller's transaction; the staging is dropped at the end.
    """
    t = time.time() if now is None else now
    cut = epoch(snapshot["generated_at"])
    conn = store.conn
    gtins = [p["gtin"] for p in snapshot["products"] if p.get("active") is not False]
    conn.execute(
        "DELETE FROM products WHERE gtin NOT IN (SELECT value FROM json_each(?))",
        (json.dumps(gtins),),
    )
    for p in snapshot["products"]:
        _upsert_product(store, p, t)
    for (hold_id,) in conn.execute("SELECT hold_id FROM sync_holds").fetchall():
        _lift_hold(store, hold_id, t)  # every hold is lifted: serials below see none
    conn.execute("DELETE FROM sync_recalls")
    if not snapshot.get("staged"):
        _create_stage(store)
        _stage_rows(store, 0, map(lot_row, snapshot["lots"]), map(serial_row, snapshot["serials"]))
    # a lot missing from the snapshot goes, unless it holds local stock (see _delete_lot)
    gone = (
        "SELECT l.id FROM lots AS l WHERE NOT EXISTS (SELECT 1 FROM temp.sync_stage_lots AS k "
        "WHERE k.gtin = l.gtin AND k.lot = l.lot) AND NOT EXISTS (SELECT 1 FROM lot_stock AS s "
        "WHERE s.lot_id = l.id AND s.quantity > 0)"
    )
    conn.execute(
        "DELETE FROM sync_lot_status WHERE (gtin, lot) IN "
        f"(SELECT gtin, lot FROM lots WHERE id IN ({gone}))"
    )
    conn.execute(f"DELETE FROM lot_stock WHERE lot_id IN ({gone})")
    conn.execute(f"DELETE FROM lots WHERE id IN ({gone})")
    conn.execute(
        "INSERT INTO sync_lot_status(gtin, lot, status) SELECT gtin, lot, status "
        "FROM temp.sync_stage_lots WHERE true "
        "ON CONFLICT(gtin, lot) DO UPDATE SET status = excluded.status"
    )
    local = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in LOT_STATUS.items())
    conn.execute(
        "INSERT INTO lots(gtin, lot, expiry, status, updated_at) "
        f"SELECT gtin, lot, expiry, CASE status {local} END, ? FROM temp.sync_stage_lots "
        "WHERE true ON CONFLICT(gtin, lot) DO UPDATE SET expiry = excluded.expiry, "
        "updated_at = excluded.updated_at",
        (t,),
    )
    # the central state, unless the serial moved locally at or after the cut (_upsert_serial)
    conn.execute(
        "INSERT INTO serials(gtin, serial, lot, state, location, updated_at) "
        "SELECT gtin, serial, lot, state, '', ? FROM temp.sync_stage_serials WHERE true "
        "ORDER BY chunk, rowid ON CONFLICT(gtin, serial) DO UPDATE SET "
        "lot = COALESCE(excluded.lot, serials.lot), state = excluded.state, "
        "updated_at = excluded.updated_at WHERE serials.updated_at < excluded.updated_at"
        + _NOT_OVER_CUSTODY,
        (cut,),
    )
    _drop_stage(store)
    for h in snapshot["holds"]:
        _put_hold(store, h, t)
    conn.executemany(
        "INSERT INTO sync_recalls(recall_id, gtin, lot, reason, since) VALUES (?, ?, ?, ?, ?)",
        [
            (r["recall_id"], r["gtin"], lot, r["reason"], r["since"])
            for r in snapshot["recalls"]
            for lot in (r["lots"] or [""])
        ],
    )
    _recalled_lots_known(store, snapshot["recalls"], t)
    _recompute(store, t)
    if "despatch_advices" in snapshot:  # absent (a 1.0 snapshot): expected pallets unchanged
        listed = {a["sscc"] for a in snapshot["despatch_advices"]}
        expected = conn.execute("SELECT sscc FROM pallets WHERE state = 'expected'").fetchall()
        for (sscc,) in expected:
            if sscc not in listed:
                _forget_expected(store, sscc)
        for a in snapshot["despatch_advices"]:
            put_despatch_advice(store, a, t)
    _set_version(store, int(snapshot["version"]), t)
    return int(snapshot["version"])


def rid_of(data: Mapping[str, Any]) -> str | None:
    """The ``request_id`` of a snapshot chunk, when it is a string."""
    rid = data.get("request_id")
    return rid if isinstance(rid, str) else None


def held_version(store: HotStore) -> int | None:
    """The cache version in ``meta`` (None before the first snapshot)."""
    v = store.get_meta("cache_version")
    return int(v) if v else None


def cache_counts(store: HotStore) -> dict[str, int]:
    """Row counts for the cache-version report."""
    q = {
        "products": "SELECT COUNT(*) FROM products",
        "lots": "SELECT COUNT(*) FROM lots",
        "serials": "SELECT COUNT(*) FROM serials",
        "holds": "SELECT COUNT(*) FROM sync_holds",
        "recalls": "SELECT COUNT(DISTINCT recall_id) FROM sync_recalls",
        "despatch_advices": "SELECT COUNT(*) FROM pallets WHERE state = 'expected'",
    }
    return {k: int(store.conn.execute(sql).fetchone()[0]) for k, sql in q.items()}


# -- the shell ------------------------------------------------------------------------------
class PublishFn(Protocol):
    """Publishes a JSON payload (the daemon wraps its paho client)."""

    def __call__(
        self, topic: str, payload: dict[str, Any], qos: int, retain: bool = False
    ) -> None: ...


RunInWriter = Callable[[Callable[[HotStore], Any]], Any]
Result = Literal["applied", "duplicate", "gap", "pending", "chunk", "stale", "invalid", "failed"]


def publish_json(client: Any) -> PublishFn:
    """A :class:`PublishFn` over a paho client (compact JSON, UTF-8)."""

    def publish(topic: str, payload: dict[str, Any], qos: int, retain: bool = False) -> None:
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        client.publish(topic, data, qos=qos, retain=retain)

    return publish


class CacheSync:
    """Receives snapshots and deltas, applies them through the writer, acks, asks for resyncs.

    ``on_message`` runs on paho's network thread and waits for the writer, so messages
    are applied in arrival order. Deltas that arrive ahead of a missing one are kept
    (up to ``max_pending``) and applied as soon as the gap closes.
    """

    def __init__(
        self,
        *,
        topics: GatewayTopics,
        run_in_writer: RunInWriter,
        publish: PublishFn,
        resync_interval: float = 30.0,
        max_pending: int = 1000,
        clock: Callable[[], datetime] = lambda: datetime.now().astimezone(),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topics = topics
        self.run_in_writer = run_in_writer
        self.publish = publish
        self.resync_interval = resync_interval
        self.max_pending = max_pending
        self.clock = clock
        self.monotonic = monotonic
        self.assembler = SnapshotAssembler(stager=run_in_writer)
        self.pending: dict[int, Mapping[str, Any]] = {}  # from_version -> delta
        self.outstanding: str | None = None  # request id of our last resync request
        self._reason = ""
        self._last_request = -1e18
        self._held: int | None = None
        self._loaded = False
        self._lock = threading.Lock()
        self.last_apply_s: float | None = None  # arrival → committed, last message

    @property
    def held_version(self) -> int | None:
        """The version held (read from ``meta`` the first time)."""
        if not self._loaded:
            self._held = self.run_in_writer(held_version)
            self._loaded = True
        return self._held

    def _ids(self) -> dict[str, Any]:
        return {"gateway_id": self.topics.gateway, "site": self.topics.site, "time": self.clock()}

    # -- outbound ---------------------------------------------------------------------------
    def request_resync(self, reason: Literal["empty", "gap", "corrupt", "command", "stale"]) -> str:
        """Ask for a snapshot (at most once per ``resync_interval`` unless commanded)."""
        now = self.monotonic()
        if (
            reason != "command"
            and self.outstanding is not None
            and now - self._last_request < self.resync_interval
        ):
            return self.outstanding
        rid = uuid7()
        self.outstanding, self._last_request, self._reason = rid, now, reason
        payload = build_resync_request(
            **self._ids(), request_id=rid, have_version=self.held_version, reason=reason
        )
        self.publish(self.topics.cache_resync, payload, 1)
        held = (
            "no cache version yet"
            if self.held_version is None
            else f"at version {self.held_version}"
        )
        log.info("cache resync requested (%s; %s)", reason, held)
        return rid

    def announce(self) -> None:
        """Report the version held (retained); ask for a snapshot when there is none."""
        counts, version = self.run_in_writer(lambda s: (cache_counts(s), held_version(s)))
        self._held, self._loaded = version, True
        self._report(version, counts)
        if version is None:
            self.request_resync("empty")

    def _report(self, version: int | None, counts: Mapping[str, int]) -> None:
        payload = build_cache_version(
            **self._ids(), version=version, counts=counts, updated_at=self.clock()
        )
        self.publish(self.topics.cache_version, payload, 1, True)

    def _ack(
        self, kind: Literal["snapshot", "delta"], version: int, error: str = "", rid: Any = None
    ) -> None:
        if version < 1:
            return
        payload = build_ack(
            **self._ids(),
            kind=kind,
            version=version,
            ok=not error,
            error=error[:2048],
            request_id=rid if isinstance(rid, str) else None,
        )
        self.publish(self.topics.cache_ack, payload, 1)

    # -- inbound ----------------------------------------------------------------------------
    def on_message(self, topic: str, payload: bytes) -> Result | None:
        """Handle a message on ``cache/snapshot`` or ``cache/delta``; others are ignored."""
        if topic not in (self.topics.cache_snapshot, self.topics.cache_delta):
            return None
        arrived = time.perf_counter()
        try:
            data = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            log.warning("cache message on %s is not UTF-8 JSON: %s", topic, exc)
            return "invalid"
        with self._lock:
            if topic == self.topics.cache_snapshot:
                result = self._snapshot(data)
            else:
                result = self._delta(data)
        if result in ("applied", "duplicate"):
            self.last_apply_s = time.perf_counter() - arrived
        return result

    def _version_of(self, data: Any) -> int:
        v = data.get("version") if isinstance(data, dict) else None
        return v if isinstance(v, int) and not isinstance(v, bool) else 0

    def _snapshot(self, data: Any) -> Result:
        errors = validate_snapshot(data)
        if errors:
            log.warning("invalid cache snapshot: %s", "; ".join(errors[:5]))
            self._ack("snapshot", self._version_of(data), "; ".join(errors), data.get("request_id"))
            return "invalid"
        try:
            snap = self.assembler.add(data)
        except Exception as exc:  # staging failed (disk full): the snapshot starts over
            log.exception("staging a chunk of cache snapshot %d failed", self._version_of(data))
            self._ack(
                "snapshot", self._version_of(data), f"{type(exc).__name__}: {exc}", rid_of(data)
            )
            return "failed"
        if snap is None:
            return "chunk"
        version, rid = int(snap["version"]), snap.get("request_id")
        held = self.held_version
        ours = rid is not None and rid == self.outstanding
        if held is not None and version <= held and not ours:
            log.info("cache snapshot %d ignored: holding %d", version, held)
            return "stale"
        try:
            counts = self._run(lambda s: (apply_snapshot(s, snap), cache_counts(s))[1])
        except Exception as exc:
            log.exception("applying cache snapshot %d failed", version)
            if snap.get("staged"):
                with contextlib.suppress(Exception):
                    self._run(_drop_stage)  # the temporary file shrinks again
            self._ack("snapshot", version, f"{type(exc).__name__}: {exc}", rid)
            return "failed"
        self._held, self.outstanding = version, None
        self.pending = {k: d for k, d in self.pending.items() if d["version"] > version}
        self._ack("snapshot", version, rid=rid)
        log.info("cache snapshot %d applied (%s)", version, counts)
        self._drain(counts)
        return "applied"

    def _delta(self, data: Any) -> Result:
        errors = validate_delta(data)
        if errors:
            log.warning("invalid cache delta: %s", "; ".join(errors[:5]))
            self._ack("delta", self._version_of(data), "; ".join(errors))
            return "invalid"
        plan = plan_delta(self.held_version, data)
        if isinstance(plan, Ignore):
            self._ack("delta", int(data["version"]))
            return "duplicate"
        if isinstance(plan, Gap):
            if len(self.pending) < self.max_pending:
                self.pending[int(data["from_version"])] = data
            self.request_resync("empty" if plan.have is None else "gap")
            return "gap"
        counts = self._apply_delta(data)
        if counts is None:
            return "failed"
        self._drain(counts)
        return "applied"

    def _apply_delta(self, delta: Mapping[str, Any]) -> dict[str, int] | None:
        version = int(delta["version"])
        try:
            counts: dict[str, int] = self._run(
                lambda s: (apply_delta(s, delta), cache_counts(s))[1]
            )
        except Exception as exc:
            log.exception("applying cache delta %d failed", version)
            self._ack("delta", version, f"{type(exc).__name__}: {exc}")
            self.request_resync("corrupt")
            return None
        self._held = version
        self._ack("delta", version)
        return counts

    def _drain(self, counts: dict[str, int]) -> None:
        """Apply kept deltas that now continue the version held, then report it."""
        while self._held is not None and self._held in self.pending:
            nxt = self.pending.pop(self._held)
            got = self._apply_delta(nxt)
            if got is None:
                break
            counts = got
        self.pending = {
            k: d for k, d in self.pending.items() if self._held is None or k >= self._held
        }
        if not self.pending and self._reason == "gap":
            self.outstanding = None  # the gap closed by itself; a new one asks at once
        self._report(self._held, counts)

    def _run(self, fn: Callable[[HotStore], T]) -> T:
        result: T = self.run_in_writer(fn)
        return result
